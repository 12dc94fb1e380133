//! A guest domain: what the hypervisor knows about one guest. Dom0 is the
//! only one built today, but nothing below assumes it is the only one.

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
