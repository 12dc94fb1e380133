//! `hostile=1`: the DomU as an adversary. It reaches for everything that is
//! not its own: memory at every guest-physical address outside its RAM
//! (where the host has Dom0's RAM, the hypervisor, devices), Dom0's calls
//! (console input, foreign maps, other domains' grant tables, event
//! channels and memory), hypercall buffers that point outside its RAM, and
//! vCPUs it does not have, and every register of its emulated GIC. Each
//! case states the one answer it expects: this hypervisor's, which is
//! Xen 4.17's answer to an unprivileged domain (an errno, a grant status,
//! an injected abort) except where `docs/xen-differences.md` says (Xen's
//! release build refuses a DomU's console_io before looking at its
//! buffer, for one); it runs only under ours. After each category
//! `xen_version` must still answer. Failures print as
//! `domu-probe: FAIL: hostile: ...`; each category ends with
//! `domu-probe: hostile: <category>: N cases, N ok`.
//!
//! Dom0 is the judge of "nothing else changed": it waits for this domain's
//! end (VIRQ_DOM_EXC) and then makes its own calls.

use super::{Report, fetch_faults, hypercall, read_faults, write_faults};
use core::arch::asm;
use core::fmt;
use core::ptr::addr_of_mut;

const MEMORY_OP: u64 = 12;
const XEN_VERSION: u64 = 17;
const CONSOLE_IO: u64 = 18;
const GRANT_TABLE_OP: u64 = 20;
const VCPU_OP: u64 = 24;
const SCHED_OP: u64 = 29;
const EVENT_CHANNEL_OP: u64 = 32;
const HVM_OP: u64 = 34;
const PLATFORM_OP: u64 = 7;

const EPERM: i64 = -1;
const ENOENT: i64 = -2;
const ESRCH: i64 = -3;
const EFAULT: i64 = -14;
const EINVAL: i64 = -22;

const DOMID_SELF: u16 = 0x7ff0;
/// A domain id nothing has.
const NO_DOMAIN: u16 = 0x7000;

/// A page of the DomU's own for hypercall arguments.
#[repr(C, align(4096))]
struct Page([u64; 512]);
static mut ARGS: Page = Page([0; 512]);

fn args() -> u64 {
    addr_of_mut!(ARGS) as u64
}

/// Writes `bytes` little-endian at `offset` in the argument page.
fn put(offset: u64, value: u64, bytes: usize) {
    let at = args() + offset;
    // SAFETY: the argument page is this DomU's own static; offsets stay inside it.
    unsafe { core::ptr::copy_nonoverlapping(value.to_le_bytes().as_ptr(), at as *mut u8, bytes) };
}

/// Reads `bytes` little-endian at `offset` of the argument page.
fn get(offset: u64, bytes: usize) -> u64 {
    let mut out = [0u8; 8];
    // SAFETY: as for `put`.
    unsafe { core::ptr::copy_nonoverlapping((args() + offset) as *const u8, out.as_mut_ptr(), bytes) };
    u64::from_le_bytes(out)
}

fn clear_args() {
    // SAFETY: as for `put`.
    unsafe { core::ptr::write_bytes(args() as *mut u8, 0, 4096) };
}

/// What the DomU knows of its world: its RAM, from its tree.
pub struct Own {
    pub ram: (u64, u64),
}

impl Own {
    fn in_ram(&self, address: u64) -> bool {
        (self.ram.0..self.ram.1).contains(&address)
    }
}

/// The emulated GIC's guest-physical window (Xen's GUEST_GIC* addresses):
/// what answers there is the GIC category's, not the memory sweep's.
const GIC_WINDOW: (u64, u64) = (0x0300_0000, 0x0400_0000);
/// Addresses of note in QEMU's virt host: its UART, GIC, Dom0's RAM (the
/// host's RAM starts where a DomU's does, so its IPAs above the DomU's
/// RAM are host RAM), a PCIe window.
const HOST_UART: u64 = 0x0900_0000;
const HOST_GICD: u64 = 0x0800_0000;
/// Past the RAM of any DomU under 256 MiB, as the tests give it.
const HOST_RAM: u64 = 0x5000_0000;
const HOST_PCIE: u64 = 0x1000_0000;

#[path = "../../../common/hostile_tally.rs"]
mod tally;

/// The run's tally: the probe's report, categories and cases.
type Hostile<'r> = tally::Tally<'r, Report>;

impl tally::Reporter for Report {
    fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) {
        Report::check(self, ok, what);
    }
    fn say(&mut self, what: fmt::Arguments<'_>) {
        Report::say(self, what);
    }
}

/// Every 64 KiB of the low 4 GiB and every 4 GiB above, up to the CPU's
/// 44-bit physical address space (QEMU's Cortex-A57; the MMU is off, so
/// an address past it would be the CPU's own fault, not the hypervisor's).
fn memory(h: &mut Hostile<'_>, own: &Own) {
    const POISON: u64 = 0xdead_beef_dead_beef;
    let low = (0..1u64 << 32).step_by(64 << 10);
    let high = ((1u64 << 32)..(1u64 << 44)).step_by(4 << 30);
    let outside = |a: &u64| !own.in_ram(*a) && !(GIC_WINDOW.0..GIC_WINDOW.1).contains(a);
    for page in low.chain(high).filter(outside) {
        // A different 8-byte-aligned offset in each page.
        let address = page + ((page >> 16) & 0xff8);
        h.aborts(read_faults(address), format_args!("a load from {address:#x}"));
        h.aborts(write_faults(address, POISON), format_args!("a store to {address:#x}"));
    }
    for (what, address) in [
        ("just past its RAM", own.ram.1),
        ("just below its RAM", own.ram.0 - 8),
        ("the host's UART", HOST_UART),
        ("the host's GIC distributor", HOST_GICD),
        ("host RAM above its own", HOST_RAM),
    ] {
        h.aborts(fetch_faults(address), format_args!("an instruction fetch from {what} at {address:#x}"));
    }
    // The last word of its RAM and one past: the first access is its own.
    let last = own.ram.1 - 8;
    h.case(read_faults(last).is_none(), format_args!("a load from its own last word at {last:#x}"));
}

/// Calls only Dom0 may make, and calls naming Dom0 or another domain's
/// state: refused with Xen's answer for an unprivileged caller.
fn dom0s_calls(h: &mut Hostile<'_>, own: &Own) {
    let buf = args();
    let rc = hypercall(CONSOLE_IO, [1 /* CONSOLEIO_read */, 8, buf]);
    h.expect(rc, EPERM, format_args!("CONSOLEIO_read"));

    // privcmd's foreign map of Dom0's frame, and of an unknown domain's:
    // per-entry answers in the error array.
    for (foreign, expected) in [(0u16, EPERM), (NO_DOMAIN, ESRCH), (1, EINVAL), (DOMID_SELF, EINVAL)] {
        clear_args();
        put(0, u64::from(DOMID_SELF), 2);
        put(2, 4 /* XENMAPSPACE_gmfn_foreign */, 2);
        put(4, 1, 2);
        put(6, u64::from(foreign), 2);
        put(8, buf + 0x100, 8);
        put(16, buf + 0x108, 8);
        put(24, buf + 0x110, 8);
        put(0x100, own.ram.0 >> 12, 8);
        put(0x108, own.ram.1 >> 12, 8);
        put(0x110, 0x7777, 4);
        let rc = hypercall(MEMORY_OP, [23 /* XENMEM_add_to_physmap_batch */, buf, 0]);
        let err = get(0x110, 4) as u32 as i32 as i64;
        h.case(
            rc == 0 && err == expected,
            format_args!(
                "a gmfn_foreign map naming domain {foreign:#x}: expected 0 and {expected}, got {rc} and {err}"
            ),
        );
    }

    // Memory calls on Dom0's behalf: Xen's XSM says -EPERM to a domain
    // that is not the target's controller; an unknown domain is -ESRCH.
    for (domid, expected) in [(0u16, EPERM), (NO_DOMAIN, ESRCH)] {
        clear_args();
        put(0, u64::from(domid), 2);
        put(4, 2 /* XENMAPSPACE_gmfn */, 4);
        put(8, own.ram.0 >> 12, 8);
        put(16, own.ram.1 >> 12, 8);
        let rc = hypercall(MEMORY_OP, [7 /* XENMEM_add_to_physmap */, buf, 0]);
        h.expect(rc, expected, format_args!("add_to_physmap into domain {domid:#x}"));

        clear_args();
        put(0, u64::from(domid), 2);
        put(8, HOST_RAM >> 12, 8);
        let rc = hypercall(MEMORY_OP, [15 /* XENMEM_remove_from_physmap */, buf, 0]);
        h.expect(rc, expected, format_args!("remove_from_physmap from domain {domid:#x}"));

        // Xen's reservations answer with the extents done: none.
        for (cmd, name) in [(1u64, "decrease_reservation"), (6, "populate_physmap")] {
            clear_args();
            put(0, buf + 0x100, 8);
            put(8, 1, 8);
            put(24, u64::from(domid), 2);
            put(0x100, HOST_RAM >> 12, 8);
            let rc = hypercall(MEMORY_OP, [cmd, buf, 0]);
            h.expect(rc, 0, format_args!("{name} for domain {domid:#x}: none done"));
        }
    }

    // Grant tables: Dom0's table is not the DomU's to set up or size
    // (status per op); Dom0 granted it nothing.
    for (domid, status) in [(0u16, -8i64 /* GNTST_permission_denied */), (NO_DOMAIN, -2 /* GNTST_bad_domain */)] {
        clear_args();
        put(0, u64::from(domid), 2);
        let rc = hypercall(GRANT_TABLE_OP, [6 /* GNTTABOP_query_size */, buf, 1]);
        let got = get(12, 2) as u16 as i16 as i64;
        h.case(
            rc == 0 && got == status,
            format_args!("query_size of domain {domid:#x}: expected 0 and {status}, got {rc} and {got}"),
        );
    }
    for (domid, grant, status) in
        [(0u16, 0x7fff_ffffu64, -3i64 /* GNTST_bad_gntref */), (NO_DOMAIN, 8, -2 /* GNTST_bad_domain */)]
    {
        clear_args();
        put(0, own.ram.1 - 0x1000, 8);
        put(8, 2 /* GNTMAP_host_map */, 4);
        put(12, grant, 4);
        put(16, u64::from(domid), 2);
        let rc = hypercall(GRANT_TABLE_OP, [0 /* GNTTABOP_map_grant_ref */, buf, 1]);
        let got = get(18, 2) as u16 as i16 as i64;
        h.case(
            rc == 0 && got == status,
            format_args!("map of domain {domid:#x}'s grant {grant:#x}: expected 0 and {status}, got {rc} and {got}"),
        );
    }

    // Event channels: Dom0's ports are not the DomU's to make, query or
    // bind unless Dom0 offered one to it.
    clear_args();
    put(0, 0, 2);
    put(2, 1, 2);
    let rc = hypercall(EVENT_CHANNEL_OP, [6 /* EVTCHNOP_alloc_unbound */, buf, 0]);
    h.expect(rc, EPERM, format_args!("alloc_unbound in Dom0's table"));
    clear_args();
    put(0, 0, 2);
    put(4, 1, 4);
    let rc = hypercall(EVENT_CHANNEL_OP, [5 /* EVTCHNOP_status */, buf, 0]);
    h.expect(rc, EPERM, format_args!("status of Dom0's port 1"));
    for (remote, port, expected) in [(0u16, 1u64, EINVAL), (0, 0xffff_ffff, EINVAL), (NO_DOMAIN, 1, ESRCH)] {
        clear_args();
        put(0, u64::from(remote), 2);
        put(4, port, 4);
        let rc = hypercall(EVENT_CHANNEL_OP, [0 /* EVTCHNOP_bind_interdomain */, buf, 0]);
        h.expect(rc, expected, format_args!("bind_interdomain to domain {remote:#x} port {port:#x}"));
    }

    // Shutting another domain down, the platform's clock.
    for (domid, expected) in [(0u16, EPERM), (NO_DOMAIN, ESRCH)] {
        clear_args();
        put(0, u64::from(domid), 2);
        put(4, 0 /* SHUTDOWN_poweroff */, 4);
        let rc = hypercall(SCHED_OP, [4 /* SCHEDOP_remote_shutdown */, buf, 0]);
        h.expect(rc, expected, format_args!("remote_shutdown of domain {domid:#x}"));
    }
    clear_args();
    put(0, 62 /* XENPF_settime64 */, 4);
    put(4, 0x0300_0001, 4);
    let rc = hypercall(PLATFORM_OP, [buf, 0, 0]);
    h.expect(rc, EPERM, format_args!("platform_op settime64"));

    // vCPUs it does not have; bringing vCPUs up is PSCI's on Arm.
    for vcpu in [1u64, 7, 0xffff_ffff] {
        clear_args();
        put(0, own.ram.0 >> 12, 8);
        let rc = hypercall(VCPU_OP, [10 /* VCPUOP_register_vcpu_info */, vcpu, buf]);
        h.expect(rc, ENOENT, format_args!("register_vcpu_info for vCPU {vcpu:#x}"));
        let rc = hypercall(VCPU_OP, [1 /* VCPUOP_up */, vcpu, 0]);
        h.expect(rc, EINVAL, format_args!("VCPUOP_up of vCPU {vcpu:#x}: not on Arm"));
    }
}

/// Hypercall buffers where the DomU has no RAM: at host RAM, devices and
/// the hypervisor's memory, as IPAs. A 1:1 guest's pointer there would be
/// host memory; a DomU's is nothing, and every call says -EFAULT without
/// reading or writing there.
fn foreign_pointers(h: &mut Hostile<'_>, own: &Own) {
    let places = [
        ("just past its RAM", own.ram.1),
        ("host RAM", HOST_RAM),
        ("host RAM far above", 0x8000_0000),
        ("the host's UART", HOST_UART),
        ("a PCIe window", HOST_PCIE),
        ("address 0", 0),
        // Every struct below is longer than 2 bytes.
        ("its RAM's last 2 bytes and beyond", own.ram.1 - 2),
    ];
    for (what, at) in places {
        let calls: [(&str, u64, [u64; 3]); 8] = [
            ("console_io write", CONSOLE_IO, [0, 16, at]),
            ("xen_version extraversion", XEN_VERSION, [1, at, 0]),
            ("add_to_physmap", MEMORY_OP, [7, at, 0]),
            ("alloc_unbound", EVENT_CHANNEL_OP, [6, at, 0]),
            ("query_size", GRANT_TABLE_OP, [6, at, 1]),
            ("shutdown", SCHED_OP, [2, at, 0]),
            ("register_vcpu_info", VCPU_OP, [10, 0, at]),
            ("hvm get_param", HVM_OP, [1, at, 0]),
        ];
        for (name, number, a) in calls {
            let rc = hypercall(number, a);
            h.expect(rc, EFAULT, format_args!("{name} with its buffer at {what} ({at:#x})"));
        }
    }
    // A vcpu_info registered on a frame that is not its RAM.
    for (what, gfn) in [("host RAM", HOST_RAM >> 12), ("past its RAM", own.ram.1 >> 12), ("no frame", u64::MAX)] {
        clear_args();
        put(0, gfn, 8);
        let rc = hypercall(VCPU_OP, [10 /* VCPUOP_register_vcpu_info */, 0, args()]);
        h.expect(rc, EINVAL, format_args!("vcpu_info on {what} (gfn {gfn:#x})"));
    }
    // Handing back frames it does not have: none done.
    clear_args();
    put(0, args() + 0x100, 8);
    put(8, 2, 8);
    put(24, u64::from(DOMID_SELF), 2);
    put(0x100, HOST_RAM >> 12, 8);
    put(0x108, (own.ram.1 >> 12) + 1, 8);
    let rc = hypercall(MEMORY_OP, [1 /* XENMEM_decrease_reservation */, args(), 0]);
    h.expect(rc, 0, format_args!("decrease_reservation of host RAM and past its RAM: none done"));
}

/// A store of the low `width` bytes of `value` at `at` (aligned to it).
fn store_faults(at: u64, value: u64, width: u64) -> Option<u64> {
    // SAFETY: aimed only at its emulated GIC; an abort is recorded and
    // skipped by the probe's handler.
    super::faults(|| unsafe {
        match width {
            1 => asm!("strb {v:w}, [{a}]", a = in(reg) at, v = in(reg) value, options(nostack)),
            2 => asm!("strh {v:w}, [{a}]", a = in(reg) at, v = in(reg) value, options(nostack)),
            4 => asm!("str {v:w}, [{a}]", a = in(reg) at, v = in(reg) value, options(nostack)),
            _ => asm!("str {v}, [{a}]", a = in(reg) at, v = in(reg) value, options(nostack)),
        }
    })
}

/// A 4-byte load at `at`.
fn load_faults(at: u64) -> Option<u64> {
    // SAFETY: as for `store_faults`; the value read is discarded.
    super::faults(|| unsafe { asm!("ldr {v:w}, [{a}]", a = in(reg) at, v = out(reg) _, options(nostack)) })
}

/// An SGI register write: ICC_SGI1R_EL1 on a GICv3, which traps.
fn sgi1r_faults(value: u64) -> Option<u64> {
    // SAFETY: a system register write the hypervisor emulates; an
    // exception would be recorded and skipped.
    super::faults(|| unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) value, options(nostack)) })
}

/// Its emulated GIC: every word of its distributor and redistributor
/// frames read, and written with 0, all-ones and a value of its address;
/// every doubleword, halfword and byte written once; then the SGI register
/// with every kind of target (its own vCPU, others it does not have,
/// everyone). The emulation answers every aligned access (what a GIC
/// lacks reads as zero and ignores writes): none may abort, the
/// hypervisor must still answer, and once it has set its GIC up again
/// its timer and an SGI must work as before. Dom0 and the machine going on
/// is the test's to see.
fn emulated_gic(h: &mut Hostile<'_>, _: &Own) {
    const GICD: u64 = 0x0300_1000;
    const GICR: u64 = 0x0302_0000;
    let v2 = crate::interrupts::detect();
    let frames: &[(u64, u64)] = if v2 { &[(GICD, 0x1000)] } else { &[(GICD, 0x1_0000), (GICR, 0x2_0000)] };
    let scramble = |at: u64| at.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    for &(base, size) in frames {
        for at in (base..base + size).step_by(4) {
            h.case(load_faults(at).is_none(), format_args!("a 4-byte load at {at:#x} aborted"));
            for value in [0, u64::MAX, scramble(at)] {
                let esr = store_faults(at, value, 4);
                h.case(esr.is_none(), format_args!("a 4-byte store of {value:#x} at {at:#x} aborted ({esr:x?})"));
            }
        }
        for at in (base..base + size).step_by(8) {
            for width in [1, 2, 8] {
                let esr = store_faults(at, scramble(at + width), width);
                h.case(esr.is_none(), format_args!("a {width}-byte store at {at:#x} aborted ({esr:x?})"));
            }
        }
    }
    if v2 {
        // GICD_SGIR: each target filter with several lists.
        for filter in 0..4u64 {
            for targets in [0u64, 1, 2, 0xfe, 0xff] {
                for intid in 0..16u64 {
                    let value = filter << 24 | targets << 16 | intid;
                    let esr = store_faults(GICD + 0xf00, value, 4);
                    h.case(esr.is_none(), format_args!("GICD_SGIR {value:#x} aborted ({esr:x?})"));
                }
            }
        }
    } else {
        // ICC_SGI1R_EL1: Aff3.Aff2.Aff1 of nobody and of itself, target
        // lists of itself, of vCPUs it lacks and of all, IRM.
        for irm in [0u64, 1] {
            for affinity in [0u64, 1, 0xff, 0xff_ffff] {
                for targets in [0u64, 1, 2, 0xfffe, 0xffff] {
                    for intid in [0u64, 3, 7, 15] {
                        let value = (affinity & 0xff) << 16
                            | (affinity >> 8 & 0xff) << 32
                            | (affinity >> 16) << 48
                            | irm << 40
                            | intid << 24
                            | targets;
                        let esr = sgi1r_faults(value);
                        h.case(esr.is_none(), format_args!("ICC_SGI1R_EL1 {value:#x} trapped badly ({esr:x?})"));
                    }
                }
            }
        }
    }
    crate::interrupts::recheck_after_attack(&mut |ok, what| h.case(ok, what));
}

/// Firmware calls naming vCPUs it does not have.
fn firmware(h: &mut Hostile<'_>, _: &Own) {
    const CPU_ON: u64 = 0xc400_0003;
    const AFFINITY_INFO: u64 = 0xc400_0004;
    const INVALID_PARAMETERS: i64 = -2;
    const ALREADY_ON: i64 = -4;
    const NOT_SUPPORTED: i64 = -1;
    for mpidr in [1u64, 0x100, u64::MAX] {
        let rc = super::psci(CPU_ON, [mpidr, 0x4000_0000, 0]);
        h.expect(rc, INVALID_PARAMETERS, format_args!("CPU_ON of MPIDR {mpidr:#x}"));
        let rc = super::psci(AFFINITY_INFO, [mpidr, 0, 0]);
        h.expect(rc, INVALID_PARAMETERS, format_args!("AFFINITY_INFO of MPIDR {mpidr:#x}"));
    }
    let rc = super::psci(CPU_ON, [0, 0x4000_0000, 0]);
    h.expect(rc, ALREADY_ON, format_args!("CPU_ON of itself"));
    for function in [0x8400_00ffu64, 0xc400_0005 /* MIGRATE */, 0x8600_0000 /* a trusted OS's */] {
        let rc = super::psci(function, [0, 0, 0]);
        h.expect(rc, NOT_SUPPORTED, format_args!("SMCCC function {function:#x}"));
    }
}

/// Waits (at most a minute) for Dom0 to say it listens for this domain's
/// end: a port in this domain's table, unbound for Dom0, which Dom0 makes
/// once it has bound VIRQ_DOM_EXC. The port, if it came.
pub(crate) fn wait_for_dom0() -> Option<u32> {
    let counter = || {
        let ticks: u64;
        // SAFETY: reads a register.
        unsafe { core::arch::asm!("isb", "mrs {t}, cntvct_el0", t = out(reg) ticks, options(nostack)) };
        ticks
    };
    let hz = {
        let hz: u64;
        // SAFETY: reads a register.
        unsafe { core::arch::asm!("mrs {f}, cntfrq_el0", f = out(reg) hz, options(nostack)) };
        hz.max(1)
    };
    let start = counter();
    while counter() - start < 60 * hz {
        for port in 1..8u64 {
            clear_args();
            put(0, u64::from(DOMID_SELF), 2);
            put(4, port, 4);
            let rc = hypercall(EVENT_CHANNEL_OP, [5 /* EVTCHNOP_status */, args(), 0]);
            // EVTCHNSTAT_unbound, for domain 0.
            if rc == 0 && get(8, 4) == 1 && get(16, 2) == 0 {
                return Some(port as u32);
            }
        }
    }
    None
}

/// A category's cases.
type Cases = fn(&mut Hostile<'_>, &Own);

/// The categories in the order they run.
const CATEGORIES: [(&str, Cases); 5] = [
    ("memory outside its RAM", memory),
    ("Dom0's calls and other domains' state", dom0s_calls),
    ("buffers outside its RAM", foreign_pointers),
    ("firmware", firmware),
    ("its emulated GIC", emulated_gic),
];

/// Runs every category against the hypervisor, then reports the total.
pub fn run(report: &mut Report, own: &Own) {
    match wait_for_dom0() {
        Some(port) => report.say(format_args!("hostile: Dom0 listens (its port {port} in this domain's table)")),
        None => report.check(false, format_args!("hostile: Dom0 said it listens within a minute")),
    }
    report.say(format_args!("hostile: against this hypervisor, RAM {:#x}->{:#x}", own.ram.0, own.ram.1));
    let mut h = Hostile::new(report, || hypercall(XEN_VERSION, [0, 0, 0]));
    for (name, cases) in CATEGORIES {
        h.category(name, |h| cases(h, own));
    }
    h.finish();
}
