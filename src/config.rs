//! Limits fixed at build time, for what is sized statically before the
//! heap exists (per-CPU state, boot stacks, the device-tree reader's lists).

/// Physical CPUs the hypervisor runs on; a tree listing more is refused.
pub const MAX_CPUS: usize = 16;
