//! The GICv3 as the hypervisor virtualises it for Dom0 (DESIGN.md §7): Dom0
//! drives the real distributor and redistributors through a filter that
//! hides the interrupts the hypervisor keeps, and receives its interrupts
//! through the list registers. This folder holds the pure parts (register
//! map, the filter, list-register values, the overflow queue); the board
//! side is `arch::gic` (the physical GIC) and `arch::vgic` (injection).

pub mod filter;
pub mod list_register;
pub mod overflow;
pub mod registers;

/// INTID ranges.
pub const SGI_COUNT: u32 = 16;
pub const PRIVATE_COUNT: u32 = 32;
/// INTIDs 1020-1023 are special (spurious and friends).
pub const FIRST_SPECIAL: u32 = 1020;

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
