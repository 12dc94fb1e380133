//! gnttest: runs as root in a Linux Dom0's initramfs and checks grant
//! mapping end to end. It grants a page of its own to domain 0 through
//! `/dev/xen/gntalloc`, maps that grant back through `/dev/xen/gntdev`, checks
//! both mappings see each other's writes, finds the gntdev page's physical
//! address (`/proc/self/pagemap`) and Linux's `Xen scratch` ranges
//! (`/proc/iomem`), and checks they lie in the extended regions the
//! hypervisor advertised in `/proc/device-tree/hypervisor/reg`. With
//! `--ballooned` (no extended regions, or a kernel that never uses them) it
//! checks only that the mapping works. Then it maps and unmaps 1000 times.
//! One line per fact, `gnttest: `-prefixed; the last is `gnttest: ok` (exit
//! 0) or `gnttest: FAIL <why>` (exit 1).
//!
//! Linux userspace with no libc: it is built for the bare-metal target the
//! workspace already has (`aarch64-unknown-none-softfloat`) and makes its
//! system calls itself, so a fresh machine needs no extra Rust target. For
//! the host (plain `cargo test`) only the parsers build, with their tests.

#![cfg_attr(target_os = "none", no_std, no_main)]
// No heap here: a failure's reason travels inline in the Result's error.
#![allow(clippy::result_large_err)]

#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod parse;

#[cfg(target_os = "none")]
mod check;
#[cfg(target_os = "none")]
mod gntabi;
#[cfg(target_os = "none")]
mod peer;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod sys;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "gnttest is an arm64 Linux program for the Dom0 initramfs; the QEMU tests build it for aarch64-unknown-none-softfloat."
    );
}
