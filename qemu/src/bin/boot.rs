//! `cargo boot [-- [--xen] [--probe] [--uboot] <hypervisor options>]`:
//! builds the hypervisor and boots it in QEMU (`virt`, GICv3, 2 CPUs,
//! 2 GiB) with the console on this terminal. Dom0 is Debian's Linux 6.12
//! with a busybox shell on hvc0; `--probe` boots the bare-metal test guest
//! instead, `--xen` Debian's Xen 4.17 instead of ours, to compare, and
//! `--uboot` has Debian's U-Boot boot it from a virtio disk with a boot
//! script, as a board would (`docs/u-boot.md`). Options left are
//! added to the hypervisor's command line, after `dom0_mem=512M` (and, for
//! ours, `stage2-blocks=no`, the fastest on QEMU), so they win. Leave QEMU
//! with Ctrl-A X.

use qemu_harness::initramfs::{dom0_initramfs, init_script};
use qemu_harness::linux::{DebianKernel, debian_kernel};
use qemu_harness::{Machine, image};
use std::process::Command;

/// After the usual set-up (see `init_script`): a banner, then a shell with
/// hvc0 as its controlling terminal (so Ctrl-C works); leaving it powers off.
const INTERACTIVE_INIT: &str = r#"echo
echo "Dom0: Linux $(uname -r) on $(cat /sys/hypervisor/type 2>/dev/null || echo 'no Xen interface'); busybox sh on hvc0."
echo "'exit' or 'poweroff -f' powers off; Ctrl-A X leaves QEMU at any time."
setsid cttyhack sh
poweroff -f
"#;

fn main() {
    // `cargo boot -- ARGS` hands the program a `--` of its own.
    let mut options: Vec<String> = std::env::args().skip(1).skip_while(|a| a == "--").collect();
    let mut take_flag = |flag: &str| {
        let found = options.iter().any(|o| o == flag);
        options.retain(|o| o != flag);
        found
    };
    let (xen, probe, uboot) = (take_flag("--xen"), take_flag("--probe"), take_flag("--uboot"));

    let mut machine = if probe {
        Machine::with_probe_dom0("cortex-a57", "2G", "")
    } else {
        let kernel = debian_kernel(DebianKernel::Trixie6_12);
        let initrd = dom0_initramfs(kernel, &init_script(kernel, INTERACTIVE_INIT));
        Machine::with_linux_dom0(&kernel.image, &initrd, "console=hvc0 earlycon=xenboot")
    };
    // The defaults first: options given later on the command line win.
    machine.append = Some(["dom0_mem=512M".to_string()].into_iter().chain(options).collect::<Vec<_>>().join(" "));
    if !xen {
        machine = machine.tuned_for_qemu();
    }
    if uboot {
        machine.boot = qemu_harness::machine::Boot::UBoot;
    }
    let hypervisor = if xen { image::xen_4_17() } else { image::hypervisor().to_path_buf() };

    let mut args = machine.args(&hypervisor);
    // Interactive: the console and QEMU's monitor multiplexed on this terminal.
    let serial = args.iter().position(|a| a == "stdio").expect("serial option");
    args[serial] = "mon:stdio".into();
    if let Some(monitor) = args.iter().position(|a| a == "-monitor") {
        args.drain(monitor..monitor + 2);
    }
    eprintln!("qemu-system-aarch64 {}", args.join(" "));
    eprintln!("(leave QEMU with Ctrl-A X)");
    let status = Command::new("qemu-system-aarch64").args(&args).status().expect("start qemu-system-aarch64");
    std::process::exit(status.code().unwrap_or(1));
}
