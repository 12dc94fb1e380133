//! Dom0's device tree, made from the host's the way Xen 4.17 makes it:
//! Dom0's own memory banks and command line, no boot modules or `xen,*`
//! properties, PSCI through HVC, without what the hypervisor keeps (its
//! UART, the PMU, the GIC's ITS and maintenance interrupt, the hypervisor
//! timer), and with the `/hypervisor` node of Xen's guest binding.

use crate::mm::range::PhysRange;
use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use dtoolkit::fdt::Fdt;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::{Node, Property};

/// What Dom0's tree says beyond the host's.
#[derive(Debug, Clone)]
pub struct Dom0Tree<'a> {
    pub banks: &'a [PhysRange],
    pub bootargs: Option<&'a str>,
    pub initrd: Option<PhysRange>,
    /// Entry 0 of `/hypervisor` `reg`.
    pub grant_region: PhysRange,
    /// Entries 1..N.
    pub extended_regions: &'a [PhysRange],
    /// The PPI (0-15) that signals event channels.
    pub event_ppi: u32,
    /// Host paths of nodes Dom0 must not see (the hypervisor's UART).
    pub hidden: &'a [&'a str],
    /// The host path of the interrupt controller Dom0 gets (`HostTree::gic`).
    pub gic: &'a str,
    /// The MPIDRs of the CPUs Dom0 runs on, when DomUs took some: the
    /// others leave `/cpus` (with `cpu-map`, which names them). `None`: all.
    pub cpus: Option<&'a [u64]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dom0TreeError {
    NoInterruptController,
    NoFreePhandle,
}

impl core::fmt::Display for Dom0TreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoInterruptController => write!(f, "the host tree has no GIC to route event channels through"),
            Self::NoFreePhandle => write!(f, "the host tree uses every phandle"),
        }
    }
}

fn prop(name: &str, value: impl dtoolkit::ToPropertyValue) -> DeviceTreeProperty {
    DeviceTreeProperty::new_unchecked(name, value)
}

fn cells_of(ranges: impl IntoIterator<Item = PhysRange>, address_cells: u32, size_cells: u32) -> Vec<u32> {
    let push = |out: &mut Vec<u32>, value: u64, cells: u32| {
        if cells == 2 {
            out.push((value >> 32) as u32);
        }
        out.push(value as u32);
    };
    let mut out = Vec::new();
    for r in ranges {
        push(&mut out, r.start, address_cells);
        push(&mut out, r.size(), size_cells);
    }
    out
}

fn compatible_has(node: &DeviceTreeNode, wanted: &[&str]) -> bool {
    node.property("compatible")
        .is_some_and(|p| p.value().split(|&b| b == 0).any(|s| wanted.iter().any(|w| w.as_bytes() == s)))
}

fn u32_prop(node: &DeviceTreeNode, name: &str) -> Option<u32> {
    match node.property(name)?.value() {
        &[a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d])),
        _ => None,
    }
}

/// The largest phandle used anywhere under `node`.
fn max_phandle(node: &DeviceTreeNode) -> u32 {
    let own = ["phandle", "linux,phandle"].iter().filter_map(|p| u32_prop(node, p)).max().unwrap_or(0);
    node.children().map(max_phandle).fold(own, u32::max)
}

/// Builds Dom0's blob from the host tree.
pub fn build(host: &Fdt<'_>, spec: &Dom0Tree<'_>) -> Result<Vec<u8>, Dom0TreeError> {
    let mut tree = DeviceTree::from_fdt(host);
    tree.memory_reservations.clear();
    // The GIC as Dom0 gets it: no ITS, no maintenance interrupt, no child
    // address space; a phandle (one no other node uses) if it has none.
    let fresh_phandle = max_phandle(&tree.root).checked_add(1).ok_or(Dom0TreeError::NoFreePhandle)?;
    let gic = tree.find_node_mut(spec.gic).ok_or(Dom0TreeError::NoInterruptController)?;
    let its: Vec<String> =
        gic.children().filter(|c| compatible_has(c, &["arm,gic-v3-its"])).map(|c| String::from(c.name())).collect();
    for name in its {
        gic.remove_child(&name);
    }
    gic.remove_property("interrupts");
    gic.remove_property("ranges");
    let gic_phandle = match u32_prop(gic, "phandle") {
        Some(p) => p,
        None => {
            gic.add_property(prop("phandle", fresh_phandle));
            fresh_phandle
        }
    };
    // The hypervisor's own devices, wherever they sit.
    for path in spec.hidden {
        if let Some((parent, leaf)) = path.rsplit_once('/')
            && let Some(parent) = tree.find_node_mut(if parent.is_empty() { "/" } else { parent })
        {
            parent.remove_child(leaf);
        }
    }
    if let (Some(kept), Some(cpus)) = (spec.cpus, tree.find_node_mut("/cpus")) {
        let cpu_cells = u32_prop(cpus, "#address-cells").unwrap_or(1);
        let mpidr = |n: &DeviceTreeNode| {
            let reg = n.property("reg")?;
            let cells: Vec<u32> = crate::dt::props::cells(reg.value()).take(cpu_cells as usize).collect();
            crate::dt::props::number(&cells)
        };
        let doomed: Vec<String> = cpus
            .children()
            .filter(|n| {
                n.name() == "cpu-map"
                    || (n.property("device_type").is_some_and(|p| p.value() == b"cpu\0")
                        && !mpidr(n).is_some_and(|m| kept.contains(&m)))
            })
            .map(|n| String::from(n.name()))
            .collect();
        for name in doomed {
            cpus.remove_child(&name);
        }
    }
    let root = &mut tree.root;
    let address_cells = u32_prop(root, "#address-cells").unwrap_or(2);
    let size_cells = u32_prop(root, "#size-cells").unwrap_or(1);

    // Nodes Dom0 does not get, by what they are.
    let doomed: Vec<String> = root
        .children()
        .filter(|n| {
            let name = n.name();
            let is_memory = n.property("device_type").is_some_and(|p| p.value() == b"memory\0");
            is_memory || compatible_has(n, &["arm,armv8-pmuv3", "arm,cortex-a15-pmu"]) || name == "hypervisor"
        })
        .map(|n| String::from(n.name()))
        .collect();
    for name in doomed {
        root.remove_child(&name);
    }

    // Memory: one node, every bank.
    let first = spec.banks.first().map_or(0, |b| b.start);
    root.add_child(
        DeviceTreeNode::builder(format!("memory@{first:x}"))
            .expect("valid node name")
            .property(prop("device_type", "memory"))
            .property(prop("reg", cells_of(spec.banks.iter().copied(), address_cells, size_cells)))
            .build(),
    );

    // /chosen: Dom0's command line and initrd, nothing else of the boot's.
    let mut chosen = DeviceTreeNode::new_unchecked("chosen");
    if let Some(args) = spec.bootargs {
        chosen.add_property(prop("bootargs", args));
    }
    if let Some(initrd) = spec.initrd {
        chosen.add_property(prop("linux,initrd-start", initrd.start));
        chosen.add_property(prop("linux,initrd-end", initrd.end));
    }
    root.remove_child("chosen");
    root.add_child(chosen);

    // PSCI: Linux under a hypervisor calls through HVC.
    if let Some(psci) = root.children_mut().find(|n| compatible_has(n, &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])) {
        psci.add_property(prop("method", "hvc"));
    }

    // The timer loses the hypervisor timer (its fourth interrupt).
    if let Some(timer) = root.children_mut().find(|n| compatible_has(n, &["arm,armv8-timer"])) {
        let value = timer.property("interrupts").map(|p| p.value().to_vec());
        if let (Some(value), Some(p)) = (value, timer.property_mut("interrupts"))
            && value.len() == 4 * 12
        {
            p.set_value(value[..36].to_vec());
        }
    }

    // Xen's guest binding: reg[0] the grant table, reg[1..] the regions.
    let reg = cells_of(
        core::iter::once(spec.grant_region).chain(spec.extended_regions.iter().copied()),
        address_cells,
        size_cells,
    );
    root.add_child(
        DeviceTreeNode::builder("hypervisor")
            .expect("valid node name")
            .property(prop("compatible", vec!["xen,xen-4.17", "xen,xen"]))
            .property(prop("reg", reg))
            // PPI, level-triggered high, all CPUs (the mask matters on GICv2).
            .property(prop("interrupts", vec![1u32, spec.event_ppi, 0xf08]))
            .property(prop("interrupt-parent", gic_phandle))
            .build(),
    );
    Ok(tree.to_dtb())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::host::HostTree;
    use crate::dt::testing::*;

    const GIB: u64 = 1 << 30;

    fn host() -> Vec<u8> {
        let tree = virt(&[(0x4000_0000, 2 * GIB)])
            .edit_child("chosen", |c| {
                c.str("xen,xen-bootargs", "loglvl=all").str("xen,dom0-bootargs", "console=hvc0").child(
                    node("module@42000000")
                        .strs("compatible", &["multiboot,kernel", "multiboot,module"])
                        .reg64(&[(0x4200_0000, 0x1000)]),
                )
            })
            .child(node("psci").strs("compatible", &["arm,psci-1.0", "arm,psci-0.2"]).str("method", "smc"))
            .child(node("pmu").str("compatible", "arm,armv8-pmuv3").cells("interrupts", &[1, 7, 4]))
            .child(
                node("timer")
                    .str("compatible", "arm,armv8-timer")
                    .cells("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]),
            );
        blob(&tree, &[(0x4800_0000, 0x1000)])
    }

    fn spec<'a>(banks: &'a [PhysRange], regions: &'a [PhysRange]) -> Dom0Tree<'a> {
        Dom0Tree {
            banks,
            bootargs: Some("console=hvc0"),
            initrd: Some(PhysRange::new(0x7000_0000, 0x7010_0000)),
            grant_region: PhysRange::new(0x4020_0000, 0x4024_0000),
            extended_regions: regions,
            event_ppi: 0,
            hidden: &["/pl011@9000000"],
            gic: "/intc@8000000",
            cpus: None,
        }
    }

    #[test]
    fn only_dom0s_own_cpus_when_domus_took_some() {
        let host = blob(
            &virt(&[(0x4000_0000, GIB)]).edit_child("cpus", |c| c.child(node("cpu-map").child(node("socket0")))),
            &[],
        );
        let banks = [PhysRange::new(0x6000_0000, 0x8000_0000)];
        let out = build(&Fdt::new(&host).unwrap(), &Dom0Tree { cpus: Some(&[0]), ..spec(&banks, &[]) }).unwrap();
        let t = HostTree::parse(&out).unwrap();
        assert_eq!(t.cpus.iter().map(|c| c.mpidr).collect::<Vec<_>>(), vec![0]);
        assert!(Fdt::new(&out).unwrap().find_node("/cpus/cpu-map").is_none());
        let out = build(&Fdt::new(&host).unwrap(), &spec(&banks, &[])).unwrap();
        assert_eq!(HostTree::parse(&out).unwrap().cpus.len(), 2);
        assert!(Fdt::new(&out).unwrap().find_node("/cpus/cpu-map").is_some(), "unchanged without DomUs");
    }

    /// The hypervisor's UART and the GIC found by their paths, at any depth.
    #[test]
    fn nodes_below_the_root_are_found_by_path() {
        let soc = node("soc")
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[2])
            .child(node("serial@9000000").str("compatible", "arm,pl011").reg64(&[(0x900_0000, 0x1000)]))
            .child(node("serial@9001000").str("compatible", "arm,pl011").reg64(&[(0x900_1000, 0x1000)]))
            .child(
                node("gic@8000000")
                    .strs("compatible", &["arm,gic-v3"])
                    .flag("interrupt-controller")
                    .cells("interrupts", &[1, 9, 4]),
            );
        let host = blob(&virt(&[(0x4000_0000, 2 * GIB)]).child(soc), &[]);
        let banks = [PhysRange::new(0x6000_0000, 0x8000_0000)];
        let spec = Dom0Tree { hidden: &["/soc/serial@9000000"], gic: "/soc/gic@8000000", ..spec(&banks, &[]) };
        let out = build(&Fdt::new(&host).unwrap(), &spec).unwrap();
        let fdt = Fdt::new(&out).unwrap();
        assert!(fdt.find_node("/soc/serial@9000000").is_none(), "the hypervisor's UART is hidden");
        assert!(fdt.find_node("/soc/serial@9001000").is_some(), "another UART stays");
        let gic = fdt.find_node("/soc/gic@8000000").unwrap();
        assert!(gic.property("interrupts").is_none(), "no maintenance interrupt");
        let phandle = gic.property("phandle").unwrap().value().to_vec();
        assert_eq!(fdt.find_node("/hypervisor").unwrap().property("interrupt-parent").unwrap().value(), phandle);
        let missing = Dom0Tree { gic: "/soc/gic@9999", ..spec };
        assert_eq!(build(&Fdt::new(&host).unwrap(), &missing), Err(Dom0TreeError::NoInterruptController));
    }

    #[test]
    fn dom0_tree_is_what_xen_gives() {
        let host = host();
        let banks = [PhysRange::new(0x6000_0000, 0x8000_0000)];
        let regions = [PhysRange::new(0x4200_0000, 0x6000_0000), PhysRange::new(0x8000_0000, 0xc000_0000)];
        let out = build(&Fdt::new(&host).unwrap(), &spec(&banks, &regions)).unwrap();

        // Our own reader accepts it: one bank, no modules, Dom0's command line.
        let t = HostTree::parse(&out).unwrap();
        assert_eq!(t.banks.as_slice(), &banks);
        assert!(t.modules.is_empty());
        assert!(t.reserved.is_empty(), "no memreserve entries");
        assert_eq!(t.dom0_cmdline.map(|c| c.text), Some("console=hvc0"));
        assert!(t.console.is_none(), "the hypervisor's UART is gone");
        let gic = t.gic.unwrap();
        assert_eq!(gic.maintenance_intid, None);

        let fdt = Fdt::new(&out).unwrap();
        let chosen = fdt.find_node("/chosen").unwrap();
        assert!(chosen.properties().all(|p| !p.name().starts_with("xen,")));
        assert!(chosen.property("stdout-path").is_none());
        assert_eq!(chosen.property("linux,initrd-start").unwrap().value(), 0x7000_0000u64.to_be_bytes());
        assert!(fdt.find_node("/pmu").is_none());
        assert!(fdt.find_node("/intc@8000000/its@8080000").is_none());
        assert_eq!(fdt.find_node("/psci").unwrap().property("method").unwrap().value(), b"hvc\0");
        assert_eq!(fdt.find_node("/timer").unwrap().property("interrupts").unwrap().value().len(), 36);

        let hyp = fdt.find_node("/hypervisor").unwrap();
        assert_eq!(hyp.property("compatible").unwrap().value(), b"xen,xen-4.17\0xen,xen\0");
        let reg: Vec<u32> = crate::dt::props::cells(hyp.property("reg").unwrap().value()).collect();
        assert_eq!(
            reg,
            vec![0, 0x4020_0000, 0, 0x4_0000, 0, 0x4200_0000, 0, 0x1e00_0000, 0, 0x8000_0000, 0, 0x4000_0000]
        );
        assert_eq!(hyp.property("interrupt-parent").unwrap().value(), 0x8001u32.to_be_bytes());
        assert_eq!(hyp.property("interrupts").unwrap().value(), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xf, 8]);
    }

    #[test]
    fn no_regions_leaves_only_the_grant_entry() {
        let host = host();
        let banks = [PhysRange::new(0x6000_0000, 0x8000_0000), PhysRange::new(0x1_0000_0000, 0x1_4000_0000)];
        let out = build(&Fdt::new(&host).unwrap(), &spec(&banks, &[])).unwrap();
        let fdt = Fdt::new(&out).unwrap();
        assert_eq!(fdt.find_node("/hypervisor").unwrap().property("reg").unwrap().value().len(), 16);
        assert_eq!(HostTree::parse(&out).unwrap().banks.as_slice(), &banks);
    }

    #[test]
    fn a_gic_without_phandle_gets_one_nobody_uses() {
        let tree = virt(&[(0x4000_0000, GIB)])
            .edit_child("intc@8000000", |g| N {
                props: g.props.into_iter().filter(|(n, _)| n != "phandle").collect(),
                ..g
            })
            .child(node("clock").cells("phandle", &[0xfff0]));
        let host = blob(&tree, &[]);
        let banks = [PhysRange::new(0x6000_0000, 0x8000_0000)];
        let out = build(&Fdt::new(&host).unwrap(), &spec(&banks, &[])).unwrap();
        let fdt = Fdt::new(&out).unwrap();
        let parent = fdt.find_node("/hypervisor").unwrap().property("interrupt-parent").unwrap().value().to_vec();
        assert_eq!(parent, 0xfff1u32.to_be_bytes());
        assert_eq!(fdt.find_node("/intc@8000000").unwrap().property("phandle").unwrap().value(), parent);
    }

    #[test]
    fn passes_dtc_without_warnings() {
        let host = host();
        let banks = [PhysRange::new(0x6000_0000, 0x8000_0000)];
        let regions = [PhysRange::new(0x8000_0000, 0xc000_0000)];
        let out = build(&Fdt::new(&host).unwrap(), &spec(&banks, &regions)).unwrap();
        let path = std::env::temp_dir().join(format!("dom0-{}.dtb", std::process::id()));
        std::fs::write(&path, &out).unwrap();
        // Xen's binding names the node plain `hypervisor` (Linux looks it up
        // by that name) although it has a `reg`: the one check we must waive.
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
