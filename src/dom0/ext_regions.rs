//! Extended regions: guest-physical ranges Dom0 may use for grant and
//! foreign mappings instead of its own RAM, advertised as `reg` entries 1..N
//! of the `/hypervisor` node (Xen's guest binding, `docs/misc/arm/
//! device-tree/guest.txt`). Found in memory nobody uses: the frame
//! allocator's free ranges, minus everything Dom0 sees or must not touch.

use crate::mm::range::{PhysRange, align_down, align_up, merged};
use alloc::vec::Vec;
use core::fmt;

/// Regions start and end on 2 MiB boundaries (one level-2 block).
pub const REGION_ALIGN: u64 = 2 << 20;
/// Smaller regions are not worth advertising (Xen's threshold).
pub const MIN_REGION_SIZE: u64 = 64 << 20;
/// At most this many regions (Xen's limit for the `reg` property).
pub const MAX_REGIONS: usize = 128;

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Regions {
    /// Ascending, disjoint, aligned, each at least `MIN_REGION_SIZE`.
    pub regions: Vec<PhysRange>,
    /// Qualifying regions left out because of `MAX_REGIONS` (the smallest go).
    pub dropped: usize,
}

impl Regions {
    pub fn total(&self) -> u64 {
        self.regions.iter().map(PhysRange::size).sum()
    }
}

/// Finds the extended regions: `free` (any order, may touch or overlap)
/// minus every range in `exclude`, below `ipa_limit`, aligned to 2 MiB,
/// at least 64 MiB each, at most `MAX_REGIONS` (the largest), ascending.
/// O((n + m) log(n + m)) for n free and m excluded ranges.
pub fn find(free: impl IntoIterator<Item = PhysRange>, exclude: &[PhysRange], ipa_limit: u64) -> Regions {
    let free = merged(free.into_iter().map(|r| r.intersection(&PhysRange::new(0, ipa_limit))));
    let exclude = merged(exclude.iter().copied());

    let mut found = Vec::new();
    let mut ex = exclude.iter().peekable();
    for range in free {
        let mut start = range.start;
        // Walk the exclusions that can touch this range (both lists are
        // sorted, so each exclusion is passed over once overall).
        while let Some(e) = ex.peek() {
            if e.end <= start {
                ex.next();
                continue;
            }
            if e.start >= range.end {
                break;
            }
            push_aligned(&mut found, PhysRange::new(start, e.start));
            start = start.max(e.end);
            if e.end >= range.end {
                break;
            }
            ex.next();
        }
        if start < range.end {
            push_aligned(&mut found, PhysRange::new(start, range.end));
        }
    }

    let mut dropped = 0;
    if found.len() > MAX_REGIONS {
        // Keep the largest; ties go to the lower address, for determinism.
        found.sort_unstable_by(|a, b| b.size().cmp(&a.size()).then(a.start.cmp(&b.start)));
        dropped = found.len() - MAX_REGIONS;
        found.truncate(MAX_REGIONS);
        found.sort_unstable();
    }
    Regions { regions: found, dropped }
}

fn push_aligned(found: &mut Vec<PhysRange>, range: PhysRange) {
    if range.is_empty() {
        return;
    }
    let Some(start) = align_up(range.start, REGION_ALIGN) else { return };
    let end = align_down(range.end, REGION_ALIGN);
    if end > start && end - start >= MIN_REGION_SIZE {
        found.push(PhysRange::new(start, end));
    }
}

/// Why an `ext-regions=<start>,<size>` range was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedRegionError {
    Misaligned,
    TooSmall,
    BeyondIpaSpace { limit: u64 },
    /// It overlaps something Dom0 sees or the hypervisor keeps.
    Overlaps { what: &'static str, range: PhysRange },
}

impl fmt::Display for FixedRegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misaligned => write!(f, "start and size must be multiples of 2 MiB"),
            Self::TooSmall => write!(f, "smaller than 2 MiB"),
            Self::BeyondIpaSpace { limit } => write!(f, "ends beyond the {limit:#x} IPA space"),
            Self::Overlaps { what, range } => write!(f, "overlaps {what} {range}"),
        }
    }
}

/// Checks a range given on the command line. `taken` lists, with a name
/// each, everything it must stay clear of (Dom0 RAM, host `reg`s, PCI
/// apertures, reserved memory, the grant-table region).
pub fn check_fixed(
    start: u64,
    size: u64,
    ipa_limit: u64,
    taken: &[(&'static str, PhysRange)],
) -> Result<PhysRange, FixedRegionError> {
    if !start.is_multiple_of(REGION_ALIGN) || !size.is_multiple_of(REGION_ALIGN) {
        return Err(FixedRegionError::Misaligned);
    }
    if size == 0 {
        return Err(FixedRegionError::TooSmall);
    }
    let range = PhysRange::from_start_size(start, size).ok_or(FixedRegionError::BeyondIpaSpace { limit: ipa_limit })?;
    if range.end > ipa_limit {
        return Err(FixedRegionError::BeyondIpaSpace { limit: ipa_limit });
    }
    match taken.iter().find(|(_, r)| r.overlaps(&range)) {
        Some(&(what, r)) => Err(FixedRegionError::Overlaps { what, range: r }),
        None => Ok(range),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    /// The worked case from the review of Xen's extended-region series:
    /// free RAM is everything but the Dom0 bank and a reserved range; the
    /// grant-table region sits in the middle of the first bank.
    #[test]
    fn xen_review_worked_case() {
        let ram = [
            r(0x4800_0000, 0xc000_0000),
            r(0x5_0000_0000, 0x5_8000_0000),
            r(0x6_0000_0000, 0x6_8000_0000),
            r(0x7_0000_0000, 0x7_8000_0000),
        ];
        let reserved = r(0x5400_0000, 0x5700_0000);
        let dom0 = r(0x6000_0000, 0x7000_0000);
        let grant = r(0x7808_0000, 0x780c_0000);
        let found = find(ram, &[reserved, dom0, grant], 1 << 40);
        assert_eq!(
            found.regions,
            vec![
                r(0x4800_0000, 0x5400_0000),
                r(0x5700_0000, 0x6000_0000),
                r(0x7000_0000, 0x7800_0000),
                r(0x7820_0000, 0xc000_0000),
                r(0x5_0000_0000, 0x5_8000_0000),
                r(0x6_0000_0000, 0x6_8000_0000),
                r(0x7_0000_0000, 0x7_8000_0000),
            ]
        );
        assert_eq!(found.dropped, 0);
    }

    #[test]
    fn clipped_to_the_ipa_space() {
        let found = find([r(0xf000_0000, 0x2_0000_0000)], &[], 1 << 32);
        assert_eq!(found.regions, vec![r(0xf000_0000, 0x1_0000_0000)]);
        assert!(find([r(1 << 40, 2 << 40)], &[], 1 << 40).regions.is_empty());
    }

    #[test]
    fn small_and_unaligned_pieces_are_dropped() {
        let found = find([r(0x4010_0000, 0x4010_0000 + 64 * MIB)], &[], 1 << 40);
        assert!(found.regions.is_empty(), "64 MiB unaligned shrinks below the minimum");
        let found = find([r(0x4000_0000, 0x4000_0000 + 64 * MIB)], &[], 1 << 40);
        assert_eq!(found.regions.len(), 1);
    }

    #[test]
    fn touching_free_ranges_merge_before_rounding() {
        // Two 40 MiB blocks side by side make one 80 MiB region.
        let found = find([r(0x4000_0000, 0x4280_0000), r(0x4280_0000, 0x4500_0000)], &[], 1 << 40);
        assert_eq!(found.regions, vec![r(0x4000_0000, 0x4500_0000)]);
    }

    #[test]
    fn the_largest_128_are_kept() {
        let free: Vec<_> = (0..200u64).map(|i| r(i << 32, (i << 32) + (64 + i) * 2 * MIB)).collect();
        let found = find(free, &[], u64::MAX);
        assert_eq!(found.regions.len(), MAX_REGIONS);
        assert_eq!(found.dropped, 72);
        assert_eq!(found.regions[0].start, 72 << 32);
    }

    #[test]
    fn fixed_ranges_are_checked() {
        let taken = [("Dom0 RAM", r(0x6000_0000, 0x8000_0000)), ("device", r(0x900_0000, 0x900_1000))];
        let limit = 1 << 40;
        assert_eq!(check_fixed(0x8000_0000, 1 << 30, limit, &taken), Ok(r(0x8000_0000, 0xc000_0000)));
        assert_eq!(check_fixed(0x8010_0000, 1 << 30, limit, &taken), Err(FixedRegionError::Misaligned));
        assert_eq!(check_fixed(0x8000_0000, 0x10_0000, limit, &taken), Err(FixedRegionError::Misaligned));
        assert_eq!(check_fixed(0x8000_0000, 0, limit, &taken), Err(FixedRegionError::TooSmall));
        assert!(matches!(check_fixed(limit - (2 * MIB), 4 * MIB, limit, &taken), Err(FixedRegionError::BeyondIpaSpace { .. })));
        assert!(check_fixed(u64::MAX - (2 * MIB) + 1, 4 * MIB, limit, &taken).is_err());
        assert_eq!(
            check_fixed(0x7000_0000, 1 << 30, limit, &taken),
            Err(FixedRegionError::Overlaps { what: "Dom0 RAM", range: r(0x6000_0000, 0x8000_0000) })
        );
        assert!(matches!(check_fixed(0x900_0000, 2 * MIB, limit, &taken), Err(FixedRegionError::Overlaps { what: "device", .. })));
    }

    fn ranges(max: u64) -> impl Strategy<Value = Vec<PhysRange>> {
        prop::collection::vec((0..max, 1..max / 4), 0..40)
            .prop_map(|v| v.into_iter().map(|(s, n)| r(s * MIB, (s + n) * MIB)).collect())
    }

    proptest! {
        /// Every invariant of the binding, over random layouts.
        #[test]
        fn regions_obey_every_rule(free in ranges(8192), exclude in ranges(8192), ipa_bits in 30u32..40) {
            let limit = 1u64 << ipa_bits;
            let found = find(free.clone(), &exclude, limit);
            prop_assert!(found.regions.len() <= MAX_REGIONS);
            for w in found.regions.windows(2) {
                prop_assert!(w[0].end <= w[1].start, "not ascending/disjoint: {:?}", w);
            }
            for reg in &found.regions {
                prop_assert_eq!(reg.start % REGION_ALIGN, 0);
                prop_assert_eq!(reg.end % REGION_ALIGN, 0);
                prop_assert!(reg.size() >= MIN_REGION_SIZE);
                prop_assert!(reg.end <= limit);
                prop_assert!(!exclude.iter().any(|e| e.overlaps(reg)), "{reg} overlaps an exclusion");
                // Inside free memory: every MiB of it is in some free range.
                let mut at = reg.start;
                while at < reg.end {
                    prop_assert!(free.iter().any(|f| f.contains(at)), "{at:#x} of {reg} is not free");
                    at += MIB;
                }
            }
            // Deterministic, and independent of input order.
            let mut shuffled = free.clone();
            shuffled.reverse();
            prop_assert_eq!(&find(shuffled, &exclude, limit), &found);
        }

        /// Nothing usable is missed: every aligned 64 MiB window that is
        /// free, clear of exclusions and below the limit lies in a region
        /// (when no region was dropped).
        #[test]
        fn no_usable_window_is_missed(free in ranges(4096), exclude in ranges(4096)) {
            let limit = 1u64 << 36;
            let found = find(free.clone(), &exclude, limit);
            prop_assume!(found.dropped == 0);
            let mut start = 0;
            while start + MIN_REGION_SIZE <= 4096 * MIB * 2 {
                let window = r(start, start + MIN_REGION_SIZE);
                let all_free = (0..32).all(|i| {
                    let at = start + i * REGION_ALIGN;
                    free.iter().any(|f| f.contains_range(&r(at, at + REGION_ALIGN)))
                });
                let clear = !exclude.iter().any(|e| e.overlaps(&window));
                if all_free && clear {
                    prop_assert!(found.regions.iter().any(|reg| reg.contains_range(&window)), "missed {window}");
                }
                start += REGION_ALIGN;
            }
        }
    }
}
