//! Every MMIO range of the host tree: the `reg` of each device node and the
//! CPU-side windows of PCI host bridges (`ranges` of nodes with
//! `device_type = "pci"`), each marked enabled or not. The enabled ones are
//! what Dom0 gets passed through; none, enabled or not, may be covered by
//! an extended region.

use super::DtError;
use super::props::u32_of;
use super::walk::{Descend, walk};
use crate::mm::range::PhysRange;
use alloc::vec::Vec;
use dtoolkit::Property;
use dtoolkit::fdt::Fdt;

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
    /// False for a node with `status = "disabled"` (or any status but
    /// "okay"), and for everything below one: Dom0 does not get it, but the
    /// device is still there.
    pub enabled: bool,
}

/// Collects the MMIO ranges of every node but RAM (`device_type =
/// "memory"`), `/reserved-memory`, `/cpus` and `/chosen` (whose `reg`s are
/// not devices); PCI apertures through the buses above them. Disabled
/// subtrees are read as far as they are well formed: a malformed one is
/// not an error, since nothing uses it.
pub fn device_ranges(fdt: &Fdt<'_>) -> Result<Vec<DeviceRange>, DtError> {
    let mut out = Vec::new();
    // The depth of the disabled node whose subtree the walk is in: the walk
    // goes parents first, so the subtree ends at the next node no deeper.
    let mut disabled_at: Option<usize> = None;
    walk(fdt, &mut |visit| {
        if disabled_at.is_some_and(|depth| visit.depth <= depth) {
            disabled_at = None;
        }
        let props = visit.props;
        // RAM by what it is, as the host-tree reader and Dom0's tree know it.
        let not_devices =
            props.device_type_is("memory") || ["/reserved-memory", "/cpus", "/chosen"].contains(&visit.path);
        if visit.depth == 1 && not_devices {
            return Ok(Descend::No);
        }
        if disabled_at.is_none() && props.is_disabled() {
            disabled_at = Some(visit.depth);
        }
        let enabled = disabled_at.is_none();
        if let Some(reg) = props.reg {
            out.extend(
                visit.bus.regs(reg.value()).filter_map(Result::ok).filter(|r| !r.is_empty()).map(|range| DeviceRange {
                    range,
                    kind: DeviceRangeKind::Reg,
                    enabled,
                }),
            );
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
                    .map(|range| DeviceRange { range, kind: DeviceRangeKind::PciWindow, enabled }),
            );
        }
        Ok(if enabled { Descend::Yes } else { Descend::BestEffort })
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
                            0x0100_0000,
                            0,
                            0,
                            0,
                            0x3eff_0000,
                            0,
                            0x1_0000, // I/O
                            0x0200_0000,
                            0,
                            0x1000_0000,
                            0,
                            0x1000_0000,
                            0,
                            0x2eff_0000, // 32-bit MMIO
                        ],
                    ),
            )
            .child(node("disabled@a000000").str("status", "disabled").reg64(&[(0xa00_0000, 0x200)]));
        let b = blob(&tree, &[]);
        let fdt = Fdt::new(&b).unwrap();
        let ranges = device_ranges(&fdt).unwrap();
        let regs: Vec<_> =
            ranges.iter().filter(|d| d.kind == DeviceRangeKind::Reg && d.enabled).map(|d| d.range.start).collect();
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

    /// Disabled nodes are listed, not enabled, and so is everything below
    /// one, even a child that says "okay"; a malformed disabled subtree
    /// ends its own walk, not the whole one, and the nodes after it are
    /// read as usual.
    #[test]
    fn disabled_subtrees_are_listed_and_never_fatal() {
        let disabled_bus = node("bus@20000000")
            .str("status", "disabled")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[1])
            .cells("ranges", &[0, 0, 0x2000_0000, 0x100_0000])
            .child(node("dev@1000").str("status", "okay").cells("reg", &[0x1000, 0x100]));
        let broken = node("broken@30000000")
            .str("status", "disabled")
            .reg64(&[(0x3000_0000, 0x1000)])
            .cells("#address-cells", &[99])
            .child(node("child@0").cells("reg", &[0, 0]));
        let tree = virt(&[(0x4000_0000, 1 << 30)])
            .child(node("disabled@a000000").str("status", "disabled").reg64(&[(0xa00_0000, 0x200)]))
            .child(disabled_bus)
            .child(broken)
            .child(node("after@c000000").reg64(&[(0xc00_0000, 0x1000)]));
        let b = blob(&tree, &[]);
        let ranges = device_ranges(&Fdt::new(&b).unwrap()).unwrap();
        let enabled = |start: u64| ranges.iter().find(|d| d.range.start == start).map(|d| d.enabled);
        assert_eq!(enabled(0xa00_0000), Some(false));
        assert_eq!(enabled(0x2000_1000), Some(false), "a child of a disabled bus, translated through it");
        assert_eq!(enabled(0x3000_0000), Some(false));
        assert_eq!(enabled(0xc00_0000), Some(true), "the node after a disabled subtree is enabled again");
        assert_eq!(enabled(0x900_0000), Some(true));
    }
}
