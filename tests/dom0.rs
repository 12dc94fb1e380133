//! Dom0 as the bare-metal probe sees it (`tests/guests/dom0-probe`): its
//! device tree, its RAM, the extended regions and what aborts, across
//! command lines and machines. The probe prints `probe: ok/FAIL` lines
//! through semihosting and exits 0 only if every check passed.

use qemu_harness::machine::Module;
use qemu_harness::{Machine, Outcome, image};

fn boot(cpu: &str, memory: &str, append: &str) -> Outcome {
    Machine::with_probe_dom0(cpu, memory, append).run()
}

/// The probe with `probe=<mode>` on its command line, on the default
/// machine (2 CPUs, 2 GiB, `dom0_mem=512M`).
fn boot_probe_mode(mode: &str) -> Outcome {
    let mut machine = Machine::with_probe_dom0("cortex-a57", "2G", "dom0_mem=512M");
    machine.modules[0].bootargs = Some(format!("console=hvc0 probe={mode}"));
    machine.run()
}

/// The probe passed, and the regions it read from its tree are exactly the
/// ones the hypervisor logged.
fn assert_probe_passed(out: &Outcome) -> Vec<(u64, u64)> {
    out.expect_line("probe: 0 failures");
    out.expect_no_line("probe: FAIL");
    out.expect_exit(0);
    let logged = out.ranges("(HV) d0: extended region ");
    let seen: Vec<_> = out.ranges("probe: hypervisor reg[").into_iter().skip(1).collect();
    assert_eq!(seen, logged, "regions in Dom0's tree vs the hypervisor's log:\n{}", out.output);
    logged
}

/// The reference machine (cortex-a57, 2 GiB, dom0_mem=512M), booted once
/// for the tests that read different parts of its run.
fn reference_boot() -> &'static Outcome {
    static OUT: std::sync::OnceLock<Outcome> = std::sync::OnceLock::new();
    OUT.get_or_init(|| boot("cortex-a57", "2G", "dom0_mem=512M"))
}

#[test]
fn default_command_line_on_2g() {
    let out = reference_boot();
    let regions = assert_probe_passed(out);
    assert_eq!(regions, vec![(0x4200_0000, 0x6000_0000), (0x8000_0000, 0xc000_0000)]);
    out.expect_line("probe: ok: wrote and read back");
    out.expect_line("probe: ok: xen_version(XENVER_version) = 0x40011 (4.17)");
    out.expect_line("probe: ok: XENVER_get_features: dom0, direct_mapped, auto_translated (0x24805)");
    out.expect_line("probe: ok: a buffer outside Dom0 RAM gets -EFAULT (-14)");
    out.expect_line("d0: stage 2 audited at build: ");
    out.expect_line("mappings: RAM 512 MiB, ");
    out.expect_line("probe: ok: a read of extended region 0x42000000 aborts");
    out.expect_line("probe: ok: a read of the grant region 0x40200000 (the hypervisor's image) aborts");
}

/// The hypercalls Linux makes as Dom0, good and hostile, as the probe
/// checks them; it ends the run with SCHEDOP_shutdown, and every frame it
/// ballooned out came back.
#[test]
fn hypercalls_a_linux_dom0_makes() {
    let out = reference_boot();
    assert_probe_passed(out);
    for line in [
        "probe: hypercalls: checking against this hypervisor",
        "probe: ok: add_to_physmap shared_info at ",
        "probe: ok: register_vcpu_info for vCPU 0 (0)",
        "probe: ok: a second registration gets -16 (-16)",
        "probe: ok: the runstate area says running",
        "probe: ok: EVTCHNOP_init_control gets -ENOSYS",
        "probe: ok: a send to port 2 sets port 1 pending, its selector bit and the upcall",
        "probe: ok: unmask raises the pending port",
        "probe: ok: grant frames 1 and 0 at 0x40200000 (0, 0)",
        "probe: ok: map_grant_ref of our own page at 0x42000000: status 0",
        "probe: ok: the granted page reads back at 0x42000000",
        "probe: ok: map_grant_ref at an address on mapped RAM gets GNTST_bad_virt_addr (-5)",
        "probe: ok: a second unmap gets GNTST_bad_handle (-4)",
        "probe: ok: the granted page maps read-only in the ballooned hole (0)",
        "probe: ok: populate_physmap brings 1 back (1)",
        "probe: ok: the page is back, zeroed",
        "probe: ok: HVM_PARAM_STORE_EVTCHN is 0: no xenstore (0, 0)",
        "probe: ok: memory_op add_to_physmap with a pointer to 0x42000000 gets -EFAULT (-14)",
        "probe: ok: unknown hypercall 9999 op gets -ENOSYS (-38)",
        "(d0) probe: hello through CONSOLEIO_write",
        "(HV) d0: shutdown: power off",
    ] {
        out.expect_line(line);
    }
    let at_entry = out.number_after("Free frames at Dom0 entry: ");
    let at_shutdown = out.number_after("Free frames at shutdown: ");
    assert_eq!(at_shutdown, at_entry, "the ballooned page came back; grant frames were reserved before entry");
    // After the grant and balloon checks, Dom0 sees all its RAM again, no
    // grant mapping, and the two grant-table frames it placed.
    let audit = out.expect_line_after("(HV) d0: shutdown: power off", "(HV) d0: stage 2 audited at shutdown: ");
    for part in ["RAM 512 MiB,", "granted 0 KiB,", "shared 8 KiB;"] {
        assert!(audit.contains(part), "{part:?} in {audit:?}");
    }
}

#[test]
fn ext_regions_off_and_fixed_and_refused() {
    let out = boot("cortex-a57", "2G", "ext-regions=no");
    assert!(assert_probe_passed(&out).is_empty());
    out.expect_line("probe: ok: 0 extended regions");
    out.expect_line("d0: 0 extended regions, 0 MiB");
    // Beyond the 2 GiB of RAM: taken on the operator's word, with a warning.
    let out = boot("cortex-a57", "2G", "ext-regions=0x100000000,1G");
    assert_eq!(assert_probe_passed(&out), vec![(0x1_0000_0000, 0x1_4000_0000)]);
    out.expect_line("d0: 1 extended regions, 1024 MiB");
    out.expect_line(
        "WARNING: ext-regions: 0x100000000->0x140000000 lies outside RAM; advertised as given, on the operator's word",
    );
    // A refused range and a malformed value (the reasons: tests/boot.rs)
    // both leave none, never the search's.
    for bad in ["ext-regions=0x60000000,256M", "ext-regions=0x80000000"] {
        let out = boot("cortex-a57", "2G", bad);
        out.expect_line("ERROR: ext-regions: the given ");
        out.expect_line("; no extended regions advertised");
        assert!(assert_probe_passed(&out).is_empty(), "{bad}");
        out.expect_line("probe: ok: 0 extended regions");
    }
}

#[test]
fn memory_sizes_and_cpus() {
    for (cpu, memory) in [("cortex-a57", "1G"), ("cortex-a57", "4G"), ("max", "2G"), ("max", "4G")] {
        let out = boot(cpu, memory, "");
        let regions = assert_probe_passed(&out);
        assert!(!regions.is_empty() || memory == "1G", "{cpu} {memory}: {regions:x?}");
    }
}

#[test]
fn a_reserved_memory_carve_out_is_never_a_region() {
    use qemu_harness::dtb::Dts;
    use qemu_harness::machine::Tree;
    let base = Machine { modules: vec![], ..Machine::with_probe_dom0("cortex-a57", "2G", "") };
    let dtb = Dts::from_blob(&base.generated_dtb())
        .with_carve_out(0x5000_0000, 0x200_0000)
        .add_to_node("chosen", "xen,dom0-bootargs = \"console=hvc0\";")
        .with_kernel_module(0x4200_0000, std::fs::metadata(image::dom0_probe()).unwrap().len())
        .write("carve-out");
    let loader = format!("loader,file={},addr=0x42000000,force-raw=on", image::dom0_probe().display());
    let out = Machine { tree: Tree::Dtb(dtb), extra: vec!["-device".into(), loader], ..base }.run();
    let regions = assert_probe_passed(&out);
    assert_eq!(regions, vec![(0x4200_0000, 0x5000_0000), (0x5200_0000, 0x6000_0000), (0x8000_0000, 0xc000_0000)]);
}

#[test]
fn the_initrd_is_placed_in_dom0_ram_and_named_in_chosen() {
    let initrd = qemu_harness::run_dir().join("initrd.img");
    let mut content = b"INITRD!!".to_vec();
    content.resize(3 * 1024 * 1024 + 5, 0xa5);
    std::fs::write(&initrd, &content).unwrap();
    let mut machine = Machine::with_probe_dom0("cortex-a57", "2G", "");
    machine.modules.push(Module { addr: 0x4400_0000, file: initrd, kernel: false, bootargs: None });
    let out = machine.run();
    assert_probe_passed(&out);
    out.expect_line("Module: ramdisk 0x44000000->0x44300005");
    out.expect_line("d0: initrd 0x60400000->0x60700005");
    out.expect_line("probe: ok: initrd 0x60400000->0x60700005 lies in Dom0 RAM");
    out.expect_line("probe: initrd starts with \"INITRD!!\"");
}

/// More interrupts at once than the CPU has list registers (QEMU's
/// Cortex-A57 has 4): six SPIs made pending at the real distributor, an SGI
/// to itself and the virtual timer, all delivered exactly once through the
/// list registers, the overflow queue and the maintenance interrupt.
#[test]
fn an_interrupt_burst_beyond_the_list_registers_is_delivered() {
    let out = boot_probe_mode("interrupts");
    assert_probe_passed(&out);
    out.expect_line("probe: ok: 8 interrupts raised at once, more than the 4 list registers, all delivered");
    out.expect_line("probe: ok: interrupt 27 delivered once");
    out.expect_line("probe: ok: interrupt 3 delivered once");
}

/// The categories of `probe=hostile` and the fewest cases each must run.
const HOSTILE_CATEGORIES: [(&str, u64); 14] = [
    ("memory outside Dom0", 49_000),
    ("unknown calls and sub-ops", 446),
    ("bad pointers", 391),
    ("add_to_physmap", 164),
    ("wrong domain ids", 80),
    ("out-of-range numbers", 63),
    ("huge counts", 26),
    ("malformed arguments", 44),
    ("double registrations", 43),
    ("grant maps and unmaps", 63),
    ("GIC registers", 54),
    ("SGI system registers", 13),
    ("PSCI", 69),
    ("stage-2 table budget", 5),
];

/// `N cases, M ok` from the probe's line for a hostile category.
fn hostile_tally(out: &Outcome, category: &str) -> (u64, u64) {
    let line = out.expect_line(&format!("probe: hostile: {category}: "));
    let numbers: Vec<u64> =
        line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect();
    match numbers[..] {
        [.., cases, ok] => (cases, ok),
        _ => panic!("no tally in {line:?}"),
    }
}

/// Dom0 as an adversary (`probe=hostile`): every hypercall and sub-op with
/// bad pointers, domains, numbers and counts, add_to_physmap everywhere,
/// bad grant maps, loads and stores into the hypervisor's memory, odd GIC
/// accesses, bad SGI register values and PSCI calls. Each case gets the
/// answer it expects, the hypervisor answers a sanity call after every
/// category, and not a frame is lost.
#[test]
fn a_hostile_dom0_gets_errors_and_aborts_and_changes_nothing() {
    let out = boot_probe_mode("hostile");
    assert_probe_passed(&out);
    out.expect_line("probe: hostile: against this hypervisor");
    let mut total = 0;
    for (category, at_least) in HOSTILE_CATEGORIES {
        let (cases, ok) = hostile_tally(&out, category);
        println!("{category}: {cases} cases, {ok} ok");
        assert_eq!(ok, cases, "{category}: every case as expected");
        assert!(cases >= at_least, "{category}: {cases} cases, fewer than {at_least}");
        out.expect_line(&format!("probe: ok: hostile: {category}: xen_version still answers afterwards"));
        total += cases;
    }
    let (cases, ok) = hostile_tally(&out, "total");
    assert_eq!((cases, ok), (total, total));
    // The sweep of loads and stores covered the hypervisor's image and heap.
    let swept = logged_range(&out, "probe: hostile: sweeping ");
    for memory in [logged_range(&out, "(hypervisor image)"), logged_range(&out, "(HV) Heap: ")] {
        assert!(swept.0 <= memory.0 && memory.1 <= swept.1, "{memory:x?} lies in the sweep {swept:x?}");
    }
    let at_entry = out.number_after("Free frames at Dom0 entry: ");
    let at_shutdown = out.number_after("Free frames at shutdown: ");
    assert_eq!(at_shutdown, at_entry, "no frame lost or taken");
    assert_eq!(out.number_after(&format!("shutdown: {at_shutdown}; and ")), 0, "nothing left ballooned out");
}

/// The first `start->end` range on the first line containing `needle`.
fn logged_range(out: &Outcome, needle: &str) -> (u64, u64) {
    let line = out.expect_line(needle);
    let parse = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    line.split_whitespace()
        .find_map(|word| word.split_once("->").and_then(|(a, b)| Some((parse(a)?, parse(b.trim_end_matches(','))?))))
        .unwrap_or_else(|| panic!("no range in {line:?}"))
}
