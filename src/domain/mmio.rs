//! A domain's emulated MMIO: a table of guest-physical regions, each with
//! the small handler that answers accesses to it (Jailhouse's shape). The
//! router decodes a trapped access once, finds its region here, and writes
//! the result back; a handler sees only an offset, a width and a value.

use super::vcpu::Vcpu;
use crate::mm::range::{GuestRange, Ipa};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Why a device refused an access: the guest gets a data abort, as for an
/// address with nothing behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// One emulated block of registers.
pub trait MmioDevice: Send + Sync {
    /// A load of `width` bytes (1, 2, 4 or 8) at `offset` from the
    /// region's start: the value, in the low `width` bytes.
    fn read(&self, vcpu: &Vcpu, offset: u64, width: u8) -> Result<u64, Refused>;
    /// A store of the low `width` bytes of `value` at `offset`.
    fn write(&self, vcpu: &Vcpu, offset: u64, width: u8, value: u64) -> Result<(), Refused>;
}

/// A device shared with whoever else reaches it (a DomU's vPL011 is also
/// fed typed input from the console's interrupt).
impl<T: MmioDevice + ?Sized> MmioDevice for alloc::sync::Arc<T> {
    fn read(&self, vcpu: &Vcpu, offset: u64, width: u8) -> Result<u64, Refused> {
        (**self).read(vcpu, offset, width)
    }
    fn write(&self, vcpu: &Vcpu, offset: u64, width: u8, value: u64) -> Result<(), Refused> {
        (**self).write(vcpu, offset, width, value)
    }
}

pub struct MmioRegion {
    /// Where the guest sees it.
    pub range: GuestRange,
    pub device: Box<dyn MmioDevice>,
}

/// A domain's emulated regions, which do not overlap. Few (the GIC's
/// distributor and redistributor ranges), so a linear search is fastest.
#[derive(Default)]
pub struct MmioRegions(Vec<MmioRegion>);

impl MmioRegions {
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds `device` at `range`; refused if it overlaps a region already there.
    pub fn add(&mut self, range: GuestRange, device: Box<dyn MmioDevice>) -> Result<(), Refused> {
        if range.size() == 0 || self.0.iter().any(|r| r.range.overlaps(&range)) {
            return Err(Refused);
        }
        self.0.push(MmioRegion { range, device });
        Ok(())
    }

    /// The region holding `ipa`, and `ipa`'s offset in it.
    pub fn find(&self, ipa: Ipa) -> Option<(&MmioRegion, u64)> {
        self.0.iter().find(|r| r.range.contains(ipa.0)).map(|r| (r, ipa.0 - r.range.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back its offset; refuses writes.
    struct Echo;

    impl MmioDevice for Echo {
        fn read(&self, _: &Vcpu, offset: u64, _: u8) -> Result<u64, Refused> {
            Ok(offset)
        }
        fn write(&self, _: &Vcpu, _: u64, _: u8, _: u64) -> Result<(), Refused> {
            Err(Refused)
        }
    }

    #[test]
    fn finds_the_region_and_offset() {
        let mut regions = MmioRegions::new();
        regions.add(GuestRange::new(0x800_0000, 0x801_0000), Box::new(Echo)).unwrap();
        regions.add(GuestRange::new(0x80a_0000, 0x80e_0000), Box::new(Echo)).unwrap();
        assert_eq!(regions.add(GuestRange::new(0x80d_0000, 0x80f_0000), Box::new(Echo)), Err(Refused));
        assert_eq!(regions.add(GuestRange::new(0x100, 0x100), Box::new(Echo)), Err(Refused));
        let vcpu = Vcpu::new(0, crate::domain::vcpu::Placement::for_vcpu(0));
        let (region, offset) = regions.find(Ipa(0x80a_0008)).unwrap();
        assert_eq!(offset, 8);
        assert_eq!(region.device.read(&vcpu, offset, 4), Ok(8));
        assert!(regions.find(Ipa(0x80e_0000)).is_none());
        assert!(regions.find(Ipa(0x7ff_ffff)).is_none());
        assert_eq!(regions.find(Ipa(0x800_ffff)).map(|(_, o)| o), Some(0xffff));
    }
}
