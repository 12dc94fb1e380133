//! Address ranges, typed by address space, and small fixed-capacity sets of
//! host-physical ones.
//!
//! A guest-physical address (IPA) and a host-physical one (PA) are both
//! plain numbers, equal only in a 1:1 domain (Dom0): [`Range`] carries its
//! space as a type parameter and [`Ipa`] / [`Pa`] wrap single addresses, so
//! a mix-up does not compile. Crossing between the spaces is either a walk
//! of the domain's stage 2 or a named `identity_of`, which is right only for
//! a 1:1 domain.
//!
//! Boot-time memory bookkeeping (RAM banks, reservations, free memory) runs
//! before any heap exists, so the set is a fixed-capacity vector that reports
//! overflow instead of allocating.

use arrayvec::ArrayVec;
use core::fmt;
use core::marker::PhantomData;

/// The host's physical address space: what the MMU outputs, what the frame
/// allocator hands out, where devices sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Host;

/// A guest's physical address space (IPAs): what its stage 2 translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Guest;

/// A half-open range `[start, end)` of addresses in space `S`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Range<S> {
    pub start: u64,
    pub end: u64,
    space: PhantomData<S>,
}

/// Host-physical addresses.
pub type PhysRange = Range<Host>;
/// Guest-physical addresses (IPAs).
pub type GuestRange = Range<Guest>;

/// A host-physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pa(pub u64);

/// A guest-physical address (an IPA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ipa(pub u64);

impl Pa {
    /// The PA with the same number as `ipa`: the frame behind it only in a
    /// 1:1 domain (Dom0).
    pub const fn identity_of(ipa: Ipa) -> Self {
        Self(ipa.0)
    }
}

impl Ipa {
    /// The IPA with the same number as `pa`: where a 1:1 domain (Dom0)
    /// sees that frame.
    pub const fn identity_of(pa: Pa) -> Self {
        Self(pa.0)
    }

    /// The start of its 4 KiB page.
    pub const fn page(self) -> Self {
        Self(self.0 & !0xfff)
    }
}

impl GuestRange {
    /// Where a 1:1 domain (Dom0) sees the host range `range`.
    pub const fn identity_of(range: PhysRange) -> Self {
        Self::new(range.start, range.end)
    }

    /// The 4 KiB page at `ipa` (which should be page aligned); `None` at
    /// the top of the address space.
    pub fn page_at(ipa: Ipa) -> Option<Self> {
        Self::from_start_size(ipa.0, 0x1000)
    }
}

impl PhysRange {
    /// The frames a 1:1 domain (Dom0) sees at the guest range `range`.
    pub const fn identity_of(range: GuestRange) -> Self {
        Self::new(range.start, range.end)
    }
}

impl<S> Range<S> {
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end, space: PhantomData }
    }

    /// `[start, start + size)`, or `None` if that wraps past 2^64.
    pub fn from_start_size(start: u64, size: u64) -> Option<Self> {
        start.checked_add(size).map(|end| Self::new(start, end))
    }

    pub const fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    pub const fn contains_range(&self, other: &Self) -> bool {
        other.is_empty() || (self.start <= other.start && other.end <= self.end)
    }

    pub const fn overlaps(&self, other: &Self) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }

    /// The common part of two ranges (possibly empty).
    pub fn intersection(&self, other: &Self) -> Self {
        Self::new(self.start.max(other.start), self.end.min(other.end))
    }

    /// The largest sub-range whose ends are multiples of `align` (a power of
    /// two). Empty if there is none.
    pub fn shrink_to_alignment(&self, align: u64) -> Self {
        debug_assert!(align.is_power_of_two());
        let start = align_up(self.start, align).unwrap_or(u64::MAX);
        let end = align_down(self.end, align);
        if start < end { Self::new(start, end) } else { Self::new(0, 0) }
    }

    /// The smallest range with ends aligned to `align` covering this one;
    /// `None` if the end would wrap.
    pub fn expand_to_alignment(&self, align: u64) -> Option<Self> {
        Some(Self::new(align_down(self.start, align), align_up(self.end, align)?))
    }
}

/// `ranges` sorted, with overlapping and touching ones merged and empty
/// ones dropped: the disjoint cover of their union.
pub fn merged<S: Ord>(ranges: impl IntoIterator<Item = Range<S>>) -> alloc::vec::Vec<Range<S>> {
    let mut sorted: alloc::vec::Vec<Range<S>> = ranges.into_iter().filter(|r| !r.is_empty()).collect();
    sorted.sort_unstable();
    let mut out: alloc::vec::Vec<Range<S>> = alloc::vec::Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

impl<S> fmt::Debug for Range<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Printed the way Xen prints ranges: `0x40000000->0x80000000`.
impl<S> fmt::Display for Range<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}->{:#010x}", self.start, self.end)
    }
}

pub const fn align_down(value: u64, align: u64) -> u64 {
    value & !(align - 1)
}

/// `value` rounded up to `align` (a power of two); `None` if that wraps.
pub const fn align_up(value: u64, align: u64) -> Option<u64> {
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// The set ran out of room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityError {
    pub capacity: usize,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {} ranges", self.capacity)
    }
}

/// A set of host-physical addresses kept as sorted, disjoint, non-adjacent ranges.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RangeSet<const N: usize> {
    ranges: ArrayVec<PhysRange, N>,
}

impl<const N: usize> RangeSet<N> {
    pub const fn new() -> Self {
        Self { ranges: ArrayVec::new_const() }
    }

    /// The ranges, ascending, disjoint and never touching.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = PhysRange> + Clone + '_ {
        self.ranges.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Total bytes in the set.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(PhysRange::size).sum()
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.ranges.iter().any(|r| r.contains(addr))
    }

    /// Whether `range` lies wholly inside the set.
    pub fn contains_range(&self, range: &PhysRange) -> bool {
        range.is_empty() || self.ranges.iter().any(|r| r.contains_range(range))
    }

    pub fn overlaps(&self, range: &PhysRange) -> bool {
        self.ranges.iter().any(|r| r.overlaps(range))
    }

    /// Adds `range`, merging it with any range it overlaps or touches.
    pub fn insert(&mut self, range: PhysRange) -> Result<(), CapacityError> {
        if range.is_empty() {
            return Ok(());
        }
        // Ranges before `first` end before `range` starts; those from `first`
        // to `last` (exclusive) overlap or touch it and merge into it.
        let first = self.ranges.partition_point(|r| r.end < range.start);
        let last = self.ranges.partition_point(|r| r.start <= range.end);
        let mut merged = range;
        if first < last {
            merged.start = merged.start.min(self.ranges[first].start);
            merged.end = merged.end.max(self.ranges[last - 1].end);
        } else if self.ranges.is_full() {
            return Err(CapacityError { capacity: N });
        }
        self.ranges.drain(first..last);
        self.ranges.insert(first, merged);
        Ok(())
    }

    /// Removes every address of `range` from the set.
    pub fn remove(&mut self, range: PhysRange) -> Result<(), CapacityError> {
        if range.is_empty() {
            return Ok(());
        }
        let first = self.ranges.partition_point(|r| r.end <= range.start);
        let last = self.ranges.partition_point(|r| r.start < range.end);
        if first >= last {
            return Ok(());
        }
        let head = PhysRange::new(self.ranges[first].start, range.start);
        let tail = PhysRange::new(range.end, self.ranges[last - 1].end);
        let kept = usize::from(!head.is_empty()) + usize::from(!tail.is_empty());
        if self.ranges.len() - (last - first) + kept > N {
            return Err(CapacityError { capacity: N });
        }
        self.ranges.drain(first..last);
        let mut at = first;
        for piece in [head, tail] {
            if !piece.is_empty() {
                self.ranges.insert(at, piece);
                at += 1;
            }
        }
        Ok(())
    }

    /// The lowest range of at least `size` bytes starting at an `align`
    /// multiple, if any.
    pub fn find_space(&self, size: u64, align: u64) -> Option<PhysRange> {
        self.ranges.iter().find_map(|r| {
            let start = align_up(r.start, align)?;
            let end = start.checked_add(size)?;
            (end <= r.end).then_some(PhysRange::new(start, end))
        })
    }
}

impl<const N: usize> fmt::Debug for RangeSet<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.ranges.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    fn invariant<const N: usize>(set: &RangeSet<N>) {
        for w in set.ranges.windows(2) {
            assert!(w[0].end < w[1].start, "not sorted/disjoint/separated: {set:?}");
        }
        assert!(set.iter().all(|x| !x.is_empty()));
    }

    #[test]
    fn insert_merges_touching_and_overlapping() {
        let mut s = RangeSet::<8>::new();
        s.insert(r(10, 20)).unwrap();
        s.insert(r(30, 40)).unwrap();
        s.insert(r(20, 30)).unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![r(10, 40)]);
        s.insert(r(5, 12)).unwrap();
        s.insert(r(0, 1)).unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![r(0, 1), r(5, 40)]);
        s.insert(r(7, 7)).unwrap();
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn remove_splits_and_trims() {
        let mut s = RangeSet::<8>::new();
        s.insert(r(0, 100)).unwrap();
        s.remove(r(10, 20)).unwrap();
        s.remove(r(90, 200)).unwrap();
        s.remove(r(0, 5)).unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![r(5, 10), r(20, 90)]);
        s.remove(r(0, u64::MAX)).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn capacity_is_reported_not_exceeded() {
        let mut s = RangeSet::<2>::new();
        s.insert(r(0, 10)).unwrap();
        s.insert(r(20, 30)).unwrap();
        assert_eq!(s.insert(r(40, 50)), Err(CapacityError { capacity: 2 }));
        // A merge needs no room.
        s.insert(r(10, 20)).unwrap();
        s.insert(r(40, 50)).unwrap();
        // Splitting needs room: refused, and the set is unchanged.
        let before = s.clone();
        assert_eq!(s.remove(r(2, 3)), Err(CapacityError { capacity: 2 }));
        assert_eq!(s, before);
        // Trimming needs none.
        s.remove(r(0, 3)).unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![r(3, 30), r(40, 50)]);
    }

    #[test]
    fn find_space_respects_alignment() {
        let mut s = RangeSet::<4>::new();
        s.insert(r(0x1001, 0x3000)).unwrap();
        s.insert(r(0x10000, 0x20000)).unwrap();
        assert_eq!(s.find_space(0x1000, 0x1000), Some(r(0x2000, 0x3000)));
        assert_eq!(s.find_space(0x2000, 0x1000), Some(r(0x10000, 0x12000)));
        assert_eq!(s.find_space(0x20000, 0x1000), None);
        assert_eq!(s.find_space(u64::MAX, 1), None);
    }

    #[test]
    fn alignment_helpers() {
        assert_eq!(r(0x1001, 0x5fff).shrink_to_alignment(0x1000), r(0x2000, 0x5000));
        assert!(r(0x1001, 0x1fff).shrink_to_alignment(0x1000).is_empty());
        assert_eq!(r(0x1001, 0x5fff).expand_to_alignment(0x1000), Some(r(0x1000, 0x6000)));
        assert_eq!(r(0, u64::MAX).expand_to_alignment(0x1000), None);
        assert_eq!(PhysRange::from_start_size(u64::MAX, 2), None);
        assert!(r(u64::MAX - 10, u64::MAX).shrink_to_alignment(0x1000).is_empty());
    }

    /// A reference model: the set of 64-byte granules covered.
    fn model_apply(model: &mut BTreeSet<u64>, op: (bool, u64, u64)) {
        let (add, a, b) = op;
        for g in a.min(b)..a.max(b) {
            if add {
                model.insert(g);
            } else {
                model.remove(&g);
            }
        }
    }

    proptest! {
        #[test]
        fn matches_a_reference_model(ops in prop::collection::vec((any::<bool>(), 0u64..200, 0u64..200), 0..60)) {
            let mut set = RangeSet::<128>::new();
            let mut model = BTreeSet::new();
            for op in ops {
                let (add, a, b) = op;
                let range = r(a.min(b) * 64, a.max(b) * 64);
                if add { set.insert(range).unwrap(); } else { set.remove(range).unwrap(); }
                model_apply(&mut model, op);
                invariant(&set);
                let covered: BTreeSet<u64> = set.iter().flat_map(|x| x.start / 64..x.end / 64).collect();
                prop_assert_eq!(&covered, &model);
                prop_assert_eq!(set.total(), model.len() as u64 * 64);
            }
        }

        #[test]
        fn failed_operations_leave_the_set_unchanged(ops in prop::collection::vec((any::<bool>(), 0u64..100, 0u64..100), 0..40)) {
            let mut set = RangeSet::<3>::new();
            for (add, a, b) in ops {
                let range = r(a.min(b), a.max(b));
                let before = set.clone();
                let result = if add { set.insert(range) } else { set.remove(range) };
                if result.is_err() { prop_assert_eq!(&set, &before); }
                invariant(&set);
            }
        }
    }
}
