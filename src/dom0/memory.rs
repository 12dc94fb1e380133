//! Dom0's RAM, given 1:1 (IPA == PA) in a few large blocks. The policy is
//! Xen's (`allocate_memory_11`): bank 0 is the largest block that fits below
//! 4 GiB (32-bit DMA devices and early boot code need low memory), at least
//! min(128 MiB, dom0_mem); the rest comes in the largest blocks available,
//! none under 4 MiB. Banks are sorted and merged where they touch.

use crate::mm::frames::{FRAME_SIZE, FrameAllocator, MAX_ORDER, order_size};
use crate::mm::range::PhysRange;
use alloc::vec::Vec;
use core::fmt;

const LOW_LIMIT: u64 = 1 << 32;
const MIN_BANK0: u64 = 128 << 20;
/// Order of the smallest block worth a bank: 4 MiB.
const MIN_ORDER: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dom0MemError {
    /// No block of at least `needed` bytes below 4 GiB.
    NoLowBank { needed: u64 },
    /// Free memory ran out (or is too fragmented) with `missing` bytes to go.
    NotEnough { wanted: u64, missing: u64 },
}

impl fmt::Display for Dom0MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLowBank { needed } => {
                write!(f, "no free block of {} MiB below 4 GiB for Dom0's first bank", needed >> 20)
            }
            Self::NotEnough { wanted, missing } => write!(
                f,
                "dom0_mem={}M cannot be satisfied: {} MiB short in blocks of 4 MiB or more",
                wanted >> 20,
                missing >> 20
            ),
        }
    }
}

/// The largest order whose block is no bigger than `bytes`.
fn floor_order(bytes: u64) -> usize {
    let frames = (bytes / FRAME_SIZE).max(1);
    (63 - frames.leading_zeros() as usize).min(MAX_ORDER)
}

/// Takes `dom0_mem` bytes (rounded up to 4 MiB) out of `frames` as Dom0's
/// banks, ascending and merged. On failure everything taken is given back.
pub fn allocate(frames: &mut FrameAllocator<'_>, dom0_mem: u64) -> Result<Vec<PhysRange>, Dom0MemError> {
    // A size near 2^64 (any number parses) is simply more than there is.
    let Some(wanted) = dom0_mem.checked_next_multiple_of(order_size(MIN_ORDER)) else {
        return Err(Dom0MemError::NotEnough { wanted: dom0_mem, missing: dom0_mem });
    };
    let mut taken: Vec<(u64, usize)> = Vec::new();
    let give_back = |frames: &mut FrameAllocator<'_>, taken: &[(u64, usize)]| {
        for &(addr, order) in taken {
            frames.free(addr, order).expect("a block we took is ours to return");
        }
    };

    // Bank 0, below 4 GiB: as large as possible, but at least min(128M, all).
    let min_low_order = floor_order(MIN_BANK0.min(wanted)).max(MIN_ORDER);
    let mut order = floor_order(wanted);
    let bank0 = loop {
        if let Some(addr) = frames.alloc_below(order, LOW_LIMIT) {
            break (addr, order);
        }
        if order <= min_low_order {
            return Err(Dom0MemError::NoLowBank { needed: order_size(min_low_order) });
        }
        order -= 1;
    };
    taken.push(bank0);
    let mut remaining = wanted - order_size(bank0.1);

    // The rest: the largest blocks that do not overshoot (a block of the
    // largest free order is always there to take).
    while remaining > 0 {
        let order = floor_order(remaining).min(frames.largest_free_order().unwrap_or(0));
        let Some(addr) = (order >= MIN_ORDER).then(|| frames.alloc(order)).flatten() else {
            give_back(frames, &taken);
            return Err(Dom0MemError::NotEnough { wanted, missing: remaining });
        };
        taken.push((addr, order));
        remaining -= order_size(order);
    }
    Ok(crate::mm::range::merged(taken.iter().map(|&(addr, order)| PhysRange::new(addr, addr + order_size(order)))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::range::RangeSet;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn with_free<R>(banks: &[(u64, u64)], taken: &[(u64, u64)], f: impl FnOnce(&mut FrameAllocator<'_>) -> R) -> R {
        let mut set = RangeSet::<8>::new();
        for &(s, e) in banks {
            set.insert(PhysRange::new(s, e)).unwrap();
        }
        let mut storage = vec![0u64; FrameAllocator::storage_words(&set)];
        let mut frames = FrameAllocator::new(&set, &mut storage).unwrap();
        for bank in set.iter() {
            frames.free_range(bank).unwrap();
        }
        for &(s, e) in taken {
            frames.allocate_range(PhysRange::new(s, e)).unwrap();
        }
        f(&mut frames)
    }

    #[test]
    fn default_512m_on_a_2g_virt_board_is_one_low_bank() {
        // The image and the boot tree are kept back, as at boot.
        with_free(&[(0x4000_0000, 0xc000_0000)], &[(0x4020_0000, 0x4060_0000), (0x4800_0000, 0x4810_0000)], |f| {
            let before = f.free_bytes();
            let banks = allocate(f, 512 * MIB).unwrap();
            assert_eq!(banks, vec![PhysRange::new(0x6000_0000, 0x8000_0000)]);
            assert_eq!(f.free_bytes(), before - 512 * MIB);
        });
    }

    #[test]
    fn large_dom0_spans_blocks_and_bank0_is_low() {
        with_free(&[(0x4000_0000, 0x2_4000_0000)], &[(0x4020_0000, 0x4060_0000)], |f| {
            let banks = allocate(f, 5 * GIB + 100 * MIB).unwrap();
            let total: u64 = banks.iter().map(PhysRange::size).sum();
            assert_eq!(total, 5 * GIB + 100 * MIB);
            assert!(banks.iter().any(|b| b.start < 1 << 32));
            for w in banks.windows(2) {
                assert!(w[0].end < w[1].start, "sorted and merged: {banks:?}");
            }
            assert!(banks.len() <= 8, "few banks: {banks:?}");
        });
    }

    #[test]
    fn too_much_is_refused_and_nothing_is_lost() {
        with_free(&[(0x4000_0000, 0x8000_0000)], &[], |f| {
            let before: Vec<_> = f.free_blocks().collect();
            for too_much in [2 * GIB, u64::MAX - MIB, u64::MAX] {
                let err = allocate(f, too_much).unwrap_err();
                assert!(matches!(err, Dom0MemError::NotEnough { .. }), "{err}");
                assert_eq!(f.free_blocks().collect::<Vec<_>>(), before);
            }
        });
    }

    #[test]
    fn no_low_memory_is_refused() {
        with_free(&[(0x1_0000_0000, 0x2_0000_0000)], &[], |f| {
            assert_eq!(allocate(f, 256 * MIB), Err(Dom0MemError::NoLowBank { needed: 128 * MIB }));
            assert_eq!(f.free_bytes(), 4 * GIB);
        });
    }

    #[test]
    fn small_requests_round_up_to_4m() {
        with_free(&[(0x4000_0000, 0x8000_0000)], &[], |f| {
            let banks = allocate(f, MIB).unwrap();
            assert_eq!(banks.iter().map(PhysRange::size).sum::<u64>(), 4 * MIB);
        });
    }
}
