//! `cargo bench-qemu [-- --runs N --iterations N --only boot,phases,traps,domu,linux,domu-linux,footprint]`:
//! the hypervisor measured against Xen 4.17 and against no hypervisor on
//! the same QEMU, as a table of medians with their minimum and maximum.
//!
//! - boot: the hypervisor's own count of counter ticks from `primary_main`
//!   to the ERET into Dom0, on `-m 1G` and `-m 8G`; then the same under
//!   `-icount shift=0`, where a tick is 10^9/F instructions.
//! - traps: the `dom0-bench` guest's figures (ns per operation) under ours,
//!   ours with `loglvl=error`, and Xen 4.17; runs interleaved.
//! - domu: the calls between domains, from the `dom0-bench` guest
//!   (`domu=1`) against a dom0less DomU serving (`domu-probe`,
//!   `mode=serve`): a foreign map and unmap, a grant map and unmap, an
//!   event round trip; under ours, ours with `loglvl=error`, and Xen 4.17.
//! - linux: QEMU's start to the first line of Dom0's `/init` (Debian 6.12),
//!   with no hypervisor (`virtualization=off`, the kernel booted directly
//!   with `mem=512M`), under ours (by default, and with `stage2-blocks=no`)
//!   and under Xen 4.17; runs interleaved.
//! - domu-linux: QEMU's start to the first line of a Linux DomU's `/init`
//!   (Debian 6.12, 256 MiB, 1 vCPU, `vpl011`, `console=ttyAMA0`, beside
//!   the probe as Dom0), under ours (as is, and with `stage2-blocks=no`)
//!   and Xen 4.17, and with no hypervisor
//!   (the kernel booted directly with `mem=256M maxcpus=1`); runs interleaved.
//! - phases: where the boot's instructions go (`loglvl=debug` logs each
//!   boot phase in counter ticks; under `-icount shift=0` they count
//!   instructions), on `-m 1G` and `-m 8G` with the small benchmark Dom0
//!   and on `-m 2G` with Debian's kernel and initrd.
//! - footprint: the image's size, and the heap and stage-2 tables in use at
//!   Dom0 entry for 512 MiB and 4 GiB Dom0s.
//!
//! Progress goes to stderr, the table to stdout.

use qemu_harness::bench::{
    Sighting, Spread, bench_machine, bench_machine_with_domu, boot_phases, boot_ticks, guest_figures, heap_kib,
    image_size_field, stage2_table_pages, time_to_line,
};
use qemu_harness::initramfs::dom0_initramfs;
use qemu_harness::linux::{DebianKernel, debian_kernel};
use qemu_harness::linux_domu::{Dom0, LinuxDomu};
use qemu_harness::{Machine, image};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The hypervisor's log line with the boot's length.
const BOOT_LINE: &str = "counter ticks from entry to Dom0";
/// The last line the benchmark guest prints.
const GUEST_DONE: &str = "bench: done";
/// `/init`'s first line in the Linux runs.
const INIT_LINE: &str = "bench: /init started";
/// A Linux DomU's `/init`'s first line, on its vPL011.
const DOMU_INIT_LINE: &str = "bench: domu /init started";

struct Options {
    runs: usize,
    iterations: u64,
    sections: Vec<String>,
}

fn options() -> Options {
    let mut o = Options { runs: 5, iterations: 100_000, sections: Vec::new() };
    // `cargo bench-qemu -- --runs 1` hands the program a `--` of its own.
    let mut args = std::env::args().skip(1).skip_while(|a| a == "--");
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().unwrap_or_else(|| usage(&format!("{name} needs a value")));
        match arg.as_str() {
            "--runs" => o.runs = value("--runs").parse().unwrap_or_else(|_| usage("--runs takes a number")),
            "--iterations" => {
                o.iterations = value("--iterations").parse().unwrap_or_else(|_| usage("--iterations takes a number"))
            }
            "--only" => o.sections = value("--only").split(',').map(String::from).collect(),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    o.runs = o.runs.max(1);
    o
}

fn usage(why: &str) -> ! {
    eprintln!("bench: {why}");
    eprintln!(
        "usage: cargo bench-qemu [--runs N] [--iterations N] [--only boot,phases,traps,domu,linux,domu-linux,footprint]"
    );
    std::process::exit(2)
}

fn main() {
    let o = options();
    let wanted = |s: &str| o.sections.is_empty() || o.sections.iter().any(|w| w == s);
    let hypervisor = image::hypervisor().to_path_buf();
    let qemu = std::process::Command::new("qemu-system-aarch64").arg("--version").output().ok();
    let qemu = qemu.as_ref().and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(String::from));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("{}", qemu.unwrap_or_else(|| "QEMU (version unknown)".into()));
    println!(
        "virt, GICv3, cortex-a57, 2 CPUs, TCG; host load average {}",
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    println!("Each figure: the median [min .. max] of {} runs", o.runs);
    if wanted("boot") {
        boot(&o, &hypervisor);
    }
    if wanted("phases") {
        phases(&hypervisor);
    }
    if wanted("traps") {
        traps(&o, &hypervisor);
    }
    if wanted("domu") {
        domu(&o, &hypervisor);
    }
    if wanted("linux") {
        linux(&o, &hypervisor);
    }
    if wanted("domu-linux") {
        domu_linux(&o, &hypervisor);
    }
    if wanted("footprint") {
        footprint(&hypervisor);
    }
}

fn progress(section: &str, run: usize, runs: usize, what: &str) {
    eprintln!("bench: {section} run {}/{runs}: {what}", run + 1);
}

/// Says why a run gave no figure, with its last lines.
fn explain(what: &str, s: &Sighting) -> String {
    let tail: Vec<&str> = s.output.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
    let why = match s.status {
        Some(code) => format!("QEMU exited with {code}"),
        None => "time limit".to_string(),
    };
    eprintln!("bench: {what}: no figure ({why}); last lines:\n  {}", tail.join("\n  "));
    why
}

fn show(s: Option<Spread>, scale: f64, decimals: usize) -> String {
    match s {
        Some(s) => format!(
            "{:.*} [{:.*} .. {:.*}]",
            decimals,
            s.median * scale,
            decimals,
            s.min * scale,
            decimals,
            s.max * scale
        ),
        None => "n/a".into(),
    }
}

fn ratio(a: Option<Spread>, b: Option<Spread>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}", a.median / b.median),
        _ => "n/a".into(),
    }
}

/// (a) The hypervisor's boot, in counter ticks it logs itself.
fn boot(o: &Options, hypervisor: &Path) {
    println!();
    println!("(a) Hypervisor boot: primary_main to the ERET into Dom0 (dom0_mem=512M)");
    println!("    {:<8} {:<34} instructions (-icount shift=0)", "RAM", "time, ms");
    for memory in ["1G", "8G"] {
        let mut millis = Vec::new();
        let mut instructions = Vec::new();
        // Instructions per counter tick under icount: the figures' resolution.
        let mut per_tick = 0.0;
        for run in 0..o.runs {
            for icount in [false, true] {
                progress("boot", run, o.runs, &format!("-m {memory}{}", if icount { " -icount shift=0" } else { "" }));
                let mut machine = bench_machine(memory, "dom0_mem=512M", 1);
                machine.timeout = Duration::from_secs(120);
                if icount {
                    machine.extra = vec!["-icount".into(), "shift=0".into()];
                }
                let s = time_to_line(&machine, hypervisor, BOOT_LINE);
                match boot_ticks(&s.output) {
                    // With icount at shift 0, one instruction is one nanosecond.
                    Some((ticks, hz)) if icount => {
                        per_tick = 1e9 / hz as f64;
                        instructions.push(ticks as f64 * per_tick);
                    }
                    Some((ticks, hz)) => millis.push(ticks as f64 * 1e3 / hz as f64),
                    None => {
                        explain(&format!("boot -m {memory}"), &s);
                    }
                }
            }
        }
        let instr = Spread::of(&instructions);
        let instr = match instr {
            Some(s) if s.max - s.min <= per_tick => {
                format!("{:.0} (every run within one tick, {per_tick:.0} instructions)", s.median)
            }
            _ => format!("{} (varies between runs)", show(instr, 1.0, 0)),
        };
        println!("    -m {memory:<5} {:<34} {instr}", show(Spread::of(&millis), 1.0, 2));
    }
}

/// (a') The boot phase by phase, in instructions: deterministic, so one run.
fn phases(hypervisor: &Path) {
    let kernel = debian_kernel(DebianKernel::Trixie6_12);
    let initrd = dom0_initramfs(kernel, "#!/bin/sh\n/bin/busybox poweroff -f\n");
    let linux = Machine::with_linux_dom0(&kernel.image, &initrd, "console=hvc0");
    let configs = [
        ("-m 1G", bench_machine("1G", "", 1)),
        ("-m 8G", bench_machine("8G", "", 1)),
        ("-m 2G Linux", Machine { memory: "2G".into(), ..linux }),
    ];
    let mut columns: Vec<Vec<(String, u64)>> = Vec::new();
    for (name, machine) in configs.iter() {
        eprintln!("bench: phases: {name}");
        let machine = Machine {
            append: Some("dom0_mem=512M loglvl=debug".into()),
            extra: vec!["-icount".into(), "shift=0".into()],
            timeout: Duration::from_secs(300),
            ..machine.clone()
        };
        let s = time_to_line(&machine, hypervisor, BOOT_LINE);
        let Some((_, hz)) = boot_ticks(&s.output) else {
            explain(&format!("phases {name}"), &s);
            columns.push(Vec::new());
            continue;
        };
        let per_tick = 1e9 / hz as f64;
        columns.push(boot_phases(&s.output).into_iter().map(|(p, t)| (p, (t as f64 * per_tick) as u64)).collect());
    }
    println!();
    println!("(a') Boot phases, thousands of instructions (-icount shift=0, dom0_mem=512M, loglvl=debug)");
    print!("    {:<42}", "phase");
    for (name, _) in &configs {
        print!(" {name:>12}");
    }
    println!();
    let mut names: Vec<&String> = Vec::new();
    for (phase, _) in columns.iter().flatten() {
        if !names.contains(&phase) {
            names.push(phase);
        }
    }
    for phase in names {
        print!("    {phase:<42}");
        for column in &columns {
            match column.iter().find(|(p, _)| p == phase) {
                Some((_, n)) => print!(" {:>12}", n / 1000),
                None => print!(" {:>12}", "-"),
            }
        }
        println!();
    }
}

/// (b) The trap costs the benchmark guest measures, under each hypervisor.
fn traps(o: &Options, hypervisor: &Path) {
    let xen = image::xen_4_17();
    // (name, image, command line, GIC version)
    let configs: [(&str, &Path, &str, u32); 5] = [
        ("ours", hypervisor, "dom0_mem=512M", 3),
        ("ours loglvl=error", hypervisor, "dom0_mem=512M loglvl=error", 3),
        ("Xen 4.17", &xen, "dom0_mem=512M", 3),
        ("ours GICv2", hypervisor, "dom0_mem=512M", 2),
        ("Xen 4.17 GICv2", &xen, "dom0_mem=512M", 2),
    ];
    // Samples per figure per configuration, and why some are missing.
    let mut figures = GuestFigures::default();
    for run in 0..o.runs {
        for (c, &(name, image, append, gic_version)) in configs.iter().enumerate() {
            progress("traps", run, o.runs, name);
            let mut machine = bench_machine("2G", append, o.iterations);
            machine.gic_version = gic_version;
            // The slowest figure seen is about 2 ms per operation (Xen's SGI to a vCPU in WFI).
            machine.timeout = Duration::from_secs(120) + Duration::from_millis(3) * o.iterations as u32;
            let s = time_to_line(&machine, image, GUEST_DONE);
            if s.after.is_none() {
                explain(name, &s);
            }
            figures.add(c, &s.output);
        }
    }
    println!();
    println!("(b) Trap costs from a bare-metal Dom0, ns per operation over {} iterations", o.iterations);
    println!("    (-m 2G, dom0_mem=512M; `loop` is the timing loop alone, included in every other figure;");
    println!("    quiet/Xen: ours with loglvl=error over Xen; v2: ours over Xen, both on gic-version=2)");
    let names: Vec<&str> = configs.iter().map(|c| c.0).collect();
    figures.print(&names, &[("ours/Xen", 0, 2), ("quiet/Xen", 1, 2), ("v2", 3, 4)]);
}

/// The figures the benchmark guest prints (`guest_figures`), gathered run
/// by run for each configuration of a table, in the order first seen.
#[derive(Default)]
struct GuestFigures {
    samples: BTreeMap<(String, usize), Vec<f64>>,
    missing: BTreeMap<(String, usize), String>,
    names: Vec<String>,
}

impl GuestFigures {
    /// One run's output under configuration `config`.
    fn add(&mut self, config: usize, output: &str) {
        for (figure, value) in guest_figures(output) {
            if !self.names.contains(&figure) {
                self.names.push(figure.clone());
            }
            match value {
                Ok(ns) => self.samples.entry((figure, config)).or_default().push(ns),
                Err(why) => {
                    self.missing.insert((figure, config), why);
                }
            }
        }
    }

    /// The table: a row per figure, a column per configuration (`configs`,
    /// their names), then each ratio (its heading, numerator and
    /// denominator configurations); then what could not be had.
    fn print(&self, configs: &[&str], ratios: &[(&str, usize, usize)]) {
        print!("    {:<24}", "operation");
        for name in configs {
            print!(" {name:<34}");
        }
        for (heading, _, _) in ratios {
            print!(" {heading:>9}");
        }
        println!();
        for figure in &self.names {
            let spread = |c: usize| self.samples.get(&(figure.clone(), c)).and_then(|v| Spread::of(v));
            print!("    {figure:<24}");
            for c in 0..configs.len() {
                print!(" {:<34}", show(spread(c), 1.0, 1));
            }
            for &(_, over, under) in ratios {
                print!(" {:>9}", ratio(spread(over), spread(under)));
            }
            println!();
        }
        for ((figure, c), why) in &self.missing {
            println!("    n/a: {figure} under {}: {why}", configs[*c]);
        }
    }
}

/// (b') The calls between Dom0 and a DomU, under each hypervisor.
fn domu(o: &Options, hypervisor: &Path) {
    let xen = image::xen_4_17();
    // (name, image, command line). Xen's Dom0 gets one vCPU, as ours
    // partitions the CPUs (the DomU, which spins, keeps the other).
    let configs: [(&str, &Path, &str); 3] = [
        ("ours", hypervisor, "dom0_mem=512M"),
        ("ours loglvl=error", hypervisor, "dom0_mem=512M loglvl=error"),
        ("Xen 4.17", &xen, "dom0_mem=512M dom0_max_vcpus=1"),
    ];
    let machines: Vec<Machine> = configs
        .iter()
        .enumerate()
        .map(|(c, &(_, _, append))| {
            let mut machine = bench_machine_with_domu(append, o.iterations, &format!("bench-domu-{c}"));
            // The slowest figure seen is well under 1 ms per operation.
            machine.timeout = Duration::from_secs(120) + Duration::from_millis(3) * o.iterations as u32;
            machine
        })
        .collect();
    let mut figures = GuestFigures::default();
    for run in 0..o.runs {
        for (c, &(name, image, _)) in configs.iter().enumerate() {
            progress("domu", run, o.runs, name);
            let s = time_to_line(&machines[c], image, GUEST_DONE);
            if s.after.is_none() {
                explain(name, &s);
            }
            figures.add(c, &s.output);
        }
    }
    println!();
    println!("(b') Calls between domains from a bare-metal Dom0 to a serving DomU, ns per operation");
    println!(
        "    over {} iterations (-m 2G, dom0_mem=512M, Dom0 on one CPU, the DomU (64 MiB) on the other; `loop` is the",
        o.iterations
    );
    println!("    timing loop alone; quiet/Xen: ours with loglvl=error over Xen; the goal is under 0.50)");
    let names: Vec<&str> = configs.iter().map(|c| c.0).collect();
    figures.print(&names, &[("ours/Xen", 0, 2), ("quiet/Xen", 1, 2)]);
}

/// (c) Linux's boot to `/init`, with and without a hypervisor.
fn linux(o: &Options, hypervisor: &Path) {
    let kernel = debian_kernel(DebianKernel::Trixie6_12);
    let init = format!("#!/bin/sh\necho \"{INIT_LINE}\"\n/bin/busybox poweroff -f\n");
    let initrd = dom0_initramfs(kernel, &init);
    let dom0 = Machine::with_linux_dom0(&kernel.image, &initrd, "console=hvc0 earlycon=xenboot");
    // The same QEMU options, but no EL2: the kernel itself at EL1 on the
    // same 2 GiB board, told to use the 512 MiB Dom0 gets.
    let bare = Machine {
        virtualization: false,
        append: Some("console=ttyAMA0 earlycon mem=512M".into()),
        modules: Vec::new(),
        extra: vec!["-initrd".into(), initrd.display().to_string()],
        ..dom0.clone()
    };
    // Dom0's RAM in 4 KiB stage-2 pages: what QEMU's TCG flushes precisely.
    let dom0_pages = Machine { append: Some("dom0_mem=512M stage2-blocks=no".into()), ..dom0.clone() };
    let xen = image::xen_4_17();
    const XEN: usize = 3;
    let configs: [(&str, &Machine, PathBuf); 4] = [
        ("no hypervisor", &bare, kernel.image.clone()),
        ("ours", &dom0, hypervisor.to_path_buf()),
        ("ours, s2 pages", &dom0_pages, hypervisor.to_path_buf()),
        ("Xen 4.17", &dom0, xen),
    ];
    let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut why: Vec<Option<String>> = vec![None; configs.len()];
    for run in 0..o.runs {
        for (c, (name, machine, image)) in configs.iter().enumerate() {
            progress("linux", run, o.runs, name);
            let s = time_to_line(machine, image, INIT_LINE);
            match s.after {
                Some(after) => seconds[c].push(after.as_secs_f64()),
                None => why[c] = Some(explain(&format!("Linux, {name}"), &s)),
            }
        }
    }
    let spread: Vec<Option<Spread>> = seconds.iter().map(|v| Spread::of(v)).collect();
    println!();
    println!("(c) Linux {} as Dom0: QEMU start to the first line of /init, seconds", kernel.release);
    println!("    {:<16} {:<28} {:>12} {:>8}", "", "seconds", "/no hyperv.", "/Xen");
    for (c, (name, _, _)) in configs.iter().enumerate() {
        let note = match (&why[c], spread[c]) {
            (Some(w), None) => format!("  (never: {w})"),
            (Some(w), Some(_)) => format!("  (some runs failed: {w})"),
            _ => String::new(),
        };
        println!(
            "    {name:<16} {:<28} {:>12} {:>8}{note}",
            show(spread[c], 1.0, 2),
            ratio(spread[c], spread[0]),
            ratio(spread[c], spread[XEN])
        );
    }
}

/// The kernel's own clock (seconds since it started) on its
/// `Run /init as init process` line, if it printed one.
fn kernel_clock_at_init(output: &str) -> Option<f64> {
    let line = output.lines().find(|l| l.contains("Run /init as init process"))?;
    line.split('[').nth(1)?.split(']').next()?.trim().parse().ok()
}

/// (c') A Linux DomU's boot to `/init`, under each hypervisor and with none.
fn domu_linux(o: &Options, hypervisor: &Path) {
    let kernel = debian_kernel(DebianKernel::Trixie6_12);
    let init = format!("#!/bin/sh\necho \"{DOMU_INIT_LINE}\"\n/bin/busybox poweroff -f\n");
    // Beside the probe as Dom0, which waits for the DomU's end.
    let setup = LinuxDomu::new(Dom0::Probe, init.clone(), "bench-domu-linux");
    // As is (stage-2 blocks), and with `stage2-blocks=no`, which maps the
    // DomU's RAM in 4 KiB pages too (as the tests and `qemu/run` boot it).
    let ours_blocks = setup.machine();
    let ours = ours_blocks.clone().tuned_for_qemu();
    // Xen's Dom0 gets one vCPU, as ours partitions the CPUs.
    let xen_setup =
        LinuxDomu { append: "dom0_mem=512M dom0_max_vcpus=1".into(), name: "bench-domu-linux-xen".into(), ..setup };
    let xen = xen_setup.machine();
    // No EL2: the same kernel and initramfs at EL1 on the same board, told
    // to use what the DomU gets (256 MiB, one CPU) and the same console.
    let bare = Machine {
        virtualization: false,
        append: Some("console=ttyAMA0 mem=256M maxcpus=1".into()),
        memory: "2G".into(),
        extra: vec!["-initrd".into(), qemu_harness::initramfs::dom0_initramfs(kernel, &init).display().to_string()],
        timeout: Duration::from_secs(120),
        ..Machine::default()
    };
    const XEN: usize = 3;
    let configs: [(&str, &Machine, PathBuf); 4] = [
        ("no hypervisor", &bare, kernel.image.clone()),
        ("ours", &ours_blocks, hypervisor.to_path_buf()),
        ("ours, s2 pages", &ours, hypervisor.to_path_buf()),
        ("Xen 4.17", &xen, image::xen_4_17()),
    ];
    let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut kernel_clock: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut why: Vec<Option<String>> = vec![None; configs.len()];
    for run in 0..o.runs {
        for (c, (name, machine, image)) in configs.iter().enumerate() {
            progress("domu-linux", run, o.runs, name);
            let s = time_to_line(machine, image, DOMU_INIT_LINE);
            match s.after {
                Some(after) => seconds[c].push(after.as_secs_f64()),
                None => why[c] = Some(explain(&format!("Linux DomU, {name}"), &s)),
            }
            kernel_clock[c].extend(kernel_clock_at_init(&s.output));
        }
    }
    let spread: Vec<Option<Spread>> = seconds.iter().map(|v| Spread::of(v)).collect();
    println!();
    println!(
        "(c') Linux {} as a DomU (256 MiB, 1 vCPU, vpl011, console=ttyAMA0, the probe as Dom0): QEMU start",
        kernel.release
    );
    println!("    to the first line of its /init on its console, seconds; and its kernel's own clock at `Run /init`");
    println!("    {:<16} {:<28} {:>12} {:>8}   kernel's clock", "", "seconds", "/no hyperv.", "/Xen");
    for (c, (name, _, _)) in configs.iter().enumerate() {
        let note = match (&why[c], spread[c]) {
            (Some(w), None) => format!("  (never: {w})"),
            (Some(w), Some(_)) => format!("  (some runs failed: {w})"),
            _ => String::new(),
        };
        println!(
            "    {name:<16} {:<28} {:>12} {:>8}   {}{note}",
            show(spread[c], 1.0, 2),
            ratio(spread[c], spread[0]),
            ratio(spread[c], spread[XEN]),
            show(Spread::of(&kernel_clock[c]), 1.0, 2)
        );
    }
}

/// (d) What the hypervisor occupies at Dom0 entry.
fn footprint(hypervisor: &Path) {
    let file = std::fs::metadata(hypervisor).map_or(0, |m| m.len());
    let loaded = image_size_field(hypervisor).unwrap_or(0);
    println!();
    println!("(d) Footprint at Dom0 entry (-m 8G)");
    println!("    image: {} KiB raw, {} KiB loaded (image_size: with BSS and stacks)", file >> 10, loaded >> 10);
    for dom0_mem in ["512M", "4G"] {
        eprintln!("bench: footprint: dom0_mem={dom0_mem}");
        let mut machine = bench_machine("8G", &format!("dom0_mem={dom0_mem}"), 1);
        machine.timeout = Duration::from_secs(120);
        let s = time_to_line(&machine, hypervisor, "d0: entering at");
        let heap = match heap_kib(&s.output) {
            Some((used, total)) => format!("heap {used} KiB used of {total} KiB"),
            None => format!("heap n/a ({})", explain("footprint", &s)),
        };
        let stage2 = match stage2_table_pages(&s.output) {
            Some(pages) => format!("stage-2 tables {pages} pages ({} KiB)", pages * 4),
            None => "stage-2 tables n/a (no `d0: stage 2: N table pages (at Dom0 entry)` line)".to_string(),
        };
        println!("    dom0_mem={dom0_mem:<5} {heap}; {stage2}");
    }
}
