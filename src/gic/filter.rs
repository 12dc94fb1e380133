//! The filter between Dom0 and the physical distributor and redistributors.
//! Dom0 drives the real GIC (its devices are its own, 1:1), but must not
//! touch the interrupts the hypervisor keeps for itself (its UART, the
//! maintenance interrupt, the SGI it kicks other CPUs with): Linux's GIC
//! driver disables every interrupt at boot. Each trapped access is turned
//! into an access the hardware may see; the bits and fields of the
//! hypervisor's interrupts are hidden on reads and preserved on writes.
//! LPIs are hidden too: the ITS is not given to Dom0 (as in Xen 4.17), and
//! LPIs cannot be forwarded through list registers with HW=1.
//!
//! A GICv2 has a distributor only (its CPU interface is the hardware's
//! virtual one, mapped where Dom0's tree says the CPU interface is): the
//! same per-interrupt families, the SGI pending registers besides, no
//! routing registers, groups left as the firmware set them, and SGIs sent
//! by writing GICD_SGIR, which the caller forwards ([`Write::Sgi`]).

use super::IntidSet;
use super::registers::{family, gicd, gicd_v2, gicr};

/// Which GIC architecture the filter stands before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    V2,
    V3,
}

/// Which 64 KiB frame an access landed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    Distributor,
    /// A redistributor's RD (control) frame.
    RedistributorControl,
    /// A redistributor's SGI frame: the private interrupts' registers.
    RedistributorSgi,
    /// Anything else in a redistributor region (GICv4's VLPI frames).
    RedistributorOther,
}

/// What to do on the hardware for a guest write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Write this value.
    Forward(u64),
    /// Read the register, keep the bits in `keep`, take the rest from
    /// `value`, write the result.
    Merge { keep: u64, value: u64 },
    /// Ignore the write.
    Drop,
    /// A GICv2 software-generated interrupt (a GICD_SGIR value, not one of
    /// the hypervisor's SGIs): the caller translates its target list to
    /// physical CPU interfaces and writes GICD_SGIR.
    Sgi(u32),
    /// A GICv3 routing register (GICD_IROUTER, 64 bits): read it, take the
    /// bits in `mask` from `value` (both in the register's positions: a
    /// word access is half of it), and write the result once the caller
    /// has kept it on Dom0's CPUs (`gic::partition::Dom0Cpus::route`).
    Route { value: u64, mask: u64 },
}

/// How a register family treats the bits of the hypervisor's interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Semantics {
    /// Write-1-to-set/clear: a 0 bit changes nothing, so clearing the
    /// hypervisor's bits from the value leaves them alone.
    SetClear,
    /// A plain field per interrupt: the hypervisor's fields are merged back.
    Field,
    /// Interrupt groups: everything is non-secure group 1, whatever Dom0
    /// writes (group 0 would arrive as FIQs, which nobody handles).
    ForceGroup1,
    /// Group modifiers: always 0 for the same reason.
    ForceZero,
    /// Read as zero, writes ignored: GICv2's groups (and their secure
    /// access control), left as the firmware set them; Linux's GICv2
    /// driver uses whatever group its CPU interface signals as IRQs.
    Hidden,
}

struct Family {
    base: u64,
    /// Bytes of register space.
    size: u64,
    bits_per_intid: u64,
    semantics: Semantics,
}

const FAMILIES: [Family; 12] = [
    Family { base: family::IGROUPR, size: 0x80, bits_per_intid: 1, semantics: Semantics::ForceGroup1 },
    Family { base: family::ISENABLER, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::ICENABLER, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::ISPENDR, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::ICPENDR, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::ISACTIVER, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::ICACTIVER, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::IPRIORITYR, size: 0x400, bits_per_intid: 8, semantics: Semantics::Field },
    Family { base: family::ITARGETSR, size: 0x400, bits_per_intid: 8, semantics: Semantics::Field },
    Family { base: family::ICFGR, size: 0x100, bits_per_intid: 2, semantics: Semantics::Field },
    Family { base: family::IGRPMODR, size: 0x80, bits_per_intid: 1, semantics: Semantics::ForceZero },
    Family { base: family::NSACR, size: 0x100, bits_per_intid: 2, semantics: Semantics::Field },
];

/// GICv2's families (IHI 0048B, 4.1.2): no group modifiers; the SGI
/// pending registers hold a byte of source CPUs per SGI.
const FAMILIES_V2: [Family; 13] = [
    Family { base: family::IGROUPR, size: 0x80, bits_per_intid: 1, semantics: Semantics::Hidden },
    Family { base: family::ISENABLER, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::ICENABLER, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::ISPENDR, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::ICPENDR, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::ISACTIVER, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::ICACTIVER, size: 0x80, bits_per_intid: 1, semantics: Semantics::SetClear },
    Family { base: family::IPRIORITYR, size: 0x400, bits_per_intid: 8, semantics: Semantics::Field },
    Family { base: family::ITARGETSR, size: 0x400, bits_per_intid: 8, semantics: Semantics::Field },
    Family { base: family::ICFGR, size: 0x100, bits_per_intid: 2, semantics: Semantics::Field },
    Family { base: family::NSACR, size: 0x100, bits_per_intid: 2, semantics: Semantics::Hidden },
    Family { base: gicd_v2::CPENDSGIR, size: 0x10, bits_per_intid: 8, semantics: Semantics::SetClear },
    Family { base: gicd_v2::SPENDSGIR, size: 0x10, bits_per_intid: 8, semantics: Semantics::SetClear },
];

fn width_mask(width: u8) -> u64 {
    if width >= 8 { u64::MAX } else { (1u64 << (u32::from(width) * 8)) - 1 }
}

pub struct Filter {
    owned: IntidSet,
    architecture: Architecture,
}

impl Filter {
    /// A GICv3 filter hiding `owned`, the hypervisor's interrupts.
    pub fn new(owned: IntidSet) -> Self {
        Self { owned, architecture: Architecture::V3 }
    }

    /// A GICv2 filter hiding `owned`.
    pub fn new_v2(owned: IntidSet) -> Self {
        Self { owned, architecture: Architecture::V2 }
    }

    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    pub fn owned(&self) -> &IntidSet {
        &self.owned
    }

    /// Whether an access of `width` bytes at `offset` is one the GIC
    /// architecture defines (IHI 0069, 12.1.3): naturally aligned words
    /// anywhere; bytes to the priority and target fields; doublewords to
    /// the routing registers and the redistributor's 64-bit registers.
    /// Anything else reads as zero and writes nothing, as the GIC itself
    /// may answer it, so it never reaches the hardware. A GICv2 (IHI 0048B,
    /// 4.1.4) has words, and bytes to the priority, target and SGI pending
    /// fields, in its distributor.
    pub fn is_valid(&self, frame: Frame, offset: u64, width: u8) -> bool {
        if !matches!(width, 1 | 4 | 8) || !offset.is_multiple_of(u64::from(width)) {
            return false;
        }
        let in_family = |base: u64, size: u64| (base..base + size).contains(&offset);
        if self.architecture == Architecture::V2 {
            return frame == Frame::Distributor
                && match width {
                    4 => true,
                    1 => {
                        in_family(family::IPRIORITYR, 0x400)
                            || in_family(family::ITARGETSR, 0x400)
                            || in_family(gicd_v2::CPENDSGIR, 0x20)
                    }
                    _ => false,
                };
        }
        match width {
            4 => true,
            1 => {
                matches!(frame, Frame::Distributor | Frame::RedistributorSgi)
                    && (in_family(family::IPRIORITYR, 0x400) || in_family(family::ITARGETSR, 0x400))
            }
            _ => match frame {
                Frame::Distributor => self.routed_intid(frame, offset).is_some(),
                Frame::RedistributorControl => {
                    matches!(offset, gicr::TYPER | gicr::SETLPIR | gicr::CLRLPIR | gicr::PROPBASER | gicr::PENDBASER)
                }
                _ => false,
            },
        }
    }

    /// The bits of an access of `width` bytes at `offset` into a family's
    /// register space that belong to the hypervisor's interrupts.
    fn owned_bits(&self, family: &Family, offset: u64, width: u8) -> u64 {
        let mut mask = 0u64;
        let first_bit = (offset - family.base) * 8;
        for bit in (0..u64::from(width) * 8).step_by(family.bits_per_intid as usize) {
            let intid = (first_bit + bit) / family.bits_per_intid;
            if intid < u64::from(super::FIRST_SPECIAL) && self.owned.contains(intid as u32) {
                mask |= ((1u64 << family.bits_per_intid) - 1) << bit;
            }
        }
        mask
    }

    fn family(&self, frame: Frame, offset: u64) -> Option<&'static Family> {
        if !matches!(frame, Frame::Distributor | Frame::RedistributorSgi) {
            return None;
        }
        let families: &'static [Family] = match self.architecture {
            Architecture::V3 => &FAMILIES,
            Architecture::V2 => &FAMILIES_V2,
        };
        families.iter().find(|f| offset >= f.base && offset < f.base + f.size)
    }

    /// The INTID whose routing register an access at `offset` of the
    /// distributor touches (GICv3's only).
    fn routed_intid(&self, frame: Frame, offset: u64) -> Option<u32> {
        (self.architecture == Architecture::V3
            && frame == Frame::Distributor
            && (gicd::IROUTER..gicd::IROUTER_END).contains(&offset))
        .then(|| ((offset - gicd::IROUTER) / 8) as u32)
    }

    /// What Dom0 reads, given what the hardware returned for its access.
    pub fn read(&self, frame: Frame, offset: u64, width: u8, hardware: u64) -> u64 {
        if !self.is_valid(frame, offset, width) {
            return 0;
        }
        let value = hardware & width_mask(width);
        if let Some(family) = self.family(frame, offset) {
            if family.semantics == Semantics::Hidden {
                return 0;
            }
            return value & !self.owned_bits(family, offset, width);
        }
        if let Some(intid) = self.routed_intid(frame, offset) {
            return if self.owned.contains(intid) { 0 } else { value };
        }
        if self.architecture == Architecture::V2 {
            // GICD_SGIR is write-only.
            return if offset == gicd_v2::SGIR { 0 } else { value };
        }
        match (frame, offset) {
            (Frame::Distributor, gicd::TYPER) => value & !gicd::TYPER_LPIS,
            (Frame::RedistributorControl, gicr::TYPER) => value & !gicr::TYPER_PLPIS,
            _ => value,
        }
    }

    /// What the hardware gets for Dom0 writing `value`.
    pub fn write(&self, frame: Frame, offset: u64, width: u8, value: u64) -> Write {
        if !self.is_valid(frame, offset, width) {
            return Write::Drop;
        }
        let value = value & width_mask(width);
        if let Some(family) = self.family(frame, offset) {
            let owned = self.owned_bits(family, offset, width);
            return match family.semantics {
                Semantics::SetClear => Write::Forward(value & !owned),
                Semantics::ForceGroup1 => Write::Forward(width_mask(width)),
                Semantics::ForceZero => Write::Forward(0),
                Semantics::Hidden => Write::Drop,
                Semantics::Field if owned == 0 => Write::Forward(value),
                Semantics::Field if owned == width_mask(width) => Write::Drop,
                Semantics::Field => Write::Merge { keep: owned, value: value & !owned },
            };
        }
        if let Some(intid) = self.routed_intid(frame, offset) {
            if self.owned.contains(intid) {
                return Write::Drop;
            }
            let shift = (offset % 8) * 8;
            return Write::Route { value: value << shift, mask: width_mask(width) << shift };
        }
        if self.architecture == Architecture::V2 {
            return match offset {
                // The distributor stays on (the Enable bit, or EnableGrp1
                // in a secure GIC's non-secure view): the hypervisor's own
                // interrupts depend on it.
                gicd::CTLR => Write::Forward(value | u64::from(gicd_v2::CTLR_ENABLE)),
                gicd_v2::SGIR if self.owned.contains(value as u32 & gicd_v2::SGIR_INTID) => Write::Drop,
                gicd_v2::SGIR => Write::Sgi(value as u32),
                _ => Write::Forward(value),
            };
        }
        match (frame, offset) {
            // Affinity routing and group 1 stay on: the hypervisor's own
            // interrupts (its console among them) depend on them. Linux
            // turns the distributor off while it sets it up.
            (Frame::Distributor, gicd::CTLR) => {
                Write::Forward(value | u64::from(gicd::CTLR_ARE | gicd::CTLR_ENABLE_G1))
            }
            (Frame::Distributor, gicd::SETSPI_NSR | gicd::CLRSPI_NSR) if self.owned.contains(value as u32 & 0x3ff) => {
                Write::Drop
            }
            // Secure-only registers, and LPIs, which Dom0 does not have.
            (Frame::Distributor, gicd::SETSPI_SR | gicd::CLRSPI_SR) => Write::Drop,
            (Frame::RedistributorControl, gicr::SETLPIR | gicr::CLRLPIR | gicr::PROPBASER | gicr::PENDBASER) => {
                Write::Drop
            }
            (Frame::RedistributorControl, gicr::CTLR) => Write::Forward(value & !gicr::CTLR_ENABLE_LPIS),
            // A redistributor put to sleep would stop the hypervisor's own
            // interrupts at that CPU; it stays awake.
            (Frame::RedistributorControl, gicr::WAKER) => {
                Write::Forward(value & !u64::from(gicr::WAKER_PROCESSOR_SLEEP))
            }
            _ => Write::Forward(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The UART (SPI 33), the maintenance PPI (25), the kick SGI (15).
    fn filter() -> Filter {
        let mut owned = IntidSet::new();
        for i in [15, 25, 33] {
            owned.insert(i);
        }
        Filter::new(owned)
    }

    #[test]
    fn linux_disabling_everything_spares_the_hypervisor() {
        let f = filter();
        // gic_dist_init: ICENABLER for SPIs 32-63.
        assert_eq!(f.write(Frame::Distributor, family::ICENABLER + 4, 4, 0xffff_ffff), Write::Forward(0xffff_fffd));
        // gic_cpu_init: all PPIs disabled, SGIs enabled, at the redistributor.
        assert_eq!(f.write(Frame::RedistributorSgi, family::ICENABLER, 4, 0xffff_0000), Write::Forward(0xfdff_0000));
        assert_eq!(f.write(Frame::RedistributorSgi, family::ISENABLER, 4, 0x0000_ffff), Write::Forward(0x0000_7fff));
        // Other SPIs are untouched.
        assert_eq!(f.write(Frame::Distributor, family::ICENABLER + 8, 4, 0xffff_ffff), Write::Forward(0xffff_ffff));
    }

    #[test]
    fn priorities_and_configuration_keep_the_hypervisors_fields() {
        let f = filter();
        // IPRIORITYR for INTIDs 32-35: byte 1 is SPI 33.
        assert_eq!(
            f.write(Frame::Distributor, family::IPRIORITYR + 32, 4, 0xa0a0_a0a0),
            Write::Merge { keep: 0x0000_ff00, value: 0xa0a0_00a0 }
        );
        // A byte access to SPI 33's priority alone is dropped; SPI 34's passes.
        assert_eq!(f.write(Frame::Distributor, family::IPRIORITYR + 33, 1, 0xa0), Write::Drop);
        assert_eq!(f.write(Frame::Distributor, family::IPRIORITYR + 34, 1, 0xa0), Write::Forward(0xa0));
        // ICFGR2 covers INTIDs 32-47, two bits each: SPI 33 is bits 3:2.
        assert_eq!(f.write(Frame::Distributor, family::ICFGR + 8, 4, 0), Write::Merge { keep: 0b1100, value: 0 });
        // Reads hide the fields.
        assert_eq!(f.read(Frame::Distributor, family::IPRIORITYR + 32, 4, 0x8080_8080), 0x8080_0080);
    }

    #[test]
    fn routing_of_the_hypervisors_spi_is_hidden() {
        let f = filter();
        let spi33 = gicd::IROUTER + 33 * 8;
        assert_eq!(f.write(Frame::Distributor, spi33, 8, 1), Write::Drop);
        assert_eq!(f.read(Frame::Distributor, spi33, 8, 0x100), 0);
        assert_eq!(f.write(Frame::Distributor, spi33 + 8, 8, 1), Write::Route { value: 1, mask: u64::MAX });
        // A word is half the register.
        assert_eq!(
            f.write(Frame::Distributor, spi33 + 12, 4, 1),
            Write::Route { value: 1 << 32, mask: 0xffff_ffff_0000_0000 }
        );
    }

    #[test]
    fn groups_are_forced_and_lpis_hidden() {
        let f = filter();
        assert_eq!(f.write(Frame::Distributor, family::IGROUPR + 4, 4, 0), Write::Forward(0xffff_ffff));
        assert_eq!(f.write(Frame::RedistributorSgi, family::IGRPMODR, 4, 0xffff_ffff), Write::Forward(0));
        assert_eq!(f.read(Frame::Distributor, gicd::TYPER, 4, 0x0037_ffff), 0x0035_ffff);
        assert_eq!(f.read(Frame::RedistributorControl, gicr::TYPER, 8, 0x0000_0001_0000_0011), 0x0000_0001_0000_0010);
        assert_eq!(f.write(Frame::RedistributorControl, gicr::CTLR, 4, 1), Write::Forward(0));
        assert_eq!(f.write(Frame::Distributor, gicd::CTLR, 4, 0), Write::Forward(0x12));
        assert_eq!(f.write(Frame::RedistributorControl, gicr::SETLPIR, 8, 8192), Write::Drop);
        assert_eq!(f.write(Frame::RedistributorControl, gicr::PROPBASER, 8, 0x4000_0000), Write::Drop);
    }

    #[test]
    fn dom0_cannot_silence_the_hypervisors_interrupts() {
        let f = filter();
        // Group 1 stays enabled, the redistributor awake.
        assert_eq!(f.write(Frame::Distributor, gicd::CTLR, 4, 0x13), Write::Forward(0x13));
        assert_eq!(f.write(Frame::RedistributorControl, gicr::WAKER, 4, 0b110), Write::Forward(0b100));
        // The UART's SPI cannot be pended or cleared by number; others can.
        for register in [gicd::SETSPI_NSR, gicd::CLRSPI_NSR] {
            assert_eq!(f.write(Frame::Distributor, register, 4, 33), Write::Drop);
            assert_eq!(f.write(Frame::Distributor, register, 4, 33 | 0x400), Write::Drop, "upper bits ignored");
            assert_eq!(f.write(Frame::Distributor, register, 4, 34), Write::Forward(34));
        }
        assert_eq!(f.write(Frame::Distributor, gicd::SETSPI_SR, 4, 34), Write::Drop);
    }

    #[test]
    fn only_the_architected_widths_reach_the_hardware() {
        for (frame, offset, width, valid) in [
            (Frame::Distributor, family::ISENABLER, 4, true),
            (Frame::Distributor, family::ISENABLER, 1, false),
            (Frame::Distributor, family::ISENABLER, 2, false),
            (Frame::Distributor, family::ISENABLER, 8, false),
            (Frame::Distributor, family::IPRIORITYR + 33, 1, true),
            (Frame::RedistributorSgi, family::IPRIORITYR + 3, 1, true),
            (Frame::Distributor, family::IPRIORITYR + 32, 2, false),
            (Frame::Distributor, gicd::IROUTER + 33 * 8, 8, true),
            (Frame::Distributor, gicd::IROUTER + 33 * 8 + 4, 4, true),
            (Frame::Distributor, gicd::CTLR, 8, false),
            (Frame::RedistributorControl, gicr::TYPER, 8, true),
            (Frame::RedistributorControl, gicr::CTLR, 8, false),
            (Frame::RedistributorControl, gicr::TYPER + 4, 4, true),
        ] {
            assert_eq!(filter().is_valid(frame, offset, width), valid, "{frame:?} {offset:#x} width {width}");
            if !valid {
                assert_eq!(filter().write(frame, offset, width, u64::MAX), Write::Drop);
                assert_eq!(filter().read(frame, offset, width, u64::MAX), 0);
            }
        }
    }

    #[test]
    fn misaligned_and_odd_widths_do_nothing() {
        let f = filter();
        assert_eq!(f.write(Frame::Distributor, family::ISENABLER + 1, 4, 1), Write::Drop);
        assert_eq!(f.write(Frame::Distributor, family::ISENABLER, 3, 1), Write::Drop);
        assert_eq!(f.read(Frame::Distributor, family::ISENABLER + 2, 4, 0xffff_ffff), 0);
    }

    /// The GICv2 counterpart: the UART (SPI 33), the maintenance PPI (25),
    /// the kick SGI (15).
    fn filter_v2() -> Filter {
        let mut owned = IntidSet::new();
        for i in [15, 25, 33] {
            owned.insert(i);
        }
        Filter::new_v2(owned)
    }

    #[test]
    fn gicv2_linux_disabling_everything_spares_the_hypervisor() {
        let f = filter_v2();
        // gic_dist_init: the distributor off, every SPI disabled.
        assert_eq!(f.write(Frame::Distributor, gicd::CTLR, 4, 0), Write::Forward(1));
        assert_eq!(f.write(Frame::Distributor, family::ICENABLER + 4, 4, 0xffff_ffff), Write::Forward(0xffff_fffd));
        // gic_cpu_init (banked): PPIs off, SGIs on.
        assert_eq!(f.write(Frame::Distributor, family::ICENABLER, 4, 0xffff_0000), Write::Forward(0xfdff_0000));
        assert_eq!(f.write(Frame::Distributor, family::ISENABLER, 4, 0x0000_ffff), Write::Forward(0x0000_7fff));
        assert_eq!(f.write(Frame::Distributor, family::ICACTIVER + 4, 4, 0xffff_ffff), Write::Forward(0xffff_fffd));
    }

    #[test]
    fn gicv2_targets_priorities_and_configuration_keep_the_hypervisors_fields() {
        let f = filter_v2();
        // gic_dist_init routes every SPI to the boot CPU: ITARGETSR8 holds SPIs 32-35.
        assert_eq!(
            f.write(Frame::Distributor, family::ITARGETSR + 32, 4, 0x0101_0101),
            Write::Merge { keep: 0x0000_ff00, value: 0x0101_0001 }
        );
        // irq_set_affinity writes one byte: SPI 33's is the hypervisor's.
        assert_eq!(f.write(Frame::Distributor, family::ITARGETSR + 33, 1, 2), Write::Drop);
        assert_eq!(f.write(Frame::Distributor, family::ITARGETSR + 34, 1, 2), Write::Forward(2));
        assert_eq!(f.read(Frame::Distributor, family::ITARGETSR + 32, 4, 0x0101_0101), 0x0101_0001);
        assert_eq!(
            f.write(Frame::Distributor, family::IPRIORITYR + 32, 4, 0xa0a0_a0a0),
            Write::Merge { keep: 0x0000_ff00, value: 0xa0a0_00a0 }
        );
        assert_eq!(f.write(Frame::Distributor, family::ICFGR + 8, 4, 0), Write::Merge { keep: 0b1100, value: 0 });
        // The maintenance PPI's priority byte (IPRIORITYR6, byte 1) is kept.
        assert_eq!(f.read(Frame::Distributor, family::IPRIORITYR + 24, 4, 0x8080_8080), 0x8080_0080);
    }

    #[test]
    fn gicv2_groups_are_left_alone_and_sgis_forwarded_but_the_kick() {
        let f = filter_v2();
        assert_eq!(f.write(Frame::Distributor, family::IGROUPR, 4, 0xffff_ffff), Write::Drop);
        assert_eq!(f.read(Frame::Distributor, family::IGROUPR + 4, 4, 0xffff_ffff), 0);
        assert_eq!(f.write(Frame::Distributor, family::NSACR, 4, 0xffff_ffff), Write::Drop);
        // GICD_SGIR: SGI 3 to CPU interfaces 0 and 1; the kick SGI dropped.
        assert_eq!(f.write(Frame::Distributor, gicd_v2::SGIR, 4, 0x0003_0003), Write::Sgi(0x0003_0003));
        assert_eq!(f.write(Frame::Distributor, gicd_v2::SGIR, 4, 0x0003_000f), Write::Drop);
        assert_eq!(f.write(Frame::Distributor, gicd_v2::SGIR, 4, 0x0100_800f), Write::Drop, "NSATT set, still SGI 15");
        assert_eq!(f.read(Frame::Distributor, gicd_v2::SGIR, 4, 0x1234), 0, "write-only");
        // SGI 15's pending byte (the top byte of CPENDSGIR3/SPENDSGIR3) is kept.
        assert_eq!(f.write(Frame::Distributor, gicd_v2::CPENDSGIR + 12, 4, 0xffff_ffff), Write::Forward(0x00ff_ffff));
        assert_eq!(f.write(Frame::Distributor, gicd_v2::SPENDSGIR + 15, 1, 1), Write::Forward(0));
        assert_eq!(f.write(Frame::Distributor, gicd_v2::SPENDSGIR + 3, 1, 1), Write::Forward(1));
        assert_eq!(f.read(Frame::Distributor, gicd_v2::SPENDSGIR + 12, 4, 0x0101_0101), 0x0001_0101);
        // No routing registers, no LPIs to hide: GICv3's offsets are plain words.
        assert_eq!(f.write(Frame::Distributor, gicd::IROUTER + 33 * 8, 4, 1), Write::Forward(1));
        assert_eq!(f.read(Frame::Distributor, gicd::TYPER, 4, 0x0002_fc07), 0x0002_fc07);
    }

    #[test]
    fn gicv2_only_the_architected_widths_reach_the_hardware() {
        let f = filter_v2();
        for (offset, width, valid) in [
            (family::ISENABLER, 4, true),
            (family::ISENABLER, 1, false),
            (family::ISENABLER, 2, false),
            (family::IPRIORITYR + 33, 1, true),
            (family::IPRIORITYR + 32, 2, false),
            (family::ITARGETSR + 35, 1, true),
            (gicd_v2::CPENDSGIR + 1, 1, true),
            (gicd_v2::SPENDSGIR + 15, 1, true),
            (gicd_v2::SGIR, 1, false),
            (gicd::CTLR, 8, false),
            (gicd::IROUTER + 33 * 8, 8, false),
            (family::ISENABLER + 2, 4, false),
        ] {
            assert_eq!(f.is_valid(Frame::Distributor, offset, width), valid, "{offset:#x} width {width}");
            if !valid {
                assert_eq!(f.write(Frame::Distributor, offset, width, u64::MAX), Write::Drop);
                assert_eq!(f.read(Frame::Distributor, offset, width, u64::MAX), 0);
            }
        }
        assert!(!f.is_valid(Frame::RedistributorControl, 0, 4), "a GICv2 has no redistributors");
    }

    proptest! {
        /// Whatever Dom0 writes to a GICv2 distributor, the hypervisor's
        /// bits never reach the hardware unmerged nor show in a read, and
        /// its SGI is never sent.
        #[test]
        fn gicv2_owned_interrupts_are_never_exposed(
            offset in 0u64..0x1000,
            width in prop::sample::select(vec![1u8, 2, 4, 8]),
            value in any::<u64>(),
            hardware in any::<u64>(),
        ) {
            let f = filter_v2();
            let frame = Frame::Distributor;
            let offset = offset & !(u64::from(width) - 1);
            if let Some(family) = f.family(frame, offset) {
                let owned = f.owned_bits(family, offset, width);
                prop_assert_eq!(f.read(frame, offset, width, hardware) & owned, 0);
                match f.write(frame, offset, width, value) {
                    Write::Forward(v) => prop_assert_eq!(v & owned, 0),
                    Write::Merge { keep, value: v } => {
                        prop_assert_eq!(keep, owned);
                        prop_assert_eq!(v & keep, 0);
                    }
                    Write::Drop => prop_assert!(
                        matches!(family.semantics, Semantics::Field | Semantics::Hidden) || !f.is_valid(frame, offset, width)
                    ),
                    Write::Sgi(_) => prop_assert!(false, "an SGI from a family register"),
                    Write::Route { .. } => prop_assert!(false, "no routing register on a GICv2"),
                }
            }
            if let Write::Sgi(v) = f.write(frame, offset, width, value) {
                prop_assert_eq!(offset, gicd_v2::SGIR);
                prop_assert!(!f.owned().contains(v & gicd_v2::SGIR_INTID));
            }
            prop_assert!(f.read(frame, offset, width, hardware) <= width_mask(width));
        }
    }

    proptest! {
        /// Whatever Dom0 writes, the hypervisor's bits are never in what
        /// reaches the hardware unmerged, and never visible in what it reads.
        #[test]
        fn owned_interrupts_are_never_exposed(
            offset in 0u64..0x1_0000,
            width in prop::sample::select(vec![1u8, 2, 4, 8]),
            value in any::<u64>(),
            hardware in any::<u64>(),
            sgi_frame in any::<bool>(),
        ) {
            let f = filter();
            let frame = if sgi_frame { Frame::RedistributorSgi } else { Frame::Distributor };
            let offset = offset & !(u64::from(width) - 1);
            if let Some(family) = f.family(frame, offset) {
                let owned = f.owned_bits(family, offset, width);
                prop_assert_eq!(f.read(frame, offset, width, hardware) & owned, 0);
                match f.write(frame, offset, width, value) {
                    Write::Forward(v) => {
                        if family.semantics == Semantics::SetClear || family.semantics == Semantics::Field {
                            prop_assert_eq!(v & owned, 0);
                        }
                    }
                    Write::Merge { keep, value: v } => {
                        prop_assert_eq!(keep, owned);
                        prop_assert_eq!(v & keep, 0);
                    }
                    Write::Drop => prop_assert!(
                        family.semantics == Semantics::Field || !f.is_valid(frame, offset, width)
                    ),
                    Write::Sgi(_) => prop_assert!(false, "no SGI register on a GICv3"),
                    Write::Route { .. } => prop_assert!(false, "a route from a family register"),
                }
            }
            prop_assert!(f.read(frame, offset, width, hardware) <= width_mask(width));
        }
    }
}
