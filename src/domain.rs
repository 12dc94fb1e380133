//! A guest domain: what the hypervisor knows about one guest. Dom0 is the
//! only one built today, but nothing below assumes it is the only one.

use crate::mm::audit::{Owned, Summary, Violation};
use crate::mm::range::PhysRange;
use crate::mm::stage2::Stage2Map;
use crate::xen::domain::{DomainView, Stage2Lock};
use alloc::vec::Vec;

/// Xen's domain id; Dom0 is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainId(pub u16);

pub struct Domain {
    pub id: DomainId,
    /// The VMID tagging its stage-2 TLB entries.
    pub vmid: u16,
    /// Its RAM banks, in guest-physical addresses (== physical for Dom0).
    /// Pages of them may be ballooned out: see [`DomainView::has_page`].
    pub ram: Vec<PhysRange>,
    /// Its stage-2 tables, changed at runtime under this lock; its type
    /// keeps the lock order (the Xen state's grant table before it, it
    /// before the frame allocator).
    pub stage2: Stage2Lock,
    /// What the Xen hypercalls keep for it.
    pub xen: crate::xen::DomainState,
}

impl Domain {
    /// A domain with `vcpus` vCPUs whose grant-table frames go in `grant_region`.
    pub fn new(
        id: DomainId,
        vmid: u16,
        ram: Vec<PhysRange>,
        stage2: Stage2Map,
        vcpus: usize,
        grant_region: PhysRange,
    ) -> Self {
        Self { id, vmid, ram, stage2: Stage2Lock::new(stage2), xen: crate::xen::DomainState::new(vcpus, grant_region) }
    }

    /// What the hypercalls see of it.
    pub fn view(&self) -> DomainView<'_> {
        DomainView { id: self.id.0, ram: &self.ram, stage2: &self.stage2, xen: &self.xen }
    }

    /// Whether `range` lies wholly in this domain's RAM banks.
    pub fn owns_ram(&self, range: &PhysRange) -> bool {
        self.view().owns_ram(range)
    }

    /// Audits its stage 2 as it stands ([`DomainView::audit_stage2`]).
    pub fn audit_stage2(
        &self,
        devices: &[PhysRange],
        hypervisor: &[Owned],
        free_ranges: impl FnOnce() -> Vec<PhysRange>,
    ) -> Result<Summary, Violation> {
        self.view().audit_stage2(devices, hypervisor, free_ranges)
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
