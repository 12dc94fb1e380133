//! A DomU's device tree, made from nothing in the shape Xen 4.17 gives a
//! dom0less DomU (`prepare_dtb_domU`): root cells 2/2 (and, as there, no
//! root `compatible` or `interrupt-parent`: each device names its own),
//! `/chosen` with the command line and initrd, PSCI over HVC, one `/cpus`
//! entry per vCPU with the host CPUs' `compatible`, its memory, the GIC
//! and timer at Xen's guest addresses, `/hypervisor` when `xen,enhanced`
//! asks for it, and with `vpl011` the emulated UART
//! (`make_vpl011_uart_node`), which unlike Xen 4.17's tree
//! `/chosen/stdout-path` names, so a kernel without `console=` writes
//! there. No host device appears. The addresses and interrupts are the
//! caller's (Xen's guest layout, `domu::layout`).

use crate::mm::range::GuestRange;
use alloc::vec::Vec;
use alloc::{format, vec};
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

/// Xen's GUEST_PHANDLE_GIC.
const GIC_PHANDLE: u32 = 65000;
/// A PPI entry's flags: level-triggered, active low, every CPU (Xen's).
const PPI_FLAGS: u32 = 0xf08;
/// The vPL011's SPI entry's flags as Xen's `set_interrupt` writes them:
/// level-triggered, active high, with a CPU mask of 0xf it puts there too.
const UART_FLAGS: u32 = 0xf04;
/// The vPL011's `current-speed`: Xen's default, which Linux's
/// `sbsa-uart` driver needs to probe.
const UART_SPEED: u32 = 115_200;

/// The GIC node of a DomU's tree, as Xen 4.17 writes it for the host's
/// GIC version (`make_gicv3_domU_node`, `make_gicv2_domU_node`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicNode {
    /// `arm,gic-v3`: the distributor and the redistributors of all its vCPUs.
    V3 { gicd: GuestRange, gicr: GuestRange },
    /// `arm,cortex-a15-gic`: the distributor and the CPU interface.
    V2 { gicd: GuestRange, gicc: GuestRange },
}

/// What a DomU's tree says.
#[derive(Debug, Clone)]
pub struct DomUTree<'a> {
    pub ram: &'a [GuestRange],
    /// Each vCPU's virtual MPIDR affinity, by vCPU id.
    pub vcpu_mpidrs: &'a [u64],
    /// The host's first CPU's `compatible` property (its NUL-terminated
    /// strings), which Xen gives every vCPU; `arm,armv8` without one.
    pub cpu_compatible: Option<&'a [u8]>,
    pub bootargs: Option<&'a str>,
    pub initrd: Option<GuestRange>,
    /// The GIC it sees, of the host's version.
    pub gic: GicNode,
    /// The timer's INTIDs: secure physical, non-secure physical, virtual.
    pub timer_intids: [u32; 3],
    /// `xen,enhanced`: a `/hypervisor` node.
    pub hypervisor: Option<Hypervisor<'a>>,
    /// `vpl011`: the emulated SBSA UART's registers and SPI INTID.
    pub uart: Option<(GuestRange, u32)>,
}

/// A DomU's `/hypervisor` node: `reg` is the grant-table region, then the
/// extended regions (Xen's guest binding, as for Dom0).
#[derive(Debug, Clone, Copy)]
pub struct Hypervisor<'a> {
    pub grant_table: GuestRange,
    pub extended_regions: &'a [GuestRange],
    pub event_intid: u32,
}

fn prop(name: &str, value: impl dtoolkit::ToPropertyValue) -> DeviceTreeProperty {
    DeviceTreeProperty::new_unchecked(name, value)
}

/// Two address and two size cells per range.
fn reg(ranges: impl IntoIterator<Item = GuestRange>) -> Vec<u32> {
    ranges
        .into_iter()
        .flat_map(|r| [(r.start >> 32) as u32, r.start as u32, (r.size() >> 32) as u32, r.size() as u32])
        .collect()
}

fn node(name: &str) -> DeviceTreeNode {
    DeviceTreeNode::new_unchecked(name)
}

fn ppi(intid: u32) -> [u32; 3] {
    [1, intid - 16, PPI_FLAGS]
}

pub fn build(spec: &DomUTree<'_>) -> Vec<u8> {
    let mut tree = DeviceTree::new();
    let root = &mut tree.root;
    root.add_property(prop("#address-cells", 2u32));
    root.add_property(prop("#size-cells", 2u32));

    let mut chosen = node("chosen");
    if let Some(args) = spec.bootargs {
        chosen.add_property(prop("bootargs", args));
    }
    if let Some(initrd) = spec.initrd {
        chosen.add_property(prop("linux,initrd-start", initrd.start));
        chosen.add_property(prop("linux,initrd-end", initrd.end));
    }
    let uart_name = spec.uart.map(|(range, _)| format!("sbsa-uart@{:x}", range.start));
    if let Some(name) = &uart_name {
        chosen.add_property(prop("stdout-path", format!("/{name}").as_str()));
    }
    root.add_child(chosen);

    let mut psci = node("psci");
    psci.add_property(prop("compatible", vec!["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]));
    psci.add_property(prop("method", "hvc"));
    root.add_child(psci);

    let mut cpus = node("cpus");
    cpus.add_property(prop("#address-cells", 1u32));
    cpus.add_property(prop("#size-cells", 0u32));
    for &mpidr in spec.vcpu_mpidrs {
        let mut cpu = node(&format!("cpu@{mpidr:x}"));
        cpu.add_property(prop("device_type", "cpu"));
        match spec.cpu_compatible {
            Some(strings) => cpu.add_property(prop("compatible", strings.to_vec())),
            None => cpu.add_property(prop("compatible", "arm,armv8")),
        }
        cpu.add_property(prop("enable-method", "psci"));
        cpu.add_property(prop("reg", mpidr as u32));
        cpus.add_child(cpu);
    }
    root.add_child(cpus);

    let first = spec.ram.first().map_or(0, |b| b.start);
    let mut memory = node(&format!("memory@{first:x}"));
    memory.add_property(prop("device_type", "memory"));
    memory.add_property(prop("reg", reg(spec.ram.iter().copied())));
    root.add_child(memory);

    let (GicNode::V3 { gicd, .. } | GicNode::V2 { gicd, .. }) = spec.gic;
    let mut gic = node(&format!("interrupt-controller@{:x}", gicd.start));
    gic.add_property(prop("#interrupt-cells", 3u32));
    gic.add_property(prop("#address-cells", 0u32));
    gic.add_property(prop("interrupt-controller", Vec::<u8>::new()));
    match spec.gic {
        GicNode::V3 { gicd, gicr } => {
            gic.add_property(prop("compatible", "arm,gic-v3"));
            gic.add_property(prop("#redistributor-regions", 1u32));
            gic.add_property(prop("reg", reg([gicd, gicr])));
        }
        GicNode::V2 { gicd, gicc } => {
            gic.add_property(prop("compatible", "arm,cortex-a15-gic"));
            gic.add_property(prop("reg", reg([gicd, gicc])));
        }
    }
    gic.add_property(prop("phandle", GIC_PHANDLE));
    gic.add_property(prop("linux,phandle", GIC_PHANDLE));
    root.add_child(gic);

    let mut timer = node("timer");
    timer.add_property(prop("compatible", vec!["arm,armv8-timer"]));
    let interrupts: Vec<u32> = spec.timer_intids.into_iter().flat_map(ppi).collect();
    timer.add_property(prop("interrupts", interrupts));
    timer.add_property(prop("interrupt-parent", GIC_PHANDLE));
    root.add_child(timer);

    if let Some(Hypervisor { grant_table, extended_regions, event_intid }) = spec.hypervisor {
        let mut hypervisor = node("hypervisor");
        hypervisor.add_property(prop("compatible", vec!["xen,xen-4.17", "xen,xen"]));
        hypervisor
            .add_property(prop("reg", reg(core::iter::once(grant_table).chain(extended_regions.iter().copied()))));
        hypervisor.add_property(prop("interrupts", ppi(event_intid).to_vec()));
        hypervisor.add_property(prop("interrupt-parent", GIC_PHANDLE));
        root.add_child(hypervisor);
    }

    if let (Some((range, intid)), Some(name)) = (spec.uart, &uart_name) {
        let mut uart = node(name);
        uart.add_property(prop("compatible", "arm,sbsa-uart"));
        uart.add_property(prop("reg", reg([range])));
        uart.add_property(prop("interrupts", vec![0, intid.saturating_sub(32), UART_FLAGS]));
        uart.add_property(prop("interrupt-parent", GIC_PHANDLE));
        uart.add_property(prop("current-speed", UART_SPEED));
        root.add_child(uart);
    }
    tree.to_dtb()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtoolkit::fdt::Fdt;
    use dtoolkit::{Node, Property};

    fn cells(fdt: &Fdt<'_>, path: &str, name: &str) -> Vec<u32> {
        let node = fdt.find_node(path).unwrap_or_else(|| panic!("{path}"));
        let value = node.property(name).unwrap_or_else(|| panic!("{path} {name}")).value().to_vec();
        value.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect()
    }

    #[test]
    fn xen_shaped_domu_tree() {
        let ram = [GuestRange::new(0x4000_0000, 0x4800_0000)];
        let spec = DomUTree {
            ram: &ram,
            vcpu_mpidrs: &[0, 1],
            cpu_compatible: Some(b"arm,cortex-a57\0"),
            bootargs: Some("console=hvc0"),
            initrd: Some(GuestRange::new(0x4300_0000, 0x4300_2000)),
            gic: GicNode::V3 {
                gicd: GuestRange::new(0x300_1000, 0x301_1000),
                gicr: GuestRange::new(0x302_0000, 0x306_0000),
            },
            timer_intids: [29, 30, 27],
            hypervisor: Some(Hypervisor {
                grant_table: GuestRange::new(0x3800_0000, 0x3900_0000),
                extended_regions: &[],
                event_intid: 31,
            }),
            uart: None,
        };
        let blob = build(&spec);
        assert!(blob.len() <= 4096, "Xen's DomU tree fits 4 KiB: {}", blob.len());
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(cells(&fdt, "/memory@40000000", "reg"), vec![0, 0x4000_0000, 0, 0x800_0000]);
        assert_eq!(cells(&fdt, "/cpus/cpu@1", "reg"), vec![1]);
        // As Xen 4.17's: the host CPUs' compatible on each vCPU, and no
        // root compatible or interrupt-parent (each device has its own).
        let cpu = fdt.find_node("/cpus/cpu@1").unwrap();
        assert_eq!(cpu.property("compatible").unwrap().value(), b"arm,cortex-a57\0");
        let root = fdt.find_node("/").unwrap();
        assert!(root.property("compatible").is_none() && root.property("interrupt-parent").is_none());
        for device in ["/timer", "/hypervisor"] {
            assert_eq!(cells(&fdt, device, "interrupt-parent"), vec![GIC_PHANDLE], "{device}");
        }
        assert_eq!(fdt.find_node("/cpus").unwrap().children().count(), 2);
        assert_eq!(
            cells(&fdt, "/interrupt-controller@3001000", "reg"),
            vec![0, 0x300_1000, 0, 0x1_0000, 0, 0x302_0000, 0, 0x4_0000]
        );
        assert_eq!(cells(&fdt, "/timer", "interrupts"), vec![1, 13, 0xf08, 1, 14, 0xf08, 1, 11, 0xf08]);
        assert_eq!(cells(&fdt, "/hypervisor", "reg"), vec![0, 0x3800_0000, 0, 0x100_0000]);
        assert_eq!(cells(&fdt, "/hypervisor", "interrupts"), vec![1, 15, 0xf08]);
        assert_eq!(cells(&fdt, "/chosen", "linux,initrd-start"), vec![0, 0x4300_0000]);
        // Extended regions follow the grant table, in root cells.
        let regions = [GuestRange::new(0x4800_0000, 0x1_0000_0000), GuestRange::new(0x2_0000_0000, 0x100_0000_0000)];
        let hypervisor = spec.hypervisor.map(|h| Hypervisor { extended_regions: &regions, ..h });
        let fdt_blob = build(&DomUTree { hypervisor, ..spec.clone() });
        let with_regions = Fdt::new(&fdt_blob).unwrap();
        assert_eq!(
            cells(&with_regions, "/hypervisor", "reg"),
            vec![0, 0x3800_0000, 0, 0x100_0000, 0, 0x4800_0000, 0, 0xb800_0000, 2, 0, 0xfe, 0]
        );
        let psci = fdt.find_node("/psci").unwrap();
        assert_eq!(psci.property("method").unwrap().value(), b"hvc\0");
        let tree = crate::dt::host::HostTree::parse(&blob).unwrap();
        assert_eq!(tree.banks.as_slice(), &[crate::mm::range::PhysRange::new(0x4000_0000, 0x4800_0000)]);
        assert_eq!(tree.gic.as_ref().map(|g| g.distributor.start), Some(0x300_1000));

        let blob = build(&DomUTree { hypervisor: None, bootargs: None, initrd: None, ..spec.clone() });
        let fdt = Fdt::new(&blob).unwrap();
        assert!(fdt.find_node("/hypervisor").is_none());
        assert!(fdt.find_node("/sbsa-uart@22000000").is_none());
        assert!(fdt.find_node("/chosen").unwrap().property("stdout-path").is_none());

        assert!(fdt.find_node("/chosen").unwrap().property("bootargs").is_none());
        // A GICv2 host's DomU: Xen's GICD and GICC.
        let gic = GicNode::V2 {
            gicd: GuestRange::new(0x300_1000, 0x300_2000),
            gicc: GuestRange::new(0x300_2000, 0x300_4000),
        };
        let blob = build(&DomUTree { gic, ..spec });
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(
            cells(&fdt, "/interrupt-controller@3001000", "reg"),
            vec![0, 0x300_1000, 0, 0x1000, 0, 0x300_2000, 0, 0x2000]
        );
        let node = fdt.find_node("/interrupt-controller@3001000").unwrap();
        assert_eq!(node.property("compatible").unwrap().value(), b"arm,cortex-a15-gic\0");
        let tree = crate::dt::host::HostTree::parse(&blob).unwrap();
        assert_eq!(tree.gic.as_ref().map(|g| g.version), Some(crate::dt::host::GicVersion::V2));
    }

    #[test]
    fn the_vpl011_node_is_xens_and_stdout_path_names_it() {
        let ram = [GuestRange::new(0x4000_0000, 0x4800_0000)];
        let spec = DomUTree {
            ram: &ram,
            vcpu_mpidrs: &[0],
            cpu_compatible: None,
            bootargs: None,
            initrd: None,
            gic: GicNode::V3 {
                gicd: GuestRange::new(0x300_1000, 0x301_1000),
                gicr: GuestRange::new(0x302_0000, 0x304_0000),
            },
            timer_intids: [29, 30, 27],
            hypervisor: None,
            uart: Some((GuestRange::new(0x2200_0000, 0x2200_1000), 32)),
        };
        let blob = build(&spec);
        let fdt = Fdt::new(&blob).unwrap();
        let uart = fdt.find_node("/sbsa-uart@22000000").unwrap();
        assert_eq!(uart.property("compatible").unwrap().value(), b"arm,sbsa-uart\0");
        assert_eq!(cells(&fdt, "/sbsa-uart@22000000", "reg"), vec![0, 0x2200_0000, 0, 0x1000]);
        assert_eq!(cells(&fdt, "/sbsa-uart@22000000", "interrupts"), vec![0, 0, 0xf04]);
        assert_eq!(cells(&fdt, "/sbsa-uart@22000000", "interrupt-parent"), vec![GIC_PHANDLE]);
        assert_eq!(cells(&fdt, "/sbsa-uart@22000000", "current-speed"), vec![115_200]);
        let chosen = fdt.find_node("/chosen").unwrap();
        assert_eq!(chosen.property("stdout-path").unwrap().value(), b"/sbsa-uart@22000000\0");
        assert!(uart.property("clocks").is_none(), "Xen writes no clocks");
    }

    #[test]
    fn passes_dtc_without_warnings() {
        let ram = [GuestRange::new(0x4000_0000, 0x4800_0000), GuestRange::new(0x2_0000_0000, 0x2_1000_0000)];
        let spec = DomUTree {
            ram: &ram,
            vcpu_mpidrs: &[0, 1, 2],
            cpu_compatible: None,
            bootargs: Some("console=hvc0"),
            initrd: None,
            gic: GicNode::V3 {
                gicd: GuestRange::new(0x300_1000, 0x301_1000),
                gicr: GuestRange::new(0x302_0000, 0x308_0000),
            },
            timer_intids: [29, 30, 27],
            hypervisor: Some(Hypervisor {
                grant_table: GuestRange::new(0x3800_0000, 0x3900_0000),
                extended_regions: &[GuestRange::new(0x5000_0000, 0x1_0000_0000)],
                event_intid: 31,
            }),
            uart: Some((GuestRange::new(0x2200_0000, 0x2200_1000), 32)),
        };
        let path = std::env::temp_dir().join(format!("domu-{}.dtb", std::process::id()));
        std::fs::write(&path, build(&spec)).unwrap();
        // As for Dom0's: Xen's binding names the node plain `hypervisor`.
        let result = std::process::Command::new("dtc")
            .args(["-I", "dtb", "-O", "dts", "-o", "/dev/null", "-W", "no-unit_address_vs_reg"])
            .arg(&path)
            .output();
        let _ = std::fs::remove_file(&path);
        let result = result.expect("dtc is installed by qemu/setup");
        assert!(result.status.success());
        let warnings = String::from_utf8_lossy(&result.stderr);
        assert!(warnings.trim().is_empty(), "dtc warns: {warnings}");
    }
}
