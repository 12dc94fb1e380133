//! A guest domain: what the hypervisor knows about one guest. Dom0 is the
//! only one built today, but nothing below assumes it is the only one.

use crate::mm::audit::{self, Allowed, Owned, Summary, Violation};
use crate::mm::range::PhysRange;
use crate::mm::stage2::{Kind, Leaf, Stage2Map};
use alloc::vec::Vec;
use spin::Mutex;

/// Xen's domain id; Dom0 is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainId(pub u16);

pub struct Domain {
    pub id: DomainId,
    /// The VMID tagging its stage-2 TLB entries.
    pub vmid: u16,
    /// Its RAM banks, in guest-physical addresses (== physical for Dom0).
    /// Pages of them may be ballooned out: see [`Domain::has_page`].
    pub ram: Vec<PhysRange>,
    /// Its stage-2 tables, changed at runtime under this lock. Lock order:
    /// the Xen state's locks (grant table, ports) before this one, this one
    /// before the frame allocator.
    pub stage2: Mutex<Stage2Map>,
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
        Self { id, vmid, ram, stage2: Mutex::new(stage2), xen: crate::xen::DomainState::new(vcpus, grant_region) }
    }

    /// Whether `range` lies wholly in this domain's RAM banks.
    pub fn owns_ram(&self, range: &PhysRange) -> bool {
        self.ram.iter().any(|r| r.contains_range(range))
    }

    /// Whether the page at `gpa` is one of the domain's own RAM pages,
    /// mapped 1:1 right now (not ballooned out): `stage2` is the locked map.
    pub fn has_page(&self, stage2: &Stage2Map, gpa: u64) -> bool {
        let page = gpa & !0xfff;
        page.checked_add(0x1000).is_some_and(|end| self.owns_ram(&PhysRange::new(page, end)))
            && matches!(stage2.translate(page), Some(Leaf { pa, kind: Kind::Ram, .. }) if pa == page)
    }

    /// Audits its stage 2 as it stands ([`audit::audit`]): only its RAM,
    /// the `devices` passed through and its grant-table frames (in its grant
    /// region) may be mapped; nothing of `hypervisor`, of its stage-2 tables
    /// or grant-table frames elsewhere, nor of the free memory `free_ranges`
    /// lists. That list is read with the grant table and the stage 2 locked,
    /// so no balloon call moves a frame between it and the tables.
    pub fn audit_stage2(
        &self,
        devices: &[PhysRange],
        hypervisor: &[Owned],
        free_ranges: impl FnOnce() -> Vec<PhysRange>,
    ) -> Result<Summary, Violation> {
        let page = |pa: u64| PhysRange::new(pa, pa + 0x1000);
        let grants = self.xen.grants.lock();
        let stage2 = self.stage2.lock();
        let grant_frames: Vec<PhysRange> = grants.frame_addresses().map(page).collect();
        let mut owned: Vec<Owned> =
            stage2.table_pages().map(|pa| Owned { range: page(pa), what: audit::owned::TABLE }).collect();
        owned.extend(grant_frames.iter().map(|&range| Owned { range, what: audit::owned::GRANT_FRAME }));
        owned.extend_from_slice(hypervisor);
        owned.extend(free_ranges().into_iter().map(|range| Owned { range, what: audit::owned::FREE }));
        let allowed = Allowed { ram: &self.ram, devices, shared_frames: &grant_frames, shared_window: grants.region() };
        audit::audit(&stage2.leaves(), &allowed, &owned)
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
