//! The GICv3 as the hypervisor virtualises it for Dom0: Dom0
//! drives the real distributor and redistributors through a filter that
//! hides the interrupts the hypervisor keeps, and receives its interrupts
//! through the list registers. This folder holds the pure parts (register
//! map, the filter, list-register values, the overflow queue); the board
//! side is `arch::gic` (the physical GIC) and `arch::vgic` (injection).

pub mod emulated;
pub mod filter;
pub mod list_register;
pub mod overflow;
pub mod partition;
pub mod registers;
pub mod targets;

use crate::mm::range::PhysRange;

/// INTID ranges.
pub const SGI_COUNT: u32 = 16;
pub const PRIVATE_COUNT: u32 = 32;
/// INTIDs 1020-1023 are special (spurious and friends).
pub const FIRST_SPECIAL: u32 = 1020;

/// The part of a redistributor region that holds redistributors: from its
/// start, frames of `stride` bytes up to the one whose GICR_TYPER (as
/// `typer` reads it at a frame's address) has the Last bit, or as many
/// whole frames as fit. A tree may describe more room than there are
/// redistributors (QEMU's virt gives 0xf60000 whatever the CPU count), and
/// a read of that room at EL2 is an external abort.
pub fn populated_redistributors(region: PhysRange, stride: u64, typer: impl Fn(u64) -> u64) -> PhysRange {
    let mut end = region.start;
    while end.checked_add(stride).is_some_and(|next| next <= region.end) {
        let last = typer(end) & registers::gicr::TYPER_LAST != 0;
        end += stride;
        if last {
            break;
        }
    }
    PhysRange::new(region.start, end)
}

/// A set of INTIDs below 1020, one bit each.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntidSet {
    words: [u32; 32],
}

impl IntidSet {
    pub const fn new() -> Self {
        Self { words: [0; 32] }
    }

    /// Adds `intid`; INTIDs of 1020 and above are not interrupts and are ignored.
    pub fn insert(&mut self, intid: u32) {
        if intid < FIRST_SPECIAL {
            self.words[(intid / 32) as usize] |= 1 << (intid % 32);
        }
    }

    pub fn contains(&self, intid: u32) -> bool {
        intid < FIRST_SPECIAL && self.words[(intid / 32) as usize] & (1 << (intid % 32)) != 0
    }

    pub fn extend(&mut self, intids: impl IntoIterator<Item = u32>) {
        for i in intids {
            self.insert(i);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..FIRST_SPECIAL).filter(|&i| self.contains(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRIDE: u64 = 0x2_0000;

    /// GICR_TYPER of `count` redistributors from 0x80a_0000, the last one
    /// flagged, and an abort (a panic here) for a read of any other frame.
    fn board(count: u64) -> impl Fn(u64) -> u64 {
        move |frame| {
            let index = (frame - 0x80a_0000) / STRIDE;
            assert!(index < count && frame % STRIDE == 0, "read of {frame:#x}, past the redistributors");
            (index << 32) | if index + 1 == count { registers::gicr::TYPER_LAST } else { 0 }
        }
    }

    #[test]
    fn only_frames_up_to_the_last_redistributor_count() {
        let qemu = PhysRange::new(0x80a_0000, 0x900_0000);
        assert_eq!(populated_redistributors(qemu, STRIDE, board(2)), PhysRange::new(0x80a_0000, 0x80e_0000));
        assert_eq!(populated_redistributors(qemu, STRIDE, board(1)), PhysRange::new(0x80a_0000, 0x80c_0000));
        // 123 frames fit; none says Last: every whole frame, no more.
        let all = populated_redistributors(qemu, STRIDE, |_| 0);
        assert_eq!(all, PhysRange::new(0x80a_0000, 0x80a_0000 + 123 * STRIDE));
        assert_eq!(populated_redistributors(PhysRange::new(0x80a_0000, 0x80b_0000), STRIDE, board(1)).size(), 0);
        let top = PhysRange::new(u64::MAX - STRIDE + 1, u64::MAX);
        assert_eq!(populated_redistributors(top, STRIDE, |_| 0).size(), 0, "no overflow at the top");
    }
}
