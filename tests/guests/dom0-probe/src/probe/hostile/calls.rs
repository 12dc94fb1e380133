//! Hypercalls with bad arguments, family by family: unknown numbers and
//! sub-ops, pointers to memory that is not Dom0's, other domains, numbers
//! out of range, things registered twice, counts far beyond what a buffer
//! holds, and malformed fields. The answers expected are Xen's (its
//! `common/` and `arch/arm/` sources), except where the README says this
//! hypervisor deliberately differs.

use super::physmap::{batch_of_one, remove_from_physmap};
use super::{Board, Hostile, mmu, scratch_page, shared_info_page, vcpu_info_page};
use crate::probe::abi::*;
use core::ptr::addr_of_mut;

/// The hypercalls that exist; every other number is unknown.
const IMPLEMENTED: [u64; 11] = [
    PLATFORM_OP,
    MEMORY_OP,
    XEN_VERSION,
    CONSOLE_IO,
    GRANT_TABLE_OP,
    VM_ASSIST,
    VCPU_OP,
    SCHED_OP,
    EVENT_CHANNEL_OP,
    PHYSDEV_OP,
    HVM_OP,
];

/// `struct xen_platform_op` with the right interface version.
fn platform_op(cmd: u32, payload: &[u64]) -> i64 {
    const INTERFACE_VERSION: u64 = 0x0300_0001;
    let mut op = [0u64; 17];
    op[0] = u64::from(cmd) | INTERFACE_VERSION << 32;
    op[1..=payload.len()].copy_from_slice(payload);
    with(PLATFORM_OP, &[], &mut op)
}

/// A hypercall with sub-ops: those it implements, the range of commands
/// tried, and what an unknown one gets.
struct Family {
    name: &'static str,
    number: u64,
    implemented: &'static [u64],
    commands: core::ops::Range<u64>,
    unknown: i64,
}

const fn family(
    name: &'static str,
    number: u64,
    implemented: &'static [u64],
    commands: core::ops::Range<u64>,
) -> Family {
    Family { name, number, implemented, commands, unknown: ENOSYS }
}

const FAMILIES: [Family; 9] = [
    family("memory_op", MEMORY_OP, &[0, 1, 3, 4, 6, 7, 14, 15, 23], 0..64),
    family("grant_table_op", GRANT_TABLE_OP, &[0, 1, 6, 8, 10], 0..32),
    family("event_channel_op", EVENT_CHANNEL_OP, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14], 0..32),
    // As on Xen for Arm: unknown vCPU ops are -EINVAL.
    Family { unknown: EINVAL, ..family("vcpu_op", VCPU_OP, &[5, 10], 0..32) },
    family("sched_op", SCHED_OP, &[0, 1, 2, 4, 5], 0..32),
    family("console_io", CONSOLE_IO, &[0, 1], 0..32),
    family("hvm_op", HVM_OP, &[0, 1], 0..64),
    family("xen_version", XEN_VERSION, &[0, 1, 3, 4, 6, 7], 0..32),
    family("physdev_op", PHYSDEV_OP, &[], 0..32),
];

pub fn unknown(h: &mut Hostile<'_>, _board: &Board<'_>) {
    let numbers = (0..64).filter(|n| !IMPLEMENTED.contains(n));
    for number in numbers.chain([64, 1000, 1 << 32 | XEN_VERSION, 1 << 63 | MEMORY_OP, u64::MAX]) {
        h.expect(hypercall(number, [0; 5]), ENOSYS, format_args!("hypercall {number:#x}"));
    }
    // Sub-ops each family does not implement, with a null argument.
    for family in FAMILIES {
        for cmd in family.commands.filter(|c| !family.implemented.contains(c)) {
            // vcpu_op(cmd, vcpu 0, null); the others (cmd, null, count 1).
            let args = if family.number == VCPU_OP { [cmd, 0, 0, 0, 0] } else { [cmd, 0, 1, 0, 0] };
            h.expect(hypercall(family.number, args), family.unknown, format_args!("{} sub-op {cmd}", family.name));
        }
    }
    for cmd in 2..8 {
        h.expect(hypercall(VM_ASSIST, [cmd, 5, 0, 0, 0]), ENOSYS, format_args!("vm_assist command {cmd}"));
    }
    for cmd in (0..70).filter(|&c| c != 62) {
        h.expect(platform_op(cmd, &[]), ENOSYS, format_args!("platform_op command {cmd}"));
    }
    // Bits where a sub-op has none: a grant command's upper bits (only
    // cache_flush takes flags there), a memory_op's continuation.
    h.expect(hypercall(GRANT_TABLE_OP, [1 << 12 | 6, 0, 1, 0, 0]), EINVAL, format_args!("query_size with flags"));
    h.expect(hypercall(MEMORY_OP, [1 << 6 | 3, 0, 0, 0, 0]), EINVAL, format_args!("current_reservation continued"));
    h.expect(
        hypercall(MEMORY_OP, [0x1_0000 << 6 | 7, 0, 0, 0, 0]),
        EDOM,
        format_args!("add_to_physmap from extent 2^16"),
    );
    h.expect(hypercall(MEMORY_OP, [0x1_0000 << 6 | 23, 0, 0, 0, 0]), EDOM, format_args!("batch from extent 2^16"));
}

/// A hypercall whose argument at one place is a pointer.
struct PointerCall {
    name: &'static str,
    number: u64,
    args: fn(u64) -> [u64; 5],
    /// What a bad pointer gets: -EFAULT, or the reservation calls' count of
    /// extents done.
    expected: i64,
    /// Whether the call writes through the pointer before it changes
    /// anything, so that a read-only pointer fails it harmlessly.
    writes_first: bool,
}

const fn call(name: &'static str, number: u64, args: fn(u64) -> [u64; 5], writes_first: bool) -> PointerCall {
    PointerCall { name, number, args, expected: EFAULT, writes_first }
}

/// Every sub-op that takes a pointer. The pointers are never good, so
/// even sched_op shutdown is safe to make.
const POINTER_CALLS: [PointerCall; 39] = [
    call("xen_version extraversion", XEN_VERSION, |p| [1, p, 0, 0, 0], true),
    call("xen_version capabilities", XEN_VERSION, |p| [3, p, 0, 0, 0], true),
    call("xen_version changeset", XEN_VERSION, |p| [4, p, 0, 0, 0], true),
    call("xen_version get_features", XEN_VERSION, |p| [6, p, 0, 0, 0], true),
    PointerCall { expected: 0, ..call("memory_op increase_reservation", MEMORY_OP, |p| [0, p, 0, 0, 0], false) },
    PointerCall { expected: 0, ..call("memory_op decrease_reservation", MEMORY_OP, |p| [1, p, 0, 0, 0], false) },
    PointerCall { expected: 0, ..call("memory_op populate_physmap", MEMORY_OP, |p| [6, p, 0, 0, 0], false) },
    call("memory_op current_reservation", MEMORY_OP, |p| [3, p, 0, 0, 0], false),
    call("memory_op maximum_reservation", MEMORY_OP, |p| [4, p, 0, 0, 0], false),
    call("memory_op maximum_gpfn", MEMORY_OP, |p| [14, p, 0, 0, 0], false),
    call("memory_op add_to_physmap", MEMORY_OP, |p| [7, p, 0, 0, 0], false),
    call("memory_op remove_from_physmap", MEMORY_OP, |p| [15, p, 0, 0, 0], false),
    call("memory_op add_to_physmap_batch", MEMORY_OP, |p| [23, p, 0, 0, 0], false),
    call("vcpu_op register_vcpu_info", VCPU_OP, |p| [10, 0, p, 0, 0], false),
    call("vcpu_op register_runstate_memory_area", VCPU_OP, |p| [5, 0, p, 0, 0], false),
    call("event_channel_op bind_interdomain", EVENT_CHANNEL_OP, |p| [0, p, 0, 0, 0], false),
    call("event_channel_op bind_virq", EVENT_CHANNEL_OP, |p| [1, p, 0, 0, 0], false),
    call("event_channel_op bind_pirq", EVENT_CHANNEL_OP, |p| [2, p, 0, 0, 0], false),
    call("event_channel_op close", EVENT_CHANNEL_OP, |p| [3, p, 0, 0, 0], false),
    call("event_channel_op send", EVENT_CHANNEL_OP, |p| [4, p, 0, 0, 0], false),
    call("event_channel_op status", EVENT_CHANNEL_OP, |p| [5, p, 0, 0, 0], true),
    call("event_channel_op alloc_unbound", EVENT_CHANNEL_OP, |p| [6, p, 0, 0, 0], false),
    call("event_channel_op bind_ipi", EVENT_CHANNEL_OP, |p| [7, p, 0, 0, 0], false),
    call("event_channel_op bind_vcpu", EVENT_CHANNEL_OP, |p| [8, p, 0, 0, 0], false),
    call("event_channel_op unmask", EVENT_CHANNEL_OP, |p| [9, p, 0, 0, 0], false),
    call("event_channel_op reset", EVENT_CHANNEL_OP, |p| [10, p, 0, 0, 0], false),
    call("grant_table_op map_grant_ref", GRANT_TABLE_OP, |p| [0, p, 1, 0, 0], true),
    call("grant_table_op unmap_grant_ref", GRANT_TABLE_OP, |p| [1, p, 1, 0, 0], true),
    call("grant_table_op query_size", GRANT_TABLE_OP, |p| [6, p, 1, 0, 0], true),
    call("grant_table_op set_version", GRANT_TABLE_OP, |p| [8, p, 1, 0, 0], true),
    call("grant_table_op get_version", GRANT_TABLE_OP, |p| [10, p, 1, 0, 0], true),
    call("console_io write", CONSOLE_IO, |p| [0, 16, p, 0, 0], false),
    call("console_io read", CONSOLE_IO, |p| [1, 16, p, 0, 0], true),
    call("sched_op shutdown", SCHED_OP, |p| [2, p, 0, 0, 0], false),
    call("sched_op remote_shutdown", SCHED_OP, |p| [4, p, 0, 0, 0], false),
    call("sched_op shutdown_code", SCHED_OP, |p| [5, p, 0, 0, 0], false),
    call("hvm_op set_param", HVM_OP, |p| [0, p, 0, 0, 0], false),
    call("hvm_op get_param", HVM_OP, |p| [1, p, 0, 0, 0], true),
    call("platform_op", PLATFORM_OP, |p| [p, 0, 0, 0, 0], false),
];

/// Pointers found inside structs: the extent list of a reservation, the
/// arrays of a batch, the runstate area: (what, result, expected).
fn indirect_pointers(bad: u64) -> [(&'static str, i64, i64); 4] {
    let mut reservation = Reservation { extent_start: bad, nr_extents: 1, domid: DOMID_SELF, ..Default::default() };
    let extents = with(MEMORY_OP, &[1], &mut reservation);
    let mut good = [scratch_page() >> 12];
    let mut errs = [0i32];
    let mut batch = AddToPhysmapBatch {
        domid: DOMID_SELF,
        space: space::GMFN_FOREIGN as u16,
        size: 1,
        foreign_domid: 1,
        idxs: bad,
        gpfns: good.as_mut_ptr() as u64,
        errs: errs.as_mut_ptr() as u64,
    };
    let idxs = with(MEMORY_OP, &[23], &mut batch);
    batch.idxs = good.as_mut_ptr() as u64;
    batch.errs = bad;
    let errs = with(MEMORY_OP, &[23], &mut batch);
    let mut area = [bad];
    let runstate = with(VCPU_OP, &[5, 0], &mut area);
    // Xen 4.17 takes any runstate address and writes there when it can;
    // here it must be 8-byte aligned RAM of Dom0's.
    let runstate_expected = if bad.is_multiple_of(8) { EFAULT } else { EINVAL };
    [
        ("a reservation's extent list", extents, 0),
        ("a batch's idxs", idxs, EFAULT),
        ("a batch's errs", errs, EFAULT),
        ("a runstate area", runstate, runstate_expected),
    ]
}

pub fn bad_pointers(h: &mut Hostile<'_>, board: &Board<'_>) {
    let pointers = [
        ("an unmapped IPA (an extended region)", board.unmapped()),
        ("the hypervisor's image (the grant region)", board.grant_region.0),
        ("the hypervisor's image past the grant region", board.image_past_grants()),
        ("a device", board.device),
        ("beyond the IPA space", NOTHING),
        ("an address that wraps", u64::MAX - 3),
        ("a struct running from RAM's last byte into nothing", board.ram_end() - 1),
    ];
    for (what, pointer) in pointers {
        for c in &POINTER_CALLS {
            let rc = hypercall(c.number, (c.args)(pointer));
            h.expect(rc, c.expected, format_args!("{} with {what} ({pointer:#x})", c.name));
        }
        for (field, rc, expected) in indirect_pointers(pointer) {
            h.expect(rc, expected, format_args!("{field} at {what} ({pointer:#x})"));
        }
    }
    // Through the guest's own page tables: an address they leave unmapped,
    // one they map onto the hypervisor's image, and a read-only mapping of
    // Dom0's RAM for the calls that write.
    mmu::with_normal_memory(|| {
        let through_tables = [
            ("a VA Dom0's tables leave unmapped", mmu::UNMAPPED_VA, false),
            ("a VA Dom0 maps onto the hypervisor's image", mmu::read_only(board.grant_region.0), false),
            ("a read-only VA of Dom0's RAM", mmu::read_only(scratch_page()), true),
        ];
        for (what, pointer, read_only) in through_tables {
            for c in POINTER_CALLS.iter().filter(|c| c.writes_first || !read_only) {
                let rc = hypercall(c.number, (c.args)(pointer));
                h.expect(rc, c.expected, format_args!("{} with {what} ({pointer:#x})", c.name));
            }
        }
    });
}

pub fn wrong_domains(h: &mut Hostile<'_>, board: &Board<'_>) {
    let page = scratch_page() >> 12;
    for domid in [1u16, DOMID_XEN, 0x7fff, 0xffff] {
        let mut memory_domain = [domid];
        for (name, cmd) in [("current_reservation", 3), ("maximum_reservation", 4), ("maximum_gpfn", 14)] {
            h.expect(with(MEMORY_OP, &[cmd], &mut memory_domain), ESRCH, format_args!("{name} of domain {domid:#x}"));
        }
        for (name, cmd) in [("decrease_reservation", 1), ("populate_physmap", 6)] {
            let mut list = [page];
            let mut r =
                Reservation { extent_start: list.as_mut_ptr() as u64, nr_extents: 1, domid, ..Default::default() };
            h.expect(with(MEMORY_OP, &[cmd], &mut r), 0, format_args!("{name} for domain {domid:#x}: no extent"));
        }
        let rc = add_to_physmap_as(domid, space::SHARED_INFO, 0, page);
        h.expect(rc, ESRCH, format_args!("add_to_physmap for domain {domid:#x}"));
        let rc = batch_of_one(domid, space::GMFN_FOREIGN, 1, 0, page).0;
        h.expect(rc, ESRCH, format_args!("add_to_physmap_batch for domain {domid:#x}"));
        let (rc, err) = batch_of_one(DOMID_SELF, space::GMFN_FOREIGN, domid, 0, board.unmapped() >> 12);
        h.expect(i64::from(err), ESRCH, format_args!("a foreign map from domain {domid:#x} ({rc})"));
        h.expect(remove_from_physmap(domid, page), ESRCH, format_args!("remove_from_physmap for domain {domid:#x}"));

        let mut query = [u64::from(domid), 0];
        let rc = grant_op(6, &mut query, 1);
        let status = (read(&query)[1] >> 32) as i16;
        h.expect(rc, 0, format_args!("query_size of domain {domid:#x}: the call"));
        h.expect(status.into(), gntst::BAD_DOMAIN.into(), format_args!("query_size of domain {domid:#x}: the status"));
        let mut version = [u64::from(domid)];
        h.expect(grant_op(10, &mut version, 1), ESRCH, format_args!("get_version of domain {domid:#x}"));
        let status = map_grant(board.unmapped(), gntmap::HOST_MAP, 0, domid).status;
        h.expect(status.into(), gntst::BAD_DOMAIN.into(), format_args!("map_grant_ref from domain {domid:#x}"));

        let d = u32::from(domid);
        let self_ = u32::from(DOMID_SELF);
        h.expect(event(6, &[d | self_ << 16]).0, ESRCH, format_args!("alloc_unbound in domain {domid:#x}"));
        h.expect(event(0, &[d, 1]).0, ESRCH, format_args!("bind_interdomain to domain {domid:#x}"));
        h.expect(event(5, &[d, 1]).0, ESRCH, format_args!("status of a port of domain {domid:#x}"));
        h.expect(event(10, &[d]).0, ESRCH, format_args!("reset of domain {domid:#x}"));

        // The reason is a crash: were the domain ours, the run would end.
        let mut remote = [u64::from(d) | 3 << 32];
        h.expect(with(SCHED_OP, &[4], &mut remote), ESRCH, format_args!("remote_shutdown of domain {domid:#x}"));
        for (name, op) in [("set_param", 0), ("get_param", 1)] {
            let mut param = [u64::from(domid) | 2 << 32, 0];
            h.expect(with(HVM_OP, &[op], &mut param), ESRCH, format_args!("hvm {name} of domain {domid:#x}"));
        }
    }
}

pub fn out_of_range(h: &mut Hostile<'_>, board: &Board<'_>) {
    let self_ = u32::from(DOMID_SELF);
    let (rc, unbound) = alloc_unbound();
    h.expect(rc, 0, format_args!("alloc_unbound, for the cases below"));
    for port in [4096, 0xffff, u32::MAX] {
        for (name, cmd) in [("close", 3), ("send", 4), ("unmask", 9)] {
            h.expect(port_op(cmd, port), EINVAL, format_args!("{name} of port {port:#x}"));
        }
        h.expect(event(5, &[self_, port]).0, EINVAL, format_args!("status of port {port:#x}"));
        h.expect(event(8, &[port, 0]).0, EINVAL, format_args!("bind_vcpu of port {port:#x}"));
        h.expect(event(0, &[self_, port]).0, EINVAL, format_args!("bind_interdomain to port {port:#x}"));
    }
    // Port 0 exists and is never usable.
    for (name, cmd) in [("close", 3), ("send", 4)] {
        h.expect(port_op(cmd, 0), EINVAL, format_args!("{name} of port 0"));
    }
    h.expect(event(8, &[0, 0]).0, EINVAL, format_args!("bind_vcpu of port 0"));
    h.expect(event(0, &[self_, 0]).0, EINVAL, format_args!("bind_interdomain to port 0"));
    let (rc, status) = event(5, &[self_, 0]);
    h.expect(rc, 0, format_args!("status of port 0"));
    h.expect(status[2].into(), 0, format_args!("port 0 is closed"));

    let vcpus = board.vcpus();
    for vcpu in [vcpus, 99, u32::MAX] {
        let mut info = [vcpu_info_page() >> 12, 0];
        h.expect(with(VCPU_OP, &[10, u64::from(vcpu)], &mut info), ENOENT, format_args!("vcpu_info of vCPU {vcpu:#x}"));
        let mut area = [0u64];
        h.expect(with(VCPU_OP, &[5, u64::from(vcpu)], &mut area), ENOENT, format_args!("runstate of vCPU {vcpu:#x}"));
        h.expect(event(1, &[0, vcpu]).0, ENOENT, format_args!("VIRQ_TIMER on vCPU {vcpu:#x}"));
        h.expect(event(7, &[vcpu]).0, ENOENT, format_args!("bind_ipi on vCPU {vcpu:#x}"));
        h.expect(event(8, &[unbound, vcpu]).0, ENOENT, format_args!("bind_vcpu to vCPU {vcpu:#x}"));
    }
    for virq in [24, 100, u32::MAX] {
        h.expect(event(1, &[virq, 0]).0, EINVAL, format_args!("bind_virq of VIRQ {virq:#x}"));
    }
    if vcpus > 1 {
        h.expect(event(1, &[2, 1]).0, EINVAL, format_args!("the global VIRQ_CONSOLE on vCPU 1"));
    }
    h.expect(port_op(3, unbound), 0, format_args!("close the unbound port"));

    for order in [10, 31, u32::MAX] {
        let mut list = [scratch_page() >> 12];
        let mut r = Reservation {
            extent_start: list.as_mut_ptr() as u64,
            nr_extents: 1,
            extent_order: order,
            domid: DOMID_SELF,
            ..Default::default()
        };
        h.expect(with(MEMORY_OP, &[1], &mut r), 0, format_args!("decrease_reservation of order {order}: no extent"));
    }
    for (gfn, offset) in
        [(vcpu_info_page() >> 12, 4096), (vcpu_info_page() >> 12, u32::MAX), (1 << 52, 0), (u64::MAX, 0)]
    {
        let mut info = [gfn, u64::from(offset)];
        let rc = with(VCPU_OP, &[10, 1], &mut info);
        h.expect(rc, EINVAL, format_args!("vcpu_info at frame {gfn:#x} offset {offset:#x}"));
    }
    for kind in [0, 1, 64, 1000, u64::from(u32::MAX)] {
        h.expect(hypercall(VM_ASSIST, [0, kind, 0, 0, 0]), EINVAL, format_args!("vm_assist type {kind}"));
    }
    for index in [39, 1000, u32::MAX] {
        let mut param = [u64::from(DOMID_SELF) | u64::from(index) << 32, 0];
        h.expect(with(HVM_OP, &[1], &mut param), EINVAL, format_args!("hvm get_param {index:#x}"));
    }
    for version in [0, 3, u32::MAX] {
        let mut v = [version];
        h.expect(grant_op(8, &mut v, 1), EINVAL, format_args!("grant set_version {version:#x}"));
    }
}

pub fn double_registrations(h: &mut Hostile<'_>, board: &Board<'_>) {
    let shared = shared_info_page() >> 12;
    h.expect(add_to_physmap(space::SHARED_INFO, 0, shared), EBUSY, format_args!("shared_info again, same page"));
    h.expect(add_to_physmap(space::SHARED_INFO, 0, shared + 1), EBUSY, format_args!("shared_info again, elsewhere"));

    let info = vcpu_info_page();
    // A second registration: -EBUSY, as current Xen (4.17: -EINVAL).
    for (vcpu, offset) in [(0u64, 64u64), (1, 128)] {
        let mut reg = [info >> 12, offset];
        h.expect(with(VCPU_OP, &[10, vcpu], &mut reg), 0, format_args!("vcpu_info for vCPU {vcpu}"));
        h.expect(with(VCPU_OP, &[10, vcpu], &mut reg), EBUSY, format_args!("vcpu_info for vCPU {vcpu} again"));
        let mut elsewhere = [scratch_page() >> 12, 0];
        h.expect(with(VCPU_OP, &[10, vcpu], &mut elsewhere), EBUSY, format_args!("vcpu_info for vCPU {vcpu}, moved"));
    }
    static mut RUNSTATE: Page = Page([0; 512]);
    let runstate = addr_of_mut!(RUNSTATE) as u64;
    let mut area = [runstate];
    h.expect(with(VCPU_OP, &[5, 0], &mut area), 0, format_args!("runstate area"));
    h.expect(with(VCPU_OP, &[5, 0], &mut area), 0, format_args!("runstate area again: it replaces"));
    // Pinned while registered, here: neither ballooned nor removed. (Xen
    // maps its own frame over shared_info and would let the rest go.)
    for (what, page) in [("shared_info", shared), ("vcpu_info", info >> 12), ("the runstate area", runstate >> 12)] {
        h.expect(reservation(1, page), 0, format_args!("decrease_reservation of the {what} page"));
        let rc = remove_from_physmap(DOMID_SELF, page);
        h.expect(rc, EBUSY, format_args!("remove_from_physmap of the {what} page"));
    }
    let mut unregister = [0u64];
    h.expect(with(VCPU_OP, &[5, 0], &mut unregister), 0, format_args!("runstate area unregistered"));

    let region = board.grant_region.0 >> 12;
    h.expect(add_to_physmap(space::GRANT_TABLE, 0, region + 5), EBUSY, format_args!("grant frame 0 again, elsewhere"));
    h.expect(add_to_physmap(space::GRANT_TABLE, 2, region), EBUSY, format_args!("grant frame 2 where 0 is"));

    let (rc, console) = event(1, &[2, 0]);
    h.expect(rc, 0, format_args!("bind_virq VIRQ_CONSOLE"));
    h.expect(event(1, &[2, 0]).0, EEXIST, format_args!("bind_virq VIRQ_CONSOLE again"));
    let (rc, timer) = event(1, &[0, 0]);
    h.expect(rc, 0, format_args!("bind_virq VIRQ_TIMER on vCPU 0"));
    h.expect(event(1, &[0, 0]).0, EEXIST, format_args!("bind_virq VIRQ_TIMER on vCPU 0 again"));
    let self_ = u32::from(DOMID_SELF);
    let (rc, unbound) = alloc_unbound();
    h.expect(rc, 0, format_args!("alloc_unbound"));
    let (rc, bound) = event(0, &[self_, unbound]);
    h.expect(rc, 0, format_args!("bind_interdomain"));
    h.expect(event(0, &[self_, unbound]).0, EINVAL, format_args!("bind_interdomain to the same port again"));
    for port in [bound[2], unbound, console[2], timer[2]] {
        h.expect(port_op(3, port), 0, format_args!("close port {port}"));
        h.expect(port_op(3, port), EINVAL, format_args!("close port {port} again"));
    }
    h.expect(hypercall(VM_ASSIST, [0, 5, 0, 0, 0]), 0, format_args!("vm_assist runstate_update_flag"));
    h.expect(hypercall(VM_ASSIST, [0, 5, 0, 0, 0]), 0, format_args!("vm_assist runstate_update_flag again"));
    let mut version = [1u32];
    h.expect(grant_op(8, &mut version, 1), 0, format_args!("set_version 1"));
    h.expect(grant_op(8, &mut version, 1), 0, format_args!("set_version 1 again"));

    // Ballooning twice does nothing the second time.
    let page = scratch_page() >> 12;
    h.expect(reservation(1, page), 1, format_args!("decrease_reservation of a page"));
    h.expect(reservation(1, page), 0, format_args!("decrease_reservation of it again"));
    h.expect(remove_from_physmap(DOMID_SELF, page), ENOENT, format_args!("remove_from_physmap of it"));
    h.expect(reservation(6, page), 1, format_args!("populate_physmap of it"));
    h.expect(reservation(6, page), 0, format_args!("populate_physmap of it again"));
}

pub fn huge_counts(h: &mut Hostile<'_>, board: &Board<'_>) {
    let end = board.ram_end();
    let page = scratch_page() >> 12;
    for count in [u64::MAX, 1 << 32, 1 << 26] {
        let mut list = [page];
        let mut r = Reservation {
            extent_start: list.as_mut_ptr() as u64,
            nr_extents: count,
            domid: DOMID_SELF,
            ..Default::default()
        };
        h.expect(with(MEMORY_OP, &[1], &mut r), 0, format_args!("decrease_reservation of {count:#x} extents"));
    }
    // A long list whose second entry is past RAM's end: one extent each way.
    super::super::set_word(end - 8, page);
    for (name, op) in [("decrease_reservation", 1), ("populate_physmap", 6)] {
        let mut r = Reservation { extent_start: end - 8, nr_extents: 1 << 20, domid: DOMID_SELF, ..Default::default() };
        h.expect(with(MEMORY_OP, &[op], &mut r), 1, format_args!("{name} of 2^20 extents from RAM's last word"));
    }

    // Batches of grant operations running out of RAM after two.
    let maps = end - 64;
    for i in 0..2 {
        let op =
            MapGrantRef { host_addr: board.unmapped(), flags: gntmap::HOST_MAP, gref: u32::MAX, ..Default::default() };
        // SAFETY: the last 64 bytes of Dom0's RAM, which nothing else uses.
        unsafe { (maps as *mut MapGrantRef).add(i).write_volatile(op) };
    }
    let rc = hypercall(GRANT_TABLE_OP, [0, maps, 0x7fff_ffff, 0, 0]);
    h.expect(rc, EFAULT, format_args!("map_grant_ref of 2^31 - 1 ops, two in RAM"));
    for i in 0..2 {
        // SAFETY: as above.
        let status = unsafe { (maps as *const MapGrantRef).add(i).read_volatile() }.status;
        h.expect(status.into(), gntst::BAD_GNTREF.into(), format_args!("map op {i} of them was done"));
    }
    let unmaps = end - 48;
    for i in 0..2 {
        let op = UnmapGrantRef { host_addr: board.unmapped(), handle: u32::MAX, ..Default::default() };
        // SAFETY: as above.
        unsafe { (unmaps as *mut UnmapGrantRef).add(i).write_volatile(op) };
    }
    let rc = hypercall(GRANT_TABLE_OP, [1, unmaps, 0x7fff_ffff, 0, 0]);
    h.expect(rc, EFAULT, format_args!("unmap_grant_ref of 2^31 - 1 ops, two in RAM"));
    for count in [0x8000_0000, u64::from(u32::MAX)] {
        h.expect(
            hypercall(GRANT_TABLE_OP, [0, maps, count, 0, 0]),
            EINVAL,
            format_args!("map_grant_ref of {count:#x} ops"),
        );
    }
    for count in [2, 0x7fff_ffff] {
        let mut query = [u64::from(DOMID_SELF), 0];
        h.expect(grant_op(6, &mut query, count), EINVAL, format_args!("query_size with count {count:#x}"));
    }
    h.expect(hypercall(GRANT_TABLE_OP, [0, 0, 0, 0, 0]), 0, format_args!("map_grant_ref of no ops"));

    let text = end - 16;
    h.expect(
        hypercall(CONSOLE_IO, [0, u64::from(u32::MAX), text, 0, 0]),
        EFAULT,
        format_args!("console write of 4 GiB"),
    );
    h.expect(hypercall(CONSOLE_IO, [0, 0, 0, 0, 0]), 0, format_args!("console write of nothing"));
    for count in [0x8000_0000u64, u64::from(u32::MAX)] {
        h.expect(hypercall(CONSOLE_IO, [1, count, text, 0, 0]), E2BIG, format_args!("console read of {count:#x}"));
    }
    h.expect(hypercall(CONSOLE_IO, [1, 0x7fff_ffff, text, 0, 0]), EFAULT, format_args!("console read of 2 GiB"));

    // idxs and gpfns share RAM's last two words (frame 0), errs too.
    super::super::set_word(end - 16, 0);
    super::super::set_word(end - 8, 0);
    let mut batch = AddToPhysmapBatch {
        domid: DOMID_SELF,
        space: space::GMFN_FOREIGN as u16,
        size: 0xffff,
        foreign_domid: 1,
        idxs: end - 16,
        gpfns: end - 16,
        errs: end - 8,
    };
    h.expect(with(MEMORY_OP, &[23], &mut batch), EFAULT, format_args!("add_to_physmap_batch of 65535, two in RAM"));
    batch.size = 0;
    h.expect(with(MEMORY_OP, &[23], &mut batch), 0, format_args!("add_to_physmap_batch of none"));

    // Every event channel taken: the next gets -ENOSPC, a reset frees all.
    let mut taken = 0;
    let rc = loop {
        let (rc, _) = alloc_unbound();
        if rc != 0 || taken == 5000 {
            break rc;
        }
        taken += 1;
    };
    h.expect(rc, ENOSPC, format_args!("alloc_unbound after {taken} ports"));
    h.expect(event(10, &[u32::from(DOMID_SELF)]).0, 0, format_args!("reset of every port"));
    let (rc, port) = alloc_unbound();
    h.expect(rc, 0, format_args!("alloc_unbound after the reset"));
    h.expect(port.into(), 1, format_args!("alloc_unbound after the reset: the lowest port"));
    h.expect(port_op(3, port), 0, format_args!("close it"));
}

pub fn malformed(h: &mut Hostile<'_>, board: &Board<'_>) {
    // vcpu_info misaligned or crossing a page, and not in Dom0's RAM (for
    // vCPU 1, which has none yet).
    for offset in [4u64, 44, 4056, 4095] {
        let mut info = [vcpu_info_page() >> 12, offset];
        h.expect(with(VCPU_OP, &[10, 1], &mut info), ENXIO, format_args!("vcpu_info at offset {offset}"));
    }
    let not_ram = [
        ("a device", board.device),
        ("the grant region", board.grant_region.0),
        ("the hypervisor's image", board.image_past_grants()),
        ("an extended region", board.unmapped()),
    ];
    for (what, address) in not_ram {
        let mut info = [address >> 12, 0];
        h.expect(with(VCPU_OP, &[10, 1], &mut info), EINVAL, format_args!("vcpu_info in {what}"));
    }
    // Xen 4.17 takes any runstate address; here it must be aligned RAM.
    for (what, address) in not_ram {
        let mut area = [address];
        h.expect(with(VCPU_OP, &[5, 0], &mut area), EFAULT, format_args!("runstate area in {what}"));
    }
    let mut area = [scratch_page() + 4];
    h.expect(with(VCPU_OP, &[5, 0], &mut area), EINVAL, format_args!("a misaligned runstate area"));
    let mut area = [board.ram_end() - 16];
    h.expect(with(VCPU_OP, &[5, 0], &mut area), EFAULT, format_args!("a runstate area running out of RAM"));

    // Reservations a 1:1 domain cannot have, with the scratch page out.
    let page = scratch_page() >> 12;
    h.expect(reservation(1, page), 1, format_args!("decrease_reservation of the scratch page"));
    let mut list = [page];
    for (what, op, flags) in [("increase_reservation", 0, 0), ("populate_physmap on demand", 6, 1 << 16)] {
        let mut r = Reservation {
            extent_start: list.as_mut_ptr() as u64,
            nr_extents: 1,
            mem_flags: flags,
            domid: DOMID_SELF,
            ..Default::default()
        };
        h.expect(with(MEMORY_OP, &[op], &mut r), 0, format_args!("{what} of it: no extent"));
    }
    for (what, gfn) in [
        ("a mapped page", shared_info_page() >> 12),
        ("the hypervisor's image", board.image_past_grants() >> 12),
        ("an extended region", board.unmapped() >> 12),
        ("a device", board.device >> 12),
        ("frame u64::MAX", u64::MAX),
    ] {
        h.expect(reservation(6, gfn), 0, format_args!("populate_physmap of {what}"));
    }
    for (what, gfn) in [
        ("the hypervisor's image", board.image_past_grants() >> 12),
        ("an extended region", board.unmapped() >> 12),
        ("a device", board.device >> 12),
        ("the grant region", board.grant_region.0 >> 12),
        ("frame u64::MAX", u64::MAX),
    ] {
        h.expect(reservation(1, gfn), 0, format_args!("decrease_reservation of {what}"));
    }
    h.aborts(
        super::super::read_faults(board.image_past_grants()),
        format_args!("the hypervisor's image stays unmapped"),
    );
    h.expect(reservation(6, page), 1, format_args!("populate_physmap of the scratch page"));

    // Calls resumed where their extent bits say, past their end.
    let mut r =
        Reservation { extent_start: list.as_mut_ptr() as u64, nr_extents: 3, domid: DOMID_SELF, ..Default::default() };
    h.expect(with(MEMORY_OP, &[5 << 6 | 1], &mut r), 5, format_args!("decrease_reservation from extent 5 of 3"));
    let mut b =
        AddToPhysmapBatch { domid: DOMID_SELF, space: space::GMFN_FOREIGN as u16, size: 2, ..Default::default() };
    h.expect(with(MEMORY_OP, &[5 << 6 | 23], &mut b), EILSEQ, format_args!("batch of 2 from extent 5"));
    h.expect(with(MEMORY_OP, &[2 << 6 | 23], &mut b), EILSEQ, format_args!("batch of 2 from extent 2"));

    // HVM parameters that are the toolstack's.
    for (op, index, expected) in [(1, 28, EPERM), (0, 1, EPERM), (0, 2, EPERM), (0, 39, EINVAL)] {
        let mut param = [u64::from(DOMID_SELF) | index << 32, 0];
        h.expect(with(HVM_OP, &[op], &mut param), expected, format_args!("hvm op {op} of param {index}"));
    }
    // platform_op: an old interface; a settime64 with its must-be-zero set.
    let mut op = [0u64; 17];
    op[..2].copy_from_slice(&[62 | 0x0300_0000 << 32, 1_700_000_000]);
    h.expect(with(PLATFORM_OP, &[], &mut op), EACCES, format_args!("platform_op of interface 0x03000000"));
    h.expect(platform_op(62, &[1_700_000_000, 1 << 32]), EINVAL, format_args!("settime64 with mbz set"));
    h.expect(hypercall(VM_ASSIST, [2, 5, 0, 0, 0]), ENOSYS, format_args!("vm_assist command 2"));
    let mut version = [u64::from(DOMID_SELF)];
    h.expect(grant_op(10, &mut version, 1), 0, format_args!("get_version"));
    h.expect((read(&version)[0] >> 32) as i64, 1, format_args!("get_version says 1"));
    // Xen 4.17 offers version 2 (and would switch to it).
    let mut v2 = [2u32];
    h.expect(grant_op(8, &mut v2, 1), ENOSYS, format_args!("grant set_version 2"));
    h.expect(read(&v2)[0].into(), 1, format_args!("set_version 2 writes back version 1"));
    let mut shutdown_code = [3u32];
    h.expect(with(SCHED_OP, &[5], &mut shutdown_code), 0, format_args!("sched_op shutdown_code (for a suspend)"));
}
