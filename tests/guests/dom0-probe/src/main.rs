//! A bare-metal Dom0 that checks what the hypervisor handed it: its device
//! tree (the `/hypervisor` node, the extended regions, `/chosen`, PSCI),
//! that every page of its RAM is really its own, and that the extended
//! regions and the hypervisor's memory answer with an abort. Each check
//! prints `probe: ok: ...` or `probe: FAIL: ...` through semihosting; the
//! exit code is 0 only if all passed.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("dom0-probe is a bare-metal guest; the QEMU tests build it for the board.");
}

#[cfg(target_os = "none")]
mod probe {
    mod abi;
    mod hostile;
    mod hypercalls;
    mod interrupts;
    mod isolation;

    use core::arch::{asm, global_asm};
    use core::fmt::{self, Write};
    use core::ptr::{read_volatile, write_volatile};
    use dtoolkit::fdt::Fdt;
    use dtoolkit::{Node, Property};

    global_asm!(concat!(
        include_str!("../../common/image.S"),
        r#"
entry:
    mov     x19, x0
    adr     x1, _start
    ldr     x2, =_start
    cmp     x1, x2
    b.ne    wrong_place
    zero_bss
    ldr     x1, =__stack_top
    mov     sp, x1
    ldr     x1, =vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    bl      probe_main
3:  b       3b

/* Loaded somewhere else: no Rust can run; say so and exit 5. */
wrong_place:
    mov     x0, #0x04
    adr     x1, wrong_place_text
    hlt     #0xf000
    mov     x0, #0x18
    adr     x1, wrong_place_block
    hlt     #0xf000
    b       wrong_place
.balign 8
wrong_place_block:
    .quad   0x20026, 5
wrong_place_text:
    .asciz  "probe: FAIL: loaded away from 0x60000000, where it is linked (Dom0 bank 0 with dom0_mem=512M)\n"

/* Synchronous exceptions at EL1 record ESR and skip the
   instruction; an instruction abort (a branch into memory that is not
   ours) returns to the branch's caller instead. Anything else ends the
   run with exit code 7. */
vector_table sync_handler, unexpected

sync_handler:
    stp     x9, x10, [sp, #-16]!
    mrs     x9, esr_el1
    ldr     x10, =LAST_ESR
    str     x9, [x10]
    ubfx    x9, x9, #26, #6
    cmp     x9, #0x21
    b.eq    1f
    mrs     x9, elr_el1
    add     x9, x9, #4
    msr     elr_el1, x9
    ldp     x9, x10, [sp], #16
    eret
1:  msr     elr_el1, x30
    ldp     x9, x10, [sp], #16
    eret

/* A second vCPU started by the hostile PSCI checks (x0: the context id,
   the address of a word): waits until the word is non-zero, then turns
   itself off with PSCI CPU_OFF. Its MMU is off, so it reads memory. */
.global secondary_park
secondary_park:
    ldr     w1, [x0]
    cbz     w1, secondary_park
    movz    x0, #0x0002
    movk    x0, #0x8400, lsl #16
    hvc     #0
    b       .

"#
    ));

    #[unsafe(no_mangle)]
    static mut LAST_ESR: u64 = 0;

    #[path = "../../../common/faults.rs"]
    mod faults;
    use faults::{faults, fetch_faults, read_faults, write_faults};

    unsafe extern "C" {
        static __image_start: u8;
        static __stack_top: u8;
    }

    fn semihosting(op: u64, arg: u64) {
        // SAFETY: QEMU's semihosting reads only what `arg` points at.
        unsafe { asm!("hlt #0xf000", inout("x0") op => _, in("x1") arg, options(nostack)) };
    }

    fn exit(code: u64) -> ! {
        let block = [0x20026u64, code];
        semihosting(0x18, block.as_ptr() as u64);
        loop {
            core::hint::spin_loop();
        }
    }

    /// Semihosting text output, a line at a time.
    struct Console {
        buf: [u8; 256],
        len: usize,
    }

    impl Console {
        fn flush(&mut self) {
            self.buf[self.len] = 0;
            semihosting(0x04, self.buf.as_ptr() as u64);
            self.len = 0;
        }
    }

    impl Write for Console {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for &b in s.as_bytes() {
                if self.len == self.buf.len() - 1 {
                    self.flush();
                }
                self.buf[self.len] = b;
                self.len += 1;
                if b == b'\n' {
                    self.flush();
                }
            }
            Ok(())
        }
    }

    struct Report {
        out: Console,
        failures: u32,
    }

    impl Report {
        fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) {
            let verdict = if ok { "ok" } else { "FAIL" };
            let _ = writeln!(self.out, "probe: {verdict}: {what}");
            if !ok {
                self.failures += 1;
            }
        }
        fn say(&mut self, what: fmt::Arguments<'_>) {
            let _ = writeln!(self.out, "probe: {what}");
        }
    }

    fn word(address: u64) -> u64 {
        // SAFETY: callers read pages of the probe's, or mapped grant pages.
        unsafe { read_volatile(address as *const u64) }
    }

    fn set_word(address: u64, value: u64) {
        // SAFETY: as above.
        unsafe { write_volatile(address as *mut u64, value) }
    }

    /// A property's value, borrowed from the blob.
    fn value<'a>(p: dtoolkit::fdt::FdtProperty<'a>) -> &'a [u8] {
        p.value_as::<&'a [u8]>().unwrap_or(&[])
    }

    /// A Xen hypercall with two arguments.
    fn hypercall(number: u64, a0: u64, a1: u64) -> i64 {
        abi::hypercall(number, [a0, a1, 0, 0, 0])
    }

    fn be(value: &[u8], cells: usize) -> Option<u64> {
        let bytes = value.get(..cells * 4)?;
        Some(bytes.chunks(4).fold(0u64, |acc, c| (acc << 32) | u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))))
    }

    /// `(start, end)` pairs of a `reg` with the root's cells.
    fn regs(value: &[u8], ac: usize, sc: usize) -> impl Iterator<Item = (u64, u64)> + '_ {
        value.chunks_exact((ac + sc) * 4).filter_map(move |e| {
            let start = be(e, ac)?;
            let size = be(&e[ac * 4..], sc)?;
            Some((start, start.checked_add(size)?))
        })
    }

    const MAX_BANKS: usize = 16;
    const MAX_REGIONS: usize = 129;

    #[unsafe(no_mangle)]
    extern "C" fn probe_main(dtb: u64) -> ! {
        let mut r = Report { out: Console { buf: [0; 256], len: 0 }, failures: 0 };
        r.say(format_args!("entered at EL1 with x0 = {dtb:#x}"));
        // SAFETY: x0 points at the tree per the boot protocol; the header's
        // size is read first and bounded.
        let size = unsafe { u32::from_be(read_volatile((dtb + 4) as *const u32)) } as usize;
        if size > 2 << 20 {
            r.check(false, format_args!("device tree size {size} is sane"));
            exit(1);
        }
        // SAFETY: as above.
        let blob = unsafe { core::slice::from_raw_parts(dtb as *const u8, size) };
        let fdt = match Fdt::new(blob) {
            Ok(f) => f,
            Err(e) => {
                r.check(false, format_args!("device tree is valid: {e}"));
                exit(1);
            }
        };
        let root = fdt.root();
        let cells = |n: &str, d: usize| root.property(n).and_then(|p| be(p.value(), 1)).map_or(d, |v| v as usize);
        let (ac, sc) = (cells("#address-cells", 2), cells("#size-cells", 1));

        // RAM banks.
        let mut banks = [(0u64, 0u64); MAX_BANKS];
        let mut nbanks = 0;
        for node in root.children().filter(|n| n.name().starts_with("memory")) {
            if let Some(reg) = node.property("reg") {
                for bank in regs(reg.value(), ac, sc) {
                    if nbanks < MAX_BANKS {
                        banks[nbanks] = bank;
                        nbanks += 1;
                    }
                }
            }
        }
        let banks = &banks[..nbanks];
        for &(s, e) in banks {
            r.say(format_args!("memory {s:#x}->{e:#x}"));
        }
        let in_ram = |a: u64, b: u64| banks.iter().any(|&(s, e)| s <= a && b <= e);
        r.check(!banks.is_empty(), format_args!("{} RAM banks", banks.len()));
        r.check(in_ram(dtb, dtb + size as u64), format_args!("the device tree lies in Dom0 RAM (1:1)"));

        // /hypervisor.
        let mut reg_entries = [(0u64, 0u64); MAX_REGIONS];
        let mut nreg = 0;
        match root.child("hypervisor") {
            None => r.check(false, format_args!("/hypervisor exists")),
            Some(hyp) => {
                let compat = hyp.property("compatible").map(value).unwrap_or(&[]);
                let mut strings = compat.split(|&b| b == 0).filter(|s| !s.is_empty());
                let first_ok = strings.clone().next().is_some_and(|s| s.starts_with(b"xen,xen-"));
                let has_xen = strings.any(|s| s == b"xen,xen");
                r.check(first_ok && has_xen, format_args!("/hypervisor compatible is \"xen,xen-*\", \"xen,xen\""));
                let irq = hyp.property("interrupts").map(value).unwrap_or(&[]);
                r.check(
                    irq.len() == 12 && be(irq, 1) == Some(1),
                    format_args!("/hypervisor has one PPI in interrupts"),
                );
                r.check(
                    hyp.property("interrupt-parent").is_some(),
                    format_args!("/hypervisor has an interrupt-parent"),
                );
                if let Some(reg) = hyp.property("reg") {
                    for entry in regs(reg.value(), ac, sc) {
                        if nreg < MAX_REGIONS {
                            reg_entries[nreg] = entry;
                            nreg += 1;
                        }
                    }
                }
                r.check(nreg >= 1, format_args!("/hypervisor reg has the grant-table region"));
            }
        }
        let reg_entries = &reg_entries[..nreg];

        let bootargs = root.child("chosen").and_then(|c| c.property("bootargs")).map(value).unwrap_or(&[]);
        let asked = |mode: &[u8]| bootargs.windows(mode.len()).any(|w| w == mode);
        let gic = root
            .children()
            .find(|n| {
                n.property("compatible").map(value).is_some_and(|c| c.split(|&b| b == 0).any(|s| s == b"arm,gic-v3"))
            })
            .and_then(|g| {
                let mut reg = regs(value(g.property("reg")?), ac, sc);
                Some((reg.next()?.0, reg.next()?))
            });

        let gicv2 = root
            .children()
            .find(|n| {
                n.property("compatible")
                    .map(value)
                    .is_some_and(|c| c.split(|&b| b == 0).any(|s| s == b"arm,cortex-a15-gic" || s == b"arm,gic-400"))
            })
            .and_then(|g| {
                let mut reg = regs(value(g.property("reg")?), ac, sc);
                let (gicd, gicc) = (reg.next()?.0, reg.next()?.0);
                Some((gicd, gicc, 2 + reg.count()))
            });

        // The vCPUs' MPIDRs from `/cpus`, unused slots `u64::MAX`.
        let mut mpidrs = [u64::MAX; 8];
        let cpus = root.child("cpus").map(|c| c.children().filter(|n| n.name().starts_with("cpu@")));
        for (slot, cpu) in mpidrs.iter_mut().zip(cpus.into_iter().flatten()) {
            *slot = cpu.property("reg").and_then(|p| be(value(p), p.value().len() / 4)).unwrap_or(u64::MAX);
        }
        // Before the long RAM check, so that it overlaps the DomU's checks.
        if asked(b"probe=attack-domu") {
            match gic {
                Some((gicd, gicr)) => isolation::attack(&mut r, gicd, gicr, &mpidrs),
                None => r.check(false, format_args!("attack-domu: a GICv3")),
            }
        }

        for (i, &(s, e)) in reg_entries.iter().enumerate() {
            r.say(format_args!("hypervisor reg[{i}] {s:#x}->{e:#x}"));
        }
        let regions = reg_entries.get(1..).unwrap_or(&[]);
        let overlaps = |a: (u64, u64), b: (u64, u64)| a.0 < b.1 && b.0 < a.1;
        r.check(
            regions.iter().all(|&reg| !banks.iter().any(|&b| overlaps(reg, b))),
            format_args!("{} extended regions, none overlapping Dom0 RAM", regions.len()),
        );
        r.check(
            regions.windows(2).all(|w| w[0].1 <= w[1].0)
                && regions.iter().all(|&(s, e)| s % (2 << 20) == 0 && e % (2 << 20) == 0 && e - s >= 64 << 20),
            format_args!("extended regions ascending, 2 MiB aligned, at least 64 MiB"),
        );
        if let Some(&(grant, _)) = reg_entries.first() {
            r.check(!in_ram(grant, grant + 1), format_args!("the grant-table region is not Dom0 RAM"));
        }

        // /chosen and /psci.
        if let Some(chosen) = root.child("chosen") {
            let start = chosen.property("linux,initrd-start").and_then(|p| be(value(p), 2));
            let end = chosen.property("linux,initrd-end").and_then(|p| be(value(p), 2));
            if let (Some(start), Some(end)) = (start, end) {
                r.check(
                    start < end && in_ram(start, end),
                    format_args!("initrd {start:#x}->{end:#x} lies in Dom0 RAM"),
                );
                let mut head = [0u8; 8];
                for (i, b) in head.iter_mut().enumerate().take((end - start).min(8) as usize) {
                    // SAFETY: inside Dom0 RAM, checked above.
                    *b = unsafe { read_volatile((start + i as u64) as *const u8) };
                }
                let text = core::str::from_utf8(&head).unwrap_or("(not text)");
                r.say(format_args!("initrd starts with {text:?}"));
            }
            r.check(chosen.children().next().is_none(), format_args!("/chosen has no module nodes"));
            r.check(
                chosen.properties().all(|p| !p.name().starts_with("xen,")),
                format_args!("/chosen has no xen,* properties"),
            );
        }
        let psci = root.children().find(|n| n.name() == "psci").and_then(|n| n.property("method")).map(value);
        r.check(psci == Some(b"hvc\0"), format_args!("PSCI is called through HVC"));

        // Every page of RAM is Dom0's: write, then read back, skipping the
        // probe itself and the tree.
        let (image_start, image_end) = (&raw const __image_start as u64, &raw const __stack_top as u64);
        let initrd = root.child("chosen").and_then(|c| {
            let start = be(value(c.property("linux,initrd-start")?), 2)?;
            let end = be(value(c.property("linux,initrd-end")?), 2)?;
            Some(start & !0xfff..end)
        });
        let skip = |page: u64| {
            (image_start..image_end).contains(&page)
                || (dtb & !0xfff..dtb + size as u64).contains(&page)
                || initrd.as_ref().is_some_and(|r| r.contains(&page))
        };
        let mut pages = 0u64;
        for &(s, e) in banks {
            let mut page = s;
            while page < e {
                if !skip(page) {
                    // SAFETY: the page is Dom0 RAM per its own tree, not the
                    // probe's image, stack or tree.
                    unsafe { write_volatile(page as *mut u64, page ^ 0x5a5a_5a5a_5a5a_5a5a) };
                    pages += 1;
                }
                page += 4096;
            }
        }
        let mut bad = 0u64;
        for &(s, e) in banks {
            let mut page = s;
            while page < e {
                // SAFETY: as above.
                if !skip(page) && unsafe { read_volatile(page as *const u64) } != page ^ 0x5a5a_5a5a_5a5a_5a5a {
                    bad += 1;
                }
                page += 4096;
            }
        }
        r.check(bad == 0, format_args!("wrote and read back {pages} pages of RAM ({bad} wrong)"));

        // What is not Dom0's aborts.
        if let Some(&(grant, _)) = reg_entries.first() {
            let esr = read_faults(grant);
            r.check(
                esr.is_some(),
                format_args!("a read of the grant region {grant:#x} (the hypervisor's image) aborts"),
            );
        }
        if let Some(&(region, _)) = regions.first() {
            let esr = read_faults(region);
            r.check(esr.is_some(), format_args!("a read of extended region {region:#x} aborts"));
        }

        // Hypercalls: xen_version, and errors for bad pointers and numbers.
        const XEN_VERSION: u64 = 17;
        let version = hypercall(XEN_VERSION, 0, 0);
        r.check(version == 0x4_0011, format_args!("xen_version(XENVER_version) = {version:#x} (4.17)"));
        let mut info = [0u32; 2];
        let rc = hypercall(XEN_VERSION, 6, info.as_mut_ptr() as u64);
        let bits = info[1];
        r.check(
            rc == 0 && bits & (1 << 11) != 0 && bits & (1 << 17) != 0 && bits & (1 << 2) != 0 && bits & (1 << 16) == 0,
            format_args!("XENVER_get_features: dom0, direct_mapped, auto_translated ({bits:#x})"),
        );
        let mut extra = [0u8; 16];
        let rc = hypercall(XEN_VERSION, 1, extra.as_mut_ptr() as u64);
        r.check(rc == 0 && extra[0] == b'.', format_args!("XENVER_extraversion is written into our memory"));
        if let Some(&(grant, _)) = reg_entries.first() {
            let rc = hypercall(XEN_VERSION, 1, grant);
            r.check(rc == -14, format_args!("a buffer outside Dom0 RAM gets -EFAULT ({rc})"));
        }
        let rc = hypercall(XEN_VERSION, 1, u64::MAX - 4);
        r.check(rc == -14, format_args!("a wrapping buffer gets -EFAULT ({rc})"));
        let rc = hypercall(9999, 0, 0);
        r.check(rc == -38, format_args!("an unknown hypercall gets -ENOSYS ({rc})"));

        // Interrupts, when asked for: the burst needs a hypervisor that
        // forwards pending SPIs set at the distributor, which Xen does not.
        if asked(b"probe=interrupts") {
            match (gic, gicv2) {
                (Some((gicd, redistributors)), _) => interrupts::check(&mut r, gicd, redistributors),
                (None, Some((gicd, gicc, entries))) => interrupts::check_v2(&mut r, gicd, gicc, entries),
                _ => r.check(false, format_args!("a GICv3 with a distributor and redistributors, or a GICv2")),
            }
        }

        if asked(b"probe=hostile") {
            // Dom0 as an adversary, instead of the calls Linux makes.
            let device = root
                .children()
                .find(|n| n.name().starts_with("virtio_mmio"))
                .and_then(|n| regs(value(n.property("reg")?), ac, sc).next());
            match (reg_entries.first(), gic, device) {
                (Some(&grant_region), Some((gicd, gicr)), Some((device, _))) => {
                    let board = hostile::Board { ram: banks, grant_region, regions, gicd, gicr, device, mpidrs };
                    hostile::run(&mut r, &board);
                }
                _ => r.check(false, format_args!("hostile: the tree has a grant region, a GICv3, a virtio device")),
            }
        } else {
            // The rest of the hypercalls Linux makes as Dom0.
            let places = hypercalls::Places {
                grant_region: reg_entries.first().map(|&(start, _)| start),
                unmapped: regions.first().map(|&(start, _)| start),
                cpus: root.child("cpus").map_or(0, |c| c.children().filter(|n| n.name().starts_with("cpu@")).count()),
                wait_for_domain_end: asked(b"probe=wait-domain-end"),
            };
            hypercalls::check(&mut r, &places);
        }

        let failures = r.failures;
        r.say(format_args!("{failures} failures"));
        if failures == 0 {
            // As Linux ends: the hypervisor stops the machine, exit code 0.
            hypercalls::power_off();
        }
        exit(1)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let mut out = Console { buf: [0; 256], len: 0 };
        let _ = writeln!(out, "probe: PANIC: {}", info.message());
        exit(9)
    }
}
