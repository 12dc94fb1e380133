//! Every MMIO range of the host tree: the `reg` of each enabled device node
//! and the CPU-side windows of PCI host bridges (`ranges` of nodes with
//! `device_type = "pci"`). What Dom0 gets passed through, and what an
//! extended region must never cover.

use super::DtError;
use super::props::u32_of;
use super::walk::{Descend, walk};
use crate::mm::range::PhysRange;
use alloc::vec::Vec;
use dtoolkit::fdt::Fdt;
use dtoolkit::Property;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRangeKind {
    /// A node's `reg` entry.
    Reg,
    /// A PCI host bridge aperture.
    PciWindow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRange {
    pub range: PhysRange,
    pub kind: DeviceRangeKind,
}

/// Collects the MMIO ranges of every enabled node but RAM (`device_type =
/// "memory"`), `/reserved-memory`, `/cpus` and `/chosen` (whose `reg`s are
/// not devices); PCI apertures through the buses above them.
pub fn device_ranges(fdt: &Fdt<'_>) -> Result<Vec<DeviceRange>, DtError> {
    let mut out = Vec::new();
    walk(fdt, &mut |visit| {
        let props = visit.props;
        // RAM by what it is, as the host-tree reader and Dom0's tree know it.
        let not_devices = props.device_type_is("memory")
            || ["/reserved-memory", "/cpus", "/chosen"].iter().any(|p| visit.path == *p);
        if props.is_disabled() || (visit.depth == 1 && not_devices) {
            return Ok(Descend::No);
        }
        if let Some(reg) = props.reg {
            out.extend(visit.bus.regs(reg.value()).filter_map(Result::ok).filter(|r| !r.is_empty()).map(|range| DeviceRange { range, kind: DeviceRangeKind::Reg }));
        }
        if let (true, Some(ranges)) = (props.device_type_is("pci"), props.ranges) {
            // PCI's defaults: three address cells, two size cells.
            let child_cells = props.address_cells.as_ref().and_then(u32_of).unwrap_or(3);
            let size_cells = props.size_cells.as_ref().and_then(u32_of).unwrap_or(2);
            out.extend(
                visit
                    .bus
                    .ranges_cpu_side(ranges.value(), child_cells, size_cells)
                    .filter(|r| !r.is_empty())
                    .map(|range| DeviceRange { range, kind: DeviceRangeKind::PciWindow }),
            );
        }
        Ok(Descend::Yes)
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::testing::*;

    #[test]
    fn regs_and_pci_windows_but_not_memory_or_cpus() {
        let tree = virt(&[(0x4000_0000, 1 << 30)])
            .child(
                node("pcie@10000000")
                    .str("device_type", "pci")
                    .cells("#address-cells", &[3])
                    .cells("#size-cells", &[2])
                    .reg64(&[(0x40_1000_0000, 0x1000_0000)])
                    .cells(
                        "ranges",
                        &[
                            0x0100_0000, 0, 0, 0, 0x3eff_0000, 0, 0x1_0000, // I/O
                            0x0200_0000, 0, 0x1000_0000, 0, 0x1000_0000, 0, 0x2eff_0000, // 32-bit MMIO
                        ],
                    ),
            )
            .child(node("disabled@a000000").str("status", "disabled").reg64(&[(0xa00_0000, 0x200)]));
        let b = blob(&tree, &[]);
        let fdt = Fdt::new(&b).unwrap();
        let ranges = device_ranges(&fdt).unwrap();
        let regs: Vec<_> = ranges.iter().filter(|d| d.kind == DeviceRangeKind::Reg).map(|d| d.range.start).collect();
        assert_eq!(regs, vec![0x900_0000, 0x800_0000, 0x80a_0000, 0x808_0000, 0x40_1000_0000]);
        let windows: Vec<_> = ranges.iter().filter(|d| d.kind == DeviceRangeKind::PciWindow).map(|d| d.range).collect();
        assert_eq!(windows, vec![PhysRange::new(0x3eff_0000, 0x3f00_0000), PhysRange::new(0x1000_0000, 0x3eff_0000)]);
    }

    /// RAM is known by its device_type, whatever its name; a PCI bridge
    /// behind a bus with an offset has its apertures translated.
    #[test]
    fn ram_by_type_and_apertures_through_their_bus() {
        let bridge = node("pcie@0")
            .str("device_type", "pci")
            .cells("#address-cells", &[3])
            .cells("#size-cells", &[2])
            .cells("ranges", &[0x0200_0000, 0, 0x1000_0000, 0x1000_0000, 0, 0x100_0000]);
        let soc = node("soc")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[1])
            .cells("ranges", &[0x1000_0000, 0, 0x2000_0000, 0x1000_0000]) // child 0x1000_0000 at CPU 0x2000_0000
            .child(bridge);
        let tree = virt(&[(0x4000_0000, 1 << 30)])
            .child(node("dram@80000000").str("device_type", "memory").reg64(&[(0x8000_0000, 0x1000_0000)]))
            .child(soc);
        let b = blob(&tree, &[]);
        let ranges = device_ranges(&Fdt::new(&b).unwrap()).unwrap();
        assert!(ranges.iter().all(|d| !d.range.overlaps(&PhysRange::new(0x8000_0000, 0x9000_0000))), "{ranges:x?}");
        let windows: Vec<_> = ranges.iter().filter(|d| d.kind == DeviceRangeKind::PciWindow).map(|d| d.range).collect();
        assert_eq!(windows, vec![PhysRange::new(0x2000_0000, 0x2100_0000)]);
    }
}
