//! Dom0's view of the physical GIC: the distributor and its own CPUs'
//! redistributors at the host's addresses, every access through the
//! filter that keeps the hypervisor's interrupts and the DomUs' CPUs out
//! of its reach (`gic::filter`, `gic::partition`).

use super::cpu;
use crate::arch::gic::{self, Gic};
use crate::domain::mmio::{MmioDevice, MmioRegions, Refused};
use crate::domain::vcpu::Vcpu;
use crate::gic::filter::Write;
use crate::gic::partition::{Located, RegionView, view_typer};
use crate::gic::registers::{gicd_v2, gicr};
use crate::gic::targets::TargetMap;
use crate::mm::range::GuestRange;

/// The distributor or a redistributor range as Dom0 sees it: the real
/// registers at the same address (Dom0 is 1:1), through the filter; of
/// the redistributors only its own CPUs' (`view`, `gic::partition`). Only
/// the widths the architecture defines reach the hardware.
struct GicFrames {
    gic: &'static Gic,
    base: u64,
    /// A redistributor region's view; `None` for the distributor.
    view: Option<RegionView>,
}

/// Where a Dom0 access goes on the hardware.
struct Target {
    address: u64,
    frame: crate::gic::filter::Frame,
    /// The offset within that frame.
    offset: u64,
    /// In a redistributor: whether it is the last of Dom0's in its region.
    last: bool,
}

impl GicFrames {
    /// The hardware an access at `offset` reaches: `None` where the view
    /// reads as zero (a region with none of Dom0's redistributors),
    /// refused (an abort) past Dom0's redistributors.
    fn locate(&self, offset: u64) -> Result<Option<Target>, Refused> {
        let (address, last) = match &self.view {
            None => (self.base + offset, false),
            Some(view) => match view.locate(offset) {
                Located::Frame { address, last, .. } => (address, last),
                Located::Empty => return Ok(None),
                Located::Absent => return Err(Refused),
            },
        };
        let (frame, offset) = self.gic.frame_of(address).ok_or(Refused)?;
        Ok(Some(Target { address, frame, offset, last }))
    }
}

impl MmioDevice for GicFrames {
    fn read(&self, vcpu: &Vcpu, offset: u64, width: u8) -> Result<u64, Refused> {
        let Some(Target { address, frame: kind, offset, last }) = self.locate(offset)? else { return Ok(0) };
        let valid = self.gic.filter.is_valid(kind, offset, width);
        let mut hardware =
            if valid && !is_write_only(self.gic, kind, offset) { gic::read_register(address, width) } else { 0 };
        if let Some(first_intid) = v2_targets(self.gic, kind, offset) {
            hardware = target_map(vcpu).word_to_virtual(hardware, width, first_intid, vcpu.id);
        }
        if kind == crate::gic::filter::Frame::RedistributorControl && offset == gicr::TYPER {
            hardware = view_typer(hardware, last);
        }
        Ok(self.gic.filter.read(kind, offset, width, hardware))
    }

    fn write(&self, vcpu: &Vcpu, offset: u64, width: u8, value: u64) -> Result<(), Refused> {
        let Some(Target { address, frame: kind, offset, .. }) = self.locate(offset)? else { return Ok(()) };
        let value = match v2_targets(self.gic, kind, offset) {
            Some(_) => target_map(vcpu).word_to_physical(value, width),
            None => value,
        };
        match self.gic.filter.write(kind, offset, width, value) {
            Write::Forward(v) => gic::write_register(address, width, v),
            Write::Merge { keep, value } => {
                let current = gic::read_register(address, width);
                gic::write_register(address, width, (current & keep) | value);
            }
            Write::Drop => log::debug!(
                "d{}: GIC write of {value:#x} to {address:#x} dropped",
                cpu::this_cpu().domain().map_or(0, |d| d.id.0)
            ),
            Write::Sgi(value) => send_sgi_v2(self.gic, vcpu, value),
            Write::Route { value, mask } => {
                // The whole routing register, kept on Dom0's CPUs.
                let register = address & !7;
                let wanted = (gic::read_register(register, 8) & !mask) | value;
                gic::write_register(register, 8, self.gic.dom0.route(wanted, vcpu.placement.mpidr));
            }
        }
        Ok(())
    }
}

/// GICD_SGIR reads as zero: it is write-only, and not read on the hardware.
fn is_write_only(gic: &Gic, frame: crate::gic::filter::Frame, offset: u64) -> bool {
    gic.v2.is_some() && frame == crate::gic::filter::Frame::Distributor && offset == gicd_v2::SGIR
}

/// The offset's first INTID if it is in a GICv2's GICD_ITARGETSR, whose
/// bytes are CPU interface masks, Dom0's or the hardware's.
fn v2_targets(gic: &Gic, frame: crate::gic::filter::Frame, offset: u64) -> Option<u64> {
    use crate::gic::registers::family::ITARGETSR;
    (gic.v2.is_some()
        && frame == crate::gic::filter::Frame::Distributor
        && (ITARGETSR..ITARGETSR + 0x400).contains(&offset))
    .then(|| offset - ITARGETSR)
}

/// Dom0's CPU interface numbers (vCPU n, bit n) against the hardware's,
/// through the placement of `vcpu`'s domain's vCPUs.
fn target_map(vcpu: &Vcpu) -> TargetMap {
    let mut map = TargetMap::default();
    for v in vcpu.domain().into_iter().flat_map(|d| d.vcpus.iter()).take(map.physical.len()) {
        map.physical[v.id] = gic::cpu_interface_mask(v.placement.cpu);
    }
    map
}

/// A GICv2 SGI Dom0 wrote to GICD_SGIR (not the kick SGI: the filter
/// dropped that), sent to the CPUs its vCPUs run on
/// ([`TargetMap::physical_sgir`]).
fn send_sgi_v2(gic: &Gic, vcpu: &Vcpu, value: u32) {
    if let Some(physical) = target_map(vcpu).physical_sgir(value, vcpu.id) {
        gic.write_sgir(physical);
    }
}

/// The GIC's emulated regions for Dom0, a 1:1 domain (it sees the GIC at
/// the host's addresses): the distributor and the redistributors that
/// exist (a GICv2 has none), each region showing only Dom0's own.
pub fn mmio_regions(gic: &'static Gic) -> MmioRegions {
    let mut regions = MmioRegions::new();
    let distributor = (gic.distributor, None);
    let redistributors = gic.redistributors.iter().map(|&range| (range, Some(gic.dom0_view(range))));
    for (range, view) in core::iter::once(distributor).chain(redistributors) {
        let seen_at = GuestRange::identity_of(range);
        if let Some(view) = &view {
            log::info!("GIC: Dom0 sees {} of the redistributors at {range}", view.len());
        }
        if range.size() > 0
            && regions.add(seen_at, alloc::boxed::Box::new(GicFrames { gic, base: range.start, view })).is_err()
        {
            log::error!("GIC: {range} overlaps another GIC range; not emulated");
        }
    }
    regions
}
