//! The Xen hypercalls a Linux Dom0 makes, made by the probe with good and
//! hostile arguments: shared_info and vcpu_info, event channels (checking
//! the bits in shared memory, as the probe takes no interrupts), grant
//! frames and a self-grant mapped elsewhere, ballooning, the console, and
//! errors for bad pointers and unknown calls. The same checks pass under
//! Debian's Xen 4.17; where that Xen answers differently (an older errno,
//! no checks of the target of a grant mapping, FIFO events, a ballooned
//! frame kept rather than freed), the check says which answer it expects
//! from which.

use super::abi::*;
use super::{Report, read_faults, set_word, word};
use core::ptr::{addr_of_mut, write_volatile};

/// Pages of the probe's own RAM the checks hand to the hypervisor.
static mut SHARED_INFO: Page = Page([0; 512]);
static mut VCPU_INFO: Page = Page([0; 512]);
static mut GRANTED: Page = Page([0; 512]);
static mut BALLOON: Page = Page([0; 512]);
static mut RUNSTATE: [u64; 6] = [0; 6];

/// Where the checks may put things: the grant-table region, and an
/// unmapped address (an extended region) for the grant mapping.
pub struct Places {
    pub grant_region: Option<u64>,
    pub unmapped: Option<u64>,
    /// The CPUs in its tree (one when a DomU took the other).
    pub cpus: usize,
    /// Whether to wait, at the end, for a DomU to end (VIRQ_DOM_EXC) and
    /// then check the hypervisor still answers: `probe=wait-domain-end`.
    pub wait_for_domain_end: bool,
}

/// Runs the checks, against this hypervisor's answers or Xen 4.17's.
pub fn check(r: &mut Report, places: &Places) {
    let ours = hypervisor_is_ours();
    r.say(format_args!("hypercalls: checking against {}", if ours { "this hypervisor" } else { "Xen" }));
    let shared = addr_of_mut!(SHARED_INFO) as u64;

    // shared_info, as Linux places it: a page of its own RAM.
    let rc = add_to_physmap(0, 0, shared >> 12);
    r.check(rc == 0, format_args!("add_to_physmap shared_info at {shared:#x} ({rc})"));
    let rc = add_to_physmap(0, 0, (shared >> 12) + 1);
    r.check(rc == EBUSY, format_args!("shared_info placed twice gets -EBUSY ({rc})"));
    let rc = add_to_physmap(0, 1, shared >> 12);
    r.check(rc == EINVAL, format_args!("shared_info index 1 gets -EINVAL ({rc})"));
    // First of all (a VIRQ raised before it is bound is lost, as in Xen),
    // so that every check below runs after the other domain's end.
    if places.wait_for_domain_end {
        wait_for_domain_end(r, shared);
    }

    // vcpu_info for vCPU 0, inside a page, 8-byte aligned.
    let info = addr_of_mut!(VCPU_INFO) as u64 + 64;
    let mut reg = [info >> 12, 64];
    let rc = with(VCPU_OP, &[10, 0], &mut reg);
    r.check(rc == 0, format_args!("register_vcpu_info for vCPU 0 ({rc})"));
    // Xen selects every word and raises a spurious upcall; here only an
    // event that waits does (none, unless a domain has ended meanwhile:
    // VIRQ_DOM_EXC, when waited for, is such an event).
    let waits = !ours || places.wait_for_domain_end;
    let (upcall, selector) = if waits { (1, u64::MAX) } else { (0, 0) };
    r.check(
        word(info) & 0xff == upcall && word(info + 8) == selector,
        format_args!(
            "the new vcpu_info: upcall {upcall}, selector {selector:#x} ({:#x}, {:#x})",
            word(info) & 0xff,
            word(info + 8)
        ),
    );
    let rc = with(VCPU_OP, &[10, 0], &mut reg);
    let again = if ours { EBUSY } else { EINVAL };
    r.check(rc == again, format_args!("a second registration gets {again} ({rc})"));
    let mut misaligned = [info >> 12, 4];
    let rc = with(VCPU_OP, &[10, 1], &mut misaligned);
    if places.cpus > 1 {
        r.check(rc == ENXIO, format_args!("a misaligned vcpu_info gets -ENXIO ({rc})"));
    } else {
        r.check(rc == ENOENT, format_args!("with one CPU, vCPU 1 gets -ENOENT ({rc})"));
    }
    let rc = with(VCPU_OP, &[10, 99], &mut reg);
    r.check(rc == ENOENT, format_args!("vCPU 99 gets -ENOENT ({rc})"));
    let rc = hypercall(VCPU_OP, [99, 0, info, 0, 0]);
    r.check(rc == EINVAL, format_args!("an unknown vcpu_op gets -EINVAL, as on Xen for Arm ({rc})"));

    // Runstate, with the update flag asked for first.
    let rc = hypercall(VM_ASSIST, [0, 5, 0, 0, 0]);
    r.check(rc == 0, format_args!("vm_assist runstate_update_flag ({rc})"));
    let rc = hypercall(VM_ASSIST, [0, 6, 0, 0, 0]);
    r.check(rc == EINVAL, format_args!("an unknown vm_assist gets -EINVAL ({rc})"));
    let runstate = addr_of_mut!(RUNSTATE) as u64;
    let mut area = [runstate];
    // SAFETY: a static of ours.
    unsafe { write_volatile(runstate as *mut u64, 0x5a5a) };
    let rc = with(VCPU_OP, &[5, 0], &mut area);
    r.check(
        rc == 0 && word(runstate) as u32 == 0,
        format_args!("the runstate area says running ({rc}, {:#x})", word(runstate)),
    );

    check_events(r, ours, shared, info);
    let granted = check_grants(r, ours, places);
    check_balloon(r, ours, granted);

    // Console, xenstore, time, the rest.
    let text = b"probe: hello through CONSOLEIO_write\n";
    let rc = hypercall(CONSOLE_IO, [0, text.len() as u64, text.as_ptr() as u64, 0, 0]);
    r.check(rc == 0, format_args!("console_io write ({rc})"));
    let mut param = [u64::from(DOMID_SELF) | 2 << 32, 0x1234];
    let rc = with(HVM_OP, &[1], &mut param);
    let (rc2, value) = (rc, read(&param)[1]);
    r.check(rc2 == 0 && value == 0, format_args!("HVM_PARAM_STORE_EVTCHN is 0: no xenstore ({rc2}, {value})"));
    let rc = with(HVM_OP, &[0], &mut param);
    r.check(rc == EPERM, format_args!("setting it gets -EPERM ({rc})"));
    // struct xen_platform_op: cmd, interface_version, then xenpf_settime64.
    let mut platform = [0u64; 17];
    platform[..2].copy_from_slice(&[62 | 0x0300_0001 << 32, 1_700_000_000]);
    let rc = with(7, &[], &mut platform);
    r.check(rc == 0, format_args!("platform_op settime64 ({rc})"));
    let rc = hypercall(PHYSDEV_OP, [25, 0, 0, 0, 0]);
    r.check(rc == ENOSYS, format_args!("physdev_op gets -ENOSYS ({rc})"));
    let rc = hypercall(SCHED_OP, [0, 0, 0, 0, 0]);
    r.check(rc == 0, format_args!("sched_op yield ({rc})"));

    for nothing in [places.unmapped.unwrap_or(NOTHING), NOTHING] {
        for (name, number, a) in [
            ("memory_op add_to_physmap", MEMORY_OP, [7, nothing, 0, 0, 0]),
            ("vcpu_op register_vcpu_info", VCPU_OP, [10, 0, nothing, 0, 0]),
            ("event_channel_op alloc_unbound", EVENT_CHANNEL_OP, [6, nothing, 0, 0, 0]),
            ("grant_table_op query_size", GRANT_TABLE_OP, [6, nothing, 1, 0, 0]),
            ("console_io write", CONSOLE_IO, [0, 16, nothing, 0, 0]),
            ("hvm_op get_param", HVM_OP, [1, nothing, 0, 0, 0]),
            ("sched_op shutdown", SCHED_OP, [2, nothing, 0, 0, 0]),
        ] {
            let rc = hypercall(number, a);
            r.check(rc == EFAULT, format_args!("{name} with a pointer to {nothing:#x} gets -EFAULT ({rc})"));
        }
        let mut r0 = Reservation { extent_start: nothing, nr_extents: 1, domid: DOMID_SELF, ..Default::default() };
        let rc = with(MEMORY_OP, &[1], &mut r0);
        r.check(rc == 0, format_args!("decrease_reservation with a list in nothing does no extent ({rc})"));
    }
    for (name, number, cmd) in [
        ("memory_op", MEMORY_OP, 99),
        ("event_channel_op", EVENT_CHANNEL_OP, 99),
        ("grant_table_op", GRANT_TABLE_OP, 99),
        ("console_io", CONSOLE_IO, 99),
        ("sched_op", SCHED_OP, 99),
        ("hvm_op", HVM_OP, 99),
        ("hypercall 9999", 9999, 0),
    ] {
        let rc = hypercall(number, [cmd, 0, 0, 0, 0]);
        r.check(rc == ENOSYS, format_args!("unknown {name} op gets -ENOSYS ({rc})"));
    }
}

/// Events through shared_info: alloc_unbound + bind_interdomain to itself,
/// then sends, masks and unmasks, watching the bits as Linux's upcall
/// handler would.
fn check_events(r: &mut Report, ours: bool, shared: u64, info: u64) {
    const PENDING: u64 = 48;
    const MASK: u64 = 560;
    let pending_word = |port: u32| shared + PENDING + u64::from(port / 64) * 8;
    let is_pending = |port: u32| word(pending_word(port)) & 1 << (port % 64) != 0;
    let clear_upcall = || {
        set_word(info, 0);
        set_word(info + 8, 0);
    };
    if ours {
        let rc = event(11, &[]).0;
        r.check(rc == ENOSYS, format_args!("EVTCHNOP_init_control gets -ENOSYS: 2-level events ({rc})"));
    }
    let (rc, unbound) = alloc_unbound();
    r.check(rc == 0 && unbound > 0, format_args!("alloc_unbound, dom = remote = DOMID_SELF: port {unbound} ({rc})"));
    let (rc, status) = event(5, &[u32::from(DOMID_SELF), unbound]);
    r.check(
        rc == 0 && status[2] == 1 && status[4] & 0xffff == 0,
        format_args!("its status is unbound, for domain 0 ({rc})"),
    );
    let rc = port_op(4, unbound);
    r.check(rc == 0 && !is_pending(unbound), format_args!("a send on it is dropped ({rc})"));
    let (rc, bound) = event(0, &[u32::from(DOMID_SELF), unbound]);
    let local = bound[2];
    r.check(rc == 0 && local != unbound, format_args!("bind_interdomain to it: port {local} ({rc})"));
    // Linux's upcall handler clears these before it looks.
    clear_upcall();
    (0..64).for_each(|w| set_word(shared + PENDING + w * 8, 0));
    let rc = port_op(4, local);
    r.check(
        rc == 0 && is_pending(unbound) && word(info + 8) == 1 << (unbound / 64) && word(info) & 0xff == 1,
        format_args!(
            "a send to port {local} sets port {unbound} pending, its selector bit and the upcall ({rc}, {:#x}, {:#x})",
            word(info + 8),
            word(info) & 0xff
        ),
    );
    // Masked: pending, no selector, no upcall; unmask raises it.
    clear_upcall();
    set_word(pending_word(unbound), 0);
    set_word(shared + MASK + u64::from(unbound / 64) * 8, 1 << (unbound % 64));
    let rc = port_op(4, local);
    r.check(rc == 0 && is_pending(unbound) && word(info + 8) == 0, format_args!("masked, it is only pending ({rc})"));
    let rc = port_op(9, unbound);
    r.check(
        rc == 0 && word(info + 8) == 1 << (unbound / 64) && word(info) & 0xff == 1,
        format_args!("unmask raises the pending port ({rc})"),
    );
    let (rc, virq) = event(1, &[2, 0]);
    r.check(rc == 0 && virq[2] > 0, format_args!("bind_virq VIRQ_CONSOLE: port {} ({rc})", virq[2]));
    let rc = event(1, &[2, 0]).0;
    r.check(rc == EEXIST, format_args!("bound twice gets -EEXIST ({rc})"));
    let rc = event(1, &[2, 1]).0;
    r.check(rc == EINVAL, format_args!("a global VIRQ on vCPU 1 gets -EINVAL ({rc})"));
    let rc = port_op(3, local);
    r.check(rc == 0, format_args!("close port {local} ({rc})"));
    let rc = port_op(3, local);
    r.check(rc == EINVAL, format_args!("closing it again gets -EINVAL ({rc})"));
    let rc = port_op(4, 5000);
    r.check(rc == EINVAL, format_args!("a send on port 5000 gets -EINVAL ({rc})"));
    let rc = port_op(4, virq[2]);
    r.check(rc == EINVAL, format_args!("a send on a VIRQ port gets -EINVAL ({rc})"));
}

/// Binds VIRQ_DOM_EXC, which the hypervisor raises in Dom0 when another
/// domain shuts down (Xen's toolstack waits on it), tells domain 1 it
/// listens, and waits for the VIRQ by
/// watching its pending bit, at most a minute; then the hypervisor must
/// still answer Dom0, and the checks that follow run.
fn wait_for_domain_end(r: &mut Report, shared: u64) {
    const VIRQ_DOM_EXC: u32 = 3;
    const PENDING: u64 = 48;
    const DOMU: u32 = 1;
    let (rc, bound) = event(1, &[VIRQ_DOM_EXC, 0]);
    let port = bound[2];
    r.check(rc == 0 && port > 0, format_args!("bind_virq VIRQ_DOM_EXC: port {port} ({rc})"));
    // Tells the DomU Dom0 listens (it waits for this before it acts): a
    // port in its table, unbound for Dom0, as a toolstack offers one.
    let (rc, offered) = event(6, &[DOMU]);
    r.check(rc == 0, format_args!("alloc_unbound in domain {DOMU}'s table for Dom0: port {} ({rc})", offered[1]));
    let pending = || word(shared + PENDING + u64::from(port / 64) * 8) & 1 << (port % 64) != 0;
    let (start, hz) = (counter(), frequency());
    while !pending() && counter() - start < 60 * hz {
        core::hint::spin_loop();
    }
    let ms = (counter() - start) * 1000 / hz;
    r.check(pending(), format_args!("VIRQ_DOM_EXC: a domain ended ({ms} ms of waiting)"));
    let version = version();
    r.check(version == 0x4_0011, format_args!("after the domain's end, xen_version answers ({version:#x})"));
}

/// The virtual counter and its frequency.
fn counter() -> u64 {
    let ticks: u64;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("isb", "mrs {t}, cntvct_el0", t = out(reg) ticks, options(nostack)) };
    ticks
}

fn frequency() -> u64 {
    let hz: u64;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mrs {f}, cntfrq_el0", f = out(reg) hz, options(nostack)) };
    hz.max(1)
}

/// Grant frames in the grant region, a page of the probe's granted to
/// itself and mapped at an unmapped address, read back, unmapped. Returns
/// the grant reference, still granted, if the table was set up.
fn check_grants(r: &mut Report, ours: bool, places: &Places) -> Option<u32> {
    let mut query = [u64::from(DOMID_SELF), 0];
    let rc = grant_op(6, &mut query, 1);
    let max = (read(&query)[1] & 0xffff_ffff) as u32;
    query[0] = u64::from(DOMID_SELF);
    let count_rc = grant_op(6, &mut query, 2);
    r.check(
        rc == 0 && max == 64 && count_rc == EINVAL,
        format_args!("query_size: at most {max} frames ({rc}, {count_rc})"),
    );
    let mut version = [1u32];
    let rc = grant_op(8, &mut version, 1);
    r.check(rc == 0 && read(&version)[0] == 1, format_args!("set_version 1 ({rc})"));
    let region = places.grant_region?;
    // Linux maps the highest index first.
    let rc1 = add_to_physmap(1, 1, (region >> 12) + 1);
    let rc0 = add_to_physmap(1, 0, region >> 12);
    r.check(rc0 == 0 && rc1 == 0, format_args!("grant frames 1 and 0 at {region:#x} ({rc1}, {rc0})"));
    r.check(read_faults(region + 0x1000).is_none(), format_args!("the grant region reads now"));
    let rc = add_to_physmap(1, 64, (region >> 12) + 2);
    r.check(rc == EINVAL, format_args!("grant frame 64 gets -EINVAL ({rc})"));
    let granted = addr_of_mut!(GRANTED) as u64;
    set_word(granted + 0x18, 0x6772_616e_7465_6421);
    let gref = 520; // in frame 1
    let entry = region + gref * 8;
    set_word(entry, 1 | (granted >> 12) << 32); // GTF_permit_access, to domain 0
    let Some(target) = places.unmapped else { return Some(gref as u32) };
    r.check(read_faults(target).is_some(), format_args!("{target:#x} is unmapped before the grant"));
    let m = map_grant(target, 2, gref as u32, 0);
    r.check(
        m.status == 0 && m.dev_bus_addr == granted,
        format_args!(
            "map_grant_ref of our own page at {target:#x}: status {}, bus address {:#x}",
            m.status, m.dev_bus_addr
        ),
    );
    r.check(
        word(entry) as u16 == 1 | 1 << 3 | 1 << 4,
        format_args!("the entry says reading and writing ({:#x})", word(entry) as u16),
    );
    r.check(word(target + 0x18) == 0x6772_616e_7465_6421, format_args!("the granted page reads back at {target:#x}"));
    set_word(target + 0x20, 42);
    r.check(word(granted + 0x20) == 42, format_args!("and writes through"));
    let bad = [
        // A domain id no DomU has (they count up from 1), so the answer is
        // the same beside boot-time DomUs.
        ("a domain that does not exist", map_grant(target + 0x1000, 2, gref as u32, 0x7000).status, -2),
        ("a ref beyond the table", map_grant(target + 0x1000, 2, 99_999, 0).status, -3),
        ("no map flags", map_grant(target + 0x1000, 0, gref as u32, 0).status, -3),
        ("an entry not granted", map_grant(target + 0x1000, 2, gref as u32 + 1, 0).status, -1),
    ];
    for (what, status, expected) in bad {
        r.check(status == expected, format_args!("map_grant_ref of {what} gets {expected} ({status})"));
    }
    if ours {
        let granted_page = granted;
        for (what, address) in
            [("unaligned", target + 0x1008), ("on mapped RAM", granted_page), ("in the grant region", region + 0x8000)]
        {
            let status = map_grant(address, 2, gref as u32, 0).status;
            r.check(
                status == -5,
                format_args!("map_grant_ref at an address {what} gets GNTST_bad_virt_addr ({status})"),
            );
        }
    }
    let status = unmap_grant(target, 0, m.handle);
    r.check(status == 0 && word(entry) as u16 == 1, format_args!("unmap_grant_ref ({status}); the entry is released"));
    r.check(read_faults(target).is_some(), format_args!("{target:#x} is unmapped again"));
    let status = unmap_grant(target, 0, m.handle);
    r.check(status == -4, format_args!("a second unmap gets GNTST_bad_handle ({status})"));
    Some(gref as u32)
}

/// A page of the probe's out and back (a 1:1 Dom0 gets the same frame
/// back). Meanwhile the
/// granted page is mapped in the hole, as Linux does without extended
/// regions.
fn check_balloon(r: &mut Report, ours: bool, granted: Option<u32>) {
    let page = addr_of_mut!(BALLOON) as u64;
    set_word(page, 0x6261_6c6c_6f6f_6e21);
    let done = reservation(1, page >> 12);
    r.check(done == 1, format_args!("decrease_reservation of {page:#x}: {done} extent"));
    r.check(read_faults(page).is_some(), format_args!("the ballooned page aborts"));
    let again = reservation(1, page >> 12);
    r.check(again == 0, format_args!("ballooning it again does nothing ({again})"));
    if let Some(gref) = granted {
        let m = map_grant(page, 2 | 4, gref, 0);
        r.check(
            m.status == 0 && word(page + 0x18) == 0x6772_616e_7465_6421,
            format_args!("the granted page maps read-only in the ballooned hole ({})", m.status),
        );
        let status = unmap_grant(page, m.dev_bus_addr, m.handle);
        r.check(status == 0, format_args!("and unmaps ({status})"));
    }
    let back = reservation(6, page >> 12);
    r.check(back == 1, format_args!("populate_physmap brings 1 back ({back})"));
    // Xen keeps the frame the 1:1 domain's meanwhile, contents and all; here
    // it went back to the allocator and returns scrubbed.
    let (ok, how) = if ours { (word(page) == 0, ", zeroed") } else { (true, "") };
    r.check(read_faults(page).is_none() && ok, format_args!("the page is back{how}"));
}

/// Powers the machine off as Linux does.
pub fn power_off() -> ! {
    let mut reason = [0u32];
    let _ = with(SCHED_OP, &[2], &mut reason);
    loop {
        core::hint::spin_loop();
    }
}
