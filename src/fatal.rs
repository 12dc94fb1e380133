//! Why the hypervisor stopped, as a distinct exit code per cause: tests (and
//! people) can tell a bad device tree from a bad kernel from a crash without
//! reading the log. Under QEMU the code leaves through semihosting.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stop {
    /// Dom0 powered the machine off.
    PowerOff = 0,
    /// A Rust panic in the hypervisor.
    Panic = 1,
    /// An exception the hypervisor did not expect, taken at EL2.
    Exception = 2,
    /// Entered at EL1 or EL3: virtualization is off.
    WrongExceptionLevel = 3,
    /// x0 held no device tree, or one that fails structural checks.
    BadDeviceTree = 10,
    /// The device tree is well formed but unusable (cells, reg, limits).
    BadDeviceTreeContent = 11,
    /// No RAM in the device tree.
    NoRam = 12,
    /// Reservations, the image and the modules leave no RAM to manage.
    NoFreeRam = 13,
    /// A boot module outside RAM or on top of the hypervisor or the tree.
    BadBootModule = 14,
    /// No `multiboot,kernel` module.
    NoDom0Kernel = 15,
    /// The kernel module is not an arm64 Image.
    BadDom0Kernel = 16,
    /// `dom0_mem` cannot be satisfied.
    Dom0MemoryUnavailable = 17,
    /// The hypervisor's own memory ran out.
    OutOfMemory = 18,
    /// Dom0 shut down after a crash (or for a reason other than power off
    /// or reboot).
    Dom0Crashed = 19,
    /// Dom0's stage 2 maps something Dom0 must not see.
    Stage2AuditFailed = 20,
}

impl Stop {
    pub fn code(self) -> u32 {
        self as u32
    }
}
