//! A guest's stage-2 translation (IPA -> PA), built with `aarch64-paging`'s
//! `Stage2` regime. Dom0 is mapped 1:1, so the tables are an identity map
//! of exactly what Dom0 may touch: its RAM (Normal write-back) and the
//! devices passed through (Device-nGnRE, never executable). Block mappings
//! are used wherever alignment allows; everything else faults to EL2.

use crate::mm::range::PhysRange;
use aarch64_paging::descriptor::Stage2Attributes as S2;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{MemoryRegion, Stage2};
use alloc::vec::Vec;

/// What an IPA range is to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ram,
    Device,
}

impl Kind {
    fn attributes(self) -> S2 {
        let common = S2::VALID | S2::ACCESS_FLAG | S2::S2AP_ACCESS_RW;
        match self {
            Kind::Ram => common | S2::MEMATTR_NORMAL_OUTER_WB | S2::MEMATTR_NORMAL_INNER_WB | S2::SH_INNER,
            Kind::Device => common | S2::MEMATTR_DEVICE_nGnRE | S2::XN,
        }
    }

    fn of(attributes: S2) -> Option<Kind> {
        if !attributes.contains(S2::VALID) {
            None
        } else if attributes.contains(S2::XN) && !attributes.contains(S2::MEMATTR_NORMAL_OUTER_WB) {
            Some(Kind::Device)
        } else {
            Some(Kind::Ram)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapError(pub PhysRange);

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

pub struct Stage2Map {
    map: IdMap<Stage2>,
    geometry: Geometry,
}

impl Stage2Map {
    pub fn new(geometry: Geometry) -> Self {
        Self { map: IdMap::new(geometry.root_level, Stage2), geometry }
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Maps `range` (rounded out to pages) 1:1 as `kind`.
    pub fn map(&mut self, range: PhysRange, kind: Kind) -> Result<(), MapError> {
        let pages = range.expand_to_alignment(4096).ok_or(MapError(range))?;
        if pages.end > self.geometry.limit() {
            return Err(MapError(range));
        }
        let region = MemoryRegion::new(pages.start as usize, pages.end as usize);
        self.map.map_range(&region, kind.attributes()).map_err(|_| MapError(range))
    }

    /// The physical address of the root table, for VTTBR_EL2.
    pub fn root_address(&self) -> u64 {
        self.map.root_address().0 as u64
    }

    /// Every mapped range with its kind and the size of the mapping that
    /// covers it (4 KiB page, 2 MiB or 1 GiB block), merged where adjacent
    /// and alike. For checks that Dom0 sees exactly what it should.
    pub fn mappings(&self) -> Vec<(PhysRange, Kind, u64)> {
        let mut out: Vec<(PhysRange, Kind, u64)> = Vec::new();
        let whole = MemoryRegion::new(0, self.geometry.limit() as usize);
        let _ = self.map.walk_range(&whole, &mut |region, descriptor, level| {
            let Some(kind) = Kind::of(descriptor.flags()) else { return Ok(()) };
            // Only leaves: a table descriptor at levels 0-2 has TABLE_OR_PAGE set.
            if level < 3 && descriptor.flags().contains(S2::TABLE_OR_PAGE) {
                return Ok(());
            }
            let granule = 1u64 << (12 + 9 * (3 - level));
            let range = PhysRange::new(region.start().0 as u64, region.end().0 as u64);
            match out.last_mut() {
                Some((last, k, g)) if last.end == range.start && *k == kind && *g == granule => last.end = range.end,
                _ => out.push((range, kind, granule)),
            }
            Ok(())
        });
        out
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
    fn ram_uses_blocks_devices_use_pages() {
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(44));
        s2.map(PhysRange::new(0x6000_0000, 0x8000_0000), Kind::Ram).unwrap();
        s2.map(PhysRange::new(0x4000_0000 + 3 * MIB, 0x4000_0000 + 4 * MIB + 4096), Kind::Ram).unwrap();
        s2.map(PhysRange::new(0x900_0000, 0x900_0100), Kind::Device).unwrap();
        s2.map(PhysRange::new(GIB * 4, GIB * 5), Kind::Ram).unwrap();
        let m = s2.mappings();
        assert!(m.contains(&(PhysRange::new(0x900_0000, 0x900_1000), Kind::Device, 4096)));
        assert!(m.contains(&(PhysRange::new(0x6000_0000, 0x8000_0000), Kind::Ram, 2 * MIB)));
        assert!(m.contains(&(PhysRange::new(4 * GIB, 5 * GIB), Kind::Ram, GIB)));
        // The unaligned piece: pages up to 4 MiB alignment, then one page.
        let total: u64 = m.iter().filter(|(r, _, _)| r.start < 0x6000_0000 && r.start >= 0x4000_0000).map(|(r, _, _)| r.size()).sum();
        assert_eq!(total, MIB + 4096);
        // Nothing else is mapped.
        let all: u64 = m.iter().map(|(r, _, _)| r.size()).sum();
        assert_eq!(all, 512 * MIB + MIB + 4096 + 4096 + GIB);
    }

    #[test]
    fn beyond_the_ipa_space_is_refused() {
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(36));
        assert!(s2.map(PhysRange::new(1 << 36, (1 << 36) + 4096), Kind::Ram).is_err());
        assert!(s2.map(PhysRange::new(0, u64::MAX), Kind::Ram).is_err());
        assert!(s2.mappings().is_empty());
    }
}

/// What an audit of a guest's stage 2 found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditSummary {
    pub ram_bytes: u64,
    pub device_bytes: u64,
    pub mappings: usize,
}

/// A mapping the guest must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditViolation {
    /// RAM mapped outside the guest's own banks.
    RamOutsideGuest(PhysRange),
    /// A device mapping that is not a passed-through host device.
    UnknownDevice(PhysRange),
    /// Anything overlapping memory the hypervisor keeps.
    HypervisorMemory { mapped: PhysRange, owned: PhysRange },
}

impl core::fmt::Display for AuditViolation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::RamOutsideGuest(r) => write!(f, "RAM {r} is mapped but is not the guest's"),
            Self::UnknownDevice(r) => write!(f, "device range {r} is mapped but is no passed-through device"),
            Self::HypervisorMemory { mapped, owned } => {
                write!(f, "{mapped} is mapped and overlaps hypervisor memory {owned}")
            }
        }
    }
}

/// Proves from the tables themselves that the guest sees only its RAM and
/// its devices, and nothing of `hypervisor` (image, heap, tables, metadata).
pub fn audit(
    mappings: &[(PhysRange, Kind, u64)],
    guest_ram: &[PhysRange],
    devices: &[PhysRange],
    hypervisor: &[PhysRange],
) -> Result<AuditSummary, AuditViolation> {
    let covered = |r: &PhysRange, by: &[PhysRange]| {
        // Every page of `r` lies in some range of `by`.
        let mut at = r.start;
        while at < r.end {
            match by.iter().find(|b| b.contains(at)) {
                Some(b) => at = b.end.min(r.end),
                None => return false,
            }
        }
        true
    };
    let pages = |by: &[PhysRange]| -> Vec<PhysRange> {
        by.iter().filter_map(|b| b.expand_to_alignment(4096)).collect()
    };
    let devices = pages(devices);
    let mut summary = AuditSummary::default();
    for &(range, kind, _) in mappings {
        if let Some(owned) = hypervisor.iter().find(|h| h.overlaps(&range)) {
            return Err(AuditViolation::HypervisorMemory { mapped: range, owned: *owned });
        }
        match kind {
            Kind::Ram if !covered(&range, guest_ram) => return Err(AuditViolation::RamOutsideGuest(range)),
            Kind::Device if !covered(&range, &devices) => return Err(AuditViolation::UnknownDevice(range)),
            Kind::Ram => summary.ram_bytes += range.size(),
            Kind::Device => summary.device_bytes += range.size(),
        }
        summary.mappings += 1;
    }
    Ok(summary)
}

#[cfg(test)]
mod audit_tests {
    use super::*;

    fn r(s: u64, e: u64) -> PhysRange {
        PhysRange::new(s, e)
    }

    #[test]
    fn a_correct_map_passes_and_every_kind_of_leak_is_caught() {
        let ram = [r(0x6000_0000, 0x8000_0000)];
        let devices = [r(0x900_0000, 0x900_0100), r(0xa00_0000, 0xa00_0200)];
        let hypervisor = [r(0x4020_0000, 0x4060_0000), r(0x4100_0000, 0x4200_0000)];
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(44));
        s2.map(ram[0], Kind::Ram).unwrap();
        s2.map(devices[0], Kind::Device).unwrap();
        s2.map(devices[1], Kind::Device).unwrap();
        let summary = audit(&s2.mappings(), &ram, &devices, &hypervisor).unwrap();
        assert_eq!(summary.ram_bytes, 512 << 20);
        assert_eq!(summary.device_bytes, 0x2000);

        let mut leak = Stage2Map::new(Geometry::for_ipa_bits(44));
        leak.map(ram[0], Kind::Ram).unwrap();
        leak.map(r(0x4100_0000, 0x4100_1000), Kind::Ram).unwrap();
        assert!(matches!(
            audit(&leak.mappings(), &ram, &devices, &hypervisor),
            Err(AuditViolation::HypervisorMemory { .. })
        ));
        let mut stray = Stage2Map::new(Geometry::for_ipa_bits(44));
        stray.map(r(0x8000_0000, 0x8000_1000), Kind::Ram).unwrap();
        assert_eq!(
            audit(&stray.mappings(), &ram, &devices, &hypervisor),
            Err(AuditViolation::RamOutsideGuest(r(0x8000_0000, 0x8000_1000)))
        );
        let mut odd = Stage2Map::new(Geometry::for_ipa_bits(44));
        odd.map(r(0xb00_0000, 0xb00_1000), Kind::Device).unwrap();
        assert!(matches!(audit(&odd.mappings(), &ram, &devices, &hypervisor), Err(AuditViolation::UnknownDevice(_))));
    }
}
