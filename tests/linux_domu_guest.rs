//! Debian's Linux as a dom0less DomU: trixie's 6.12 Image, unmodified, with
//! a busybox initramfs, from a `/chosen/domU1` node (Xen's binding: 256
//! MiB, `xen,enhanced`, `vpl011`, a `multiboot,ramdisk` child, `bootargs`
//! on the kernel module; `qemu_harness::linux_domu`) beside a Dom0: the
//! bare-metal probe (which waits for the DomU's end,
//! `probe=wait-domain-end`, then finishes its own checks) or Debian's 6.12.
//!
//! The DomU's console is its vPL011 (`console=ttyAMA0`): under ours its
//! lines are `(d1) ` lines, under Xen 4.17 `(XEN) DOM1: ` lines. Its
//! `/init` reports what it sees as `domu: ` lines written to `/dev/kmsg`
//! (whole records, never cut by a kernel line): Xen's
//! `/sys/hypervisor/type`, its CPUs, a loopback event channel through
//! `/dev/xen/evtchn` (gnttest `--events`), `/proc/interrupts` while its
//! ports are bound (the virtual timer, the event-channel PPI `events` and
//! the ports' `xen-dyn` interrupts, all counting), then it powers off,
//! crashes, or runs a shell on its console that takes typed input.

use qemu_harness::initramfs::init_script;
use qemu_harness::interactive::{self, Flags};
use qemu_harness::linux::{DebianKernel, debian_kernel};
use qemu_harness::linux_domu::{Dom0, LinuxDomu};
use qemu_harness::{Machine, Outcome, image};

const KERNEL_PANIC: &str = "Kernel panic - not syncing";
/// The DomU's line at the end of its report (then it ends, or runs a shell).
const DOMU_DONE: &str = "domu: done";
/// What the DomU's shell is asked to echo, and what it prints.
const TYPED_INTO_DOMU: &str = "echo typed-into-domu $((6*7))\r";
const DOMU_ECHOED: &str = "typed-into-domu 42";

/// How the DomU ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// `poweroff -f`.
    PowerOff,
    /// `echo c > /proc/sysrq-trigger`: a kernel crash (`panic=-1`: it
    /// restarts at once, which under Xen's binding ends the domain).
    Crash,
    /// A busybox shell on its console (the vPL011, `ttyAMA0`), which
    /// takes typed input once the input is switched to the DomU; its
    /// `exit` powers the DomU off.
    Shell,
}

/// The DomU's `/init` body: the report, then its end.
fn domu_init(end: End) -> String {
    let end = match end {
        End::PowerOff => "poweroff -f",
        End::Crash => "echo c > /proc/sysrq-trigger",
        End::Shell => "say \"shell on $(cat /sys/class/tty/console/active)\"\nsh\nsay \"shell exited\"\npoweroff -f",
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
        LinuxDomu {
            gic_version: self.gic_version,
            smp: self.smp,
            cpus: self.cpus,
            init: init_script(kernel, &domu_init(self.end)),
            bootargs: if self.end == End::Crash { "panic=-1".into() } else { String::new() },
            dom0: self.dom0.clone(),
            append: self.append.into(),
            name: self.name.into(),
        }
        .machine()
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
    // `stage2-blocks=no` (`tuned_for_qemu`) maps the DomU's RAM in 4 KiB
    // pages too: a last-level table per 2 MiB, 128 for its 256 MiB.
    let tables = out.expect_line(" table pages (RAM in 4 KiB pages, stage2-blocks=no): its RAM only");
    let count: u64 =
        tables.split(", stage 2 ").nth(1).and_then(|t| t.split(' ').next()?.parse().ok()).expect("a count");
    assert!((130..140).contains(&count), "{tables}");
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
/// the running DomU's first frame (its kernel's Image header) from the
/// extended regions, then it waits for a typed line (typed once the DomU
/// has ended) and says it carries on before powering off. `gone_after_end`:
/// then a map of the ended DomU must fail with -ESRCH (ours tears it down;
/// Xen 4.17 keeps a dom0less DomU that shut down until `xl destroy`).
fn dom0_init(gone_after_end: bool) -> String {
    let gone = if gone_after_end {
        "/bin/gnttest --peek 1 --gfn 0x40000 --gone\necho \"init: peek of the ended DomU exited $?\"\n"
    } else {
        ""
    };
    format!(
        r#"echo "init: hypervisor type $(cat /sys/hypervisor/type)"
/bin/gnttest --peek 1 --gfn 0x40000
echo "init: peek exited $?"
echo "init: waiting for the DomU's end"
read -r line
sleep 1
echo "init: Dom0 carries on after the DomU's end ($line)"
{gone}poweroff -f
"#
    )
}

/// Dom0 saw the running DomU's frame from its extended regions and, once
/// the DomU ended, nothing of it.
fn dom0_peeked_then_found_it_gone(out: &Outcome) {
    out.expect_line("gnttest: peek: Linux's Xen scratch ranges lie in extended regions");
    out.expect_line_after("(HV) d1: released: ", "gnttest: peek: d1 is gone: -ESRCH");
    out.expect_line("init: peek of the ended DomU exited 0");
}

/// What is typed at the console beside a Linux Dom0 and a DomU with a
/// shell: once the DomU's shell runs, Ctrl-A three times (the input to
/// the DomU), a line for its shell, then `exit` (it powers off); once it
/// has ended (`ended`), Ctrl-A six times (to the hypervisor, then back to
/// Dom0) and the line Dom0's `/init` waits for.
fn typed_for_the_shells(ended: &str) -> Vec<(String, String)> {
    [
        ("domu: shell on ttyAMA0", "\x01\x01\x01"),
        ("*** Serial input to DOM1", TYPED_INTO_DOMU),
        (DOMU_ECHOED, "exit\r"),
        (ended, "\x01\x01\x01\x01\x01\x01go\r"),
    ]
    .into_iter()
    .map(|(after, text)| (after.to_string(), text.to_string()))
    .collect()
}

/// Panics with the whole output unless lines containing `needles` follow
/// one another in this order (others between them).
fn expect_in_order(out: &Outcome, needles: &[&str]) {
    let mut lines = out.output.lines();
    for needle in needles {
        if !lines.any(|l| l.contains(needle)) {
            panic!("no line contains {needle:?} after the lines of {needles:?} before it; output:\n{}", out.output);
        }
    }
}

/// Debian's 6.12 as Dom0 on CPU 0 and as a 1-vCPU DomU on CPU 1, the same
/// tree and modules under Xen 4.17 and ours: the DomU's report and the
/// same device tree (its nodes and properties), Dom0's privcmd maps the
/// DomU's Image header while it runs. The DomU's console is its vPL011:
/// each kernel line once, as a `(d1) ` line under ours. Then a person at
/// the console: Ctrl-A three times moves the input to the DomU, a line
/// typed reaches its shell (busybox `sh` on `ttyAMA0`), which runs it;
/// `exit` powers the DomU off; Ctrl-A six times moves the input on to the
/// hypervisor and back to Dom0, whose `/init` reads the next line typed
/// and goes on.
#[test]
fn under_xen_4_17_and_ours_with_a_linux_dom0() {
    let setup = |append, ours| Setup {
        gic_version: 3,
        smp: 2,
        cpus: 1,
        end: End::Shell,
        dom0: Dom0::Linux(dom0_init(ours)),
        append,
        name: "linux-guest-dom0",
    };
    // One vCPU for Dom0, as ours partitions the CPUs.
    let xen = Machine {
        typed: typed_for_the_shells("domu: shell exited"),
        ..setup("dom0_mem=512M dom0_max_vcpus=1", false).machine()
    }
    .run_image(&image::xen_4_17(), Some(KERNEL_PANIC));
    if std::env::var_os("SHOW_OUTPUT").is_some() {
        println!("{}", xen.output);
    }
    let ours = run_ours(Machine {
        typed: typed_for_the_shells("(HV) d1: released: "),
        ..setup("dom0_mem=512M", true).machine()
    });
    // The DomU's vPL011 lines: under Xen `(XEN) DOM1: ` while it has no
    // input (then `(XEN) ` alone, printed at once), under ours `(d1) `.
    let xen_facts = (&xen, "(XEN) DOM1: ", "*** Serial input to Xen");
    for (out, domu_line, to_the_hypervisor) in [xen_facts, (&ours, "(d1) ", "*** Serial input to the hypervisor")] {
        out.expect_line("init: hypervisor type xen");
        out.expect_line("gnttest: peek: d1 gfn 0x40000 holds an arm64 Image header");
        out.expect_line("init: peek exited 0");
        domu_reported(out, 1);
        // The DomU's kernel log once, through its vPL011: no boot console beside it.
        let runs = out.output.lines().filter(|l| l.contains("Run /init as init process")).collect::<Vec<_>>();
        let domu_runs = runs.iter().filter(|l| l.starts_with(domu_line)).count();
        assert_eq!((runs.len(), domu_runs), (2, 1), "Dom0's and the DomU's /init, each once: {runs:?}");
        expect_in_order(
            out,
            &[
                "domu: shell on ttyAMA0",
                "*** Serial input to DOM1",
                DOMU_ECHOED,
                "domu: shell exited",
                to_the_hypervisor,
                "*** Serial input to DOM0",
                "init: Dom0 carries on after the DomU's end (go)",
            ],
        );
    }
    // Under ours every line of the DomU's is its own, prefixed.
    for needle in ["domu: hypervisor type xen", "domu: shell on ttyAMA0", DOMU_ECHOED] {
        let line = ours.expect_line(needle);
        assert!(line.starts_with("(d1) "), "a (d1) line: {line:?}");
    }
    domu_ended_alone(&ours, "shutdown: power off");
    dom0_peeked_then_found_it_gone(&ours);
    let tree = |out: &Outcome| -> Vec<String> {
        out.output.lines().filter_map(|l| l.split("domu: tree: ").nth(1)).map(str::to_string).collect()
    };
    // Node and property names alike, but for PSCI 0.1's function numbers,
    // which ours leaves out (Linux takes PSCI 0.2's from the compatible),
    // and the DomU's extended regions (Xen's `/hypervisor` reg has more
    // entries: its values differ, its name does not); ours names the
    // vPL011 in `stdout-path` (Xen 4.17 does not: `console=ttyAMA0`
    // names it there) and a GICv3's `#redistributor-regions`.
    let names = |tree: &[String]| -> std::collections::BTreeSet<String> {
        tree.iter().map(|l| l.split(' ').next().unwrap_or("").to_string()).collect()
    };
    let (xen_tree, our_tree) = (tree(&xen), tree(&ours));
    let only_xen: Vec<String> = names(&xen_tree).difference(&names(&our_tree)).cloned().collect();
    let only_ours: Vec<String> = names(&our_tree).difference(&names(&xen_tree)).cloned().collect();
    let known: Vec<&str> = vec!["psci/cpu_off", "psci/cpu_on"];
    assert!(
        only_xen.iter().all(|n| known.iter().any(|k| n.starts_with(k))),
        "in Xen's DomU tree only: {only_xen:?}\nXen's:\n{}\nours:\n{}",
        xen_tree.join("\n"),
        our_tree.join("\n")
    );
    let only_ours_expected = ["chosen/stdout-path", "interrupt-controller@3001000/#redistributor-regions"];
    assert_eq!(only_ours, only_ours_expected, "in ours only");
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
        "sbsa-uart@22000000/compatible",
        "sbsa-uart@22000000/current-speed",
        "sbsa-uart@22000000/interrupts",
        "sbsa-uart@22000000/reg",
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
        dom0: Dom0::Linux(dom0_init(true)),
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
    dom0_peeked_then_found_it_gone(&out);
    out.expect_line("(HV) d0: shutdown: power off");
    // Everything the DomU took before Dom0's entry came back.
    let released = out.expect_line("(HV) d1: released: ");
    let back = qemu_harness::machine::number_after(released, "released: ").expect("a count of frames");
    let at_entry = out.number_after("Free frames at Dom0 entry: ");
    let at_shutdown = out.number_after("Free frames at shutdown: ");
    assert_eq!(
        at_shutdown,
        at_entry + back,
        "frames lost: {at_entry} at Dom0 entry, {released}, {at_shutdown} at shutdown"
    );
    out.expect_exit(0);
}

/// `qemu/run --domu`, the very machine it boots (`qemu_harness::interactive`):
/// Debian's 6.12 as Dom0 with its shell on `hvc0` and as a DomU with its
/// shell on its vPL011. A line typed after Ctrl-A three times reaches the
/// DomU's shell; its `exit` powers the DomU off; Ctrl-A six times brings
/// the input back to Dom0, whose shell runs the next line and powers off.
/// (Under `qemu/run` QEMU's own Ctrl-A escape doubles each Ctrl-A.)
#[test]
fn qemu_run_domu_gives_each_domain_a_shell() {
    let (machine, image) = interactive::machine(Flags { domu: true, ..Flags::default() }, &[]).expect("--domu");
    let typed = [
        ("DomU: 'exit' powers this DomU off", "\x01\x01\x01"),
        ("*** Serial input to DOM1", TYPED_INTO_DOMU),
        (DOMU_ECHOED, "exit\r"),
        ("(HV) d1: released: ", "\x01\x01\x01\x01\x01\x01echo typed-into-dom0 $((6*7)); poweroff -f\r"),
    ];
    let typed = typed.into_iter().map(|(after, text)| (after.to_string(), text.to_string())).collect();
    let out = Machine { typed, ..machine }.run_image(&image, Some(KERNEL_PANIC));
    if std::env::var_os("SHOW_OUTPUT").is_some() {
        println!("{}", out.output);
    }
    out.expect_line("(d1) DomU: Linux 6.12");
    out.expect_line("busybox sh on ttyAMA0.");
    out.expect_line("(d0) Dom0: Linux 6.12");
    expect_in_order(
        &out,
        &[
            "*** Serial input to DOM1",
            &format!("(d1) {DOMU_ECHOED}"),
            "(HV) d1: shutdown: power off",
            "*** Serial input to the hypervisor",
            "*** Serial input to DOM0",
            "(d0) typed-into-dom0 42",
            "(HV) d0: shutdown: power off",
        ],
    );
    out.expect_exit(0);
}
