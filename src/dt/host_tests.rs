//! Tests of the host device-tree reader on trees built to order.

use super::DtError;
use super::host::*;
use super::testing::*;
use crate::mm::range::PhysRange;
use proptest::prelude::*;

const GIB: u64 = 1 << 30;

fn parse(blob: &[u8]) -> Result<HostTree<'_>, DtError> {
    HostTree::parse(blob)
}

fn r(start: u64, end: u64) -> PhysRange {
    PhysRange::new(start, end)
}

#[test]
fn reads_a_virt_board() {
    let b = blob(&virt(&[(0x4000_0000, GIB)]), &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.banks.as_slice(), &[r(0x4000_0000, 0x8000_0000)]);
    assert_eq!(t.cpus.iter().map(|c| c.mpidr).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(t.cpus[0].enable_method, Some("psci"));
    // Kept whole for a DomU's CPU nodes, as Xen copies it.
    assert_eq!(t.cpus[0].compatible, Some(&b"arm,cortex-a57\0"[..]));
    assert_eq!(t.cpus[1].compatible, None);
    let gic = t.gic.as_ref().unwrap();
    assert_eq!(gic.version, GicVersion::V3);
    assert_eq!(gic.distributor, r(0x800_0000, 0x801_0000));
    assert_eq!(gic.redistributors.as_slice(), &[r(0x80a_0000, 0x900_0000)]);
    assert_eq!(gic.maintenance_intid, Some(25));
    assert_eq!(t.virtual_timer_intid, None, "no timer node");
    let console = t.console.as_ref().unwrap();
    assert_eq!(console.mmio, r(0x900_0000, 0x900_1000));
    assert_eq!(console.intid, Some(33));
    assert_eq!(&*console.path, "/pl011@9000000");
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

/// QEMU's GICv2: GICD, GICC, GICH, GICV; what the hypervisor drives, what
/// Dom0 never gets at its own address, and where Dom0's CPU interface is.
#[test]
fn reads_a_gicv2_and_its_virtualisation_interfaces() {
    let timer = node("timer")
        .strs("compatible", &["arm,armv8-timer", "arm,armv7-timer"])
        .cells("interrupts", &[1, 13, 0xf04, 1, 14, 0xf04, 1, 11, 0xf04, 1, 10, 0xf04]);
    let b = blob(&virt_gicv2(&[(0x4000_0000, GIB)]).child(timer), &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.virtual_timer_intid, Some(27));
    let gic = t.gic.as_ref().unwrap();
    assert_eq!(gic.version, GicVersion::V2);
    assert_eq!(gic.distributor, r(0x800_0000, 0x801_0000));
    assert!(gic.redistributors.is_empty());
    assert_eq!(gic.cpu_interface, Some(r(0x801_0000, 0x802_0000)));
    assert_eq!(gic.hypervisor_interface, Some(r(0x803_0000, 0x804_0000)));
    assert_eq!(gic.virtual_cpu_interface, Some(r(0x804_0000, 0x805_0000)));
    assert_eq!(gic.maintenance_intid, Some(25));
    assert_eq!(
        gic.driven().collect::<Vec<_>>(),
        vec![r(0x800_0000, 0x801_0000), r(0x801_0000, 0x802_0000), r(0x803_0000, 0x804_0000)]
    );
    assert_eq!(gic.kept().count(), 4);
    assert_eq!(gic.virtual_cpu_window(), Some((r(0x801_0000, 0x802_0000), 0x804_0000)));
    // A GICV smaller than GICC: Dom0 sees only as much; one without DIR's page: none.
    let small = Gic { virtual_cpu_interface: Some(r(0x804_0000, 0x804_2000)), ..gic.clone() };
    assert_eq!(small.virtual_cpu_window(), Some((r(0x801_0000, 0x801_2000), 0x804_0000)));
    let tiny = Gic { virtual_cpu_interface: Some(r(0x804_0000, 0x804_1000)), ..gic.clone() };
    assert_eq!(tiny.virtual_cpu_window(), None);
    // A GICv3 keeps what it always kept.
    let v3 = parse(&blob(&virt(&[(0x4000_0000, GIB)]), &[])).unwrap().gic.unwrap();
    assert_eq!(v3.kept().collect::<Vec<_>>(), vec![r(0x800_0000, 0x801_0000), r(0x80a_0000, 0x900_0000)]);
    assert_eq!(v3.virtual_cpu_window(), None);
}

#[test]
fn several_banks_in_one_node_and_across_nodes() {
    let tree = virt(&[(0x4000_0000, GIB)]).child(node("memory@100000000").str("device_type", "memory").reg64(&[
        (0x1_0000_0000, GIB),
        (0x2_0000_0000, 0x1000),
        (0x3_0000_0000, 0),
    ]));
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.banks.len(), 3);
    assert_eq!(t.ram.total(), 2 * GIB + 0x1000);
    // The zero-sized bank is reported, not used.
    assert_eq!(t.warnings.len(), 1);
    assert_eq!(t.warnings[0].what, "zero-sized RAM bank ignored");
}

#[test]
fn overlapping_banks_merge_with_a_warning() {
    let tree = virt(&[(0x4000_0000, GIB), (0x6000_0000, GIB)]);
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.ram.iter().collect::<Vec<_>>(), vec![r(0x4000_0000, 0xa000_0000)]);
    assert!(t.warnings.iter().any(|w| w.what.contains("overlaps")));
}

#[test]
fn one_cell_root() {
    let tree = node("")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[1])
        .child(node("memory").str("device_type", "memory").cells("reg", &[0x8000_0000, 0x1000_0000]));
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.banks.as_slice(), &[r(0x8000_0000, 0x9000_0000)]);
    assert!(t.gic.is_none() && t.console.is_none() && t.cpus.is_empty());
}

#[test]
fn reserved_memory_and_memreserve() {
    let tree = virt(&[(0x4000_0000, GIB)]).child(
        node("reserved-memory")
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[2])
            .flag("ranges")
            .child(node("secmon@50000000").reg64(&[(0x5000_0000, 0x20_0000)]).flag("no-map"))
            .child(node("cma@60000000").reg64(&[(0x6000_0000, 0x100_0000)]).flag("reusable"))
            .child(node("dyn").reg64(&[]).cells("size", &[0, 0x10_0000]))
            .child(node("off@70000000").reg64(&[(0x7000_0000, 0x1000)]).str("status", "disabled")),
    );
    let b = blob(&tree, &[(0x4800_0000, 0x1000)]);
    let t = parse(&b).unwrap();
    let got: Vec<_> = t.reserved.iter().map(|x| (x.range, x.kind)).collect();
    assert_eq!(
        got,
        vec![
            (r(0x4800_0000, 0x4800_1000), ReservationKind::MemReserve),
            (r(0x5000_0000, 0x5020_0000), ReservationKind::ReservedMemory { name: "secmon@50000000", no_map: true }),
            (r(0x6000_0000, 0x6100_0000), ReservationKind::ReservedMemory { name: "cma@60000000", no_map: false }),
        ]
    );
    assert!(t.warnings.iter().any(|w| w.what.contains("dynamic")));
}

#[test]
fn reserved_memory_behind_ranges_is_translated() {
    let tree = virt(&[(0x4000_0000, GIB)]).child(
        node("reserved-memory")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[1])
            .cells("ranges", &[0, 0, 0x4000_0000, 0x1000_0000])
            .child(node("fw@100000").cells("reg", &[0x10_0000, 0x1000])),
    );
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.reserved[0].range, r(0x4010_0000, 0x4010_1000));
}

#[test]
fn modules_and_xen_cmdline_precedence() {
    let chosen = |c: N| {
        c.cells("#address-cells", &[2])
            .cells("#size-cells", &[2])
            .child(
                node("module@42000000")
                    .strs("compatible", &["multiboot,kernel", "multiboot,module"])
                    .reg64(&[(0x4200_0000, 0x80_0000)])
                    .str("bootargs", "console=hvc0"),
            )
            .child(
                node("module@47000000")
                    .strs("compatible", &["multiboot,ramdisk", "multiboot,module"])
                    .reg64(&[(0x4700_0000, 0x10_0000)]),
            )
    };
    let base = virt(&[(0x4000_0000, GIB)]);
    // QEMU's guest-loader shape: /chosen/bootargs is ours, the module's is Dom0's.
    let tree = base.clone().edit_child("chosen", |c| chosen(c).str("bootargs", "loglvl=all"));
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.modules.len(), 2);
    assert_eq!(t.module(ModuleKind::Kernel).unwrap().range, r(0x4200_0000, 0x4280_0000));
    assert_eq!(t.module(ModuleKind::Ramdisk).unwrap().range, r(0x4700_0000, 0x4710_0000));
    assert_eq!(t.xen_cmdline.map(|c| (c.text, c.source)), Some(("loglvl=all", CmdlineSource::ChosenBootargs)));
    assert_eq!(t.dom0_cmdline.map(|c| (c.text, c.source)), Some(("console=hvc0", CmdlineSource::KernelModule)));

    // xen,xen-bootargs and xen,dom0-bootargs win over everything.
    let tree = base.clone().edit_child("chosen", |c| {
        chosen(c).str("bootargs", "linux-args").str("xen,xen-bootargs", "ours").str("xen,dom0-bootargs", "dom0s")
    });
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.xen_cmdline.map(|c| c.text), Some("ours"));
    assert_eq!(t.dom0_cmdline.map(|c| (c.text, c.source)), Some(("dom0s", CmdlineSource::Dom0Bootargs)));

    // Only xen,xen-bootargs: plain bootargs is Dom0's (no module bootargs).
    let tree = base.clone().edit_child("chosen", |c| c.str("bootargs", "for-linux").str("xen,xen-bootargs", "ours"));
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.xen_cmdline.map(|c| c.text), Some("ours"));
    assert_eq!(t.dom0_cmdline.map(|c| (c.text, c.source)), Some(("for-linux", CmdlineSource::ChosenBootargs)));

    // Nothing Xen-specific: bootargs is Dom0's, we get none.
    let tree = base.edit_child("chosen", |c| c.str("bootargs", "for-linux"));
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.xen_cmdline, None);
    assert_eq!(t.dom0_cmdline.map(|c| c.text), Some("for-linux"));
}

#[test]
fn unspecific_modules_follow_xen_order_and_legacy_names() {
    let tree = virt(&[(0x4000_0000, GIB)]).edit_child("chosen", |c| {
        c.child(node("m1").strs("compatible", &["multiboot,module"]).reg64(&[(0x4200_0000, 0x1000)]))
            .child(node("m2").strs("compatible", &["xen,multiboot-module"]).reg64(&[(0x4300_0000, 0x1000)]))
            .child(node("m3").strs("compatible", &["multiboot,module"]).reg64(&[(0x4400_0000, 0x1000)]))
            .child(node("not-a-module").str("compatible", "vendor,thing").cells("reg", &[0, 0, 0]))
    });
    // /chosen without #address-cells: inherited from the root, as Xen does
    // and as QEMU's guest-loader assumes.
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    let kinds: Vec<_> = t.modules.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec![ModuleKind::Kernel, ModuleKind::Ramdisk, ModuleKind::Other]);
    assert_eq!(t.modules[1].range, r(0x4300_0000, 0x4300_1000));
}

/// ImageBuilder's and U-Boot scripts' modules (Xen's legacy names, as
/// `docs/u-boot.md` writes them): the ramdisk first, so only the specific
/// compatibles, not the order, can make the second node the kernel.
#[test]
fn legacy_kernel_and_initrd_compatibles_name_their_kind() {
    let tree = virt(&[(0x4000_0000, GIB)]).edit_child("chosen", |c| {
        c.child(
            node("module@49000000")
                .strs("compatible", &["xen,linux-initrd", "xen,multiboot-module", "multiboot,module"])
                .reg64(&[(0x4900_0000, 0x2000)]),
        )
        .child(
            node("module@42000000")
                .strs("compatible", &["xen,linux-zimage", "xen,multiboot-module", "multiboot,module"])
                .reg64(&[(0x4200_0000, 0x1000)]),
        )
    });
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.module(ModuleKind::Kernel).map(|m| m.range), Some(r(0x4200_0000, 0x4200_1000)));
    assert_eq!(t.module(ModuleKind::Ramdisk).map(|m| m.range), Some(r(0x4900_0000, 0x4900_2000)));
}

#[test]
fn bad_modules_are_errors() {
    let with = |m: N| {
        let chosen = |c: N| c.cells("#address-cells", &[2]).cells("#size-cells", &[1]).child(m);
        blob(&virt(&[(0x4000_0000, GIB)]).edit_child("chosen", chosen), &[])
    };
    let kernel = || node("k").strs("compatible", &["multiboot,kernel", "multiboot,module"]);
    assert!(matches!(parse(&with(kernel())), Err(DtError::BadModule { .. })));
    assert!(matches!(parse(&with(kernel().cells("reg", &[0, 0x4200_0000, 0]))), Err(DtError::BadModule { .. })));
    assert!(matches!(parse(&with(kernel().cells("reg", &[0, 0x4200_0000]))), Err(DtError::BadReg { .. })));
    assert!(matches!(
        parse(&with(kernel().cells("reg", &[0xffff_ffff, 0xffff_f000, 0x2000]))),
        Err(DtError::BadReg { .. })
    ));
    let two = blob(
        &virt(&[(0x4000_0000, GIB)]).edit_child("chosen", |c| {
            c.child(kernel().reg64(&[(0x4200_0000, 0x10)])).child(
                node("k2").strs("compatible", &["multiboot,kernel", "multiboot,module"]).reg64(&[(0x4300_0000, 0x10)]),
            )
        }),
        &[],
    );
    assert!(matches!(parse(&two), Err(DtError::DuplicateModule { .. })));
}

#[test]
fn console_through_alias_with_options() {
    let tree = virt(&[(0x4000_0000, GIB)])
        .edit_child("chosen", |c| node(&c.name).str("stdout-path", "serial0:115200n8"))
        .child(node("aliases").str("serial0", "/pl011@9000000"));
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert_eq!(t.console.unwrap().mmio.start, 0x900_0000);
    // A path without unit address matches too.
    let tree = virt(&[(0x4000_0000, GIB)]).edit_child("chosen", |c| node(&c.name).str("stdout-path", "/pl011"));
    assert!(parse(&blob(&tree, &[])).unwrap().console.is_some());
    // A console that is not a PL011 is reported and not used.
    let tree = virt(&[(0x4000_0000, GIB)])
        .edit_child("pl011@9000000", |u| node(&u.name).str("compatible", "ns16550a").reg64(&[(0x900_0000, 0x1000)]));
    let b = blob(&tree, &[]);
    let t = parse(&b).unwrap();
    assert!(t.console.is_none());
    assert!(!t.warnings.is_empty());
}

#[test]
fn no_memory_is_an_error() {
    let tree = virt(&[]);
    assert_eq!(parse(&blob(&tree, &[])).unwrap_err(), DtError::NoMemory);
    let tree = virt(&[(0x4000_0000, 0)]);
    assert_eq!(parse(&blob(&tree, &[])).unwrap_err(), DtError::NoMemory);
    // A memory node that is disabled does not count.
    let tree = virt(&[(0x4000_0000, GIB)]).edit_child("memory@40000000", |m| m.str("status", "disabled"));
    assert_eq!(parse(&blob(&tree, &[])).unwrap_err(), DtError::NoMemory);
}

#[test]
fn absurd_cells_are_errors() {
    for cells in [0u32, 3, 100, 0xffff_ffff] {
        let tree = virt(&[(0x4000_0000, GIB)]).cells("#address-cells", &[cells]);
        let err = parse(&blob(&tree, &[])).unwrap_err();
        assert!(matches!(err, DtError::BadCells { .. }), "{cells}: {err:?}");
    }
    // Deeper in the tree: a bus with 100 address cells.
    let tree = virt(&[(0x4000_0000, GIB)]).child(node("bus").cells("#address-cells", &[100]).child(node("dev")));
    assert!(matches!(parse(&blob(&tree, &[])).unwrap_err(), DtError::BadCells { .. }));
    // A memory reg that is not a whole number of entries.
    let tree = virt(&[]).child(node("memory@0").str("device_type", "memory").cells("reg", &[0, 0x4000_0000, 0]));
    assert!(matches!(parse(&blob(&tree, &[])).unwrap_err(), DtError::BadReg { .. }));
}

#[test]
fn qemu_style_nops_are_skipped() {
    // QEMU replaces the /memory nodes of a -dtb with NOPs and adds its own.
    let tree = virt(&[(0x4000_0000, GIB)])
        .child(node("memory@c0000000").str("device_type", "memory").reg64(&[(0xc000_0000, GIB)]));
    let mut b = blob(&tree, &[]);
    nop_node(&mut b, "/memory@40000000");
    let t = parse(&b).unwrap();
    assert_eq!(t.banks.as_slice(), &[r(0xc000_0000, 0x1_0000_0000)]);
    // NOPs everywhere: same result as without.
    let dense = sprinkle_nops(&b, 3);
    let t2 = parse(&dense).unwrap();
    assert_eq!(t2.banks, t.banks);
    assert_eq!(t2.console, t.console);
    assert_eq!(t2.gic, t.gic);
}

#[test]
fn broken_blobs_are_errors() {
    let good = blob(&virt(&[(0x4000_0000, GIB)]), &[]);
    assert!(matches!(parse(&[]), Err(DtError::Blob(_))));
    assert!(matches!(parse(&good[..good.len() - 4]), Err(DtError::Blob(_))));
    let mut bad_magic = good.clone();
    bad_magic[0] ^= 1;
    assert!(matches!(parse(&bad_magic), Err(DtError::Blob(_))));
    let mut bad_token = good.clone();
    let structure = u32::from_be_bytes(good[8..12].try_into().unwrap()) as usize;
    bad_token[structure + 3] = 0x7;
    assert!(matches!(parse(&bad_token), Err(DtError::Blob(_))));
}

#[test]
fn error_messages_name_the_problem() {
    let tree = virt(&[(0x4000_0000, GIB)]).cells("#address-cells", &[3]);
    let msg = parse(&blob(&tree, &[])).unwrap_err().to_string();
    assert_eq!(msg, "/: unsupported #address-cells");
    assert_eq!(DtError::NoMemory.to_string(), "no RAM: the device tree has no usable /memory node");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random bytes never panic the reader.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
    }

    /// A valid tree with bytes flipped or cut never panics the reader; when
    /// it still parses, its RAM is what its banks say.
    #[test]
    fn corrupted_trees_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut b = blob(&virt(&[(0x4000_0000, GIB), (0x1_0000_0000, GIB)]), &[(0x4800_0000, 0x1000)]);
        for (at, byte) in flips {
            let i = at.index(b.len());
            b[i] ^= byte;
        }
        if truncate {
            b.truncate(cut.index(b.len()));
        }
        if let Ok(t) = parse(&b) {
            prop_assert!(!t.banks.is_empty());
            prop_assert!(t.banks.iter().all(|bank| t.ram.contains_range(bank)));
        }
    }
}

/// A DomU node in Xen's dom0less shape (`booting.txt`), with one-cell
/// addresses and sizes as ImageBuilder writes them.
fn domu(name: &str, kernel_at: u32) -> N {
    node(name)
        .str("compatible", "xen,domain")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[1])
        .cells("memory", &[0, 131_072])
        .cells("cpus", &[1])
        .str("xen,enhanced", "enabled")
        .flag("vpl011")
        .child(
            node(&format!("module@{kernel_at:x}"))
                .strs("compatible", &["multiboot,kernel", "multiboot,module"])
                .cells("reg", &[kernel_at, 0x10_0000])
                .str("bootargs", "console=ttyAMA0"),
        )
        .child(
            node("module@4c000000")
                .strs("compatible", &["multiboot,ramdisk", "multiboot,module"])
                .cells("reg", &[0x4c00_0000 + (kernel_at - 0x4a00_0000), 0x2000]),
        )
}

fn with_domus(domus: Vec<N>) -> Vec<u8> {
    let tree = virt(&[(0x4000_0000, GIB)]).edit_child("chosen", |c| {
        let c = c.child(
            node("module@42000000")
                .strs("compatible", &["multiboot,kernel", "multiboot,module"])
                .reg64(&[(0x4200_0000, 0x80_0000)]),
        );
        domus.into_iter().fold(c, |c, d| c.child(d))
    });
    blob(&tree, &[])
}

#[test]
fn reads_a_dom0less_domu() {
    let b = with_domus(vec![domu("domU1", 0x4a00_0000)]);
    let t = parse(&b).unwrap();
    assert!(t.domu_errors.is_empty(), "{:?}", t.domu_errors);
    let d = &t.domus[0];
    assert_eq!(&*d.path, "/chosen/domU1");
    assert_eq!((d.memory, d.cpus, d.enhanced, d.vpl011), (128 << 20, 1, Enhanced::Enabled, true));
    assert_eq!(d.kernel, r(0x4a00_0000, 0x4a10_0000));
    assert_eq!(d.ramdisk, Some(r(0x4c00_0000, 0x4c00_2000)));
    assert_eq!(d.bootargs, Some("console=ttyAMA0"));
    // Dom0's modules and command line are untouched by the DomU's.
    assert_eq!(t.modules.len(), 1);
    assert_eq!(t.dom0_cmdline.map(|c| c.source), Some(CmdlineSource::ChosenBootargs));
}

#[test]
fn enhanced_values_and_default_cells() {
    let b = with_domus(vec![
        domu("a", 0x4a00_0000).raw("xen,enhanced", &[]),
        domu("b", 0x4a10_0000).str("xen,enhanced", "no-xenstore"),
        domu("c", 0x4a20_0000).str("xen,enhanced", "disabled"),
        // Without cells on the node, Xen's defaults: 2 address, 1 size.
        node("d")
            .str("compatible", "xen,domain")
            .cells("memory", &[0, 4096])
            .cells("cpus", &[2])
            .child(node("k").str("compatible", "multiboot,module").cells("reg", &[0, 0x4a30_0000, 0x1000])),
    ]);
    let t = parse(&b).unwrap();
    assert!(t.domu_errors.is_empty(), "{:?}", t.domu_errors);
    let enhanced: Vec<_> = t.domus.iter().map(|d| d.enhanced).collect();
    assert_eq!(enhanced, vec![Enhanced::Enabled, Enhanced::NoXenstore, Enhanced::Disabled, Enhanced::Disabled]);
    let d = &t.domus[3];
    assert_eq!(
        (d.memory, d.cpus, d.kernel, d.ramdisk, d.vpl011),
        (4 << 20, 2, r(0x4a30_0000, 0x4a30_1000), None, false)
    );
}

#[test]
fn each_malformed_domu_field_drops_that_domu_with_its_reason() {
    let good = || domu("domU1", 0x4a00_0000);
    let kernel = "module@4a000000";
    let cases: Vec<(N, &str)> = vec![
        (good().without_child(kernel).without_child("module@4c000000"), "no multiboot,kernel module"),
        (node("domU1").str("compatible", "xen,domain").cells("cpus", &[1]), "no memory property"),
        (good().cells("memory", &[131_072]), "memory must be a 64-bit number of KiB"),
        (good().cells("memory", &[0, 0]), "memory is zero"),
        (good().cells("memory", &[0, 6]), "whole number of 4 KiB pages"),
        (good().cells("memory", &[0x0100_0000, 0]), "memory too large"),
        (good().raw("cpus", &[]), "cpus must be one 32-bit cell"),
        (good().cells("cpus", &[0]), "cpus is zero"),
        (good().cells("cpus", &[1000]), "more cpus than"),
        (good().str("xen,enhanced", "maybe"), "xen,enhanced must be"),
        (good().cells("#size-cells", &[3]), "#address-cells and #size-cells"),
        (
            good().edit_child(kernel, |k| k.cells("reg", &[0x4a00_0000, 0x1000, 0x4b00_0000, 0x1000])),
            "exactly one range",
        ),
        (good().edit_child(kernel, |k| k.cells("reg", &[0x4a00_0000])), "whole number of entries"),
        (good().edit_child(kernel, |k| k.cells("reg", &[0x4a00_0000, 0])), "module is empty"),
        (
            good().child(
                node("dt")
                    .strs("compatible", &["multiboot,device-tree", "multiboot,module"])
                    .cells("reg", &[0x4d00_0000, 0x1000]),
            ),
            "multiboot,device-tree",
        ),
        (
            good().child(
                node("k2")
                    .strs("compatible", &["multiboot,kernel", "multiboot,module"])
                    .cells("reg", &[0x4d00_0000, 0x1000]),
            ),
            "a second kernel module",
        ),
        // Outside RAM (1 GiB at 1 GiB), and overlapping Dom0's kernel.
        (good().edit_child(kernel, |k| k.cells("reg", &[0x3000_0000, 0x1000])), "kernel module is not inside RAM"),
        (good().edit_child(kernel, |k| k.cells("reg", &[0x7fff_f000, 0x2000])), "kernel module is not inside RAM"),
        (good().edit_child(kernel, |k| k.cells("reg", &[0x4210_0000, 0x1000])), "overlaps another boot module"),
    ];
    for (node, why) in cases {
        let b = with_domus(vec![node.clone(), domu("domU2", 0x4e00_0000)]);
        let t = parse(&b).unwrap_or_else(|e| panic!("{why}: the tree must still boot: {e}"));
        assert_eq!(t.domu_errors.len(), 1, "{why}: {:?}", t.domu_errors);
        let line = t.domu_errors[0].to_string();
        assert!(line.starts_with("/chosen/domU1: DomU not built: ") && line.contains(why), "{why}: {line}");
        // The other DomU and Dom0 are unaffected.
        assert_eq!(t.domus.len(), 1, "{why}");
        assert_eq!(&*t.domus[0].path, "/chosen/domU2");
        assert_eq!(t.modules.len(), 1);
    }
}

#[test]
fn at_most_four_domus_and_disabled_ones_are_skipped() {
    let domus: Vec<N> = (0..6).map(|i| domu(&format!("domU{i}"), 0x4a00_0000 + i * 0x10_0000)).collect();
    // Ramdisks at 0x4c00_0000 + offset: distinct for each.
    let b = with_domus(domus);
    let t = parse(&b).unwrap();
    assert_eq!(t.domus.len(), MAX_DOMUS);
    assert_eq!(t.domu_errors.len(), 2);
    assert!(t.domu_errors.iter().all(|e| e.why.contains("more DomUs")), "{:?}", t.domu_errors);
    let b = with_domus(vec![domu("off", 0x4a00_0000).str("status", "disabled")]);
    let t = parse(&b).unwrap();
    assert!(t.domus.is_empty() && t.domu_errors.is_empty());
}
