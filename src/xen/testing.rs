//! A model machine for host tests of the hypercalls: sparse physical
//! memory, a real frame allocator, a recording TLB and event interrupt, and
//! a Dom0 whose virtual addresses equal its guest-physical ones, and if
//! asked a DomU beside it whose RAM is not 1:1 (as the boot builds them).
//! A machine owns all of it and frees it when dropped, so a fuzzer can make
//! many.

use super::errno::EFAULT;
use super::{Board, Call, DOMID_SELF, Domains, Errno, GuestMemory, Outcome, dispatch};
use super::{DomainState, DomainView, Stage2Lock};
use crate::mm::audit::{Owned, Summary, Violation};
use crate::mm::frames::FrameAllocator;
use crate::mm::range::{GuestRange, Ipa, Pa, PhysRange, RangeSet};
use crate::mm::stage2::{Geometry, Kind, Stage2Map, Tlb};
use std::collections::{BTreeMap, VecDeque};
use std::mem::ManuallyDrop;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub const RAM: PhysRange = PhysRange::new(0x6000_0000, 0x6400_0000);
/// Free frames of the hypervisor's.
pub const HYPERVISOR_FREE: PhysRange = PhysRange::new(0x4100_0000, 0x4200_0000);
pub const GRANT_REGION: GuestRange = GuestRange::new(0x4020_0000, 0x4024_0000);
/// Unmapped IPA space, like an extended region.
pub const SCRATCH: u64 = 0x4800_0000;
/// The DomU's id, RAM (at Xen's guest address) and the frames behind it,
/// which are the allocator's but not free, as a built DomU's are.
pub const DOMU: u16 = 1;
pub const DOMU_RAM: GuestRange = GuestRange::new(0x4000_0000, 0x4080_0000);
pub const DOMU_FRAMES: u64 = 0x7000_0000;
/// Its grant region (Xen's guest layout), 16 frames.
pub const DOMU_GRANT_REGION: GuestRange = GuestRange::new(0x3800_0000, 0x3801_0000);

type Page = [AtomicU64; 512];

/// A frame allocator together with the metadata storage it borrows, which
/// is freed after it.
struct Frames {
    allocator: ManuallyDrop<FrameAllocator<'static>>,
    storage: *mut [u64],
}

// SAFETY: `storage` is touched only through `allocator`, and freed in `drop`.
unsafe impl Send for Frames {}

impl Frames {
    fn new(banks: &RangeSet<4>) -> Self {
        let storage = Box::into_raw(vec![0u64; FrameAllocator::storage_words(banks)].into_boxed_slice());
        // SAFETY: just allocated; lent to the allocator alone, which `drop`
        // ends before freeing it.
        let allocator = FrameAllocator::new(banks, unsafe { &mut *storage }).unwrap();
        Self { allocator: ManuallyDrop::new(allocator), storage }
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        // SAFETY: dropped once, here, before the storage it borrows.
        unsafe { ManuallyDrop::drop(&mut self.allocator) };
        // SAFETY: from `Box::into_raw` in `new`; its only borrower is gone.
        drop(unsafe { Box::from_raw(self.storage) });
    }
}

impl std::ops::Deref for Frames {
    type Target = FrameAllocator<'static>;
    fn deref(&self) -> &Self::Target {
        &self.allocator
    }
}

impl std::ops::DerefMut for Frames {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.allocator
    }
}

pub struct TestBoard {
    /// Pages are boxed and never removed, so a word handed out stays put.
    pages: Mutex<BTreeMap<u64, Box<Page>>>,
    frames: Mutex<Frames>,
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
        let mut frames = Frames::new(&banks);
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

    /// Gives `range` to the allocator (a released domain's RAM).
    pub fn free_range(&self, range: PhysRange) {
        self.frames.lock().unwrap().free_range(range).expect("frames freed once");
    }

    pub fn free_frames(&self) -> u64 {
        self.frames.lock().unwrap().free_frames()
    }

    pub fn is_free(&self, pa: u64) -> bool {
        self.frames.lock().unwrap().free_ranges().any(|r| r.contains(pa))
    }

    pub fn free_ranges(&self) -> Vec<PhysRange> {
        self.frames.lock().unwrap().free_ranges().collect()
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
    fn invalidate_ipa(&self, ipa: Ipa) {
        self.tlb.lock().unwrap().push(('i', ipa.0));
    }
    fn publish(&self) {
        self.tlb.lock().unwrap().push(('p', 0));
    }
}

impl Board for TestBoard {
    fn word(&self, pa: u64) -> &AtomicU64 {
        assert_eq!(pa % 8, 0, "unaligned word {pa:#x}");
        let mut pages = self.pages.lock().unwrap();
        let page: *const Page =
            &**pages.entry(pa & !0xfff).or_insert_with(|| Box::new([const { AtomicU64::new(0) }; 512]));
        // SAFETY: the page is boxed, so the map's changes never move it, and
        // it is freed only with the board, which the returned borrow outlives not.
        let page = unsafe { &*page };
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

/// The guest's memory: virtual == guest-physical (a flat stage 1), then
/// through its stage 2 into its RAM, as on the board.
pub struct TestGuest<'a> {
    pub domain: DomainView<'a>,
    pub board: &'a TestBoard,
}

impl TestGuest<'_> {
    fn pa(&self, gva: u64, write: bool) -> Result<u64, Errno> {
        let stage2 = self.domain.stage2.lock_holding_no_xen_lock();
        self.domain.ram_frame(&stage2, Ipa(gva), write).map(|pa| pa.0).ok_or(EFAULT)
    }
}

impl TestGuest<'_> {
    /// The physical address of each byte of `[gva, gva + len)`, translated
    /// a page at a time.
    fn pas(&self, gva: u64, len: usize, write: bool) -> Result<Vec<u64>, Errno> {
        let mut pas: Vec<u64> = Vec::with_capacity(len);
        for i in 0..len as u64 {
            let va = gva.checked_add(i).ok_or(EFAULT)?;
            let pa = match pas.last() {
                Some(&last) if va & 0xfff != 0 => last + 1,
                _ => self.pa(va, write)?,
            };
            pas.push(pa);
        }
        Ok(pas)
    }
}

impl GuestMemory for TestGuest<'_> {
    fn write(&mut self, gva: u64, bytes: &[u8]) -> Result<(), Errno> {
        let pas = self.pas(gva, bytes.len(), true)?;
        pas.iter().zip(bytes).for_each(|(&pa, &b)| self.board.set_byte(pa, b));
        Ok(())
    }
    fn read(&mut self, gva: u64, bytes: &mut [u8]) -> Result<(), Errno> {
        let pas = self.pas(gva, bytes.len(), false)?;
        pas.iter().zip(bytes.iter_mut()).for_each(|(&pa, b)| *b = self.board.byte(pa));
        Ok(())
    }
    fn translate(&mut self, gva: u64, write: bool) -> Result<(Ipa, Pa), Errno> {
        self.pa(gva, write).map(|pa| (Ipa(gva), Pa(pa)))
    }
}

/// The model's domain: what a board's domain lends the hypercalls.
pub struct TestDomain {
    pub id: u16,
    pub ram: Vec<GuestRange>,
    pub stage2: Stage2Lock,
    pub xen: DomainState,
}

impl TestDomain {
    pub fn view(&self) -> DomainView<'_> {
        DomainView { id: self.id, ram: &self.ram, stage2: &self.stage2, xen: &self.xen }
    }
}

/// Dom0 with `vcpus` vCPUs on a fresh model machine, and maybe a DomU.
pub struct Machine {
    pub domain: TestDomain,
    pub board: TestBoard,
    pub domu: Option<TestDomain>,
    /// Events raised from another domain: (domain, vCPU).
    pub remote_raised: Mutex<Vec<(u16, usize)>>,
    /// Domains released, in order, and the frames each gave back.
    pub released: Mutex<Vec<(u16, u64)>>,
}

impl Domains for Machine {
    fn find(&self, domid: u16) -> Option<DomainView<'_>> {
        self.domains().find(|d| d.id == domid && !self.is_released(d.id)).map(TestDomain::view)
    }
    fn raise_event(&self, domid: u16, vcpu: usize) {
        self.remote_raised.lock().unwrap().push((domid, vcpu));
    }
    /// As the board does (`domu::teardown`), in its order: it is found no
    /// more, its stage 2 goes, then what the Xen layer held for it
    /// (grant-table frames; other domains' frames it still mapped), then
    /// its RAM's frames go back to the allocator.
    fn release(&self, domid: u16) {
        assert!(!self.is_released(domid), "d{domid} released twice");
        let domain = self.dom(domid);
        assert_ne!(domid, 0, "Dom0 is never released");
        self.released.lock().unwrap().push((domid, 0));
        *domain.stage2.lock_holding_no_xen_lock() = Stage2Map::new(Geometry::for_ipa_bits(40));
        let (grant_frames, others) = super::lifetime::release_state(domain.view(), &self.board, self);
        let ram: u64 = domain.ram.iter().map(|r| r.size()).sum();
        self.board.free_range(PhysRange::new(DOMU_FRAMES, DOMU_FRAMES + ram));
        let mut released = self.released.lock().unwrap();
        let entry = released.iter_mut().find(|(d, _)| *d == domid).expect("recorded above");
        entry.1 = grant_frames + ram / 4096;
        drop(released);
        for other in others {
            super::Domains::release(self, other);
        }
    }
}

impl Machine {
    pub fn new(vcpus: usize) -> Self {
        let mut stage2 = Stage2Map::new(Geometry::for_ipa_bits(40));
        stage2.map(RAM, Kind::Ram).unwrap();
        let domain = TestDomain {
            id: 0,
            ram: vec![GuestRange::identity_of(RAM)],
            stage2: Stage2Lock::new(stage2),
            xen: DomainState::new(vcpus, GRANT_REGION),
        };
        Machine {
            domain,
            board: TestBoard::new(),
            domu: None,
            remote_raised: Mutex::new(Vec::new()),
            released: Mutex::new(Vec::new()),
        }
    }

    pub fn is_released(&self, domid: u16) -> bool {
        self.released.lock().unwrap().iter().any(|&(d, _)| d == domid)
    }

    /// Domain `domid` ends (its vCPUs stopped), as the board ends a DomU:
    /// [`super::lifetime::kill`], then the releases it asks for.
    pub fn end(&self, domid: u16) {
        for dead in super::lifetime::kill(self.dom(domid).view(), &self.board, self) {
            super::Domains::release(self, dead);
        }
    }

    /// Dom0 with `vcpus` vCPUs and DomU 1 (one vCPU) beside it: its RAM
    /// at [`DOMU_RAM`] on the frames from [`DOMU_FRAMES`], mapped in its
    /// own stage 2.
    pub fn with_domu(vcpus: usize) -> Self {
        let mut m = Self::new(vcpus);
        let mut stage2 = Stage2Map::new(Geometry::for_ipa_bits(40));
        stage2.map_at(DOMU_RAM, Pa(DOMU_FRAMES), Kind::Ram).unwrap();
        m.domu = Some(TestDomain {
            id: DOMU,
            ram: vec![DOMU_RAM],
            stage2: Stage2Lock::new(stage2),
            xen: DomainState::new(1, DOMU_GRANT_REGION),
        });
        m
    }

    /// The machine's domains, Dom0 first.
    pub fn domains(&self) -> impl Iterator<Item = &TestDomain> {
        std::iter::once(&self.domain).chain(self.domu.as_ref())
    }

    /// Domain `domid` of the machine.
    pub fn dom(&self, domid: u16) -> &TestDomain {
        self.domains().find(|d| d.id == domid).expect("a domain of the machine")
    }

    /// The guest's memory as a hypercall reaches it.
    pub fn guest(&self) -> TestGuest<'_> {
        TestGuest { domain: self.domain.view(), board: &self.board }
    }

    /// One trap: hypercall `number` from vCPU `vcpu`.
    pub fn trap(&self, vcpu: usize, number: u64, args: [u64; 5]) -> Outcome {
        self.trap_as(0, vcpu, number, args)
    }

    /// One trap: hypercall `number` from vCPU `vcpu` of domain `domid`.
    pub fn trap_as(&self, domid: u16, vcpu: usize, number: u64, args: [u64; 5]) -> Outcome {
        let domain = self.dom(domid).view();
        let mut memory = TestGuest { domain, board: &self.board };
        let mut call = Call { domain, vcpu, memory: &mut memory, board: &self.board, domains: self };
        dispatch(&mut call, number, args)
    }

    /// The physical address behind `ipa` in domain `domid`'s stage 2.
    pub fn pa_in(&self, domid: u16, ipa: u64) -> u64 {
        let leaf = self.dom(domid).stage2.lock_holding_no_xen_lock().translate(Ipa(ipa)).expect("mapped");
        leaf.pa.0 | (ipa & 0xfff)
    }

    /// Domain `domid` writes `bytes` at its guest address `ipa` (within a page).
    pub fn put_in(&self, domid: u16, ipa: u64, bytes: &[u8]) {
        self.board.put(self.pa_in(domid, ipa), bytes)
    }

    pub fn get_in(&self, domid: u16, ipa: u64, len: usize) -> Vec<u8> {
        self.board.get(self.pa_in(domid, ipa), len)
    }

    /// x0 of a hypercall from vCPU 0 of domain `domid`, run to the end.
    pub fn call_as(&self, domid: u16, number: u64, args: [u64; 5]) -> i64 {
        let mut args = args;
        for _ in 1..100_000 {
            match self.trap_as(domid, 0, number, args) {
                Outcome::Continue(next) => args = next,
                Outcome::Return(value) => return value,
                other => panic!("hypercall {number} ended with {other:?}"),
            }
        }
        panic!("hypercall {number} never finished");
    }

    /// Stage 2 of domain `domid` audited: every other domain's RAM frames
    /// are foreign to it.
    pub fn audit_of(&self, domid: u16) -> Result<Summary, Violation> {
        let hypervisor: [Owned; 0] = [];
        let foreign: Vec<PhysRange> =
            self.domains().filter(|d| d.id != domid).flat_map(|d| d.view().ram_frames()).collect();
        self.dom(domid).view().audit_stage2(&[], &[], &hypervisor, &foreign, || self.board.free_ranges())
    }

    /// Where grant entry `gref` lies, if Dom0 put its table frame in place.
    pub fn grant_entry(&self, gref: u32) -> Option<u64> {
        let ipa = GRANT_REGION.start + u64::from(gref) * 8;
        let leaf =
            GRANT_REGION.contains(ipa).then(|| self.domain.stage2.lock_holding_no_xen_lock().translate(Ipa(ipa)))??;
        Some(leaf.pa.0 + (ipa & 0xfff))
    }

    /// Dom0 fills in grant entry `gref` (flags, the domain granted to, the
    /// frame), as it writes its table: directly, through its grant region.
    pub fn write_grant(&self, gref: u32, flags: u16, domid: u16, frame: u64) -> bool {
        let entry = u64::from(flags) | u64::from(domid) << 16 | (frame >> 12) << 32;
        self.grant_entry(gref).map(|pa| self.board.set_u64(pa, entry)).is_some()
    }

    /// Brings Dom0's stage 2 to `tables` table pages taken at run time
    /// (from fewer), spent on read-only grant mappings of one page of its
    /// own, one per 2 MiB of free IPA space, as a busy or hostile Dom0 can
    /// with map_grant_ref.
    pub fn spend_tables(&self, tables: usize) {
        use super::grant::{gtf, map, op};
        use super::memory::{op::ADD_TO_PHYSMAP, space};
        const GIB: u64 = 1 << 30;
        const ARG: u64 = RAM.start + 0x3f_f000;
        if self.grant_entry(0).is_none() {
            let frame = le(
                &[(0, DOMID_SELF.into(), 2), (4, space::GRANT_TABLE.into(), 4), (16, GRANT_REGION.start >> 12, 8)],
                24,
            );
            self.board.put(ARG, &frame);
            assert_eq!(self.call(super::nr::MEMORY_OP, args(&[ADD_TO_PHYSMAP, ARG])), 0);
        }
        // Two GiB of IPA space far above RAM: their level-2 tables first,
        // then one level-3 table per mapping, so the count lands exactly.
        let base = 0x40_0000_0000;
        let slots = [base, base + GIB]
            .into_iter()
            .chain((1..512).flat_map(|i| [base + i * (2 << 20), base + GIB + i * (2 << 20)]));
        for (n, host_addr) in slots.enumerate() {
            if self.domain.stage2.lock_holding_no_xen_lock().runtime_tables() >= tables {
                break;
            }
            let gref = (n / 100) as u32; // an entry maps at most 127 times
            assert!(self.write_grant(gref, gtf::PERMIT_ACCESS | gtf::READONLY, 0, RAM.start + 0x3f_e000));
            let flags = u64::from(map::HOST_MAP | map::READONLY);
            self.board.put(ARG, &le(&[(0, host_addr, 8), (8, flags, 4), (12, gref.into(), 4)], 32));
            assert_eq!(self.call(super::nr::GRANT_TABLE_OP, args(&[u64::from(op::MAP_GRANT_REF), ARG, 1])), 0);
            assert_eq!(self.board.get(ARG + 18, 2), [0, 0], "mapping {n} at {host_addr:#x}");
        }
        assert_eq!(self.domain.stage2.lock_holding_no_xen_lock().runtime_tables(), tables);
    }

    /// Dom0's stage 2 audited as the board does at shutdown; the model has
    /// no devices, and its hypervisor owns no more than the domain says.
    pub fn audit(&self) -> Result<Summary, Violation> {
        self.audit_of(0)
    }

    /// Frames free, plus those the hypervisor holds for the domains (their
    /// grant tables), less those Dom0 ballooned out: constant for a
    /// machine's life.
    pub fn frames_accounted(&self) -> u64 {
        let held: u64 = self.domains().map(|d| d.xen.grants.lock().frame_addresses().count() as u64).sum();
        let ballooned = self.domain.xen.ballooned.load(Ordering::Acquire);
        // A released DomU's RAM came back to the allocator, from outside it.
        let released: u64 = self
            .released
            .lock()
            .unwrap()
            .iter()
            .map(|&(d, _)| self.dom(d).ram.iter().map(|r| r.size() / 4096).sum::<u64>())
            .sum();
        self.board.free_frames() + held - ballooned - released
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

/// A struct of `size` bytes with `(offset, value, width)` fields,
/// little-endian, the rest zero.
pub fn le(fields: &[(usize, u64, usize)], size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    for &(at, value, width) in fields {
        b[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
    }
    b
}

/// Arguments x0..x4 from up to five values.
pub fn args(values: &[u64]) -> [u64; 5] {
    let mut a = [0; 5];
    a[..values.len()].copy_from_slice(values);
    a
}

/// Fields of a struct the hypervisor wrote, read by their offsets in the
/// public headers: a check of the layouts independent of `xen::public`.
pub fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

pub fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}
