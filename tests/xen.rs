//! The boot protocol is Xen's: the same QEMU machine, device tree and
//! modules boot Debian's Xen 4.17 and this hypervisor, and the same Dom0
//! (the probe) passes its checks under both. Ours must give Dom0 the same
//! RAM and grant region and leave Linux at least as much usable
//! extended-region space (whole 128 MiB sections).

use qemu_harness::{Machine, Outcome, image};

fn machine() -> Machine {
    Machine::with_probe_dom0("cortex-a57", "2G", "dom0_mem=512M")
}

type Ranges = Vec<(u64, u64)>;

/// The probe's view: `/hypervisor` reg entries and its RAM.
fn dom0_view(out: &Outcome) -> (Ranges, Ranges) {
    out.expect_line("probe: 0 failures");
    (out.ranges("probe: hypervisor reg["), out.ranges("probe: memory "))
}

fn usable(regions: &[(u64, u64)]) -> u64 {
    const SECTION: u64 = 128 << 20;
    regions.iter().map(|&(s, e)| (e & !(SECTION - 1)).saturating_sub(s.next_multiple_of(SECTION))).sum()
}

#[test]
fn same_inputs_boot_xen_and_us_and_we_leave_linux_as_much_room() {
    let xen = machine().run_image(&image::xen_4_17(), None);
    let ours = machine().run();
    xen.expect_exit(0);
    ours.expect_exit(0);
    let (xen_reg, xen_ram) = dom0_view(&xen);
    let (our_reg, our_ram) = dom0_view(&ours);
    println!("Xen 4.17: RAM {xen_ram:x?}, reg {xen_reg:x?}, usable {} MiB", usable(&xen_reg[1..]) >> 20);
    println!("ours:     RAM {our_ram:x?}, reg {our_reg:x?}, usable {} MiB", usable(&our_reg[1..]) >> 20);
    assert_eq!(our_ram, xen_ram, "Dom0 RAM");
    assert_eq!(our_reg[0], xen_reg[0], "grant-table region");
    assert!(usable(&our_reg[1..]) >= usable(&xen_reg[1..]), "usable extended-region space");
}
