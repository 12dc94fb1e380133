//! Debian's Linux as a dom0less DomU: trixie's 6.12 Image, unmodified, with
//! a busybox initramfs, from a `/chosen/domU1` node (Xen's binding: 256
//! MiB, `xen,enhanced`, a `multiboot,ramdisk` child, `bootargs` on the
//! kernel module) beside a Dom0: the bare-metal probe (which waits for the
//! DomU's end, `probe=wait-domain-end`, then finishes its own checks) or
//! Debian's 6.12.
//!
//! The DomU's `/init` reports what it sees as `domu: ` lines written to
//! `/dev/kmsg`, so they reach the hypervisor's console through the kernel
//! log whatever console the DomU has (`earlycon=xenboot`, the console
//! hypercall, under ours; the vPL011 under Xen 4.17, whose release build
//! refuses a DomU the console hypercall): Xen's `/sys/hypervisor/type`,
//! its CPUs, a loopback event channel through `/dev/xen/evtchn` (gnttest
//! `--events`), `/proc/interrupts` while its ports are bound (the virtual
//! timer, the event-channel PPI `events` and the ports' `xen-dyn`
//! interrupts, all counting), then it powers off or crashes.

use qemu_harness::dtb::Dts;
use qemu_harness::initramfs::{dom0_initramfs, init_script};
use qemu_harness::linux::{DebianKernel, debian_kernel};
use qemu_harness::machine::{LINUX_INITRD_ADDR, LINUX_KERNEL_ADDR, Tree};
use qemu_harness::{Machine, Outcome, image};
use std::path::{Path, PathBuf};
use std::time::Duration;

const KERNEL_PANIC: &str = "Kernel panic - not syncing";
/// Where QEMU's loader puts the bare-metal Dom0 (the probe).
const PROBE_KERNEL: u64 = 0x4200_0000;
/// The DomU's kernel and initramfs: clear of QEMU's tree at 0x4800_0000
/// and of a Linux Dom0's initramfs at 0x4900_0000.
const DOMU_KERNEL: u64 = 0x4c00_0000;
const DOMU_INITRD: u64 = 0x4e80_0000;
/// The DomU's command line: its kernel log through the console hypercall
/// (ours) and, where there is one, its PL011 (Xen's vPL011).
const DOMU_BOOTARGS: &str = "console=ttyAMA0 earlycon=xenboot keep_bootcon";
/// A Linux Dom0's.
const DOM0_BOOTARGS: &str = "console=hvc0 earlycon=xenboot";
/// The DomU's last line before it ends.
const DOMU_DONE: &str = "domu: done";

fn size(file: &Path) -> u64 {
    std::fs::metadata(file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).len()
}

/// How the DomU ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// `poweroff -f`.
    PowerOff,
    /// `echo c > /proc/sysrq-trigger`: a kernel crash (`panic=-1`: it
    /// restarts at once, which under Xen's binding ends the domain).
    Crash,
}

/// The DomU's `/init` body: the report, then its end.
fn domu_init(end: End) -> String {
    let end = match end {
        End::PowerOff => "poweroff -f",
        End::Crash => "echo c > /proc/sysrq-trigger",
    };
    format!(
        r#"say() {{ echo "domu: $*" > /dev/kmsg; }}
say "hypervisor type $(cat /sys/hypervisor/type)"
say "cpus $(grep -c ^processor /proc/cpuinfo)"
/bin/gnttest --events 20 2>&1 | while read -r line; do say "$line"; done
find /proc/device-tree/ | sort | while read -r path; do
    if [ -f "$path" ]; then say "tree: ${{path#/proc/device-tree/}} $(od -An -v -tx1 "$path" | tr -d ' \n' | cut -c1-96)"; else say "tree: ${{path#/proc/device-tree/}}/"; fi
done
say "{}"
{end}
"#,
        DOMU_DONE.trim_start_matches("domu: ")
    )
}

/// Who Dom0 is.
enum Dom0 {
    /// The bare-metal probe, which waits for the DomU's end.
    Probe,
    /// Debian's 6.12 with this `/init` body.
    Linux(String),
}

/// One machine: QEMU's tree for `smp` CPUs, 2 GiB and `gic_version`, Dom0
/// and the DomU (Linux with `cpus` vCPUs ending as `end`) as `/chosen`
/// modules placed by QEMU's loader; `append` is the hypervisor's command line.
struct Setup {
    gic_version: u32,
    smp: u32,
    cpus: u32,
    end: End,
    dom0: Dom0,
    append: &'static str,
    name: &'static str,
}

impl Setup {
    fn machine(&self) -> Machine {
        let kernel = debian_kernel(DebianKernel::Trixie6_12);
        let domu_initrd = dom0_initramfs(kernel, &init_script(kernel, &domu_init(self.end)));
        assert!(DOMU_KERNEL + size(&kernel.image) <= DOMU_INITRD, "the DomU's kernel runs into its initramfs");
        let panic = if self.end == End::Crash { " panic=-1" } else { "" };
        let domu = format!(
            "domU1 {{ compatible = \"xen,domain\"; #address-cells = <1>; #size-cells = <1>; \
             memory = <0x0 0x40000>; cpus = <{}>; xen,enhanced = \"enabled\"; vpl011;\n\
             module@{DOMU_KERNEL:x} {{ compatible = \"multiboot,kernel\", \"multiboot,module\"; reg = <{DOMU_KERNEL:#x} {:#x}>; \
             bootargs = \"{DOMU_BOOTARGS}{panic}\"; }};\n\
             module@{DOMU_INITRD:x} {{ compatible = \"multiboot,ramdisk\", \"multiboot,module\"; reg = <{DOMU_INITRD:#x} {:#x}>; }};\n}};",
            self.cpus,
            size(&kernel.image),
            size(&domu_initrd)
        );
        let base = Machine {
            cpu: "cortex-a57".into(),
            memory: "2G".into(),
            gic_version: self.gic_version,
            smp: self.smp,
            append: Some(self.append.into()),
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
        let dtb = dts.add_subnode("chosen", &domu).write(self.name);
        loaded.extend([(kernel.image.clone(), DOMU_KERNEL), (domu_initrd, DOMU_INITRD)]);
        let mut extra = Vec::new();
        for (file, addr) in loaded {
            extra.extend(["-device".into(), format!("loader,file={},addr={addr:#x},force-raw=on", file.display())]);
        }
        Machine { tree: Tree::Dtb(dtb), extra, ..base }
    }
}

/// The counts of the `/proc/interrupts` lines the DomU reported with a
/// field starting with `name` (an interrupt's name, or its chip's, as
/// `xen-dyn-lateeoi`): one per line, summed over its CPUs.
fn interrupt_counts(out: &Outcome, name: &str) -> Vec<u64> {
    out.output
        .lines()
        .filter_map(|l| l.split("domu: gnttest: events: interrupts: ").nth(1))
        .filter(|l| l.split_whitespace().any(|w| w.starts_with(name)))
        .map(|l| l.split_whitespace().skip(1).map_while(|w| w.parse::<u64>().ok()).sum())
        .collect()
}

/// What every Linux DomU reported: `/init` reached with `cpus` CPUs, Xen's
/// hypervisor type, the loopback events delivered, and the timer, the
/// event upcall and the ports' interrupts counting.
fn domu_reported(out: &Outcome, cpus: u32) {
    out.expect_line("Run /init as init process");
    out.expect_line("domu: hypervisor type xen");
    out.expect_line(&format!("domu: cpus {cpus}"));
    out.expect_line("domu: gnttest: events: 20 loopback events delivered");
    out.expect_line("domu: gnttest: ok");
    out.expect_line(DOMU_DONE);
    let timer = interrupt_counts(out, "arch_timer");
    let events = interrupt_counts(out, "events");
    let ports = interrupt_counts(out, "xen-dyn");
    println!("DomU interrupts: arch_timer {timer:?}, events {events:?}, xen-dyn ports {ports:?}");
    assert!(timer.len() == 1 && timer[0] > 10, "the virtual timer counts: {timer:?}; output:\n{}", out.output);
    assert!(events.len() == 1 && events[0] >= 20, "the event upcall counts: {events:?}; output:\n{}", out.output);
    assert!(ports.len() >= 2 && ports.iter().sum::<u64>() >= 20, "the ports count: {ports:?}; output:\n{}", out.output);
}

/// The kernel log's time (seconds since the DomU's kernel started) on the
/// first line containing `needle`.
fn kernel_time(out: &Outcome, needle: &str) -> f64 {
    let line = out.expect_line(needle);
    let stamp = line.split('[').nth(1).and_then(|s| s.split(']').next()).expect("a [time] stamp");
    stamp.trim().parse().expect("seconds")
}

/// Our hypervisor ended the DomU alone and gave everything back.
fn domu_ended_alone(out: &Outcome, how: &str) {
    let ended = out.expect_line(&format!("(HV) d1: {how}; the domain's vCPUs stop, the machine carries on"));
    out.expect_line_after(ended, "(HV) d1: released: ");
    let released = out.expect_line("(HV) d1: released: ");
    let free_after = out.number_after("(HV) d1: released: ");
    println!("{released}");
    assert!(free_after > 65536, "{released}");
}

fn run_ours(machine: Machine) -> Outcome {
    let out = machine.tuned_for_qemu().run();
    if std::env::var_os("SHOW_OUTPUT").is_some() {
        println!("{}", out.output);
    }
    println!(
        "ours: {:.1} s in all; the DomU's kernel ran /init at {:.2} s of its own",
        out.elapsed.as_secs_f64(),
        kernel_time(&out, "Run /init as init process")
    );
    out
}

/// Beside the probe on GICv3, one vCPU: the report, its power-off, its
/// release, and the probe, which waited for its end, passing.
#[test]
fn debian_6_12_boots_as_a_domu_beside_the_probe() {
    let out = run_ours(
        Setup {
            gic_version: 3,
            smp: 2,
            cpus: 1,
            end: End::PowerOff,
            dom0: Dom0::Probe,
            append: "dom0_mem=512M",
            name: "linux-guest-probe",
        }
        .machine(),
    );
    out.expect_line("(HV) d1: DomU from /chosen/domU1: 256 MiB, 1 vCPU(s) on CPU 1 (0x1), xen,enhanced Enabled");
    domu_reported(&out, 1);
    out.expect_line("GICv3: CPU0: found redistributor 0 region 0:0x0000000003020000");
    out.expect_line("arch_timer: cp15 timer(s) running at 62.50MHz (virt).");
    out.expect_line("xen:grant_table: Grant tables using version 1 layout");
    domu_ended_alone(&out, "shutdown: power off");
    out.expect_line("probe: ok: VIRQ_DOM_EXC: a domain ended");
    out.expect_line("probe: 0 failures");
    out.expect_exit(0);
}

/// Two DomU vCPUs on a GICv2 host (`gic-version=2`, 3 CPUs: Dom0 keeps
/// one): its distributor emulated, the host's GICV as its CPU interface,
/// its SGIs through GICD_SGIR between its own vCPUs.
#[test]
fn on_gicv2_two_vcpus() {
    let out = run_ours(
        Setup {
            gic_version: 2,
            smp: 3,
            cpus: 2,
            end: End::PowerOff,
            dom0: Dom0::Probe,
            append: "dom0_mem=512M",
            name: "linux-guest-gicv2",
        }
        .machine(),
    );
    domu_reported(&out, 2);
    domu_ended_alone(&out, "shutdown: power off");
    out.expect_line("probe: 0 failures");
    out.expect_exit(0);
}

/// Dom0's `/init` beside a Linux DomU: Xen's hypervisor type, privcmd maps
/// the running DomU's first frame (its kernel's Image header), then it
/// waits for a typed line (typed once the DomU has ended) and says it
/// carries on before powering off.
fn dom0_init() -> String {
    r#"echo "init: hypervisor type $(cat /sys/hypervisor/type)"
/bin/gnttest --peek 1 --gfn 0x40000
echo "init: peek exited $?"
echo "init: waiting for the DomU's end"
read -r line
sleep 1
echo "init: Dom0 carries on after the DomU's end ($line)"
poweroff -f
"#
    .into()
}

/// Debian's 6.12 as Dom0 on CPU 0 and as a 1-vCPU DomU on CPU 1, the same
/// tree and modules under Xen 4.17 and ours: the DomU's report and the
/// same device tree (its nodes and properties), Dom0's privcmd maps the
/// DomU's Image header while it runs, the DomU powers off and Dom0 goes on.
#[test]
fn under_xen_4_17_and_ours_with_a_linux_dom0() {
    let setup = |append| Setup {
        gic_version: 3,
        smp: 2,
        cpus: 1,
        end: End::PowerOff,
        dom0: Dom0::Linux(dom0_init()),
        append,
        name: "linux-guest-dom0",
    };
    let typed = |after: &str| vec![(after.to_string(), "go\r".to_string())];
    // One vCPU for Dom0, as ours partitions the CPUs.
    let xen = Machine { typed: typed(DOMU_DONE), ..setup("dom0_mem=512M dom0_max_vcpus=1").machine() }
        .run_image(&image::xen_4_17(), Some(KERNEL_PANIC));
    if std::env::var_os("SHOW_OUTPUT").is_some() {
        println!("{}", xen.output);
    }
    let ours = run_ours(Machine { typed: typed("(HV) d1: released: "), ..setup("dom0_mem=512M").machine() });
    for out in [&xen, &ours] {
        out.expect_line("init: hypervisor type xen");
        out.expect_line("gnttest: peek: d1 gfn 0x40000 holds an arm64 Image header");
        out.expect_line("init: peek exited 0");
        domu_reported(out, 1);
        out.expect_line_after(DOMU_DONE, "init: Dom0 carries on after the DomU's end (go)");
    }
    domu_ended_alone(&ours, "shutdown: power off");
    let tree = |out: &Outcome| -> Vec<String> {
        out.output.lines().filter_map(|l| l.split("domu: tree: ").nth(1)).map(str::to_string).collect()
    };
    // Node and property names alike, but for what ours lacks yet: the
    // vPL011 and PSCI 0.1's function numbers (Linux takes PSCI 0.2's from
    // the compatible), and the DomU's extended regions (Xen's `/hypervisor`
    // reg has more entries: its values differ, its name does not).
    let names = |tree: &[String]| -> std::collections::BTreeSet<String> {
        tree.iter().map(|l| l.split(' ').next().unwrap_or("").to_string()).collect()
    };
    let (xen_tree, our_tree) = (tree(&xen), tree(&ours));
    let only_xen: Vec<String> = names(&xen_tree).difference(&names(&our_tree)).cloned().collect();
    let only_ours: Vec<String> = names(&our_tree).difference(&names(&xen_tree)).cloned().collect();
    let known: Vec<&str> = vec!["psci/cpu_off", "psci/cpu_on", "sbsa-uart@22000000/"];
    assert!(
        only_xen.iter().all(|n| known.iter().any(|k| n.starts_with(k))),
        "in Xen's DomU tree only: {only_xen:?}\nXen's:\n{}\nours:\n{}",
        xen_tree.join("\n"),
        our_tree.join("\n")
    );
    assert_eq!(only_ours, vec!["interrupt-controller@3001000/#redistributor-regions".to_string()], "in ours only");
    // Values short enough for Xen's console line, alike.
    for name in [
        "#address-cells",
        "chosen/linux,initrd-start",
        "cpus/cpu@0/compatible",
        "cpus/cpu@0/reg",
        "memory@40000000/reg",
        "timer/interrupts",
        "hypervisor/compatible",
        "hypervisor/interrupts",
        "interrupt-controller@3001000/compatible",
        "interrupt-controller@3001000/phandle",
        "psci/compatible",
        "psci/method",
    ] {
        let value = |tree: &[String]| tree.iter().find(|l| l.split(' ').next() == Some(name)).cloned();
        let ours_value = value(&our_tree);
        // Xen puts the initramfs elsewhere in the DomU's RAM.
        if name != "chosen/linux,initrd-start" {
            assert_eq!(value(&xen_tree), ours_value, "{name}");
        }
        assert!(ours_value.is_some(), "{name} in our DomU tree");
    }
}

/// A DomU of 2 vCPUs (3 CPUs: Dom0 keeps one) beside Debian's 6.12 as
/// Dom0 that crashes (`echo c > /proc/sysrq-trigger`, then `panic=-1`
/// restarts it): it ends alone, its vCPUs stop, everything of it is
/// given back, and Dom0, which mapped its frame and let go, carries on.
#[test]
fn a_two_vcpu_domu_that_crashes_ends_alone() {
    let machine = Setup {
        gic_version: 3,
        smp: 3,
        cpus: 2,
        end: End::Crash,
        dom0: Dom0::Linux(dom0_init()),
        append: "dom0_mem=512M",
        name: "linux-guest-crash",
    }
    .machine();
    let out = run_ours(Machine { typed: vec![("(HV) d1: released: ".into(), "go\r".into())], ..machine });
    out.expect_line("(HV) d1: DomU from /chosen/domU1: 256 MiB, 2 vCPU(s) on CPU 1 (0x1), 2 (0x2)");
    out.expect_line("smp: Brought up 1 node, 2 CPUs");
    domu_reported(&out, 2);
    out.expect_line("sysrq: Trigger a crash");
    domu_ended_alone(&out, "shutdown: reboot, which is not supported; the domain stops");
    out.expect_line("(HV) d1: vCPU 0 stopped");
    out.expect_line("(HV) d1: vCPU 1 stopped");
    out.expect_line("gnttest: peek: d1 gfn 0x40000 holds an arm64 Image header");
    out.expect_line_after("(HV) d1: released: ", "init: Dom0 carries on after the DomU's end (go)");
    out.expect_line("(HV) d0: shutdown: power off");
    let at_entry = out.number_after("Free frames at Dom0 entry: ");
    let at_shutdown = out.number_after("Free frames at shutdown: ");
    assert!(at_shutdown >= at_entry, "frames lost: {at_entry} at Dom0 entry, {at_shutdown} at shutdown");
    out.expect_exit(0);
}
