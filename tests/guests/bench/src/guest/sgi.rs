//! SGI round trips. The boot CPU starts a second CPU with PSCI CPU_ON; that
//! one wakes its redistributor, enables one SGI there and its CPU interface,
//! and waits for interrupts, counting each it takes (the vectors do). A
//! round trip: the boot CPU writes ICC_SGI1R_EL1 and waits until the count
//! has gone up. The second CPU waits in WFI (as an idle Linux CPU does; Xen
//! traps it and blocks the vCPU, so the SGI goes through its scheduler) or,
//! for the second figure, spins with IRQs unmasked (delivery alone). On a
//! GICv2 the SGI is a GICD_SGIR write to the CPU interface the second CPU
//! read from its GICD_ITARGETSR0, and the interrupts go through GICC.

use super::board::{Board, Gic};
use super::ops::{counter, frequency, read32, read64, time, write32};
use super::out::{Figure, Out};
use core::arch::asm;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

/// The SGI sent (Linux uses 0..7 for its IPIs; either hypervisor lets
/// Dom0 send any it does not keep for itself, and ours keeps 15).
const PING_SGI: u32 = 1;
/// Its priority: anything below the priority mask 0xff.
const PING_PRIORITY: u32 = 0xa0;

const PSCI_CPU_ON: u64 = 0xc400_0003;

/// The second CPU's progress, written by it, read by the boot CPU.
const STARTING: u64 = 0;
const READY: u64 = 1;
const NO_REDISTRIBUTOR: u64 = 2;
static mut SECONDARY_STATE: u64 = STARTING;
/// The redistributors' region, for the second CPU.
static mut REDISTRIBUTORS: (u64, u64) = (0, 0);
/// A GICv2's distributor and CPU interface, for the second CPU.
static mut GICV2: (u64, u64) = (0, 0);
/// The second CPU's GICv2 CPU interface bit, written by it.
static mut SECONDARY_INTERFACE: u32 = 0;
/// How the second CPU waits: in WFI while this is true, else spinning.
static mut IDLE_IN_WFI: bool = true;

/// How the second CPU waits for the next SGI.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    Wfi,
    Spin,
}

mod gicd {
    pub const CTLR: u64 = 0x0;
    pub const CTLR_ENABLE_G1: u32 = 1 << 0;
    pub const CTLR_ENABLE_G1A: u32 = 1 << 1;
    pub const CTLR_ARE: u32 = 1 << 4;
    pub const CTLR_RWP: u32 = 1 << 31;
}

/// GICv2: the distributor's SGI and banked per-CPU registers, and the CPU
/// interface's.
mod gicv2 {
    pub const GICD_ISENABLER0: u64 = 0x100;
    pub const GICD_IPRIORITYR: u64 = 0x400;
    pub const GICD_ITARGETSR0: u64 = 0x800;
    pub const GICD_SGIR: u64 = 0xf00;
    pub const GICC_CTLR: u64 = 0x0;
    pub const GICC_PMR: u64 = 0x4;
}

mod gicr {
    pub const TYPER: u64 = 0x8;
    pub const TYPER_VLPIS: u64 = 1 << 1;
    pub const TYPER_LAST: u64 = 1 << 4;
    pub const WAKER: u64 = 0x14;
    pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
    pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
    /// The SGI/PPI frame follows the control frame.
    pub const SGI_FRAME: u64 = 0x1_0000;
    pub const IGROUPR0: u64 = 0x80;
    pub const ISENABLER0: u64 = 0x100;
    pub const IPRIORITYR: u64 = 0x400;
}

fn mpidr() -> u64 {
    let value: u64;
    // SAFETY: reads a system register.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value & 0xff_00ff_ffff
}

/// Aff3.Aff2.Aff1.Aff0 as GICR_TYPER[63:32] holds it.
fn packed_affinity(mpidr: u64) -> u64 {
    ((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff)
}

/// ICC_SGI1R_EL1's value for `intid` to the one CPU `mpidr` (Aff0 < 16).
fn sgi1r(mpidr: u64, intid: u32) -> u64 {
    let aff = |n: u32| (mpidr >> (8 * n + if n == 3 { 8 } else { 0 })) & 0xff;
    aff(3) << 48 | aff(2) << 32 | u64::from(intid) << 24 | aff(1) << 16 | 1 << aff(0)
}

/// Polls `done` for up to `seconds`.
fn wait(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let (start, limit) = (counter(), seconds * frequency());
    while !done() {
        if counter() - start > limit {
            return false;
        }
    }
    true
}

fn psci(board: &Board, function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = function;
    // SAFETY: an SMCCC call; x0..x3 are its arguments and x0 its result,
    // and SMCCC 1.1 preserves the other registers.
    unsafe {
        if board.psci_hvc {
            asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _, options(nostack));
        } else {
            asm!("smc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _, options(nostack));
        }
    }
    x0 as i64
}

/// Turns on affinity routing and both groups at the distributor, as Linux
/// does (the hypervisor has, but Dom0 cannot know that).
fn enable_distributor(gicd: u64) {
    let settled = || read32(gicd + gicd::CTLR) & gicd::CTLR_RWP == 0;
    wait(1, settled);
    let ctlr = read32(gicd + gicd::CTLR);
    write32(gicd + gicd::CTLR, ctlr | gicd::CTLR_ARE | gicd::CTLR_ENABLE_G1A | gicd::CTLR_ENABLE_G1);
    wait(1, settled);
}

fn irqs_taken() -> u64 {
    // SAFETY: a plain read of a counter the other CPU's vectors write.
    unsafe { read_volatile(addr_of!(super::IRQS_TAKEN)) }
}

/// How an SGI is sent.
#[derive(Clone, Copy)]
enum Send {
    /// ICC_SGI1R_EL1's value.
    SystemRegister(u64),
    /// GICD_SGIR's address and value.
    Distributor(u64, u32),
}

/// One round trip; false if no answer came within a second.
fn ping(send: Send) -> bool {
    let answered = irqs_taken() + 1;
    match send {
        // SAFETY: sends an SGI (trapped by the hypervisor while it routes IRQs).
        Send::SystemRegister(value) => unsafe {
            asm!("dsb ishst", "msr s3_0_c12_c11_5, {}", "isb", in(reg) value, options(nostack, preserves_flags))
        },
        Send::Distributor(sgir, value) => write32(sgir, value),
    }
    wait(1, || irqs_taken() >= answered)
}

/// Round trips to the second CPU waiting as `idle` says; the first call
/// starts it.
pub fn round_trips(board: &Board, out: &mut Out, n: u64, idle: Idle) -> Figure {
    let gic = board.gic.ok_or("no GIC in the device tree")?;
    let me = mpidr();
    let target = board.cpus().iter().copied().find(|&id| id != me).ok_or("one CPU in the device tree")?;
    if target & 0xff >= 16 {
        return Err("the second CPU's Aff0 is 16 or more");
    }
    // SAFETY: only this CPU writes it; the second one reads it after each IRQ.
    unsafe { write_volatile(addr_of_mut!(IDLE_IN_WFI), idle == Idle::Wfi) };
    // SAFETY: written by the second CPU.
    if unsafe { read_volatile(addr_of!(SECONDARY_STATE)) } == STARTING {
        match gic.cpu_interface {
            None => enable_distributor(gic.distributor),
            Some(gicc) => {
                write32(gic.distributor + gicd::CTLR, read32(gic.distributor + gicd::CTLR) | 1);
                // SAFETY: read by the IRQ vectors and the second CPU, after this.
                unsafe {
                    write_volatile(addr_of_mut!(super::GICC_BASE), gicc);
                    write_volatile(addr_of_mut!(GICV2), (gic.distributor, gicc));
                }
            }
        }
        start_secondary(board, gic, target, out)?;
    }
    let value = match gic.cpu_interface {
        None => Send::SystemRegister(sgi1r(target, PING_SGI)),
        // SAFETY: written by the second CPU before it said READY.
        Some(_) => Send::Distributor(
            gic.distributor + gicv2::GICD_SGIR,
            unsafe { read_volatile(addr_of!(SECONDARY_INTERFACE)) } << 16 | PING_SGI,
        ),
    };
    // Warm-up, untimed; the first also shows the path works.
    for _ in 0..16 {
        if !ping(value) {
            return Err("the second CPU took no SGI within 1 s");
        }
    }
    let mut lost = 0;
    let timed = time(n, || lost += u64::from(!ping(value)));
    if lost > 0 {
        out.line(format_args!("bench: {lost} SGIs went unanswered for 1 s"));
        return Err("SGIs were lost");
    }
    Ok(timed)
}

fn start_secondary(board: &Board, gic: Gic, target: u64, out: &mut Out) -> Result<(), &'static str> {
    unsafe extern "C" {
        fn secondary_start();
    }
    // SAFETY: read by the second CPU only once it runs, after this.
    unsafe { write_volatile(addr_of_mut!(REDISTRIBUTORS), gic.redistributors) };
    let rc = psci(board, PSCI_CPU_ON, target, secondary_start as *const () as u64, 0);
    if rc != 0 {
        out.line(format_args!("bench: PSCI CPU_ON of {target:#x} returned {rc}"));
        return Err("PSCI CPU_ON failed");
    }
    // SAFETY: written by the second CPU.
    let state = || unsafe { read_volatile(addr_of!(SECONDARY_STATE)) };
    if !wait(2, || state() != STARTING) {
        return Err("the second CPU did not come up within 2 s");
    }
    match state() {
        READY => Ok(()),
        NO_REDISTRIBUTOR => Err("the second CPU found no redistributor with its affinity"),
        _ => Err("the second CPU is in an unknown state"),
    }
}

/// This CPU's redistributor in `[start, end)`, found by affinity.
fn own_redistributor((start, end): (u64, u64)) -> Option<u64> {
    let affinity = packed_affinity(mpidr());
    let mut frame = start;
    while frame < end {
        let typer = read64(frame + gicr::TYPER);
        if typer >> 32 == affinity {
            return Some(frame);
        }
        if typer & gicr::TYPER_LAST != 0 {
            return None;
        }
        frame += if typer & gicr::TYPER_VLPIS != 0 { 0x4_0000 } else { 0x2_0000 };
    }
    None
}

/// The second CPU, from `secondary_start` (MMU off, its own stack).
#[unsafe(no_mangle)]
extern "C" fn secondary_main(_context: u64) -> ! {
    // SAFETY: written by the boot CPU before CPU_ON.
    let (gicd, gicc) = unsafe { read_volatile(addr_of!(GICV2)) };
    if gicc != 0 {
        secondary_v2(gicd, gicc);
    }
    // SAFETY: written by the boot CPU before CPU_ON.
    let region = unsafe { read_volatile(addr_of!(REDISTRIBUTORS)) };
    let Some(rd) = own_redistributor(region) else {
        // SAFETY: only this CPU writes it.
        unsafe { write_volatile(addr_of_mut!(SECONDARY_STATE), NO_REDISTRIBUTOR) };
        loop {
            // SAFETY: waits; no memory effect.
            unsafe { asm!("wfe", options(nomem, nostack)) };
        }
    };
    write32(rd + gicr::WAKER, read32(rd + gicr::WAKER) & !gicr::WAKER_PROCESSOR_SLEEP);
    wait(1, || read32(rd + gicr::WAKER) & gicr::WAKER_CHILDREN_ASLEEP == 0);
    let sgi = rd + gicr::SGI_FRAME;
    write32(sgi + gicr::IGROUPR0, read32(sgi + gicr::IGROUPR0) | 1 << PING_SGI);
    let shift = 8 * (PING_SGI % 4);
    let priority = sgi + gicr::IPRIORITYR + u64::from(PING_SGI / 4) * 4;
    write32(priority, read32(priority) & !(0xff << shift) | PING_PRIORITY << shift);
    write32(sgi + gicr::ISENABLER0, 1 << PING_SGI);
    // SAFETY: the CPU interface: system registers on (SRE), every priority
    // let through (PMR), group 1 enabled; then IRQs unmasked.
    unsafe {
        asm!(
            "mrs {t}, s3_0_c12_c12_5", "orr {t}, {t}, #1", "msr s3_0_c12_c12_5, {t}", "isb",
            "mov {t}, #0xff", "msr s3_0_c4_c6_0, {t}",
            "mov {t}, #1", "msr s3_0_c12_c12_7, {t}", "isb",
            t = out(reg) _, options(nomem, nostack),
        );
        write_volatile(addr_of_mut!(SECONDARY_STATE), READY);
        asm!("msr daifclr, #2");
    }
    wait_for_sgis()
}

fn wait_for_sgis() -> ! {
    loop {
        // SAFETY: written by the boot CPU.
        if unsafe { read_volatile(addr_of!(IDLE_IN_WFI)) } {
            // SAFETY: waits for an interrupt, which the vectors take.
            unsafe { asm!("wfi", options(nomem, nostack)) };
        }
    }
}

/// The second CPU on a GICv2: its interface bit published, the SGI enabled
/// (banked), its CPU interface on with every priority let through.
fn secondary_v2(gicd: u64, gicc: u64) -> ! {
    let own = read32(gicd + gicv2::GICD_ITARGETSR0) & 0xff;
    let shift = 8 * (PING_SGI % 4);
    let priority = gicd + gicv2::GICD_IPRIORITYR + u64::from(PING_SGI / 4) * 4;
    write32(priority, read32(priority) & !(0xff << shift) | PING_PRIORITY << shift);
    write32(gicd + gicv2::GICD_ISENABLER0, 1 << PING_SGI);
    write32(gicc + gicv2::GICC_PMR, 0xff);
    write32(gicc + gicv2::GICC_CTLR, 1);
    // SAFETY: only this CPU writes them; then IRQs unmasked.
    unsafe {
        write_volatile(addr_of_mut!(SECONDARY_INTERFACE), own);
        write_volatile(addr_of_mut!(SECONDARY_STATE), READY);
        asm!("msr daifclr, #2");
    }
    wait_for_sgis()
}
