//! A domain as the hypercalls see it: the few things of it they read and
//! lock, lent by whoever owns the domain (`crate::domain` on the board, the
//! model machine in tests). Also the lock order between the domain's Xen
//! state and its stage 2, which the types below enforce.

use super::DomainState;
use super::grant::GrantTable;
use crate::mm::audit::{self, Allowed, Owned, Summary, Violation};
use crate::mm::range::{GuestRange, Ipa, Pa, PhysRange};
use crate::mm::stage2::{Kind, Leaf, Stage2Map};
use alloc::vec::Vec;
use spin::{Mutex, MutexGuard};

/// A domain's stage-2 map behind its lock. Lock order: the domain's grant
/// table, then this lock, then the frame allocator (a [`super::Board`]'s
/// frame calls). A call that reaches two domains takes both grant tables
/// (if it takes any), then both stage 2s, each pair lower domid first, as
/// Xen does ([`lock_two`]); the same order holds for the port tables. The two ways to take it say which side of the grant table
/// the caller stands on; there is no plain `lock`.
pub struct Stage2Lock(Mutex<Stage2Map>);

impl Stage2Lock {
    pub fn new(map: Stage2Map) -> Self {
        Self(Mutex::new(map))
    }

    /// Locks the map while a grant table is held: the guard is the proof
    /// that the order (grant table first) is kept. That it is this domain's
    /// table is the caller's to get right (today the only other is none).
    pub fn lock_after_grants<'a>(&'a self, _grants: &MutexGuard<'_, GrantTable>) -> MutexGuard<'a, Stage2Map> {
        self.0.lock()
    }

    /// Locks the map for a caller that holds none of the domain's Xen locks
    /// (grant table, ports) and takes neither before it lets go; a vCPU's
    /// runstate lock, which nests inside nothing, may be taken after it.
    pub fn lock_holding_no_xen_lock(&self) -> MutexGuard<'_, Stage2Map> {
        self.0.lock()
    }
}

/// Locks `a`'s and `b`'s instance of something per domain (`lock`), the
/// lower domid first, as Xen orders two domains' locks: both guards, in
/// `a`, `b` order, the second `None` when they are the same domain.
pub fn lock_two<T, G>(a: (u16, T), b: (u16, T), lock: impl Fn(T) -> G) -> (G, Option<G>) {
    if a.0 == b.0 {
        (lock(a.1), None)
    } else if a.0 < b.0 {
        let first = lock(a.1);
        (first, Some(lock(b.1)))
    } else {
        let second = lock(b.1);
        (lock(a.1), Some(second))
    }
}

/// What a hypercall may reach of one domain.
#[derive(Clone, Copy)]
pub struct DomainView<'a> {
    /// Xen's domain id; Dom0 is 0.
    pub id: u16,
    /// Its RAM banks, in guest-physical addresses. Pages of them may be
    /// ballooned out: see [`DomainView::has_page`].
    pub ram: &'a [GuestRange],
    pub stage2: &'a Stage2Lock,
    pub xen: &'a DomainState,
}

impl DomainView<'_> {
    /// Whether `range` lies wholly in the domain's RAM banks.
    pub fn owns_ram(&self, range: &GuestRange) -> bool {
        self.ram.iter().any(|r| r.contains_range(range))
    }

    /// Whether its RAM is mapped 1:1 (guest-physical == physical): Dom0's,
    /// built so; a DomU's lies wherever it was free. Only a 1:1 domain
    /// balloons (its page comes back as the very frame that left).
    pub fn is_direct_mapped(&self) -> bool {
        self.id == 0
    }

    /// Whether the page at `gpa` is one of the domain's own RAM pages,
    /// mapped 1:1 right now (not ballooned out): `stage2` is the locked map.
    pub fn has_page(&self, stage2: &Stage2Map, gpa: Ipa) -> bool {
        let page = gpa.page();
        GuestRange::page_at(page).is_some_and(|range| self.owns_ram(&range))
            && matches!(stage2.translate(page), Some(Leaf { pa, kind: Kind::Ram, .. }) if pa == Pa::identity_of(page))
    }

    /// The frame behind the domain's own RAM page at `gpa`, mapped there
    /// now (1:1 for Dom0, anywhere for a DomU): what it may share with
    /// another domain. `stage2` is the locked map.
    pub fn own_frame(&self, stage2: &Stage2Map, gpa: Ipa) -> Option<Pa> {
        let page = gpa.page();
        if !GuestRange::page_at(page).is_some_and(|range| self.owns_ram(&range)) {
            return None;
        }
        match stage2.translate(page) {
            Some(Leaf { pa, kind: Kind::Ram, .. }) => Some(pa),
            _ => None,
        }
    }

    /// The frames of its RAM mapped in its stage 2 now (what another
    /// domain may see of it through grant and foreign mappings).
    pub fn ram_frames(&self) -> Vec<PhysRange> {
        let stage2 = self.stage2.lock_holding_no_xen_lock();
        stage2
            .leaves()
            .into_iter()
            .filter(|e| e.kind == Kind::Ram && self.owns_ram(&e.ipa))
            .map(|e| e.frames())
            .collect()
    }

    /// The frame behind `ipa` if a hypercall may copy to (`write`) or from
    /// it there: a page of the domain's RAM, or a grant mapping (writable,
    /// to write) of a frame of its RAM. `stage2` is the locked map.
    pub fn ram_frame(&self, stage2: &Stage2Map, ipa: Ipa, write: bool) -> Option<Pa> {
        let leaf = stage2.translate(ipa)?;
        let frame = PhysRange::new(leaf.pa.0, leaf.pa.0 + 0x1000);
        let copyable = match leaf.kind {
            Kind::Ram => GuestRange::page_at(ipa.page()).is_some_and(|page| self.owns_ram(&page)),
            // Of grant and foreign mappings, only those of its own frames
            // (Dom0's, 1:1): hypercall arguments stay in the caller's RAM.
            Kind::Granted { writable } => (writable || !write) && self.owns_ram(&GuestRange::identity_of(frame)),
            Kind::Device => false,
        };
        copyable.then_some(Pa(leaf.pa.0 | (ipa.0 & 0xfff)))
    }

    /// Audits its stage 2 as it stands ([`audit::audit`]): only its RAM,
    /// the `devices` passed through and its grant-table frames (in its grant
    /// region) may be mapped; nothing of `hypervisor`, of its stage-2 tables
    /// or grant-table frames elsewhere, nor of the free memory `free_ranges`
    /// lists. That list is read with the grant table and the stage 2 locked,
    /// so no balloon call moves a frame between it and the tables.
    /// `foreign` are the other domains' RAM frames (their
    /// [`DomainView::ram_frames`]): seen through grant and foreign mappings
    /// (`Kind::Granted`) only, never as the domain's RAM.
    pub fn audit_stage2(
        &self,
        devices: &[PhysRange],
        remapped_devices: &[(GuestRange, Pa)],
        hypervisor: &[Owned],
        foreign: &[PhysRange],
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
        let direct_mapped = self.is_direct_mapped();
        let allowed = Allowed {
            ram: self.ram,
            direct_mapped,
            devices,
            remapped_devices,
            shared_frames: &grant_frames,
            shared_window: grants.region(),
            foreign,
        };
        audit::audit(&stage2.leaves(), &allowed, &owned)
    }
}
