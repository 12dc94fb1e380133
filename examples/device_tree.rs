//! `cargo bench-host device_tree [-- DTB]`: what the boot's device-tree work
//! costs on the host: reading the host tree (`HostTree::parse`), listing its
//! devices (`dt::devices::device_ranges`) and generating Dom0's tree
//! (`dt::dom0::build`). The tree is QEMU's own `virt` tree (GICv3, 2 CPUs,
//! 2 GiB), dumped by `qemu-system-aarch64 -machine dumpdtb=` unless a file
//! is given. The figures are host times; under QEMU the same work costs
//! about a million guest instructions each (`cargo bench-qemu --only phases`).

use hypervisor::dt::devices::device_ranges;
use hypervisor::dt::dom0::{Dom0Tree, build};
use hypervisor::dt::host::HostTree;
use hypervisor::mm::range::PhysRange;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn qemu_virt_tree() -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("device-tree-bench-{}.dtb", std::process::id()));
    let machine = format!("virt,gic-version=3,virtualization=on,dumpdtb={}", path.display());
    let status = std::process::Command::new("qemu-system-aarch64")
        .args(["-nodefaults", "-machine", &machine, "-cpu", "cortex-a57", "-smp", "2", "-m", "2G", "-display", "none"])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run qemu-system-aarch64 (qemu/setup installs it), or pass a DTB");
    assert!(status.success(), "QEMU could not dump its tree");
    let blob = std::fs::read(&path).expect("read the dumped tree");
    let _ = std::fs::remove_file(&path);
    blob
}

/// Mean time per call of `f` over at least half a second.
fn time(mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 10 || start.elapsed() < Duration::from_millis(500) {
        f();
        calls += 1;
    }
    start.elapsed() / calls
}

fn main() {
    let blob = match std::env::args().nth(1) {
        Some(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}")),
        None => qemu_virt_tree(),
    };
    let fdt = dtoolkit::fdt::Fdt::new(&blob).expect("a valid tree");
    let tree = HostTree::parse(&blob).expect("a tree the hypervisor boots from");
    let banks = [PhysRange::new(0x6000_0000, 0x8000_0000)];
    let regions = [PhysRange::new(0x8000_0000, 0xc000_0000)];
    let hidden: Vec<&str> = tree.console.iter().map(|c| c.path.as_str()).collect();
    let spec = Dom0Tree {
        banks: &banks,
        bootargs: Some("console=hvc0"),
        initrd: None,
        grant_region: PhysRange::new(0x4020_0000, 0x4024_0000),
        extended_regions: &regions,
        event_ppi: 15,
        hidden: &hidden,
        gic: tree.gic.as_ref().map_or("", |g| g.path.as_str()),
        gic_reg_entries: None,
        cpus: None,
    };
    let dom0 = build(&fdt, &spec).expect("Dom0's tree");
    println!("host tree: {} bytes (totalsize), Dom0's tree {} bytes", blob.len(), dom0.len());
    let figures = [
        ("HostTree::parse", time(|| drop(black_box(HostTree::parse(black_box(&blob)))))),
        ("device_ranges", time(|| drop(black_box(device_ranges(black_box(&fdt)))))),
        ("dom0::build", time(|| drop(black_box(build(black_box(&fdt), &spec))))),
    ];
    for (what, per_call) in figures {
        println!("{what:<18} {:>9.1} µs per call", per_call.as_secs_f64() * 1e6);
    }
}
