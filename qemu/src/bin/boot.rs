//! `cargo boot [-- <hypervisor options>]`: builds the hypervisor and the
//! test guest, and boots them in QEMU (`virt`, GICv3, 2 CPUs, 2 GiB) with
//! the console on this terminal. Leave QEMU with Ctrl-A X.

use qemu_harness::{Machine, image};
use std::process::Command;

fn main() {
    let options: Vec<String> = std::env::args().skip(1).collect();
    let image = image::hypervisor();
    // Until a Linux Dom0 runs, the test guest is Dom0: it checks what it
    // was given, prints what it found, and ends the run.
    let kernel = image::dom0_probe().to_path_buf();
    let machine = Machine {
        memory: "2G".into(),
        append: Some(if options.is_empty() { "loglvl=info".into() } else { options.join(" ") }),
        modules: vec![qemu_harness::machine::Module {
            addr: 0x4200_0000,
            file: kernel,
            kernel: true,
            bootargs: Some("console=hvc0".into()),
        }],
        ..Machine::default()
    };
    let mut args = machine.args(image);
    // Interactive: the console and QEMU's monitor multiplexed on this terminal.
    let serial = args.iter().position(|a| a == "stdio").expect("serial option");
    args[serial] = "mon:stdio".into();
    if let Some(monitor) = args.iter().position(|a| a == "-monitor") {
        args.drain(monitor..monitor + 2);
    }
    eprintln!("qemu-system-aarch64 {}", args.join(" "));
    let status = Command::new("qemu-system-aarch64").args(&args).status().expect("start qemu-system-aarch64");
    std::process::exit(status.code().unwrap_or(1));
}
