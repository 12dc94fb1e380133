//! A guest domain: what the hypervisor knows about one guest. Dom0 is the
//! only one built today, but nothing below assumes it is the only one.
//!
//! A domain owns its vCPUs ([`vcpu`]), each placed on one physical CPU;
//! a physical CPU's per-CPU state points at the vCPU it runs, and the vCPU
//! at its domain. Its emulated devices are a table of MMIO regions ([`mmio`]).

pub mod mmio;
pub mod vcpu;

use crate::gic::emulated::{EmulatedGic, RaisedBits};
use crate::mm::range::{GuestRange, PhysRange};
use crate::mm::stage2::Stage2Map;
use crate::xen::domain::{DomainView, Stage2Lock};
use alloc::vec::Vec;
use mmio::MmioRegions;
use spin::Mutex;
use vcpu::{Placement, Vcpu};

/// Xen's domain id; Dom0 is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainId(pub u16);

/// The VMID tagging a domain's stage-2 TLB entries: 8 bits, the width
/// every Armv8.0 CPU has (VTCR_EL2.VS stays 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vmid(pub u8);

/// Which VMIDs are taken. VMID 0 is never given out, so a stage 2 left
/// unconfigured never shares TLB entries with a domain's.
pub struct VmidAllocator {
    taken: [u64; 4],
}

impl VmidAllocator {
    pub const fn new() -> Self {
        Self { taken: [1, 0, 0, 0] }
    }

    /// The lowest free VMID, if any is left.
    pub fn allocate(&mut self) -> Option<Vmid> {
        let vmid = (0..256).find(|&v| self.taken[v / 64] & (1 << (v % 64)) == 0)?;
        self.taken[vmid / 64] |= 1 << (vmid % 64);
        Some(Vmid(vmid as u8))
    }

    pub fn free(&mut self, vmid: Vmid) {
        let v = usize::from(vmid.0);
        if v != 0 {
            self.taken[v / 64] &= !(1 << (v % 64));
        }
    }
}

impl Default for VmidAllocator {
    fn default() -> Self {
        Self::new()
    }
}

/// A domain's vCPUs hold the pending state of its emulated GIC.
impl RaisedBits for [Vcpu] {
    fn raised(&self, vcpu: usize) -> Option<&core::sync::atomic::AtomicU64> {
        self.get(vcpu).map(|v| &v.interrupts.raised)
    }
}

/// The machine's VMIDs, taken as domains are built.
pub static VMIDS: Mutex<VmidAllocator> = Mutex::new(VmidAllocator::new());

pub struct Domain {
    pub id: DomainId,
    pub vmid: Vmid,
    /// Its vCPUs, by id.
    pub vcpus: Vec<Vcpu>,
    /// Its RAM banks, in guest-physical addresses (the frames behind them
    /// are its stage 2's to say). Pages of them may be ballooned out: see
    /// [`DomainView::has_page`].
    pub ram: Vec<GuestRange>,
    /// Its stage-2 tables, changed at runtime under this lock; its type
    /// keeps the lock order (the Xen state's grant table before it, it
    /// before the frame allocator).
    pub stage2: Stage2Lock,
    /// What the Xen hypercalls keep for it.
    pub xen: crate::xen::DomainState,
    /// Its emulated MMIO regions, set once before its vCPUs first trap
    /// (empty until then: every access outside its stage 2 aborts).
    pub mmio: spin::Once<MmioRegions>,
    /// The GIC it sees when it does not drive the physical one (a DomU):
    /// emulated state behind its MMIO regions, whose enables decide what
    /// of its vCPUs' raised interrupts is delivered. `None` for Dom0.
    pub emulated_gic: Option<Mutex<EmulatedGic>>,
    /// The INTID of its event-channel upcall (the PPI its `/hypervisor`
    /// node names): Dom0's [`crate::xen::events::EVENT_INTID`], a DomU's
    /// Xen's GUEST_EVTCHN_PPI.
    pub event_intid: u32,
    /// Set once the domain has shut down: its vCPUs stop at their next
    /// exit and their CPUs park (a DomU's end; Dom0's ends the machine).
    ended: core::sync::atomic::AtomicBool,
    /// Set by the vCPU that tears the ended domain down (the last to stop).
    killed: core::sync::atomic::AtomicBool,
    /// The frame blocks (address, buddy order) its RAM was built from,
    /// given back when it is released (a DomU's; Dom0's are never given back).
    pub blocks: Vec<(u64, usize)>,
    /// Free frames just before it was built, for the log of its release.
    pub free_before_build: u64,
}

impl Domain {
    /// A domain with `vcpus` vCPUs (vCPU n on physical CPU n, see
    /// [`Placement::for_vcpu`]) whose grant-table frames go in `grant_region`.
    pub fn new(
        id: DomainId,
        vmid: Vmid,
        ram: Vec<GuestRange>,
        stage2: Stage2Map,
        vcpus: usize,
        grant_region: GuestRange,
    ) -> Self {
        Self {
            id,
            vmid,
            vcpus: (0..vcpus).map(|n| Vcpu::new(n, Placement::for_vcpu(n))).collect(),
            ram,
            stage2: Stage2Lock::new(stage2),
            xen: crate::xen::DomainState::new(vcpus, grant_region),
            mmio: spin::Once::new(),
            emulated_gic: None,
            event_intid: crate::xen::events::EVENT_INTID,
            ended: core::sync::atomic::AtomicBool::new(false),
            killed: core::sync::atomic::AtomicBool::new(false),
            blocks: Vec::new(),
            free_before_build: 0,
        }
    }

    /// Marks the domain ended; true for the caller that ended it. A vCPU
    /// whose power changes at the same time either sees the end, or is
    /// seen by the caller's reads of the powers after this (both sides
    /// order their store before their load with a full fence).
    pub fn end(&self) -> bool {
        let first = !self.ended.swap(true, core::sync::atomic::Ordering::AcqRel);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        first
    }

    pub fn has_ended(&self) -> bool {
        self.ended.load(core::sync::atomic::Ordering::Acquire)
    }

    /// Whether the ended domain is now to be torn down by the caller: once
    /// every vCPU has stopped, and for one caller only. The caller set its
    /// own vCPU's power first: of it and another vCPU changing its power
    /// as the domain ends, one sees the other (the fence).
    pub fn take_teardown(&self) -> bool {
        use crate::domain::vcpu::Power;
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.has_ended()
            && self.vcpus.iter().all(|v| v.power() == Power::Off)
            && !self.killed.swap(true, core::sync::atomic::Ordering::AcqRel)
    }

    /// What the hypercalls see of it.
    pub fn view(&self) -> DomainView<'_> {
        DomainView { id: self.id.0, ram: &self.ram, stage2: &self.stage2, xen: &self.xen }
    }

    /// Places each vCPU where `place` says (by vCPU id), before it first runs.
    pub fn place_vcpus(&mut self, place: impl Fn(usize) -> Placement) {
        for vcpu in &mut self.vcpus {
            vcpu.placement = place(vcpu.id);
        }
    }

    /// Gives the domain its final address, so its vCPUs can point back at it.
    pub fn into_static(self) -> &'static Domain {
        let domain: &'static Domain = alloc::boxed::Box::leak(alloc::boxed::Box::new(self));
        for vcpu in &domain.vcpus {
            vcpu.set_domain(domain);
        }
        domain
    }

    /// Whether every vCPU of the domain is placed on physical CPU `cpu`:
    /// then its VMID is live on no other CPU.
    pub fn runs_only_on(&self, cpu: usize) -> bool {
        self.vcpus.iter().all(|v| v.placement.cpu == cpu)
    }

    /// The vCPU whose virtual MPIDR affinity is `mpidr` (as PSCI names it).
    pub fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<&Vcpu> {
        self.vcpus.iter().find(|v| v.placement.mpidr == mpidr)
    }

    /// Whether `range` lies wholly in this domain's RAM banks.
    pub fn owns_ram(&self, range: &GuestRange) -> bool {
        self.view().owns_ram(range)
    }
}

/// Dom0, once built: for the few things not reached through a trapping
/// vCPU, like console input arriving in an interrupt.
static DOM0: spin::Once<&'static Domain> = spin::Once::new();

pub fn set_dom0(domain: &'static Domain) {
    DOM0.call_once(|| domain);
}

pub fn dom0() -> Option<&'static Domain> {
    DOM0.get().copied()
}

/// The DomUs built at boot, by id order; added to before they start,
/// each taken out once released. Read by the calls between domains (the
/// Xen layer's `Domains`).
static DOMUS: Mutex<Vec<&'static Domain>> = Mutex::new(Vec::new());

/// Adds a built DomU to the machine's domains.
pub fn register(domain: &'static Domain) {
    DOMUS.lock().push(domain);
}

/// Takes a DomU being released out of the machine's domains, before any
/// of its frames goes back: no id finds it again. (Its record stays,
/// small, where its parked vCPUs point.)
pub fn unregister(id: DomainId) {
    DOMUS.lock().retain(|d| d.id != id);
}

/// The machine's domain with id `id`: Dom0 or a DomU, alive or ended but
/// not yet being released (`domu::teardown::release` unregisters it
/// before it frees anything).
pub fn by_id(id: u16) -> Option<&'static Domain> {
    if id == 0 {
        return dom0();
    }
    DOMUS.lock().iter().copied().find(|d| d.id.0 == id)
}

/// The RAM frames of every domain but `id`, for its audit: what it may
/// see through grant and foreign mappings.
pub fn others_ram_frames(id: DomainId) -> Vec<PhysRange> {
    let domus: Vec<&'static Domain> = DOMUS.lock().clone();
    dom0().into_iter().chain(domus).filter(|d| d.id != id).flat_map(|d| d.view().ram_frames()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmids_are_eight_bits_and_never_zero() {
        let mut vmids = VmidAllocator::new();
        assert_eq!(vmids.allocate(), Some(Vmid(1)));
        assert_eq!(vmids.allocate(), Some(Vmid(2)));
        vmids.free(Vmid(1));
        assert_eq!(vmids.allocate(), Some(Vmid(1)));
        let rest: Vec<Vmid> = core::iter::from_fn(|| vmids.allocate()).collect();
        assert_eq!(rest.len(), 253);
        assert_eq!(rest.last(), Some(&Vmid(255)));
        vmids.free(Vmid(0));
        assert_eq!(vmids.allocate(), None);
    }
}
