//! Extended regions: guest-physical ranges Dom0 may use for grant and
//! foreign mappings instead of its own RAM, advertised as `reg` entries 1..N
//! of the `/hypervisor` node (Xen's guest binding, `docs/misc/arm/
//! device-tree/guest.txt`). Found in memory nobody uses: the frame
//! allocator's free ranges, minus everything Dom0 sees or must not touch.
//! A DomU's come from the same search over the holes of its guest layout
//! (`domu::layout::extended_regions`), in guest addresses: [`find`] works
//! in either address space.

use crate::mm::range::{Host, PhysRange, Range, align_down, align_up, merged};
use alloc::vec::Vec;
use core::fmt;

#[cfg(test)]
pub mod reference;

/// Regions start and end on 2 MiB boundaries (one level-2 block).
pub const REGION_ALIGN: u64 = 2 << 20;
/// Smaller regions are not worth advertising (Xen's threshold).
pub const MIN_REGION_SIZE: u64 = 64 << 20;
/// At most this many regions (Xen's limit for the `reg` property).
pub const MAX_REGIONS: usize = 128;

/// The outcome of a search, in host addresses (Dom0's, 1:1) or a DomU's
/// guest addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Regions<S = Host> {
    /// Ascending, disjoint, aligned, each at least `MIN_REGION_SIZE`.
    pub regions: Vec<Range<S>>,
    /// Qualifying regions left out because of `MAX_REGIONS` (the smallest go).
    pub dropped: usize,
}

impl<S> Regions<S> {
    pub fn total(&self) -> u64 {
        self.regions.iter().map(Range::size).sum()
    }
}

/// Finds the extended regions: `free` (any order, may touch or overlap)
/// minus every range in `exclude`, below `ipa_limit`, aligned to 2 MiB,
/// at least 64 MiB each, at most `MAX_REGIONS` (the largest), ascending.
/// O((n + m) log(n + m)) for n free and m excluded ranges.
pub fn find<S: Ord + Copy>(
    free: impl IntoIterator<Item = Range<S>>,
    exclude: &[Range<S>],
    ipa_limit: u64,
) -> Regions<S> {
    let free = merged(free.into_iter().map(|r| r.intersection(&Range::new(0, ipa_limit))));
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
            push_aligned(&mut found, Range::new(start, e.start));
            start = start.max(e.end);
            if e.end >= range.end {
                break;
            }
            ex.next();
        }
        if start < range.end {
            push_aligned(&mut found, Range::new(start, range.end));
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

fn push_aligned<S>(found: &mut Vec<Range<S>>, range: Range<S>) {
    if range.is_empty() {
        return;
    }
    let Some(start) = align_up(range.start, REGION_ALIGN) else { return };
    let end = align_down(range.end, REGION_ALIGN);
    if end > start && end - start >= MIN_REGION_SIZE {
        found.push(Range::new(start, end));
    }
}

/// Why an `ext-regions=<start>,<size>` range was refused: the rules a
/// found region obeys, and the places the search never looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedRegionError {
    Misaligned,
    TooSmall,
    BeyondIpaSpace {
        limit: u64,
    },
    /// It overlaps something Dom0 sees, a device or the hypervisor's memory.
    Overlaps {
        what: &'static str,
        range: PhysRange,
    },
    /// Part of it is RAM that is not free: someone holds it.
    RamInUse {
        range: PhysRange,
    },
}

impl fmt::Display for FixedRegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misaligned => write!(f, "start and size must be multiples of 2 MiB"),
            Self::TooSmall => write!(f, "smaller than the {} MiB minimum", MIN_REGION_SIZE >> 20),
            Self::BeyondIpaSpace { limit } => write!(f, "ends beyond the {limit:#x} IPA space"),
            Self::Overlaps { what, range } => write!(f, "overlaps {what} {range}"),
            Self::RamInUse { range } => write!(f, "covers RAM in use (not free) at {range}"),
        }
    }
}

/// Where an accepted fixed range lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In free RAM, as a found region would be.
    FreeRam,
    /// Partly in free RAM, partly where no RAM is.
    PartlyOutsideRam,
    /// Where no RAM is: advertised on the operator's word that nothing
    /// answers there, since the tree cannot say.
    OutsideRam,
}

/// A fixed range that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedRegion {
    pub range: PhysRange,
    pub placement: Placement,
}

/// Checks a range given on the command line, the operator's override for
/// boards where the search is wrong: the shape of a found region (2 MiB
/// aligned, at least `MIN_REGION_SIZE`, below `ipa_limit`), clear of
/// everything in `taken` (each with a name: Dom0 RAM, the grant-table
/// region, reserved memory, every device, enabled or not, the hypervisor's
/// memory) and, where it lies in `ram`, only on `free` memory. Outside RAM
/// it is accepted, and says so ([`Placement`]).
pub fn check_fixed(
    start: u64,
    size: u64,
    ipa_limit: u64,
    taken: &[(&'static str, PhysRange)],
    ram: &[PhysRange],
    free: &[PhysRange],
) -> Result<FixedRegion, FixedRegionError> {
    if !start.is_multiple_of(REGION_ALIGN) || !size.is_multiple_of(REGION_ALIGN) {
        return Err(FixedRegionError::Misaligned);
    }
    if size < MIN_REGION_SIZE {
        return Err(FixedRegionError::TooSmall);
    }
    let range = PhysRange::from_start_size(start, size).ok_or(FixedRegionError::BeyondIpaSpace { limit: ipa_limit })?;
    if range.end > ipa_limit {
        return Err(FixedRegionError::BeyondIpaSpace { limit: ipa_limit });
    }
    // The lowest overlap, so the reason does not depend on list order.
    if let Some(&(what, r)) = taken.iter().filter(|(_, r)| r.overlaps(&range)).min_by_key(|(_, r)| r.start) {
        return Err(FixedRegionError::Overlaps { what, range: r });
    }
    let free = merged(free.iter().copied());
    let mut in_ram = 0;
    for bank in merged(ram.iter().copied()) {
        let part = bank.intersection(&range);
        if part.is_empty() {
            continue;
        }
        if let Some(held) = first_uncovered(part, &free) {
            return Err(FixedRegionError::RamInUse { range: held });
        }
        in_ram += part.size();
    }
    let placement = match in_ram {
        0 => Placement::OutsideRam,
        _ if in_ram == range.size() => Placement::FreeRam,
        _ => Placement::PartlyOutsideRam,
    };
    Ok(FixedRegion { range, placement })
}

/// The first part of `range` that `cover` (sorted, disjoint) leaves out.
fn first_uncovered(range: PhysRange, cover: &[PhysRange]) -> Option<PhysRange> {
    let mut at = range.start;
    for c in cover.iter().filter(|c| c.overlaps(&range)) {
        if c.start > at {
            return Some(PhysRange::new(at, c.start));
        }
        at = c.end;
    }
    (at < range.end).then(|| PhysRange::new(at, range.end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    const fn r(start: u64, end: u64) -> PhysRange {
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
        // Among equal sizes the lower addresses stay.
        let free: Vec<_> = (0..130u64).map(|i| r(i << 32, (i << 32) + 64 * MIB)).collect();
        let found = find(free, &[], u64::MAX);
        assert_eq!(found.dropped, 2);
        assert_eq!(found.regions.last().map(|r| r.start), Some(127 << 32));
    }

    const RAM: [PhysRange; 1] = [r(0x4000_0000, 0xc000_0000)];

    /// Each rule a fixed range must pass, on a 2 GiB board: RAM
    /// 0x4000_0000->0xc000_0000, Dom0's 0x6000_0000->0x8000_0000, the rest
    /// of RAM free but for the heap and the allocator's metadata.
    #[test]
    fn fixed_ranges_are_checked() {
        let taken = [
            ("Dom0 RAM", r(0x6000_0000, 0x8000_0000)),
            ("a host device", r(0x900_0000, 0x900_1000)),
            ("a disabled host device", r(0x1000_0000, 0x1000_1000)),
            ("the hypervisor's heap", r(0x4100_0000, 0x4200_0000)),
            ("the frame allocator's metadata", r(0x4000_0000, 0x4001_0000)),
        ];
        let free = [r(0x4001_0000, 0x4100_0000), r(0x4200_0000, 0x6000_0000), r(0x8000_0000, 0xbff0_0000)];
        let limit = 1 << 40;
        let check = |start: u64, size: u64| check_fixed(start, size, limit, &taken, &RAM, &free);
        let refused = |start: u64, size: u64| check(start, size).err();
        let in_free_ram = FixedRegion { range: r(0x8000_0000, 0x8400_0000), placement: Placement::FreeRam };
        assert_eq!(check(0x8000_0000, 64 * MIB), Ok(in_free_ram));

        assert_eq!(refused(0x8000_0000, 2 * MIB), Some(FixedRegionError::TooSmall), "2 MiB passed before");
        assert_eq!(refused(0x8000_0000, 62 * MIB), Some(FixedRegionError::TooSmall));
        assert_eq!(refused(0x8000_0000, 0), Some(FixedRegionError::TooSmall));
        assert_eq!(refused(0x8010_0000, 1 << 30), Some(FixedRegionError::Misaligned));
        assert_eq!(refused(0x8000_0000, 65 * MIB), Some(FixedRegionError::Misaligned));
        let beyond = Some(FixedRegionError::BeyondIpaSpace { limit });
        assert_eq!(refused(limit - 32 * MIB, 64 * MIB), beyond);
        assert_eq!(refused(u64::MAX - 2 * MIB + 1, 64 * MIB), beyond, "wraps past 2^64");
        assert_eq!(
            refused(0x7000_0000, 1 << 30),
            Some(FixedRegionError::Overlaps { what: "Dom0 RAM", range: r(0x6000_0000, 0x8000_0000) })
        );
        let overlaps = |start, size| match refused(start, size) {
            Some(FixedRegionError::Overlaps { what, .. }) => what,
            other => panic!("{start:#x}: {other:?}"),
        };
        assert_eq!(overlaps(0x800_0000, 64 * MIB), "a host device");
        assert_eq!(overlaps(0x1000_0000, 64 * MIB), "a disabled host device");
        assert_eq!(overlaps(0x4000_0000, 64 * MIB), "the frame allocator's metadata", "the lowest overlap is named");
        assert_eq!(overlaps(0x4100_0000, 64 * MIB), "the hypervisor's heap");
        // Held RAM the list does not name is refused too: only free RAM will do.
        let held = r(0xbff0_0000, 0xc000_0000);
        assert_eq!(refused(0xbc00_0000, 64 * MIB), Some(FixedRegionError::RamInUse { range: held }));

        // Outside RAM it is the operator's word, and says so.
        let outside = check(0x1_0000_0000, 1 << 30).unwrap();
        assert_eq!(outside, FixedRegion { range: r(0x1_0000_0000, 0x1_4000_0000), placement: Placement::OutsideRam });
        assert_eq!(check(0x2000_0000, 64 * MIB).unwrap().placement, Placement::OutsideRam, "below RAM");
        let free_to_the_top = [r(0x8000_0000, 0xc000_0000)];
        let partly = check_fixed(0xa000_0000, 1 << 30, limit, &taken, &RAM, &free_to_the_top).unwrap();
        assert_eq!(partly.placement, Placement::PartlyOutsideRam);
    }

    fn ranges(max: u64) -> impl Strategy<Value = Vec<PhysRange>> {
        some_ranges(max, max / 4, 40)
    }

    /// Up to `count` ranges of 1 to `longest` MiB, starting below `max` MiB.
    fn some_ranges(max: u64, longest: u64, count: usize) -> impl Strategy<Value = Vec<PhysRange>> {
        prop::collection::vec((0..max, 1..=longest), 0..count)
            .prop_map(|v| v.into_iter().map(|(s, n)| r(s * MIB, (s + n) * MIB)).collect())
    }

    /// Free memory holding more than `MAX_REGIONS` qualifying regions, most
    /// of a few equal sizes: 150 to 260 "teeth" of 63 to 70 MiB, 1 to 8 MiB
    /// apart (odd ends, so rounding trims some to 64 or 66 MiB and drops
    /// others), with a few longer free ranges laid over them (merging teeth
    /// into larger regions) and short exclusions cutting some in two.
    fn comb() -> impl Strategy<Value = (Vec<PhysRange>, Vec<PhysRange>)> {
        let teeth = prop::collection::vec((63u64..=70, 1u64..=8), 150..260);
        (teeth, some_ranges(16_384, 512, 4), some_ranges(16_384, 32, 20)).prop_map(|(teeth, over, cuts)| {
            let mut at = 0;
            let mut free = Vec::new();
            for (size, gap) in teeth {
                at += gap;
                free.push(r(at * MIB, (at + size) * MIB));
                at += size;
            }
            free.extend(over);
            (free, cuts)
        })
    }

    /// Random layouts (a few dozen ranges, rarely past the cap) or combs
    /// (past it, with ties at the cut), below a limit that often cuts them.
    fn layouts() -> impl Strategy<Value = (Vec<PhysRange>, Vec<PhysRange>, u64)> {
        let layout = prop_oneof![(ranges(8192), ranges(8192)), comb()];
        let ipa_bits = prop_oneof![3 => Just(40u32), 1 => 30u32..36];
        (layout, ipa_bits).prop_map(|((free, exclude), bits)| (free, exclude, 1u64 << bits))
    }

    /// The comb is what lets the properties fail on the cap: most of its
    /// layouts pass 128 regions, and many have equal sizes at the cut, so
    /// the tie-break decides which region stays.
    #[test]
    fn combs_pass_the_cap_with_ties_at_the_cut() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let (mut past_cap, mut tied) = (0, 0);
        for _ in 0..100 {
            let (free, exclude) = comb().new_tree(&mut runner).unwrap().current();
            let mut sizes: Vec<u64> =
                reference::qualifying(&free, &exclude, 1 << 40, MIB).iter().map(PhysRange::size).collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            past_cap += usize::from(sizes.len() > MAX_REGIONS);
            // A region left out as large as the smallest one kept.
            tied += usize::from(sizes.len() > MAX_REGIONS && sizes[MAX_REGIONS - 1] == sizes[MAX_REGIONS]);
        }
        println!("combs: {past_cap} of 100 past the cap, {tied} tied at the cut");
        assert!(past_cap >= 50, "only {past_cap} of 100 combs pass the cap");
        assert!(tied >= 30, "only {tied} of 100 combs have a tie at the cut");
    }

    proptest! {
        /// The whole result, which regions and how many dropped, is the
        /// reference model's: past the cap and at ties too.
        #[test]
        fn the_search_is_the_reference_model((free, exclude, limit) in layouts()) {
            let found = find(free.clone(), &exclude, limit);
            let diff = reference::difference(&found, &reference::regions(&free, &exclude, limit, MIB));
            prop_assert!(diff.is_none(), "{}", diff.unwrap_or_default());
        }

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
