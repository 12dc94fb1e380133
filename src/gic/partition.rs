//! Dom0 drives the physical GIC, but only on its own CPUs: those of a
//! DomU (static partitioning, `domu::cpus`) and idle ones are not Dom0's
//! to interrupt or configure. Pure: what Dom0 may see of the
//! redistributors ([`RegionView`]), where it may route an SPI
//! ([`Dom0Cpus::route`]) and which CPUs its SGIs may reach
//! ([`Dom0Cpus::sgi1r`]). Set once at boot; consulted without a lock.
//!
//! - Redistributors: Dom0 sees only its own CPUs' frames, packed from the
//!   start of each region in the hardware's order, the last with
//!   GICR_TYPER.Last, as Xen gives Dom0 only its own vCPUs'. Its tree's
//!   region is the host's and may span the rest; nothing answers there
//!   (an access aborts, as past the last populated frame), and Linux,
//!   stopping at Last, never looks. A region holding none of Dom0's reads
//!   as zero and ignores writes: Linux probes a region's first GICR_PIDR2
//!   and, reading no GIC architecture there, skips it.
//! - SPI routing (GICD_IROUTER): a route to a CPU outside Dom0's, or 1-of-N
//!   (IRM, which the hardware may resolve to any CPU), goes to the writing
//!   vCPU's CPU instead. Redirected rather than ignored: the interrupt
//!   still arrives somewhere Dom0 serves it (an ignored write would leave
//!   whatever routing the firmware left, which may be a DomU's CPU), and
//!   Linux, which only ever names its own CPUs, never sees the difference.
//!   (A GICv2's targets cross through Dom0's vCPU placements,
//!   `gic::targets`, which have no bit for any other CPU.)
//! - SGIs (ICC_SGI1R_EL1): targets outside Dom0's CPUs are dropped from the
//!   list; "all but self" (IRM) becomes a list of Dom0's other CPUs.

use crate::config::MAX_CPUS;
use crate::mm::range::PhysRange;
use arrayvec::ArrayVec;

/// MPIDR affinity fields (Aff3 at 39:32, Aff2..Aff0 at 23:0), which
/// GICD_IROUTER shares.
pub const AFFINITY_MASK: u64 = 0xff_00ff_ffff;
/// GICD_IROUTER.Interrupt_Routing_Mode: 1-of-N.
pub const IROUTER_IRM: u64 = 1 << 31;

/// ICC_SGI1R_EL1's fields.
pub mod sgi1r {
    pub const TARGET_LIST: u64 = 0xffff;
    pub const INTID: u64 = 0xf << 24;
    pub const IRM: u64 = 1 << 40;
    /// Aff3, RS, Aff2 and Aff1: the 16 CPUs a target list can name.
    pub const GROUP: u64 = (0xff << 48) | (0xf << 44) | (0xff << 32) | (0xff << 16);
}

/// The ICC_SGI1R_EL1 group fields and target-list bit naming `affinity`.
fn sgi_group_of(affinity: u64) -> (u64, u16) {
    let aff0 = affinity & 0xff;
    let group = (((affinity >> 32) & 0xff) << 48)
        | ((aff0 / 16) << 44)
        | (((affinity >> 16) & 0xff) << 32)
        | (((affinity >> 8) & 0xff) << 16);
    (group, 1 << (aff0 % 16))
}

/// Dom0's CPUs, by their MPIDR affinities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dom0Cpus {
    affinities: ArrayVec<u64, MAX_CPUS>,
    /// Per ICC_SGI1R_EL1 group, the target-list bits of Dom0's CPUs.
    groups: ArrayVec<(u64, u16), MAX_CPUS>,
}

/// The ICC_SGI1R_EL1 values an SGI write becomes: one per group of CPUs.
pub type Sgis = ArrayVec<u64, MAX_CPUS>;

impl Dom0Cpus {
    /// Dom0's CPUs; more than `MAX_CPUS` are not kept.
    pub fn new(affinities: impl IntoIterator<Item = u64>) -> Self {
        let mut cpus = Self::default();
        for affinity in affinities.into_iter().map(|a| a & AFFINITY_MASK) {
            if cpus.contains(affinity) || cpus.affinities.try_push(affinity).is_err() {
                continue;
            }
            let (group, bit) = sgi_group_of(affinity);
            match cpus.groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, bits)) => *bits |= bit,
                // As many groups as CPUs at most: there is room.
                None => cpus.groups.push((group, bit)),
            }
        }
        cpus
    }

    pub fn contains(&self, affinity: u64) -> bool {
        self.affinities.contains(&(affinity & AFFINITY_MASK))
    }

    pub fn affinities(&self) -> &[u64] {
        &self.affinities
    }

    /// What GICD_IROUTER gets for Dom0 writing `value` from the CPU whose
    /// affinity is `writer` (one of Dom0's): `value` if it names one of
    /// Dom0's CPUs, else the writer's.
    pub fn route(&self, value: u64, writer: u64) -> u64 {
        if value & IROUTER_IRM == 0 && self.contains(value) { value & AFFINITY_MASK } else { writer & AFFINITY_MASK }
    }

    /// What reaches ICC_SGI1R_EL1 for Dom0 writing `value` on the CPU
    /// whose affinity is `writer`: the listed targets that are Dom0's, or
    /// for IRM every CPU of Dom0's but the writer; no value if none is left.
    pub fn sgi1r(&self, value: u64, writer: u64) -> Sgis {
        let intid = value & sgi1r::INTID;
        let mut out = Sgis::new();
        if value & sgi1r::IRM == 0 {
            let group = value & sgi1r::GROUP;
            let listed = (value & sgi1r::TARGET_LIST) as u16;
            let ours = self.groups.iter().find(|(g, _)| *g == group).map_or(0, |&(_, bits)| bits);
            if listed & ours != 0 {
                out.push(group | intid | u64::from(listed & ours));
            }
            return out;
        }
        let (writer_group, writer_bit) = sgi_group_of(writer & AFFINITY_MASK);
        for &(group, bits) in &self.groups {
            let bits = if group == writer_group { bits & !writer_bit } else { bits };
            if bits != 0 {
                out.push(group | intid | u64::from(bits));
            }
        }
        out
    }
}

/// One redistributor region as Dom0 sees it: Dom0's frames, packed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionView {
    /// The physical RD frame of each of Dom0's redistributors in the
    /// region, in the region's order.
    frames: ArrayVec<u64, MAX_CPUS>,
    stride: u64,
}

/// Where an access at an offset into a region's view lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// In Dom0's redistributor `index` of the region: the physical
    /// address, and whether it is the last of Dom0's in the region.
    Frame { address: u64, index: usize, last: bool },
    /// The region holds none of Dom0's: reads as zero, writes ignored.
    Empty,
    /// Past Dom0's frames: nothing is there.
    Absent,
}

impl RegionView {
    /// The view of `region` (its populated part), frames of `stride`
    /// bytes, keeping those `is_dom0s` says (given a frame's address) are
    /// the redistributor of one of Dom0's CPUs.
    pub fn new(region: PhysRange, stride: u64, is_dom0s: impl Fn(u64) -> bool) -> Self {
        let mut frames = ArrayVec::new();
        let mut frame = region.start;
        while stride > 0 && frame.checked_add(stride).is_some_and(|end| end <= region.end) {
            if is_dom0s(frame) && frames.try_push(frame).is_err() {
                break;
            }
            frame += stride;
        }
        Self { frames, stride }
    }

    /// Dom0's redistributors in the region.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Where an access at `offset` from the region's start lands.
    pub fn locate(&self, offset: u64) -> Located {
        if self.frames.is_empty() {
            return Located::Empty;
        }
        let index = (offset / self.stride) as usize;
        match self.frames.get(index) {
            Some(&frame) => {
                Located::Frame { address: frame + offset % self.stride, index, last: index + 1 == self.frames.len() }
            }
            None => Located::Absent,
        }
    }
}

/// GICR_TYPER (its low word, or all of it) as Dom0 reads it in a view:
/// Last on the last of its redistributors in the region, and only there.
pub fn view_typer(hardware: u64, last: bool) -> u64 {
    use super::registers::gicr::TYPER_LAST;
    if last { hardware | TYPER_LAST } else { hardware & !TYPER_LAST }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The affinities a target list of `value` names.
    fn named(value: u64) -> std::vec::Vec<u64> {
        let aff3 = (value >> 48) & 0xff;
        let rs = (value >> 44) & 0xf;
        let aff2 = (value >> 32) & 0xff;
        let aff1 = (value >> 16) & 0xff;
        (0..16)
            .filter(|bit| value & (1 << bit) != 0)
            .map(|bit| (aff3 << 32) | (aff2 << 16) | (aff1 << 8) | (rs * 16 + bit))
            .collect()
    }

    fn qemu(cpus: u64) -> Dom0Cpus {
        Dom0Cpus::new(0..cpus)
    }

    #[test]
    fn sgis_to_other_cpus_are_dropped() {
        // Dom0 on CPUs 0 and 1 of 4; a DomU on 2 and 3.
        let dom0 = qemu(2);
        let sgi = |intid: u64, list: u64| (intid << 24) | list;
        assert_eq!(dom0.sgi1r(sgi(1, 0b10), 0).as_slice(), &[sgi(1, 0b10)], "Linux's IPI passes as it is");
        assert_eq!(dom0.sgi1r(sgi(1, 0b1111), 0).as_slice(), &[sgi(1, 0b11)]);
        assert!(dom0.sgi1r(sgi(1, 0b1100), 0).is_empty(), "only DomU CPUs: nothing");
        // IRM: Dom0's other CPUs, not the DomU's.
        assert_eq!(dom0.sgi1r(sgi(2, 0) | sgi1r::IRM, 0).as_slice(), &[sgi(2, 0b10)]);
        assert_eq!(dom0.sgi1r(sgi(2, 0) | sgi1r::IRM, 1).as_slice(), &[sgi(2, 0b01)]);
        assert!(qemu(1).sgi1r(sgi(2, 0) | sgi1r::IRM, 0).is_empty(), "a uniprocessor Dom0 has nobody else");
        // Another cluster, another range selector: not Dom0's.
        assert!(dom0.sgi1r(sgi(1, 0b11) | (1 << 16), 0).is_empty());
        assert!(dom0.sgi1r(sgi(1, 0b11) | (1 << 44), 0).is_empty());
    }

    #[test]
    fn routes_stay_on_dom0s_cpus() {
        let dom0 = qemu(2);
        assert_eq!(dom0.route(1, 0), 1);
        assert_eq!(dom0.route(2, 0), 0, "a DomU's CPU: the writer's instead");
        assert_eq!(dom0.route(3, 1), 1);
        assert_eq!(dom0.route(IROUTER_IRM, 1), 1, "1-of-N could pick a DomU's CPU");
        assert_eq!(dom0.route(1 | 1 << 40, 0), 1, "bits outside the affinity go");
        assert_eq!(dom0.route(0x1_0000_0000, 0), 0, "Aff3 counts");
    }

    #[test]
    fn the_view_packs_dom0s_frames_and_moves_last() {
        const STRIDE: u64 = 0x2_0000;
        let region = PhysRange::new(0x80a_0000, 0x80a_0000 + 4 * STRIDE);
        // Dom0 on the first two of four.
        let view = RegionView::new(region, STRIDE, |f| f < 0x80a_0000 + 2 * STRIDE);
        assert_eq!(view.len(), 2);
        assert_eq!(view.locate(0x8), Located::Frame { address: 0x80a_0008, index: 0, last: false });
        assert_eq!(
            view.locate(STRIDE + 0x1_0100),
            Located::Frame { address: 0x80c_0000 + 0x1_0100, index: 1, last: true }
        );
        assert_eq!(view.locate(2 * STRIDE), Located::Absent, "the DomU's frames are not there");
        assert_eq!(view.locate(u64::MAX), Located::Absent);
        // Dom0 on the first and third: packed, the third seen second.
        let view = RegionView::new(region, STRIDE, |f| f == 0x80a_0000 || f == 0x80a_0000 + 2 * STRIDE);
        assert_eq!(view.locate(STRIDE), Located::Frame { address: 0x80a_0000 + 2 * STRIDE, index: 1, last: true });
        // None of Dom0's.
        assert_eq!(RegionView::new(region, STRIDE, |_| false).locate(0), Located::Empty);
        assert_eq!(view_typer(0x1_0000_0010, false), 0x1_0000_0000);
        assert_eq!(view_typer(0x1_0000_0000, true), 0x1_0000_0010);
    }

    fn affinity() -> impl Strategy<Value = u64> {
        // Few values per field, so targets and Dom0's CPUs meet often.
        (0u64..2, 0u64..2, 0u64..2, 0u64..40).prop_map(|(a3, a2, a1, a0)| (a3 << 32) | (a2 << 16) | (a1 << 8) | a0)
    }

    fn sgi_value() -> impl Strategy<Value = u64> {
        (any::<u64>(), affinity()).prop_map(|(noise, a)| {
            let (group, _) = sgi_group_of(a);
            // Any bits at all, often aimed at a group near Dom0's.
            if noise & 1 == 0 { noise } else { (noise & !sgi1r::GROUP) | group }
        })
    }

    proptest! {
        /// Whatever Dom0 writes, the SGIs reach only its own CPUs: those
        /// it listed, or for IRM all its others; with the same INTID.
        #[test]
        fn sgis_reach_only_dom0(cpus in prop::collection::vec(affinity(), 1..=MAX_CPUS), value in sgi_value(), pick in any::<prop::sample::Index>()) {
            let dom0 = Dom0Cpus::new(cpus.iter().copied());
            let writer = *pick.get(dom0.affinities());
            let out = dom0.sgi1r(value, writer);
            let mut reached: std::vec::Vec<u64> = out.iter().flat_map(|&v| named(v)).collect();
            for v in &out {
                prop_assert_eq!(v & sgi1r::INTID, value & sgi1r::INTID);
                prop_assert_eq!(v & sgi1r::IRM, 0);
                prop_assert!(v & sgi1r::TARGET_LIST != 0);
            }
            reached.sort_unstable();
            let mut wanted: std::vec::Vec<u64> = match value & sgi1r::IRM {
                0 => named(value).into_iter().filter(|a| dom0.contains(*a)).collect(),
                _ => dom0.affinities().iter().copied().filter(|&a| a != writer).collect(),
            };
            wanted.sort_unstable();
            prop_assert_eq!(reached, wanted);
        }

        #[test]
        fn routes_reach_only_dom0(cpus in prop::collection::vec(affinity(), 1..=MAX_CPUS), value in any::<u64>(), target in affinity(), pick in any::<prop::sample::Index>()) {
            let dom0 = Dom0Cpus::new(cpus.iter().copied());
            let writer = *pick.get(dom0.affinities());
            for value in [value, target, target | IROUTER_IRM] {
                let routed = dom0.route(value, writer);
                prop_assert!(dom0.contains(routed) && routed & !AFFINITY_MASK == 0);
                if value & IROUTER_IRM == 0 && dom0.contains(value) {
                    prop_assert_eq!(routed, value & AFFINITY_MASK);
                }
            }
        }

        /// Every offset of a view lands in one of Dom0's frames, at the
        /// same offset within it, or nowhere past them.
        #[test]
        fn views_land_in_dom0s_frames(mask in any::<u16>(), offset in 0u64..0x40_0000) {
            const STRIDE: u64 = 0x2_0000;
            let region = PhysRange::new(0x80a_0000, 0x80a_0000 + 16 * STRIDE);
            let ours = |f: u64| mask & (1 << ((f - region.start) / STRIDE)) != 0;
            let view = RegionView::new(region, STRIDE, ours);
            prop_assert_eq!(view.len(), mask.count_ones() as usize);
            match view.locate(offset) {
                Located::Frame { address, index, last } => {
                    prop_assert!(ours(address - (address - region.start) % STRIDE));
                    prop_assert_eq!(address % STRIDE, offset % STRIDE);
                    prop_assert_eq!(index as u64, offset / STRIDE);
                    prop_assert_eq!(last, index + 1 == view.len());
                }
                Located::Absent => prop_assert!(offset / STRIDE >= u64::from(mask.count_ones())),
                Located::Empty => prop_assert_eq!(mask, 0),
            }
        }
    }
}
