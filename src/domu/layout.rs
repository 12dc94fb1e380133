//! A DomU's guest-physical layout: Xen's, so a kernel built for a Xen
//! DomU finds everything where it looks. The values are Xen 4.17's
//! `xen/include/public/arch-arm.h` (GUEST_RAM0_BASE and the rest).

use crate::dom0::ext_regions::{self, Regions};
use crate::mm::range::{Guest, GuestRange};
use alloc::vec::Vec;

/// GUEST_RAM0: 3 GiB of low RAM at 1 GiB.
pub const RAM0: GuestRange = GuestRange::new(0x4000_0000, 0x4000_0000 + 0xc000_0000);
/// GUEST_RAM1: the rest, 1016 GiB at 8 GiB.
pub const RAM1: GuestRange = GuestRange::new(0x2_0000_0000, 0x2_0000_0000 + 0xfe_0000_0000);
/// GUEST_GNTTAB_BASE/SIZE: 16 MiB where the guest maps its grant table.
pub const GRANT_TABLE: GuestRange = GuestRange::new(0x3800_0000, 0x3900_0000);
/// GUEST_GICV3_GICD_BASE/SIZE.
pub const GICV3_GICD: GuestRange = GuestRange::new(0x0300_1000, 0x0301_1000);
/// GUEST_GICV3_GICR0_BASE: 128 KiB of redistributor per vCPU.
pub const GICV3_GICR0_BASE: u64 = 0x0302_0000;
pub const GICV3_GICR_STRIDE: u64 = 0x2_0000;
/// GUEST_GICD_BASE/SIZE and GUEST_GICC_BASE/SIZE: a GICv2 host's DomU
/// sees a 4 KiB distributor and, as its CPU interface, the host's virtual
/// CPU interface (GICV) mapped here.
pub const GICV2_GICD: GuestRange = GuestRange::new(0x0300_1000, 0x0300_2000);
pub const GICV2_GICC: GuestRange = GuestRange::new(0x0300_2000, 0x0300_4000);
/// GUEST_PL011_BASE/SIZE and GUEST_VPL011_SPI: the vPL011 (`console::vpl011`).
pub const PL011: GuestRange = GuestRange::new(0x2200_0000, 0x2200_1000);
pub const VPL011_SPI: u32 = 32;
/// GUEST_TIMER_VIRT_PPI, GUEST_TIMER_PHYS_S_PPI, GUEST_TIMER_PHYS_NS_PPI
/// (INTIDs; the tree's PPI numbers are 16 less), and GUEST_EVTCHN_PPI.
pub const TIMER_VIRT_PPI: u32 = crate::gic::emulated::VIRTUAL_TIMER;
pub const TIMER_PHYS_S_PPI: u32 = 29;
pub const TIMER_PHYS_NS_PPI: u32 = 30;
pub const EVTCHN_PPI: u32 = crate::gic::emulated::EVENT_CHANNEL;

/// The guest RAM banks for `bytes` of memory: RAM0 first, the rest in RAM1.
/// `None` past what Xen's layout holds.
pub fn ram_banks(bytes: u64) -> Option<Vec<GuestRange>> {
    if bytes > RAM0.size() + RAM1.size() {
        return None;
    }
    let low = bytes.min(RAM0.size());
    let mut banks = alloc::vec![GuestRange::new(RAM0.start, RAM0.start + low)];
    if bytes > low {
        banks.push(GuestRange::new(RAM1.start, RAM1.start + (bytes - low)));
    }
    Some(banks)
}

/// The redistributor frames of `vcpus` vCPUs in the guest GICv3 layout.
pub fn gicr(vcpus: usize) -> GuestRange {
    GuestRange::new(GICV3_GICR0_BASE, GICV3_GICR0_BASE + vcpus as u64 * GICV3_GICR_STRIDE)
}

/// Every device range of the guest layout, for either GIC version, with
/// the redistributors of `vcpus` vCPUs: what no extended region may cover.
pub fn devices(vcpus: usize) -> [GuestRange; 6] {
    [GRANT_TABLE, GICV3_GICD, gicr(vcpus), GICV2_GICD, GICV2_GICC, PL011]
}

/// A DomU's extended regions (`xen,enhanced`): the holes its RAM `banks`
/// leave in Xen's guest RAM windows (RAM0, RAM1), minus the layout's
/// devices, below `ipa_limit`, found by Dom0's search with its rules (2 MiB
/// aligned, at least 64 MiB, at most 128, ascending). Xen 4.17's
/// `find_domU_holes` gives the same: per window, from the end of its bank
/// rounded up to 2 MiB to the window's end or the IPA limit, if 64 MiB or
/// more (its devices all lie below RAM0; the search keeps them out anyway).
pub fn extended_regions(banks: &[GuestRange], vcpus: usize, ipa_limit: u64) -> Regions<Guest> {
    let mut taken: Vec<GuestRange> = banks.to_vec();
    taken.extend(devices(vcpus));
    ext_regions::find([RAM0, RAM1], &taken, ipa_limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    fn g(start: u64, end: u64) -> GuestRange {
        GuestRange::new(start, end)
    }

    /// What Xen 4.17 gave DomUs on QEMU (cortex-a57, 44-bit IPA), measured
    /// from the DomU's `/hypervisor` node.
    #[test]
    fn xen_4_17_measured_regions() {
        let limit = 1 << 44;
        let high = g(0x2_0000_0000, 0x100_0000_0000);
        let of = |mib: u64| extended_regions(&ram_banks(mib * MIB).unwrap(), 1, limit).regions;
        assert_eq!(of(256), alloc::vec![g(0x5000_0000, 0x1_0000_0000), high]);
        assert_eq!(of(64), alloc::vec![g(0x4400_0000, 0x1_0000_0000), high]);
    }

    #[test]
    fn full_windows_and_small_ipa_spaces() {
        // RAM0 full: only RAM1's hole; RAM1 partly used: from its end.
        let banks = ram_banks(4 << 30).unwrap();
        assert_eq!(extended_regions(&banks, 4, 1 << 44).regions, alloc::vec![g(0x2_4000_0000, 0x100_0000_0000)]);
        // A 32-bit IPA space ends at 4 GiB: RAM1 is beyond it.
        let banks = ram_banks(128 * MIB).unwrap();
        assert_eq!(extended_regions(&banks, 1, 1 << 32).regions, alloc::vec![g(0x4800_0000, 0x1_0000_0000)]);
        // 36 bits: RAM1's hole is cut at 64 GiB.
        assert_eq!(extended_regions(&banks, 1, 1 << 36).regions[1], g(0x2_0000_0000, 0x10_0000_0000));
        // Less than 64 MiB left in RAM0: none there.
        let banks = ram_banks(RAM0.size() - 62 * MIB).unwrap();
        assert_eq!(extended_regions(&banks, 1, 1 << 40).regions, alloc::vec![g(0x2_0000_0000, 0x100_0000_0000)]);
        // All of both windows: nothing.
        let banks = ram_banks(RAM0.size() + RAM1.size()).unwrap();
        assert!(extended_regions(&banks, 1, 1 << 44).regions.is_empty());
    }

    /// Xen 4.17's `find_domU_holes`, restated: per window, from its bank's
    /// end rounded up to 2 MiB to the window's end or the IPA limit, kept
    /// if at least 64 MiB.
    fn xen_find_domu_holes(banks: &[GuestRange], ipa_bits: u32) -> Vec<GuestRange> {
        let mut out = Vec::new();
        for (i, window) in [RAM0, RAM1].iter().enumerate() {
            let used = banks.get(i).map_or(0, GuestRange::size);
            let start = (window.start + used).next_multiple_of(2 * MIB);
            let end = window.end.min(1u64 << ipa_bits);
            if end > start && end - start >= 64 * MIB {
                out.push(g(start, end));
            }
        }
        out
    }

    proptest! {
        /// Any RAM size (in 4 KiB pages, as `memory` is in KiB), any vCPU
        /// count, any IPA width from 32 to 48 bits: Xen's answer, clear of
        /// the RAM and every device, inside the windows.
        #[test]
        fn the_regions_are_xens(pages in 1u64..=(RAM0.size() + RAM1.size()) / 4096, vcpus in 1usize..=128, ipa_bits in 32u32..=48) {
            let banks = ram_banks(pages * 4096).unwrap();
            let found = extended_regions(&banks, vcpus, 1 << ipa_bits);
            prop_assert_eq!(&found.regions, &xen_find_domu_holes(&banks, ipa_bits));
            for region in &found.regions {
                prop_assert!(RAM0.contains_range(region) || RAM1.contains_range(region));
                prop_assert!(!banks.iter().chain(devices(vcpus).iter()).any(|t| t.overlaps(region)), "{region}");
            }
        }

        /// Small sizes too, where the bank end is not 2 MiB aligned.
        #[test]
        fn small_domus(kib in 1u64..=(512 << 10)) {
            let banks = ram_banks(kib << 10).unwrap();
            prop_assert_eq!(extended_regions(&banks, 1, 1 << 40).regions, xen_find_domu_holes(&banks, 40));
        }
    }

    #[test]
    fn ram_fills_the_low_bank_first() {
        assert_eq!(ram_banks(128 << 20), Some(alloc::vec![GuestRange::new(0x4000_0000, 0x4800_0000)]));
        assert_eq!(ram_banks(3 << 30), Some(alloc::vec![RAM0]));
        assert_eq!(ram_banks(4 << 30), Some(alloc::vec![RAM0, GuestRange::new(0x2_0000_0000, 0x2_4000_0000)]));
        assert_eq!(ram_banks(RAM0.size() + RAM1.size() + 1), None);
    }

    #[test]
    fn nothing_overlaps_ram() {
        for device in [GRANT_TABLE, GICV3_GICD, gicr(128), PL011, GICV2_GICD, GICV2_GICC] {
            assert!(!device.overlaps(&RAM0) && !device.overlaps(&RAM1), "{device}");
        }
        assert!(!gicr(128).overlaps(&GICV3_GICD) && !gicr(128).overlaps(&PL011));
        assert!(!GICV2_GICD.overlaps(&GICV2_GICC) && !gicr(128).overlaps(&GICV2_GICC));
    }
}
