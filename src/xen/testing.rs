//! A model machine for host tests of the hypercalls: sparse physical
//! memory, a real frame allocator, a recording TLB and event interrupt, and
//! a Dom0 whose virtual addresses equal its guest-physical ones.

use super::{Board, Call, GuestMemory, Outcome, dispatch};
use crate::domain::{Domain, DomainId};
use crate::mm::frames::FrameAllocator;
use crate::mm::range::{PhysRange, RangeSet};
use crate::mm::stage2::{Geometry, Kind, Stage2Map, Tlb};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub const RAM: PhysRange = PhysRange::new(0x6000_0000, 0x6400_0000);
/// Free frames of the hypervisor's.
pub const HYPERVISOR_FREE: PhysRange = PhysRange::new(0x4100_0000, 0x4200_0000);
pub const GRANT_REGION: PhysRange = PhysRange::new(0x4020_0000, 0x4024_0000);
/// Unmapped IPA space, like an extended region.
pub const SCRATCH: u64 = 0x4800_0000;

pub struct TestBoard {
    pages: Mutex<BTreeMap<u64, &'static [AtomicU64; 512]>>,
    frames: Mutex<FrameAllocator<'static>>,
    pub raised: Mutex<Vec<usize>>,
    pub console: Mutex<Vec<u8>>,
    pub input: Mutex<VecDeque<u8>>,
    pub tlb: Mutex<Vec<(char, u64)>>,
    pub now: AtomicU64,
}

impl TestBoard {
    pub fn new() -> Self {
        let mut banks = RangeSet::<4>::new();
        banks.insert(PhysRange::new(0x4000_0000, 0x8000_0000)).unwrap();
        let storage = Box::leak(vec![0u64; FrameAllocator::storage_words(&banks)].into_boxed_slice());
        let mut frames = FrameAllocator::new(&banks, storage).unwrap();
        frames.free_range(HYPERVISOR_FREE).unwrap();
        Self {
            pages: Mutex::new(BTreeMap::new()),
            frames: Mutex::new(frames),
            raised: Mutex::new(Vec::new()),
            console: Mutex::new(Vec::new()),
            input: Mutex::new(VecDeque::new()),
            tlb: Mutex::new(Vec::new()),
            now: AtomicU64::new(1_000),
        }
    }

    pub fn free_frames(&self) -> u64 {
        self.frames.lock().unwrap().free_frames()
    }

    pub fn is_free(&self, pa: u64) -> bool {
        self.frames.lock().unwrap().free_ranges().any(|r| r.contains(pa))
    }

    pub fn take_raised(&self) -> Vec<usize> {
        std::mem::take(&mut *self.raised.lock().unwrap())
    }

    pub fn byte(&self, pa: u64) -> u8 {
        (self.word(pa & !7).load(Ordering::Relaxed) >> ((pa & 7) * 8)) as u8
    }

    pub fn set_byte(&self, pa: u64, value: u8) {
        let shift = (pa & 7) * 8;
        let word = self.word(pa & !7);
        let w = word.load(Ordering::Relaxed);
        word.store((w & !(0xff << shift)) | (u64::from(value) << shift), Ordering::Relaxed);
    }

    pub fn u64(&self, pa: u64) -> u64 {
        self.word(pa).load(Ordering::Relaxed)
    }

    pub fn set_u64(&self, pa: u64, value: u64) {
        self.word(pa).store(value, Ordering::Relaxed)
    }

    pub fn put(&self, pa: u64, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            self.set_byte(pa + i as u64, b);
        }
    }

    pub fn get(&self, pa: u64, len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| self.byte(pa + i)).collect()
    }
}

impl Tlb for TestBoard {
    fn invalidate_ipa(&self, ipa: u64) {
        self.tlb.lock().unwrap().push(('i', ipa));
    }
    fn publish(&self) {
        self.tlb.lock().unwrap().push(('p', 0));
    }
}

impl Board for TestBoard {
    fn word(&self, pa: u64) -> &AtomicU64 {
        assert_eq!(pa % 8, 0, "unaligned word {pa:#x}");
        let page = *self
            .pages
            .lock()
            .unwrap()
            .entry(pa & !0xfff)
            .or_insert_with(|| Box::leak(Box::new([const { AtomicU64::new(0) }; 512])));
        &page[((pa & 0xfff) / 8) as usize]
    }
    fn alloc_frame(&self) -> Option<u64> {
        self.frames.lock().unwrap().alloc(0)
    }
    fn free_frame(&self, pa: u64) {
        self.frames.lock().unwrap().free(pa, 0).expect("a frame freed once");
    }
    fn claim_frame(&self, pa: u64) -> bool {
        self.frames.lock().unwrap().allocate_range(PhysRange::new(pa, pa + 4096)).is_ok()
    }
    fn raise_event(&self, vcpu: usize) {
        self.raised.lock().unwrap().push(vcpu);
    }
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
    fn console_write(&self, bytes: &[u8]) {
        self.console.lock().unwrap().extend_from_slice(bytes);
    }
    fn console_read(&self, buf: &mut [u8]) -> usize {
        let mut input = self.input.lock().unwrap();
        let n = buf.len().min(input.len());
        for b in buf.iter_mut().take(n) {
            *b = input.pop_front().unwrap();
        }
        n
    }
}

/// The guest's memory: virtual == guest-physical, through its stage 2, as
/// the board's AT walk would go, and only into its RAM.
pub struct TestGuest<'a> {
    pub domain: &'a Domain,
    pub board: &'a TestBoard,
}

impl TestGuest<'_> {
    fn pa(&self, gva: u64, write: bool) -> Result<u64, i64> {
        let leaf = self.domain.stage2.lock().translate(gva).ok_or(-14)?;
        let pa = leaf.pa + (gva & 0xfff);
        let writable = !matches!(leaf.kind, Kind::Granted { writable: false });
        if (write && !writable) || !self.domain.owns_ram(&PhysRange::new(pa, pa + 1)) {
            return Err(-14);
        }
        Ok(pa)
    }
}

impl GuestMemory for TestGuest<'_> {
    fn write(&mut self, gva: u64, bytes: &[u8]) -> Result<(), i64> {
        let pas: Vec<u64> = (0..bytes.len() as u64)
            .map(|i| gva.checked_add(i).ok_or(-14).and_then(|va| self.pa(va, true)))
            .collect::<Result<_, _>>()?;
        pas.iter().zip(bytes).for_each(|(&pa, &b)| self.board.set_byte(pa, b));
        Ok(())
    }
    fn read(&mut self, gva: u64, bytes: &mut [u8]) -> Result<(), i64> {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = self.board.byte(self.pa(gva.checked_add(i as u64).ok_or(-14)?, false)?);
        }
        Ok(())
    }
    fn translate(&mut self, gva: u64, write: bool) -> Result<u64, i64> {
        self.pa(gva, write)
    }
}

/// Dom0 with `vcpus` vCPUs on a fresh model machine.
pub struct Machine {
    pub domain: &'static Domain,
    pub board: &'static TestBoard,
}

impl Machine {
    pub fn new(vcpus: usize) -> Self {
        let mut stage2 = Stage2Map::new(Geometry::for_ipa_bits(40));
        stage2.map(RAM, Kind::Ram).unwrap();
        let domain = Box::leak(Box::new(Domain::new(DomainId(0), 1, vec![RAM], stage2, vcpus, GRANT_REGION)));
        Machine { domain, board: Box::leak(Box::new(TestBoard::new())) }
    }

    /// One trap: hypercall `number` from vCPU `vcpu`.
    pub fn trap(&self, vcpu: usize, number: u64, args: [u64; 5]) -> Outcome {
        let mut memory = TestGuest { domain: self.domain, board: self.board };
        let mut call = Call { domain: self.domain, vcpu, memory: &mut memory, board: self.board };
        dispatch(&mut call, number, args)
    }

    /// A hypercall run to the end, re-executed while it continues, as the
    /// guest would; also returns how many traps it took.
    pub fn call_counting(&self, vcpu: usize, number: u64, args: [u64; 5]) -> (Outcome, usize) {
        let mut args = args;
        for traps in 1..100_000 {
            match self.trap(vcpu, number, args) {
                Outcome::Continue(next) => args = next,
                done => return (done, traps),
            }
        }
        panic!("hypercall {number} never finished");
    }

    /// A reservation call (decrease_reservation, populate_physmap) on the
    /// one page at `page`: the extents done.
    pub fn balloon(&self, op: u64, page: u64) -> i64 {
        let (list, arg) = (RAM.start + 0xf000, RAM.start + 0xf100);
        self.board.set_u64(list, page >> 12);
        let mut r = [0u8; 32];
        r[..8].copy_from_slice(&list.to_le_bytes());
        r[8..16].copy_from_slice(&1u64.to_le_bytes());
        r[24..26].copy_from_slice(&super::DOMID_SELF.to_le_bytes());
        self.board.put(arg, &r);
        self.call(super::nr::MEMORY_OP, args(&[op, arg]))
    }

    /// x0 of a hypercall from vCPU 0 run to the end.
    pub fn call(&self, number: u64, args: [u64; 5]) -> i64 {
        match self.call_counting(0, number, args).0 {
            Outcome::Return(value) => value,
            other => panic!("hypercall {number} ended with {other:?}"),
        }
    }
}

/// Arguments x0..x4 from up to five values.
pub fn args(values: &[u64]) -> [u64; 5] {
    let mut a = [0; 5];
    a[..values.len()].copy_from_slice(values);
    a
}
