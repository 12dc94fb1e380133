//! The hypervisor booted under QEMU: what it reports about the machine, how
//! it treats the device tree and its command line, and how it stops on bad
//! boot input. Each boot has a time limit; a hang fails the test.

use qemu_harness::dtb::Dts;
use qemu_harness::machine::{Module, Tree};
use qemu_harness::{Machine, Outcome, run_dir};
use std::path::PathBuf;
use std::time::Duration;

/// The placeholder Dom0's exit code once it ran and found its tree: a code
/// the hypervisor never stops with, so a boot cannot pass by stopping early.
const REACHED: i32 = qemu_harness::guest::REACHED as i32;

/// A stand-in Dom0 that checks x0 points at a device tree and exits 0.
/// Written once: tests run in parallel and must never see it half written.
fn placeholder_kernel() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path = run_dir().join("test-kernel.bin");
        std::fs::write(&path, qemu_harness::guest::reach_and_exit()).unwrap();
        path
    })
    .clone()
}

fn machine(cpu: &str, memory: &str, append: &str) -> Machine {
    Machine {
        cpu: cpu.into(),
        memory: memory.into(),
        append: Some(append.into()),
        modules: vec![Module {
            addr: 0x4200_0000,
            file: placeholder_kernel(),
            kernel: true,
            bootargs: Some("console=hvc0".into()),
        }],
        ..Machine::default()
    }
}

/// What every good boot shows, whatever the machine.
fn assert_boot_report(out: &Outcome) {
    out.expect_line("(HV) AArch64 hypervisor");
    out.expect_line("Console: PL011 /pl011@9000000");
    out.expect_line("GIC V3 at /intc@8000000: distributor 0x08000000->0x08010000");
    out.expect_line("Module: kernel 0x42000000->0x42001000 (4096 bytes)");
    out.expect_line("Dom0 command line: \"console=hvc0\" (from bootargs of the kernel module)");
    out.expect_line("Kept back: 0x40200000->");
    out.expect_line("(hypervisor image)");
    out.expect_line("Kept back: 0x42000000->0x42001000 (boot module (kernel))");
    out.expect_line("EL2 MMU on");
    out.expect_line("Free memory: ");
    out.expect_line("Boot CPU 0x0 ready; ");
    out.expect_no_line("PANIC");
    out.expect_no_line("unexpected exception");
}

#[test]
fn boots_on_cortex_a57_with_1_gib() {
    let out = machine("cortex-a57", "1G", "loglvl=info").run();
    assert_boot_report(&out);
    out.expect_line("RAM bank 0: 0x40000000->0x80000000 (1024 MiB)");
    out.expect_line("Command line: \"loglvl=info\" (from /chosen/bootargs)");
    out.expect_line("Boot CPU 0x0 ready; 2 CPUs in the device tree");
    out.expect_exit(REACHED);
}

#[test]
fn boots_on_max_cpu_with_4_gib() {
    let out = machine("max", "4G", "").run();
    assert_boot_report(&out);
    out.expect_line("RAM bank 0: 0x40000000->0x140000000 (4096 MiB)");
    // The free-list summary accounts for all RAM but what was kept back.
    let free: u64 = out
        .expect_line("Free memory: ")
        .split("Free memory: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!((4000..4096).contains(&free), "{free} MiB free of 4096");
    out.expect_exit(REACHED);
}

#[test]
fn debug_level_dumps_the_free_lists_and_unknown_options_are_reported() {
    let out = machine("cortex-a57", "1G", "loglvl=debug no-such-option=1 dom0_mem=oops").run();
    out.expect_line("free block: order 17 0x60000000->0x80000000");
    out.expect_line("WARNING: command line: unknown option 'no-such-option=1' ignored");
    out.expect_line("WARNING: command line: 'dom0_mem=oops': bad size; default kept");
    // Where the boot's time went, phase by phase.
    out.expect_line("boot phase: kernel copied: ");
    out.expect_line("boot phase: Dom0 device tree made: ");
    out.expect_exit(REACHED);
}

/// `stage2-blocks=no` asks for Dom0's RAM in 4 KiB pages; for 8 GiB the
/// tables would pass the boot table limit, so blocks are used, with a warning.
#[test]
fn stage2_pages_past_the_table_limit_fall_back_to_blocks() {
    let out = machine("cortex-a57", "10G", "dom0_mem=8G stage2-blocks=no").run();
    assert_boot_report(&out);
    out.expect_line(
        "WARNING: d0: stage 2: 8192 MiB of RAM in pages would take 4106 table pages, over the limit; blocks used",
    );
    out.expect_no_line("RAM in 4 KiB pages");
    out.expect_exit(REACHED);
}

#[test]
fn quiet_level_logs_nothing_but_the_end() {
    let out = machine("cortex-a57", "1G", "loglvl=error").run();
    out.expect_no_line("RAM bank");
    out.expect_exit(REACHED);
}

/// QEMU's own tree with edits, given with `-dtb`: QEMU rewrites /memory in
/// it, leaving FDT_NOP tokens behind.
fn edited_tree(edit: impl FnOnce(Dts) -> Dts, name: &str) -> PathBuf {
    edit(base_dts()).write(name)
}

#[test]
fn reserved_memory_and_xen_bootargs_from_an_edited_tree() {
    let dtb = edited_tree(
        |dts| {
            dts.with_carve_out(0x5000_0000, 0x200_0000)
                .add_to_node(
                    "chosen",
                    "xen,xen-bootargs = \"loglvl=debug\";\nxen,dom0-bootargs = \"console=hvc0 earlycon\";",
                )
                .with_kernel_module(0x4200_0000, 0x1000)
        },
        "reserved",
    );
    // QEMU's guest-loader edits only its own tree: place the kernel by hand.
    let loader = format!("loader,file={},addr=0x42000000,force-raw=on", placeholder_kernel().display());
    let out = Machine {
        tree: Tree::Dtb(dtb),
        append: None,
        modules: vec![],
        extra: vec!["-device".into(), loader],
        ..machine("cortex-a57", "1G", "")
    }
    .run();
    out.expect_line("Command line: \"loglvl=debug\" (from /chosen/xen,xen-bootargs)");
    out.expect_line("Dom0 command line: \"console=hvc0 earlycon\" (from /chosen/xen,dom0-bootargs)");
    out.expect_line("Reserved: 0x50000000->0x52000000 (/reserved-memory/carveout@50000000, no-map)");
    out.expect_line("Kept back: 0x50000000->0x52000000 (/reserved-memory/carveout@50000000)");
    // The carve-out is not free memory.
    for line in out.output.lines().filter(|l| l.contains("free block:")) {
        let range = line.rsplit(' ').next().unwrap();
        let (start, end) = range.split_once("->").unwrap();
        let parse = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        assert!(parse(end) <= 0x5000_0000 || parse(start) >= 0x5200_0000, "free block {range} in the carve-out");
    }
    out.expect_exit(REACHED);
}

/// A tree QEMU never touches, entered through the boot shim.
fn raw_tree_boot(blob: Vec<u8>, name: &str) -> Outcome {
    let path = run_dir().join(format!("{name}.dtb"));
    std::fs::write(&path, blob).unwrap();
    Machine { tree: Tree::Raw(path), smp: 1, timeout: Duration::from_secs(30), ..Machine::default() }.run()
}

#[test]
fn a_tree_without_memory_stops_with_a_clear_error() {
    let dts = tree_with_kernel().remove_nodes("memory");
    let out = raw_tree_boot(dts.to_blob(), "no-memory");
    out.expect_line("FATAL: no RAM: the device tree has no usable /memory node");
    out.expect_exit(12);
}

#[test]
fn a_truncated_tree_stops_with_a_clear_error() {
    // Compacted by dtc, so that half the blob is half the structure.
    let mut blob = tree_with_kernel().to_blob();
    let size = blob.len();
    blob.truncate(size / 2);
    // Keep the header's size claim: the blob ends early inside the structure.
    blob.resize(size, 0);
    let out = raw_tree_boot(blob, "truncated");
    out.expect_line("FATAL: malformed device tree");
    out.expect_exit(10);
}

/// A tree whose structure block is corrupted at its first property: its
/// name offset pointing past the strings block, or its token unknown.
#[test]
fn a_corrupted_tree_stops_with_a_clear_error() {
    let blob = tree_with_kernel().to_blob();
    let be32 = |at: usize| u32::from_be_bytes(blob[at..at + 4].try_into().unwrap());
    const FDT_PROP: u32 = 3;
    let structure = be32(8) as usize;
    let first_prop = (structure..blob.len()).step_by(4).find(|&at| be32(at) == FDT_PROP).expect("a property");
    for (name, at, value) in
        [("bad-name-offset", first_prop + 8, 0x00ff_fff0u32), ("bad-token", first_prop, 0x0000_000a)]
    {
        let mut bad = blob.clone();
        bad[at..at + 4].copy_from_slice(&value.to_be_bytes());
        let out = raw_tree_boot(bad, name);
        out.expect_line("FATAL: malformed device tree");
        out.expect_exit(10);
    }
}

#[test]
fn no_tree_at_all_stops_with_a_clear_error() {
    let out = raw_tree_boot(vec![0u8; 4096], "zeros");
    out.expect_line("FATAL: no device tree at x0 = 0x48000000");
    out.expect_exit(10);
}

#[test]
fn absurd_address_cells_stop_with_a_clear_error() {
    let dts = tree_with_kernel();
    let text = dts.text.replacen("#address-cells = <0x02>;", "#address-cells = <0x63>;", 1);
    let out = raw_tree_boot(Dts { text }.to_blob(), "cells");
    out.expect_line("FATAL: /: unsupported #address-cells");
    out.expect_exit(11);
}

#[test]
fn no_dom0_kernel_stops_with_a_clear_error() {
    let out = Machine { modules: vec![], ..machine("cortex-a57", "1G", "") }.run();
    out.expect_line("FATAL: no Dom0 kernel: /chosen has no multiboot,kernel module");
    out.expect_exit(15);
}

#[test]
fn booted_at_el1_says_why_and_parks() {
    let out = Machine { virtualization: false, timeout: Duration::from_secs(60), ..machine("cortex-a57", "1G", "") }
        .run_until("Halted.");
    out.expect_line("FATAL: entered at EL1, but the hypervisor needs EL2");
    assert!(out.timed_out(), "a parked CPU never exits QEMU by itself");
}

#[test]
fn a_faulting_console_gives_a_crash_report_through_semihosting() {
    // The tree names a PL011 where nothing answers: the first write to it
    // takes an external abort at EL2.
    let dts = tree_with_kernel();
    let text = dts.text.replace("reg = <0x00 0x9000000 0x00 0x1000>;", "reg = <0x00 0xdead0000 0x00 0x1000>;");
    assert_ne!(text, dts.text, "the UART's reg is where we expect it");
    let out = raw_tree_boot(Dts { text }.to_blob(), "bad-uart");
    out.expect_line("----[ unexpected exception: data abort at EL2 ]----");
    out.expect_line("synchronous external abort on write");
    out.expect_line("FAR_EL2  0x00000000dead00");
    out.expect_line("ELR_EL2  0x0000000040");
    out.expect_line("x30 ");
    out.expect_exit(2);
}

/// On the reference machine (`-m 2G`, cortex-a57, dom0_mem=512M) Xen 4.17
/// gives Dom0 0x6000_0000+512M and advertises 0x4040_0000->0x6000_0000 and
/// 0x8000_0000->0xc000_0000: 1408 MiB in 128 MiB-aligned sections.
#[test]
fn extended_regions_follow_the_command_line() {
    let run = |append: &str| machine("cortex-a57", "2G", append).run();

    let out = run("dom0_mem=512M");
    out.expect_line("d0: BANK[0] 0x60000000->0x80000000 (512 MiB)");
    out.expect_line("d0: grant table region 0x40200000->0x40240000");
    out.expect_line("d0: extended region 1: 0x80000000->0xc0000000");
    out.expect_line("(1408 MiB in 128 MiB-aligned sections Linux can use)");
    out.expect_line("Freed 0x48000000->0x48100000 (host device tree)");
    out.expect_line("Freed 0x42000000->0x42001000 (boot modules, copied into Dom0)");
    out.expect_line("d0: extended region 0: 0x42000000->0x60000000");
    out.expect_line("d0: kernel 0x60000000->0x60001000 (entry 0x60000000, text_offset 0x0)");
    out.expect_line("d0: device tree at 0x60200000");
    out.expect_exit(REACHED);

    // Off and a fixed range (their spellings are the command line's host
    // tests; what Dom0 then sees, tests/dom0.rs): every bad value, refused
    // or malformed, is an error naming its rule, and advertises none.
    for (bad, why) in [
        ("ext-regions=0x70000000,256M", "the given range is refused: overlaps Dom0 RAM 0x60000000->0x80000000"),
        ("ext-regions=0x100100000,1G", "the given range is refused: start and size must be multiples of 2 MiB"),
        ("ext-regions=0x100000000000,1G", "the given range is refused: ends beyond the 0x100000000000 IPA space"),
        ("ext-regions=0x100000000,2M", "the given range is refused: smaller than the 64 MiB minimum"),
        ("ext-regions=0x8000000,64M", "the given range is refused: overlaps a host device 0x08000000->0x08010000"),
        (
            "ext-regions=0x40000000,64M",
            "the given range is refused: overlaps the frame allocator's metadata 0x40000000->0x40021000",
        ),
        ("ext-regions=0x80000000", "the given value is malformed: expected yes, no or <start>,<size>"),
    ] {
        let out = run(bad);
        out.expect_line(&format!("ERROR: ext-regions: {why}; no extended regions advertised"));
        out.expect_line("d0: 0 extended regions");
        out.expect_exit(REACHED);
    }

    let out = run("dom0_mem=3G");
    out.expect_line("FATAL: dom0_mem=3072M cannot be satisfied");
    out.expect_exit(17);
}

#[test]
fn a_kernel_that_is_not_an_arm64_image_is_refused() {
    let path = run_dir().join("not-a-kernel.bin");
    std::fs::write(&path, vec![0x5au8; 4096]).unwrap();
    let mut m = machine("cortex-a57", "1G", "");
    m.modules[0].file = path;
    let out = m.run();
    out.expect_line("FATAL: the kernel module is not an arm64 Image (no ARM\\x64 magic at offset 0x38)");
    out.expect_exit(16);
}

#[test]
fn dom0_is_entered_at_el1_with_its_device_tree() {
    let out = machine("cortex-a57", "2G", "").run();
    out.expect_line("d0: entering at 0x60000000 (EL1h, MMU off) with its device tree at 0x60200000");
    out.expect_line("Free frames at Dom0 entry: ");
    // The stand-in read the tree's magic through x0 and exited 0.
    out.expect_exit(REACHED);
}

#[test]
fn dom0_reading_hypervisor_memory_gets_an_abort() {
    for target in [0x4020_0000u64, 0x4100_0000] {
        let path = run_dir().join(format!("abort-{target:x}.bin"));
        std::fs::write(&path, qemu_harness::guest::read_and_expect_abort(target)).unwrap();
        let mut m = machine("cortex-a57", "2G", "");
        m.modules[0].file = path;
        let out = m.run();
        out.expect_line(&format!("d0: read at IPA {target:#x}"));
        out.expect_line("abort injected");
        out.expect_exit(qemu_harness::guest::ABORTED as i32);
    }
}

#[test]
fn dom0_psci_system_off_ends_the_machine() {
    let path = run_dir().join("system-off.bin");
    std::fs::write(&path, qemu_harness::guest::smc_and_hang(0x8400_0008)).unwrap();
    let mut m = machine("cortex-a57", "1G", "");
    m.modules[0].file = path;
    let out = m.run();
    out.expect_line("d0: PSCI SYSTEM_OFF");
    out.expect_line("(HV) Powering off");
    out.expect_exit(0);
}

/// QEMU's tree for a 1 GiB machine (no modules), as dtc source to edit;
/// dumped once per process.
fn base_dts() -> Dts {
    static TREE: std::sync::OnceLock<Dts> = std::sync::OnceLock::new();
    TREE.get_or_init(|| Dts::from_blob(&Machine { modules: vec![], ..machine("cortex-a57", "1G", "") }.generated_dtb()))
        .clone()
}

/// The same with the placeholder kernel's module in /chosen.
fn tree_with_kernel() -> Dts {
    static TREE: std::sync::OnceLock<Dts> = std::sync::OnceLock::new();
    TREE.get_or_init(|| Dts::from_blob(&machine("cortex-a57", "1G", "").generated_dtb())).clone()
}

#[test]
fn reserved_memory_covering_all_ram_stops_with_a_clear_error() {
    let dts = base_dts().with_carve_out(0x4000_0000, 0x4000_0000).with_kernel_module(0x4200_0000, 0x1000);
    let out = raw_tree_boot(dts.to_blob(), "all-reserved");
    out.expect_line("FATAL: no RAM left to manage: 1024 MiB of RAM");
    out.expect_exit(13);
}

#[test]
fn modules_outside_ram_or_on_the_hypervisor_stop_with_a_clear_error() {
    for (addr, why) in [(0x1000_0000u64, "is not inside RAM"), (0x4030_0000, "overlaps the hypervisor image")] {
        let dts = base_dts().with_kernel_module(addr, 0x1000);
        let out = raw_tree_boot(dts.to_blob(), "bad-module");
        out.expect_line(&format!("FATAL: kernel module {:#010x}->{:#010x} {why}", addr, addr + 0x1000));
        out.expect_exit(14);
    }
}

/// Boots `dts` with the placeholder kernel as Dom0 (loaded at 0x4200_0000).
fn boot_with_placeholder_dom0(dts: Dts, name: &str) -> Outcome {
    let dts = dts.with_kernel_module(0x4200_0000, 0x1000);
    let path = run_dir().join(format!("{name}.dtb"));
    std::fs::write(&path, dts.to_blob()).unwrap();
    let kernel = placeholder_kernel();
    Machine {
        tree: Tree::Raw(path),
        smp: 1,
        extra: vec!["-device".into(), format!("loader,file={},addr=0x42000000,force-raw=on", kernel.display())],
        ..Machine::default()
    }
    .run()
}

/// A device with 4000 `reg` entries 1 GiB apart: its stage-2 tables would
/// take the heap, so mapping stops at the table limit with a warning, and
/// Dom0 boots without the rest.
#[test]
fn a_flood_of_device_ranges_stops_at_the_table_limit() {
    let reg: Vec<String> =
        (64..4064u64).map(|gib| format!("{:#x} {:#x} 0x0 0x1000", gib >> 2, (gib & 3) << 30)).collect();
    let node = format!("flood@1000000000 {{ compatible = \"test,flood\"; reg = <{}>; }};", reg.join(" "));
    let out = boot_with_placeholder_dom0(base_dts().add_root_child(&node), "flood");
    out.expect_line("would take the tables past 3072 pages; Dom0 will not see it");
    out.expect_line("more ranges not mapped (table limit)");
    out.expect_line("d0: stage 2 audited");
    out.expect_exit(REACHED);
}

#[test]
fn odd_banks_boot_with_a_warning() {
    // A zero-sized bank, and a second bank overlapping the first.
    let text = base_dts().text.replace(
        "reg = <0x00 0x40000000 0x00 0x40000000>;",
        "reg = <0x00 0x40000000 0x00 0x40000000 0x00 0x50000000 0x00 0x00 0x00 0x70000000 0x00 0x20000000>;",
    );
    let out = boot_with_placeholder_dom0(Dts { text }, "odd-banks");
    out.expect_line("WARNING: device tree: /memory@40000000: zero-sized RAM bank ignored");
    out.expect_line("WARNING: device tree: /memory@40000000: RAM bank overlaps another; merged");
    out.expect_line("Memory: 1280 MiB RAM");
    out.expect_exit(REACHED);
}

/// The image runs wherever a loader puts it on a 2 MiB boundary (the
/// header says "place anywhere"): low, in the upper half of RAM and above
/// 4 GiB, it relocates itself, says where it runs, keeps that range back,
/// puts the grant-table region there, and the probe Dom0 passes as a
/// hostile Dom0: its loads and stores over the hypervisor's memory (the
/// image where it runs) abort, and a second vCPU starts through PSCI
/// CPU_ON into `secondary_entry` where it runs.
#[test]
fn the_image_runs_wherever_it_is_loaded() {
    for (memory, at) in [("2G", 0x5000_0000u64), ("2G", 0xa000_0000), ("4G", 0x1_0020_0000)] {
        let mut m = Machine::with_probe_dom0("cortex-a57", memory, "dom0_mem=512M");
        m.image_addr = at;
        m.modules[0].bootargs = Some("console=hvc0 probe=hostile".into());
        let out = m.run();
        let line = out.expect_line(&format!("Image at {at:#010x}->"));
        let field = |name: &str| {
            let after = &line[line.find(name).unwrap_or_else(|| panic!("{name} in {line:?}")) + name.len()..];
            let digits: String = after.trim_start_matches("0x").chars().take_while(char::is_ascii_hexdigit).collect();
            u64::from_str_radix(&digits, 16).unwrap_or_else(|e| panic!("{name} in {line:?}: {e}"))
        };
        let (linked, offset) = (field("linked at "), field("offset +"));
        assert_eq!(linked + offset, at, "{line}");
        println!("{line}");
        out.expect_line(&format!("Kept back: {at:#010x}->"));
        out.expect_line(&format!("d0: grant table region {at:#x}->"));
        out.expect_line("d0: vCPU 1 starting on CPU 0x1");
        out.expect_line("probe: hostile: total: ");
        out.expect_line("probe: 0 failures");
        out.expect_no_line("probe: FAIL");
        out.expect_exit(0);
    }
}

/// Debian's U-Boot as firmware boots the hypervisor from a virtio disk
/// with an ImageBuilder-shaped script (`qemu_harness::uboot`): the image
/// runs where the script loaded it, finds the modules in U-Boot's tree by
/// Xen's legacy compatibles, and the probe Dom0 passes.
#[test]
fn u_boot_boots_the_probe_dom0_from_a_script() {
    let m = Machine {
        boot: qemu_harness::machine::Boot::UBoot,
        ..Machine::with_probe_dom0("cortex-a57", "2G", "dom0_mem=512M")
    };
    let out = m.run();
    out.expect_line("U-Boot 2023.01");
    out.expect_line(&format!("Image at {:#010x}->", qemu_harness::uboot::HYPERVISOR_ADDR));
    out.expect_line("Command line: \"dom0_mem=512M\" (from /chosen/xen,xen-bootargs)");
    out.expect_line("Dom0 command line: \"console=hvc0\" (from /chosen/xen,dom0-bootargs)");
    out.expect_line("Module: kernel 0x42000000->");
    out.expect_line("probe: 0 failures");
    out.expect_exit(0);
}

/// The arm64 Image header a boot loader reads: text_offset 0, flags 0xa
/// (little endian, 4 KiB pages, place anywhere: `booti` leaves it where it
/// was loaded), and an image_size that covers the file, BSS and the boot
/// stacks in whole 2 MiB blocks.
#[test]
fn the_image_header_says_place_anywhere() {
    let bytes = std::fs::read(qemu_harness::image::hypervisor()).unwrap();
    let field = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    assert_eq!(&bytes[0x38..0x3c], b"ARM\x64");
    assert_eq!(field(0x08), 0, "text_offset");
    assert_eq!(field(0x18), 0xa, "flags");
    let size = field(0x10);
    assert!(size.is_multiple_of(2 << 20) && size >= bytes.len() as u64 + (128 << 10), "image_size {size:#x}");
}
