//! The DomU probe's interrupt checks (bootarg `check-interrupts=1`): it
//! brings up the GIC its tree names at Xen's guest addresses (GICv3 with
//! the system-register CPU interface, or GICv2 with the GICC at
//! 0x0300_2000), then checks that the virtual timer's PPI arrives only
//! once enabled, that an SGI to itself arrives, that an event sent on a
//! loopback event channel raises the upcall PPI with the port's pending
//! bit in shared_info, and that the identification registers read sane
//! values. Each is one `check` line; the caller reports them. The vPL011
//! checks (`vpl011.rs`) use its GIC bring-up and vectors too.

use core::arch::{asm, global_asm};
use core::fmt;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Xen's guest layout (`public/arch-arm.h`).
const GICD: u64 = 0x0300_1000;
const GICR: u64 = 0x0302_0000;
const GICC: u64 = 0x0300_2000;
const TIMER_PPI: u32 = 27;
const EVENT_PPI: u32 = 31;
const SELF_SGI: u32 = 3;
const PRIORITY: u8 = 0xa0;

const EVENT_CHANNEL_OP: u64 = 32;
const MEMORY_OP: u64 = 12;
const EVTCHNOP_BIND_INTERDOMAIN: u64 = 0;
const EVTCHNOP_SEND: u64 = 4;
const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMAPSPACE_SHARED_INFO: u32 = 0;
const DOMID_SELF: u16 = 0x7ff0;

/// INTIDs taken (bit n: INTID n), and whether the GIC is a GICv2.
static TAKEN: AtomicU64 = AtomicU64::new(0);
static GICV2: AtomicBool = AtomicBool::new(false);

/// The page shared_info is mapped over.
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut SHARED_INFO: Page = Page([0; 4096]);

global_asm!(
    r#"
.section .text
.balign 0x800
probe_irq_vectors:
    .rept 4
    .balign 0x80
1:  b       1b
    .endr
    .balign 0x80
    b       probe_irq_sync
    .balign 0x80
    b       probe_irq_entry
    .rept 10
    .balign 0x80
1:  b       1b
    .endr

/* A synchronous exception while these vectors are in: record and skip. */
probe_irq_sync:
    stp     x9, x10, [sp, #-16]!
    mrs     x9, esr_el1
    ldr     x10, =LAST_ESR
    str     x9, [x10]
    mrs     x9, elr_el1
    add     x9, x9, #4
    msr     elr_el1, x9
    ldp     x9, x10, [sp], #16
    eret

/* An IRQ: the caller-saved registers kept around the Rust handler. */
probe_irq_entry:
    sub     sp, sp, #160
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x30, [sp, #144]
    bl      probe_irq
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x30, [sp, #144]
    add     sp, sp, #160
    eret
"#
);

unsafe extern "C" {
    static probe_irq_vectors: u8;
}

fn read32(address: u64) -> u32 {
    // SAFETY: the GIC's guest frames, Device memory with the MMU off; an
    // abort is recorded and skipped by the vectors installed.
    unsafe { read_volatile(address as *const u32) }
}

fn write32(address: u64, value: u32) {
    // SAFETY: as in `read32`.
    unsafe { write_volatile(address as *mut u32, value) }
}

fn read64(address: u64) -> u64 {
    // SAFETY: as in `read32`.
    unsafe { read_volatile(address as *const u64) }
}

fn write8(address: u64, value: u8) {
    // SAFETY: as in `read32`.
    unsafe { write_volatile(address as *mut u8, value) }
}

/// Acknowledges the interrupt taken, records it, and ends it.
#[unsafe(no_mangle)]
extern "C" fn probe_irq() {
    let v2 = GICV2.load(Ordering::Relaxed);
    let iar: u64 = if v2 {
        u64::from(read32(GICC + 0xc))
    } else {
        let iar: u64;
        // SAFETY: reading the CPU interface's acknowledge register.
        unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) iar, options(nostack)) };
        iar
    };
    let intid = iar & 0x3ff;
    if intid >= 1020 {
        return;
    }
    if intid == u64::from(TIMER_PPI) {
        // SAFETY: the timer off: its interrupt was seen.
        unsafe { asm!("msr cntv_ctl_el0, xzr", "isb", options(nostack)) };
    }
    if intid == u64::from(crate::vpl011::SPI) {
        crate::vpl011::interrupt();
    }
    TAKEN.fetch_or(1 << intid, Ordering::Relaxed);
    if v2 {
        write32(GICC + 0x10, iar as u32);
    } else {
        // SAFETY: ending the interrupt acknowledged (EOImode 0: deactivates too).
        unsafe { asm!("msr icc_eoir1_el1, {}", "isb", in(reg) iar, options(nostack)) };
    }
}

pub fn counter() -> (u64, u64) {
    let (now, hz): (u64, u64);
    // SAFETY: reading the virtual counter and its frequency.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", "mrs {}, cntfrq_el0", out(reg) now, out(reg) hz, options(nostack)) };
    (now, hz)
}

/// Waits up to `ms` milliseconds for `intid` to be taken.
fn wait_for(intid: u32, ms: u64) -> bool {
    let (start, hz) = counter();
    loop {
        if TAKEN.load(Ordering::Relaxed) & (1 << intid) != 0 {
            return true;
        }
        if counter().0 - start > hz / 1000 * ms {
            return false;
        }
        core::hint::spin_loop();
    }
}

fn hypercall(number: u64, a: [u64; 2]) -> i64 {
    let result: u64;
    // SAFETY: the hypervisor writes only memory we point it at, and x0..x4.
    unsafe {
        asm!("hvc #0xea1", inout("x0") a[0] => result, inout("x1") a[1] => _, out("x2") _,
             out("x3") _, out("x4") _, in("x16") number, options(nostack))
    };
    result as i64
}

/// The private interrupt `intid`'s enable and priority in this vCPU's
/// redistributor (GICv3) or the banked distributor registers (GICv2).
fn private_frame() -> u64 {
    if GICV2.load(Ordering::Relaxed) { GICD } else { GICR + 0x1_0000 }
}

fn enable(intid: u32) {
    write8(private_frame() + 0x400 + u64::from(intid), PRIORITY);
    write32(private_frame() + 0x100, 1 << intid);
}

fn disable(intid: u32) {
    write32(private_frame() + 0x180, 1 << intid);
}

/// Runs the checks, each reported through `check`.
pub fn run(check: &mut dyn FnMut(bool, fmt::Arguments<'_>)) {
    let v2 = detect();
    let typer = read32(GICD + 0x4);
    let iidr = read32(GICD + 0x8);
    if v2 {
        check(
            typer & 0x1f >= 1 && iidr != 0,
            format_args!("GICv2 distributor: PIDR2.ArchRev 2, TYPER {typer:#x} (ITLinesNumber >= 1), IIDR {iidr:#x}"),
        );
    } else {
        let pidr2 = read32(GICD + 0xffe8);
        let gicr_typer = read64(GICR + 0x8);
        let gicr_pidr2 = read32(GICR + 0xffe8);
        check(
            (pidr2 >> 4) & 0xf == 3 && (gicr_pidr2 >> 4) & 0xf == 3 && typer & 0x1f >= 1 && iidr != 0,
            format_args!(
                "GICv3 distributor: PIDR2 {pidr2:#x}, TYPER {typer:#x}, IIDR {iidr:#x}; GICR PIDR2 {gicr_pidr2:#x}"
            ),
        );
        check(
            gicr_typer >> 32 == 0 && gicr_typer & (1 << 4) != 0,
            format_args!("GICR_TYPER {gicr_typer:#x}: affinity 0 (vCPU 0), Last"),
        );
    }

    let old_vbar = start(check);
    timer_and_sgi(check, v2);
    event_upcall(check);
    stop(old_vbar);
}

/// After a guest wrote over every register of its GIC (the hostile
/// probe's attack): the GIC brought up again with nothing pending or
/// active, what the attack left in flight drained, then the timer and an
/// SGI must work as before.
pub fn recheck_after_attack(check: &mut dyn FnMut(bool, fmt::Arguments<'_>)) {
    let v2 = detect();
    // ICENABLER, ICPENDR and ICACTIVER of every interrupt it has.
    let banks: &[(u64, u64)] = if v2 { &[(GICD, 2)] } else { &[(GICD, 2), (GICR + 0x1_0000, 1)] };
    for &(base, count) in banks {
        for i in 0..count {
            for clear in [0x180, 0x280, 0x380] {
                write32(base + clear + i * 4, u32::MAX);
            }
        }
    }
    let old_vbar = start(check);
    // What the attack raised may still sit in its list registers.
    let (begin, hz) = counter();
    while counter().0 - begin < hz / 50 {
        core::hint::spin_loop();
    }
    TAKEN.store(0, Ordering::Relaxed);
    timer_and_sgi(check, v2);
    stop(old_vbar);
}

/// The virtual timer only once enabled, then an SGI to itself.
fn timer_and_sgi(check: &mut dyn FnMut(bool, fmt::Arguments<'_>), v2: bool) {
    // The virtual timer, due in 5 ms, while its PPI is disabled: nothing.
    disable(TIMER_PPI);
    let (now, hz) = counter();
    // SAFETY: the virtual timer programmed and on, unmasked.
    unsafe {
        asm!("msr cntv_cval_el0, {due}", "mov {t}, #1", "msr cntv_ctl_el0, {t}", "isb",
             due = in(reg) now + hz / 200, t = out(reg) _, options(nostack))
    };
    let early = wait_for(TIMER_PPI, 30);
    check(!early, format_args!("the virtual timer's PPI 27 is not delivered while disabled"));
    enable(TIMER_PPI);
    let arrived = wait_for(TIMER_PPI, 100);
    check(arrived, format_args!("the virtual timer's PPI 27 arrives once enabled"));

    // An SGI to itself.
    enable(SELF_SGI);
    if v2 {
        // Target list filter 0b10: the writer alone.
        write32(GICD + 0xf00, 2 << 24 | SELF_SGI);
    } else {
        // Aff3.Aff2.Aff1 0, target list bit 0 (Aff0 0: vCPU 0).
        let value = u64::from(SELF_SGI) << 24 | 1;
        // SAFETY: a group 1 SGI to this vCPU.
        unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) value, options(nostack)) };
    }
    check(wait_for(SELF_SGI, 100), format_args!("SGI {SELF_SGI} to itself arrives"));
}

/// Brings the GIC up as Linux does, installs vectors that take IRQs and
/// unmasks them; the old vectors, for [`stop`].
pub fn start(check: &mut dyn FnMut(bool, fmt::Arguments<'_>)) -> u64 {
    let v2 = GICV2.load(Ordering::Relaxed);
    if v2 {
        write32(GICD, 1);
        write32(GICC + 0x4, 0xf0);
        write32(GICC, 1);
    } else {
        write32(GICR + 0x14, 0);
        let (start, hz) = counter();
        while read32(GICR + 0x14) & 0b100 != 0 && counter().0 - start < hz / 10 {}
        let waker = read32(GICR + 0x14);
        check(waker == 0, format_args!("GICR_WAKER {waker:#x}: awake once ProcessorSleep is cleared"));
        // ARE_NS, EnableGrp1A, EnableGrp1 (Linux's value).
        write32(GICD, 0x13);
        // SAFETY: the system-register CPU interface on, every priority let through, group 1 on.
        unsafe {
            asm!(
                "mrs {t}, icc_sre_el1", "orr {t}, {t}, #1", "msr icc_sre_el1, {t}", "isb",
                "mov {t}, #0xff", "msr icc_pmr_el1, {t}",
                "msr icc_bpr1_el1, xzr",
                "mov {t}, #1", "msr icc_igrpen1_el1, {t}", "isb",
                t = out(reg) _, options(nostack),
            )
        };
    }
    let old_vbar: u64;
    // SAFETY: these vectors take the IRQs (and record synchronous
    // exceptions like the probe's own); the old ones come back at the end.
    unsafe {
        asm!("mrs {old}, vbar_el1", "msr vbar_el1, {new}", "isb", "msr daifclr, #2",
             old = out(reg) old_vbar, new = in(reg) &raw const probe_irq_vectors as u64, options(nostack))
    };
    old_vbar
}

/// Masks IRQs again and puts the probe's own vectors back.
pub fn stop(old_vbar: u64) {
    // SAFETY: IRQs masked again and the probe's vectors back.
    unsafe { asm!("msr daifset, #2", "msr vbar_el1, {}", "isb", in(reg) old_vbar, options(nostack)) };
}

/// Finds which GIC the guest has (a GICv2's PIDR2 is at 0xfe8 of its
/// 4 KiB distributor; there a GICv3's reads as zero).
pub fn detect() -> bool {
    let v2 = (read32(GICD + 0xfe8) >> 4) & 0xf == 2;
    GICV2.store(v2, Ordering::Relaxed);
    v2
}

/// Enables SPI `intid` at the distributor, routed to vCPU 0.
pub fn enable_spi(intid: u32) {
    write8(GICD + 0x400 + u64::from(intid), PRIORITY);
    if GICV2.load(Ordering::Relaxed) {
        // ITARGETSR: CPU interface 0.
        write8(GICD + 0x800 + u64::from(intid), 1);
    }
    write32(GICD + 0x100 + u64::from(intid / 32) * 4, 1 << (intid % 32));
}

/// A loopback event channel: a port bound to another port of its own
/// domain (EVTCHNOP_alloc_unbound with remote_dom DOMID_SELF, then
/// EVTCHNOP_bind_interdomain to it), an EVTCHNOP_send on one end, and the
/// upcall PPI with the other end's pending bit in shared_info.
fn event_upcall(check: &mut dyn FnMut(bool, fmt::Arguments<'_>)) {
    let page = &raw mut SHARED_INFO as u64;
    // struct xen_add_to_physmap { u16 domid, size; u32 space; u64 idx, gpfn; }
    let mut map = [0u64; 3];
    map[0] = u64::from(DOMID_SELF) | u64::from(XENMAPSPACE_SHARED_INFO) << 32;
    map[2] = page >> 12;
    let mapped = hypercall(MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP, map.as_mut_ptr() as u64]);
    // struct evtchn_alloc_unbound { u16 dom, remote_dom; u32 port; }
    let mut unbound = [0u32; 2];
    unbound[0] = u32::from(DOMID_SELF) | u32::from(DOMID_SELF) << 16;
    let allocated = hypercall(EVENT_CHANNEL_OP, [EVTCHNOP_ALLOC_UNBOUND, unbound.as_mut_ptr() as u64]);
    let remote_port = unbound[1];
    // struct evtchn_bind_interdomain { u16 remote_dom; u32 remote_port, local_port; }
    let mut bind = [u32::from(DOMID_SELF), remote_port, 0];
    let bound = hypercall(EVENT_CHANNEL_OP, [EVTCHNOP_BIND_INTERDOMAIN, bind.as_mut_ptr() as u64]);
    let local_port = bind[2];
    check(
        mapped == 0 && allocated == 0 && bound == 0,
        format_args!(
            "shared_info mapped ({mapped}), loopback ports {remote_port} and {local_port} ({allocated}, {bound})"
        ),
    );
    enable(EVENT_PPI);
    // Binding raises the upcall once (as Xen does): take it, and clear
    // what it left as Linux's handler would, so only the send can raise
    // the one checked below.
    let bound_upcall = wait_for(EVENT_PPI, 100);
    let word = page + 48 + u64::from(remote_port / 64) * 8;
    // SAFETY: the shared_info page, mapped over our own page: vcpu_info[0]
    // (upcall_pending at 0, the selector at 8), then evtchn_pending.
    unsafe {
        write_volatile(page as *mut u8, 0);
        write_volatile((page + 8) as *mut u64, 0);
        write_volatile(word as *mut u64, 0);
    }
    TAKEN.fetch_and(!(1 << EVENT_PPI), Ordering::Relaxed);
    check(bound_upcall, format_args!("binding the loopback channel raised PPI {EVENT_PPI} once, as Xen"));
    let mut send = [local_port];
    let sent = hypercall(EVENT_CHANNEL_OP, [EVTCHNOP_SEND, send.as_mut_ptr() as u64]);
    let arrived = wait_for(EVENT_PPI, 100);
    // shared_info on Arm: one legacy vcpu_info of 48 bytes, then evtchn_pending[64] of u64.
    // SAFETY: the shared_info page, mapped over our own page.
    let pending = unsafe { read_volatile(word as *const u64) } & (1 << (remote_port % 64)) != 0;
    // SAFETY: as above; vcpu_info[0].evtchn_upcall_pending is its first byte.
    let upcall = unsafe { read_volatile(page as *const u8) };
    check(
        sent == 0 && arrived && pending,
        format_args!(
            "an event sent on port {local_port} raises PPI {EVENT_PPI} ({arrived}) with port {remote_port} pending ({pending}, upcall_pending {upcall})"
        ),
    );
}
