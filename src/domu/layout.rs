//! A DomU's guest-physical layout: Xen's, so a kernel built for a Xen
//! DomU finds everything where it looks. The values are Xen 4.17's
//! `xen/include/public/arch-arm.h` (GUEST_RAM0_BASE and the rest).

use crate::mm::range::GuestRange;
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

#[cfg(test)]
mod tests {
    use super::*;

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
