//! Accesses a test guest expects to fault: each runs with the guest's
//! synchronous-exception handler recording ESR_EL1 in `LAST_ESR` (a static
//! of the including module) and skipping the faulting instruction, or, for
//! an instruction abort, returning through x30. One copy, included by the
//! Dom0 and the DomU probe (`#[path]`).

// Each includer uses the accesses its checks need.
#![allow(dead_code)]

use super::LAST_ESR;
use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};

/// Runs `access`; the ESR of the synchronous exception it took, if it
/// took one.
pub fn faults(access: impl FnOnce()) -> Option<u64> {
    // SAFETY: a static only the exception handler also writes.
    unsafe { write_volatile(&raw mut LAST_ESR, 0) };
    access();
    // SAFETY: as above.
    let esr = unsafe { read_volatile(&raw const LAST_ESR) };
    (esr != 0).then_some(esr)
}

/// Reads `addr`; `Some(esr)` if that took an exception.
pub fn read_faults(addr: u64) -> Option<u64> {
    // SAFETY: a faulting load is skipped by the handler; a value read is discarded.
    faults(|| unsafe { asm!("ldr {v}, [{a}]", a = in(reg) addr, v = out(reg) _, options(nostack)) })
}

/// Stores `value` at `addr`; `Some(esr)` if that took an exception.
/// Callers aim only at memory that must not be the guest's.
pub fn write_faults(addr: u64, value: u64) -> Option<u64> {
    // SAFETY: a faulting store is skipped by the handler.
    faults(|| unsafe { asm!("str {v}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack)) })
}

/// Branches to `addr`; `Some(esr)` if fetching there took an exception
/// (the handler returns to the caller). Callers aim only at memory that
/// must not be the guest's.
pub fn fetch_faults(addr: u64) -> Option<u64> {
    // SAFETY: the fetch aborts and the handler returns through x30; every
    // caller-saved register is declared clobbered.
    faults(|| unsafe { asm!("blr {a}", a = in(reg) addr, clobber_abi("C")) })
}
