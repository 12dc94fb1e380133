//! A virtual CPU: where it runs, its PSCI power state and entry point, the
//! virtual interrupts waiting for it, and why it left the guest. Its Xen
//! state (vcpu_info, runstate) is in its domain's `xen.vcpus`, by the same id.
//!
//! Placement is static: a vCPU runs on one physical CPU for good, so that
//! CPU's list registers and EL1 state are the vCPU's and never switched.

use super::Domain;
use crate::gic::overflow::Overflow;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use spin::Mutex;

/// Where a vCPU runs and who it says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The physical CPU's index (boot order, the boot CPU 0).
    pub cpu: usize,
    /// The MPIDR affinity the guest reads (VMPIDR_EL2) and names the vCPU
    /// by in PSCI calls and SGI targets.
    pub mpidr: u64,
}

impl Placement {
    /// vCPU `id` on physical CPU `id`, with Xen's guest MPIDR (Aff0 =
    /// id & 15, Aff1 = id >> 4); Dom0 overrides the MPIDR with the
    /// physical CPU's own.
    pub fn for_vcpu(id: usize) -> Self {
        Self { cpu: id, mpidr: ((id as u64 >> 4) << 8) | (id as u64 & 15) }
    }
}

/// A vCPU's power state, as PSCI AFFINITY_INFO reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Power {
    On = 0,
    Off = 1,
    OnPending = 2,
}

impl Power {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::On,
            2 => Self::OnPending,
            _ => Self::Off,
        }
    }
}

/// Why a vCPU left the guest, for the shutdown log.
#[derive(Debug, Clone, Copy)]
pub enum Exit {
    Hypercall,
    /// PSCI and other SMCCC calls, by HVC or SMC.
    Firmware,
    /// An access to an emulated MMIO region (today only the GIC's).
    Mmio,
    /// ICC_SGI1R_EL1 written.
    Sgi,
    /// A stage-2 fault answered with an abort.
    Abort,
    Interrupt,
    Other,
}

impl Exit {
    pub const KINDS: usize = 7;
    pub const NAMES: [&'static str; Self::KINDS] =
        ["hypercalls", "firmware calls", "emulated MMIO accesses", "SGIs sent", "aborts", "interrupts", "other"];
}

/// One vCPU's exit counts, in a cache line of their own: counting on every
/// exit must not bounce a shared line between CPUs.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct ExitCounts([AtomicU64; Exit::KINDS]);

impl ExitCounts {
    /// Counts one exit. Only the CPU running the vCPU counts, so relaxed
    /// load and store (no atomic add) are enough for a statistic.
    pub fn count(&self, exit: Exit) {
        let n = &self.0[exit as usize];
        n.store(n.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    pub fn get(&self, exit: usize) -> u64 {
        self.0[exit].load(Ordering::Relaxed)
    }
}

/// Virtual interrupts raised for a vCPU and not yet in its list registers.
#[derive(Debug, Default)]
pub struct PendingInterrupts {
    /// Interrupts raised from elsewhere (other CPUs, hypercalls), one bit
    /// per INTID: Dom0's private ones, a DomU's private ones and its
    /// emulated GIC's SPIs (`gic::emulated`); moved into list registers
    /// on the vCPU's CPU once enabled.
    pub raised: AtomicU64,
    /// Interrupts waiting for a free list register.
    pub overflow: Mutex<Overflow>,
}

pub struct Vcpu {
    /// Its number in its domain (Xen's vcpu id, Linux's CPU number).
    pub id: usize,
    pub placement: Placement,
    power: AtomicU8,
    /// Where CPU_ON asked it to start: (entry point, context id).
    start: (AtomicU64, AtomicU64),
    pub interrupts: PendingInterrupts,
    pub exits: ExitCounts,
    /// Set once the domain has its final address ([`Domain::into_static`]).
    domain: spin::Once<&'static Domain>,
}

impl Vcpu {
    /// vCPU `id`, off unless it is vCPU 0 (which its domain's builder enters).
    pub fn new(id: usize, placement: Placement) -> Self {
        let power = if id == 0 { Power::On } else { Power::Off };
        Self {
            id,
            placement,
            power: AtomicU8::new(power as u8),
            start: (AtomicU64::new(0), AtomicU64::new(0)),
            interrupts: PendingInterrupts::default(),
            exits: ExitCounts::default(),
            domain: spin::Once::new(),
        }
    }

    /// Its domain, once the domain is built.
    pub fn domain(&self) -> Option<&'static Domain> {
        self.domain.get().copied()
    }

    pub(super) fn set_domain(&self, domain: &'static Domain) {
        self.domain.call_once(|| domain);
    }

    pub fn power(&self) -> Power {
        Power::from_u8(self.power.load(Ordering::Acquire))
    }

    pub fn set_power(&self, power: Power) {
        self.power.store(power as u8, Ordering::Release);
    }

    /// Marks an off vCPU as starting at `entry` with `context` in x0;
    /// otherwise returns the state that refused it.
    pub fn begin_start(&self, entry: u64, context: u64) -> Result<(), Power> {
        self.power
            .compare_exchange(Power::Off as u8, Power::OnPending as u8, Ordering::AcqRel, Ordering::Acquire)
            .map_err(Power::from_u8)?;
        self.start.0.store(entry, Ordering::Release);
        self.start.1.store(context, Ordering::Release);
        Ok(())
    }

    /// Where [`Vcpu::begin_start`] asked it to start: (entry point, context id).
    pub fn start(&self) -> (u64, u64) {
        (self.start.0.load(Ordering::Acquire), self.start.1.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_only_when_off() {
        let boot = Vcpu::new(0, Placement::for_vcpu(0));
        assert_eq!(boot.power(), Power::On);
        assert_eq!(boot.begin_start(0x4000_0000, 1), Err(Power::On));
        let second = Vcpu::new(1, Placement::for_vcpu(1));
        assert_eq!(second.power(), Power::Off);
        assert_eq!(second.begin_start(0x4000_0000, 7), Ok(()));
        assert_eq!(second.begin_start(0x4000_0000, 7), Err(Power::OnPending));
        assert_eq!(second.start(), (0x4000_0000, 7));
        second.set_power(Power::On);
        assert_eq!(second.begin_start(0, 0), Err(Power::On));
    }

    #[test]
    fn guest_mpidrs_follow_xen() {
        assert_eq!(Placement::for_vcpu(3), Placement { cpu: 3, mpidr: 3 });
        assert_eq!(Placement::for_vcpu(17), Placement { cpu: 17, mpidr: 0x101 });
    }
}
