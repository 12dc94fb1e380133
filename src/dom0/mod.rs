//! Dom0: its memory, its device tree, and the extended regions it is told
//! about.

pub mod ext_regions;
pub mod layout;
pub mod memory;
pub mod regions;

#[cfg(target_os = "none")]
pub mod audit;
#[cfg(target_os = "none")]
pub mod build;
