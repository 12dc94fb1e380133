//! The machine `qemu/run` (`cargo boot`) boots with the console on the
//! terminal: Debian's 6.12 as Dom0 with a busybox shell on `hvc0`, or the
//! probe; with `--domu`, Debian's 6.12 as a dom0less DomU beside it too,
//! with a shell on its vPL011 (`ttyAMA0`); under ours or Xen 4.17; loaded
//! by QEMU or by U-Boot. Here, not in the binary, so that a test boots
//! exactly what the command does.

use crate::initramfs::{dom0_initramfs, init_script};
use crate::linux::{DebianKernel, debian_kernel};
use crate::linux_domu::{Dom0, LinuxDomu};
use crate::machine::Boot;
use crate::{Machine, image};
use std::path::PathBuf;

/// After the usual set-up (see `init_script`): a banner, then a shell with
/// hvc0 as its controlling terminal (so Ctrl-C works); leaving it powers off.
pub const DOM0_INIT: &str = r#"echo
echo "Dom0: Linux $(uname -r) on $(cat /sys/hypervisor/type 2>/dev/null || echo 'no Xen interface'); busybox sh on hvc0."
echo "'exit' or 'poweroff -f' powers off; Ctrl-A X leaves QEMU at any time."
setsid cttyhack sh
poweroff -f
"#;

/// The DomU's: a banner, then a shell with its console (the vPL011,
/// `ttyAMA0`) as its controlling terminal; leaving it powers the DomU off,
/// and the machine carries on.
pub const DOMU_INIT: &str = r#"echo "DomU: Linux $(uname -r) on $(cat /sys/hypervisor/type 2>/dev/null || echo 'no Xen interface'); busybox sh on $(cat /sys/class/tty/console/active)."
echo "DomU: 'exit' powers this DomU off; Dom0 carries on."
setsid cttyhack sh
poweroff -f
"#;

/// What `qemu/run` was asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--xen`: Debian's Xen 4.17 instead of ours.
    pub xen: bool,
    /// `--probe`: the bare-metal probe as Dom0 instead of Linux.
    pub probe: bool,
    /// `--uboot`: booted by U-Boot from a disk with a boot script.
    pub uboot: bool,
    /// `--domu`: Debian's 6.12 as a DomU beside Dom0, its shell on its vPL011.
    pub domu: bool,
}

impl Flags {
    /// Takes the flags out of `args`; the rest are the hypervisor's options.
    pub fn take(args: &mut Vec<String>) -> Self {
        let mut take = |flag: &str| {
            let found = args.iter().any(|a| a == flag);
            args.retain(|a| a != flag);
            found
        };
        Flags { xen: take("--xen"), probe: take("--probe"), uboot: take("--uboot"), domu: take("--domu") }
    }
}

/// The machine and the image it boots: `options` are added to the
/// hypervisor's command line after the defaults (`dom0_mem=512M`, and for
/// ours `stage2-blocks=no`, the fastest on QEMU; with `--domu` under Xen
/// `dom0_max_vcpus=1`, as ours gives the DomU a CPU of its own), so they win.
pub fn machine(flags: Flags, options: &[String]) -> Result<(Machine, PathBuf), String> {
    let mut defaults = vec!["dom0_mem=512M".to_string()];
    let kernel = debian_kernel(DebianKernel::Trixie6_12);
    let mut machine = if flags.domu {
        if flags.uboot {
            return Err("--domu and --uboot do not go together yet (the DomU's modules are placed by QEMU)".into());
        }
        if flags.xen {
            defaults.push("dom0_max_vcpus=1".into());
        }
        let dom0 = if flags.probe { Dom0::Probe } else { Dom0::Linux(DOM0_INIT.into()) };
        LinuxDomu::new(dom0, init_script(kernel, DOMU_INIT), "run-domu").machine()
    } else if flags.probe {
        Machine::with_probe_dom0("cortex-a57", "2G", "")
    } else {
        let initrd = dom0_initramfs(kernel, &init_script(kernel, DOM0_INIT));
        Machine::with_linux_dom0(&kernel.image, &initrd, "console=hvc0 earlycon=xenboot")
    };
    // The defaults first: options given later on the command line win.
    machine.append = Some(defaults.iter().chain(options).cloned().collect::<Vec<_>>().join(" "));
    if !flags.xen {
        machine = machine.tuned_for_qemu();
    }
    if flags.uboot {
        machine.boot = Boot::UBoot;
    }
    let hypervisor = if flags.xen { image::xen_4_17() } else { image::hypervisor().to_path_buf() };
    Ok((machine, hypervisor))
}
