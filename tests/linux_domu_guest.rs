//! Debian's Linux as a dom0less DomU: trixie's 6.12 Image, unmodified, with
//! a busybox initramfs, from a `/chosen/domU1` node (Xen's binding) beside
//! a Dom0 (the bare-metal probe, which waits for the DomU's end, or
//! Debian's 6.12). The DomU's `/init` reports what it sees (`domu: ` lines,
//! written to `/dev/kmsg` so they reach the hypervisor's console through
//! `earlycon=xenboot` whatever console the DomU has), then ends.

use qemu_harness::dtb::Dts;
use qemu_harness::initramfs::{dom0_initramfs, init_script};
use qemu_harness::linux::{DebianKernel, debian_kernel};
use qemu_harness::machine::Tree;
use qemu_harness::{Machine, Outcome, image};
use std::path::Path;
use std::time::Duration;

const KERNEL_PANIC: &str = "Kernel panic - not syncing";
/// Where QEMU's loader puts the bare-metal Dom0 (the probe).
const PROBE_KERNEL: u64 = 0x4200_0000;
/// The DomU's kernel and initramfs, clear of QEMU's tree at 0x4800_0000
/// and of a Linux Dom0's initramfs at 0x4900_0000.
const DOMU_KERNEL: u64 = 0x4c00_0000;
const DOMU_INITRD: u64 = 0x4e80_0000;
/// The DomU's command line: its kernel log through the console hypercall.
const DOMU_BOOTARGS: &str = "console=hvc0 earlycon=xenboot keep_bootcon";

fn size(file: &Path) -> u64 {
    std::fs::metadata(file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).len()
}

/// What the DomU's `/init` reports, then how it ends (`end`: shell).
fn domu_init(end: &str) -> String {
    format!(
        r#"say() {{ echo "domu: $*" > /dev/kmsg; }}
say "hypervisor type $(cat /sys/hypervisor/type)"
say "cpus $(grep -c ^processor /proc/cpuinfo)"
/bin/gnttest --events 20 2>&1 | while read -r line; do say "$line"; done
sleep 1
grep -E 'arch_timer|xen|events' /proc/interrupts | tr -s ' ' | while read -r line; do say "interrupts: $line"; done
{end}
"#
    )
}

/// A DomU node in ImageBuilder's shape with Linux and its initramfs.
fn domu_node(kernel: &Path, initrd: &Path, cpus: u32, extra: &str) -> String {
    format!(
        "domU1 {{ compatible = \"xen,domain\"; #address-cells = <1>; #size-cells = <1>; \
         memory = <0x0 0x40000>; cpus = <{cpus}>; xen,enhanced = \"enabled\"; {extra}\n\
         module@{DOMU_KERNEL:x} {{ compatible = \"multiboot,kernel\", \"multiboot,module\"; reg = <{DOMU_KERNEL:#x} {:#x}>; \
         bootargs = \"{DOMU_BOOTARGS}\"; }};\n\
         module@{DOMU_INITRD:x} {{ compatible = \"multiboot,ramdisk\", \"multiboot,module\"; reg = <{DOMU_INITRD:#x} {:#x}>; }};\n}};",
        size(kernel),
        size(initrd)
    )
}

/// The probe as Dom0 (waiting for the DomU's end) and Linux as DomU with
/// `cpus` vCPUs, on a GIC of `gic_version`, `smp` CPUs.
fn beside_probe(gic_version: u32, smp: u32, cpus: u32, end: &str, name: &str) -> Machine {
    let kernel = debian_kernel(DebianKernel::Trixie6_12);
    let initrd = dom0_initramfs(kernel, &init_script(kernel, &domu_init(end)));
    assert!(DOMU_KERNEL + size(&kernel.image) <= DOMU_INITRD, "the DomU's kernel runs into its initramfs");
    let base = Machine {
        modules: vec![],
        gic_version,
        smp,
        timeout: Duration::from_secs(90),
        ..Machine::with_probe_dom0("cortex-a57", "2G", "dom0_mem=512M")
    };
    let dtb = Dts::from_blob(&base.generated_dtb())
        .add_to_node("chosen", "xen,dom0-bootargs = \"console=hvc0 probe=wait-domain-end\";")
        .with_kernel_module(PROBE_KERNEL, size(image::dom0_probe()))
        .add_subnode("chosen", &domu_node(&kernel.image, &initrd, cpus, ""))
        .write(name);
    let mut extra = Vec::new();
    for (file, addr) in
        [(image::dom0_probe(), PROBE_KERNEL), (kernel.image.as_path(), DOMU_KERNEL), (initrd.as_path(), DOMU_INITRD)]
    {
        extra.extend(["-device".into(), format!("loader,file={},addr={addr:#x},force-raw=on", file.display())]);
    }
    Machine { tree: Tree::Dtb(dtb), extra, ..base }
}

fn run_ours(machine: Machine) -> Outcome {
    machine.tuned_for_qemu().run_until(KERNEL_PANIC)
}

#[test]
fn linux_domu_beside_the_probe() {
    let out = run_ours(beside_probe(3, 2, 1, "poweroff -f", "linux-domu-guest-probe"));
    println!("{}", out.output);
    out.expect_line("domu: hypervisor type xen");
}
