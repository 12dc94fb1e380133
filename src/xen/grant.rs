//! Grant tables, version 1 (`public/grant_table.h`). The table lives in
//! hypervisor frames the domain maps into its grant region with
//! add_to_physmap; map_grant_ref maps a granted frame at another address of
//! the mapper's IPA space, and keeps the granter's own page of it pinned so
//! it cannot be ballooned away meanwhile. The granter is the mapper itself
//! (Dom0 granting to itself: gntdev, backends in Dom0), or another domain:
//! then its entry is read and marked in its table, its frame found through
//! its stage 2, and the handle is the mapper's, as in Xen. The same table
//! records the domain's foreign maps of other domains' frames.
//! Checks and status codes follow Xen's `common/grant_table.c` and its Arm
//! `create_grant_host_mapping`, stricter where Xen would silently replace a
//! mapping: the target address must be page aligned and unmapped.

use super::Errno;
use super::errno::*;
use super::public::{GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize, GnttabSetVersion, GnttabUnmapGrantRef};
use super::shared;
use super::wire;
use super::{Board, Call, DomainState, DomainView, Outcome};
use crate::mm::frames::FRAME_SIZE as PAGE;
use crate::mm::range::{GuestRange, Ipa, Pa};
use crate::mm::stage2::{Kind, Stage2Error, Stage2Map};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

pub mod op {
    pub const MAP_GRANT_REF: u32 = 0;
    pub const UNMAP_GRANT_REF: u32 = 1;
    pub const QUERY_SIZE: u32 = 6;
    pub const SET_VERSION: u32 = 8;
    pub const GET_VERSION: u32 = 10;
    pub const CACHE_FLUSH: u32 = 12;
}

/// GNTMAP_* flags of a map request.
pub mod map {
    pub const DEVICE_MAP: u32 = 1 << 0;
    pub const HOST_MAP: u32 = 1 << 1;
    pub const READONLY: u32 = 1 << 2;
    pub const APPLICATION_MAP: u32 = 1 << 3;
    pub const CONTAINS_PTE: u32 = 1 << 4;
}

/// GNTST_* per-operation status.
pub mod status {
    pub const OKAY: i16 = 0;
    pub const GENERAL_ERROR: i16 = -1;
    pub const BAD_DOMAIN: i16 = -2;
    pub const BAD_GNTREF: i16 = -3;
    pub const BAD_HANDLE: i16 = -4;
    pub const BAD_VIRT_ADDR: i16 = -5;
    pub const BAD_DEV_ADDR: i16 = -6;
    pub const PERMISSION_DENIED: i16 = -8;
    pub const BAD_PAGE: i16 = -9;
    pub const NO_SPACE: i16 = -13;
}

/// GTF_* flags of a grant entry (`uint16_t flags; domid_t domid; uint32_t frame;`).
pub mod gtf {
    pub const PERMIT_ACCESS: u16 = 1;
    pub const TYPE_MASK: u16 = 3;
    pub const READONLY: u16 = 1 << 2;
    pub const READING: u16 = 1 << 3;
    pub const WRITING: u16 = 1 << 4;
}

pub const ENTRIES_PER_FRAME: u32 = 512;
/// Mapping handles a domain may hold at once.
pub const MAX_MAPTRACK: usize = 16384;
/// Maps of one entry of one kind (read, write) at once, as Xen's pin counts.
const PIN_LIMIT: u16 = 127;
/// Batched map/unmap operations done before the call continues later.
const OPS_PER_TRAP: u32 = 64;
const MAP_OP_SIZE: u64 = 32;
const UNMAP_OP_SIZE: u64 = 24;

struct Frame {
    pa: u64,
    /// Where the domain mapped it.
    mapped_at: Option<u64>,
}

/// An entry marked in use for a map in progress (see `begin_pin`).
struct Pin {
    entry: u64,
    newly: u16,
    frame: u64,
    /// No mapping of this entry existed before.
    first: bool,
}

/// An entry in use: how many maps read and write it, and the frame it
/// named when first mapped (the guest may change the entry meanwhile).
struct Active {
    readers: u16,
    writers: u16,
    frame: u64,
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    gref: u32,
    host_addr: u64,
    writable: bool,
    /// The granter's page of the frame (its guest address; for Dom0 the
    /// frame's own), pinned in its stage 2 while mapped.
    frame: u64,
    /// The granting domain: the mapper itself, or another.
    dom: u16,
    /// The frame's host physical address (`dev_bus_addr`).
    pa: u64,
}

/// A frame of another domain mapped into this one with add_to_physmap
/// (space gmfn_foreign): whose, and its page there (pinned while mapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Foreign {
    pub dom: u16,
    pub page: u64,
}

pub struct GrantTable {
    /// The IPA range the table's frames are mapped in (and grants are not).
    region: GuestRange,
    frames: Vec<Frame>,
    /// The table's size as the guest grew it (frames it placed so far, as
    /// Xen counts): only these hold valid entries.
    size: u32,
    active: BTreeMap<u32, Active>,
    maptrack: Vec<Option<Mapping>>,
    free_handles: Vec<u32>,
    /// Other domains' frames this domain mapped (privcmd's foreign maps),
    /// by the guest address they are mapped at: kept here, under the same
    /// lock as the grant mappings, as Xen keeps both in the p2m.
    foreign: BTreeMap<u64, Foreign>,
    /// A dying domain's mappings of other domains' grants that its stage 2
    /// refused to unmap: still mapped there, so their granters' pins and
    /// references stay until that stage 2 is gone ([`release_stranded`]).
    stranded: Vec<Mapping>,
}

/// A map request (`struct gnttab_map_grant_ref`, 32 bytes) and its result.
struct MapRequest {
    host_addr: u64,
    flags: u32,
    gref: u32,
    dom: u16,
}

impl GrantTable {
    pub fn new(region: GuestRange) -> Self {
        Self {
            region,
            frames: Vec::new(),
            size: 0,
            active: BTreeMap::new(),
            maptrack: Vec::new(),
            free_handles: Vec::new(),
            foreign: BTreeMap::new(),
            stranded: Vec::new(),
        }
    }

    /// The IPA range the table's frames go in.
    pub fn region(&self) -> GuestRange {
        self.region
    }

    /// The hypervisor frames holding the table, mapped in the region or not.
    pub fn frame_addresses(&self) -> impl Iterator<Item = u64> + '_ {
        self.frames.iter().map(|f| f.pa)
    }

    /// Frames the region holds: the table's maximum size.
    pub fn max_frames(&self) -> u32 {
        (self.region.size() / PAGE) as u32
    }

    pub fn nr_frames(&self) -> u32 {
        self.size
    }

    /// Takes every frame the table may ever use now, at domain build, so
    /// that the hypercalls never need one and the memory counted free when
    /// the domain starts stays free until it ends.
    pub fn reserve_frames(&mut self, board: &dyn Board) -> Result<(), Errno> {
        self.grow(board, u64::from(self.max_frames()))
    }

    /// Grows the table to `frames` zeroed frames.
    fn grow(&mut self, board: &dyn Board, frames: u64) -> Result<(), Errno> {
        while (self.frames.len() as u64) < frames {
            let pa = board.alloc_frame().ok_or(ENOMEM)?;
            shared::zero_page(board, pa);
            self.frames.push(Frame { pa, mapped_at: None });
        }
        Ok(())
    }

    /// Maps table frame `idx` at `page` of the grant region, growing the
    /// table with zeroed frames up to it (add_to_physmap, space grant_table).
    pub fn map_frame(&mut self, stage2: &mut Stage2Map, board: &dyn Board, idx: u64, page: u64) -> Result<(), Errno> {
        if idx >= u64::from(self.max_frames()) || !self.region.contains(page) {
            return Err(EINVAL);
        }
        self.grow(board, idx + 1)?;
        let frame = &mut self.frames[idx as usize];
        if frame.mapped_at.is_some() {
            // As Xen: a frame already placed must be removed before it moves.
            return Err(EBUSY);
        }
        stage2.map_page(Ipa(page), Pa(frame.pa), Kind::Ram, board).map_err(|e| match e {
            Stage2Error::Mapped => EBUSY,
            Stage2Error::NoTables => ENOMEM,
            _ => EINVAL,
        })?;
        frame.mapped_at = Some(page);
        self.size = self.size.max(idx as u32 + 1);
        Ok(())
    }

    /// The table frame mapped at `page`, if any.
    pub fn frame_at(&self, page: u64) -> Option<usize> {
        self.frames.iter().position(|f| f.mapped_at == Some(page))
    }

    /// The frame at `page` was unmapped (remove_from_physmap).
    pub fn forget_mapping(&mut self, page: u64) {
        if let Some(i) = self.frame_at(page) {
            self.frames[i].mapped_at = None;
        }
    }

    fn entry(&self, gref: u32) -> Option<u64> {
        if gref / ENTRIES_PER_FRAME >= self.size {
            return None;
        }
        let frame = self.frames.get((gref / ENTRIES_PER_FRAME) as usize)?;
        Some(frame.pa + u64::from(gref % ENTRIES_PER_FRAME) * 8)
    }

    /// Sets GTF_reading (and GTF_writing) in the entry if it grants the
    /// access to `domid`; returns the granted frame number. The guest
    /// writes the entry concurrently: compare-and-swap, a few tries.
    fn claim_entry(board: &dyn Board, entry: u64, domid: u16, writable: bool) -> Result<u32, i16> {
        let word = board.word(entry);
        let mut current = word.load(Ordering::Acquire);
        let mask = gtf::TYPE_MASK | if writable { gtf::READONLY } else { 0 };
        let set = u64::from(gtf::READING | if writable { gtf::WRITING } else { 0 });
        for _ in 0..5 {
            let (flags, granted_to) = (current as u16, (current >> 16) as u16);
            if flags & mask != gtf::PERMIT_ACCESS || granted_to != domid {
                return Err(status::GENERAL_ERROR);
            }
            match word.compare_exchange(current, current | set, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok((current >> 32) as u32),
                Err(now) => current = now,
            }
        }
        Err(status::GENERAL_ERROR)
    }

    fn release_entry(board: &dyn Board, entry: u64, flags: u16) {
        board.word(entry).fetch_and(!u64::from(flags), Ordering::AcqRel);
    }

    fn take_handle(&mut self, mapping: Mapping) -> u32 {
        match self.free_handles.pop() {
            Some(handle) => {
                self.maptrack[handle as usize] = Some(mapping);
                handle
            }
            None => {
                self.maptrack.push(Some(mapping));
                self.maptrack.len() as u32 - 1
            }
        }
    }

    /// The map flags an Arm guest may use: a host mapping, nothing else
    /// (guests are translated, as on Xen).
    fn check_map_flags(flags: u32) -> Result<(), i16> {
        if flags & (map::DEVICE_MAP | map::HOST_MAP) == 0 {
            return Err(status::BAD_GNTREF);
        }
        if flags & (map::DEVICE_MAP | map::APPLICATION_MAP | map::CONTAINS_PTE) != 0 {
            return Err(status::GENERAL_ERROR);
        }
        Ok(())
    }

    /// Checks entry `gref` of this (the granter's) table for a map by
    /// `grantee` and marks it in use: the entry's address, the flags newly
    /// set in it (to clear if the map fails later) and the granted frame
    /// (the guest frame the entry names, as an address in the granter).
    fn begin_pin(&self, board: &dyn Board, gref: u32, grantee: u16, writable: bool) -> Result<Pin, i16> {
        let Some(entry) = self.entry(gref) else { return Err(status::BAD_GNTREF) };
        let active = self.active.get(&gref);
        if active.is_some_and(|a| if writable { a.writers >= PIN_LIMIT } else { a.readers >= PIN_LIMIT }) {
            return Err(status::GENERAL_ERROR);
        }
        let newly = match active {
            None => gtf::READING | if writable { gtf::WRITING } else { 0 },
            Some(a) if writable && a.writers == 0 => gtf::WRITING,
            Some(_) => 0,
        };
        let frame = if newly != 0 {
            // The grantee named in the entry must be the mapper.
            let gfn = Self::claim_entry(board, entry, grantee, writable)?;
            active.map_or(u64::from(gfn) << 12, |a| a.frame)
        } else {
            active.map_or(0, |a| a.frame)
        };
        Ok(Pin { entry, newly, frame, first: active.is_none() })
    }

    /// Counts a map of `gref` that succeeded, in this (the granter's) table.
    fn end_pin(&mut self, gref: u32, frame: u64, writable: bool) {
        let a = self.active.entry(gref).or_insert(Active { readers: 0, writers: 0, frame });
        if writable {
            a.writers += 1;
        } else {
            a.readers += 1;
        }
    }

    /// One map_grant_ref: (status, handle, dev_bus_addr).
    fn map_one(
        &mut self,
        domain: &DomainView<'_>,
        stage2: &mut Stage2Map,
        board: &dyn Board,
        r: &MapRequest,
    ) -> (i16, u32, u64) {
        let fail = |status: i16| (status, 0, 0);
        if let Err(status) = Self::check_map_flags(r.flags) {
            return fail(status);
        }
        if r.dom != domain.id {
            return fail(status::BAD_DOMAIN);
        }
        if self.free_handles.is_empty() && self.maptrack.len() >= MAX_MAPTRACK {
            return fail(status::NO_SPACE);
        }
        let writable = r.flags & map::READONLY == 0;
        let Pin { entry, newly, frame, first } = match self.begin_pin(board, r.gref, domain.id, writable) {
            Ok(pin) => pin,
            Err(status) => return fail(status),
        };
        let undo = |status: i16| {
            if newly != 0 {
                Self::release_entry(board, entry, newly);
            }
            fail(status)
        };
        if first && !domain.has_page(stage2, Ipa(frame)) {
            return undo(status::BAD_PAGE);
        }
        if !r.host_addr.is_multiple_of(PAGE) || self.region.contains(r.host_addr) {
            return undo(status::BAD_VIRT_ADDR);
        }
        // The granting domain is Dom0, 1:1: its page's frame is at its own address.
        match stage2.map_page(Ipa(r.host_addr), Pa::identity_of(Ipa(frame)), Kind::Granted { writable }, board) {
            Ok(()) => {}
            Err(Stage2Error::NoTables) => return undo(status::NO_SPACE),
            Err(_) => return undo(status::BAD_VIRT_ADDR),
        }
        stage2.pin(Ipa(frame));
        self.end_pin(r.gref, frame, writable);
        let mapping = Mapping { gref: r.gref, host_addr: r.host_addr, writable, frame, dom: domain.id, pa: frame };
        let handle = self.take_handle(mapping);
        (status::OKAY, handle, frame)
    }

    /// Records the foreign frame mapped at `page`.
    pub fn add_foreign(&mut self, page: u64, foreign: Foreign) {
        self.foreign.insert(page, foreign);
    }

    /// The foreign frame mapped at `page`, if any, forgotten.
    pub fn take_foreign(&mut self, page: u64) -> Option<Foreign> {
        self.foreign.remove(&page)
    }

    pub fn foreign_at(&self, page: u64) -> Option<Foreign> {
        self.foreign.get(&page).copied()
    }

    /// The granting domain of mapping `handle`, if it is one.
    fn granter_of(&self, handle: u32) -> Option<u16> {
        self.maptrack.get(handle as usize).copied().flatten().map(|m| m.dom)
    }

    /// One map_grant_ref of another domain's grant: `granter` (its table
    /// `theirs`, its locked stage 2 `their_stage2`) granted entry `r.gref`
    /// to `mapper` (this table's domain). The entry is checked and marked
    /// in the granter's table, the frame (found through the granter's
    /// stage 2) mapped in the mapper's and pinned in the granter's; the
    /// handle is the mapper's, as in Xen.
    #[allow(clippy::too_many_arguments)]
    fn map_foreign(
        &mut self,
        mapper: &DomainView<'_>,
        stage2: &mut Stage2Map,
        theirs: &mut GrantTable,
        granter: &DomainView<'_>,
        their_stage2: &mut Stage2Map,
        board: &dyn Board,
        r: &MapRequest,
    ) -> (i16, u32, u64) {
        let fail = |status: i16| (status, 0, 0);
        if let Err(status) = Self::check_map_flags(r.flags) {
            return fail(status);
        }
        // An ended granter is as if gone (its state changes only under the
        // stage-2 lock held here).
        if !granter.xen.life.is_alive() {
            return fail(status::BAD_DOMAIN);
        }
        if self.free_handles.is_empty() && self.maptrack.len() >= MAX_MAPTRACK {
            return fail(status::NO_SPACE);
        }
        let writable = r.flags & map::READONLY == 0;
        let Pin { entry, newly, frame, .. } = match theirs.begin_pin(board, r.gref, mapper.id, writable) {
            Ok(pin) => pin,
            Err(status) => return fail(status),
        };
        let undo = |status: i16| {
            if newly != 0 {
                Self::release_entry(board, entry, newly);
            }
            fail(status)
        };
        // The granter's own RAM page, wherever its frame is.
        let Some(pa) = granter.own_frame(their_stage2, Ipa(frame)) else { return undo(status::BAD_PAGE) };
        if !r.host_addr.is_multiple_of(PAGE) || self.region.contains(r.host_addr) {
            return undo(status::BAD_VIRT_ADDR);
        }
        match stage2.map_page(Ipa(r.host_addr), pa, Kind::Granted { writable }, board) {
            Ok(()) => {}
            Err(Stage2Error::NoTables) => return undo(status::NO_SPACE),
            Err(_) => return undo(status::BAD_VIRT_ADDR),
        }
        their_stage2.pin(Ipa(frame));
        let held = granter.xen.life.hold(their_stage2);
        debug_assert!(held, "checked alive under the same lock");
        theirs.end_pin(r.gref, frame, writable);
        let mapping = Mapping { gref: r.gref, host_addr: r.host_addr, writable, frame, dom: granter.id, pa: pa.0 };
        (status::OKAY, self.take_handle(mapping), pa.0)
    }

    /// Takes mapping `handle` out of this table and the mapper's stage 2,
    /// if the request names it (`host_addr`, and `dev_bus_addr` if given).
    fn take_mapping(
        &mut self,
        stage2: &mut Stage2Map,
        board: &dyn Board,
        host_addr: u64,
        dev_bus_addr: u64,
        handle: u32,
    ) -> Result<Mapping, i16> {
        let Some(Some(m)) = self.maptrack.get(handle as usize).copied() else { return Err(status::BAD_HANDLE) };
        if dev_bus_addr != 0 && dev_bus_addr != m.pa {
            return Err(status::BAD_DEV_ADDR);
        }
        if host_addr & !(PAGE - 1) != m.host_addr || stage2.unmap_page(Ipa(m.host_addr), board).is_err() {
            return Err(status::GENERAL_ERROR);
        }
        self.maptrack[handle as usize] = None;
        self.free_handles.push(handle);
        Ok(m)
    }

    /// Unmaps this table's mapping `handle` of another domain's grant
    /// (`granter`; `theirs`, `their_stage2`: its table and map, locked).
    /// Also says whether that was the last reference to an ended granter,
    /// which is then to be released.
    #[allow(clippy::too_many_arguments)]
    fn unmap_foreign(
        &mut self,
        stage2: &mut Stage2Map,
        granter: &DomainView<'_>,
        theirs: &mut GrantTable,
        their_stage2: &mut Stage2Map,
        board: &dyn Board,
        host_addr: u64,
        dev_bus_addr: u64,
        handle: u32,
    ) -> (i16, bool) {
        match self.take_mapping(stage2, board, host_addr, dev_bus_addr, handle) {
            Ok(m) => {
                their_stage2.unpin(Ipa(m.frame));
                theirs.release(board, m);
                (status::OKAY, granter.xen.life.let_go(their_stage2))
            }
            Err(status) => (status, false),
        }
    }

    /// Gives the table's frames back (a released domain's): how many.
    pub fn release_frames(&mut self, board: &dyn Board) -> u64 {
        let frames = core::mem::take(&mut self.frames);
        frames.iter().for_each(|f| board.free_frame(f.pa));
        self.size = 0;
        self.active.clear();
        self.maptrack.clear();
        self.free_handles.clear();
        self.foreign.clear();
        frames.len() as u64
    }

    /// The first of its mappings of another domain's grant: its handle
    /// and the granter.
    fn first_foreign_mapping(&self, own: u16) -> Option<(u32, Mapping)> {
        self.maptrack.iter().enumerate().find_map(|(h, m)| m.filter(|m| m.dom != own).map(|m| (h as u32, m)))
    }

    /// Forgets mapping `handle` (its granter is gone), freeing the handle.
    fn forget_handle(&mut self, handle: u32) {
        if let Some(slot @ Some(_)) = self.maptrack.get_mut(handle as usize) {
            *slot = None;
            self.free_handles.push(handle);
        }
    }

    /// A mapping of this table's entry went: fewer pins, and the entry's
    /// flags cleared with the last of each kind.
    fn release(&mut self, board: &dyn Board, m: Mapping) {
        let entry = self.entry(m.gref).expect("an active entry's frame exists");
        let a = self.active.get_mut(&m.gref).expect("a mapping keeps its entry active");
        if m.writable {
            a.writers -= 1;
            if a.writers == 0 {
                Self::release_entry(board, entry, gtf::WRITING);
            }
        } else {
            a.readers -= 1;
        }
        if a.readers + a.writers == 0 {
            self.active.remove(&m.gref);
            Self::release_entry(board, entry, gtf::READING);
        }
    }

    /// One unmap_grant_ref of `handle` (a mapping of this domain's own
    /// grant), which must name this mapping.
    fn unmap_one(
        &mut self,
        stage2: &mut Stage2Map,
        board: &dyn Board,
        host_addr: u64,
        dev_bus_addr: u64,
        handle: u32,
    ) -> i16 {
        match self.take_mapping(stage2, board, host_addr, dev_bus_addr, handle) {
            Ok(m) => {
                stage2.unpin(Ipa(m.frame));
                self.release(board, m);
                status::OKAY
            }
            Err(status) => status,
        }
    }
}

/// `HYPERVISOR_grant_table_op(cmd, uop, count)`.
pub fn grant_table_op(call: &mut Call<'_>, args: [u64; 5]) -> Outcome {
    let (cmd, uop, count) = (args[0] as u32, args[1], args[2] as u32);
    if (count as i32) < 0 || (cmd >> 12 != 0 && cmd & 0xfff != op::CACHE_FLUSH) {
        return Outcome::from(EINVAL);
    }
    let single = |f: fn(&mut Call<'_>, u64) -> Result<i64, Errno>, call: &mut Call<'_>| {
        if count != 1 { EINVAL.into() } else { f(call, uop).into() }
    };
    match cmd {
        op::MAP_GRANT_REF => batch(call, args, MAP_OP_SIZE, map_grant_ref),
        op::UNMAP_GRANT_REF => batch(call, args, UNMAP_OP_SIZE, unmap_grant_ref),
        op::QUERY_SIZE => single(query_size, call),
        op::SET_VERSION => single(set_version, call),
        op::GET_VERSION => single(get_version, call),
        // cache_flush, copy, setup_table, transfer, v2 calls.
        _ => Outcome::from(ENOSYS),
    }
}

/// Runs `one` on each of `count` operations of `size` bytes at `uop`,
/// continuing later after a bounded number, as Xen does.
fn batch(call: &mut Call<'_>, args: [u64; 5], size: u64, one: fn(&mut Call<'_>, u64) -> Result<(), Errno>) -> Outcome {
    let (uop, count) = (args[1], args[2] as u32);
    for i in 0..count {
        let Some(at) = wire::element(uop, u64::from(i), size) else { return Outcome::from(EFAULT) };
        if i == OPS_PER_TRAP {
            let mut again = args;
            again[1] = at;
            again[2] = u64::from(count - i);
            return Outcome::Continue(again);
        }
        if let Err(e) = one(call, at) {
            return e.into();
        }
    }
    Outcome::Return(0)
}

/// `{ uint64_t host_addr; uint32_t flags; grant_ref_t ref; domid_t dom;
/// int16_t status; grant_handle_t handle; uint64_t dev_bus_addr; }`
fn map_grant_ref(call: &mut Call<'_>, at: u64) -> Result<(), Errno> {
    let mut b = wire::read::<GnttabMapGrantRef>(call.memory, at)?;
    let request = MapRequest { host_addr: b.host_addr, flags: b.flags, gref: b.r#ref, dom: b.dom };
    let domain = call.domain;
    let (status, handle, bus) = if request.dom == domain.id {
        let mut grants = domain.xen.grants.lock();
        let mut stage2 = domain.stage2.lock_after_grants(&grants);
        grants.map_one(&domain, &mut stage2, call.board, &request)
    } else if let Some(granter) = call.domains.find(request.dom).filter(|_| request.dom != super::DOMID_SELF) {
        // Both tables, then both stage 2s, lower domid first.
        let (mut grants, theirs) =
            super::lock_two((domain.id, domain.xen), (granter.id, granter.xen), |x: &DomainState| x.grants.lock());
        let mut theirs = theirs.expect("another domain");
        let (mut stage2, their_stage2) = super::lock_two(
            (domain.id, (domain.stage2, &grants)),
            (granter.id, (granter.stage2, &theirs)),
            |(s2, g)| s2.lock_after_grants(g),
        );
        let mut their_stage2 = their_stage2.expect("another domain");
        grants.map_foreign(&domain, &mut stage2, &mut theirs, &granter, &mut their_stage2, call.board, &request)
    } else {
        (status::BAD_DOMAIN, 0, 0)
    };
    b.status = status;
    if status == status::OKAY {
        b.handle = handle;
        b.dev_bus_addr = bus;
    }
    wire::write(call.memory, at, &b)
}

/// `{ uint64_t host_addr, dev_bus_addr; grant_handle_t handle; int16_t status; }`
fn unmap_grant_ref(call: &mut Call<'_>, at: u64) -> Result<(), Errno> {
    let mut b = wire::read::<GnttabUnmapGrantRef>(call.memory, at)?;
    let domain = call.domain;
    let (host_addr, bus, handle) = (b.host_addr, b.dev_bus_addr, b.handle);
    let granter = domain.xen.grants.lock().granter_of(handle);
    let mut release = None;
    let status = match granter.filter(|&g| g != domain.id).and_then(|g| call.domains.find(g)) {
        None => {
            let mut grants = domain.xen.grants.lock();
            let mut stage2 = domain.stage2.lock_after_grants(&grants);
            match grants.granter_of(handle) {
                Some(g) if g != domain.id => status::GENERAL_ERROR,
                _ => grants.unmap_one(&mut stage2, call.board, host_addr, bus, handle),
            }
        }
        Some(granter) => {
            let (mut grants, theirs) =
                super::lock_two((domain.id, domain.xen), (granter.id, granter.xen), |x: &DomainState| x.grants.lock());
            let mut theirs = theirs.expect("another domain");
            let (mut stage2, their_stage2) = super::lock_two(
                (domain.id, (domain.stage2, &grants)),
                (granter.id, (granter.stage2, &theirs)),
                |(s2, g)| s2.lock_after_grants(g),
            );
            let mut their_stage2 = their_stage2.expect("another domain");
            // The handle may have been unmapped and reused meanwhile.
            if grants.granter_of(handle) == Some(granter.id) {
                let (status, last) = grants.unmap_foreign(
                    &mut stage2,
                    &granter,
                    &mut theirs,
                    &mut their_stage2,
                    call.board,
                    host_addr,
                    bus,
                    handle,
                );
                release = last.then_some(granter.id);
                status
            } else {
                status::BAD_HANDLE
            }
        }
    };
    // The last mapping of an ended granter's frames went: it goes too.
    if let Some(dead) = release {
        call.domains.release(dead);
    }
    b.status = status;
    wire::write(call.memory, at, &b)
}

/// A dying domain's mappings of other domains' grants and frames, taken
/// out as Xen's `gnttab_release_mappings` does: each granter's entry and
/// pin released, each owner's reference let go. Returns the dead domains
/// whose last mapped frame went with them, to be released.
pub fn release_mappings(mapper: DomainView<'_>, board: &dyn Board, domains: &dyn super::Domains) -> Vec<u16> {
    let mut release = Vec::new();
    // One mapping at a time, with both domains locked as for an unmap.
    loop {
        let next = mapper.xen.grants.lock().first_foreign_mapping(mapper.id);
        let Some((handle, m)) = next else { break };
        let Some(granter) = domains.find(m.dom) else {
            // No such granter any more: nothing of it to release.
            mapper.xen.grants.lock().forget_handle(handle);
            continue;
        };
        let (mut grants, theirs) =
            super::lock_two((mapper.id, mapper.xen), (granter.id, granter.xen), |x: &DomainState| x.grants.lock());
        let mut theirs = theirs.expect("another domain");
        let (mut stage2, their_stage2) = super::lock_two(
            (mapper.id, (mapper.stage2, &grants)),
            (granter.id, (granter.stage2, &theirs)),
            |(s2, g)| s2.lock_after_grants(g),
        );
        let mut their_stage2 = their_stage2.expect("another domain");
        if grants.granter_of(handle) != Some(granter.id) {
            continue;
        }
        let (status, last) =
            grants.unmap_foreign(&mut stage2, &granter, &mut theirs, &mut their_stage2, board, m.host_addr, 0, handle);
        if status != status::OKAY {
            // Its own stage 2 refused the unmap: the mapping stays in it
            // (the domain never runs again), and so does the granter's
            // hold on the frame (its pin, its entry in use, its reference)
            // until that stage 2 is gone ([`release_stranded`]): else the
            // granter could balloon out a frame the dead domain still maps.
            grants.forget_handle(handle);
            grants.stranded.push(m);
        } else if last {
            release.push(granter.id);
        }
    }
    // Its foreign maps (privcmd's), each owner's pin and reference let go.
    let foreign: Vec<Foreign> = {
        let mut grants = mapper.xen.grants.lock();
        let mut stage2 = mapper.stage2.lock_after_grants(&grants);
        let pages: Vec<u64> = grants.foreign.keys().copied().collect();
        // One its stage 2 refuses to unmap stays, held, until that stage 2
        // is gone ([`release_stranded`]).
        pages
            .into_iter()
            .filter_map(|page| match stage2.unmap_page(Ipa(page), board) {
                Ok(_) | Err(Stage2Error::NotMapped) => grants.take_foreign(page),
                Err(_) => None,
            })
            .collect()
    };
    release.extend(let_go_foreign(foreign, domains));
    release
}

/// Each owner's pin and reference of `foreign` frames let go; the dead
/// owners whose last mapped frame that was, to be released.
fn let_go_foreign(foreign: Vec<Foreign>, domains: &dyn super::Domains) -> Vec<u16> {
    let mut release = Vec::new();
    for f in foreign {
        if let Some(owner) = domains.find(f.dom) {
            let mut theirs = owner.stage2.lock_holding_no_xen_lock();
            theirs.unpin(Ipa(f.page));
            if owner.xen.life.let_go(&theirs) {
                release.push(f.dom);
            }
        }
    }
    release
}

/// What a released domain still held of other domains' frames because its
/// stage 2 would not unmap them ([`release_mappings`]), let go now that
/// that stage 2 is gone: each granter's entry and pin released, each
/// owner's reference let go. Returns the dead domains whose last mapped
/// frame went with them, to be released.
pub fn release_stranded(mapper: DomainView<'_>, board: &dyn Board, domains: &dyn super::Domains) -> Vec<u16> {
    let (stranded, foreign) = {
        let mut grants = mapper.xen.grants.lock();
        let foreign: Vec<Foreign> = core::mem::take(&mut grants.foreign).into_values().collect();
        (core::mem::take(&mut grants.stranded), foreign)
    };
    let mut release = Vec::new();
    for m in stranded {
        // Its granter cannot have been released: this mapping holds it.
        let Some(granter) = domains.find(m.dom) else { continue };
        let mut theirs = granter.xen.grants.lock();
        let mut their_stage2 = granter.stage2.lock_after_grants(&theirs);
        their_stage2.unpin(Ipa(m.frame));
        theirs.release(board, m);
        if granter.xen.life.let_go(&their_stage2) {
            release.push(granter.id);
        }
    }
    release.extend(let_go_foreign(foreign, domains));
    release
}

/// `{ domid_t dom; uint32_t nr_frames, max_nr_frames; int16_t status; }`
fn query_size(call: &mut Call<'_>, at: u64) -> Result<i64, Errno> {
    let mut b = wire::read::<GnttabQuerySize>(call.memory, at)?;
    match super::own_domain(call, b.dom) {
        Ok(()) => {
            let grants = call.domain.xen.grants.lock();
            b.nr_frames = grants.nr_frames();
            b.max_nr_frames = grants.max_frames();
            b.status = status::OKAY;
        }
        Err(EPERM) => b.status = status::PERMISSION_DENIED,
        Err(_) => b.status = status::BAD_DOMAIN,
    }
    wire::write(call.memory, at, &b).map(|()| 0)
}

/// `{ uint32_t version; }`: version 1 only; the current one is written back.
fn set_version(call: &mut Call<'_>, at: u64) -> Result<i64, Errno> {
    let b = wire::read::<GnttabSetVersion>(call.memory, at)?;
    let result = match b.version {
        1 => Ok(0),
        2 => Err(ENOSYS),
        _ => Err(EINVAL),
    };
    wire::write(call.memory, at, &GnttabSetVersion { version: 1 })?;
    result
}

/// `{ domid_t dom; uint16_t pad; uint32_t version; }`
fn get_version(call: &mut Call<'_>, at: u64) -> Result<i64, Errno> {
    let mut b = wire::read::<GnttabGetVersion>(call.memory, at)?;
    super::own_domain(call, b.dom)?;
    b.version = 1;
    wire::write(call.memory, at, &b).map(|()| 0)
}

#[cfg(test)]
mod tests;
