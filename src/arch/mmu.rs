//! The hypervisor's own (EL2 stage 1) translation: an identity map of RAM
//! (Normal, write-back) and of the few devices the hypervisor drives
//! (Device-nGnRE). The image's text is read-only and executable, everything
//! else execute-never. Anything not listed stays unmapped, so a stray access
//! faults instead of touching a device behind Dom0's back.

use super::barrier;
use crate::mm::range::PhysRange;
use aarch64_cpu::asm::barrier as b;
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MAIR_EL2, SCTLR_EL2, TCR_EL2, TTBR0_EL2};
use aarch64_paging::descriptor::El23Attributes as A;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El2, MemoryRegion};
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};

const DEVICE: A = A::ATTRIBUTE_INDEX_0;
const NORMAL: A = A::ATTRIBUTE_INDEX_1;

/// What a mapped range is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Hypervisor code: read-only, executable.
    Text,
    /// RAM: read-write, never executable.
    Ram,
    /// Device registers: read-write, never executable, uncached.
    Device,
}

impl Kind {
    fn attributes(self) -> A {
        let common = A::VALID | A::ACCESSED | A::USER_RES1;
        match self {
            Kind::Text => common | NORMAL | A::INNER_SHAREABLE | A::READ_ONLY,
            Kind::Ram => common | NORMAL | A::INNER_SHAREABLE | A::XN,
            Kind::Device => common | DEVICE | A::XN,
        }
    }
}

#[derive(Debug)]
pub struct MapFailed(pub PhysRange);

/// The EL2 page tables, built before the MMU is on.
pub struct El2Map {
    map: IdMap<El2>,
}

impl Default for El2Map {
    fn default() -> Self {
        Self::new()
    }
}

impl El2Map {
    pub fn new() -> Self {
        // Root at level 0: 48-bit addresses, enough for any RAM or device.
        Self { map: IdMap::new(0, El2) }
    }

    /// Maps `range` (rounded out to pages); later calls override earlier
    /// ones where they overlap.
    pub fn map(&mut self, range: PhysRange, kind: Kind) -> Result<(), MapFailed> {
        let pages = range.expand_to_alignment(4096).ok_or(MapFailed(range))?;
        let region = MemoryRegion::new(pages.start as usize, pages.end as usize);
        self.map.map_range(&region, kind.attributes()).map_err(|_| MapFailed(range))
    }

    /// Turns the MMU and caches on with these tables; they must map the
    /// code, stack and data in use. The tables then live forever.
    pub fn activate(self) -> &'static mut IdMap<El2> {
        MAIR_EL2.write(
            MAIR_EL2::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck
                + MAIR_EL2::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
                + MAIR_EL2::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc,
        );
        // Output size: what the CPU supports, capped at the 48 bits a
        // 4 KiB-granule level-0 table covers.
        let pa_range = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(0b101);
        TCR_EL2.write(
            TCR_EL2::T0SZ.val(16)
                + TCR_EL2::TG0::KiB_4
                + TCR_EL2::SH0::Inner
                + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
                + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
                + TCR_EL2::PS.val(pa_range),
        );
        const TCR_EL2_RES1: u64 = (1 << 31) | (1 << 23);
        TCR_EL2.set(TCR_EL2.get() | TCR_EL2_RES1);
        let map = alloc::boxed::Box::leak(alloc::boxed::Box::new(self.map));
        TTBR0_EL2.set(map.root_address().0 as u64);
        map.mark_active();
        barrier::tlb_invalidate_el2();
        b::isb(b::SY);
        // RES1 bits of SCTLR_EL2 without VHE, then MMU, caches, alignment
        // check of SP, write-implies-XN.
        const SCTLR_EL2_RES1: u64 = 0x30c5_0830;
        SCTLR_EL2.set(SCTLR_EL2_RES1);
        SCTLR_EL2.modify(
            SCTLR_EL2::M::Enable
                + SCTLR_EL2::C::Cacheable
                + SCTLR_EL2::I::Cacheable
                + SCTLR_EL2::SA::Enable
                + SCTLR_EL2::WXN::Enable,
        );
        b::isb(b::SY);
        save_for_secondaries();
        map
    }
}

/// The EL2 translation registers as the boot CPU set them, for
/// `boot/head.S` to load on other CPUs before they touch memory: a CPU
/// coming up runs with its MMU off, and cacheable data it shared with the
/// boot CPU would be incoherent until its own MMU is on.
#[repr(C)]
pub struct SecondaryMmu {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    sctlr: u64,
}

#[unsafe(no_mangle)]
static mut SECONDARY_MMU: SecondaryMmu = SecondaryMmu { mair: 0, tcr: 0, ttbr0: 0, sctlr: 0 };

fn save_for_secondaries() {
    let values =
        SecondaryMmu { mair: MAIR_EL2.get(), tcr: TCR_EL2.get(), ttbr0: TTBR0_EL2.get(), sctlr: SCTLR_EL2.get() };
    let at = core::ptr::addr_of_mut!(SECONDARY_MMU);
    // SAFETY: written once, on the boot CPU, before any other CPU starts;
    // read only by secondaries' first instructions.
    unsafe { at.write_volatile(values) };
    barrier::dcache_clean(at as u64, core::mem::size_of::<SecondaryMmu>() as u64);
}
