//! Dom0's Linux and a DomU, between domains, end to end: Debian's Linux as
//! Dom0 on CPU 0 and a dom0less DomU (`tests/guests/domu-probe` in serve
//! mode, 64 MiB, 1 vCPU, `xen,enhanced`) on CPU 1. Dom0's `/init` runs
//! `gnttest --domu 1 --mailbox 0x41000000`, which maps the DomU's mailbox
//! and pattern pages with privcmd (foreign maps), its four grants with
//! gntdev, binds its unbound port and makes round trips of requests and
//! replies with events both ways, checks where Linux put the mappings,
//! unmaps everything and asks the DomU to shut down (`gnttest: domu: ...`
//! lines, one per fact). Under our hypervisor and under Xen 4.17, from the
//! same tree and modules.

use qemu_harness::dtb::Dts;
use qemu_harness::initramfs::{dom0_initramfs, init_script};
use qemu_harness::linux::{DebianKernel, debian_kernel};
use qemu_harness::machine::{LINUX_INITRD_ADDR, LINUX_KERNEL_ADDR, Tree};
use qemu_harness::{Machine, Outcome, image};
use std::path::Path;

const DOM0_BOOTARGS: &str = "console=hvc0 earlycon=xenboot";
const KERNEL_PANIC: &str = "Kernel panic - not syncing";
/// Where QEMU's loader puts the DomU's kernel: past Dom0's initramfs.
const DOMU_KERNEL: u64 = 0x4c00_0000;
/// The DomU's mailbox page (`serve.rs`'s `MAILBOX`), inside its 64 MiB.
const MAILBOX: u64 = 0x4100_0000;
/// Dom0's report: the gnttest run, then a moment for the DomU to finish
/// its shutdown, then power off.
fn init_body(gnttest_args: &str) -> String {
    format!(
        "echo \"init: hypervisor type $(cat /sys/hypervisor/type)\"\n\
         /bin/gnttest --domu 1 --mailbox {MAILBOX:#x} {gnttest_args}\n\
         echo \"init: gnttest exited $?\"\n\
         usleep 300000\n\
         poweroff -f\n"
    )
}

fn size(file: &Path) -> u64 {
    std::fs::metadata(file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).len()
}

/// QEMU's tree for 2 CPUs and 2 GiB with Dom0's kernel and initramfs and
/// the DomU as `/chosen` modules (placed by QEMU's loader), Dom0's command
/// line in `xen,dom0-bootargs`; `append` is the hypervisor's.
fn machine(kernel: DebianKernel, gnttest_args: &str, append: &str, name: &str) -> Machine {
    let kernel = debian_kernel(kernel);
    let initrd = dom0_initramfs(kernel, &init_script(kernel, &init_body(gnttest_args)));
    let base = Machine {
        modules: vec![],
        append: Some(append.into()),
        ..Machine::with_linux_dom0(&kernel.image, &initrd, DOM0_BOOTARGS)
    };
    assert!(LINUX_INITRD_ADDR + size(&initrd) <= DOMU_KERNEL, "the initramfs runs into the DomU's kernel");
    let domu = format!(
        "domU1 {{ compatible = \"xen,domain\"; #address-cells = <1>; #size-cells = <1>; \
         memory = <0x0 0x10000>; cpus = <1>; xen,enhanced = \"enabled\";\n\
         module@{DOMU_KERNEL:x} {{ compatible = \"multiboot,kernel\", \"multiboot,module\"; reg = <{DOMU_KERNEL:#x} {:#x}>; \
         bootargs = \"mode=serve expect-mem=0x4000000 expect-enhanced=1\"; }};\n}};",
        size(image::domu_probe())
    );
    let ramdisk = format!(
        "module@{LINUX_INITRD_ADDR:x} {{ compatible = \"multiboot,ramdisk\", \"multiboot,module\"; reg = <0x0 {LINUX_INITRD_ADDR:#x} 0x0 {:#x}>; }};",
        size(&initrd)
    );
    let dtb = Dts::from_blob(&base.generated_dtb())
        .add_to_node("chosen", &format!("xen,dom0-bootargs = \"{DOM0_BOOTARGS}\";"))
        .with_kernel_module(LINUX_KERNEL_ADDR, size(&kernel.image))
        .add_subnode("chosen", &ramdisk)
        .add_subnode("chosen", &domu)
        .write(name);
    let mut extra = Vec::new();
    for (file, addr) in [
        (kernel.image.as_path(), LINUX_KERNEL_ADDR),
        (initrd.as_path(), LINUX_INITRD_ADDR),
        (image::domu_probe(), DOMU_KERNEL),
    ] {
        extra.extend(["-device".into(), format!("loader,file={},addr={addr:#x},force-raw=on", file.display())]);
    }
    Machine { tree: Tree::Dtb(dtb), extra, ..base }
}

/// The output with Dom0's console lines as Dom0 wrote them: our hypervisor
/// prefixes each with `(d0) `.
fn without_dom0_prefix(out: Outcome) -> Outcome {
    let lines: Vec<&str> = out.output.lines().map(|l| l.strip_prefix("(d0) ").unwrap_or(l)).collect();
    Outcome { output: lines.join("\n"), ..out }
}

/// Every fact gnttest checked held, the DomU's own checks among them.
fn dom0_passed(out: &Outcome) {
    out.expect_line("init: hypervisor type xen");
    out.expect_no_line("gnttest: domu: FAIL");
    out.expect_no_line(": FAIL");
    for fact in [
        "privcmd maps the DomU's mailbox page: ok",
        "the mailbox holds the DomU's magic: ok",
        "the DomU's counter moves between two reads: ok",
        "the pattern pages read as the DomU wrote them: ok",
        "gntdev maps the DomU's four grants: ok",
        "the granted pages read as the DomU wrote them: ok",
        "the DomU's port binds interdomain: ok",
        "the freshly bound port is raised once, as Xen does: ok",
        "round trips: a request in a granted page, an event, the reply and an event back: ok",
        "the DomU counted every request: ok",
        "the DomU's own checks passed: ok",
        "the grants unmap: ok",
        "the pattern pages unmap: ok",
        "the mailbox unmaps: ok",
        "the DomU is asked to shut down: ok",
    ] {
        out.expect_line(&format!("gnttest: domu: {fact}"));
    }
    out.expect_line("gnttest: domu: 16 round trips");
    out.expect_line("gnttest: domu: d1 says: domu-serve: ok: grant-table frame 0 mapped at 0x38000000 (0)");
    out.expect_line("gnttest: ok");
    out.expect_line("init: gnttest exited 0");
}

/// `d0: foreign map of d1 gfn G at IPA I` lines (ours): (gfn, IPA).
fn foreign_maps(out: &Outcome, what: &str) -> Vec<(u64, u64)> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hexadecimal");
    out.output
        .lines()
        .filter_map(|l| l.split(&format!("d0: {what} of d1 gfn ")).nth(1))
        .map(|rest| {
            let (gfn, ipa) = rest.split_once(" at IPA ").expect("gfn G at IPA I");
            (hex(gfn), hex(ipa.trim()))
        })
        .collect()
}

const SHUTDOWN_AUDIT: &str = "(HV) d0: stage 2 audited at shutdown: ";

/// Boots `machine` on our hypervisor (tuned for QEMU) until it ends, with
/// `loglvl=debug`, at which the hypervisor logs each foreign map and unmap.
fn run_ours(machine: Machine) -> Outcome {
    let append = format!("{} loglvl=debug", machine.append.as_deref().unwrap_or(""));
    let machine = Machine { append: Some(append), ..machine };
    without_dom0_prefix(machine.tuned_for_qemu().run_until(KERNEL_PANIC))
}

/// Our hypervisor: gnttest's facts, the DomU's `(d1)` lines and its
/// shutdown, each foreign map's IPA in `within` and unmapped by the end,
/// Dom0's stage 2 audited at shutdown with nothing granted left, no frame lost.
fn check_ours(out: &Outcome, within: &[(u64, u64)]) {
    out.expect_line("(HV) d1: DomU from /chosen/domU1: 64 MiB, 1 vCPU(s) on CPU 1 (0x1), xen,enhanced Enabled");
    out.expect_line("(HV) d0: CPUs [0] (of 2); idle: []");
    dom0_passed(out);
    out.expect_line("(d1) domu-probe: ok: serve: EVTCHNOP_alloc_unbound for d0: port ");
    out.expect_line("(d1) domu-probe: serve: d0 asked to shut down after 16 requests");
    out.expect_no_line("domu-probe: FAIL");
    // It ends because Dom0 asked (its own line, then its shutdown: one CPU,
    // in order; Dom0's console lines may come before or after them).
    out.expect_line_after("(d1) domu-probe: serve: d0 asked to shut down after", "(HV) d1: shutdown: power off");
    let maps = foreign_maps(out, "foreign map");
    let mut gfns: Vec<u64> = maps.iter().map(|m| m.0).collect();
    gfns.sort_unstable();
    assert_eq!(gfns, (0..5).map(|i| (MAILBOX >> 12) + i).collect::<Vec<_>>(), "the mailbox and four pattern pages");
    let (mut mapped, mut unmapped) = (maps.clone(), foreign_maps(out, "foreign unmap"));
    mapped.sort_unstable();
    unmapped.sort_unstable();
    assert_eq!(mapped, unmapped, "every foreign map unmapped");
    for (gfn, ipa) in &maps {
        assert!(
            within.iter().any(|r| r.0 <= *ipa && *ipa < r.1),
            "d1 gfn {gfn:#x} foreign-mapped at IPA {ipa:#x}, outside {within:x?}"
        );
    }
    println!("foreign maps (d1 gfn, Dom0 IPA): {maps:x?}");
    let audit = out.expect_line_after("init: gnttest exited 0", SHUTDOWN_AUDIT);
    assert!(audit.contains("granted 0 KiB"), "no grant or foreign mapping left: {audit}");
    // The DomU, once Dom0 let go of it, gave back everything it took
    // before Dom0's entry: its RAM and grant-table frames.
    let released = out.expect_line_after("(HV) d1: shutdown: power off", "(HV) d1: released: ");
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

/// The lines of the log naming the regions and the DomU, for the record.
fn print_layout(who: &str, out: &Outcome, needles: &[&str]) {
    println!("{who} ({:.1} s):", out.elapsed.as_secs_f64());
    for line in out.output.lines().filter(|l| needles.iter().any(|p| l.contains(p))) {
        println!("    {line}");
    }
}

/// The same machine, tree, modules and Dom0 program under Debian's Xen
/// 4.17 and under ours, in one test: every fact of gnttest's holds under
/// both (the DomU's own checks read from its mailbox, as Xen's release
/// build refuses a DomU's console), with privcmd's and gntdev's pages in
/// the extended regions (gntdev's by pagemap; privcmd's, under ours, by
/// the IPAs the hypervisor logs). Both hypervisors' regions and the
/// DomU's layout are printed side by side.
#[test]
fn xen_4_17_and_ours_run_the_same_dom0_and_domu() {
    // One vCPU for Xen's Dom0, as ours partitions the CPUs: the DomU,
    // which spins, keeps the other.
    let xen = machine(DebianKernel::Trixie6_12, "", "dom0_mem=512M dom0_max_vcpus=1", "linux-domu-xen")
        .run_image(&image::xen_4_17(), Some(KERNEL_PANIC));
    xen.expect_line("(XEN) *** LOADING DOMU cpus=1 memory=10000KB ***");
    dom0_passed(&xen);
    xen.expect_line("gnttest: domu: Linux's Xen scratch ranges lie in extended regions: ok");
    xen.expect_line("gnttest: domu: the granted pages lie in extended regions: ok");
    let extended = xen.ranges("(XEN) d0: extended region ");
    assert_eq!(xen.ranges("gnttest: extended region "), extended, "Dom0's extended regions as gnttest read them");

    let ours = run_ours(machine(DebianKernel::Trixie6_12, "", "dom0_mem=512M", "linux-domu"));
    let regions = ours.ranges("(HV) d0: extended region ");
    assert!(!regions.is_empty(), "extended regions advertised; output:\n{}", ours.output);
    check_ours(&ours, &regions);
    ours.expect_line("gnttest: domu: Linux's Xen scratch ranges lie in extended regions: ok");
    ours.expect_line("gnttest: domu: the granted pages lie in extended regions: ok");

    print_layout("Xen 4.17", &xen, &["extended region", "d1", "DOMU", "BANK", "Grant table range", "granted page"]);
    print_layout("ours", &ours, &["d0: extended region", "d0: grant table region", "(HV) d1: ", "foreign map"]);
}

/// Dom0's RAM banks as our hypervisor logs them (`d0: BANK[i] A->B (N MiB)`).
fn dom0_banks(out: &Outcome) -> Vec<(u64, u64)> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hexadecimal");
    let banks: Vec<(u64, u64)> = out
        .output
        .lines()
        .filter_map(|l| l.strip_prefix("(HV) d0: BANK["))
        .filter_map(|rest| rest.split(' ').nth(1)?.split_once("->"))
        .map(|(a, b)| (hex(a), hex(b)))
        .collect();
    assert!(!banks.is_empty(), "Dom0's banks logged; output:\n{}", out.output);
    banks
}

/// A Dom0 that maps over ballooned pages of its own RAM: privcmd's and
/// gntdev's pages are in Dom0's RAM banks (gntdev's by pagemap, in System
/// RAM; privcmd's by the IPAs the hypervisor logs), and nothing is lost.
fn ballooned(kernel: DebianKernel, append: &str, name: &str) -> Outcome {
    let out = run_ours(machine(kernel, "--ballooned", append, name));
    check_ours(&out, &dom0_banks(&out));
    out.expect_line("gnttest: domu: no Xen scratch range: Linux maps over ballooned RAM: ok");
    out.expect_line("gnttest: domu: the granted pages lie in Dom0's System RAM (ballooned pages): ok");
    out
}

#[test]
fn without_extended_regions_debian_6_12_maps_a_domu_over_ballooned_ram() {
    let out = ballooned(DebianKernel::Trixie6_12, "dom0_mem=512M ext-regions=no", "linux-domu-noext");
    out.expect_line("No extended regions are found");
}

#[test]
fn debian_6_1_maps_a_domu_over_ballooned_ram() {
    let out = ballooned(DebianKernel::Bookworm6_1, "dom0_mem=512M", "linux-domu-6.1");
    print_layout("ours, 6.1", &out, &["d0: BANK", "foreign map", "granted page"]);
}
