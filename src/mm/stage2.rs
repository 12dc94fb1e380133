//! A guest's stage-2 translation (IPA -> PA), built with `aarch64-paging`'s
//! `Stage2` regime. At boot Dom0 is mapped 1:1: its RAM (Normal write-back)
//! and the devices passed through (Device-nGnRE, never executable), with
//! block mappings wherever alignment allows; everything else faults to EL2.
//!
//! At runtime single pages change (grant-table frames, grant mappings,
//! ballooning) while other vCPUs use the tables. `aarch64-paging` does not
//! know the tables are live (they are never marked active), so every change
//! of a valid entry here follows break-before-make itself: the entry is made
//! invalid, the TLBs are told through [`Tlb`], and only then is the new
//! entry or table written. Splitting a block invalidates the whole block
//! for that moment; a vCPU faulting on it meanwhile waits for the domain's
//! stage-2 lock in the abort path and retries. Subtables are never freed at
//! runtime, so no walker can see a table's memory reused.

use crate::mm::frames::FRAME_SIZE as PAGE;
use crate::mm::range::{GuestRange, Ipa, Pa, PhysRange};
use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{PhysicalAddress, Stage2Attributes as S2};
use aarch64_paging::paging::{Constraints, MemoryRegion, PageTable, Stage2, Translation};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::ptr::NonNull;

/// What an IPA range is to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ram,
    Device,
    /// Another frame of RAM seen through a grant mapping: never executable
    /// (as Xen's p2m_grant_map types), read-only unless `writable`.
    Granted {
        writable: bool,
    },
}

impl Kind {
    fn attributes(self) -> S2 {
        let common = S2::VALID | S2::ACCESS_FLAG;
        let normal = S2::MEMATTR_NORMAL_OUTER_WB | S2::MEMATTR_NORMAL_INNER_WB | S2::SH_INNER;
        match self {
            Kind::Ram => common | normal | S2::S2AP_ACCESS_RW,
            Kind::Device => common | S2::S2AP_ACCESS_RW | S2::MEMATTR_DEVICE_nGnRE | S2::XN,
            Kind::Granted { writable: true } => common | normal | S2::S2AP_ACCESS_RW | S2::XN,
            Kind::Granted { writable: false } => common | normal | S2::S2AP_ACCESS_RO | S2::XN,
        }
    }

    fn of(attributes: S2) -> Option<Kind> {
        if !attributes.contains(S2::VALID) {
            None
        } else if attributes.contains(S2::XN) && !attributes.contains(S2::MEMATTR_NORMAL_OUTER_WB) {
            Some(Kind::Device)
        } else if attributes.contains(S2::XN) {
            Some(Kind::Granted { writable: attributes.contains(S2::S2AP_ACCESS_RW) })
        } else {
            Some(Kind::Ram)
        }
    }
}

/// Why a boot mapping was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Not inside the IPA space (or wrapping).
    OutsideIpaSpace(GuestRange),
    /// Mapping it could take the boot tables past [`BOOT_TABLE_LIMIT`].
    TooManyTables(GuestRange),
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutsideIpaSpace(r) => write!(f, "{r} is outside the IPA space"),
            Self::TooManyTables(r) => write!(f, "{r} would take the tables past {BOOT_TABLE_LIMIT} pages"),
        }
    }
}

/// Why a runtime change of one page was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage2Error {
    /// Not 4 KiB aligned.
    Misaligned,
    /// At or beyond the IPA limit.
    OutsideIpaSpace,
    /// Something is mapped there already.
    Mapped,
    /// Nothing is mapped there.
    NotMapped,
    /// The frame's own 1:1 mapping is in use by the hypervisor or a grant.
    Pinned,
    /// The table budget is spent.
    NoTables,
}

/// TLB maintenance for a live stage 2, done by whoever owns the hardware:
/// the tables of the domain whose VMID is in VTTBR_EL2.
pub trait Tlb {
    /// A valid entry covering `ipa` (a page or a whole block) was just made
    /// invalid: wait for the store, drop its stage-2 and combined stage-1+2
    /// entries everywhere, and wait for that to finish.
    fn invalidate_ipa(&self, ipa: Ipa);
    /// New valid entries were written: make them visible to every walker
    /// before the guest runs again.
    fn publish(&self);
}

/// One page's translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// The physical address of the page.
    pub pa: Pa,
    pub kind: Kind,
    /// The size of the mapping that covers it: 4 KiB page, 2 MiB or 1 GiB block.
    pub size: u64,
}

/// The translation geometry for an IPA width: where the walk starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub ipa_bits: u32,
    /// The level of the root table (0 or 1 with 4 KiB pages).
    pub root_level: usize,
}

impl Geometry {
    /// A root table covers 2^39 bytes at level 1 and 2^48 at level 0;
    /// without concatenated roots (unsupported by `aarch64-paging`), wider
    /// spaces start at level 0.
    pub fn for_ipa_bits(ipa_bits: u32) -> Self {
        let ipa_bits = ipa_bits.clamp(32, 48);
        Self { ipa_bits, root_level: if ipa_bits <= 39 { 1 } else { 0 } }
    }

    pub fn limit(&self) -> u64 {
        1 << self.ipa_bits
    }

    /// VTCR_EL2 for this geometry, with `pa_bits` of output address: 4 KiB
    /// granule, inner-shareable write-back table walks.
    pub fn vtcr(&self, pa_bits: u32) -> u64 {
        const RES1: u64 = 1 << 31;
        let ps: u64 = match pa_bits {
            0..=32 => 0,
            33..=36 => 1,
            37..=40 => 2,
            41..=42 => 3,
            43..=44 => 4,
            _ => 5,
        };
        let t0sz = 64 - u64::from(self.ipa_bits);
        // SL0 with 4 KiB pages: 2 starts at level 0, 1 at level 1.
        let sl0: u64 = if self.root_level == 0 { 2 } else { 1 };
        let (irgn0, orgn0, sh0, tg0) = (1u64, 1u64, 3u64, 0u64);
        RES1 | (ps << 16) | (tg0 << 14) | (sh0 << 12) | (orgn0 << 10) | (irgn0 << 8) | (sl0 << 6) | t0sz
    }
}

/// Table pages from the heap, identity mapped (on the host, their heap
/// address stands in for the physical one), counted against a budget so a
/// guest scattering mappings over its IPA space cannot eat the heap, and
/// recorded so an audit can prove no guest mapping reaches them.
struct HeapTables {
    pages: BTreeSet<u64>,
}

impl Translation<S2> for HeapTables {
    fn allocate_table(&mut self) -> (NonNull<PageTable<S2>>, PhysicalAddress) {
        let layout = core::alloc::Layout::new::<PageTable<S2>>();
        // SAFETY: the layout has a non-zero size.
        let table = unsafe { alloc::alloc::alloc_zeroed(layout) } as *mut PageTable<S2>;
        let Some(table) = NonNull::new(table) else { alloc::alloc::handle_alloc_error(layout) };
        self.pages.insert(table.as_ptr() as u64);
        (table, PhysicalAddress(table.as_ptr() as usize))
    }

    unsafe fn deallocate_table(&mut self, table: NonNull<PageTable<S2>>) {
        self.pages.remove(&(table.as_ptr() as u64));
        // SAFETY: allocated by `allocate_table` with this layout (the caller's promise).
        unsafe { alloc::alloc::dealloc(table.as_ptr() as *mut u8, core::alloc::Layout::new::<PageTable<S2>>()) };
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<S2>> {
        NonNull::new(pa.0 as *mut PageTable<S2>).expect("a table is never at address 0")
    }
}

/// Tables the boot mappings of a domain may take: 12 MiB of the 16 MiB
/// heap. Enough for 4 GiB of RAM in pages and a thousand scattered devices.
pub const BOOT_TABLE_LIMIT: usize = 3072;
/// The most tables one mapping with blocks can add: the two ends of the
/// range may each need a new table at every level below the root.
const BLOCK_MAPPING_TABLES: usize = 6;

/// Tables a domain's stage 2 may take at run time beyond those of its boot
/// mappings: 4 MiB of heap.
pub const TABLE_BUDGET: usize = 1024;
/// The level of page entries.
const PAGE_LEVEL: usize = 3;

pub struct Stage2Map {
    map: Mapping<HeapTables, Stage2>,
    geometry: Geometry,
    /// Frames whose 1:1 mapping must stay (shared areas the hypervisor
    /// writes, frames mapped elsewhere through a grant), with use counts.
    pinned: BTreeMap<u64, u32>,
    /// Tables the boot mappings took (not counted against the budget).
    boot_tables: usize,
}

/// Table pages that mapping `bytes` of RAM with 4 KiB pages needs at most:
/// one last-level table per 2 MiB and one above it per GiB, plus the ends.
pub fn page_tables_for(bytes: u64) -> usize {
    (bytes.div_ceil(2 << 20) + bytes.div_ceil(1 << 30) + 2) as usize
}

// SAFETY: the tables are reached only through `&mut self` or `&self` under
// the domain's lock; the raw pointers inside are heap memory owned here.
unsafe impl Send for Stage2Map {}

impl Stage2Map {
    pub fn new(geometry: Geometry) -> Self {
        Self {
            map: Mapping::new(HeapTables { pages: BTreeSet::new() }, geometry.root_level, Stage2),
            geometry,
            pinned: BTreeMap::new(),
            boot_tables: 0,
        }
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Maps `range` (rounded out to pages) 1:1 as `kind`, with the largest
    /// blocks that fit. For building the tables before the guest runs: no
    /// break-before-make.
    pub fn map(&mut self, range: PhysRange, kind: Kind) -> Result<(), MapError> {
        self.map_boot(GuestRange::identity_of(range), Pa(range.start), kind, Constraints::empty())
    }

    /// As [`map`](Self::map), but with 4 KiB pages only: 2 MiB of tables
    /// per GiB ([`page_tables_for`]).
    pub fn map_pages(&mut self, range: PhysRange, kind: Kind) -> Result<(), MapError> {
        self.map_boot(GuestRange::identity_of(range), Pa(range.start), kind, Constraints::NO_BLOCK_MAPPINGS)
    }

    /// Maps the guest range `ipa` to the frames from `pa` on (a domain
    /// that is not 1:1: a DomU), with the largest blocks that fit both
    /// sides' alignment. Page aligned; for building, like [`map`](Self::map).
    pub fn map_at(&mut self, ipa: GuestRange, pa: Pa, kind: Kind) -> Result<(), MapError> {
        if !ipa.start.is_multiple_of(PAGE) || !ipa.end.is_multiple_of(PAGE) || !pa.0.is_multiple_of(PAGE) {
            return Err(MapError::OutsideIpaSpace(ipa));
        }
        self.map_boot(ipa, pa, kind, Constraints::empty())
    }

    /// As [`map_at`](Self::map_at), in 4 KiB pages only (`stage2-blocks=no`).
    pub fn map_pages_at(&mut self, ipa: GuestRange, pa: Pa, kind: Kind) -> Result<(), MapError> {
        if !ipa.start.is_multiple_of(PAGE) || !ipa.end.is_multiple_of(PAGE) || !pa.0.is_multiple_of(PAGE) {
            return Err(MapError::OutsideIpaSpace(ipa));
        }
        self.map_boot(ipa, pa, kind, Constraints::NO_BLOCK_MAPPINGS)
    }

    /// Maps `ipa` (rounded out to pages) to the frames from `pa` rounded
    /// down by the same amount.
    fn map_boot(&mut self, ipa: GuestRange, pa: Pa, kind: Kind, constraints: Constraints) -> Result<(), MapError> {
        let pages = ipa.expand_to_alignment(PAGE).ok_or(MapError::OutsideIpaSpace(ipa))?;
        if pages.end > self.geometry.limit() {
            return Err(MapError::OutsideIpaSpace(ipa));
        }
        let output = pa.0 - (ipa.start - pages.start);
        // A host tree may list any number of device ranges: the tables
        // they take are bounded, so a hostile tree cannot exhaust the heap.
        let worst_case = if constraints.contains(Constraints::NO_BLOCK_MAPPINGS) {
            page_tables_for(pages.size())
        } else {
            BLOCK_MAPPING_TABLES
        };
        if self.tables() + worst_case > BOOT_TABLE_LIMIT {
            return Err(MapError::TooManyTables(ipa));
        }
        let region = MemoryRegion::new(pages.start as usize, pages.end as usize);
        let before = self.tables();
        let result = self
            .map
            .map_range(&region, PhysicalAddress(output as usize), kind.attributes(), constraints)
            .map_err(|_| MapError::OutsideIpaSpace(ipa));
        self.boot_tables += self.tables() - before;
        result
    }

    /// The physical address of the root table, for VTTBR_EL2.
    pub fn root_address(&self) -> u64 {
        self.map.root_address().0 as u64
    }

    /// Table pages in use.
    pub fn tables(&self) -> usize {
        self.map.translation().pages.len()
    }

    /// Table pages taken at run time, beyond the boot mappings' (what
    /// `TABLE_BUDGET` bounds).
    pub fn runtime_tables(&self) -> usize {
        self.tables().saturating_sub(self.boot_tables)
    }

    /// The physical address of every table page in use, the root included.
    pub fn table_pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.map.translation().pages.iter().copied()
    }

    /// What the page holding `ipa` translates to, if anything.
    pub fn translate(&self, ipa: Ipa) -> Option<Leaf> {
        if ipa.0 >= self.geometry.limit() {
            return None;
        }
        let page = ipa.page().0;
        let mut leaf = None;
        let region = MemoryRegion::new(page as usize, (page + PAGE) as usize);
        let _ = self.map.walk_range(&region, &mut |_, descriptor, level| {
            let kind = Kind::of(descriptor.flags());
            if let Some(kind) = kind {
                let size = 1u64 << (12 + 9 * (3 - level));
                let pa = descriptor.output_address().0 as u64 + (page & (size - 1));
                leaf = Some(Leaf { pa: Pa(pa), kind, size });
            }
            Ok(())
        });
        leaf
    }

    fn check_page(&self, ipa: u64) -> Result<(), Stage2Error> {
        if !ipa.is_multiple_of(PAGE) {
            return Err(Stage2Error::Misaligned);
        }
        if ipa >= self.geometry.limit() {
            return Err(Stage2Error::OutsideIpaSpace);
        }
        Ok(())
    }

    /// The tables a change of the single page at `ipa` adds: one for each
    /// level between the entry now covering it (empty or a block) and the
    /// page level. Exact, so a page just unmapped from an existing table
    /// can always be mapped back, however little budget is left.
    fn tables_needed(&self, ipa: u64) -> usize {
        let mut level = self.geometry.root_level;
        let page = MemoryRegion::new(ipa as usize, (ipa + PAGE) as usize);
        let _ = self.map.walk_range(&page, &mut |_, _, entry_level| {
            level = entry_level;
            Ok(())
        });
        PAGE_LEVEL - level
    }

    /// Whether a runtime change of the page at `ipa` fits the budget: the
    /// guest gets `TABLE_BUDGET` tables beyond what its boot mappings took.
    fn within_budget(&self, ipa: u64) -> Result<(), Stage2Error> {
        if self.runtime_tables() + self.tables_needed(ipa) > TABLE_BUDGET { Err(Stage2Error::NoTables) } else { Ok(()) }
    }

    fn write(&mut self, range: GuestRange, pa: Pa, attributes: S2) {
        let region = MemoryRegion::new(range.start as usize, range.end as usize);
        // Inside the IPA space and without TABLE_OR_PAGE: cannot fail.
        self.map
            .map_range(&region, PhysicalAddress(pa.0 as usize), attributes, Constraints::empty())
            .expect("checked range and flags");
    }

    /// Maps the unmapped page at `ipa` to the frame at `pa`. No valid entry
    /// changes, so no break is needed; new entries are published.
    pub fn map_page(&mut self, ipa: Ipa, pa: Pa, kind: Kind, tlb: &dyn Tlb) -> Result<(), Stage2Error> {
        self.check_page(ipa.0)?;
        if !pa.0.is_multiple_of(PAGE) {
            return Err(Stage2Error::Misaligned);
        }
        if self.translate(ipa).is_some() {
            return Err(Stage2Error::Mapped);
        }
        self.within_budget(ipa.0)?;
        self.write(GuestRange::new(ipa.0, ipa.0 + PAGE), pa, kind.attributes());
        tlb.publish();
        Ok(())
    }

    /// Unmaps the page at `ipa`, splitting the block around it if need be,
    /// and returns what was there. A pinned frame's 1:1 page stays.
    pub fn unmap_page(&mut self, ipa: Ipa, tlb: &dyn Tlb) -> Result<Leaf, Stage2Error> {
        self.check_page(ipa.0)?;
        let leaf = self.translate(ipa).ok_or(Stage2Error::NotMapped)?;
        // Pins name frames by the address of the guest's own page of them
        // (1:1 for Dom0, the guest address for a DomU).
        if leaf.kind == Kind::Ram && self.is_pinned(ipa) {
            return Err(Stage2Error::Pinned);
        }
        let ipa = ipa.0;
        if leaf.size > PAGE {
            self.within_budget(ipa)?;
        }
        let block = GuestRange::new(ipa & !(leaf.size - 1), (ipa & !(leaf.size - 1)) + leaf.size);
        // Break: the whole entry (page or block) goes invalid first.
        self.write(block, Pa(0), S2::empty());
        debug_assert!(self.translate(Ipa(ipa)).is_none());
        tlb.invalidate_ipa(Ipa(block.start));
        if leaf.size > PAGE {
            // Make: the rest of the block again, now through subtables.
            let base = leaf.pa.0 - (ipa - block.start);
            let attributes = leaf.kind.attributes();
            self.write(GuestRange::new(block.start, ipa), Pa(base), attributes);
            self.write(GuestRange::new(ipa + PAGE, block.end), Pa(base + (ipa + PAGE - block.start)), attributes);
            tlb.publish();
        }
        Ok(leaf)
    }

    /// Keeps the guest's own page holding `page` (its frame mapped 1:1)
    /// mapped until as many `unpin`s.
    pub fn pin(&mut self, page: Ipa) {
        *self.pinned.entry(page.page().0).or_insert(0) += 1;
    }

    pub fn unpin(&mut self, page: Ipa) {
        let page = page.page().0;
        if let Some(count) = self.pinned.get_mut(&page) {
            *count -= 1;
            if *count == 0 {
                self.pinned.remove(&page);
            }
        }
    }

    pub fn is_pinned(&self, page: Ipa) -> bool {
        self.pinned.contains_key(&page.page().0)
    }

    /// Every pinned page.
    pub fn pinned_pages(&self) -> impl Iterator<Item = Ipa> + '_ {
        self.pinned.keys().map(|&page| Ipa(page))
    }

    /// Every valid leaf, read from the descriptors the MMU walks, merged
    /// where adjacent, alike and contiguous in both address spaces.
    pub fn leaves(&self) -> Vec<Extent> {
        let mut out: Vec<Extent> = Vec::new();
        let whole = MemoryRegion::new(0, self.geometry.limit() as usize);
        let _ = self.map.walk_range(&whole, &mut |region, descriptor, level| {
            let Some(kind) = Kind::of(descriptor.flags()) else { return Ok(()) };
            let granule = 1u64 << (12 + 9 * (3 - level));
            let ipa = GuestRange::new(region.start().0 as u64, region.end().0 as u64);
            let pa = Pa(descriptor.output_address().0 as u64 + (ipa.start & (granule - 1)));
            match out.last_mut() {
                Some(last)
                    if last.ipa.end == ipa.start
                        && last.kind == kind
                        && last.granule == granule
                        && last.frames().end == pa.0 =>
                {
                    last.ipa.end = ipa.end
                }
                _ => out.push(Extent { ipa, pa, kind, granule }),
            }
            Ok(())
        });
        out
    }

    /// Every mapped IPA range with its kind and mapping size, merged where
    /// adjacent and alike: the tests' view of `leaves`.
    #[cfg(test)]
    pub fn mappings(&self) -> Vec<(GuestRange, Kind, u64)> {
        self.leaves().into_iter().map(|e| (e.ipa, e.kind, e.granule)).collect()
    }
}

/// A run of leaf entries of one kind and mapping size, contiguous in both
/// the IPA and the physical address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub ipa: GuestRange,
    /// Where `ipa.start` lands.
    pub pa: Pa,
    pub kind: Kind,
    /// The size of each entry: 4 KiB page, 2 MiB or 1 GiB block.
    pub granule: u64,
}

impl Extent {
    /// The physical frames the run maps.
    pub fn frames(&self) -> PhysRange {
        PhysRange::new(self.pa.0, self.pa.0 + self.ipa.size())
    }

    /// Whether the run maps each IPA to the frame of the same number.
    pub fn is_one_to_one(&self) -> bool {
        self.pa == Pa::identity_of(Ipa(self.ipa.start))
    }
}

impl core::fmt::Display for Extent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IPA {} -> {:#x} ({:?})", self.ipa, self.pa.0, self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn geometry() {
        assert_eq!(Geometry::for_ipa_bits(44), Geometry { ipa_bits: 44, root_level: 0 });
        assert_eq!(Geometry::for_ipa_bits(36), Geometry { ipa_bits: 36, root_level: 1 });
        assert_eq!(Geometry::for_ipa_bits(52).ipa_bits, 48);
    }

    #[test]
    fn vtcr_matches_xen_on_cortex_a57() {
        // Xen 4.17 logs "VTCR 0x0000000080043594" for a 44-bit IPA there.
        assert_eq!(Geometry::for_ipa_bits(44).vtcr(44), 0x8004_3594);
        // 36 bits (some Cortex-A53 boards): level-1 root, T0SZ 28.
        assert_eq!(Geometry::for_ipa_bits(36).vtcr(36), 0x8001_355c);
    }

    #[test]
    fn a_domu_maps_its_guest_ram_elsewhere() {
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(40));
        s2.map_at(GuestRange::new(0x4000_0000, 0x4040_0000), Pa(0x8_8000_0000), Kind::Ram).unwrap();
        s2.map_at(GuestRange::new(0x4040_0000, 0x4040_1000), Pa(0x9000_0000), Kind::Ram).unwrap();
        let leaf = s2.translate(Ipa(0x4012_3456)).unwrap();
        assert_eq!((leaf.pa, leaf.kind, leaf.size), (Pa(0x8_8012_3000), Kind::Ram, 2 * MIB));
        assert_eq!(s2.translate(Ipa(0x4040_0000)).map(|l| l.pa), Some(Pa(0x9000_0000)));
        assert_eq!(s2.translate(Ipa(0x4040_1000)), None);
        assert!(s2.leaves().iter().all(|e| !e.is_one_to_one()));
        let misaligned = GuestRange::new(0x4000_0800, 0x4000_1000);
        assert_eq!(s2.map_at(misaligned, Pa(0x9000_0000), Kind::Ram), Err(MapError::OutsideIpaSpace(misaligned)));
        let beyond = GuestRange::new(1 << 40, (1 << 40) + 0x1000);
        assert_eq!(s2.map_at(beyond, Pa(0x9000_0000), Kind::Ram), Err(MapError::OutsideIpaSpace(beyond)));
    }

    #[test]
    fn a_domu_in_pages_gets_no_block() {
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(40));
        s2.map_pages_at(GuestRange::new(0x4000_0000, 0x4040_0000), Pa(0x8_8000_0000), Kind::Ram).unwrap();
        let leaf = s2.translate(Ipa(0x4012_3456)).unwrap();
        assert_eq!((leaf.pa, leaf.kind, leaf.size), (Pa(0x8_8012_3000), Kind::Ram, PAGE));
        assert!(s2.leaves().iter().all(|e| e.granule == PAGE && !e.is_one_to_one()));
        assert_eq!(s2.translate(Ipa(0x4040_0000)), None);
        let misaligned = GuestRange::new(0x4000_0800, 0x4000_1000);
        assert_eq!(s2.map_pages_at(misaligned, Pa(0x9000_0000), Kind::Ram), Err(MapError::OutsideIpaSpace(misaligned)));
    }

    #[test]
    fn ram_uses_blocks_devices_use_pages() {
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(44));
        s2.map(PhysRange::new(0x6000_0000, 0x8000_0000), Kind::Ram).unwrap();
        s2.map(PhysRange::new(0x4000_0000 + 3 * MIB, 0x4000_0000 + 4 * MIB + 4096), Kind::Ram).unwrap();
        s2.map(PhysRange::new(0x900_0000, 0x900_0100), Kind::Device).unwrap();
        s2.map(PhysRange::new(GIB * 4, GIB * 5), Kind::Ram).unwrap();
        let m = s2.mappings();
        assert!(m.contains(&(GuestRange::new(0x900_0000, 0x900_1000), Kind::Device, 4096)));
        assert!(m.contains(&(GuestRange::new(0x6000_0000, 0x8000_0000), Kind::Ram, 2 * MIB)));
        assert!(m.contains(&(GuestRange::new(4 * GIB, 5 * GIB), Kind::Ram, GIB)));
        // The unaligned piece: pages up to 4 MiB alignment, then one page.
        let total: u64 = m
            .iter()
            .filter(|(r, _, _)| r.start < 0x6000_0000 && r.start >= 0x4000_0000)
            .map(|(r, _, _)| r.size())
            .sum();
        assert_eq!(total, MIB + 4096);
        // Nothing else is mapped.
        let all: u64 = m.iter().map(|(r, _, _)| r.size()).sum();
        assert_eq!(all, 512 * MIB + MIB + 4096 + 4096 + GIB);
    }

    /// Records TLB maintenance in order.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<(char, u64)>>);

    impl Tlb for Recorder {
        fn invalidate_ipa(&self, ipa: Ipa) {
            self.0.lock().unwrap().push(('i', ipa.0));
        }
        fn publish(&self) {
            self.0.lock().unwrap().push(('p', 0));
        }
    }

    fn dom0_like() -> Stage2Map {
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(44));
        s2.map(PhysRange::new(0x6000_0000, 0x8000_0000), Kind::Ram).unwrap();
        s2.map(PhysRange::new(GIB * 4, GIB * 5), Kind::Ram).unwrap();
        s2
    }

    #[test]
    fn unmapping_a_page_splits_its_block_break_before_make() {
        let mut s2 = dom0_like();
        let tlb = Recorder::default();
        let ipa = 0x6010_3000;
        assert_eq!(s2.translate(Ipa(ipa)), Some(Leaf { pa: Pa(ipa), kind: Kind::Ram, size: 2 * MIB }));
        let leaf = s2.unmap_page(Ipa(ipa), &tlb).unwrap();
        assert_eq!(leaf.size, 2 * MIB);
        assert_eq!(*tlb.0.lock().unwrap(), vec![('i', 0x6000_0000), ('p', 0)], "break, invalidate the block, make");
        assert_eq!(s2.translate(Ipa(ipa)), None);
        for page in [0x6000_0000, ipa - PAGE, ipa + PAGE, 0x601f_f000] {
            assert_eq!(s2.translate(Ipa(page)), Some(Leaf { pa: Pa(page), kind: Kind::Ram, size: PAGE }), "{page:#x}");
        }
        assert_eq!(s2.translate(Ipa(0x6020_0000)).unwrap().size, 2 * MIB, "other blocks stay");
        // A 1 GiB block: split down to pages around the hole.
        let ipa = GIB * 4 + 0x1234_5000;
        s2.unmap_page(Ipa(ipa), &tlb).unwrap();
        assert_eq!(s2.translate(Ipa(ipa)), None);
        assert_eq!(s2.translate(Ipa(ipa + PAGE)).unwrap().size, PAGE);
        assert_eq!(s2.translate(Ipa(GIB * 4)).unwrap().size, 2 * MIB);
        let total: u64 = s2.mappings().iter().map(|(r, _, _)| r.size()).sum();
        assert_eq!(total, 512 * MIB + GIB - 2 * PAGE);
        // A page: only that page's entry, no table written.
        tlb.0.lock().unwrap().clear();
        s2.unmap_page(Ipa(ipa + PAGE), &tlb).unwrap();
        assert_eq!(*tlb.0.lock().unwrap(), vec![('i', ipa + PAGE)]);
        assert_eq!(s2.unmap_page(Ipa(ipa), &tlb), Err(Stage2Error::NotMapped), "double unmap");
    }

    #[test]
    fn pages_map_elsewhere_only_where_nothing_is() {
        let mut s2 = dom0_like();
        let tlb = Recorder::default();
        let frame = 0x6000_5000;
        assert_eq!(s2.map_page(Ipa(0x4800_0000), Pa(frame), Kind::Granted { writable: false }, &tlb), Ok(()));
        assert_eq!(
            s2.translate(Ipa(0x4800_0000)),
            Some(Leaf { pa: Pa(frame), kind: Kind::Granted { writable: false }, size: PAGE })
        );
        assert_eq!(s2.map_page(Ipa(0x4800_0000), Pa(frame), Kind::Ram, &tlb), Err(Stage2Error::Mapped));
        assert_eq!(
            s2.map_page(Ipa(0x6000_0000), Pa(frame), Kind::Ram, &tlb),
            Err(Stage2Error::Mapped),
            "inside a block"
        );
        assert_eq!(s2.map_page(Ipa(0x4800_0800), Pa(frame), Kind::Ram, &tlb), Err(Stage2Error::Misaligned));
        assert_eq!(s2.map_page(Ipa(0x4800_1000), Pa(frame + 8), Kind::Ram, &tlb), Err(Stage2Error::Misaligned));
        assert_eq!(s2.map_page(Ipa(1 << 44), Pa(frame), Kind::Ram, &tlb), Err(Stage2Error::OutsideIpaSpace));
        assert_eq!(s2.map_page(Ipa(!0xfff), Pa(frame), Kind::Ram, &tlb), Err(Stage2Error::OutsideIpaSpace));
        assert_eq!(s2.unmap_page(Ipa(1 << 44), &tlb), Err(Stage2Error::OutsideIpaSpace));
        // Pinned frames keep their own 1:1 page, but a mapping of them elsewhere goes.
        s2.pin(Ipa(frame));
        s2.pin(Ipa(frame + 0x10));
        assert_eq!(s2.unmap_page(Ipa(frame), &tlb), Err(Stage2Error::Pinned));
        assert_eq!(s2.unmap_page(Ipa(0x4800_0000), &tlb).map(|l| l.pa), Ok(Pa(frame)));
        s2.unpin(Ipa(frame));
        assert_eq!(s2.unmap_page(Ipa(frame), &tlb), Err(Stage2Error::Pinned), "pinned twice");
        s2.unpin(Ipa(frame));
        s2.unpin(Ipa(frame));
        assert!(!s2.is_pinned(Ipa(frame)));
        assert!(s2.unmap_page(Ipa(frame), &tlb).is_ok());
        // And back, as ballooning does.
        assert_eq!(s2.map_page(Ipa(frame), Pa(frame), Kind::Ram, &tlb), Ok(()));
        assert_eq!(s2.translate(Ipa(frame)).unwrap().pa, Pa(frame));
    }

    #[test]
    fn the_table_budget_bounds_scattered_mappings() {
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(48));
        let tlb = Recorder::default();
        let mut refused = None;
        for i in 0..TABLE_BUDGET as u64 {
            // One mapping per 512 GiB: three new tables each.
            if let Err(e) = s2.map_page(Ipa(i << 39), Pa(0x6000_0000), Kind::Ram, &tlb) {
                refused = Some((i, e));
                break;
            }
        }
        let (i, e) = refused.expect("the budget runs out");
        assert_eq!(e, Stage2Error::NoTables);
        assert!(s2.tables() <= TABLE_BUDGET && i > 300, "{i} mappings, {} tables", s2.tables());
        // A page whose table exists needs none: it maps, and maps back.
        let beside = ((i - 1) << 39) + PAGE;
        assert_eq!(s2.map_page(Ipa(beside), Pa(0x6000_0000), Kind::Ram, &tlb), Ok(()));
        assert!(s2.unmap_page(Ipa(beside), &tlb).is_ok());
        assert_eq!(s2.map_page(Ipa(beside), Pa(0x6000_0000), Kind::Ram, &tlb), Ok(()));
    }

    #[test]
    fn scattered_device_ranges_stop_at_the_boot_table_limit() {
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(44));
        s2.map(PhysRange::new(0x4000_0000, 0x8000_0000), Kind::Ram).unwrap();
        // One 4 KiB device every GiB: two new tables each.
        let refused = (2..16 * 1024u64)
            .map(|gib| PhysRange::new(gib << 30, (gib << 30) + PAGE))
            .map(|r| s2.map(r, Kind::Device))
            .position(|r| matches!(r, Err(MapError::TooManyTables(_))))
            .expect("the limit is reached");
        assert!(s2.tables() <= BOOT_TABLE_LIMIT && refused > 1000, "{refused} devices, {} tables", s2.tables());
        // Once reached, it stays reached, and what was mapped is intact.
        assert!(matches!(s2.map(PhysRange::new(0x1000, 0x2000), Kind::Device), Err(MapError::TooManyTables(_))));
        assert_eq!(s2.translate(Ipa(0x4000_0000)).map(|l| l.kind), Some(Kind::Ram));
        // Outside the IPA space is its own error.
        assert!(matches!(
            s2.map(PhysRange::new(1 << 44, (1 << 44) + PAGE), Kind::Device),
            Err(MapError::OutsideIpaSpace(_))
        ));
    }

    #[test]
    fn ram_in_pages_has_only_page_leaves_and_keeps_the_runtime_budget() {
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(48));
        let ram = PhysRange::new(0x4000_0000, 0xc000_0000); // 2 GiB
        s2.map_pages(ram, Kind::Ram).unwrap();
        s2.map(PhysRange::new(0x0800_0000, 0x0801_0000), Kind::Device).unwrap();
        let leaves = s2.leaves();
        let ram_leaves: Vec<_> = leaves.iter().filter(|l| l.kind == Kind::Ram).collect();
        assert!(ram_leaves.iter().all(|l| l.granule == PAGE), "{ram_leaves:x?}");
        assert_eq!(ram_leaves.iter().map(|l| l.ipa.size()).sum::<u64>(), ram.size());
        assert!(s2.tables() <= page_tables_for(ram.size()) + 2, "{} tables", s2.tables());
        assert!(s2.tables() > TABLE_BUDGET / 2);
        // The boot tables do not eat the run-time budget: scattered
        // mappings still get about as far as on an empty map.
        let tlb = Recorder::default();
        let mapped = (1..TABLE_BUDGET as u64)
            .take_while(|i| s2.map_page(Ipa(i << 39), Pa(0x6000_0000), Kind::Ram, &tlb).is_ok())
            .count();
        assert!(mapped > 300, "{mapped} run-time mappings");
        assert_eq!(s2.translate(Ipa(0x4123_4000)).map(|l| (l.pa, l.size)), Some((Pa(0x4123_4000), PAGE)));
    }

    proptest::proptest! {
        /// Random maps and unmaps agree with a page-by-page model, and
        /// every change of a valid entry is preceded by its invalidation.
        #[test]
        fn runtime_changes_match_a_model(ops in proptest::collection::vec((0u8..3, 0u64..2048, 0u64..64), 1..60)) {
            use std::collections::BTreeMap;
            let base = 0x6000_0000u64; // 2 MiB blocks of RAM over [base, base + 4 MiB)
            let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(40));
            s2.map(PhysRange::new(base, base + 4 * MIB), Kind::Ram).unwrap();
            let mut model: BTreeMap<u64, (u64, Kind)> = (0..1024).map(|i| (base + i * PAGE, (base + i * PAGE, Kind::Ram))).collect();
            let tlb = Recorder::default();
            for (op, page, target) in ops {
                let ipa = base - 2 * MIB + page * PAGE; // also 2 MiB below RAM
                match op {
                    0 => {
                        let got = s2.unmap_page(Ipa(ipa), &tlb);
                        match model.remove(&ipa) {
                            Some((pa, kind)) => proptest::prop_assert_eq!(got.map(|l| (l.pa.0, l.kind)), Ok((pa, kind))),
                            None => proptest::prop_assert_eq!(got, Err(Stage2Error::NotMapped)),
                        }
                    }
                    _ => {
                        let kind = if op == 1 { Kind::Ram } else { Kind::Granted { writable: target % 2 == 0 } };
                        let pa = 0x9000_0000 + target * PAGE;
                        let got = s2.map_page(Ipa(ipa), Pa(pa), kind, &tlb);
                        if let std::collections::btree_map::Entry::Vacant(e) = model.entry(ipa) {
                            proptest::prop_assert_eq!(got, Ok(()));
                            e.insert((pa, kind));
                        } else {
                            proptest::prop_assert_eq!(got, Err(Stage2Error::Mapped));
                        }
                    }
                }
            }
            for page in 0..2048u64 {
                let ipa = base - 2 * MIB + page * PAGE;
                proptest::prop_assert_eq!(s2.translate(Ipa(ipa)).map(|l| (l.pa.0, l.kind)), model.get(&ipa).copied(), "{:#x}", ipa);
            }
            let leaf_pages: u64 = s2.leaves().iter().map(|e| e.ipa.size() / PAGE).sum();
            proptest::prop_assert_eq!(leaf_pages, model.len() as u64);
        }
    }

    #[test]
    fn table_pages_are_the_tables_walked() {
        let mut s2 = dom0_like();
        let root = s2.root_address();
        let before: Vec<u64> = s2.table_pages().collect();
        assert!(before.contains(&root));
        assert_eq!(before.len(), s2.tables());
        // Splitting a block adds the subtables it needs, and only those.
        s2.unmap_page(Ipa(0x6010_3000), &Recorder::default()).unwrap();
        let after: Vec<u64> = s2.table_pages().collect();
        assert_eq!(after.len(), before.len() + 1);
        assert!(before.iter().all(|t| after.contains(t)));
        // It is the very table the walk reads: entry 0x102 maps the page
        // before the hole, entry 0x103 is the hole.
        let new_table = *after.iter().find(|t| !before.contains(t)).unwrap();
        let entry = |i: u64| {
            // SAFETY: on the host a table's address is its heap address; the
            // map owns it and nothing writes it while `s2` is borrowed here.
            unsafe { core::ptr::read((new_table + 8 * i) as *const u64) }
        };
        assert_eq!((entry(0x102) & 0xffff_ffff_f000, entry(0x102) & 1), (0x6010_2000, 1));
        assert_eq!(entry(0x103) & 1, 0);
    }

    #[test]
    fn beyond_the_ipa_space_is_refused() {
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(36));
        assert!(s2.map(PhysRange::new(1 << 36, (1 << 36) + 4096), Kind::Ram).is_err());
        assert!(s2.map(PhysRange::new(0, u64::MAX), Kind::Ram).is_err());
        assert!(s2.mappings().is_empty());
    }
}
