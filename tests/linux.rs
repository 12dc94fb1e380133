//! Debian's Linux as Dom0, with busybox and gnttest in its initramfs.
//! `/init` reports what Dom0 sees (`init: ` lines), gnttest maps a grant of
//! Dom0's own through gntalloc and gntdev and checks it lies in the
//! advertised extended regions (`gnttest: ` lines), then Dom0 powers off.
//! Under Debian's Xen 4.17 this checks the kernels, the initramfs and
//! gnttest themselves; under ours, the hypervisor.

use qemu_harness::initramfs::{dom0_initramfs, init_script};
use qemu_harness::linux::{DebianKernel, debian_kernel};
use qemu_harness::machine::Boot;
use qemu_harness::{Machine, Outcome, image, uboot};

/// Dom0's command line: the console on Xen's PV console, early output
/// through the console hypercall.
const DOM0_BOOTARGS: &str = "console=hvc0 earlycon=xenboot";

/// Linux never comes back from this: stop QEMU there rather than at the time limit.
const KERNEL_PANIC: &str = "Kernel panic - not syncing";

/// The report: what `/sys/hypervisor` says, the `/hypervisor` node's `reg`
/// decoded (address and size, two big-endian cells each on QEMU's `virt`),
/// the Xen modules Linux loaded; then gnttest; then power off.
fn report_then_power_off(gnttest_args: &str) -> String {
    format!(
        r#"echo "init: hypervisor type $(cat /sys/hypervisor/type)"
od -An -v -tx1 -w16 /proc/device-tree/hypervisor/reg | tr -d ' ' | while read -r entry; do
    echo "init: hypervisor reg 0x$(echo "$entry" | cut -c1-16) size 0x$(echo "$entry" | cut -c17-32)"
done
echo "init: modules $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
/bin/gnttest {gnttest_args}
echo "init: gnttest exited $?"
poweroff -f
"#
    )
}

/// A Dom0 of `kernel` with the report as `/init` on the 2 GiB machine.
fn machine(kernel: DebianKernel, gnttest_args: &str) -> Machine {
    let kernel = debian_kernel(kernel);
    let initrd = dom0_initramfs(kernel, &init_script(kernel, &report_then_power_off(gnttest_args)));
    Machine::with_linux_dom0(&kernel.image, &initrd, DOM0_BOOTARGS)
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hexadecimal: {s:?}"))
}

/// `/init`'s decoding of the `/hypervisor` reg, as ranges.
fn reg_seen_by_init(out: &Outcome) -> Vec<(u64, u64)> {
    out.output
        .lines()
        .filter_map(|l| l.strip_prefix("init: hypervisor reg "))
        .map(|entry| {
            let (address, size) = entry.split_once(" size ").expect("init: hypervisor reg A size S");
            (hex(address), hex(address) + hex(size))
        })
        .collect()
}

/// Every fact Dom0 reported is right: Xen's `/sys/hypervisor`, the four
/// modules loaded, the grant-table region and extended regions in its tree
/// are the ones the hypervisor logged (as `/init` and gnttest decode them),
/// gnttest passed, and Dom0 powered the machine off.
fn assert_dom0_report(out: &Outcome, grant: (u64, u64), extended: &[(u64, u64)]) {
    out.expect_line("init: hypervisor type xen");
    out.expect_line("init: modules xen_evtchn xen_gntalloc xen_gntdev xen_privcmd");
    let mut logged = vec![grant];
    logged.extend_from_slice(extended);
    assert_eq!(reg_seen_by_init(out), logged, "/hypervisor reg vs the hypervisor's log; output:\n{}", out.output);
    assert_eq!(out.ranges("gnttest: grant table region "), vec![grant], "gnttest's grant region");
    assert_eq!(out.ranges("gnttest: extended region "), extended, "gnttest's extended regions");
    out.expect_line("gnttest: 1000 rounds of map, mmap, touch, munmap, unmap");
    out.expect_line("gnttest: ok");
    out.expect_line("init: gnttest exited 0");
    out.expect_exit(0);
}

/// Xen 4.17's `Grant table range: 0x...-0x...` (end excluded).
fn xen_grant_range(out: &Outcome) -> (u64, u64) {
    let line = out.expect_line("Grant table range: ");
    let range = line.split("Grant table range: ").nth(1).unwrap().trim();
    let (start, end) = range.split_once('-').expect("start-end");
    (hex(start), hex(end))
}

#[test]
fn xen_4_17_runs_debian_6_12_and_gnttest_passes() {
    let out = machine(DebianKernel::Trixie6_12, "").run_image(&image::xen_4_17(), Some(KERNEL_PANIC));
    let extended = out.ranges("(XEN) d0: extended region ");
    assert!(!extended.is_empty(), "Xen advertises extended regions on 2 GiB; output:\n{}", out.output);
    assert_dom0_report(&out, xen_grant_range(&out), &extended);
    out.expect_line("gnttest: the gntdev page and the Xen scratch ranges lie in extended regions");
}

#[test]
fn xen_4_17_runs_debian_6_1_which_balloons() {
    let out = machine(DebianKernel::Bookworm6_1, "--ballooned").run_image(&image::xen_4_17(), Some(KERNEL_PANIC));
    assert_dom0_report(&out, xen_grant_range(&out), &out.ranges("(XEN) d0: extended region "));
    out.expect_line("gnttest: no Xen scratch in /proc/iomem");
}

/// The output with Dom0's console lines as Dom0 wrote them: our hypervisor
/// prefixes each with `(d0) ` (Xen 4.17 does not, for Dom0).
fn without_dom0_prefix(out: Outcome) -> Outcome {
    let lines: Vec<&str> = out.output.lines().map(|l| l.strip_prefix("(d0) ").unwrap_or(l)).collect();
    Outcome { output: lines.join("\n"), ..out }
}

/// The hypervisor's audit of Dom0's stage 2 at shutdown (a failed one
/// stops the machine with exit code 20).
const SHUTDOWN_AUDIT: &str = "(HV) d0: stage 2 audited at shutdown: ";

/// Runs `machine` on our hypervisor and checks Dom0's report against the
/// hypervisor's log, that Dom0's stage 2 passed the audit at shutdown with
/// Linux's grant-table frames in the grant region, and that every frame
/// Dom0 held came back by shutdown.
fn boot_ours(machine: Machine) -> Outcome {
    let out = without_dom0_prefix(machine.tuned_for_qemu().run_until(KERNEL_PANIC));
    let grant = out.ranges("(HV) d0: grant table region ");
    assert_eq!(grant.len(), 1, "one grant-table region logged; output:\n{}", out.output);
    assert_dom0_report(&out, grant[0], &out.ranges("(HV) d0: extended region "));
    // Why Dom0 left for the hypervisor, counted.
    out.expect_line(" exits to the hypervisor, ");
    let audit = out.expect_line_after("init: gnttest exited 0", SHUTDOWN_AUDIT);
    assert!(!audit.contains("shared 0 KiB"), "Linux's grant-table frames mapped in the grant region: {audit}");
    let at_entry = out.number_after("Free frames at Dom0 entry: ");
    let at_shutdown = out.number_after("Free frames at shutdown: ");
    assert_eq!(at_shutdown, at_entry, "free frames at shutdown (less those Dom0 ballooned out) vs at Dom0 entry");
    out
}

/// The parsing above on our hypervisor's output, without a boot.
#[test]
fn dom0_lines_read_the_same_with_our_prefix() {
    let output = "(HV) Free frames at Dom0 entry: 388063; heap 1092 KiB used of 16384 KiB\n\
                  (d0) init: hypervisor reg 0x0000000040200000 size 0x0000000000040000\n\
                  (d0) init: hypervisor reg 0x0000000042000000 size 0x000000001e000000\n\
                  (d0) gnttest: extended region 0: 0x42000000->0x60000000\n\
                  (HV) Free frames at shutdown: 388063\n";
    let out = without_dom0_prefix(Outcome { status: Some(0), output: output.into(), elapsed: Default::default() });
    assert_eq!(reg_seen_by_init(&out), vec![(0x4020_0000, 0x4024_0000), (0x4200_0000, 0x6000_0000)]);
    assert_eq!(out.ranges("gnttest: extended region "), vec![(0x4200_0000, 0x6000_0000)]);
    assert_eq!(out.number_after("Free frames at Dom0 entry: "), 388063);
    assert_eq!(out.number_after("Free frames at shutdown: "), 388063);
}

#[test]
fn debian_6_12_dom0_maps_grants_in_the_extended_regions() {
    let out = boot_ours(machine(DebianKernel::Trixie6_12, ""));
    out.expect_line("gnttest: the gntdev page and the Xen scratch ranges lie in extended regions");
    let audit = out.expect_line_after("gnttest: 1000 rounds of map, mmap, touch, munmap, unmap", SHUTDOWN_AUDIT);
    assert!(audit.contains("granted 0 KiB"), "none of gnttest's grant mappings is left: {audit}");
}

#[test]
fn without_extended_regions_debian_6_12_balloons() {
    let out = boot_ours(Machine {
        append: Some("dom0_mem=512M ext-regions=no".into()),
        ..machine(DebianKernel::Trixie6_12, "--ballooned")
    });
    out.expect_line("No extended regions are found");
    out.expect_line("d0: stage 2: RAM in 4 KiB pages (stage2-blocks=no), ");
    out.expect_line("gnttest: no Xen scratch in /proc/iomem");
}

/// The other tests map Dom0's RAM in 4 KiB stage-2 pages, the fastest on
/// QEMU (`Machine::tuned_for_qemu`); this one in blocks, the hypervisor's
/// default for hardware, with no extended regions: Linux balloons out pages
/// inside the blocks, which the hypervisor splits.
#[test]
fn with_its_ram_in_stage2_blocks_debian_6_12_balloons() {
    let out = boot_ours(Machine {
        append: Some("dom0_mem=512M ext-regions=no stage2-blocks=yes".into()),
        ..machine(DebianKernel::Trixie6_12, "--ballooned")
    });
    out.expect_no_line("d0: stage 2: RAM in 4 KiB pages");
    out.expect_line("gnttest: no Xen scratch in /proc/iomem");
}

#[test]
fn debian_6_1_dom0_balloons() {
    let out = boot_ours(machine(DebianKernel::Bookworm6_1, "--ballooned"));
    out.expect_line("gnttest: no Xen scratch in /proc/iomem");
}

#[test]
fn debian_6_12_dom0_on_four_cpus() {
    let out = boot_ours(Machine { smp: 4, ..machine(DebianKernel::Trixie6_12, "") });
    out.expect_line("gnttest: the gntdev page and the Xen scratch ranges lie in extended regions");
}

#[test]
fn debian_6_12_dom0_on_cpu_max() {
    let out = boot_ours(Machine { cpu: "max".into(), ..machine(DebianKernel::Trixie6_12, "") });
    out.expect_line("gnttest: the gntdev page and the Xen scratch ranges lie in extended regions");
}

/// A person at the console: a line typed on the serial port reaches Dom0's
/// `hvc0` (UART interrupt, the input ring, VIRQ_CONSOLE, CONSOLEIO_read).
#[test]
fn typed_input_reaches_the_dom0_shell() {
    let kernel = debian_kernel(DebianKernel::Trixie6_12);
    let body = "echo \"init: type a line\"\nread -r line\necho \"init: read [$line]\"\npoweroff -f\n";
    let initrd = dom0_initramfs(kernel, &init_script(kernel, body));
    let mut machine = Machine::with_linux_dom0(&kernel.image, &initrd, DOM0_BOOTARGS).tuned_for_qemu();
    machine.typed = vec![("init: type a line".into(), "hello from the console\r".into())];
    let out = without_dom0_prefix(machine.run_until(KERNEL_PANIC));
    out.expect_line("init: read [hello from the console]");
    out.expect_exit(0);
}

/// `/init`'s lines for Dom0 on GICv2: the GIC node as Dom0 sees it (its
/// `reg`, its properties and children), after the report and gnttest, then
/// a line typed on the serial port read by the shell (UART interrupt, the
/// input ring, VIRQ_CONSOLE), then power off.
fn gicv2_machine(smp: u32) -> Machine {
    let kernel = debian_kernel(DebianKernel::Trixie6_12);
    let gic = r#"gic=$(dirname "$(ls -d /proc/device-tree/*/interrupt-controller | head -n 1)")
echo "init: gic node ${gic##*/}"
echo "init: gic reg $(od -An -v -tx1 "$gic/reg" | tr -d ' \n')"
echo "init: gic has $(ls "$gic" | sort | tr '\n' ' ')"
"#;
    let report = report_then_power_off("").replace(
        "poweroff -f\n",
        &format!("{gic}echo \"init: type a line\"\nread -r line\necho \"init: read [$line]\"\npoweroff -f\n"),
    );
    let initrd = dom0_initramfs(kernel, &init_script(kernel, &report));
    let mut machine =
        Machine { gic_version: 2, smp, ..Machine::with_linux_dom0(&kernel.image, &initrd, DOM0_BOOTARGS) };
    machine.typed = vec![("init: type a line".into(), "hello from the console\r".into())];
    machine
}

/// Debian's 6.12 as Dom0 on GICv2 (`gic-version=2`) with `smp` CPUs, in one
/// boot: the report and gnttest inside the extended regions, typed input.
fn boot_ours_on_gicv2(smp: u32) -> Outcome {
    let out = boot_ours(gicv2_machine(smp));
    out.expect_line("GICv2: Dom0 drives the distributor through a filter");
    out.expect_line(&format!("smp: Brought up 1 node, {smp} CPU"));
    out.expect_line("gnttest: the gntdev page and the Xen scratch ranges lie in extended regions");
    out.expect_line("init: read [hello from the console]");
    out.expect_no_line("outside Dom0's memory and devices");
    out
}

#[test]
fn debian_6_12_dom0_on_gicv2_with_one_cpu() {
    boot_ours_on_gicv2(1);
}

#[test]
fn debian_6_12_dom0_on_gicv2_with_four_cpus() {
    boot_ours_on_gicv2(4);
}

/// GICv2 under Xen 4.17 and ours, 2 CPUs each: gnttest passes in the
/// extended regions under both, and Dom0 sees the same GIC node: GICD and
/// GICC in `reg` (no GICH or GICV), no maintenance interrupt, the GICv2m
/// MSI frame still there.
#[test]
fn xen_4_17_and_ours_give_a_gicv2_dom0_the_same_gic() {
    let xen = gicv2_machine(2).run_image(&image::xen_4_17(), Some(KERNEL_PANIC));
    assert_dom0_report(&xen, xen_grant_range(&xen), &xen.ranges("(XEN) d0: extended region "));
    xen.expect_line("init: read [hello from the console]");
    let ours = boot_ours_on_gicv2(2);
    let gic_reg = |out: &Outcome| out.expect_line("init: gic reg ").to_string();
    println!("Xen 4.17: {}\n          {}", gic_reg(&xen), xen.expect_line("init: gic has "));
    println!("ours:     {}\n          {}", gic_reg(&ours), ours.expect_line("init: gic has "));
    assert_eq!(gic_reg(&ours), gic_reg(&xen), "the GIC's reg");
    let gicd_and_gicc = "0000000008000000000000000001000000000000080100000000000000010000";
    assert!(gic_reg(&ours).ends_with(gicd_and_gicc), "GICD and GICC only: {}", gic_reg(&ours));
    for out in [&xen, &ours] {
        let properties = out.expect_line("init: gic has ");
        assert!(!properties.contains(" interrupts "), "no maintenance interrupt: {properties}");
        assert!(properties.contains(" v2m"), "the MSI frame: {properties}");
        out.expect_line("GICv2m: range[mem 0x08020000-0x08020fff]");
    }
}

/// Booted as a board boots: Debian's U-Boot as firmware runs one
/// ImageBuilder-shaped script from a virtio disk (`qemu_harness::uboot`)
/// that loads the hypervisor, Debian's 6.12 and the initramfs, writes
/// Xen's module nodes (legacy compatibles) and command lines into its tree
/// and `booti`s the hypervisor. The same disk, with Xen 4.17 in place of
/// ours, boots Xen: both Dom0s pass gnttest.
#[test]
fn u_boot_boots_ours_and_xen_4_17_from_the_same_script() {
    u_boot_boots_ours_and_xen_4_17(3);
}

/// The same on a GICv2 host, as on the boards people run Xen on.
#[test]
fn u_boot_boots_ours_and_xen_4_17_on_gic_v2() {
    u_boot_boots_ours_and_xen_4_17(2);
}

fn u_boot_boots_ours_and_xen_4_17(gic_version: u32) {
    let on_u_boot = || Machine { boot: Boot::UBoot, gic_version, ..machine(DebianKernel::Trixie6_12, "") };
    let ours = boot_ours(on_u_boot());
    ours.expect_line("U-Boot 2023.01");
    ours.expect_line(&format!("Image at {:#010x}->", uboot::HYPERVISOR_ADDR));
    ours.expect_line(&format!("GICv{gic_version}: Dom0 drives the distributor"));
    ours.expect_line("Module: ramdisk 0x49000000->");
    ours.expect_line("d0: vCPU 1 starting on CPU 0x1");
    ours.expect_line("gnttest: the gntdev page and the Xen scratch ranges lie in extended regions");
    let xen = on_u_boot().run_image(&image::xen_4_17(), Some(KERNEL_PANIC));
    xen.expect_line("U-Boot 2023.01");
    assert_dom0_report(&xen, xen_grant_range(&xen), &xen.ranges("(XEN) d0: extended region "));
}
