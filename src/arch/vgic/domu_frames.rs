//! A DomU's GIC: its emulated distributor and redistributors
//! (`gic::emulated`) as MMIO regions at Xen's guest addresses.

use super::{emulated_gic_of, wake_vcpus};
use crate::domain::mmio::{MmioDevice, MmioRegions, Refused};
use crate::domain::vcpu::Vcpu;
use crate::gic::emulated::{self, EmulatedGic};
use crate::mm::range::GuestRange;

/// A DomU's emulated distributor (`gic::emulated`), at Xen's guest address.
struct EmulatedDistributor;

/// A DomU's emulated redistributors (GICv3), one per vCPU, from Xen's
/// GUEST_GICV3_GICR0_BASE.
struct EmulatedRedistributors;

impl MmioDevice for EmulatedDistributor {
    fn read(&self, vcpu: &Vcpu, offset: u64, width: u8) -> Result<u64, Refused> {
        let (domain, emulated) = emulated_gic_of(vcpu).ok_or(Refused)?;
        Ok(emulated.lock().read_distributor(vcpu.id, offset, width, domain.vcpus.as_slice()))
    }

    fn write(&self, vcpu: &Vcpu, offset: u64, width: u8, value: u64) -> Result<(), Refused> {
        let (domain, emulated) = emulated_gic_of(vcpu).ok_or(Refused)?;
        let wake = emulated.lock().write_distributor(vcpu.id, offset, width, value, domain.vcpus.as_slice());
        wake_vcpus(domain, wake);
        Ok(())
    }
}

impl MmioDevice for EmulatedRedistributors {
    fn read(&self, vcpu: &Vcpu, offset: u64, width: u8) -> Result<u64, Refused> {
        let (domain, emulated) = emulated_gic_of(vcpu).ok_or(Refused)?;
        Ok(emulated.lock().read_redistributor(offset, width, domain.vcpus.as_slice()))
    }

    fn write(&self, vcpu: &Vcpu, offset: u64, width: u8, value: u64) -> Result<(), Refused> {
        let (domain, emulated) = emulated_gic_of(vcpu).ok_or(Refused)?;
        let wake = emulated.lock().write_redistributor(offset, width, value, domain.vcpus.as_slice());
        wake_vcpus(domain, wake);
        Ok(())
    }
}

/// A DomU's emulated GIC regions: the distributor at `distributor` and,
/// on GICv3, the redistributors at `redistributors` (its size from the
/// emulated GIC's vCPU count). A GICv2's CPU interface is the host's
/// virtual one, in the DomU's stage 2, not emulated.
pub fn domu_mmio_regions(emulated: &EmulatedGic, distributor: u64, redistributors: u64) -> MmioRegions {
    let mut regions = MmioRegions::new();
    let gicd = GuestRange::new(distributor, distributor + emulated.version().distributor_size());
    if regions.add(gicd, alloc::boxed::Box::new(EmulatedDistributor)).is_err() {
        log::error!("vGIC: the emulated distributor at {gicd} could not be added");
    }
    if emulated.version() == emulated::Version::V3 {
        let gicr = GuestRange::new(redistributors, redistributors + emulated.redistributors_size());
        if regions.add(gicr, alloc::boxed::Box::new(EmulatedRedistributors)).is_err() {
            log::error!("vGIC: the emulated redistributors at {gicr} could not be added");
        }
    }
    regions
}
