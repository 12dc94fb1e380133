//! The hypercall layer as a hostile Dom0 sees it: random sequences of
//! hypercalls on the model machine (`xen::testing`), with numbers and
//! sub-ops biased toward the implemented ones, structs written in guest
//! memory from fields of the right shape holding random and boundary
//! values (ports, grant refs, domids, counts, frames in RAM, devices, the
//! grant region, the hypervisor's memory and beyond), and sometimes random
//! pointers or bytes instead. Dom0 also fills in grant entries between
//! calls, so maps reach deep. Checked on every call: no panic, the call
//! ends, x0 is 0, a value the call documents, or a Xen errno, grant
//! statuses are GNTST codes, no frame is lost and every pinned frame is
//! still Dom0's; after every sequence, the stage 2 passes the audit the
//! board runs at shutdown, and each page of Dom0's RAM is mapped or
//! ballooned out. Half the machines have a DomU beside Dom0 (RAM not 1:1),
//! which grants Dom0 pages and offers it event channels, so Dom0's grant
//! maps, foreign maps and interdomain binds reach it; its frames stay
//! accounted, its pinned pages its own, and its stage 2 passes its audit.
//! Sometimes the DomU ends in the middle of a sequence: what Dom0 maps of
//! it is never free memory, and no frame is lost when it is released.

use super::{Rng, mutate, run};
use crate::mm::frames::FRAME_SIZE as PAGE;
use crate::xen::Errno;
use crate::xen::errno::*;
use crate::xen::events::{self, NR_PORTS, NR_VIRQS};
use crate::xen::grant::{self, ENTRIES_PER_FRAME, gtf, map, status};
use crate::xen::memory::{self, space};
use crate::xen::testing::{
    DOMU, DOMU_GRANT_REGION, DOMU_RAM, GRANT_REGION, HYPERVISOR_FREE, Machine, RAM, SCRATCH, args, le,
};
use crate::xen::{DOMID_SELF, Outcome, hvm, nr, platform, sched, vcpu, version};

/// Where Dom0 puts the structs and arrays it passes: its last pages, so a
/// huge count runs off its RAM soon rather than through all of it.
const STRUCTS: u64 = RAM.end - 0x4000;
const ARRAYS: [u64; 3] = [RAM.end - 0x3000, RAM.end - 0x2000, RAM.end - 0x1000];
/// Pages ballooned, granted and registered most: few, so calls meet.
const HOT_PAGES: u64 = 16;
const ERRNOS: [Errno; 16] = [
    EPERM, ENOENT, ESRCH, ENXIO, E2BIG, ENOMEM, EACCES, EFAULT, EBUSY, EEXIST, EINVAL, ENOSPC, EDOM, ENOSYS, EILSEQ,
    EOPNOTSUPP,
];
const GNTST: [i16; 9] = [
    status::OKAY,
    status::GENERAL_ERROR,
    status::BAD_DOMAIN,
    status::BAD_GNTREF,
    status::BAD_HANDLE,
    status::BAD_VIRT_ADDR,
    status::BAD_DEV_ADDR,
    status::BAD_PAGE,
    status::NO_SPACE,
];

/// What a struct field holds, for picking values of the right shape.
#[derive(Clone, Copy)]
enum Field {
    Domid,
    Port,
    Vcpu,
    Virq,
    Gref,
    Gfn,
    /// A guest address: mostly page aligned, anywhere interesting.
    Address,
    /// Where a grant is to be mapped: mostly free IPA space.
    HostAddress,
    /// The domain a grant is for or from: mostly Dom0 itself, by number.
    Grantee,
    /// A pointer to one of Dom0's arrays, holding values of the inner field.
    Array(usize, &'static Field),
    Count,
    Order,
    MemFlags,
    Space,
    Index,
    MapFlags,
    Handle,
    InfoOffset,
    HvmParam,
    PlatformCmd,
    PlatformVersion,
    Small,
    Any,
}

/// A struct: its size and its fields (offset, width, shape).
type Shape = (usize, &'static [(usize, usize, Field)]);

const XEN_MEMORY_RESERVATION: Shape = (
    32,
    &[
        (0, 8, Field::Array(0, &Field::Gfn)),
        (8, 8, Field::Count),
        (16, 4, Field::Order),
        (20, 4, Field::MemFlags),
        (24, 2, Field::Domid),
    ],
);
const XEN_MEMORY_DOMAIN: Shape = (2, &[(0, 2, Field::Domid)]);
const XEN_ADD_TO_PHYSMAP: Shape = (
    24,
    &[(0, 2, Field::Domid), (2, 2, Field::Small), (4, 4, Field::Space), (8, 8, Field::Index), (16, 8, Field::Gfn)],
);
const XEN_REMOVE_FROM_PHYSMAP: Shape = (16, &[(0, 2, Field::Domid), (8, 8, Field::Gfn)]);
const XEN_ADD_TO_PHYSMAP_BATCH: Shape = (
    32,
    &[
        (0, 2, Field::Domid),
        (2, 2, Field::Space),
        (4, 2, Field::Count),
        (6, 2, Field::Domid),
        (8, 8, Field::Array(0, &Field::Index)),
        (16, 8, Field::Array(1, &Field::Gfn)),
        (24, 8, Field::Array(2, &Field::Any)),
    ],
);
const GNTTAB_MAP_GRANT_REF: Shape =
    (32, &[(0, 8, Field::HostAddress), (8, 4, Field::MapFlags), (12, 4, Field::Gref), (16, 2, Field::Grantee)]);
const GNTTAB_UNMAP_GRANT_REF: Shape =
    (24, &[(0, 8, Field::HostAddress), (8, 8, Field::Address), (16, 4, Field::Handle)]);
const EVTCHN_PORT: Shape = (4, &[(0, 4, Field::Port)]);
/// With a settime64 in its union.
const XEN_PLATFORM_OP: Shape = (
    136,
    &[
        (0, 4, Field::PlatformCmd),
        (4, 4, Field::PlatformVersion),
        (8, 8, Field::Any),
        (16, 4, Field::Any),
        (20, 4, Field::Small),
        (24, 8, Field::Any),
    ],
);

fn event_shape(cmd: u32) -> Shape {
    use events::op::*;
    match cmd {
        ALLOC_UNBOUND => (8, &[(0, 2, Field::Domid), (2, 2, Field::Domid)]),
        BIND_INTERDOMAIN => (12, &[(0, 2, Field::Domid), (4, 4, Field::Port)]),
        BIND_VIRQ => (12, &[(0, 4, Field::Virq), (4, 4, Field::Vcpu)]),
        BIND_IPI => (8, &[(0, 4, Field::Vcpu)]),
        BIND_VCPU => (8, &[(0, 4, Field::Port), (4, 4, Field::Vcpu)]),
        STATUS => (24, &[(0, 2, Field::Domid), (4, 4, Field::Port)]),
        RESET | RESET_CONT => XEN_MEMORY_DOMAIN,
        BIND_PIRQ => (12, &[(0, 4, Field::Small)]),
        CLOSE | SEND | UNMASK => EVTCHN_PORT,
        _ => (16, &[(0, 8, Field::Any), (8, 8, Field::Any)]),
    }
}

/// What x0 may be when a call succeeds with a positive value.
#[derive(Debug, Clone, Copy)]
enum Positive {
    Never,
    Exactly(i64),
    AtMost(i64),
}

/// Dom0's side of a sequence: what it learnt from earlier calls.
struct Dom0<'m> {
    m: &'m Machine,
    /// Grant entries it filled in.
    granted: Vec<u32>,
    /// Grant mappings that succeeded: (host address, handle).
    mapped: Vec<(u64, u32)>,
}

impl Dom0<'_> {
    fn address(&self, rng: &mut Rng) -> u64 {
        let page = |base: u64, pages: u64, rng: &mut Rng| base + rng.below(pages) * PAGE;
        match rng.below(16) {
            0..=4 => page(RAM.start, HOT_PAGES, rng),
            5 => page(RAM.start, RAM.size() / PAGE, rng),
            6 => page(RAM.start, HOT_PAGES, rng) + rng.below(PAGE),
            7 | 8 => page(GRANT_REGION.start, GRANT_REGION.size() / PAGE + 2, rng),
            9 | 10 => page(SCRATCH, HOT_PAGES, rng),
            11 => page(HYPERVISOR_FREE.start, HYPERVISOR_FREE.size() / PAGE, rng),
            12 if rng.chance(2) => page(0x900_0000, 16, rng),
            // The DomU's pages, for foreign maps.
            12 => page(DOMU_RAM.start, HOT_PAGES, rng),
            13 => rng.pick(&[STRUCTS, ARRAYS[0], RAM.end - 8]),
            14 => rng.pick(&[0, RAM.start - PAGE, RAM.end, 1 << 40, (1 << 40) - PAGE, 1 << 48, !0xfff, u64::MAX]),
            _ => rng.next(),
        }
    }

    fn value(&self, rng: &mut Rng, field: Field) -> u64 {
        let vcpus = self.m.domain.xen.vcpus.len() as u64;
        // Drawn first: an edge list's one random member.
        let any = rng.next();
        match field {
            Field::Domid => rng.pick(&[DOMID_SELF, DOMID_SELF, 0, 0, 1, 0x7ff1, 0x7fef, 0xffff, any as u16]).into(),
            Field::Port => match rng.below(4) {
                0 | 1 => rng.below(10),
                2 => rng.pick(&[NR_PORTS - 1, NR_PORTS, 64, u32::MAX]).into(),
                _ => rng.next() as u32 as u64,
            },
            Field::Vcpu => {
                if rng.chance(8) {
                    rng.pick(&[u32::MAX, 64, any as u32]).into()
                } else {
                    rng.below(vcpus + 1)
                }
            }
            Field::Virq => {
                if rng.chance(8) {
                    rng.next() as u32 as u64
                } else {
                    rng.below(NR_VIRQS as u64 + 2)
                }
            }
            Field::Gref => match rng.below(4) {
                0 | 1 if !self.granted.is_empty() => rng.pick(&self.granted).into(),
                0 | 1 => rng.below(16),
                2 => {
                    let edges = [511, 512, 1023, 1024, 64 * ENTRIES_PER_FRAME - 1, 64 * ENTRIES_PER_FRAME, u32::MAX];
                    rng.pick(&edges).into()
                }
                _ => rng.below(u64::from(64 * ENTRIES_PER_FRAME)),
            },
            Field::Gfn => {
                if rng.chance(16) {
                    rng.pick(&[u64::MAX, u64::MAX >> 12, 1 << 52, any])
                } else {
                    self.address(rng) >> 12
                }
            }
            Field::Address | Field::Array(..) => self.address(rng),
            Field::HostAddress => {
                if rng.chance(2) {
                    SCRATCH + rng.below(HOT_PAGES) * PAGE
                } else {
                    self.address(rng)
                }
            }
            Field::Grantee => {
                if rng.chance(8) {
                    self.value(rng, Field::Domid)
                } else {
                    0
                }
            }
            Field::Count => match rng.below(8) {
                0..=4 => rng.below(5),
                5 => rng.pick(&[63, 64, 65, 129, 512, 513]),
                6 => rng.pick(&[0x7fff_ffff, 0x8000_0000, 0xffff_ffff, u64::from(u32::MAX >> 6) + 1]),
                _ => rng.next(),
            },
            Field::Order => rng.pick(&[0, 0, 0, 0, 1, 9, 10, u64::from(u32::MAX), any % 64]),
            Field::MemFlags => rng.pick(&[0, 0, 0, 1 << 16, any as u32 as u64]),
            Field::Space => {
                let spaces = [space::SHARED_INFO, space::GRANT_TABLE, space::GRANT_TABLE, space::GMFN_RANGE];
                let more = [space::GMFN_FOREIGN, space::DEV_MMIO, 2, any as u16];
                let from = if rng.chance(2) { spaces } else { more };
                rng.pick(&from).into()
            }
            Field::Index => rng.pick(&[0, 1, 2, 3, any % 64, 63, 64, 1 << 31, u64::MAX, any]),
            Field::MapFlags => rng
                .pick(&[
                    map::HOST_MAP,
                    map::HOST_MAP,
                    map::HOST_MAP,
                    map::HOST_MAP | map::READONLY,
                    map::HOST_MAP | map::READONLY,
                    0,
                    map::DEVICE_MAP,
                    map::HOST_MAP | map::APPLICATION_MAP,
                    map::HOST_MAP | map::CONTAINS_PTE,
                    any as u32,
                ])
                .into(),
            Field::Handle => match self.mapped.len() {
                n if n > 0 && !rng.chance(4) => self.mapped[rng.below(n as u64) as usize].1.into(),
                _ => rng.pick(&[0, 1, 9999, u32::MAX, any as u32]).into(),
            },
            Field::InfoOffset => {
                rng.pick(&[0, 0x40, 0x80, 4096 - 48, 4096 - 40, 4096, 8 * (any % 512), any as u32 as u64])
            }
            Field::HvmParam => rng.pick(&[0, 1, 2, 17, 18, 28, 3, 39, any as u32]).into(),
            Field::PlatformCmd => {
                rng.pick(&[platform::XENPF_SETTIME64, platform::XENPF_SETTIME64, 1, any as u32]).into()
            }
            Field::PlatformVersion => {
                rng.pick(&[platform::XENPF_INTERFACE_VERSION, platform::XENPF_INTERFACE_VERSION, 0, any as u32]).into()
            }
            Field::Small => rng.below(8),
            Field::Any => rng.next(),
        }
    }

    /// Writes `count` structs of `shape` at `at` as Dom0 would (through its
    /// stage 2, so not into pages it gave away), sometimes with random
    /// bytes instead of values or mutated after; fills the arrays their
    /// pointers name. Returns the pointer to pass: `at`, or now and then
    /// any address.
    fn write_structs(&self, rng: &mut Rng, at: u64, shape: Shape, count: u64) -> u64 {
        let (size, fields) = shape;
        for i in 0..count.min(8) {
            let mut values = Vec::new();
            for &(offset, width, field) in fields {
                let value = match field {
                    Field::Array(slot, element) if !rng.chance(8) => {
                        self.write_array(rng, ARRAYS[slot], *element);
                        ARRAYS[slot]
                    }
                    _ => self.value(rng, field),
                };
                values.push((offset, value, width));
            }
            let mut bytes =
                if rng.chance(16) { (0..size).map(|_| rng.next() as u8).collect() } else { le(&values, size) };
            if rng.chance(16) {
                mutate(rng, &mut bytes);
                bytes.resize(size, 0);
            }
            self.guest_write(at + i * size as u64, &bytes);
        }
        if rng.chance(12) { self.address(rng) } else { at }
    }

    fn write_array(&self, rng: &mut Rng, at: u64, element: Field) {
        let values: Vec<u8> = (0..1 + rng.below(8)).flat_map(|_| self.value(rng, element).to_le_bytes()).collect();
        self.guest_write(at, &values);
    }

    fn guest_write(&self, at: u64, bytes: &[u8]) {
        use crate::xen::GuestMemory;
        // Refused where Dom0 has no writable page: then it cannot write there.
        let _ = self.m.guest().write(at, bytes);
    }

    /// Dom0 fills in a grant entry, mostly granting itself a hot page.
    fn grant_something(&mut self, rng: &mut Rng) {
        let gref = self.value(rng, Field::Gref) as u32;
        let any = rng.next() as u16;
        let permit = gtf::PERMIT_ACCESS;
        let flags = rng.pick(&[permit, permit, permit, permit | gtf::READONLY, permit | gtf::READONLY, 0, 2, any]);
        let domid = self.value(rng, Field::Grantee) as u16;
        let frame = if rng.chance(4) { self.address(rng) } else { RAM.start + rng.below(HOT_PAGES) * PAGE };
        if self.m.write_grant(gref, flags, domid, frame) {
            self.granted.push(gref);
        }
    }
}

/// One hypercall, as Dom0 makes it, and what may come back.
#[derive(Debug)]
struct Hypercall {
    vcpu: usize,
    number: u64,
    args: [u64; 5],
    positive: Positive,
    /// Grant operations whose status fields to check: (first, count, size).
    grant_ops: Option<(u64, u64, u64)>,
}

impl Hypercall {
    fn new(number: u64, args: [u64; 5]) -> Self {
        Self { vcpu: 0, number, args, positive: Positive::Never, grant_ops: None }
    }

    fn returning(self, positive: Positive) -> Self {
        Self { positive, ..self }
    }
}

/// Now and then a sub-op nobody implements.
fn unknown_op(rng: &mut Rng) -> bool {
    rng.chance(16)
}

fn hypercall(rng: &mut Rng, d: &Dom0<'_>) -> Hypercall {
    let numbers = [
        nr::MEMORY_OP,
        nr::MEMORY_OP,
        nr::GRANT_TABLE_OP,
        nr::GRANT_TABLE_OP,
        nr::GRANT_TABLE_OP,
        nr::EVENT_CHANNEL_OP,
        nr::EVENT_CHANNEL_OP,
        nr::VCPU_OP,
        nr::XEN_VERSION,
        nr::CONSOLE_IO,
        nr::HVM_OP,
        nr::SCHED_OP,
        nr::PLATFORM_OP,
        nr::PHYSDEV_OP,
        nr::VM_ASSIST,
    ];
    let any = rng.next();
    let number = if rng.chance(16) { rng.pick(&[any % 64, any]) } else { rng.pick(&numbers) };
    let cmd = |rng: &mut Rng, known: &[u32]| if unknown_op(rng) { rng.next() as u32 } else { rng.pick(known) };
    let at = |rng: &mut Rng, shape: Shape| d.write_structs(rng, STRUCTS, shape, 1);
    let call = match number {
        nr::MEMORY_OP => memory_op(rng, d),
        nr::GRANT_TABLE_OP => grant_table_op(rng, d),
        nr::EVENT_CHANNEL_OP => {
            use events::op::*;
            let known = [
                ALLOC_UNBOUND,
                BIND_INTERDOMAIN,
                BIND_VIRQ,
                BIND_IPI,
                BIND_VCPU,
                CLOSE,
                SEND,
                STATUS,
                UNMASK,
                RESET,
                BIND_PIRQ,
                INIT_CONTROL,
            ];
            let cmd = cmd(rng, &known);
            Hypercall::new(number, [cmd.into(), at(rng, event_shape(cmd)), 0, 0, 0])
        }
        nr::VCPU_OP => {
            use vcpu::op::*;
            let cmd = cmd(rng, &[REGISTER_VCPU_INFO, REGISTER_RUNSTATE_MEMORY_AREA]);
            let shape: Shape = match cmd {
                REGISTER_VCPU_INFO => (16, &[(0, 8, Field::Gfn), (8, 4, Field::InfoOffset)]),
                _ => (8, &[(0, 8, Field::Address)]),
            };
            Hypercall::new(number, [cmd.into(), d.value(rng, Field::Vcpu), at(rng, shape), 0, 0])
        }
        nr::XEN_VERSION => {
            use version::*;
            let known = [
                XENVER_VERSION,
                XENVER_EXTRAVERSION,
                XENVER_CAPABILITIES,
                XENVER_CHANGESET,
                XENVER_GET_FEATURES,
                XENVER_PAGESIZE,
            ];
            let cmd = if unknown_op(rng) { rng.next() } else { rng.pick(&known) };
            let call = Hypercall::new(number, [cmd, at(rng, (8, &[(0, 4, Field::Small)])), 0, 0, 0]);
            call.returning(match cmd {
                XENVER_VERSION => Positive::Exactly(i64::from((MAJOR << 16) | MINOR)),
                XENVER_PAGESIZE => Positive::Exactly(PAGE as i64),
                _ => Positive::Never,
            })
        }
        nr::CONSOLE_IO => {
            use crate::xen::console::*;
            let cmd = cmd(rng, &[CONSOLEIO_WRITE, CONSOLEIO_READ]);
            let count = if rng.chance(4) { d.value(rng, Field::Count) } else { rng.below(200) };
            // Long buffers sit at the end of RAM, so a huge count faults soon.
            let buffer = if count > 4096 || !rng.chance(4) { STRUCTS } else { d.address(rng) };
            // Some typing on the console meanwhile.
            d.m.board.input.lock().unwrap().extend((0..rng.below(4)).map(|_| rng.next() as u8));
            let call = Hypercall::new(number, [cmd.into(), count, buffer, 0, 0]);
            if cmd == CONSOLEIO_READ { call.returning(Positive::AtMost((count as u32).min(512).into())) } else { call }
        }
        nr::HVM_OP => {
            let op = if unknown_op(rng) { rng.next() } else { rng.pick(&[hvm::HVMOP_GET_PARAM, hvm::HVMOP_SET_PARAM]) };
            Hypercall::new(number, [op, at(rng, (16, &[(0, 2, Field::Domid), (4, 4, Field::HvmParam)])), 0, 0, 0])
        }
        nr::SCHED_OP => {
            use sched::op::*;
            let cmd = cmd(rng, &[YIELD, BLOCK, SHUTDOWN, REMOTE_SHUTDOWN, SHUTDOWN_CODE]);
            let shape: Shape = match cmd {
                REMOTE_SHUTDOWN => (8, &[(0, 2, Field::Domid), (4, 4, Field::Small)]),
                _ => (4, &[(0, 4, Field::Small)]),
            };
            Hypercall::new(number, [cmd.into(), at(rng, shape), 0, 0, 0])
        }
        nr::PLATFORM_OP => Hypercall::new(number, [at(rng, XEN_PLATFORM_OP), 0, 0, 0, 0]),
        nr::VM_ASSIST => {
            let kind = rng.pick(&[vcpu::VMASST_TYPE_RUNSTATE_UPDATE_FLAG.into(), any % 64, any]);
            Hypercall::new(number, [rng.below(3), kind, 0, 0, 0])
        }
        _ => Hypercall::new(number, [rng.next(), d.address(rng), rng.next(), rng.next(), rng.next()]),
    };
    Hypercall { vcpu: rng.below(d.m.domain.xen.vcpus.len() as u64) as usize, ..call }
}

fn memory_op(rng: &mut Rng, d: &Dom0<'_>) -> Hypercall {
    use memory::op::*;
    let known = [
        DECREASE_RESERVATION,
        POPULATE_PHYSMAP,
        INCREASE_RESERVATION,
        ADD_TO_PHYSMAP,
        ADD_TO_PHYSMAP,
        REMOVE_FROM_PHYSMAP,
        ADD_TO_PHYSMAP_BATCH,
        CURRENT_RESERVATION,
        MAXIMUM_RESERVATION,
        MAXIMUM_GPFN,
    ];
    let op = if unknown_op(rng) { rng.below(64) } else { rng.pick(&known) };
    // Where a continued call resumes, as the command's high bits carry it.
    let start = if rng.chance(8) { d.value(rng, Field::Count) & (u64::MAX >> 6) } else { 0 };
    let shape = match op {
        INCREASE_RESERVATION | DECREASE_RESERVATION | POPULATE_PHYSMAP => XEN_MEMORY_RESERVATION,
        ADD_TO_PHYSMAP => XEN_ADD_TO_PHYSMAP,
        REMOVE_FROM_PHYSMAP => XEN_REMOVE_FROM_PHYSMAP,
        ADD_TO_PHYSMAP_BATCH => XEN_ADD_TO_PHYSMAP_BATCH,
        _ => XEN_MEMORY_DOMAIN,
    };
    let call = Hypercall::new(nr::MEMORY_OP, [op | start << 6, d.write_structs(rng, STRUCTS, shape, 1), 0, 0, 0]);
    call.returning(match op {
        // Extents done: at most the count (which is below 2^26), or where it started.
        INCREASE_RESERVATION | DECREASE_RESERVATION | POPULATE_PHYSMAP => {
            Positive::AtMost((start as i64).max(i64::from(u32::MAX >> 6)))
        }
        CURRENT_RESERVATION | MAXIMUM_RESERVATION => Positive::AtMost((RAM.size() / PAGE) as i64),
        MAXIMUM_GPFN => Positive::Exactly((RAM.end / PAGE) as i64 - 1),
        _ => Positive::Never,
    })
}

fn grant_table_op(rng: &mut Rng, d: &Dom0<'_>) -> Hypercall {
    use grant::op::*;
    let known = [
        MAP_GRANT_REF,
        MAP_GRANT_REF,
        UNMAP_GRANT_REF,
        UNMAP_GRANT_REF,
        QUERY_SIZE,
        SET_VERSION,
        GET_VERSION,
        CACHE_FLUSH,
    ];
    let cmd = if unknown_op(rng) { rng.next() as u32 } else { rng.pick(&known) };
    let count = if rng.chance(4) { d.value(rng, Field::Count) } else { 1 + rng.below(3) };
    let shape: Shape = match cmd {
        MAP_GRANT_REF => GNTTAB_MAP_GRANT_REF,
        UNMAP_GRANT_REF => GNTTAB_UNMAP_GRANT_REF,
        SET_VERSION => (4, &[(0, 4, Field::Small)]),
        QUERY_SIZE | GET_VERSION => (16, &[(0, 2, Field::Domid)]),
        _ => (16, &[(0, 8, Field::Any)]),
    };
    let mut uop = d.write_structs(rng, STRUCTS, shape, count);
    if count > 64 && uop != STRUCTS {
        // A long batch from anywhere would walk all of RAM: start it near the end.
        uop = RAM.end - rng.below(64) * shape.0 as u64;
    }
    if cmd == UNMAP_GRANT_REF && uop == STRUCTS && !d.mapped.is_empty() && !rng.chance(4) {
        // Unmap what is mapped, by its own address and handle.
        let (host_addr, handle) = d.mapped[rng.below(d.mapped.len() as u64) as usize];
        d.guest_write(STRUCTS, &le(&[(0, host_addr, 8), (16, handle.into(), 4)], 24));
    }
    let mut call = Hypercall::new(nr::GRANT_TABLE_OP, [cmd.into(), uop, count, 0, 0]);
    if (cmd == MAP_GRANT_REF || cmd == UNMAP_GRANT_REF) && uop == STRUCTS && count <= 8 {
        call.grant_ops = Some((uop, count, shape.0 as u64));
    }
    call
}

/// Checks one call's outcome; false when the machine would stop.
fn check(d: &mut Dom0<'_>, call: &Hypercall, outcome: Outcome) -> bool {
    let value = match outcome {
        Outcome::Return(value) => value,
        Outcome::Shutdown(_) => {
            use sched::op::*;
            let asked = call.number == nr::SCHED_OP && matches!(call.args[0] as u32, SHUTDOWN | REMOTE_SHUTDOWN);
            assert!(asked, "{call:?} shut the machine down");
            return false;
        }
        Outcome::Continue(_) => unreachable!("call_counting runs calls to the end"),
    };
    match call.positive {
        _ if value < 0 => assert!(ERRNOS.iter().any(|&e| -e == value), "{call:?} returned {value}, no Xen errno"),
        _ if value == 0 => {}
        Positive::Exactly(expected) => assert_eq!(value, expected, "{call:?}"),
        Positive::AtMost(bound) => assert!(value <= bound, "{call:?} returned {value}, above {bound}"),
        Positive::Never => panic!("{call:?} returned {value}"),
    }
    if let (Some((first, count, size)), 0) = (call.grant_ops, value) {
        use crate::xen::public::{GnttabMapGrantRef, GnttabUnmapGrantRef};
        use zerocopy::FromBytes;
        let is_map = call.args[0] == u64::from(grant::op::MAP_GRANT_REF);
        for i in 0..count {
            let op = d.m.board.get(first + i * size, size as usize);
            // The status the hypervisor wrote, and the handle.
            let (status, host_addr, handle) = if is_map {
                let op = GnttabMapGrantRef::read_from_bytes(&op).expect("a map op");
                (op.status, op.host_addr, op.handle)
            } else {
                let op = GnttabUnmapGrantRef::read_from_bytes(&op).expect("an unmap op");
                (op.status, op.host_addr, op.handle)
            };
            assert!(GNTST.contains(&status), "{call:?}: op {i} status {status}");
            match status {
                status::OKAY if is_map => d.mapped.push((host_addr, handle)),
                status::OKAY => d.mapped.retain(|&(_, h)| h != handle),
                _ => {}
            }
        }
    }
    true
}

/// Most sequences start where Linux is after boot: some grant-table frames
/// in place, shared_info registered, so calls reach deep.
fn linux_boot(rng: &mut Rng, m: &Machine) {
    use memory::op::ADD_TO_PHYSMAP;
    let add = |space: u16, idx: u64, gfn: u64| {
        let arg = le(&[(0, DOMID_SELF.into(), 2), (4, space.into(), 4), (8, idx, 8), (16, gfn, 8)], 24);
        m.board.put(STRUCTS, &arg);
        assert_eq!(m.call(nr::MEMORY_OP, args(&[ADD_TO_PHYSMAP, STRUCTS])), 0);
    };
    // Linux places the highest frame first.
    for idx in (0..rng.below(5)).rev() {
        add(space::GRANT_TABLE, idx, (GRANT_REGION.start >> 12) + idx);
    }
    if rng.chance(2) {
        add(space::SHARED_INFO, 0, (RAM.start >> 12) + rng.below(HOT_PAGES));
    }
}

/// Frames the hypervisor writes or a grant maps (pinned) are still the
/// guest's own pages, never handed back to the allocator; a DomU's pages
/// pinned by Dom0's grant and foreign maps too.
fn assert_pinned_frames_are_the_guests(m: &Machine, call: &Hypercall) {
    let stage2 = m.domain.stage2.lock_holding_no_xen_lock();
    for page in stage2.pinned_pages() {
        assert!(m.domain.view().has_page(&stage2, page), "pinned page {:#x} left the guest after {call:?}", page.0);
    }
    if let Some(domu) = &m.domu {
        let stage2 = domu.stage2.lock_holding_no_xen_lock();
        for page in stage2.pinned_pages() {
            let own = domu.view().own_frame(&stage2, page).is_some();
            assert!(own, "the DomU's pinned page {:#x} left it after {call:?}", page.0);
        }
    }
}

/// Whatever Dom0's stage 2 maps of another domain's (a grant or foreign
/// map) is not free memory: a dead DomU's frames stay its own until Dom0
/// lets go of the last.
fn assert_mapped_frames_are_not_free(m: &Machine, call: &Hypercall) {
    let stage2 = m.domain.stage2.lock_holding_no_xen_lock();
    for leaf in stage2.leaves().iter().filter(|l| matches!(l.kind, crate::mm::stage2::Kind::Granted { .. })) {
        let frames = leaf.frames();
        for pa in (frames.start..frames.end).step_by(PAGE as usize) {
            assert!(!m.board.is_free(pa), "frame {pa:#x}, mapped by Dom0, is free after {call:?}");
        }
    }
}

/// The DomU as Linux would have it when Dom0 comes to it: its grant frame
/// in place, maybe shared_info, and a few ports offered to Dom0.
fn domu_boot(rng: &mut Rng, m: &Machine) {
    use memory::op::ADD_TO_PHYSMAP;
    let at = DOMU_RAM.end - 0x1000;
    let add = |space: u16, gfn: u64| {
        m.put_in(DOMU, at, &le(&[(0, DOMID_SELF.into(), 2), (4, space.into(), 4), (16, gfn, 8)], 24));
        assert_eq!(m.call_as(DOMU, nr::MEMORY_OP, args(&[ADD_TO_PHYSMAP, at])), 0);
    };
    add(space::GRANT_TABLE, DOMU_GRANT_REGION.start >> 12);
    if rng.chance(2) {
        add(space::SHARED_INFO, (DOMU_RAM.start >> 12) + HOT_PAGES);
    }
    for _ in 0..rng.below(4) {
        let remote = rng.pick(&[0, 0, DOMID_SELF, 5]);
        m.put_in(DOMU, at, &le(&[(0, DOMID_SELF.into(), 2), (2, remote.into(), 2)], 8));
        let op = u64::from(events::op::ALLOC_UNBOUND);
        assert_eq!(m.call_as(DOMU, nr::EVENT_CHANNEL_OP, args(&[op, at])), 0);
    }
}

/// The DomU fills in one of its grant entries, mostly granting Dom0 one
/// of its hot pages.
fn domu_grant(rng: &mut Rng, m: &Machine) {
    let gref = rng.below(16);
    let permit = gtf::PERMIT_ACCESS;
    let any = rng.next() as u16;
    let flags = rng.pick(&[permit, permit, permit | gtf::READONLY, 0, any]);
    let domid = rng.pick(&[0, 0, 0, DOMU, 5]);
    let page = if rng.chance(8) { rng.next() & !0xfff } else { DOMU_RAM.start + rng.below(HOT_PAGES) * PAGE };
    let entry = u64::from(flags) | u64::from(domid) << 16 | ((page >> 12) & 0xffff_ffff) << 32;
    m.board.set_u64(m.pa_in(DOMU, DOMU_GRANT_REGION.start + gref * 8), entry);
}

#[test]
fn fuzz_hypercalls() {
    let mut calls = 0u64;
    // Sequences in which Dom0 mapped a DomU frame (a grant or foreign map).
    let mut reached_domu = 0u64;
    // DomU ends, and DomUs released.
    let (mut ended, mut released) = (0u64, 0u64);
    run("hypercalls", |rng| {
        let vcpus = 1 + rng.below(4) as usize;
        let m = if rng.chance(2) { Machine::with_domu(vcpus) } else { Machine::new(vcpus) };
        if m.domu.is_some() {
            domu_boot(rng, &m);
        }
        if rng.chance(2) {
            // As the board builds Dom0: every grant-table frame taken up front.
            m.domain.xen.grants.lock().reserve_frames(&m.board).unwrap();
        }
        if !rng.chance(4) {
            linux_boot(rng, &m);
        }
        if rng.chance(64) {
            // A Dom0 that spent (almost) all its stage-2 tables.
            m.spend_tables(crate::mm::stage2::TABLE_BUDGET - rng.below(16) as usize);
        }
        let accounted = m.frames_accounted();
        let mut d = Dom0 { m: &m, granted: Vec::new(), mapped: Vec::new() };
        let mut reached = false;
        for _ in 0..1 + rng.below(48) {
            if rng.chance(2) {
                d.grant_something(rng);
            }
            if m.domu.is_some() && !m.is_released(DOMU) && rng.chance(3) {
                domu_grant(rng, &m);
            }
            if m.domu.is_some() && rng.chance(32) {
                // The DomU ends, as its shutdown does on the board (again:
                // a no-op); it is released once Dom0 maps nothing of it.
                m.end(DOMU);
                ended += 1;
            }
            let call = hypercall(rng, &d);
            let outcome = m.call_counting(call.vcpu, call.number, call.args).0;
            calls += 1;
            m.board.console.lock().unwrap().clear();
            let running = check(&mut d, &call, outcome);
            assert_eq!(m.frames_accounted(), accounted, "a frame lost or made up by {call:?}");
            assert_pinned_frames_are_the_guests(&m, &call);
            assert_mapped_frames_are_not_free(&m, &call);
            reached |=
                m.domu.as_ref().is_some_and(|u| u.stage2.lock_holding_no_xen_lock().pinned_pages().next().is_some());
            if !running {
                break;
            }
        }
        let audit = m.audit().unwrap_or_else(|violation| panic!("stage 2 after the sequence: {violation}"));
        let ballooned = m.domain.xen.ballooned.load(std::sync::atomic::Ordering::Acquire);
        assert_eq!(audit.ram_bytes / PAGE + ballooned, RAM.size() / PAGE, "every RAM page mapped or ballooned out");
        reached_domu += u64::from(reached);
        released += u64::from(m.is_released(DOMU));
        if m.domu.is_some() && !m.is_released(DOMU) {
            let audit = m.audit_of(DOMU).unwrap_or_else(|violation| panic!("the DomU's stage 2: {violation}"));
            assert_eq!(audit.ram_bytes, DOMU_RAM.size(), "every page of the DomU's RAM still mapped");
        }
    });
    println!(
        "fuzz hypercalls: {calls} hypercalls in those sequences, {reached_domu} mapping a DomU frame; {ended} DomU ends, {released} released"
    );
}
