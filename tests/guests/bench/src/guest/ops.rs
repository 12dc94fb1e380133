//! The timed operations, the counter, and MMIO accessors whose loads and
//! stores a hypervisor can decode (one register, no write-back).

use super::board::Board;
use super::out::{Figure, Out};
use core::arch::asm;
use core::ptr::{addr_of, read_volatile};

/// Ticks of the virtual counter over `iterations` operations.
#[derive(Clone, Copy)]
pub struct Timed {
    pub ticks: u64,
    pub iterations: u64,
}

/// CNTFRQ_EL0.
pub fn frequency() -> u64 {
    let hz: u64;
    // SAFETY: reads a system register.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) hz, options(nomem, nostack, preserves_flags)) };
    hz
}

/// CNTVCT_EL0, read once the instructions before it are done.
pub fn counter() -> u64 {
    let ticks: u64;
    // SAFETY: reads a system register.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack, preserves_flags)) };
    ticks
}

/// `op` run `iterations` times between two counter reads.
pub fn time(iterations: u64, mut op: impl FnMut()) -> Timed {
    let start = counter();
    for _ in 0..iterations {
        op();
    }
    Timed { ticks: counter() - start, iterations }
}

pub fn read32(addr: u64) -> u32 {
    let value: u32;
    // SAFETY: the caller names a device register; the load has a simple
    // form, so a trap carries a valid syndrome.
    unsafe { asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) value, options(nostack, preserves_flags)) };
    value
}

pub fn read64(addr: u64) -> u64 {
    let value: u64;
    // SAFETY: as read32.
    unsafe { asm!("ldr {v}, [{a}]", a = in(reg) addr, v = out(reg) value, options(nostack, preserves_flags)) };
    value
}

pub fn write32(addr: u64, value: u32) {
    // SAFETY: as read32.
    unsafe { asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack, preserves_flags)) };
}

/// The synchronous exceptions taken so far (the vectors count them).
fn sync_exceptions() -> u64 {
    // SAFETY: a plain read of a counter only the vectors write.
    unsafe { read_volatile(addr_of!(super::SYNC_EXCEPTIONS)) }
}

/// `figure`, unless the operation took synchronous exceptions it should not have.
fn without_exceptions(figure: impl FnOnce() -> Timed) -> Figure {
    let before = sync_exceptions();
    let timed = figure();
    if sync_exceptions() != before { Err("the operation took an exception") } else { Ok(timed) }
}

/// The loop and the counter alone: what every other figure includes.
pub fn empty_loop(n: u64) -> Figure {
    // SAFETY: an empty asm statement keeps the loop from being folded.
    Ok(time(n, || unsafe { asm!("", options(nomem, nostack, preserves_flags)) }))
}

const XEN_HYPERCALL_IMM: u16 = 0xea1;
const XEN_VERSION: u64 = 17;
const XENVER_VERSION: u64 = 0;

fn xen_version() -> u64 {
    let result: u64;
    // SAFETY: XENVER_version takes no pointer; only x0 changes.
    unsafe {
        asm!("hvc #{imm}", imm = const XEN_HYPERCALL_IMM, inout("x0") XENVER_VERSION => result,
             in("x16") XEN_VERSION, options(nostack))
    };
    result
}

/// A null hypercall: `xen_version(XENVER_version)`.
pub fn hypercalls(out: &mut Out, n: u64) -> Figure {
    let version = xen_version();
    out.line(format_args!("bench: xen_version says {}.{}", version >> 16, version & 0xffff));
    without_exceptions(|| {
        time(n, || {
            xen_version();
        })
    })
}

/// GICD_TYPER: read-only and side-effect free, emulated by both hypervisors.
const GICD_TYPER: u64 = 0x4;

pub fn distributor_reads(board: &Board, n: u64) -> Figure {
    let gic = board.gic.ok_or("no GIC in the device tree")?;
    without_exceptions(|| {
        time(n, || {
            read32(gic.distributor + GICD_TYPER);
        })
    })
}

/// DABT from the current EL: what an injected abort looks like to Dom0.
const EC_DATA_ABORT_CURRENT: u64 = 0x25;

/// A load from an address Dom0 has no stage-2 mapping for: the hypervisor
/// injects a data abort, whose handler skips the load.
pub fn aborts(board: &Board, n: u64) -> Figure {
    let addr = board.unmapped.ok_or("no /hypervisor node to take an unmapped address from")?;
    let before = sync_exceptions();
    let timed = time(n, || {
        read64(addr);
    });
    // SAFETY: written only by the vectors, on this CPU.
    let esr = unsafe { read_volatile(addr_of!(super::LAST_ESR)) };
    if sync_exceptions() - before != n {
        return Err("a load from the unmapped address did not abort every time");
    }
    if esr >> 26 != EC_DATA_ABORT_CURRENT {
        return Err("the exception taken was not a data abort");
    }
    Ok(timed)
}
