//! A domain as the hypercalls see it: the few things of it they read and
//! lock, lent by whoever owns the domain (`crate::domain` on the board, the
//! model machine in tests). Also the lock order between the domain's Xen
//! state and its stage 2, which the types below enforce.

use super::DomainState;
use super::grant::GrantTable;
use crate::mm::audit::{self, Allowed, Owned, Summary, Violation};
use crate::mm::range::PhysRange;
use crate::mm::stage2::{Kind, Leaf, Stage2Map};
use alloc::vec::Vec;
use spin::{Mutex, MutexGuard};

/// A domain's stage-2 map behind its lock. Lock order: the domain's grant
/// table, then this lock, then the frame allocator (a [`super::Board`]'s
/// frame calls). The two ways to take it say which side of the grant table
/// the caller stands on; there is no plain `lock`.
pub struct Stage2Lock(Mutex<Stage2Map>);

impl Stage2Lock {
    pub fn new(map: Stage2Map) -> Self {
        Self(Mutex::new(map))
    }

    /// Locks the map while the domain's grant table is held: the guard of
    /// that table is the proof the order is kept.
    pub fn lock_after_grants<'a>(&'a self, _grants: &MutexGuard<'_, GrantTable>) -> MutexGuard<'a, Stage2Map> {
        self.0.lock()
    }

    /// Locks the map for a caller that holds none of the domain's Xen locks
    /// (grant table, ports) and takes none of them before it lets go.
    pub fn lock_holding_no_xen_lock(&self) -> MutexGuard<'_, Stage2Map> {
        self.0.lock()
    }
}

/// What a hypercall may reach of one domain.
#[derive(Clone, Copy)]
pub struct DomainView<'a> {
    /// Xen's domain id; Dom0 is 0.
    pub id: u16,
    /// Its RAM banks, in guest-physical addresses (== physical for Dom0).
    /// Pages of them may be ballooned out: see [`DomainView::has_page`].
    pub ram: &'a [PhysRange],
    pub stage2: &'a Stage2Lock,
    pub xen: &'a DomainState,
}

impl DomainView<'_> {
    /// Whether `range` lies wholly in the domain's RAM banks.
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
        remapped_devices: &[(PhysRange, u64)],
        hypervisor: &[Owned],
        free_ranges: impl FnOnce() -> Vec<PhysRange>,
    ) -> Result<Summary, Violation> {
        let page = |pa: u64| PhysRange::new(pa, pa + 0x1000);
        let grants = self.xen.grants.lock();
        let stage2 = self.stage2.lock_after_grants(&grants);
        let grant_frames: Vec<PhysRange> = grants.frame_addresses().map(page).collect();
        let mut owned: Vec<Owned> =
            stage2.table_pages().map(|pa| Owned { range: page(pa), what: audit::owned::TABLE }).collect();
        owned.extend(grant_frames.iter().map(|&range| Owned { range, what: audit::owned::GRANT_FRAME }));
        owned.extend_from_slice(hypervisor);
        owned.extend(free_ranges().into_iter().map(|range| Owned { range, what: audit::owned::FREE }));
        let allowed =
            Allowed { ram: self.ram, devices, remapped_devices, shared_frames: &grant_frames, shared_window: grants.region() };
        audit::audit(&stage2.leaves(), &allowed, &owned)
    }
}
