//! A second domain: a dom0less DomU from the host tree (`/chosen/domU1`,
//! Xen's binding) beside Dom0. The DomU is the bare-metal
//! `tests/guests/domu-probe`, which checks its tree and RAM, makes
//! hypercalls, reports through console_io (`(d1) ` lines) and shuts itself
//! down; Dom0 is `dom0-probe` on the CPU left, which carries on to its own end.

use qemu_harness::dtb::Dts;
use qemu_harness::machine::Tree;
use qemu_harness::{Machine, Outcome, image};
use std::path::Path;

const DOM0_KERNEL: u64 = 0x4200_0000;
const DOMU_KERNEL: u64 = 0x4a00_0000;

fn size(file: &Path) -> u64 {
    std::fs::metadata(file).unwrap().len()
}

/// A `/chosen` DomU node in ImageBuilder's shape (one-cell addresses and
/// sizes) with the probe as its kernel; `props` are its other properties.
fn domu_node(name: &str, props: &str, bootargs: &str) -> String {
    format!(
        "{name} {{ compatible = \"xen,domain\"; #address-cells = <1>; #size-cells = <1>; {props}\n\
         module@{DOMU_KERNEL:x} {{ compatible = \"multiboot,kernel\", \"multiboot,module\"; reg = <{DOMU_KERNEL:#x} {:#x}>; bootargs = \"{bootargs}\"; }};\n}};",
        size(image::domu_probe())
    )
}

/// QEMU's tree for 2 CPUs and 2 GiB with Dom0's probe and `nodes` added to
/// `/chosen`, the modules placed with QEMU's loader; `append` is the
/// hypervisor's command line.
fn machine(nodes: &[String], append: &str, name: &str) -> Machine {
    machine_on_gic(3, nodes, append, "console=hvc0", name)
}

/// As [`machine`], on QEMU's GICv3 or GICv2 (`gic_version`), with
/// `dom0_args` as Dom0's command line.
fn machine_on_gic(gic_version: u32, nodes: &[String], append: &str, dom0_args: &str, name: &str) -> Machine {
    machine_of("2G", 2, gic_version, nodes, append, dom0_args, name)
}

/// As [`machine_on_gic`], with `memory` of RAM and `smp` CPUs.
fn machine_of(
    memory: &str,
    smp: u32,
    gic_version: u32,
    nodes: &[String],
    append: &str,
    dom0_args: &str,
    name: &str,
) -> Machine {
    let base = Machine { modules: vec![], gic_version, smp, ..Machine::with_probe_dom0("cortex-a57", memory, append) };
    let mut dts = Dts::from_blob(&base.generated_dtb())
        .add_to_node("chosen", &format!("xen,dom0-bootargs = \"{dom0_args}\";"))
        .with_kernel_module(DOM0_KERNEL, size(image::dom0_probe()));
    for node in nodes {
        dts = dts.add_subnode("chosen", node);
    }
    let dtb = dts.write(name);
    let mut extra = Vec::new();
    for (file, addr) in [(image::dom0_probe(), DOM0_KERNEL), (image::domu_probe(), DOMU_KERNEL)] {
        extra.extend(["-device".into(), format!("loader,file={},addr={addr:#x},force-raw=on", file.display())]);
    }
    Machine { tree: Tree::Dtb(dtb), extra, ..base }
}

fn one_domu(props: &str, bootargs: &str, name: &str) -> Machine {
    machine(&[domu_node("domU1", props, bootargs)], "dom0_mem=512M", name)
}

/// Dom0's probe passed and powered the machine off.
fn dom0_passed(out: &Outcome) {
    out.expect_line("probe: 0 failures");
    out.expect_no_line("probe: FAIL");
    out.expect_line("(HV) d0: shutdown: power off");
    out.expect_exit(0);
}

/// The extended regions Xen 4.17 gives a 64 MiB DomU (measured), as the
/// probe's `expect-ext=` and as Xen logs them.
const EXT_64M: &str = "expect-ext=0x44000000-0x100000000,0x200000000-0x10000000000";
const EXT_64M_LINES: [&str; 2] =
    ["d1: extended region 0: 0x44000000->0x100000000", "d1: extended region 1: 0x200000000->0x10000000000"];

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[test]
fn a_domu_boots_beside_dom0_and_shuts_down_alone() {
    let out = one_domu(
        "memory = <0x0 0x10000>; cpus = <1>; xen,enhanced = \"enabled\"; vpl011;",
        &format!("expect-mem=0x4000000 expect-enhanced=1 check-interrupts=1 {EXT_64M}"),
        "domu",
    )
    .run();
    for line in EXT_64M_LINES {
        out.expect_line(&format!("(HV) {line}"));
    }
    // Its layout, and Dom0 on the CPU left.
    out.expect_line("(HV) d1: DomU from /chosen/domU1: 64 MiB, 1 vCPU(s) on CPU 1 (0x1), xen,enhanced Enabled");
    out.expect_line("(HV) d1: BANK[0] IPA 0x40000000->0x44000000 (64 MiB)");
    out.expect_line("(HV) d1: kernel IPA 0x40000000->");
    out.expect_line("(HV) d1: VMID 2, stage 2 ");
    out.expect_line("(HV) d1: vPL011 (SBSA UART) at IPA 0x22000000->0x22001000, SPI 32");
    out.expect_line("(HV) d0: CPUs [0] (of 2); idle: []");
    out.expect_line("(HV) d1: emulated GICv3: GICD 0x3001000, GICR 0x3020000 (1 vCPU(s)), 32 SPIs");
    // What the DomU saw and did.
    for line in [
        "(d1) domu-probe: ok: entered at GUEST_RAM0_BASE",
        "(d1) domu-probe: ok: memory 0x40000000+0x4000000: one bank at GUEST_RAM0_BASE",
        "(d1) domu-probe: ok: 1 CPU, cpu@0 with reg 0",
        "(d1) domu-probe: ok: PSCI through Some(\"hvc\")",
        "(d1) domu-probe: ok: no host device in the tree",
        "(d1) domu-probe: ok: /hypervisor: grant table",
        "(d1) domu-probe: ok: /hypervisor extended region 0: Some((44000000, 100000000))",
        "(d1) domu-probe: ok: /hypervisor extended region 1: Some((200000000, 10000000000))",
        "(d1) domu-probe: ok: /hypervisor reg: the grant table and 2 extended region(s), no more",
        "(d1) domu-probe: ok: wrote and read back ",
        "(d1) domu-probe: ok: a read of the host's UART at 0x9000000 aborts",
        "(d1) domu-probe: ok: a read of just past its RAM at 0x44000000 aborts",
        "(d1) domu-probe: ok: xen_version(XENVER_version) = 0x40011 (4.17)",
        "(d1) domu-probe: ok: XENVER_get_features: auto_translated, not dom0, not direct_mapped",
        "(d1) domu-probe: ok: CONSOLEIO_read is Dom0's: -EPERM (-1)",
        "(d1) domu-probe: ok: GICv3 distributor: PIDR2 0x3b",
        "(d1) domu-probe: ok: GICR_TYPER 0x10: affinity 0 (vCPU 0), Last",
        "(d1) domu-probe: ok: GICR_WAKER 0x0: awake",
        "(d1) domu-probe: ok: the virtual timer's PPI 27 is not delivered while disabled",
        "(d1) domu-probe: ok: the virtual timer's PPI 27 arrives once enabled",
        "(d1) domu-probe: ok: SGI 3 to itself arrives",
        "(d1) domu-probe: ok: shared_info mapped (0), loopback ports ",
        "(d1) domu-probe: ok: an event sent on port ",
        "(d1) domu-probe: 27 checks, 0 failures",
        "(HV) WARNING: d1: read at IPA 0x44000000 (VA 0x44000000, PC ",
    ] {
        out.expect_line(line);
    }
    out.expect_no_line("domu-probe: FAIL");
    // It ends alone; Dom0 goes on to its own end.
    let ended = out.expect_line("(HV) d1: shutdown: power off; the domain's vCPUs stop, the machine carries on");
    out.expect_line_after(ended, "(HV) d1: vCPU 0 stopped; CPU 0x1 parked");
    out.expect_line_after(ended, "(HV) d0: shutdown: power off");
    dom0_passed(&out);
    // Dom0 maps nothing of it: its end gives everything back at once.
    let number = |line: &str, after: &str| {
        qemu_harness::machine::number_after(line, after)
            .unwrap_or_else(|| panic!("no number after {after:?} in {line:?}"))
    };
    let built = out.expect_line("(HV) d1: 16384 frames taken; free frames ");
    let before = number(built, "free frames ");
    let released = out.expect_line_after(ended, "(HV) d1: released: ");
    println!("{built}\n{released}");
    let (back, ram, grant) = (number(released, "released: "), number(released, "back ("), number(released, "RAM, "));
    assert_eq!(ram, 16384, "all of its RAM: {released}");
    assert_eq!(back, ram + grant, "{released}");
    assert!(released.contains(", VMID 2;"), "{released}");
    assert_eq!(number(released, "before d1 was built: "), before);
    let (at_entry, at_shutdown) =
        (out.number_after("Free frames at Dom0 entry: "), out.number_after("Free frames at shutdown: "));
    println!(
        "free frames: before d1 was built {before}, at Dom0 entry {at_entry}, after its release {}, at shutdown {at_shutdown}",
        number(released, "; free frames ")
    );
    // Its RAM and grant-table frames were taken before Dom0's entry: all came back.
    assert_eq!(grant, 64, "its grant table reserved whole at build, as Dom0's: {released}");
    assert_eq!(at_shutdown, at_entry + ram + grant, "every frame the DomU took came back");
    // Between its build and Dom0's entry only its boot modules' frames
    // were freed (copied into it): the count after its release is the
    // count before it was built and those.
    let modules = at_entry + ram + grant - before;
    assert!(modules < 64, "{modules} frames freed between d1's build and Dom0's entry");
    assert_eq!(number(released, "; free frames "), before + modules, "{released}");
    // Dom0's tree named only its own CPU; the probe's lines are Dom0's.
    out.expect_no_line("(d0) domu-probe");

    // Dom0's extended regions miss every frame of the DomU's.
    let domu_frames = out.ranges("(HV) d1: RAM IPA ");
    let regions = out.ranges("(HV) d0: extended region ");
    println!("DomU frames {domu_frames:x?}; Dom0's extended regions {regions:x?}");
    assert!(!domu_frames.is_empty() && !regions.is_empty(), "{}", out.output);
    for frames in &domu_frames {
        for region in &regions {
            assert!(!overlaps(*frames, *region), "DomU frames {frames:x?} in extended region {region:x?}");
        }
    }
}

/// On a GICv2 host the DomU sees Xen's GICv2 layout: an emulated 4 KiB
/// distributor at 0x0300_1000 and the host's virtual CPU interface mapped
/// as its GICC at 0x0300_2000; its timer, SGI and event checks pass there too.
#[test]
fn a_domu_on_a_gicv2_host_gets_interrupts() {
    let node = domu_node(
        "domU1",
        "memory = <0x0 0x10000>; cpus = <1>; xen,enhanced = \"enabled\";",
        "expect-mem=0x4000000 expect-enhanced=1 check-interrupts=1",
    );
    let out = machine_on_gic(2, &[node], "dom0_mem=512M", "console=hvc0", "domu-gicv2").run();
    out.expect_line(
        "(HV) d1: emulated GICv2: GICD 0x3001000 (1 vCPU(s)), 32 SPIs; GICC 0x3002000 is the host's virtual CPU interface",
    );
    out.expect_line("table pages: its RAM and the host's GICv2 virtual CPU interface, no host devices");
    for line in [
        "(d1) domu-probe: ok: GICv2 distributor: PIDR2.ArchRev 2",
        "(d1) domu-probe: ok: the virtual timer's PPI 27 is not delivered while disabled",
        "(d1) domu-probe: ok: the virtual timer's PPI 27 arrives once enabled",
        "(d1) domu-probe: ok: SGI 3 to itself arrives",
        "(d1) domu-probe: ok: an event sent on port ",
        "(d1) domu-probe: 22 checks, 0 failures",
    ] {
        out.expect_line(line);
    }
    out.expect_no_line("domu-probe: FAIL");
    out.expect_line("(HV) d1: shutdown: power off");
    dom0_passed(&out);
}

/// A DomU with `vpl011` (`check-vpl011=1`): its tree has Xen's
/// `sbsa-uart` node and `/chosen/stdout-path`; a line it writes through
/// the UART is a `(d1) ` line on the console; its TX interrupt comes once;
/// Ctrl-A typed three times gives it the console input (Xen's switch,
/// from Dom0), and a typed line reaches it through its receive interrupt,
/// one byte per interrupt, which only a level-triggered delivery (the
/// line still high after each EOI) brings back each time.
fn vpl011_takes_typed_input(gic_version: u32, name: &str) {
    let node = domu_node(
        "domU1",
        "memory = <0x0 0x10000>; cpus = <1>; vpl011;",
        "expect-mem=0x4000000 expect-enhanced=0 check-vpl011=1",
    );
    let mut machine = machine_on_gic(gic_version, &[node], "dom0_mem=512M", "console=hvc0 probe=wait-domain-end", name);
    machine.typed =
        vec![("domu-probe: vpl011: waiting for a typed line".into(), "\u{1}\u{1}\u{1}hello vpl011\r".into())];
    let out = machine.run();
    out.expect_line("(HV) d1: vPL011 (SBSA UART) at IPA 0x22000000->0x22001000, SPI 32");
    out.expect_line("(HV) *** Serial input to DOM0 (type 'CTRL-a' three times to switch input)");
    for line in [
        "(d1) domu-probe: ok: /sbsa-uart@22000000: Some(\"arm,sbsa-uart\")",
        "(d1) domu-probe: ok: /chosen/stdout-path is Some(\"/sbsa-uart@22000000\")",
        "(d1) domu-probe: ok: vPL011 FR 0x90 (TXFE, RXFE)",
        "(d1) domu-probe: this line went through the vPL011",
        "(d1) domu-probe: ok: after sending, RIS 0x20 has TX",
        "(d1) domu-probe: ok: the TX interrupt arrives once unmasked, once (1)",
    ] {
        out.expect_line(line);
    }
    let switched = out.expect_line("(HV) *** Serial input to DOM1 (type 'CTRL-a' three times to switch input)");
    let received = out.expect_line_after(
        switched,
        "(d1) domu-probe: ok: received [hello vpl011] through its interrupt, one byte each: 13 bytes, ",
    );
    println!("{received}");
    out.expect_line("(d1) domu-probe: ok: drained: MIS 0x0");
    out.expect_no_line("domu-probe: FAIL");
    out.expect_line("checks, 0 failures");
    out.expect_line("(HV) d1: shutdown: power off");
    dom0_passed(&out);
}

#[test]
fn a_domus_vpl011_prints_and_takes_typed_input() {
    vpl011_takes_typed_input(3, "domu-vpl011");
}

#[test]
fn a_domus_vpl011_on_a_gicv2_host() {
    vpl011_takes_typed_input(2, "domu-vpl011-gicv2");
}

#[test]
fn without_xen_enhanced_there_is_no_hypervisor_node() {
    let out =
        one_domu("memory = <0x0 0x8000>; cpus = <1>;", "expect-mem=0x2000000 expect-enhanced=0", "domu-plain").run();
    out.expect_line("(d1) domu-probe: ok: no /hypervisor (expected: false)");
    out.expect_line("(d1) domu-probe: 15 checks, 0 failures");
    out.expect_line("(HV) d1: shutdown: power off");
    dom0_passed(&out);
}

/// `stage2-blocks=no` maps a DomU's RAM in 4 KiB stage-2 pages, as
/// Dom0's (`tests/linux_domu_guest.rs` boots a Linux DomU so and counts
/// its tables), unless its tables would take over a quarter of the free
/// heap: a 3 GiB DomU gets blocks, with a warning, and runs (its probe
/// reads its tree in its RAM; Dom0's does not wait for its end).
#[test]
fn stage2_blocks_no_keeps_blocks_for_a_domu_too_large_for_the_heap() {
    let large = domu_node("domU1", "memory = <0x0 0x300000>; cpus = <1>;", "expect-mem=0xc0000000 expect-enhanced=0");
    let out = machine_of("6G", 2, 3, &[large], "dom0_mem=512M stage2-blocks=no", "console=hvc0", "domu-large").run();
    out.expect_line("(HV) WARNING: d1: stage 2: 3072 MiB of RAM in pages would take ");
    let d1 = out.expect_line("(HV) d1: VMID ");
    assert!(!d1.contains("4 KiB pages"), "{d1}");
    out.expect_line("(d1) domu-probe: ok: memory 0x40000000+0xc0000000: one bank at GUEST_RAM0_BASE");
    dom0_passed(&out);
}

#[test]
fn a_malformed_or_too_large_domu_is_skipped_and_dom0_boots() {
    let bad = domu_node("domU1", "memory = <0x10000>; cpus = <1>;", "");
    let greedy = domu_node("domU2", "memory = <0x0 0x10000>; cpus = <2>;", "");
    let out = machine(&[bad, greedy], "dom0_mem=512M", "domu-bad").run();
    out.expect_line(
        "(HV) ERROR: /chosen/domU1: DomU not built: memory must be a 64-bit number of KiB (<hi lo>), as Xen reads it",
    );
    out.expect_line("(HV) ERROR: /chosen/domU2: DomU not built: asks for 2 CPUs but only 1 are left");
    out.expect_no_line("(HV) d1:");
    // Dom0 gets both CPUs when nobody claims one.
    out.expect_line("(HV) d0: CPUs [0, 1] (of 2); idle: []");
    dom0_passed(&out);
}

#[test]
fn dom0_max_vcpus_leaves_a_cpu_idle() {
    let out = machine(&[], "dom0_mem=512M dom0_max_vcpus=1", "domu-none").run();
    out.expect_line("(HV) d0: CPUs [0] (of 2); idle: [1]");
    dom0_passed(&out);
}

/// Dom0 attacks the DomU's interrupts while the DomU checks its timer and
/// SGIs (`probe=attack-domu`, `tests/guests/dom0-probe/src/probe/isolation.rs`):
/// the DomU's CPU's redistributor is not in Dom0's view (its walk ends at
/// its own, writes past it abort), an SPI routed to the DomU's CPU stays
/// on Dom0's, and Dom0's SGIs to it (by list or to all others) never
/// arrive there (the hypervisor's debug log would say so). The DomU's
/// checks all pass.
#[test]
fn dom0_cannot_reach_a_domus_interrupts() {
    let node = domu_node(
        "domU1",
        "memory = <0x0 0x10000>; cpus = <1>; xen,enhanced = \"enabled\";",
        "expect-mem=0x4000000 expect-enhanced=1 check-interrupts=1 wait-ms=1000",
    );
    let out =
        machine_on_gic(3, &[node], "dom0_mem=512M loglvl=debug", "console=hvc0 probe=attack-domu", "domu-isolation")
            .run();
    out.expect_line("(HV) GIC: Dom0 sees 1 of the redistributors at ");
    for line in [
        "probe: ok: attack-domu: the redistributor walk sees 1 frame(s), Dom0's 1 (0 other)",
        "probe: ok: attack-domu: the DomU ended after ",
        "(d1) domu-probe: ok: the virtual timer's PPI 27 is not delivered while disabled",
        "(d1) domu-probe: ok: the virtual timer's PPI 27 arrives once enabled",
        "(d1) domu-probe: ok: SGI 3 to itself arrives",
        "(d1) domu-probe: 24 checks, 0 failures",
    ] {
        out.expect_line(line);
    }
    for line in ["the DomU ended after ", "redistributor aborted", "stayed on Dom0's"] {
        println!("{}", out.expect_line(line));
    }
    // The attack began before the DomU's interrupt checks and went on to
    // its end: it lasted longer than the DomU waited before them. (Dom0's
    // lines come by semihosting, the DomU's through the UART: their order
    // in the output says nothing.)
    let attacked = out.number_after("attack-domu: the DomU ended after ");
    assert!(attacked >= 1000, "the attack lasted {attacked} ms, less than the DomU's wait");
    out.expect_no_line("domu-probe: FAIL");
    out.expect_no_line("on a DomU's CPU ignored");
    dom0_passed(&out);
}

/// The same tree under Debian's Xen 4.17 builds the DomU too. Differences
/// noted rather than forced: Xen's release build refuses a DomU's
/// console_io (XSM), so no `(d1)` lines; it puts the DomU's tree at the top
/// of its first bank and gives it extended regions; it emulates the GIC
/// (the probe's read of the guest GICD is answered); it keeps the domain
/// node in Dom0's `/chosen`, which Dom0's probe checks, and fails there
/// alone. The DomU runs its interrupt checks there too (unseen: they
/// must at least not stop it, nor Dom0).
#[test]
fn xen_4_17_builds_the_same_domu() {
    let out = one_domu(
        "memory = <0x0 0x10000>; cpus = <1>; xen,enhanced = \"enabled\";",
        &format!("expect-mem=0x4000000 expect-enhanced=1 check-interrupts=1 {EXT_64M}"),
        "domu-xen",
    )
    .run_image(&image::xen_4_17(), None);
    out.expect_line("(XEN) *** LOADING DOMU cpus=1 memory=10000KB ***");
    // The extended regions ours gives (and its probe checks), from Xen.
    for line in EXT_64M_LINES {
        out.expect_line(&format!("(XEN) {line}"));
    }
    out.expect_line("(XEN) Loading d1 kernel from boot module @ 000000004a000000");
    out.expect_line("(XEN) Loading d1 DTB to ");
    let fails: Vec<&str> = out.output.lines().filter(|l| l.starts_with("probe: FAIL")).collect();
    assert_eq!(fails, vec!["probe: FAIL: /chosen has no module nodes"], "{}", out.output);
    out.expect_line("probe: 1 failures");
}

/// The DomU as an adversary (`hostile=1`, `tests/guests/domu-probe/src/probe/hostile.rs`):
/// memory everywhere outside its RAM, Dom0's calls, other domains' state,
/// buffers outside its RAM, vCPUs it does not have, every register of its
/// emulated GIC; every case answered as expected. Dom0 waits for its end
/// (VIRQ_DOM_EXC) and then still gets answers; the machine carries on to
/// Dom0's own power-off.
fn hostile_domu_on(gic_version: u32) {
    let node =
        domu_node("domU1", "memory = <0x0 0x10000>; cpus = <1>;", "expect-mem=0x4000000 expect-enhanced=0 hostile=1");
    let name = format!("domu-hostile-v{gic_version}");
    let out = machine_on_gic(gic_version, &[node], "dom0_mem=512M", "console=hvc0 probe=wait-domain-end", &name).run();
    out.expect_no_line("domu-probe: FAIL");
    let line = out.expect_line("(d1) domu-probe: hostile: total: 5 categories, ");
    // "... N cases, N ok": every case as expected, and many.
    let counts: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    let (cases, ok) = (counts[counts.len() - 2], counts[counts.len() - 1]);
    assert!(cases == ok && cases > 100_000, "{line}");
    let gic = out.expect_line("(d1) domu-probe: hostile: its emulated GIC: ");
    println!("{line}\n{gic}");
    out.expect_line_after("(HV) d1: shutdown: power off", "probe: ok: VIRQ_DOM_EXC: a domain ended");
    out.expect_line_after("probe: ok: VIRQ_DOM_EXC", "probe: ok: after the domain's end, xen_version answers");
    dom0_passed(&out);
}

#[test]
fn a_hostile_domu_is_refused_everything_and_dom0_carries_on() {
    hostile_domu_on(3);
}

#[test]
fn a_hostile_domu_on_a_gicv2_host_is_refused_everything_and_dom0_carries_on() {
    hostile_domu_on(2);
}

/// A DomU ends (vCPU 0 powers it off) while its vCPU 1 spins with every
/// interrupt masked and none enabled, as a hung or hostile guest's may
/// (`ending=spinning-vcpu`, `tests/guests/domu-probe/src/probe/ending.rs`):
/// the hypervisor still stops vCPU 1 (its CPU takes the kick, whatever the
/// guest enabled) and releases the domain.
#[test]
fn a_domu_ending_beside_a_spinning_masked_vcpu_is_still_released() {
    let node = domu_node(
        "domU1",
        "memory = <0x0 0x10000>; cpus = <2>;",
        "expect-mem=0x4000000 expect-enhanced=0 ending=spinning-vcpu",
    );
    let out =
        machine_of("2G", 3, 3, &[node], "dom0_mem=512M", "console=hvc0 probe=wait-domain-end", "domu-spinning").run();
    out.expect_line("(HV) d1: DomU from /chosen/domU1: 64 MiB, 2 vCPU(s) on CPU 1 (0x1), 2 (0x2)");
    out.expect_line("(d1) domu-probe: ok: vCPU 1 runs, spinning with every interrupt masked");
    let ended = out.expect_line("(HV) d1: shutdown: power off; the domain's vCPUs stop, the machine carries on");
    out.expect_line_after(ended, "(HV) d1: vCPU 1 stopped");
    out.expect_line_after(ended, "(HV) d1: released: ");
    out.expect_no_line("domu-probe: FAIL");
    dom0_passed(&out);
}
