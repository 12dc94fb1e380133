//! The Xen hypercall ABI, the part a Linux Dom0 uses (`xen/include/public/`).
//! Argument decoding and results are pure and host-tested; copying to and
//! from guest memory is behind the `GuestMemory` trait.

pub mod version;

/// Xen's errno values (negated in x0).
pub mod errno {
    pub const EPERM: i64 = 1;
    pub const EFAULT: i64 = 14;
    pub const EINVAL: i64 = 22;
    pub const ENOSYS: i64 = 38;
}

/// Hypercall numbers (x16).
pub mod nr {
    pub const XEN_VERSION: u64 = 17;
}

/// A guest's memory as a hypercall sees it: guest virtual addresses,
/// translated through the guest's own page tables and its stage 2. Every
/// access can fail with `EFAULT`.
pub trait GuestMemory {
    fn write(&mut self, gva: u64, bytes: &[u8]) -> Result<(), i64>;
    fn read(&mut self, gva: u64, bytes: &mut [u8]) -> Result<(), i64>;
}

/// Runs hypercall `number` with arguments `args` (x0..x4) for Dom0.
/// Returns what goes back in x0.
pub fn dispatch(number: u64, args: [u64; 5], memory: &mut dyn GuestMemory) -> i64 {
    match number {
        nr::XEN_VERSION => version::xen_version(args[0], args[1], memory),
        _ => -errno::ENOSYS,
    }
}
