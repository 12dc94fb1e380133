//! An emulated GIC for a domain that does not own the physical one (a
//! dom0less DomU): a distributor, and on GICv3 one redistributor per vCPU,
//! made of plain state, at Xen's guest addresses (`domu::layout`). Pure and
//! host-tested; `arch::vgic` puts it behind the domain's MMIO regions and
//! delivers what it makes pending through the list registers.
//!
//! What a guest sees, in the shape of Xen's `vgic-v3.c`/`vgic-v2.c` for a
//! DomU (where ours differs: a fixed [`SPI_COUNT`] where Xen sizes the SPIs
//! from the host or `nr_spis`; one security state where Xen shows the
//! non-secure view of two; Arm's IIDR on both versions):
//!
//! - [`SPI_COUNT`] SPIs (INTIDs 32..64; GICD_TYPER.ITLinesNumber 1), and
//!   per vCPU 16 SGIs and 16 PPIs: enable, pending, priority (8 bits,
//!   byte-accessible), configuration (SGIs edge, read-only), routing
//!   (GICD_IROUTER on GICv3, GICD_ITARGETSR on GICv2, by vCPU).
//! - One security state (GICD_CTLR.DS reads 1, ARE reads 1 on GICv3). On
//!   GICv3 every interrupt is group 1 (IGROUPR reads all ones, writes are
//!   ignored) and GICD_CTLR.EnableGrp1 gates delivery; on GICv2 every
//!   interrupt is group 0, which is what the GICv2 list registers carry,
//!   and GICD_CTLR.Enable gates it.
//! - Active state is the list registers' business and not tracked here:
//!   ISACTIVER reads as zero, ICACTIVER ignores writes. Pending reads are
//!   what was raised and has not yet gone into a list register.
//! - Anything else reads as zero and ignores writes; an access of a width
//!   the architecture does not define for that register does too. No
//!   offset, width or value makes it panic.
//!
//! An SPI may be driven by a level-triggered device of the hypervisor's
//! (a DomU's vPL011): [`EmulatedGic::set_line`] raises it when its line
//! rises and takes back what is still only raised when it falls, and
//! [`EmulatedGic::line_is_high`] tells the list-register side, which asks
//! for an EOI maintenance interrupt for such an SPI and raises it again
//! if the line is still high when the guest ends it.
//!
//! Pending state lives beside the vCPUs (each vCPU's `raised` bits, which
//! Dom0's path uses too), reached through [`RaisedBits`]: the model reads
//! and clears them, and sets them, and a write returns the vCPUs whose
//! physical CPU must look at its raised bits again ([`Wake`]), which the
//! caller does after letting go of the model's lock.

#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// The virtual timer's INTID in a DomU (Xen's GUEST_TIMER_VIRT_PPI).
pub const VIRTUAL_TIMER: u32 = 27;
/// The event-channel upcall's INTID in a DomU (Xen's GUEST_EVTCHN_PPI).
pub const EVENT_CHANNEL: u32 = 31;

/// SPIs a domain has: INTIDs [`FIRST_SPI`] up to [`INTERRUPTS`].
pub const SPI_COUNT: u32 = 32;
pub const FIRST_SPI: u32 = 32;
/// Every INTID the emulated GIC has, one bit each in a `u64` of raised bits.
pub const INTERRUPTS: u32 = FIRST_SPI + SPI_COUNT;
/// The most vCPUs it serves (a [`Wake`] mask's bits).
pub const MAX_VCPUS: usize = 64;

/// A GICv3 redistributor's size: RD_base and SGI_base frames.
pub const REDISTRIBUTOR_STRIDE: u64 = 0x2_0000;
const FRAME: u64 = 0x1_0000;

/// Which GIC the guest sees; the host's own, so the list registers fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3,
    V2,
}

/// The distributor's size as the guest sees it (Xen's guest layout).
impl Version {
    pub fn distributor_size(self) -> u64 {
        match self {
            Self::V3 => 0x1_0000,
            Self::V2 => 0x1000,
        }
    }
}

/// Where the pending state of each vCPU lives: bit n set means INTID n is
/// raised for that vCPU and not yet in its list registers.
pub trait RaisedBits {
    fn raised(&self, vcpu: usize) -> Option<&AtomicU64>;
}

impl RaisedBits for [AtomicU64] {
    fn raised(&self, vcpu: usize) -> Option<&AtomicU64> {
        self.get(vcpu)
    }
}

/// vCPUs (bit n: vCPU n) whose physical CPU must look at its raised bits
/// again: something became pending or deliverable for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wake(pub u64);

/// Registers and fields (Arm IHI 0069 chapter 12; IHI 0048B 4.3).
mod reg {
    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0004;
    pub const IIDR: u64 = 0x0008;
    pub const IGROUPR: u64 = 0x0080;
    pub const ISENABLER: u64 = 0x0100;
    pub const ICENABLER: u64 = 0x0180;
    pub const ISPENDR: u64 = 0x0200;
    pub const ICPENDR: u64 = 0x0280;
    pub const IPRIORITYR: u64 = 0x0400;
    pub const ITARGETSR: u64 = 0x0800;
    pub const ICFGR: u64 = 0x0c00;
    pub const SGIR: u64 = 0x0f00;
    pub const IROUTER: u64 = 0x6000;
    /// GICR_IIDR, GICR_TYPER and GICR_WAKER in a redistributor's RD frame.
    pub const GICR_IIDR: u64 = 0x0004;
    pub const GICR_TYPER: u64 = 0x0008;
    pub const GICR_WAKER: u64 = 0x0014;
    /// The ID registers, at the end of each 64 KiB (GICv3) or 4 KiB (GICv2) frame.
    pub const PIDR2_V3: u64 = 0xffe8;
    pub const PIDR2_V2: u64 = 0x0fe8;
    pub const CIDR0_V3: u64 = 0xfff0;
    pub const CIDR0_V2: u64 = 0x0ff0;

    /// GICD_CTLR: group enables (EnableGrp0/EnableGrp1 with DS = 1 on
    /// GICv3; Enable on GICv2), ARE and DS (read as one on GICv3).
    pub const CTLR_ENABLE_GRP0: u32 = 1 << 0;
    pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;
    pub const CTLR_ARE: u32 = 1 << 4;
    pub const CTLR_DS: u32 = 1 << 6;
    /// Arm's JEP106 code as GICD_IIDR.Implementer (Xen's GICv2 value).
    pub const IIDR_ARM: u32 = 0x43b;
    /// GICD_TYPER.IDbits: ten INTID bits (no LPIs).
    pub const TYPER_ID_BITS_10: u32 = 9 << 19;
    pub const GICR_TYPER_LAST: u32 = 1 << 4;
    pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
    pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
    /// GICD_IROUTER: Interrupt Routing Mode (any participating CPU).
    pub const IROUTER_IRM: u64 = 1 << 31;
    pub const IROUTER_AFFINITY: u64 = 0xff_00ff_ffff;
    /// The four CIDR bytes every CoreSight-style ID block has.
    pub const CIDR: [u32; 4] = [0x0d, 0xf0, 0x05, 0xb1];
    /// Every SGI is edge-triggered: ICFGR0 reads 0b10 for each.
    pub const SGI_CONFIG: u32 = 0xaaaa_aaaa;
    /// The writable bit of each two-bit ICFGR field (1 = edge).
    pub const CONFIG_EDGE_BITS: u32 = 0xaaaa_aaaa;
}

/// One vCPU's private interrupts (its SGIs and PPIs) and its redistributor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Private {
    pub enabled: u32,
    pub priority: [u8; 32],
    /// ICFGR1: the PPIs' configuration.
    pub ppi_config: u32,
    /// GICR_WAKER.ProcessorSleep (asleep from reset, as on hardware).
    pub asleep: bool,
}

impl Default for Private {
    fn default() -> Self {
        Self { enabled: 0, priority: [0; 32], ppi_config: 0, asleep: true }
    }
}

/// A domain's emulated GIC.
#[derive(Debug, Clone)]
pub struct EmulatedGic {
    version: Version,
    /// Each vCPU's MPIDR affinity (Aff3 in bits 39:32), by vCPU id.
    mpidrs: Vec<u64>,
    /// GICD_CTLR's group enable bits.
    ctlr: u32,
    private: Vec<Private>,
    spi_enabled: u32,
    spi_priority: [u8; SPI_COUNT as usize],
    /// ICFGR2 and ICFGR3.
    spi_config: [u32; 2],
    /// GICD_IROUTER (GICv3): affinity and IRM.
    spi_route: [u64; SPI_COUNT as usize],
    /// GICD_ITARGETSR (GICv2): CPU interface (vCPU) masks.
    spi_targets: [u8; SPI_COUNT as usize],
    /// SPIs made pending while routed to no vCPU: they wait here until a
    /// routing write names one.
    unrouted: u32,
    /// The lines of the SPIs driven by a level-triggered device, high or low.
    lines: u32,
}

/// The lowest INTID a per-interrupt register word or byte is about.
fn bits_per_intid(family: u64) -> u64 {
    match family {
        reg::IPRIORITYR | reg::ITARGETSR => 8,
        reg::ICFGR => 2,
        _ => 1,
    }
}

impl EmulatedGic {
    /// A GIC for vCPUs with these MPIDR affinities (at most [`MAX_VCPUS`];
    /// the rest are not served), all off and asleep, as at reset.
    pub fn new(version: Version, vcpu_mpidrs: &[u64]) -> Self {
        let mpidrs: Vec<u64> = vcpu_mpidrs.iter().take(MAX_VCPUS).copied().collect();
        Self {
            version,
            private: alloc::vec![Private::default(); mpidrs.len()],
            mpidrs,
            ctlr: 0,
            spi_enabled: 0,
            spi_priority: [0; SPI_COUNT as usize],
            spi_config: [0; 2],
            spi_route: [0; SPI_COUNT as usize],
            spi_targets: [0; SPI_COUNT as usize],
            unrouted: 0,
            lines: 0,
        }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn vcpus(&self) -> usize {
        self.mpidrs.len()
    }

    /// The redistributor region's size (GICv3): one per vCPU.
    pub fn redistributors_size(&self) -> u64 {
        self.mpidrs.len() as u64 * REDISTRIBUTOR_STRIDE
    }

    /// vCPU `vcpu`'s private state, for checks.
    pub fn private(&self, vcpu: usize) -> Option<&Private> {
        self.private.get(vcpu)
    }

    fn all_vcpus(&self) -> Wake {
        Wake(if self.mpidrs.len() >= 64 { u64::MAX } else { (1u64 << self.mpidrs.len()) - 1 })
    }

    fn group_enabled(&self) -> bool {
        let bit = match self.version {
            Version::V3 => reg::CTLR_ENABLE_GRP1,
            Version::V2 => reg::CTLR_ENABLE_GRP0,
        };
        self.ctlr & bit != 0
    }

    /// The interrupts enabled for `vcpu` (its private ones and the SPIs),
    /// one bit each, as [`RaisedBits`] holds them.
    pub fn enabled(&self, vcpu: usize) -> u64 {
        self.private.get(vcpu).map_or(0, |p| u64::from(p.enabled) | u64::from(self.spi_enabled) << FIRST_SPI)
    }

    /// Which of `raised` may go to `vcpu` now: enabled, and its group
    /// enabled at the distributor. A disabled one stays raised.
    pub fn deliverable(&self, vcpu: usize, raised: u64) -> u64 {
        if !self.group_enabled() {
            return 0;
        }
        raised & self.enabled(vcpu)
    }

    /// The guest's priority for `intid` on `vcpu` (0 if there is no such interrupt).
    pub fn priority(&self, vcpu: usize, intid: u32) -> u8 {
        match intid {
            0..32 => self.private.get(vcpu).map_or(0, |p| p.priority[intid as usize]),
            FIRST_SPI..INTERRUPTS => self.spi_priority[(intid - FIRST_SPI) as usize],
            _ => 0,
        }
    }

    /// The vCPU an SPI goes to as routed now; `None` if it names none.
    pub fn spi_target(&self, intid: u32) -> Option<usize> {
        let spi = intid.checked_sub(FIRST_SPI).filter(|&s| s < SPI_COUNT)? as usize;
        match self.version {
            Version::V3 => {
                let route = self.spi_route[spi];
                if route & reg::IROUTER_IRM != 0 {
                    return (!self.mpidrs.is_empty()).then_some(0);
                }
                let wanted = route & reg::IROUTER_AFFINITY;
                self.mpidrs.iter().position(|&m| affinity(m) == wanted)
            }
            Version::V2 => {
                let targets = self.spi_targets[spi];
                (targets != 0).then(|| targets.trailing_zeros() as usize)
            }
        }
    }

    /// Makes `intid` pending: a private one on `vcpu`, an SPI on the vCPU
    /// it is routed to (or held until it is routed). The vCPUs to look
    /// again: the target only if it may take the interrupt now. A disabled
    /// one just stays pending, as on a real GIC, which signals no CPU for
    /// it; the write that enables it wakes the target then. (A guest that
    /// polls its event channel with the event PPI disabled is not
    /// interrupted for each event.)
    pub fn raise(&mut self, vcpu: usize, intid: u32, raised: &(impl RaisedBits + ?Sized)) -> Wake {
        let target = match intid {
            0..32 => Some(vcpu).filter(|&v| v < self.mpidrs.len()),
            FIRST_SPI..INTERRUPTS => self.spi_target(intid),
            _ => return Wake::default(),
        };
        match target.and_then(|t| Some((t, raised.raised(t)?))) {
            Some((t, bits)) => {
                bits.fetch_or(1 << intid, Ordering::AcqRel);
                if self.deliverable(t, 1 << intid) != 0 { Wake(1 << t) } else { Wake::default() }
            }
            None => {
                if intid >= FIRST_SPI {
                    self.unrouted |= 1 << (intid - FIRST_SPI);
                }
                Wake::default()
            }
        }
    }

    /// A level-triggered device's line into SPI `intid` went `high` or low.
    /// Rising, the SPI is raised; falling, it is no longer pending where it
    /// is only raised (what a list register already holds stays there: the
    /// guest may then take it and find nothing to do, as a real GIC's race
    /// allows). Unchanged, nothing happens: a line that stays high is raised
    /// again when the guest ends the interrupt ([`Self::line_is_high`]).
    /// The vCPUs to look again.
    pub fn set_line(&mut self, intid: u32, high: bool, raised: &(impl RaisedBits + ?Sized)) -> Wake {
        let Some(spi) = intid.checked_sub(FIRST_SPI).filter(|&s| s < SPI_COUNT) else { return Wake::default() };
        let bit = 1u32 << spi;
        let was_high = self.lines & bit != 0;
        match (was_high, high) {
            (false, true) => {
                self.lines |= bit;
                self.raise(0, intid, raised)
            }
            (true, false) => {
                self.lines &= !bit;
                self.clear_spi_pending(bit, raised);
                Wake::default()
            }
            _ => Wake::default(),
        }
    }

    /// Whether `intid` is an SPI whose device holds its line high: raised
    /// again each time the guest ends it, while that lasts.
    pub fn line_is_high(&self, intid: u32) -> bool {
        intid.checked_sub(FIRST_SPI).filter(|&s| s < SPI_COUNT).is_some_and(|spi| self.lines & (1 << spi) != 0)
    }

    /// Routes the SPIs waiting for a target, now that routing changed.
    fn route_waiting(&mut self, raised: &(impl RaisedBits + ?Sized)) -> Wake {
        let mut waiting = core::mem::take(&mut self.unrouted);
        let mut wake = Wake::default();
        while waiting != 0 {
            let spi = waiting.trailing_zeros();
            waiting &= waiting - 1;
            wake.0 |= self.raise(0, FIRST_SPI + spi, raised).0;
        }
        wake
    }

    /// The SPIs pending anywhere: raised on some vCPU, or held unrouted.
    fn spi_pending(&self, raised: &(impl RaisedBits + ?Sized)) -> u32 {
        (0..self.mpidrs.len())
            .filter_map(|v| raised.raised(v))
            .fold(self.unrouted, |p, r| p | (r.load(Ordering::Acquire) >> FIRST_SPI) as u32)
    }

    fn clear_spi_pending(&mut self, bits: u32, raised: &(impl RaisedBits + ?Sized)) {
        self.unrouted &= !bits;
        for v in 0..self.mpidrs.len() {
            if let Some(r) = raised.raised(v) {
                r.fetch_and(!(u64::from(bits) << FIRST_SPI), Ordering::AcqRel);
            }
        }
    }

    // ---- access widths ----------------------------------------------------

    /// Whether the distributor has a register of `width` bytes at `offset`
    /// (the widths of Arm IHI 0069 12.1.6 and IHI 0048B 4.1.4).
    fn distributor_width_ok(&self, offset: u64, width: u8) -> bool {
        if !matches!(width, 1 | 4 | 8) || !offset.is_multiple_of(u64::from(width)) {
            return false;
        }
        let bytes = (reg::IPRIORITYR..reg::IPRIORITYR + 0x400).contains(&offset)
            || (self.version == Version::V2 && (reg::ITARGETSR..reg::ITARGETSR + 0x400).contains(&offset))
            || (self.version == Version::V2 && (0xf10..0xf30).contains(&offset));
        let doubles = self.version == Version::V3 && (reg::IROUTER..0x8000).contains(&offset);
        match width {
            1 => bytes,
            8 => doubles,
            _ => offset < self.version.distributor_size(),
        }
    }

    fn redistributor_width_ok(offset: u64, width: u8) -> bool {
        if !matches!(width, 1 | 4 | 8) || !offset.is_multiple_of(u64::from(width)) {
            return false;
        }
        let within = offset % REDISTRIBUTOR_STRIDE;
        match width {
            1 => (FRAME + reg::IPRIORITYR..FRAME + reg::IPRIORITYR + 32).contains(&within),
            8 => within == reg::GICR_TYPER,
            _ => true,
        }
    }

    /// Reads `width` bytes at `offset` through 32-bit word reads.
    fn read_through(width: u8, offset: u64, mut word: impl FnMut(u64) -> u32) -> u64 {
        match width {
            8 => u64::from(word(offset)) | u64::from(word(offset + 4)) << 32,
            4 => u64::from(word(offset)),
            _ => u64::from(word(offset & !3) >> ((offset & 3) * 8)) & 0xff,
        }
    }

    /// Writes `width` bytes at `offset` as 32-bit word writes of a value
    /// and the mask of its bytes that were written.
    fn write_through(width: u8, offset: u64, value: u64, mut word: impl FnMut(u64, u32, u32)) {
        match width {
            8 => {
                word(offset, value as u32, u32::MAX);
                word(offset + 4, (value >> 32) as u32, u32::MAX);
            }
            4 => word(offset, value as u32, u32::MAX),
            _ => {
                let shift = (offset & 3) * 8;
                word(offset & !3, ((value & 0xff) << shift) as u32, 0xff << shift);
            }
        }
    }

    // ---- the distributor --------------------------------------------------

    /// A read of the distributor by `vcpu` (the banked registers are its own).
    pub fn read_distributor(&self, vcpu: usize, offset: u64, width: u8, raised: &(impl RaisedBits + ?Sized)) -> u64 {
        if !self.distributor_width_ok(offset, width) || vcpu >= self.mpidrs.len() {
            return 0;
        }
        Self::read_through(width, offset, |o| self.distributor_word(vcpu, o, raised))
    }

    /// A write of the distributor by `vcpu`; the vCPUs to look again.
    pub fn write_distributor(
        &mut self,
        vcpu: usize,
        offset: u64,
        width: u8,
        value: u64,
        raised: &(impl RaisedBits + ?Sized),
    ) -> Wake {
        if !self.distributor_width_ok(offset, width) || vcpu >= self.mpidrs.len() {
            return Wake::default();
        }
        let mut wake = Wake::default();
        Self::write_through(width, offset, value, |o, v, m| {
            wake.0 |= self.write_distributor_word(vcpu, o, v, m, raised).0;
        });
        wake
    }

    /// The per-interrupt family `offset` is in, and the first INTID of its word.
    fn family_word(offset: u64) -> Option<(u64, u32)> {
        let family = match offset {
            0x080..0x100 => reg::IGROUPR,
            0x100..0x180 => reg::ISENABLER,
            0x180..0x200 => reg::ICENABLER,
            0x200..0x280 => reg::ISPENDR,
            0x280..0x300 => reg::ICPENDR,
            0x300..0x400 => return Some((0x300, u32::MAX)),
            0x400..0x800 => reg::IPRIORITYR,
            0x800..0xc00 => reg::ITARGETSR,
            0xc00..0xd00 => reg::ICFGR,
            _ => return None,
        };
        let first = (offset - family) * 8 / bits_per_intid(family);
        Some((family, u32::try_from(first).ok()?))
    }

    fn distributor_word(&self, vcpu: usize, offset: u64, raised: &(impl RaisedBits + ?Sized)) -> u32 {
        let v3 = self.version == Version::V3;
        let (pidr2, cidr0) = if v3 { (reg::PIDR2_V3, reg::CIDR0_V3) } else { (reg::PIDR2_V2, reg::CIDR0_V2) };
        match offset {
            reg::CTLR if v3 => self.ctlr | reg::CTLR_ARE | reg::CTLR_DS,
            reg::CTLR => self.ctlr,
            reg::TYPER => {
                let cpus = (self.mpidrs.len().clamp(1, 8) - 1) as u32;
                let lines = INTERRUPTS / 32 - 1;
                lines | cpus << 5 | if v3 { reg::TYPER_ID_BITS_10 } else { 0 }
            }
            reg::IIDR => reg::IIDR_ARM,
            o if o == pidr2 => {
                if v3 {
                    0x3b
                } else {
                    0x2b
                }
            }
            o if (cidr0..cidr0 + 16).contains(&o) && o % 4 == 0 => reg::CIDR[((o - cidr0) / 4) as usize],
            o if v3 && (reg::IROUTER..0x8000).contains(&o) => {
                let intid = ((o - reg::IROUTER) / 8) as u32;
                match intid.checked_sub(FIRST_SPI).filter(|&s| s < SPI_COUNT) {
                    Some(spi) if o % 8 == 0 => self.spi_route[spi as usize] as u32,
                    Some(spi) => (self.spi_route[spi as usize] >> 32) as u32,
                    None => 0,
                }
            }
            o => match Self::family_word(o) {
                // With affinity routing (GICv3) the private interrupts are
                // the redistributors': the distributor's words for them read as zero.
                Some((_, first)) if v3 && first < FIRST_SPI => 0,
                Some((family, first)) => self.interrupt_word(vcpu, family, first, raised),
                None => 0,
            },
        }
    }

    /// A per-interrupt register word for INTIDs from `first`, banked for `vcpu`.
    fn interrupt_word(&self, vcpu: usize, family: u64, first: u32, raised: &(impl RaisedBits + ?Sized)) -> u32 {
        let Some(private) = self.private.get(vcpu) else { return 0 };
        let pending = |v: usize| raised.raised(v).map_or(0, |r| r.load(Ordering::Acquire));
        match (family, first) {
            (reg::IGROUPR, FIRST_SPI) if self.version == Version::V3 => u32::MAX,
            (reg::ISENABLER | reg::ICENABLER, 0) => private.enabled,
            (reg::ISENABLER | reg::ICENABLER, FIRST_SPI) => self.spi_enabled,
            (reg::ISPENDR | reg::ICPENDR, 0) => pending(vcpu) as u32,
            (reg::ISPENDR | reg::ICPENDR, FIRST_SPI) => self.spi_pending(raised),
            (reg::IPRIORITYR, f) if f < INTERRUPTS => {
                u32::from_le_bytes(core::array::from_fn(|i| self.priority(vcpu, f + i as u32)))
            }
            (reg::ITARGETSR, f) if f < FIRST_SPI => u32::from_le_bytes([1 << (vcpu % 8); 4]),
            (reg::ITARGETSR, f) if f < INTERRUPTS => {
                let at = (f - FIRST_SPI) as usize;
                u32::from_le_bytes(core::array::from_fn(|i| self.spi_targets[at + i]))
            }
            (reg::ICFGR, 0) => reg::SGI_CONFIG,
            (reg::ICFGR, 16) => private.ppi_config,
            (reg::ICFGR, f) if (FIRST_SPI..INTERRUPTS).contains(&f) => self.spi_config[((f - FIRST_SPI) / 16) as usize],
            _ => 0,
        }
    }

    fn write_distributor_word(
        &mut self,
        vcpu: usize,
        offset: u64,
        value: u32,
        mask: u32,
        raised: &(impl RaisedBits + ?Sized),
    ) -> Wake {
        let v3 = self.version == Version::V3;
        match offset {
            reg::CTLR => {
                let before = self.group_enabled();
                self.ctlr = value & (reg::CTLR_ENABLE_GRP0 | if v3 { reg::CTLR_ENABLE_GRP1 } else { 0 });
                if !before && self.group_enabled() { self.all_vcpus() } else { Wake::default() }
            }
            reg::SGIR if !v3 => {
                let intid = value & 0xf;
                let targets = self.sgir_targets(vcpu, value);
                self.raise_on(targets, intid, raised)
            }
            o if v3 && (reg::IROUTER..0x8000).contains(&o) => {
                let intid = ((o - reg::IROUTER) / 8) as u32;
                let Some(spi) = intid.checked_sub(FIRST_SPI).filter(|&s| s < SPI_COUNT) else {
                    return Wake::default();
                };
                let route = &mut self.spi_route[spi as usize];
                let new = if o % 8 == 0 {
                    (*route & !0xffff_ffff) | u64::from(value)
                } else {
                    (*route & 0xffff_ffff) | u64::from(value) << 32
                };
                *route = new & (reg::IROUTER_AFFINITY | reg::IROUTER_IRM);
                self.route_waiting(raised)
            }
            o => match Self::family_word(o) {
                Some((_, first)) if v3 && first < FIRST_SPI => Wake::default(),
                Some((family, first)) => self.write_interrupt_word(vcpu, family, first, value, mask, raised),
                None => Wake::default(),
            },
        }
    }

    fn write_interrupt_word(
        &mut self,
        vcpu: usize,
        family: u64,
        first: u32,
        value: u32,
        mask: u32,
        raised: &(impl RaisedBits + ?Sized),
    ) -> Wake {
        let v3 = self.version == Version::V3;
        match (family, first) {
            (reg::ISENABLER, 0) | (reg::ICENABLER, 0) | (reg::ISPENDR, 0) | (reg::ICPENDR, 0) => {
                // GICv2's banked private words; SGIs' pending state is set
                // and cleared through GICD_SGIR and S/CPENDSGIR there, so
                // ISPENDR0's and ICPENDR0's SGI bits are read-only.
                let pending_word = family == reg::ISPENDR || family == reg::ICPENDR;
                let value = if pending_word && !v3 { value & 0xffff_0000 } else { value };
                self.write_private_word(vcpu, family, value, raised)
            }
            (reg::ISENABLER, FIRST_SPI) => {
                self.spi_enabled |= value;
                if value != 0 { self.all_vcpus() } else { Wake::default() }
            }
            (reg::ICENABLER, FIRST_SPI) => {
                self.spi_enabled &= !value;
                Wake::default()
            }
            (reg::ISPENDR, FIRST_SPI) => {
                let mut bits = value;
                let mut wake = Wake::default();
                while bits != 0 {
                    let spi = bits.trailing_zeros();
                    bits &= bits - 1;
                    wake.0 |= self.raise(vcpu, FIRST_SPI + spi, raised).0;
                }
                wake
            }
            (reg::ICPENDR, FIRST_SPI) => {
                self.clear_spi_pending(value, raised);
                Wake::default()
            }
            (reg::IPRIORITYR, f) if f < INTERRUPTS => {
                for i in 0..4u32 {
                    if mask >> (i * 8) & 0xff != 0 {
                        let byte = (value >> (i * 8)) as u8;
                        match f + i {
                            intid @ 0..32 => self.private[vcpu].priority[intid as usize] = byte,
                            intid => self.spi_priority[(intid - FIRST_SPI) as usize] = byte,
                        }
                    }
                }
                Wake::default()
            }
            (reg::ITARGETSR, f) if !v3 && (FIRST_SPI..INTERRUPTS).contains(&f) => {
                let valid = self.all_vcpus().0 as u8;
                for i in 0..4u32 {
                    if mask >> (i * 8) & 0xff != 0 {
                        self.spi_targets[(f - FIRST_SPI + i) as usize] = (value >> (i * 8)) as u8 & valid;
                    }
                }
                self.route_waiting(raised)
            }
            (reg::ICFGR, 16) if !v3 => {
                self.private[vcpu].ppi_config = value & reg::CONFIG_EDGE_BITS;
                Wake::default()
            }
            (reg::ICFGR, f) if (FIRST_SPI..INTERRUPTS).contains(&f) => {
                self.spi_config[((f - FIRST_SPI) / 16) as usize] = value & reg::CONFIG_EDGE_BITS;
                Wake::default()
            }
            _ => Wake::default(),
        }
    }

    /// An enable or pending word of `vcpu`'s private interrupts written.
    fn write_private_word(
        &mut self,
        vcpu: usize,
        family: u64,
        value: u32,
        raised: &(impl RaisedBits + ?Sized),
    ) -> Wake {
        let Some(private) = self.private.get_mut(vcpu) else { return Wake::default() };
        let me = Wake(1 << vcpu);
        match family {
            reg::ISENABLER => {
                private.enabled |= value;
                if value != 0 { me } else { Wake::default() }
            }
            reg::ICENABLER => {
                private.enabled &= !value;
                Wake::default()
            }
            reg::ISPENDR => {
                if let Some(r) = raised.raised(vcpu) {
                    r.fetch_or(u64::from(value), Ordering::AcqRel);
                }
                if value != 0 { me } else { Wake::default() }
            }
            reg::ICPENDR => {
                if let Some(r) = raised.raised(vcpu) {
                    r.fetch_and(!u64::from(value), Ordering::AcqRel);
                }
                Wake::default()
            }
            _ => Wake::default(),
        }
    }

    /// Raises SGI `intid` on each vCPU of `targets`.
    fn raise_on(&mut self, targets: u64, intid: u32, raised: &(impl RaisedBits + ?Sized)) -> Wake {
        let mut wake = Wake::default();
        for v in (0..self.mpidrs.len()).filter(|&v| targets & (1 << v) != 0) {
            wake.0 |= self.raise(v, intid, raised).0;
        }
        wake
    }

    /// The vCPUs a GICD_SGIR value from `sender` names (GICv2): the
    /// target list (CPU interface n is vCPU n), all but the sender, or the
    /// sender alone.
    pub fn sgir_targets(&self, sender: usize, value: u32) -> u64 {
        let all = self.all_vcpus().0;
        match (value >> 24) & 0b11 {
            0 => u64::from((value >> 16) & 0xff) & all,
            1 => all & !(1 << sender),
            2 => (1 << sender) & all,
            _ => 0,
        }
    }

    /// The vCPUs an ICC_SGI1R_EL1 value from `sender` names (GICv3): those
    /// whose affinity matches Aff3.Aff2.Aff1 and whose Aff0 is in the
    /// target list (offset by RangeSelector), or with IRM all but the sender.
    pub fn sgi1r_targets(&self, sender: usize, value: u64) -> u64 {
        let all = self.all_vcpus().0;
        if value & (1 << 40) != 0 {
            return all & !(1 << sender);
        }
        let upper = (((value >> 48) & 0xff) << 32) | (((value >> 32) & 0xff) << 16) | (((value >> 16) & 0xff) << 8);
        let range = ((value >> 44) & 0xf) * 16;
        let list = value & 0xffff;
        let mut targets = 0;
        for (v, &mpidr) in self.mpidrs.iter().enumerate() {
            let a = affinity(mpidr);
            let aff0 = a & 0xff;
            if a & !0xff == upper && (range..range + 16).contains(&aff0) && list & (1 << (aff0 - range)) != 0 {
                targets |= 1 << v;
            }
        }
        targets
    }

    /// Raises SGI `intid` (0..16) from `sender` on `targets`.
    pub fn send_sgi(&mut self, targets: u64, intid: u32, raised: &(impl RaisedBits + ?Sized)) -> Wake {
        self.raise_on(targets, intid & 0xf, raised)
    }

    // ---- the redistributors (GICv3) ---------------------------------------

    /// A read at `offset` in the redistributor region (vCPU n's frames at
    /// n times [`REDISTRIBUTOR_STRIDE`]).
    pub fn read_redistributor(&self, offset: u64, width: u8, raised: &(impl RaisedBits + ?Sized)) -> u64 {
        let target = (offset / REDISTRIBUTOR_STRIDE) as usize;
        if self.version != Version::V3 || target >= self.mpidrs.len() || !Self::redistributor_width_ok(offset, width) {
            return 0;
        }
        let base = target as u64 * REDISTRIBUTOR_STRIDE;
        Self::read_through(width, offset - base, |o| self.redistributor_word(target, o, raised))
    }

    /// A write at `offset` in the redistributor region; the vCPUs to look again.
    pub fn write_redistributor(
        &mut self,
        offset: u64,
        width: u8,
        value: u64,
        raised: &(impl RaisedBits + ?Sized),
    ) -> Wake {
        let target = (offset / REDISTRIBUTOR_STRIDE) as usize;
        if self.version != Version::V3 || target >= self.mpidrs.len() || !Self::redistributor_width_ok(offset, width) {
            return Wake::default();
        }
        let base = target as u64 * REDISTRIBUTOR_STRIDE;
        let mut wake = Wake::default();
        Self::write_through(width, offset - base, value, |o, v, m| {
            wake.0 |= self.write_redistributor_word(target, o, v, m, raised).0;
        });
        wake
    }

    fn redistributor_word(&self, vcpu: usize, offset: u64, raised: &(impl RaisedBits + ?Sized)) -> u32 {
        let private = &self.private[vcpu];
        match offset {
            reg::GICR_IIDR => reg::IIDR_ARM,
            reg::GICR_TYPER => {
                let last = if vcpu + 1 == self.mpidrs.len() { reg::GICR_TYPER_LAST } else { 0 };
                (vcpu as u32 & 0xffff) << 8 | last
            }
            o if o == reg::GICR_TYPER + 4 => affinity_value(self.mpidrs[vcpu]),
            reg::GICR_WAKER if private.asleep => reg::WAKER_PROCESSOR_SLEEP | reg::WAKER_CHILDREN_ASLEEP,
            o if o == reg::PIDR2_V3 || o == FRAME + reg::PIDR2_V3 => 0x3b,
            o if (reg::CIDR0_V3..reg::CIDR0_V3 + 16).contains(&(o % FRAME)) && o % 4 == 0 => {
                reg::CIDR[((o % FRAME - reg::CIDR0_V3) / 4) as usize]
            }
            o if o >= FRAME => match Self::family_word(o - FRAME) {
                Some((reg::IGROUPR, 0)) => u32::MAX,
                Some((reg::ICFGR, 0)) => reg::SGI_CONFIG,
                Some((reg::ITARGETSR, _)) => 0,
                Some((family, first)) if first < FIRST_SPI => self.interrupt_word(vcpu, family, first, raised),
                _ => 0,
            },
            _ => 0,
        }
    }

    fn write_redistributor_word(
        &mut self,
        vcpu: usize,
        offset: u64,
        value: u32,
        mask: u32,
        raised: &(impl RaisedBits + ?Sized),
    ) -> Wake {
        match offset {
            reg::GICR_WAKER => {
                self.private[vcpu].asleep = value & reg::WAKER_PROCESSOR_SLEEP != 0;
                Wake::default()
            }
            o if o >= FRAME => match Self::family_word(o - FRAME) {
                Some((family @ (reg::ISENABLER | reg::ICENABLER | reg::ISPENDR | reg::ICPENDR), 0)) => {
                    self.write_private_word(vcpu, family, value, raised)
                }
                Some((reg::IPRIORITYR, first)) if first < FIRST_SPI => {
                    for i in 0..4u32 {
                        if mask >> (i * 8) & 0xff != 0 {
                            self.private[vcpu].priority[(first + i) as usize] = (value >> (i * 8)) as u8;
                        }
                    }
                    Wake::default()
                }
                Some((reg::ICFGR, 16)) => {
                    self.private[vcpu].ppi_config = value & reg::CONFIG_EDGE_BITS;
                    Wake::default()
                }
                _ => Wake::default(),
            },
            _ => Wake::default(),
        }
    }
}

/// An MPIDR's affinity as IROUTER and the SGI registers compare it:
/// Aff3 in bits 39:32, Aff2.Aff1.Aff0 in 23:0.
fn affinity(mpidr: u64) -> u64 {
    mpidr & reg::IROUTER_AFFINITY
}

/// GICR_TYPER's upper word: Aff3.Aff2.Aff1.Aff0.
fn affinity_value(mpidr: u64) -> u32 {
    ((((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff)) as u32
}
