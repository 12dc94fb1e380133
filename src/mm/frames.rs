//! The physical frame allocator: a binary buddy allocator over 4 KiB frames.
//!
//! Why our own and not `buddy_system_allocator`: we must walk the free lists
//! (order, start) to find the extended regions, and that crate keeps them
//! private. Why bitmaps: the free state lives outside the frames, one bit per
//! possible block per order (about two bits per frame in all), so nothing a
//! guest writes into a frame it owned can forge allocator state, the whole
//! structure fits in a few hundred KiB per GiB-scale bank, and a walk yields
//! blocks in address order for free.
//!
//! Memory is organised in zones, one per RAM bank. A block of order `k` is
//! `2^k` frames aligned to its size in the physical address space, so a bank
//! that starts or ends off a large alignment simply holds smaller blocks at
//! its edges, and blocks never merge across banks.

use super::range::{PhysRange, RangeSet};
use arrayvec::ArrayVec;
use core::fmt;

pub const FRAME_SHIFT: u32 = 12;
pub const FRAME_SIZE: u64 = 1 << FRAME_SHIFT;
/// Largest block: 2^18 frames = 1 GiB.
pub const MAX_ORDER: usize = 18;
pub const ORDERS: usize = MAX_ORDER + 1;
/// At most this many RAM banks (zones).
pub const MAX_ZONES: usize = 32;

/// Bytes in a block of `order`.
pub const fn order_size(order: usize) -> u64 {
    FRAME_SIZE << order
}

/// The smallest order whose blocks hold `bytes`; `None` above `MAX_ORDER`.
pub fn order_for(bytes: u64) -> Option<usize> {
    let frames = bytes.div_ceil(FRAME_SIZE).max(1);
    let order = frames.next_power_of_two().trailing_zeros() as usize;
    (order <= MAX_ORDER).then_some(order)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// More banks than `MAX_ZONES`.
    TooManyZones,
    /// The metadata storage is smaller than `storage_words` asked for.
    StorageTooSmall { needed: usize, given: usize },
    /// The address or size is not a multiple of the block size.
    Misaligned { addr: u64, order: usize },
    /// Order above `MAX_ORDER`.
    BadOrder(usize),
    /// The block or range is not wholly inside one RAM bank.
    OutsideRam(PhysRange),
    /// Part of the block or range is already free.
    AlreadyFree(PhysRange),
    /// Part of the range is not free.
    NotFree(PhysRange),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyZones => write!(f, "more than {MAX_ZONES} RAM banks"),
            Self::StorageTooSmall { needed, given } => {
                write!(f, "metadata needs {needed} words, got {given}")
            }
            Self::Misaligned { addr, order } => {
                write!(f, "{addr:#x} is not aligned to an order-{order} block")
            }
            Self::BadOrder(order) => write!(f, "order {order} above the maximum {MAX_ORDER}"),
            Self::OutsideRam(r) => write!(f, "{r} is not inside one RAM bank"),
            Self::AlreadyFree(r) => write!(f, "{r} is already free (double free)"),
            Self::NotFree(r) => write!(f, "{r} is not free"),
        }
    }
}

/// One bank: frames `[first, end)` and a bitmap per order.
struct Zone<'m> {
    first: u64,
    end: u64,
    maps: [&'m mut [u64]; ORDERS],
    /// Per order, a word index below which the bitmap is known to be zero.
    hint: [usize; ORDERS],
    /// Per order, how many bits are set: an empty order is never scanned.
    free: [u64; ORDERS],
}

impl Zone<'_> {
    /// Bits in the order-`order` bitmap of frames `[first, end)`.
    fn bits(first: u64, end: u64, order: usize) -> u64 {
        ((end - 1) >> order) - (first >> order) + 1
    }

    fn words(first: u64, end: u64) -> usize {
        (0..ORDERS).map(|k| Self::bits(first, end, k).div_ceil(64) as usize).sum()
    }

    fn index(&self, pfn: u64, order: usize) -> usize {
        ((pfn >> order) - (self.first >> order)) as usize
    }

    fn pfn_at(&self, index: usize, order: usize) -> u64 {
        ((self.first >> order) + index as u64) << order
    }

    /// Whether the whole block lies inside this zone.
    fn holds(&self, pfn: u64, order: usize) -> bool {
        pfn >= self.first && pfn.checked_add(1 << order).is_some_and(|end| end <= self.end)
    }

    fn is_free(&self, pfn: u64, order: usize) -> bool {
        let i = self.index(pfn, order);
        self.maps[order][i / 64] & (1 << (i % 64)) != 0
    }

    /// Marks the block free; it was not.
    fn set(&mut self, pfn: u64, order: usize) {
        let i = self.index(pfn, order);
        debug_assert!(!self.is_free(pfn, order));
        self.maps[order][i / 64] |= 1 << (i % 64);
        self.hint[order] = self.hint[order].min(i / 64);
        self.free[order] += 1;
    }

    /// Marks the block taken; it was free.
    fn clear(&mut self, pfn: u64, order: usize) {
        let i = self.index(pfn, order);
        debug_assert!(self.is_free(pfn, order));
        self.maps[order][i / 64] &= !(1 << (i % 64));
        self.free[order] -= 1;
    }

    /// First free block of `order` at bit index `from` or later.
    fn next_free(&self, order: usize, from: usize) -> Option<usize> {
        self.next_free_before(order, from, usize::MAX)
    }

    /// First free block of `order` with a bit index in `[from, end)`: scans
    /// only the words of that span, and nothing when the order is empty.
    fn next_free_before(&self, order: usize, from: usize, end: usize) -> Option<usize> {
        if self.free[order] == 0 || from >= end {
            return None;
        }
        let map = &self.maps[order];
        let last_word = ((end - 1) / 64).min(map.len().checked_sub(1)?);
        let mut word = from / 64;
        let mut bits = *map.get(word)? & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                let i = word * 64 + bits.trailing_zeros() as usize;
                return (i < end).then_some(i);
            }
            if word >= last_word {
                return None;
            }
            word += 1;
            bits = map[word];
        }
    }

    /// The lowest free block of `order`, scanning from the hint and moving
    /// it up to what the scan proved empty.
    fn lowest_free(&mut self, order: usize) -> Option<usize> {
        let found = self.next_free(order, self.hint[order] * 64);
        self.hint[order] = found.map_or(self.maps[order].len(), |i| i / 64);
        found
    }

    /// The free block containing frame `pfn`, if the frame is free.
    fn free_block_containing(&self, pfn: u64) -> Option<(u64, usize)> {
        (0..ORDERS)
            .map(|k| (pfn & !((1 << k) - 1), k))
            .find(|&(start, k)| self.holds(start, k) && self.is_free(start, k))
    }

    /// Whether any part of the block is free: the block itself, a block
    /// containing it, or a block inside it.
    fn any_free(&self, pfn: u64, order: usize) -> bool {
        let above = (order..ORDERS).any(|k| {
            let start = pfn & !((1 << k) - 1);
            self.holds(start, k) && self.is_free(start, k)
        });
        above
            || (0..order).any(|k| {
                let first = self.index(pfn, k);
                self.next_free_before(k, first, first + (1usize << (order - k))).is_some()
            })
    }
}

/// The buddy allocator. `'m` is the lifetime of the metadata storage.
pub struct FrameAllocator<'m> {
    zones: ArrayVec<Zone<'m>, MAX_ZONES>,
    free_frames: u64,
    free_blocks: [u64; ORDERS],
}

impl<'m> FrameAllocator<'m> {
    /// Words of metadata storage needed for these banks.
    pub fn storage_words<const N: usize>(banks: &RangeSet<N>) -> usize {
        Self::frame_banks(banks).map(|(first, end)| Zone::words(first, end)).sum()
    }

    fn frame_banks<const N: usize>(banks: &RangeSet<N>) -> impl Iterator<Item = (u64, u64)> + '_ {
        banks
            .iter()
            .map(|bank| bank.shrink_to_alignment(FRAME_SIZE))
            .filter(|bank| !bank.is_empty())
            .map(|bank| (bank.start >> FRAME_SHIFT, bank.end >> FRAME_SHIFT))
    }

    /// An allocator over `banks` with nothing free yet: hand it memory with
    /// [`free_range`](Self::free_range). Bank ends are trimmed to whole frames.
    pub fn new<const N: usize>(banks: &RangeSet<N>, storage: &'m mut [u64]) -> Result<Self, FrameError> {
        let needed = Self::storage_words(banks);
        if storage.len() < needed {
            return Err(FrameError::StorageTooSmall { needed, given: storage.len() });
        }
        let mut zones = ArrayVec::new();
        let mut rest = storage;
        for (first, end) in Self::frame_banks(banks) {
            let maps: [&'m mut [u64]; ORDERS] = core::array::from_fn(|order| {
                let words = Zone::bits(first, end, order).div_ceil(64) as usize;
                let (map, tail) = core::mem::take(&mut rest).split_at_mut(words);
                rest = tail;
                map.fill(0);
                map
            });
            zones
                .try_push(Zone { first, end, maps, hint: [0; ORDERS], free: [0; ORDERS] })
                .map_err(|_| FrameError::TooManyZones)?;
        }
        Ok(Self { zones, free_frames: 0, free_blocks: [0; ORDERS] })
    }

    pub fn free_bytes(&self) -> u64 {
        self.free_frames * FRAME_SIZE
    }

    pub fn free_frames(&self) -> u64 {
        self.free_frames
    }

    /// Free blocks per order.
    pub fn free_block_counts(&self) -> [u64; ORDERS] {
        self.free_blocks
    }

    /// The RAM banks, as trimmed to whole frames.
    pub fn banks(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.zones.iter().map(|z| PhysRange::new(z.first << FRAME_SHIFT, z.end << FRAME_SHIFT))
    }

    fn zone_of(&self, range: &PhysRange) -> Result<usize, FrameError> {
        self.zones
            .iter()
            .position(|z| (z.first << FRAME_SHIFT) <= range.start && range.end <= (z.end << FRAME_SHIFT))
            .ok_or(FrameError::OutsideRam(*range))
    }

    fn block_range(pfn: u64, order: usize) -> PhysRange {
        PhysRange::new(pfn << FRAME_SHIFT, (pfn + (1 << order)) << FRAME_SHIFT)
    }

    fn check_block(&self, addr: u64, order: usize) -> Result<(usize, PhysRange), FrameError> {
        if order > MAX_ORDER {
            return Err(FrameError::BadOrder(order));
        }
        if !addr.is_multiple_of(order_size(order)) {
            return Err(FrameError::Misaligned { addr, order });
        }
        let range = PhysRange::from_start_size(addr, order_size(order))
            .ok_or(FrameError::OutsideRam(PhysRange::new(addr, u64::MAX)))?;
        Ok((self.zone_of(&range)?, range))
    }

    /// Allocates one block of `order`: the lowest-addressed block of the
    /// smallest order that fits, split down as needed.
    pub fn alloc(&mut self, order: usize) -> Option<u64> {
        self.alloc_below(order, u64::MAX)
    }

    /// Allocates one block of `order` lying wholly below `limit`: the
    /// lowest-addressed fit, taken from the smallest free block that holds
    /// one. For memory that must sit low (Dom0's first bank below 4 GiB).
    pub fn alloc_below(&mut self, order: usize, limit: u64) -> Option<u64> {
        if order > MAX_ORDER || limit < order_size(order) {
            return None;
        }
        let last_pfn = (limit >> FRAME_SHIFT) - (1 << order); // highest start that fits
        let free_blocks = self.free_blocks;
        let (zone, from, pfn) = (order..ORDERS).filter(|&k| free_blocks[k] > 0).find_map(|k| {
            self.zones.iter_mut().enumerate().find_map(|(z, zone)| {
                let i = zone.lowest_free(k)?;
                let pfn = zone.pfn_at(i, k);
                (pfn <= last_pfn).then_some((z, k, pfn))
            })
        })?;
        self.take_and_split(zone, pfn, from, order);
        Some(pfn << FRAME_SHIFT)
    }

    /// The order of the largest free block, if any memory is free.
    pub fn largest_free_order(&self) -> Option<usize> {
        (0..ORDERS).rev().find(|&k| self.free_blocks[k] > 0)
    }

    /// Returns a block from [`alloc`](Self::alloc), merging it with its free
    /// buddies.
    pub fn free(&mut self, addr: u64, order: usize) -> Result<(), FrameError> {
        let (zone, range) = self.check_block(addr, order)?;
        if self.zones[zone].any_free(addr >> FRAME_SHIFT, order) {
            return Err(FrameError::AlreadyFree(range));
        }
        self.merge_in(zone, addr >> FRAME_SHIFT, order);
        Ok(())
    }

    /// Frees every frame of `range` (frame aligned, inside one bank, none of
    /// it free already). Seeds the allocator and returns boot modules.
    pub fn free_range(&mut self, range: PhysRange) -> Result<(), FrameError> {
        let zone = self.check_range(&range)?;
        for (pfn, order) in aligned_blocks(range) {
            if self.zones[zone].any_free(pfn, order) {
                return Err(FrameError::AlreadyFree(Self::block_range(pfn, order)));
            }
        }
        for (pfn, order) in aligned_blocks(range) {
            self.merge_in(zone, pfn, order);
        }
        Ok(())
    }

    /// Takes exactly the frames of `range` out of the free memory. Every
    /// frame of it must be free; on error nothing changes.
    pub fn allocate_range(&mut self, range: PhysRange) -> Result<(), FrameError> {
        let zone = self.check_range(&range)?;
        // First pass: check that free blocks cover the range.
        let mut at = range.start >> FRAME_SHIFT;
        let end = range.end >> FRAME_SHIFT;
        while at < end {
            let (start, order) = self.zones[zone]
                .free_block_containing(at)
                .ok_or_else(|| FrameError::NotFree(PhysRange::new(at << FRAME_SHIFT, range.end)))?;
            at = start + (1 << order);
        }
        // Second pass: take each covering block, give back what sticks out.
        let mut at = range.start >> FRAME_SHIFT;
        while at < end {
            let Some((start, order)) = self.zones[zone].free_block_containing(at) else {
                unreachable!("checked in the first pass");
            };
            self.take_block(zone, start, order);
            let block = Self::block_range(start, order);
            for outside in [
                PhysRange::new(block.start, range.start.max(block.start)),
                PhysRange::new(range.end.min(block.end), block.end),
            ] {
                for (pfn, k) in aligned_blocks(outside) {
                    self.merge_in(zone, pfn, k);
                }
            }
            at = start + (1 << order);
        }
        Ok(())
    }

    fn check_range(&self, range: &PhysRange) -> Result<usize, FrameError> {
        if !range.start.is_multiple_of(FRAME_SIZE) || !range.end.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Misaligned { addr: range.start | (range.end % FRAME_SIZE), order: 0 });
        }
        self.zone_of(range)
    }

    /// Takes the free block `(pfn, from)` and hands back its upper halves
    /// until what is kept is `order`.
    fn take_and_split(&mut self, zone: usize, pfn: u64, from: usize, order: usize) {
        self.take_block(zone, pfn, from);
        for k in (order..from).rev() {
            self.put_block(zone, pfn + (1 << k), k);
        }
    }

    fn take_block(&mut self, zone: usize, pfn: u64, order: usize) {
        self.zones[zone].clear(pfn, order);
        self.free_frames -= 1 << order;
        self.free_blocks[order] -= 1;
    }

    fn put_block(&mut self, zone: usize, pfn: u64, order: usize) {
        self.zones[zone].set(pfn, order);
        self.free_frames += 1 << order;
        self.free_blocks[order] += 1;
    }

    /// Marks a block free, merging with free buddies upwards.
    fn merge_in(&mut self, zone: usize, mut pfn: u64, mut order: usize) {
        while order < MAX_ORDER {
            let buddy = pfn ^ (1 << order);
            let z = &self.zones[zone];
            if !(z.holds(buddy, order) && z.is_free(buddy, order)) {
                break;
            }
            self.take_block(zone, buddy, order);
            pfn &= !(1 << order);
            order += 1;
        }
        self.put_block(zone, pfn, order);
    }

    /// Every free block as (order, start address), in ascending address order.
    pub fn free_blocks(&self) -> FreeBlocks<'_, 'm> {
        FreeBlocks { alloc: self, zone: 0, cursors: None }
    }

    /// Free memory as maximal ranges (adjacent free blocks merged), ascending.
    pub fn free_ranges(&self) -> impl Iterator<Item = PhysRange> + '_ {
        let mut blocks = self.free_blocks().peekable();
        core::iter::from_fn(move || {
            let (order, start) = blocks.next()?;
            let mut range = PhysRange::new(start, start + order_size(order));
            while let Some(&(k, next)) = blocks.peek() {
                if next != range.end {
                    break;
                }
                range.end += order_size(k);
                blocks.next();
            }
            Some(range)
        })
    }
}

/// Iterator over the free blocks of all zones, ascending by address: a merge
/// of one cursor per order within each zone.
pub struct FreeBlocks<'a, 'm> {
    alloc: &'a FrameAllocator<'m>,
    zone: usize,
    /// The next free bit index per order in the current zone.
    cursors: Option<[Option<usize>; ORDERS]>,
}

impl Iterator for FreeBlocks<'_, '_> {
    type Item = (usize, u64);

    fn next(&mut self) -> Option<(usize, u64)> {
        loop {
            let zone = self.alloc.zones.get(self.zone)?;
            let cursors = self.cursors.get_or_insert_with(|| core::array::from_fn(|k| zone.next_free(k, 0)));
            let lowest = (0..ORDERS).filter_map(|k| cursors[k].map(|i| (zone.pfn_at(i, k), k))).min();
            match lowest {
                Some((pfn, k)) => {
                    cursors[k] = cursors[k].and_then(|i| zone.next_free(k, i + 1));
                    return Some((k, pfn << FRAME_SHIFT));
                }
                None => {
                    self.zone += 1;
                    self.cursors = None;
                }
            }
        }
    }
}

/// Splits a frame-aligned range into maximal naturally aligned blocks,
/// ascending, as (first frame, order).
pub fn aligned_blocks(range: PhysRange) -> impl Iterator<Item = (u64, usize)> {
    let mut at = range.start >> FRAME_SHIFT;
    let end = range.end >> FRAME_SHIFT;
    core::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let by_alignment = if at == 0 { MAX_ORDER } else { at.trailing_zeros() as usize };
        let by_size = (63 - (end - at).leading_zeros()) as usize;
        let order = by_alignment.min(by_size).min(MAX_ORDER);
        let block = (at, order);
        at += 1 << order;
        Some(block)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const GIB: u64 = 1 << 30;

    fn banks(list: &[(u64, u64)]) -> RangeSet<MAX_ZONES> {
        let mut set = RangeSet::new();
        for &(s, e) in list {
            set.insert(PhysRange::new(s, e)).unwrap();
        }
        set
    }

    fn with_allocator<R>(list: &[(u64, u64)], f: impl FnOnce(&mut FrameAllocator<'_>) -> R) -> R {
        let set = banks(list);
        let mut storage = vec![0u64; FrameAllocator::storage_words(&set)];
        let mut alloc = FrameAllocator::new(&set, &mut storage).unwrap();
        f(&mut alloc)
    }

    fn free_frames(alloc: &FrameAllocator<'_>) -> BTreeSet<u64> {
        alloc.free_blocks().flat_map(|(k, start)| (0..1u64 << k).map(move |i| (start >> FRAME_SHIFT) + i)).collect()
    }

    /// What a correct buddy allocator must hold at every moment.
    fn check_invariants(alloc: &FrameAllocator<'_>) {
        let blocks: Vec<_> = alloc.free_blocks().collect();
        // Ascending, disjoint, aligned, inside a bank, never two free buddies.
        for w in blocks.windows(2) {
            assert!(w[0].1 + order_size(w[0].0) <= w[1].1, "overlap or unsorted: {w:?}");
        }
        let set: BTreeSet<_> = blocks.iter().copied().collect();
        for &(k, start) in &blocks {
            assert_eq!(start % order_size(k), 0);
            let range = PhysRange::from_start_size(start, order_size(k)).unwrap();
            assert!(alloc.banks().any(|b| b.contains_range(&range)));
            if k < MAX_ORDER {
                assert!(!set.contains(&(k, start ^ order_size(k))), "unmerged buddies at {start:#x}");
            }
        }
        let counted: u64 = blocks.iter().map(|&(k, _)| 1u64 << k).sum();
        assert_eq!(counted, alloc.free_frames());
        let mut per_order = [0u64; ORDERS];
        for &(k, _) in &blocks {
            per_order[k] += 1;
        }
        assert_eq!(per_order, alloc.free_block_counts());
        // Ranges are the blocks merged.
        let ranges: Vec<_> = alloc.free_ranges().collect();
        assert_eq!(ranges.iter().map(PhysRange::size).sum::<u64>(), alloc.free_bytes());
        for w in ranges.windows(2) {
            assert!(w[0].end < w[1].start);
        }
    }

    #[test]
    fn order_helpers() {
        assert_eq!(order_for(1), Some(0));
        assert_eq!(order_for(4096), Some(0));
        assert_eq!(order_for(4097), Some(1));
        assert_eq!(order_for(GIB), Some(18));
        assert_eq!(order_for(GIB + 1), None);
        assert_eq!(order_for(0), Some(0));
    }

    #[test]
    fn aligned_blocks_are_maximal() {
        let blocks: Vec<_> = aligned_blocks(PhysRange::new(0x1000, 0x10000)).collect();
        assert_eq!(blocks, vec![(1, 0), (2, 1), (4, 2), (8, 3)]);
        let blocks: Vec<_> = aligned_blocks(PhysRange::new(0, 4 * GIB)).collect();
        assert_eq!(blocks.len(), 4);
        assert!(blocks.iter().all(|&(_, k)| k == MAX_ORDER));
        assert_eq!(aligned_blocks(PhysRange::new(0x5000, 0x5000)).count(), 0);
    }

    #[test]
    fn seeding_a_gib_bank_gives_one_block() {
        with_allocator(&[(GIB, 2 * GIB)], |a| {
            a.free_range(PhysRange::new(GIB, 2 * GIB)).unwrap();
            assert_eq!(a.free_blocks().collect::<Vec<_>>(), vec![(MAX_ORDER, GIB)]);
            check_invariants(a);
        });
    }

    #[test]
    fn split_and_merge_restore_the_free_lists() {
        with_allocator(&[(0x4000_0000, 0x8000_0000)], |a| {
            a.free_range(PhysRange::new(0x4000_0000, 0x8000_0000)).unwrap();
            let before: Vec<_> = a.free_blocks().collect();
            let x = a.alloc(0).unwrap();
            let y = a.alloc(3).unwrap();
            let z = a.alloc(MAX_ORDER - 1).unwrap();
            assert_eq!(x, 0x4000_0000);
            check_invariants(a);
            for (addr, k) in [(y, 3), (x, 0), (z, MAX_ORDER - 1)] {
                a.free(addr, k).unwrap();
                check_invariants(a);
            }
            assert_eq!(a.free_blocks().collect::<Vec<_>>(), before);
        });
    }

    #[test]
    fn double_free_and_bad_frees_are_refused() {
        with_allocator(&[(0x4000_0000, 0x4100_0000)], |a| {
            a.free_range(PhysRange::new(0x4000_0000, 0x4100_0000)).unwrap();
            let x = a.alloc(2).unwrap();
            a.free(x, 2).unwrap();
            let snapshot: Vec<_> = a.free_blocks().collect();
            assert!(matches!(a.free(x, 2), Err(FrameError::AlreadyFree(_))));
            // Part of a free block, or a block containing free frames.
            assert!(matches!(a.free(x + 0x1000, 0), Err(FrameError::AlreadyFree(_))));
            assert!(matches!(a.free(0x4000_0000, 12), Err(FrameError::AlreadyFree(_))));
            assert!(matches!(a.free(x + 0x800, 0), Err(FrameError::Misaligned { .. })));
            assert!(matches!(a.free(0x9000_0000, 0), Err(FrameError::OutsideRam(_))));
            assert!(matches!(a.free(0x40ff_f000, 1), Err(FrameError::Misaligned { .. })));
            assert!(matches!(a.free(0x4000_0000, MAX_ORDER + 1), Err(FrameError::BadOrder(_))));
            assert!(matches!(a.free(!0xfff, 0), Err(FrameError::OutsideRam(_))));
            assert!(matches!(a.free_range(PhysRange::new(0x4000_0000, 0x4000_2000)), Err(FrameError::AlreadyFree(_))));
            assert_eq!(a.free_blocks().collect::<Vec<_>>(), snapshot);
        });
    }

    #[test]
    fn odd_sized_misaligned_banks() {
        // A bank starting and ending off every large alignment.
        let bank = (0x4000_3000, 0x4a12_5000);
        with_allocator(&[bank, (0x1_0000_1000, 0x1_0000_2000)], |a| {
            a.free_range(PhysRange::new(bank.0, bank.1)).unwrap();
            a.free_range(PhysRange::new(0x1_0000_1000, 0x1_0000_2000)).unwrap();
            check_invariants(a);
            assert_eq!(a.free_bytes(), (bank.1 - bank.0) + 0x1000);
            // Drain it completely with order-0 allocations, no overlaps.
            let mut seen = BTreeSet::new();
            while let Some(f) = a.alloc(0) {
                assert!(seen.insert(f));
            }
            assert_eq!(a.free_frames(), 0);
            assert_eq!(seen.len() as u64, (bank.1 - bank.0) / 4096 + 1);
            for f in seen {
                a.free(f, 0).unwrap();
            }
            check_invariants(a);
            // Everything merged back into the maximal aligned blocks.
            let expected: Vec<_> = aligned_blocks(PhysRange::new(bank.0, bank.1))
                .map(|(pfn, k)| (k, pfn << FRAME_SHIFT))
                .chain([(0, 0x1_0000_1000)])
                .collect();
            assert_eq!(a.free_blocks().collect::<Vec<_>>(), expected);
        });
    }

    #[test]
    fn banks_are_trimmed_to_frames_and_storage_checked() {
        let set = banks(&[(0x4000_0800, 0x4000_3800)]);
        let mut storage = vec![0u64; FrameAllocator::storage_words(&set)];
        let mut a = FrameAllocator::new(&set, &mut storage).unwrap();
        assert_eq!(a.banks().collect::<Vec<_>>(), vec![PhysRange::new(0x4000_1000, 0x4000_3000)]);
        assert!(a.free_range(PhysRange::new(0x4000_0000, 0x4000_1000)).is_err());
        a.free_range(PhysRange::new(0x4000_1000, 0x4000_3000)).unwrap();
        let mut small = vec![0u64; 1];
        assert!(matches!(
            FrameAllocator::new(&banks(&[(0, GIB)]), &mut small),
            Err(FrameError::StorageTooSmall { .. })
        ));
    }

    #[test]
    fn allocate_range_takes_exactly_the_range() {
        with_allocator(&[(0x4000_0000, 0x8000_0000)], |a| {
            a.free_range(PhysRange::new(0x4000_0000, 0x8000_0000)).unwrap();
            let hole = PhysRange::new(0x4123_4000, 0x4567_8000);
            a.allocate_range(hole).unwrap();
            check_invariants(a);
            assert_eq!(a.free_bytes(), GIB - hole.size());
            let free = free_frames(a);
            assert!(!free.iter().any(|&f| hole.contains(f << FRAME_SHIFT)));
            // Taking it again fails and changes nothing.
            let before: Vec<_> = a.free_blocks().collect();
            assert!(matches!(a.allocate_range(PhysRange::new(0x4000_0000, 0x4200_0000)), Err(FrameError::NotFree(_))));
            assert_eq!(a.free_blocks().collect::<Vec<_>>(), before);
            a.free_range(hole).unwrap();
            assert_eq!(a.free_blocks().collect::<Vec<_>>(), vec![(MAX_ORDER, 0x4000_0000)]);
        });
    }

    #[test]
    fn alloc_below_respects_the_limit() {
        with_allocator(&[(0xc000_0000, 0x1_8000_0000)], |a| {
            a.free_range(PhysRange::new(0xc000_0000, 0x1_8000_0000)).unwrap();
            // 1 GiB below 4 GiB: the one at 3 GiB.
            assert_eq!(a.alloc_below(MAX_ORDER, 1 << 32), Some(0xc000_0000));
            assert_eq!(a.alloc_below(MAX_ORDER, 1 << 32), None);
            assert_eq!(a.alloc_below(0, 1 << 32), None);
            assert_eq!(a.alloc_below(0, 0), None);
            assert_eq!(a.largest_free_order(), Some(MAX_ORDER));
            assert_eq!(a.alloc_below(0, u64::MAX), Some(0x1_0000_0000));
            check_invariants(a);
        });
    }

    #[derive(Debug, Clone)]
    enum Op {
        Alloc(usize),
        Free(usize),
        Take(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..8).prop_map(Op::Alloc),
            any::<usize>().prop_map(Op::Free),
            (0u64..2048, 1u64..64).prop_map(|(a, n)| Op::Take(a, n)),
        ]
    }

    proptest! {
        /// Random banks, random operations: allocations never overlap each
        /// other or free memory, the walk covers exactly the free memory, and
        /// freeing everything restores the free lists exactly.
        #[test]
        fn random_operations_keep_the_allocator_exact(
            raw_banks in prop::collection::vec((0u64..4096, 1u64..1024), 1..4),
            ops in prop::collection::vec(op(), 0..80),
        ) {
            let list: Vec<(u64, u64)> = raw_banks
                .iter()
                .map(|&(s, n)| (0x4000_0000 + s * 0x3000, 0x4000_0000 + s * 0x3000 + n * 0x1000))
                .collect();
            let set = banks(&list);
            let mut storage = vec![0u64; FrameAllocator::storage_words(&set)];
            let mut a = FrameAllocator::new(&set, &mut storage).unwrap();
            for bank in set.iter() {
                a.free_range(bank).unwrap();
            }
            let initial: Vec<_> = a.free_blocks().collect();
            let ram: BTreeSet<u64> = set.iter().flat_map(|b| (b.start >> 12)..(b.end >> 12)).collect();
            prop_assert_eq!(free_frames(&a), ram.clone());

            let mut held: Vec<(u64, usize)> = Vec::new(); // (addr, order) blocks
            let mut taken: Vec<PhysRange> = Vec::new();
            for op in ops {
                match op {
                    Op::Alloc(k) => {
                        if let Some(addr) = a.alloc(k) {
                            held.push((addr, k));
                        }
                    }
                    Op::Free(i) if !held.is_empty() => {
                        let (addr, k) = held.swap_remove(i % held.len());
                        a.free(addr, k).unwrap();
                    }
                    Op::Free(_) => {}
                    Op::Take(at, n) => {
                        let start = 0x4000_0000 + at * 0x1000 * 4;
                        let range = PhysRange::new(start, start + n * 0x1000);
                        let free_before = free_frames(&a);
                        let all_free = (range.start >> 12..range.end >> 12).all(|f| free_before.contains(&f));
                        match a.allocate_range(range) {
                            Ok(()) => { prop_assert!(all_free); taken.push(range); }
                            Err(_) => prop_assert!(!all_free || !set.iter().any(|b| b.contains_range(&range))),
                        }
                    }
                }
                check_invariants(&a);
                // Held blocks and taken ranges are disjoint from each other
                // and from free memory, and together they are all of RAM.
                let free = free_frames(&a);
                let mut used = BTreeSet::new();
                for &(addr, k) in &held {
                    for f in (addr >> 12)..(addr >> 12) + (1 << k) {
                        prop_assert!(used.insert(f), "overlapping allocations");
                    }
                }
                for r in &taken {
                    for f in (r.start >> 12)..(r.end >> 12) {
                        prop_assert!(used.insert(f), "overlapping allocations");
                    }
                }
                prop_assert!(used.is_disjoint(&free));
                let all: BTreeSet<u64> = used.union(&free).copied().collect();
                prop_assert_eq!(&all, &ram);
            }
            for (addr, k) in held {
                a.free(addr, k).unwrap();
            }
            for r in taken {
                a.free_range(r).unwrap();
            }
            prop_assert_eq!(a.free_blocks().collect::<Vec<_>>(), initial);
        }
    }
}
