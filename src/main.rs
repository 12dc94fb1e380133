//! The hypervisor binary: the assembly entry and vectors, linked with the
//! library that holds everything else. On the host this binary is only a
//! placeholder, so that `cargo test` can build the package.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("../boot/head.S"), include_str!("../boot/vectors.S"));

// The entry points `primary_main` and `handle_exception` live in the library.
#[cfg(target_os = "none")]
use hypervisor as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("The hypervisor runs on the board: build it with `cargo hv`, boot it with `cargo boot`.");
    std::process::exit(2);
}
