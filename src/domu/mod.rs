//! Boot-time DomUs from the device tree (Xen's dom0less binding): where a
//! DomU's RAM and devices sit in its own address space, which physical
//! CPUs each domain gets, and (on the board) building one.

pub mod cpus;
pub mod layout;

#[cfg(target_os = "none")]
pub mod build;
#[cfg(target_os = "none")]
pub mod teardown;
