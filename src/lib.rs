//! An AArch64 type-1 hypervisor that boots a Linux Dom0 with Xen's ABI.
//!
//! The crate builds for two targets. On the board
//! (`aarch64-unknown-none-softfloat`) it is the whole hypervisor; on the host
//! only its pure parts (device tree, command line, memory bookkeeping, ...)
//! build, so `cargo test` exercises them with the standard test harness.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
pub mod cmdline;
pub mod config;
pub mod dom0;
pub mod domain;
pub mod domu;
pub mod dt;
pub mod fatal;
pub mod gic;
pub mod mm;
pub mod xen;

#[cfg(test)]
mod fuzz;

#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod boot_phases;
#[cfg(target_os = "none")]
pub mod console;
/// On the host, only the console's pure parts: the input ring, the input
/// switch, and the DomUs' emulated UART.
#[cfg(not(target_os = "none"))]
pub mod console {
    pub mod input;
    pub mod input_switch;
    pub mod vpl011;
}
#[cfg(target_os = "none")]
pub mod crash;
#[cfg(target_os = "none")]
pub mod router;
#[cfg(target_os = "none")]
pub mod shutdown;
