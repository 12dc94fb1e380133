//! A bare-metal Dom0 that measures what trapping to the hypervisor costs:
//! a null hypercall (`xen_version`), a read of a GIC distributor register
//! the hypervisor emulates, a load from an unmapped guest-physical address
//! that comes back as an injected abort, and an SGI round trip to a second
//! vCPU started with PSCI (waiting in WFI, then spinning); with `domu=ID`
//! on its command line, the calls between Dom0 and a serving DomU instead
//! (foreign map, grant map, event round trip: `guest/domu.rs`). Each is timed with the virtual counter over N
//! iterations (`iterations=N` on Dom0's command line, 100 000 by default)
//! and printed through semihosting as one line,
//! `bench: NAME X.Y ns/op (iterations N, ticks T, F Hz)` or
//! `bench: NAME n/a (reason)`; then the guest exits with code 0.
//! `cargo bench-qemu` boots it under this hypervisor and under Xen 4.17.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("dom0-bench is a bare-metal guest; `cargo bench-qemu` builds it for the board.");
}

#[cfg(target_os = "none")]
mod guest;
