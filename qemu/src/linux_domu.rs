//! Debian's Linux as a dom0less DomU: trixie's 6.12 Image, unmodified,
//! with a busybox initramfs, from a `/chosen/domU1` node (Xen's binding:
//! 256 MiB, `xen,enhanced`, `vpl011`, a `multiboot,ramdisk` child,
//! `bootargs` on the kernel module) beside a Dom0, the bare-metal probe or
//! Debian's 6.12; both modules placed with QEMU's loader, so Xen 4.17
//! boots the same tree. Used by `tests/linux_domu_guest.rs`, the
//! `domu-linux` benchmark and `qemu/run --domu`.

use crate::dtb::Dts;
use crate::image;
use crate::initramfs::{dom0_initramfs, init_script};
use crate::linux::{DebianKernel, debian_kernel};
use crate::machine::{LINUX_INITRD_ADDR, LINUX_KERNEL_ADDR, Machine, Tree};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where QEMU's loader puts the bare-metal Dom0 (the probe).
pub const PROBE_KERNEL: u64 = 0x4200_0000;
/// The DomU's kernel and initramfs: clear of QEMU's tree at 0x4800_0000
/// and of a Linux Dom0's initramfs at 0x4900_0000.
pub const DOMU_KERNEL: u64 = 0x4c00_0000;
pub const DOMU_INITRD: u64 = 0x4e80_0000;
/// The DomU's command line: its console is its vPL011 (ours puts it in
/// `stdout-path`; Xen 4.17's DomU tree has none, so it must be named),
/// and nothing earlier, so each kernel line reaches the console once.
pub const DOMU_BOOTARGS: &str = "console=ttyAMA0";
/// A Linux Dom0's.
pub const DOM0_BOOTARGS: &str = "console=hvc0 earlycon=xenboot";

/// Who Dom0 is.
#[derive(Clone, Debug)]
pub enum Dom0 {
    /// The bare-metal probe, which waits for the DomU's end
    /// (`probe=wait-domain-end`), then finishes its own checks.
    Probe,
    /// Debian's 6.12 with this `/init` body (after `init_script`'s set-up).
    Linux(String),
}

/// One machine: QEMU's tree for `smp` CPUs, 2 GiB and `gic_version`, Dom0
/// and a Linux DomU of `cpus` vCPUs whose whole `/init` script is `init`
/// (`init_script` makes one that loads the Xen modules first); `append`
/// is the hypervisor's command line, `bootargs` added to the DomU's.
#[derive(Clone, Debug)]
pub struct LinuxDomu {
    pub gic_version: u32,
    pub smp: u32,
    pub cpus: u32,
    pub init: String,
    pub bootargs: String,
    pub dom0: Dom0,
    pub append: String,
    /// The tree's file name.
    pub name: String,
}

fn size(file: &Path) -> u64 {
    std::fs::metadata(file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).len()
}

impl LinuxDomu {
    /// On GICv3, 2 CPUs, a 1-vCPU DomU, `dom0_mem=512M`.
    pub fn new(dom0: Dom0, init: String, name: &str) -> Self {
        Self {
            gic_version: 3,
            smp: 2,
            cpus: 1,
            init,
            bootargs: String::new(),
            dom0,
            append: "dom0_mem=512M".into(),
            name: name.into(),
        }
    }

    /// The machine (two minutes' time limit).
    pub fn machine(&self) -> Machine {
        let kernel = debian_kernel(DebianKernel::Trixie6_12);
        let domu_initrd = dom0_initramfs(kernel, &self.init);
        assert!(DOMU_KERNEL + size(&kernel.image) <= DOMU_INITRD, "the DomU's kernel runs into its initramfs");
        let bootargs = format!("{DOMU_BOOTARGS} {}", self.bootargs);
        let domu = format!(
            "domU1 {{ compatible = \"xen,domain\"; #address-cells = <1>; #size-cells = <1>; \
             memory = <0x0 0x40000>; cpus = <{}>; xen,enhanced = \"enabled\"; vpl011;\n\
             module@{DOMU_KERNEL:x} {{ compatible = \"multiboot,kernel\", \"multiboot,module\"; reg = <{DOMU_KERNEL:#x} {:#x}>; \
             bootargs = \"{}\"; }};\n\
             module@{DOMU_INITRD:x} {{ compatible = \"multiboot,ramdisk\", \"multiboot,module\"; reg = <{DOMU_INITRD:#x} {:#x}>; }};\n}};",
            self.cpus,
            size(&kernel.image),
            bootargs.trim_end(),
            size(&domu_initrd)
        );
        let base = Machine {
            cpu: "cortex-a57".into(),
            memory: "2G".into(),
            gic_version: self.gic_version,
            smp: self.smp,
            append: Some(self.append.clone()),
            modules: vec![],
            timeout: Duration::from_secs(120),
            ..Machine::default()
        };
        let mut loaded: Vec<(PathBuf, u64)> = Vec::new();
        let mut dts = Dts::from_blob(&base.generated_dtb());
        match &self.dom0 {
            Dom0::Probe => {
                dts = dts
                    .add_to_node("chosen", "xen,dom0-bootargs = \"console=hvc0 probe=wait-domain-end\";")
                    .with_kernel_module(PROBE_KERNEL, size(image::dom0_probe()));
                loaded.push((image::dom0_probe().into(), PROBE_KERNEL));
            }
            Dom0::Linux(body) => {
                let initrd = dom0_initramfs(kernel, &init_script(kernel, body));
                assert!(
                    LINUX_INITRD_ADDR + size(&initrd) <= DOMU_KERNEL,
                    "Dom0's initramfs runs into the DomU's kernel"
                );
                let ramdisk = format!(
                    "module@{LINUX_INITRD_ADDR:x} {{ compatible = \"multiboot,ramdisk\", \"multiboot,module\"; reg = <0x0 {LINUX_INITRD_ADDR:#x} 0x0 {:#x}>; }};",
                    size(&initrd)
                );
                dts = dts
                    .add_to_node("chosen", &format!("xen,dom0-bootargs = \"{DOM0_BOOTARGS}\";"))
                    .with_kernel_module(LINUX_KERNEL_ADDR, size(&kernel.image))
                    .add_subnode("chosen", &ramdisk);
                loaded.extend([(kernel.image.clone(), LINUX_KERNEL_ADDR), (initrd, LINUX_INITRD_ADDR)]);
            }
        }
        let dtb = dts.add_subnode("chosen", &domu).write(&self.name);
        loaded.extend([(kernel.image.clone(), DOMU_KERNEL), (domu_initrd, DOMU_INITRD)]);
        let mut extra = Vec::new();
        for (file, addr) in loaded {
            extra.extend(["-device".into(), format!("loader,file={},addr={addr:#x},force-raw=on", file.display())]);
        }
        Machine { tree: Tree::Dtb(dtb), extra, ..base }
    }
}
