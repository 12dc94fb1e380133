//! The pieces of `cargo bench-qemu` (`src/bin/bench.rs`): the benchmark
//! guest's image and machines, a run that notes when a line first appears,
//! statistics over runs, and readers for the figures in guest and
//! hypervisor output.

use crate::dtb::Dts;
use crate::image;
use crate::machine::number_after;
use crate::machine::{Machine, Module, Tree};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where QEMU's loader puts the benchmark Dom0 and the DomU beside it.
const DOM0_KERNEL: u64 = 0x4200_0000;
const DOMU_KERNEL: u64 = 0x4a00_0000;

/// The benchmark guest as Dom0 on `memory` of RAM (2 CPUs, cortex-a57),
/// with the hypervisor's command line `append` and `iterations` per figure.
/// Both hypervisors load it at 0x6000_0000, where it is linked, with
/// `dom0_mem=512M` on 2 GiB or more.
pub fn bench_machine(memory: &str, append: &str, iterations: u64) -> Machine {
    Machine {
        memory: memory.into(),
        append: Some(append.into()),
        modules: vec![Module {
            addr: DOM0_KERNEL,
            file: image::dom0_bench().to_path_buf(),
            kernel: true,
            bootargs: Some(format!("iterations={iterations}")),
        }],
        ..Machine::default()
    }
}

/// The benchmark guest as Dom0 (`domu=1 iterations=N` on its command line)
/// beside a dom0less DomU, `domu-probe` in serve mode (`/chosen/domU1`:
/// 64 MiB, 1 vCPU, `xen,enhanced`), on 2 GiB, 2 CPUs and GICv3, with the
/// hypervisor's command line `append`. Both modules are placed with QEMU's
/// loader, as `tests/domu.rs` does; Xen 4.17 boots the same tree.
pub fn bench_machine_with_domu(append: &str, iterations: u64, name: &str) -> Machine {
    let size = |file: &Path| std::fs::metadata(file).map_or(0, |m| m.len());
    let (dom0, domu) = (image::dom0_bench(), image::domu_probe());
    let base = Machine { memory: "2G".into(), append: Some(append.into()), ..Machine::default() };
    let domu_node = format!(
        "domU1 {{ compatible = \"xen,domain\"; #address-cells = <1>; #size-cells = <1>; \
         memory = <0x0 0x10000>; cpus = <1>; xen,enhanced = \"enabled\";\n\
         module@{DOMU_KERNEL:x} {{ compatible = \"multiboot,kernel\", \"multiboot,module\"; reg = <{DOMU_KERNEL:#x} {:#x}>; \
         bootargs = \"mode=serve expect-mem=0x4000000 expect-enhanced=1\"; }};\n}};",
        size(domu)
    );
    let dtb = Dts::from_blob(&base.generated_dtb())
        .add_to_node("chosen", &format!("xen,dom0-bootargs = \"domu=1 iterations={iterations}\";"))
        .with_kernel_module(DOM0_KERNEL, size(dom0))
        .add_subnode("chosen", &domu_node)
        .write(name);
    let mut extra = Vec::new();
    for (file, addr) in [(dom0, DOM0_KERNEL), (domu, DOMU_KERNEL)] {
        extra.extend(["-device".into(), format!("loader,file={},addr={addr:#x},force-raw=on", file.display())]);
    }
    Machine { tree: Tree::Dtb(dtb), extra, ..base }
}

/// A run stopped at the first line containing a needle.
#[derive(Debug)]
pub struct Sighting {
    /// From QEMU's start to the line; `None` if it never came.
    pub after: Option<Duration>,
    /// QEMU's exit status if it exited by itself before the line.
    pub status: Option<i32>,
    /// Console and semihosting output, interleaved as it arrived.
    pub output: String,
}

/// Runs QEMU for `machine` booting `image` and stops it as soon as a line
/// containing `needle` appears on its console or semihosting output, or at
/// the machine's time limit. Lines are timed as they arrive (no polling).
pub fn time_to_line(machine: &Machine, image: &Path, needle: &str) -> Sighting {
    let start = Instant::now();
    let mut child = Command::new("qemu-system-aarch64")
        .args(machine.args(image))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-aarch64 (run qemu/setup first)");
    let (send, lines) = mpsc::channel::<(Instant, String)>();
    let streams: [Box<dyn Read + Send>; 2] =
        [Box::new(child.stdout.take().expect("stdout")), Box::new(child.stderr.take().expect("stderr"))];
    let readers: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                    let line = String::from_utf8_lossy(&line).replace('\r', "");
                    if send.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(send);
    let mut output = String::new();
    let mut after = None;
    let deadline = start + machine.timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok((at, line)) => {
                output.push_str(&line);
                output.push('\n');
                if line.contains(needle) {
                    after = Some(at - start);
                    break;
                }
            }
            // The time limit, or both streams closed: QEMU has exited.
            Err(_) => break,
        }
    }
    let status = child.try_wait().ok().flatten().and_then(|s| s.code());
    let _ = child.kill();
    let _ = child.wait();
    for reader in readers {
        let _ = reader.join();
    }
    Sighting { after, status, output }
}

/// Median, minimum and maximum of some samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    /// `None` for no samples.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => return None,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Some(Self { median, min: v[0], max: v[n - 1], runs: n })
    }
}

/// A guest figure: `bench: NAME X.Y ns/op (...)` gives `Ok(X.Y)`,
/// `bench: NAME n/a (why)` gives `Err(why)`.
pub type Figure = Result<f64, String>;

/// Every figure the benchmark guest printed, in order.
pub fn guest_figures(output: &str) -> Vec<(String, Figure)> {
    output
        .lines()
        .filter_map(|l| l.trim_start_matches("(d0) ").strip_prefix("bench: "))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once(' ')?;
            if let Some(why) = rest.strip_prefix("n/a") {
                let why = why.trim().trim_start_matches('(').trim_end_matches(')');
                return Some((name.to_string(), Err(why.to_string())));
            }
            let (value, unit) = rest.split_once(' ')?;
            if !unit.starts_with("ns/op") {
                return None;
            }
            Some((name.to_string(), Ok(value.parse().ok()?)))
        })
        .collect()
}

/// The boot phases the hypervisor logs at debug level, in order:
/// `boot phase: <what>: <N> ticks`.
pub fn boot_phases(output: &str) -> Vec<(String, u64)> {
    output
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find("boot phase: ")? + "boot phase: ".len()..];
            let (what, ticks) = rest.rsplit_once(": ")?;
            Some((what.to_string(), ticks.strip_suffix(" ticks")?.trim().parse().ok()?))
        })
        .collect()
}

/// The hypervisor's `boot: N counter ticks from entry to Dom0 (F Hz; ...)`
/// line: (N, F).
pub fn boot_ticks(output: &str) -> Option<(u64, u64)> {
    let ticks = number_after(output, "boot: ")?;
    let hz = number_after(output, "counter ticks from entry to Dom0 (")?;
    Some((ticks, hz))
}

/// Stage-2 table pages at Dom0 entry, from the hypervisor's
/// `d0: stage 2: N table pages (at Dom0 entry)`.
pub fn stage2_table_pages(output: &str) -> Option<u64> {
    let line = output.lines().find(|l| l.ends_with(" table pages (at Dom0 entry)"))?;
    number_after(line, "d0: stage 2: ")
}

/// The heap in use and its size at Dom0 entry, in KiB, from `heap X KiB used of Y KiB`.
pub fn heap_kib(output: &str) -> Option<(u64, u64)> {
    Some((number_after(output, "; heap ")?, number_after(output, "KiB used of ")?))
}

/// An arm64 Image's `image_size` header field: what it occupies once loaded, BSS included.
pub fn image_size_field(image: &Path) -> Option<u64> {
    let bytes = std::fs::read(image).ok()?;
    Some(u64::from_le_bytes(bytes.get(0x10..0x18)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_even_and_none() {
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]), Some(Spread { median: 2.0, min: 1.0, max: 3.0, runs: 3 }));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median), Some(2.5));
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn figures_from_guest_output() {
        let out = "bench: counter 62500000 Hz, 1000 iterations per figure, 2 CPUs\n\
                   bench: hypercall 1393.2 ns/op (iterations 1000, ticks 87073, 62500000 Hz)\n\
                   (XEN) something\n\
                   bench: xen_version says 4.17\n\
                   bench: abort n/a (no /hypervisor node to take an unmapped address from)\n";
        assert_eq!(
            guest_figures(out),
            vec![
                ("hypercall".to_string(), Ok(1393.2)),
                ("abort".to_string(), Err("no /hypervisor node to take an unmapped address from".to_string())),
            ]
        );
    }

    #[test]
    fn hypervisor_log_lines() {
        let out = "(HV) Free frames at Dom0 entry: 125871; heap 1143 KiB used of 16384 KiB\n\
                   (HV) boot: 6279638 counter ticks from entry to Dom0 (62500000 Hz; entered at tick 436590)\n";
        assert_eq!(boot_ticks(out), Some((6_279_638, 62_500_000)));
        let phases = "(HV) boot phase: boot tree parsed: 1200 ticks\n\
                      (HV) d0: BANK[0] 0x60000000-0x80000000 (512 MiB)\n\
                      (HV) boot phase: kernel copied: 35 ticks\n";
        assert_eq!(boot_phases(phases), vec![("boot tree parsed".into(), 1200), ("kernel copied".into(), 35)]);
        assert_eq!(heap_kib(out), Some((1143, 16384)));
        assert_eq!(stage2_table_pages(out), None);
        assert_eq!(stage2_table_pages("(HV) d0: stage 2: 7 table pages (at Dom0 entry)\n"), Some(7));
        let pages_mode = "(HV) d0: stage 2: RAM in 4 KiB pages (stage2-blocks=no), 258 table pages\n\
                          (HV) d0: stage 2: 260 table pages (at Dom0 entry)\n";
        assert_eq!(stage2_table_pages(pages_mode), Some(260));
    }
}
