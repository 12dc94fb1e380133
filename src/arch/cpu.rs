//! Per-CPU state and the boot stacks.

use crate::config::MAX_CPUS;
use crate::domain::Domain;
use crate::domain::vcpu::Vcpu;
use aarch64_cpu::registers::{MPIDR_EL1, TPIDR_EL2};
use arrayvec::ArrayVec;
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

/// Where the boot stacks lie (the hypervisor's, never Dom0's).
pub fn boot_stacks() -> crate::mm::range::PhysRange {
    let start = (&raw const BOOT_STACKS) as u64;
    crate::mm::range::PhysRange::new(start, start + (MAX_CPUS * STACK_SIZE) as u64)
}

/// What each physical CPU knows about itself. Found through TPIDR_EL2 on
/// the CPU itself, by index from the others (starting a CPU, kicking it).
#[derive(Debug)]
pub struct PerCpu {
    /// Index in boot order; the boot CPU is 0.
    pub index: usize,
    /// The vCPU placed here (null before one is), which knows its domain.
    vcpu: AtomicPtr<Vcpu>,
}

static PER_CPU: [PerCpu; MAX_CPUS] = {
    let mut all = [const { PerCpu { index: 0, vcpu: AtomicPtr::new(core::ptr::null_mut()) } }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        all[i].index = i;
        i += 1;
    }
    all
};

/// MPIDR's affinity fields (Aff3, Aff2, Aff1, Aff0), as device trees list them.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// The CPUs' MPIDR affinities by index: the boot CPU first, then the
/// device tree's other CPUs in tree order. Linux numbers its CPUs the
/// same way, so Dom0 vCPU n is CPU n.
static TOPOLOGY: spin::Once<ArrayVec<u64, MAX_CPUS>> = spin::Once::new();

/// Records the CPUs, given the device tree's MPIDRs (boot CPU, once).
pub fn set_topology(tree_mpidrs: impl Iterator<Item = u64>) {
    let boot = this_mpidr();
    TOPOLOGY.call_once(|| {
        core::iter::once(boot)
            .chain(tree_mpidrs.map(|m| m & MPIDR_AFFINITY_MASK).filter(|&m| m != boot))
            .take(MAX_CPUS)
            .collect()
    });
}

/// The MPIDR affinity of CPU `index`.
pub fn mpidr_of(index: usize) -> Option<u64> {
    TOPOLOGY.get().and_then(|t| t.get(index).copied())
}

/// The index of the CPU with affinity `mpidr`; none if bits outside the
/// affinity fields are set (PSCI says they must be zero, and the firmware
/// refuses them).
pub fn index_of(mpidr: u64) -> Option<usize> {
    TOPOLOGY.get().and_then(|t| t.iter().position(|&m| m == mpidr))
}

/// This CPU's MPIDR affinity.
pub fn this_mpidr() -> u64 {
    MPIDR_EL1.get() & MPIDR_AFFINITY_MASK
}

/// Makes entry `index` this CPU's `PerCpu`. Call once per CPU, on it.
pub fn init_this_cpu(index: usize) {
    assert!(index < MAX_CPUS, "CPU index {index} beyond {MAX_CPUS}");
    TPIDR_EL2.set(&PER_CPU[index] as *const PerCpu as u64);
}

/// CPU `index`'s state.
pub fn per_cpu(index: usize) -> Option<&'static PerCpu> {
    PER_CPU.get(index)
}

/// This CPU's state.
pub fn this_cpu() -> &'static PerCpu {
    let ptr = TPIDR_EL2.get() as *const PerCpu;
    assert!(!ptr.is_null(), "per-CPU state used before init_this_cpu");
    // SAFETY: TPIDR_EL2 is only ever set by init_this_cpu to an entry of
    // PER_CPU, which lives forever.
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
    /// Records that `vcpu` runs on this CPU from now on.
    pub fn set_vcpu(&self, vcpu: &'static Vcpu) {
        self.vcpu.store(vcpu as *const Vcpu as *mut Vcpu, Ordering::Release);
    }

    /// The vCPU placed on this CPU, if one is.
    pub fn vcpu(&self) -> Option<&'static Vcpu> {
        let ptr = self.vcpu.load(Ordering::Acquire);
        // SAFETY: only `set_vcpu` stores here, always a `&'static Vcpu`.
        (!ptr.is_null()).then(|| unsafe { &*ptr })
    }

    /// The domain of the vCPU placed on this CPU.
    pub fn domain(&self) -> Option<&'static Domain> {
        self.vcpu()?.domain()
    }
}

/// The vCPU running on this CPU; only for paths where a guest runs here
/// (its traps and interrupts).
pub fn this_vcpu() -> &'static Vcpu {
    this_cpu().vcpu().expect("a vCPU runs on this CPU")
}

/// Starts physical CPU `index` through the firmware's PSCI CPU_ON into
/// `secondary_entry` (`boot/head.S`), which enters the vCPU placed on it
/// where that vCPU's start says. Returns the CPU's MPIDR.
pub fn power_on(index: usize) -> Result<u64, smccc::psci::Error> {
    unsafe extern "C" {
        fn secondary_entry();
    }
    let mpidr = mpidr_of(index).ok_or(smccc::psci::Error::InvalidParameters)?;
    smccc::psci::cpu_on::<smccc::Smc>(mpidr, secondary_entry as *const () as u64, index as u64).map(|()| mpidr)
}
