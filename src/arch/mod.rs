//! AArch64 at EL2: exceptions, the MMU, per-CPU state, semihosting.
//! Only `esr` is pure; the rest runs on the board alone.

pub mod esr;

#[cfg(target_os = "none")]
pub mod barrier;
#[cfg(target_os = "none")]
pub mod copy;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod exception;
#[cfg(target_os = "none")]
pub mod gic;
#[cfg(target_os = "none")]
pub mod guest;
#[cfg(target_os = "none")]
pub mod guest_memory;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
pub mod semihosting;
#[cfg(target_os = "none")]
pub mod sysregs;
#[cfg(target_os = "none")]
pub mod trap_counts;
#[cfg(target_os = "none")]
pub mod vgic;
