//! A reference model of the region search, for the property tests and the
//! fuzz target: obviously right rather than fast. It marks a bitmap of
//! granules (every input falls on granule boundaries), reads off the runs
//! of wholly usable 2 MiB blocks, and keeps the largest 128 with a sort.

use super::Regions;
use crate::mm::range::PhysRange;
use std::cmp::Reverse;
use std::string::String;
use std::vec::Vec;

// The binding's rules, restated rather than imported, so that a change to
// the search's own constants shows up as a difference.
const ALIGN: u64 = 2 << 20;
const MIN_SIZE: u64 = 64 << 20;
const MAX_COUNT: usize = 128;
/// The largest bitmap the model builds: it is for small address spaces.
const MAX_GRANULES: u64 = 1 << 22;

/// What `find(free, exclude, ipa_limit)` must return. `granule` divides
/// 2 MiB, and every non-empty range's ends are multiples of it, as is
/// `ipa_limit` if it lies below the end of free memory.
pub fn regions(free: &[PhysRange], exclude: &[PhysRange], ipa_limit: u64, granule: u64) -> Regions {
    let mut runs = qualifying(free, exclude, ipa_limit, granule);
    // The largest; among equal sizes, the lower address.
    runs.sort_by_key(|r| (Reverse(r.size()), r.start));
    let dropped = runs.len().saturating_sub(MAX_COUNT);
    runs.truncate(MAX_COUNT);
    runs.sort_by_key(|r| r.start);
    Regions { regions: runs, dropped }
}

/// Every region that qualifies before the cap, ascending (same inputs).
pub fn qualifying(free: &[PhysRange], exclude: &[PhysRange], ipa_limit: u64, granule: u64) -> Vec<PhysRange> {
    assert!(granule > 0 && ALIGN.is_multiple_of(granule), "granule {granule:#x}");
    let top = free.iter().filter(|f| !f.is_empty()).map(|f| f.end).max().unwrap_or(0).min(ipa_limit);
    assert!(top.is_multiple_of(granule) && top / granule <= MAX_GRANULES, "top {top:#x}");
    let mut usable = std::vec![false; (top / granule) as usize];
    let granules = |r: &PhysRange| {
        assert!(r.start.is_multiple_of(granule) && r.end.is_multiple_of(granule), "{r} is not on granules");
        (r.start.min(top) / granule) as usize..(r.end.min(top) / granule) as usize
    };
    for f in free.iter().filter(|r| !r.is_empty()) {
        usable[granules(f)].fill(true);
    }
    for e in exclude.iter().filter(|r| !r.is_empty()) {
        usable[granules(e)].fill(false);
    }

    // Maximal runs of aligned 2 MiB blocks whose every granule is usable.
    let per_block = (ALIGN / granule) as usize;
    let mut runs = Vec::new();
    let mut run_start = None;
    for (i, block) in usable.chunks(per_block).enumerate() {
        let at = i as u64 * ALIGN;
        let whole = block.len() == per_block && block.iter().all(|&u| u);
        match (whole, run_start) {
            (true, None) => run_start = Some(at),
            (false, Some(start)) => {
                runs.push(PhysRange::new(start, at));
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = run_start {
        runs.push(PhysRange::new(start, (usable.len() / per_block) as u64 * ALIGN));
    }

    runs.retain(|r| r.size() >= MIN_SIZE);
    runs
}

/// Where `found` first differs from `expected`, for a failure message that
/// a person can read (the inputs run to hundreds of ranges).
pub fn difference(found: &Regions, expected: &Regions) -> Option<String> {
    if found == expected {
        return None;
    }
    let at = found.regions.iter().zip(&expected.regions).position(|(f, e)| f != e);
    let first = match at {
        Some(i) => std::format!("region {i}: found {} but expected {}", found.regions[i], expected.regions[i]),
        None => String::from("the shorter list is a prefix of the longer"),
    };
    Some(std::format!(
        "{} regions and {} dropped, but expected {} and {}; {first}",
        found.regions.len(),
        found.dropped,
        expected.regions.len(),
        expected.dropped
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn r(start_mib: u64, end_mib: u64) -> PhysRange {
        PhysRange::new(start_mib * MIB, end_mib * MIB)
    }

    /// The model itself, on cases worked by hand.
    #[test]
    fn worked_by_hand() {
        // 1..131 MiB free, 65..66 excluded: 2..64 (62 MiB, too small) and
        // 66..130 (64 MiB) are the aligned runs.
        let found = regions(&[r(1, 131)], &[r(65, 66)], 1 << 40, MIB);
        assert_eq!(found, Regions { regions: std::vec![r(66, 130)], dropped: 0 });
        // Touching free ranges make one run; the limit cuts it.
        let found = regions(&[r(0, 40), r(40, 200)], &[], 128 * MIB, MIB);
        assert_eq!(found.regions, std::vec![r(0, 128)]);
        // 130 equal regions: the two highest go.
        let free: Vec<_> = (0..130).map(|i| r(i * 100, i * 100 + 64)).collect();
        let found = regions(&free, &[], 1 << 40, MIB);
        assert_eq!((found.regions.len(), found.dropped), (128, 2));
        assert_eq!(found.regions.last(), Some(&r(12700, 12764)));
    }
}
