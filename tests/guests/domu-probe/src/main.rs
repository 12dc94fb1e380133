//! A bare-metal DomU that checks what the hypervisor gave it: its device
//! tree (memory at Xen's GUEST_RAM0_BASE of the size asked, one CPU, no
//! host device, `/hypervisor` only when enhanced), every cache line of its
//! RAM written and read back, aborts outside it, and a hypercall. It has
//! no semihosting (that would end the whole machine): each result is a
//! `domu-probe: ok/FAIL: ...` line through HYPERVISOR_console_io, which
//! the hypervisor prefixes `(d1) `; then it shuts itself down.
//!
//! Its command line says what to expect: `expect-mem=<bytes>` and
//! `expect-enhanced=<0|1>`, and `expect-ext=` the extended regions
//! (`ext_regions.rs`); `check-interrupts=1` adds the interrupt checks
//! (`interrupts.rs`), after `wait-ms=<n>` if given; `check-vpl011=1` the
//! emulated UART's (`vpl011.rs`: its node, output through it, its
//! interrupts, a line typed on the console). With `mode=serve` it serves Dom0's test of the
//! calls between domains instead, after the memory check (`serve.rs`);
//! with `ending=spinning-vcpu` it ends beside a vCPU spinning masked
//! (`probe/ending.rs`).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("domu-probe is a bare-metal guest; the QEMU tests build it for the board.");
}

#[cfg(target_os = "none")]
mod ext_regions;
#[cfg(target_os = "none")]
mod interrupts;
#[cfg(target_os = "none")]
mod serve;
#[cfg(target_os = "none")]
mod vpl011;

#[cfg(target_os = "none")]
mod probe {
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
    zero_bss
    ldr     x1, =__stack_top
    mov     sp, x1
    ldr     x1, =vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    adr     x1, _start
    bl      probe_main
3:  b       3b

/* A synchronous exception at EL1 records ESR and skips the instruction. */
vector_table sync_handler, unexpected

/* An instruction abort (EC 0x21) returns to the caller through x30:
   fetch_faults branched there with BLR. */
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
"#
    ));

    mod ending;
    pub(crate) mod hostile;

    #[unsafe(no_mangle)]
    static mut LAST_ESR: u64 = 0;

    #[path = "../../../common/faults.rs"]
    mod faults;
    use faults::{faults, fetch_faults, read_faults, write_faults};

    unsafe extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }

    const XEN_VERSION: u64 = 17;
    const CONSOLE_IO: u64 = 18;
    const SCHED_OP: u64 = 29;
    const CONSOLEIO_WRITE: u64 = 0;
    const CONSOLEIO_READ: u64 = 1;
    const SCHEDOP_SHUTDOWN: u64 = 2;
    const XENVER_GET_FEATURES: u64 = 6;
    /// Xen's guest layout (`public/arch-arm.h`).
    const GUEST_RAM0_BASE: u64 = 0x4000_0000;
    const GUEST_GNTTAB: (u64, u64) = (0x3800_0000, 0x3900_0000);

    /// A Xen hypercall: HVC #0xEA1, number in x16, arguments x0..x4.
    pub(crate) fn hypercall(number: u64, a: [u64; 3]) -> i64 {
        let result: u64;
        // SAFETY: the hypervisor writes only memory we point it at, and x0..x4.
        unsafe {
            asm!("hvc #0xea1", inout("x0") a[0] => result, inout("x1") a[1] => _, inout("x2") a[2] => _,
                 out("x3") _, out("x4") _, in("x16") number, options(nostack))
        };
        result as i64
    }

    /// Lines through CONSOLEIO_write (the MMU is off: addresses are IPAs).
    struct Console {
        buf: [u8; 200],
        len: usize,
    }

    impl Console {
        fn flush(&mut self) {
            hypercall(CONSOLE_IO, [CONSOLEIO_WRITE, self.len as u64, self.buf.as_ptr() as u64]);
            self.len = 0;
        }
    }

    impl Write for Console {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for &b in s.as_bytes() {
                if self.len == self.buf.len() {
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

    pub(crate) struct Report {
        out: Console,
        pub(crate) checks: u32,
        pub(crate) failures: u32,
    }

    impl Report {
        pub(crate) fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) {
            let verdict = if ok { "ok" } else { "FAIL" };
            let _ = writeln!(self.out, "domu-probe: {verdict}: {what}");
            self.checks += 1;
            self.failures += u32::from(!ok);
        }
        pub(crate) fn say(&mut self, what: fmt::Arguments<'_>) {
            let _ = writeln!(self.out, "domu-probe: {what}");
        }
    }

    /// An SMCCC call through HVC #0 (PSCI): function in w0, arguments x1..x3.
    fn psci(function: u64, a: [u64; 3]) -> i64 {
        let result: u64;
        // SAFETY: the firmware interface touches no memory of ours.
        unsafe {
            asm!("hvc #0", inout("x0") function => result, inout("x1") a[0] => _, inout("x2") a[1] => _,
                 inout("x3") a[2] => _, options(nostack))
        };
        result as i32 as i64
    }

    fn be(value: &[u8], cells: usize) -> Option<u64> {
        let bytes = value.get(..cells * 4)?;
        Some(bytes.chunks(4).fold(0u64, |acc, c| (acc << 32) | u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))))
    }

    /// A number from `name=<value>` on the command line (decimal or 0x hex).
    fn arg(bootargs: &str, name: &str) -> Option<u64> {
        let value = bootargs.split(' ').find_map(|t| t.strip_prefix(name)?.strip_prefix('='))?;
        match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        }
    }

    pub(crate) fn shutdown(r: &mut Report) -> ! {
        let reason = 0u32; // SHUTDOWN_poweroff
        hypercall(SCHED_OP, [SCHEDOP_SHUTDOWN, &reason as *const u32 as u64, 0]);
        r.check(false, format_args!("SCHEDOP_shutdown does not return"));
        loop {
            core::hint::spin_loop();
        }
    }

    #[unsafe(no_mangle)]
    extern "C" fn probe_main(dtb: u64, start: u64) -> ! {
        let mut r = Report { out: Console { buf: [0; 200], len: 0 }, checks: 0, failures: 0 };
        r.say(format_args!("entered at EL1 at {start:#x} with x0 = {dtb:#x}"));
        r.check(start == GUEST_RAM0_BASE, format_args!("entered at GUEST_RAM0_BASE, where it is linked"));
        // SAFETY: x0 points at the tree per the boot protocol; its size is read first and bounded.
        let size = unsafe { u32::from_be(read_volatile((dtb + 4) as *const u32)) } as u64;
        if size > 64 << 10 {
            r.check(false, format_args!("device tree size {size} is sane"));
            shutdown(&mut r);
        }
        // SAFETY: as above.
        let blob = unsafe { core::slice::from_raw_parts(dtb as *const u8, size as usize) };
        let Ok(fdt) = Fdt::new(blob) else {
            r.check(false, format_args!("the device tree is valid"));
            shutdown(&mut r);
        };
        let root = fdt.root();
        let bootargs = root
            .child("chosen")
            .and_then(|c| c.property("bootargs"))
            .and_then(|p| p.value_as::<&str>().ok())
            .unwrap_or("");
        r.say(format_args!("bootargs \"{bootargs}\""));
        let expect_mem = arg(bootargs, "expect-mem").unwrap_or(0);
        let expect_enhanced = arg(bootargs, "expect-enhanced") == Some(1);

        // Memory: one bank at GUEST_RAM0_BASE of the size asked (cells 2/2, Xen's).
        let mut banks = root
            .children()
            .filter(|n| n.name().starts_with("memory"))
            .filter_map(|n| n.property("reg"))
            .map(|p| (be(p.value(), 2), be(&p.value()[8..], 2), p.value().len()));
        let bank = banks.next();
        let (ram_start, ram_size) = match bank {
            Some((Some(s), Some(z), 16)) => (s, z),
            _ => (0, 0),
        };
        r.check(
            ram_start == GUEST_RAM0_BASE && ram_size == expect_mem && banks.next().is_none(),
            format_args!("memory {ram_start:#x}+{ram_size:#x}: one bank at GUEST_RAM0_BASE of {expect_mem:#x} bytes"),
        );
        let ram_end = ram_start + ram_size;
        if bootargs.split(' ').any(|t| t == "ending=spinning-vcpu") {
            ending::run(&mut r);
        }
        if bootargs.split(' ').any(|t| t == "mode=serve") {
            crate::serve::serve(&mut r, (ram_start, ram_end));
        }

        // CPUs: one, reg 0, PSCI over HVC.
        let cpus: u32 =
            root.child("cpus").map_or(0, |c| c.children().filter(|n| n.name().starts_with("cpu@")).count() as u32);
        let cpu0 = root
            .child("cpus")
            .and_then(|c| c.child("cpu@0"))
            .and_then(|c| c.property("reg"))
            .and_then(|p| be(p.value(), 1));
        r.check(cpus == 1 && cpu0 == Some(0), format_args!("{cpus} CPU, cpu@0 with reg 0"));
        let method = root.child("psci").and_then(|p| p.property("method")).and_then(|p| p.value_as::<&str>().ok());
        r.check(method == Some("hvc"), format_args!("PSCI through {method:?}"));

        // Nothing of the host's: only the nodes of Xen's DomU tree.
        let allowed = ["chosen", "psci", "cpus", "memory", "interrupt-controller", "timer", "hypervisor", "sbsa-uart"];
        let foreign = root.children().find(|n| !allowed.iter().any(|a| n.name().split('@').next() == Some(*a)));
        r.check(
            foreign.is_none(),
            format_args!("no host device in the tree (first other node: {:?})", foreign.map(|n| n.name())),
        );

        // /hypervisor exactly when enhanced, with Xen's grant-table region.
        match root.child("hypervisor") {
            None => r.check(!expect_enhanced, format_args!("no /hypervisor (expected: {expect_enhanced})")),
            Some(hyp) => {
                let reg = hyp.property("reg").map(|p| (be(p.value(), 2), be(&p.value()[8..], 2)));
                let irq = hyp.property("interrupts").and_then(|p| be(&p.value()[4..], 1));
                r.check(
                    expect_enhanced
                        && reg == Some((Some(GUEST_GNTTAB.0), Some(GUEST_GNTTAB.1 - GUEST_GNTTAB.0)))
                        && irq == Some(15),
                    format_args!("/hypervisor: grant table {reg:x?}, event PPI {irq:?} (expected: {expect_enhanced})"),
                );
                let reg = hyp.property("reg");
                let reg = reg.as_ref().map_or(&[][..], |p| p.value());
                crate::ext_regions::check(reg, bootargs, &mut |ok, what| r.check(ok, what));
            }
        }

        // RAM: a word in every cache line, written then read back, but
        // for the probe's own image and its device tree.
        // Linker symbols: only their addresses are taken.
        let image = (&raw const __image_start as u64, &raw const __image_end as u64);
        let skip = |a: u64| (image.0 <= a && a < image.1) || (dtb <= a && a < dtb + size);
        let pattern = |a: u64| a.rotate_left(17) ^ 0xd0a1_e55d_0a1e_55d0;
        let mut lines = 0u64;
        let mut addr = ram_start;
        while addr < ram_end {
            if !skip(addr) {
                // SAFETY: RAM the tree says is ours, outside the image and the tree.
                unsafe { write_volatile(addr as *mut u64, pattern(addr)) };
                lines += 1;
            }
            addr += 64;
        }
        let mut bad = 0u64;
        let mut addr = ram_start;
        while addr < ram_end {
            // SAFETY: as above.
            if !skip(addr) && unsafe { read_volatile(addr as *const u64) } != pattern(addr) {
                bad += 1;
            }
            addr += 64;
        }
        r.check(lines > 0 && bad == 0, format_args!("wrote and read back {lines} cache lines of RAM ({bad} wrong)"));

        // Outside its RAM: aborts, whatever the host has there.
        for (what, at) in [
            ("just past its RAM", ram_end),
            ("the host's UART", 0x900_0000),
            ("the host's GIC", 0x800_0000),
            ("below the guest GIC", 0x300_0000),
            ("below its RAM", ram_start - 0x1000),
        ] {
            let esr = read_faults(at);
            r.check(
                esr.is_some_and(|e| e >> 26 == 0x25),
                format_args!("a read of {what} at {at:#x} aborts (ESR {esr:x?})"),
            );
        }

        // Hypercalls.
        let version = hypercall(XEN_VERSION, [0, 0, 0]);
        r.check(version == 0x4_0011, format_args!("xen_version(XENVER_version) = {version:#x} (4.17)"));
        let mut info = [0u32, 0u32];
        let got = hypercall(XEN_VERSION, [XENVER_GET_FEATURES, info.as_mut_ptr() as u64, 0]);
        let features = info[1];
        r.check(
            got == 0 && features & (1 << 11) == 0 && features & (1 << 17) == 0 && features & (1 << 2) != 0,
            format_args!("XENVER_get_features: auto_translated, not dom0, not direct_mapped ({features:#x})"),
        );
        let mut byte = [0u8; 1];
        let read = hypercall(CONSOLE_IO, [CONSOLEIO_READ, 1, byte.as_mut_ptr() as u64]);
        r.check(read == -1, format_args!("CONSOLEIO_read is Dom0's: -EPERM ({read})"));

        if arg(bootargs, "check-interrupts") == Some(1) {
            // `wait-ms=<n>`: first let Dom0 get going (to attack, say).
            if let Some(ms) = arg(bootargs, "wait-ms") {
                let (hz, start): (u64, u64);
                // SAFETY: reads of the generic timer's registers.
                unsafe {
                    asm!("mrs {f}, cntfrq_el0", "isb", "mrs {t}, cntvct_el0", f = out(reg) hz, t = out(reg) start)
                };
                let mut now = start;
                while now - start < ms * hz / 1000 {
                    // SAFETY: as above.
                    unsafe { asm!("isb", "mrs {t}, cntvct_el0", t = out(reg) now) };
                }
                r.say(format_args!("waited {ms} ms"));
            }
            crate::interrupts::run(&mut |ok, what| r.check(ok, what));
        }
        if arg(bootargs, "check-vpl011") == Some(1) {
            crate::vpl011::run(&mut r, &fdt);
        }
        if arg(bootargs, "hostile") == Some(1) {
            hostile::run(&mut r, &hostile::Own { ram: (ram_start, ram_end) });
        }

        let (checks, failures) = (r.checks, r.failures);
        r.say(format_args!("{checks} checks, {failures} failures"));
        shutdown(&mut r)
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        let text = b"domu-probe: FAIL: panic\n";
        hypercall(CONSOLE_IO, [CONSOLEIO_WRITE, text.len() as u64, text.as_ptr() as u64]);
        loop {
            core::hint::spin_loop();
        }
    }
}
