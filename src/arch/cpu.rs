//! Per-CPU state and the boot stacks.

use crate::dt::host::MAX_CPUS;
use crate::domain::Domain;
use aarch64_cpu::registers::{MPIDR_EL1, TPIDR_EL2};
use core::sync::atomic::{AtomicPtr, Ordering};
use tock_registers::interfaces::{Readable, Writeable};

/// Boot-time parsing keeps the host tree and the memory plan on the stack
/// (no heap exists yet): about 40 KiB at the deepest.
pub const STACK_SIZE: usize = 128 * 1024;

#[repr(C, align(16))]
pub struct Stack([u8; STACK_SIZE]);

/// One stack per CPU; `boot/head.S` points SP at the top of entry 0.
#[unsafe(no_mangle)]
pub static mut BOOT_STACKS: [Stack; MAX_CPUS] = [const { Stack([0; STACK_SIZE]) }; MAX_CPUS];

#[unsafe(no_mangle)]
pub static BOOT_STACK_SIZE: usize = STACK_SIZE;

/// What each physical CPU knows about itself. Found through TPIDR_EL2.
#[derive(Debug)]
pub struct PerCpu {
    /// Index in boot order; the boot CPU is 0.
    pub index: usize,
    /// Affinity bits of MPIDR_EL1.
    pub mpidr: u64,
    /// The domain whose vCPU runs here (null before the first guest entry).
    domain: AtomicPtr<Domain>,
}

static mut PER_CPU: [PerCpu; MAX_CPUS] =
    [const { PerCpu { index: 0, mpidr: 0, domain: AtomicPtr::new(core::ptr::null_mut()) } }; MAX_CPUS];

/// MPIDR's affinity fields (Aff3, Aff2, Aff1, Aff0), as device trees list them.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// Sets up this CPU's `PerCpu` as entry `index`. Call once per CPU, on it.
pub fn init_this_cpu(index: usize) {
    assert!(index < MAX_CPUS, "CPU index {index} beyond {MAX_CPUS}");
    let mpidr = MPIDR_EL1.get() & MPIDR_AFFINITY_MASK;
    // SAFETY: each CPU touches only its own entry, once, before anything
    // else can read it through TPIDR_EL2.
    let entry = unsafe { &mut (*core::ptr::addr_of_mut!(PER_CPU))[index] };
    entry.index = index;
    entry.mpidr = mpidr;
    TPIDR_EL2.set(entry as *mut PerCpu as u64);
}

/// This CPU's state.
pub fn this_cpu() -> &'static PerCpu {
    let ptr = TPIDR_EL2.get() as *const PerCpu;
    assert!(!ptr.is_null(), "per-CPU state used before init_this_cpu");
    // SAFETY: TPIDR_EL2 is only ever set by init_this_cpu to an entry of
    // PER_CPU, which lives forever and is not written again.
    unsafe { &*ptr }
}

/// This CPU's index, or 0 before per-CPU state exists (crash reports).
pub fn current_index() -> usize {
    let ptr = TPIDR_EL2.get() as *const PerCpu;
    if ptr.is_null() {
        return 0;
    }
    // SAFETY: as in `this_cpu`.
    unsafe { (*ptr).index }
}

/// The physical (and so intermediate physical) address width this CPU
/// supports, capped at 48 bits: four levels of 4 KiB tables, no LPA2.
pub fn pa_bits() -> u32 {
    use aarch64_cpu::registers::ID_AA64MMFR0_EL1;
    const BITS: [u32; 7] = [32, 36, 40, 42, 44, 48, 52];
    let encoded = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange) as usize;
    BITS.get(encoded).copied().unwrap_or(48).min(48)
}

impl PerCpu {
    /// Records that `domain` now runs on this CPU.
    pub fn set_domain(&self, domain: &'static Domain) {
        self.domain.store(domain as *const Domain as *mut Domain, Ordering::Release);
    }

    /// The domain running on this CPU, if a guest was entered.
    pub fn domain(&self) -> Option<&'static Domain> {
        let ptr = self.domain.load(Ordering::Acquire);
        // SAFETY: only `set_domain` stores here, always a `&'static Domain`.
        (!ptr.is_null()).then(|| unsafe { &*ptr })
    }
}
