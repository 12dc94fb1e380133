//! GICv2 CPU interface numbers, as Dom0 sees them and as the hardware has
//! them. Interrupt targets (GICD_ITARGETSR, GICD_SGIR's target list) are
//! bit masks of CPU interfaces. Dom0's are its vCPUs, vCPU n bit n, as Xen
//! gives them (a uniprocessor GIC's own read as zero, and Linux then could
//! not send itself an IPI); the hardware's are each physical CPU's, read
//! from its banked GICD_ITARGETSR0-7. A mask crosses through the placement
//! of each vCPU on its CPU.

/// GICv2 has eight CPU interfaces at most.
pub const MAX_INTERFACES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetMap {
    /// For vCPU n, the CPU interface bit of the CPU it runs on (0 if that
    /// CPU is not up, or on a uniprocessor GIC).
    pub physical: [u8; MAX_INTERFACES],
}

impl TargetMap {
    /// Dom0's mask in the hardware's numbers.
    pub fn to_physical(&self, virtual_mask: u8) -> u8 {
        (0..MAX_INTERFACES).filter(|n| virtual_mask & (1 << n) != 0).fold(0, |m, n| m | self.physical[n])
    }

    /// The hardware's mask in Dom0's numbers.
    pub fn to_virtual(&self, physical_mask: u8) -> u8 {
        (0..MAX_INTERFACES).filter(|&n| self.physical[n] & physical_mask != 0).fold(0, |m, n| m | 1 << n)
    }

    /// A GICD_ITARGETSR word at `offset` from the family's base, each byte
    /// an interrupt's targets, in the hardware's numbers.
    pub fn word_to_physical(&self, word: u64, width: u8) -> u64 {
        map_bytes(word, width, |b| self.to_physical(b))
    }

    /// A GICD_ITARGETSR word Dom0 reads: SGIs' and PPIs' (`first_intid`
    /// below 32, read-only) name the reader, vCPU `reader`; SPIs' are
    /// translated.
    pub fn word_to_virtual(&self, word: u64, width: u8, first_intid: u64, reader: usize) -> u64 {
        let mut out = 0;
        for i in 0..u64::from(width) {
            let byte = (word >> (i * 8)) as u8;
            let seen =
                if first_intid + i < 32 { 1u8.checked_shl(reader as u32).unwrap_or(0) } else { self.to_virtual(byte) };
            out |= u64::from(seen) << (i * 8);
        }
        out
    }
}

impl TargetMap {
    /// What reaches the physical GICD_SGIR for Dom0's write of `value` by
    /// vCPU `writer`; `None` if it names no CPU. A target list crosses to
    /// the hardware's numbers (which have no bit for a CPU not Dom0's);
    /// "all but the writer" becomes the list of Dom0's other vCPUs' CPUs,
    /// since on the hardware it would reach every CPU, a DomU's too; "the
    /// writer alone" means the same on the physical CPU; the reserved
    /// filter sends nothing. On a uniprocessor GIC, whose interface has no
    /// number, an SGI to the writer goes to "self".
    pub fn physical_sgir(&self, value: u32, writer: usize) -> Option<u32> {
        use super::registers::gicd_v2::{
            SGIR_FILTER_LIST, SGIR_FILTER_SELF, SGIR_FILTER_SHIFT, SGIR_INTID, SGIR_TARGETS_SHIFT,
        };
        let intid = value & SGIR_INTID;
        let writer_bit = 1u8.checked_shl(writer as u32).unwrap_or(0);
        let listed = match (value >> SGIR_FILTER_SHIFT) & 0b11 {
            SGIR_FILTER_LIST => (value >> SGIR_TARGETS_SHIFT) as u8,
            SGIR_FILTER_SELF => return Some(SGIR_FILTER_SELF << SGIR_FILTER_SHIFT | intid),
            // All but the writer: Dom0's others.
            0b01 => !writer_bit,
            _ => return None,
        };
        match self.to_physical(listed) {
            0 if listed & writer_bit != 0 => Some(SGIR_FILTER_SELF << SGIR_FILTER_SHIFT | intid),
            0 => None,
            targets => Some(u32::from(targets) << SGIR_TARGETS_SHIFT | intid),
        }
    }
}

fn map_bytes(word: u64, width: u8, f: impl Fn(u8) -> u8) -> u64 {
    (0..u64::from(width)).fold(0, |out, i| out | u64::from(f((word >> (i * 8)) as u8)) << (i * 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cross_through_the_placement() {
        // vCPU 0 on the CPU with interface 2, vCPU 1 on interface 0.
        let map = TargetMap { physical: [0b100, 0b001, 0, 0, 0, 0, 0, 0] };
        assert_eq!(map.to_physical(0b11), 0b101);
        assert_eq!(map.to_physical(0b10), 0b001);
        assert_eq!(map.to_physical(0b100), 0, "no vCPU 2");
        assert_eq!(map.to_virtual(0b101), 0b11);
        assert_eq!(map.to_virtual(0b010), 0);
        assert_eq!(map.word_to_physical(0x0102_0301, 4), 0x0401_0504);
        // ITARGETSR8 (SPIs 32-35) and ITARGETSR7 (PPIs 28-31) as vCPU 1 reads them.
        assert_eq!(map.word_to_virtual(0x0401_0504, 4, 32, 1), 0x0102_0301);
        assert_eq!(map.word_to_virtual(0x0101_0101, 4, 28, 1), 0x0202_0202);
        assert_eq!(map.word_to_virtual(0x04, 1, 33, 0), 0x01);
    }

    #[test]
    fn sgis_cross_to_the_hardwares_interfaces() {
        let map = TargetMap { physical: [0b100, 0b001, 0, 0, 0, 0, 0, 0] };
        // SGI 3 to vCPUs 0 and 1: interfaces 2 and 0.
        assert_eq!(map.physical_sgir(0x0003_0003, 0), Some(0x0005_0003));
        // All but the writer: Dom0's other vCPUs only, never a CPU that
        // is not Dom0's (interface 1 here). The writer alone passes.
        assert_eq!(map.physical_sgir(0x0100_0005, 1), Some(0x0004_0005));
        assert_eq!(map.physical_sgir(0x0100_0005, 0), Some(0x0001_0005));
        assert_eq!(TargetMap { physical: [0b1, 0, 0, 0, 0, 0, 0, 0] }.physical_sgir(0x0100_0005, 0), None);
        assert_eq!(map.physical_sgir(0x0200_0005, 1), Some(0x0200_0005));
        assert_eq!(map.physical_sgir(0x0300_0005, 1), None, "the reserved filter");
        // No such vCPU: nothing sent.
        assert_eq!(map.physical_sgir(0x0004_0003, 0), None);
        // A uniprocessor GIC: the writer's own bit becomes "self".
        assert_eq!(TargetMap::default().physical_sgir(0x0001_0002, 0), Some(0x0200_0002));
        assert_eq!(TargetMap::default().physical_sgir(0x0002_0002, 0), None);
    }

    #[test]
    fn a_uniprocessor_gic_still_names_dom0s_cpu() {
        // Its ITARGETSR reads as zero: Dom0 still reads vCPU 0's bit.
        let map = TargetMap::default();
        assert_eq!(map.word_to_virtual(0, 4, 0, 0), 0x0101_0101);
        assert_eq!(map.to_physical(1), 0);
    }
}
