//! `cargo boot [-- [--xen] [--probe] [--uboot] [--domu] <hypervisor options>]`:
//! builds the hypervisor and boots it in QEMU (`virt`, GICv3, 2 CPUs,
//! 2 GiB) with the console on this terminal. Dom0 is Debian's Linux 6.12
//! with a busybox shell on hvc0; `--probe` boots the bare-metal test guest
//! instead, `--xen` Debian's Xen 4.17 instead of ours, to compare,
//! `--uboot` has Debian's U-Boot boot it from a virtio disk with a boot
//! script, as a board would (`docs/u-boot.md`), and `--domu` boots Debian's
//! 6.12 as a dom0less DomU beside Dom0 too, with a shell on its vPL011
//! (`docs/linux-domu.md`). Options left are added to the hypervisor's
//! command line, after `dom0_mem=512M` (and, for ours, `stage2-blocks=no`,
//! the fastest on QEMU), so they win. Leave QEMU with Ctrl-A X. The
//! machine is `qemu_harness::interactive`'s.

use qemu_harness::interactive::{Flags, machine};
use std::process::Command;

fn main() {
    // `cargo boot -- ARGS` hands the program a `--` of its own.
    let mut options: Vec<String> = std::env::args().skip(1).skip_while(|a| a == "--").collect();
    let flags = Flags::take(&mut options);
    let (machine, hypervisor) = machine(flags, &options).unwrap_or_else(|why| {
        eprintln!("boot: {why}");
        std::process::exit(2)
    });

    let mut args = machine.args(&hypervisor);
    // Interactive: the console and QEMU's monitor multiplexed on this terminal.
    let serial = args.iter().position(|a| a == "stdio").expect("serial option");
    args[serial] = "mon:stdio".into();
    if let Some(monitor) = args.iter().position(|a| a == "-monitor") {
        args.drain(monitor..monitor + 2);
    }
    eprintln!("qemu-system-aarch64 {}", args.join(" "));
    if flags.domu {
        eprintln!("(Ctrl-A six times moves the console input on: Dom0, the DomU, the hypervisor, Dom0 again)");
    }
    eprintln!("(leave QEMU with Ctrl-A X)");
    let status = Command::new("qemu-system-aarch64").args(&args).status().expect("start qemu-system-aarch64");
    std::process::exit(status.code().unwrap_or(1));
}
