//! One QEMU `virt` machine with the hypervisor loaded, booted with a time
//! limit, its console and semihosting output captured.

use crate::image;
use crate::run_dir;
use crate::shim;
use crate::uboot;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where QEMU loads the image with `-kernel` (RAM base + 2 MiB), the
/// default load address (`Machine::image_addr`).
pub const IMAGE_ADDR: u64 = 0x4020_0000;
/// Where QEMU's `-kernel` puts a raw binary without an Image header (RAM
/// base + 512 KiB): the jump to an image loaded elsewhere (`shim::jump_to`).
pub const JUMP_ADDR: u64 = 0x4008_0000;
/// Where QEMU puts its device tree for 1 GiB or more, and where the shim
/// loads ours.
pub const DTB_ADDR: u64 = 0x4800_0000;
/// Clear of RAM's first MiB, where QEMU puts its tree when it loads no kernel.
pub const SHIM_ADDR: u64 = 0x4010_0000;
/// Where a Linux Dom0's kernel is loaded: 96 MiB of room below QEMU's tree.
pub const LINUX_KERNEL_ADDR: u64 = 0x4200_0000;
/// Where a Linux Dom0's initramfs is loaded: past QEMU's tree (1 MiB).
pub const LINUX_INITRD_ADDR: u64 = 0x4900_0000;

/// Our hypervisor's options for QEMU (see `Machine::tuned_for_qemu`).
pub const QEMU_TUNING: &str = "stage2-blocks=no";

/// A boot module placed with QEMU's guest-loader, which also writes the
/// `/chosen/module@...` node Xen's boot protocol expects.
#[derive(Clone, Debug)]
pub struct Module {
    pub addr: u64,
    pub file: PathBuf,
    pub kernel: bool,
    pub bootargs: Option<String>,
}

/// How the device tree reaches the hypervisor.
#[derive(Clone, Debug, Default)]
pub enum Tree {
    /// QEMU's generated tree.
    #[default]
    Generated,
    /// A tree of ours given with `-dtb`: QEMU still edits `/memory` and
    /// `/chosen` in place (leaving FDT_NOP tokens).
    Dtb(PathBuf),
    /// A tree of ours, untouched by QEMU, handed over by the boot shim.
    Raw(PathBuf),
}

/// Who loads the hypervisor and its modules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Boot {
    /// QEMU itself: `-kernel` (or `-device loader`), the guest-loader's
    /// modules, `-append`.
    #[default]
    Direct,
    /// Debian's U-Boot as firmware, from a virtio disk holding the
    /// hypervisor, the modules and a boot script made from this machine's
    /// modules and command lines (`crate::uboot`).
    UBoot,
}

#[derive(Clone, Debug)]
pub struct Machine {
    pub cpu: String,
    pub smp: u32,
    pub memory: String,
    pub gic_version: u32,
    pub virtualization: bool,
    /// The hypervisor's command line, through `-append` (`/chosen/bootargs`).
    pub append: Option<String>,
    pub modules: Vec<Module>,
    pub tree: Tree,
    /// Where the hypervisor's image is loaded (a 2 MiB boundary of RAM):
    /// `IMAGE_ADDR` by `-kernel`; anywhere else by `-device loader`, entered
    /// through a jump given as the `-kernel` (or the boot shim with
    /// `Tree::Raw`), as a boot loader would.
    pub image_addr: u64,
    pub boot: Boot,
    pub timeout: Duration,
    pub extra: Vec<String>,
    /// Console input: when a line containing the first string has been
    /// printed, the second is typed on the serial console, in order.
    pub typed: Vec<(String, String)>,
}

impl Default for Machine {
    fn default() -> Self {
        Self {
            cpu: "cortex-a57".into(),
            smp: 2,
            memory: "1G".into(),
            gic_version: 3,
            virtualization: true,
            append: None,
            modules: Vec::new(),
            tree: Tree::Generated,
            image_addr: IMAGE_ADDR,
            boot: Boot::Direct,
            timeout: Duration::from_secs(60),
            extra: Vec::new(),
            typed: Vec::new(),
        }
    }
}

/// What a boot produced.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status; `None` if it was killed at the time limit.
    pub status: Option<i32>,
    /// The serial console followed by semihosting output (QEMU's stderr).
    pub output: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// Panics with the whole output unless a line contains `needle`.
    pub fn expect_line(&self, needle: &str) -> &str {
        match self.output.lines().find(|l| l.contains(needle)) {
            Some(line) => line,
            None => panic!("no line contains {needle:?}; output:\n{}", self.output),
        }
    }

    /// Panics with the whole output unless a line containing `needle`
    /// follows one containing `earlier`; returns the first such line.
    pub fn expect_line_after(&self, earlier: &str, needle: &str) -> &str {
        let mut lines = self.output.lines();
        match lines.find(|l| l.contains(earlier)).and_then(|_| lines.find(|l| l.contains(needle))) {
            Some(line) => line,
            None => panic!("no line contains {needle:?} after one containing {earlier:?}; output:\n{}", self.output),
        }
    }

    /// The number just after `needle` in the first line containing it;
    /// panics with the whole output if there is none.
    pub fn number_after(&self, needle: &str) -> u64 {
        number_after(self.expect_line(needle), needle)
            .unwrap_or_else(|| panic!("no number after {needle:?}; output:\n{}", self.output))
    }

    pub fn expect_no_line(&self, needle: &str) {
        if let Some(line) = self.output.lines().find(|l| l.contains(needle)) {
            panic!("unexpected line {line:?}; output:\n{}", self.output);
        }
    }

    /// The `start->end` ranges ending the lines that start with `prefix`
    /// (the probe's and the hypervisor's range reports).
    pub fn ranges(&self, prefix: &str) -> Vec<(u64, u64)> {
        let parse = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok();
        self.output
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.split_once("->"))
            .filter_map(|(a, b)| Some((parse(a)?, parse(b)?)))
            .collect()
    }

    pub fn expect_exit(&self, code: i32) {
        assert_eq!(self.status, Some(code), "exit status; output:\n{}", self.output);
    }
}

/// The number just after `needle` in the first line holding it.
pub fn number_after(output: &str, needle: &str) -> Option<u64> {
    let line = output.lines().find(|l| l.contains(needle))?;
    let after = &line[line.find(needle)? + needle.len()..];
    let digits: String = after.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// At most as many QEMUs at once as there are cores, however many test
/// threads ask: time limits then measure the guest, not the contention.
struct QemuSlot;

static SLOTS: Mutex<usize> = Mutex::new(0);
static SLOT_FREED: Condvar = Condvar::new();

impl QemuSlot {
    fn take() -> Self {
        let limit = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut used = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        while *used >= limit {
            used = SLOT_FREED.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += 1;
        QemuSlot
    }
}

impl Drop for QemuSlot {
    fn drop(&mut self) {
        *SLOTS.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        SLOT_FREED.notify_one();
    }
}

/// QEMU's `-device` option syntax doubles commas inside values.
fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

fn unique_path(stem: &str, ext: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    run_dir().join(format!("{stem}-{n}.{ext}"))
}

impl Machine {
    /// A machine booting the test guest `dom0-probe` as Dom0 (loaded at
    /// 0x4200_0000 by QEMU's guest-loader, `console=hvc0` for Dom0).
    pub fn with_probe_dom0(cpu: &str, memory: &str, append: &str) -> Self {
        Machine {
            cpu: cpu.into(),
            memory: memory.into(),
            append: Some(append.into()),
            modules: vec![Module {
                addr: 0x4200_0000,
                file: image::dom0_probe().to_path_buf(),
                kernel: true,
                bootargs: Some("console=hvc0".into()),
            }],
            ..Machine::default()
        }
    }

    /// A machine booting a Linux kernel as Dom0 with `initrd` (2 GiB,
    /// `dom0_mem=512M`, two minutes), Dom0's command line `bootargs`.
    pub fn with_linux_dom0(kernel: &Path, initrd: &Path, bootargs: &str) -> Self {
        let size = std::fs::metadata(kernel).map_or(0, |m| m.len());
        assert!(LINUX_KERNEL_ADDR + size <= DTB_ADDR, "{} does not fit below QEMU's tree", kernel.display());
        Machine {
            memory: "2G".into(),
            append: Some("dom0_mem=512M".into()),
            modules: vec![
                Module { addr: LINUX_KERNEL_ADDR, file: kernel.into(), kernel: true, bootargs: Some(bootargs.into()) },
                Module { addr: LINUX_INITRD_ADDR, file: initrd.into(), kernel: false, bootargs: None },
            ],
            timeout: Duration::from_secs(120),
            ..Machine::default()
        }
    }

    /// The same machine with Dom0's RAM in 4 KiB stage-2 pages
    /// (`stage2-blocks=no`), the fastest correct way to run our hypervisor
    /// on QEMU: TCG flushes its whole TLB for a page flush inside a stage-2
    /// block (the README's Benchmarks say why). Put first, so that options
    /// already on the command line win; not for Xen, which does not know it.
    pub fn tuned_for_qemu(self) -> Self {
        let append = match self.append {
            Some(ref options) if !options.is_empty() => format!("{QEMU_TUNING} {options}"),
            _ => QEMU_TUNING.into(),
        };
        Machine { append: Some(append), ..self }
    }

    fn machine_option(&self) -> String {
        format!(
            "virt,virtualization={},gic-version={}",
            if self.virtualization { "on" } else { "off" },
            self.gic_version
        )
    }

    /// QEMU's arguments for booting `image`. `-nodefaults`: only the
    /// devices the board itself has and those asked for here, so no default
    /// NIC, whose option ROM (`efi-virtio.rom`) a fresh machine lacks.
    pub fn args(&self, image: &Path) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-nodefaults".into(),
            "-machine".into(),
            self.machine_option(),
            "-cpu".into(),
            self.cpu.clone(),
            "-smp".into(),
            self.smp.to_string(),
            "-m".into(),
            self.memory.clone(),
            "-display".into(),
            "none".into(),
            "-monitor".into(),
            "none".into(),
            "-serial".into(),
            "stdio".into(),
            "-semihosting-config".into(),
            "enable=on,target=native".into(),
            "-no-reboot".into(),
        ];
        match &self.tree {
            _ if self.boot == Boot::UBoot => {
                let modules: Vec<_> = (self.modules.iter())
                    .map(|m| uboot::BootModule {
                        file: &m.file,
                        addr: m.addr,
                        kernel: m.kernel,
                        bootargs: m.bootargs.as_deref(),
                    })
                    .collect();
                let xen_bootargs = self.append.as_deref().unwrap_or("");
                let disk = uboot::disk_for(image, &modules, xen_bootargs, &unique_path("disk", "img"));
                let drive = format!("if=none,file={},format=raw,id=disk", escape(&disk.display().to_string()));
                let bios = uboot::U_BOOT.to_string();
                let device = "virtio-blk-device,drive=disk".to_string();
                args.extend(["-bios".into(), bios, "-drive".into(), drive, "-device".into(), device]);
            }
            Tree::Raw(dtb) => {
                let shim = unique_path("shim", "bin");
                std::fs::write(&shim, shim::code(self.image_addr, DTB_ADDR)).expect("write shim");
                let image = image.to_path_buf();
                for (file, addr, cpu) in
                    [(&shim, SHIM_ADDR, true), (&image, self.image_addr, false), (dtb, DTB_ADDR, false)]
                {
                    let mut device =
                        format!("loader,file={},addr={addr:#x},force-raw=on", escape(&file.display().to_string()));
                    if cpu {
                        device.push_str(",cpu-num=0");
                    }
                    args.extend(["-device".into(), device]);
                }
            }
            tree => {
                if self.image_addr == IMAGE_ADDR {
                    args.extend(["-kernel".into(), image.display().to_string()]);
                } else {
                    let jump = unique_path("jump", "bin");
                    std::fs::write(&jump, shim::jump_to(self.image_addr)).expect("write the jump");
                    let file = escape(&image.display().to_string());
                    let device = format!("loader,file={file},addr={:#x},force-raw=on", self.image_addr);
                    args.extend(["-kernel".into(), jump.display().to_string(), "-device".into(), device]);
                }
                if let Tree::Dtb(dtb) = tree {
                    args.extend(["-dtb".into(), dtb.display().to_string()]);
                }
                if let Some(append) = &self.append {
                    args.extend(["-append".into(), append.clone()]);
                }
                for m in &self.modules {
                    let mut device = format!("guest-loader,addr={:#x}", m.addr);
                    let what = if m.kernel { "kernel" } else { "initrd" };
                    let _ = write!(device, ",{what}={}", escape(&m.file.display().to_string()));
                    if let Some(bootargs) = &m.bootargs {
                        let _ = write!(device, ",bootargs={}", escape(bootargs));
                    }
                    args.extend(["-device".into(), device]);
                }
            }
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Boots the hypervisor and waits for QEMU to exit, or kills it at the
    /// time limit.
    pub fn run(&self) -> Outcome {
        self.run_image(image::hypervisor(), None)
    }

    /// Boots the hypervisor and stops QEMU as soon as a line containing
    /// `needle` has been printed (or at the time limit): for machines that
    /// never exit by themselves.
    pub fn run_until(&self, needle: &str) -> Outcome {
        self.run_image(image::hypervisor(), Some(needle))
    }

    pub fn run_image(&self, image: &Path, until: Option<&str>) -> Outcome {
        let _slot = QemuSlot::take();
        let stdout_path = unique_path("console", "log");
        let stderr_path = unique_path("stderr", "log");
        let start = Instant::now();
        let mut child = Command::new("qemu-system-aarch64")
            .args(self.args(image))
            .stdin(if self.typed.is_empty() { Stdio::null() } else { Stdio::piped() })
            .stdout(std::fs::File::create(&stdout_path).expect("console log"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr log"))
            .spawn()
            .expect("start qemu-system-aarch64 (run qemu/setup first)");
        let mut typing = self.typed.iter();
        let mut next_input = typing.next();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for qemu") {
                break status.code();
            }
            let console =
                std::fs::read(&stdout_path).map(|out| String::from_utf8_lossy(&out).into_owned()).unwrap_or_default();
            if let Some((after, text)) = next_input.filter(|(after, _)| console.contains(after.as_str())) {
                use std::io::Write as _;
                let stdin = child.stdin.as_mut().expect("stdin is piped when input is typed");
                stdin
                    .write_all(text.as_bytes())
                    .and_then(|()| stdin.flush())
                    .unwrap_or_else(|e| panic!("typing after {after:?}: {e}"));
                next_input = typing.next();
            }
            let seen = until.is_some_and(|needle| console.contains(needle));
            if seen || start.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = start.elapsed();
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).replace('\r', "");
        let output = read(&stdout_path) + &read(&stderr_path);
        let _ = std::fs::remove_file(stdout_path);
        let _ = std::fs::remove_file(stderr_path);
        Outcome { status, output, elapsed }
    }

    /// The device tree QEMU would generate for this machine.
    pub fn generated_dtb(&self) -> Vec<u8> {
        let path = unique_path("dump", "dtb");
        let mut args = self.args(image::hypervisor());
        let at = args.iter().position(|a| a == "-machine").expect("machine option") + 1;
        args[at] = format!("{},dumpdtb={}", args[at], path.display());
        let out = Command::new("qemu-system-aarch64").args(&args).output().expect("run qemu for dumpdtb");
        assert!(path.exists(), "dumpdtb failed: {}", String::from_utf8_lossy(&out.stderr));
        let blob = std::fs::read(&path).expect("read dumped tree");
        let _ = std::fs::remove_file(path);
        blob
    }

    /// Starts this machine stopped before its first instruction (`-S`),
    /// with QEMU's monitor on stdin and stdout in place of the console,
    /// runs the monitor `commands` and returns what the monitor printed.
    pub fn monitor_answers(&self, image: &Path, commands: &[&str]) -> String {
        let mut args = self.args(image);
        for (option, value) in [("-serial", "null"), ("-monitor", "stdio")] {
            let at = args.iter().position(|a| a == option).expect("option present") + 1;
            args[at] = value.into();
        }
        args.push("-S".into());
        let mut child = Command::new("qemu-system-aarch64")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qemu-system-aarch64 (run qemu/setup first)");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            for command in commands.iter().chain(&["quit"]) {
                writeln!(stdin, "{command}").expect("write to QEMU's monitor");
            }
        }
        let out = child.wait_with_output().expect("wait for qemu");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_found_only_after_the_earlier_one() {
        let out = Outcome { status: Some(0), output: "b 1\na\nb 2\nb 3\n".into(), elapsed: Duration::ZERO };
        assert_eq!(out.expect_line_after("a", "b"), "b 2");
        assert!(std::panic::catch_unwind(|| out.expect_line_after("b 3", "b")).is_err(), "nothing after the last");
        assert!(std::panic::catch_unwind(|| out.expect_line_after("c", "b")).is_err(), "no earlier line");
    }

    /// QEMU fails to start when a device's option ROM is missing (a default
    /// NIC wants `efi-virtio.rom`, which a fresh Debian does not have), so
    /// no device of the harness's machines may name one, whether or not
    /// this machine happens to have the file; and nothing but the image,
    /// the tree and the modules may be loaded.
    #[test]
    fn machines_start_with_no_option_rom() {
        let linux = Machine::with_linux_dom0(Path::new("/dev/null"), Path::new("/dev/null"), "");
        let work = crate::work_dir().display().to_string();
        let gic_v2 = Machine { gic_version: 2, ..Machine::with_probe_dom0("max", "2G", "") };
        let uboot = Machine { boot: Boot::UBoot, ..Machine::with_probe_dom0("cortex-a57", "2G", "") };
        for machine in [Machine::default(), gic_v2, linux, uboot] {
            let answers = machine.monitor_answers(crate::image::hypervisor(), &["info qtree", "info roms"]);
            assert!(answers.contains("dev: pl011"), "the monitor answered; output:\n{answers}");
            assert!(!answers.contains("failed to find romfile"), "{answers}");
            for line in answers.lines().filter(|l| l.trim_start().starts_with("romfile = ")) {
                assert_eq!(line.trim(), "romfile = \"\"", "a device with an option ROM; output:\n{answers}");
            }
            for line in answers.lines().filter(|l| l.contains(" name=\"") && l.contains("mem=")) {
                let name = line.rsplit("name=\"").next().unwrap_or_default().trim_end_matches('"');
                // QEMU's own blobs (its boot stub and tree), or files we gave
                // (U-Boot as firmware among them).
                let ours = ["bootloader", "dtb", "/dev/null", crate::uboot::U_BOOT];
                let expected = ours.contains(&name) || name.starts_with(&work);
                assert!(expected, "QEMU loaded {name:?}, not a file of ours; output:\n{answers}");
            }
        }
    }
}
