//! Interrupt delivery as Dom0 sees it: a burst of more interrupts than the
//! CPU has list registers (several SPIs made pending at once at the real
//! distributor, an SGI to itself, the virtual timer), all raised while
//! interrupts are masked, then acknowledged one by one through the virtual
//! CPU interface. Every one must arrive exactly once.

use core::arch::asm;

pub const GICD_CTLR: u64 = 0x0000;
pub const GICD_CTLR_ENABLE_G1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;
const IGROUPR: u64 = 0x0080;
pub const ISENABLER: u64 = 0x0100;
const ISPENDR: u64 = 0x0200;
pub const IPRIORITYR: u64 = 0x0400;
pub const GICD_IROUTER: u64 = 0x6000;
pub const GICR_TYPER: u64 = 0x0008;
pub const GICR_WAKER: u64 = 0x0014;
pub const GICR_SGI_FRAME: u64 = 0x1_0000;
pub const GICR_STRIDE: u64 = 0x2_0000;
const PRIORITY: u8 = 0xa0;

/// The virtual timer's PPI.
pub const VIRTUAL_TIMER: u32 = 27;

// Register accesses are single loads and stores without writeback, as
// Linux's readl/writel are: a trapping hypervisor can only emulate an
// access whose syndrome describes it.

pub fn read32(address: u64) -> u32 {
    let value: u32;
    // SAFETY: GIC registers, mapped (or emulated) for Dom0.
    unsafe { asm!("ldr {0:w}, [{1}]", out(reg) value, in(reg) address, options(nostack, readonly)) };
    value
}

pub fn write32(address: u64, value: u32) {
    // SAFETY: as in `read32`.
    unsafe { asm!("str {0:w}, [{1}]", in(reg) value, in(reg) address, options(nostack)) };
}

pub fn read64(address: u64) -> u64 {
    let value: u64;
    // SAFETY: as in `read32`.
    unsafe { asm!("ldr {0}, [{1}]", out(reg) value, in(reg) address, options(nostack, readonly)) };
    value
}

pub fn write64(address: u64, value: u64) {
    // SAFETY: as in `read32`.
    unsafe { asm!("str {0}, [{1}]", in(reg) value, in(reg) address, options(nostack)) };
}

pub fn write8(address: u64, value: u8) {
    // SAFETY: as in `read32`.
    unsafe { asm!("strb {0:w}, [{1}]", in(reg) u32::from(value), in(reg) address, options(nostack)) };
}

/// The redistributor (RD frame) of the CPU whose affinity is 0, found as
/// Linux finds it: by GICR_TYPER's affinity, up to the Last bit.
pub fn redistributor_of_cpu0(region: u64, size: u64) -> Option<u64> {
    let mut frame = region;
    while frame + GICR_STRIDE <= region + size {
        let typer = read64(frame + GICR_TYPER);
        if typer >> 32 == 0 {
            return Some(frame);
        }
        if typer & (1 << 4) != 0 {
            return None;
        }
        frame += GICR_STRIDE;
    }
    None
}

/// What a burst delivered, in order.
pub struct Delivered {
    pub intids: [u32; 32],
    pub count: usize,
}

impl Delivered {
    pub fn times(&self, intid: u32) -> usize {
        self.intids[..self.count].iter().filter(|&&i| i == intid).count()
    }
}

/// The CPU interface (the virtual one under a hypervisor) on, group 1,
/// every priority let through; the distributor on with affinity routing.
pub fn open_cpu_interface(gicd: u64) {
    // SAFETY: the GIC CPU interface registers (virtual ones under the
    // hypervisor); no memory is touched.
    unsafe {
        asm!("msr icc_sre_el1, {}", "isb", in(reg) 0x7u64);
        asm!("msr icc_pmr_el1, {}", in(reg) 0xf0u64);
        asm!("msr icc_igrpen1_el1, {}", "isb", in(reg) 1u64);
    }
    write32(gicd + GICD_CTLR, read32(gicd + GICD_CTLR) | GICD_CTLR_ARE | GICD_CTLR_ENABLE_G1);
}

/// Wakes the redistributor `rd` as Linux does.
pub fn wake(rd: u64) {
    write32(rd + GICR_WAKER, read32(rd + GICR_WAKER) & !(1 << 1));
    while read32(rd + GICR_WAKER) & (1 << 2) != 0 {}
}

/// Enables `intid` in group 1 at priority 0xa0, at the distributor or a
/// redistributor's SGI frame (`base`).
pub fn enable(base: u64, intid: u32) {
    let word = u64::from(intid / 32) * 4;
    write32(base + IGROUPR + word, read32(base + IGROUPR + word) | 1 << (intid % 32));
    write8(base + IPRIORITYR + u64::from(intid), PRIORITY);
    write32(base + ISENABLER + word, 1 << (intid % 32));
}

/// Raises `spis`, SGI `sgi` to this CPU and the virtual timer, all while
/// masked, then acknowledges and ends each through ICC_IAR1/EOIR1 until
/// the expected number arrived or nothing more comes.
pub fn burst(gicd: u64, rd: u64, spis: &[u32], sgi: u32) -> Delivered {
    open_cpu_interface(gicd);
    for &spi in spis {
        write64(gicd + GICD_IROUTER + u64::from(spi) * 8, 0);
        enable(gicd, spi);
    }
    wake(rd);
    let sgi_frame = rd + GICR_SGI_FRAME;
    enable(sgi_frame, sgi);
    enable(sgi_frame, VIRTUAL_TIMER);

    // Everything at once: one write pends all the SPIs of a word.
    let mut words = [0u32; 32];
    for &spi in spis {
        words[(spi / 32) as usize] |= 1 << (spi % 32);
    }
    for (i, &bits) in words.iter().enumerate().filter(|(_, b)| **b != 0) {
        write32(gicd + ISPENDR + i as u64 * 4, bits);
    }
    // SAFETY: an SGI to CPU 0 (target list bit 0, affinity 0), and the
    // virtual timer enabled with a compare value of 0, long past: its
    // condition holds as it is enabled, whatever the host's load (a timer
    // a few ticks ahead could take longer than `drain` waits).
    unsafe {
        asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) u64::from(sgi) << 24 | 1);
        asm!("msr cntv_cval_el0, xzr", "msr cntv_ctl_el0, {}", "isb", in(reg) 1u64);
    }

    drain(spis.len() + 2, 5_000_000)
}

/// Acknowledges and ends interrupts through ICC_IAR1/EOIR1 until
/// `expected` arrived or nothing came for `patience` polls in a row.
pub fn drain(expected: usize, patience: u32) -> Delivered {
    let mut delivered = Delivered { intids: [0; 32], count: 0 };
    let mut idle_polls = 0u32;
    while delivered.count < expected && idle_polls < patience {
        let intid: u64;
        // SAFETY: acknowledging a virtual interrupt.
        unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) intid) };
        let intid = intid as u32 & 0xff_ffff;
        if intid >= 1020 {
            idle_polls += 1;
            continue;
        }
        if intid == VIRTUAL_TIMER {
            // Level-triggered: stop it before ending it, or it fires again.
            // SAFETY: disables the virtual timer.
            unsafe { asm!("msr cntv_ctl_el0, xzr", "isb") };
        }
        if delivered.count < delivered.intids.len() {
            delivered.intids[delivered.count] = intid;
        }
        delivered.count += 1;
        // SAFETY: priority drop and deactivation of the acknowledged one
        // (EOImode 0); with HW=1 this deactivates the physical interrupt.
        unsafe { asm!("msr icc_eoir1_el1, {}", "isb", in(reg) u64::from(intid)) };
    }
    delivered
}

/// The burst on the board's GIC (`gicd`, the first redistributor region),
/// checked: every SPI, the SGI and the timer arrive exactly once.
pub fn check(r: &mut super::Report, gicd: u64, redistributors: (u64, u64)) {
    let Some(rd) = redistributor_of_cpu0(redistributors.0, redistributors.1 - redistributors.0) else {
        r.check(false, format_args!("CPU 0's redistributor is found by its affinity"));
        return;
    };
    // The top SPIs the distributor implements: no device of the board uses them.
    let lines = 32 * ((read32(gicd + 0x4) & 0x1f) + 1);
    let spis: [u32; 6] = core::array::from_fn(|i| lines - 6 + i as u32);
    const SGI: u32 = 3;
    let delivered = burst(gicd, rd, &spis, SGI);
    for &intid in spis.iter().chain([SGI, VIRTUAL_TIMER].iter()) {
        let n = delivered.times(intid);
        r.check(n == 1, format_args!("interrupt {intid} delivered once ({n} times)"));
    }
    r.check(
        delivered.count == spis.len() + 2,
        format_args!("{} interrupts raised at once, more than the 4 list registers, all delivered", delivered.count),
    );
}

/// GICv2: the distributor's SGI register and the CPU interface's, at the
/// offsets both the physical and the virtual CPU interface have.
const GICD_ITARGETSR: u64 = 0x0800;
const GICD_SGIR: u64 = 0x0f00;
const GICC_CTLR: u64 = 0x0000;
const GICC_PMR: u64 = 0x0004;
const GICC_IAR: u64 = 0x000c;
const GICC_EOIR: u64 = 0x0010;
const GICC_IIDR: u64 = 0x00fc;

/// The GICv2 burst: the same interrupts as GICv3's, with the CPU interface
/// at `gicc` (where the tree says it is: the virtual one under a
/// hypervisor), SPIs targeted at this CPU's interface (read from the
/// banked GICD_ITARGETSR0, as Linux does), the SGI sent through GICD_SGIR
/// to this CPU's interface, then acknowledged and ended through GICC_IAR
/// and GICC_EOIR.
pub fn burst_v2(gicd: u64, gicc: u64, spis: &[u32], sgi: u32) -> Delivered {
    let own = read32(gicd + GICD_ITARGETSR) & 0xff;
    write32(gicc + GICC_PMR, 0xf0);
    write32(gicc + GICC_CTLR, 1);
    write32(gicd + GICD_CTLR, 1);
    for &spi in spis {
        write8(gicd + GICD_ITARGETSR + u64::from(spi), own as u8);
        write8(gicd + IPRIORITYR + u64::from(spi), PRIORITY);
        write32(gicd + ISENABLER + u64::from(spi / 32) * 4, 1 << (spi % 32));
    }
    for intid in [sgi, VIRTUAL_TIMER] {
        write8(gicd + IPRIORITYR + u64::from(intid), PRIORITY);
        write32(gicd + ISENABLER, 1 << intid);
    }
    let mut words = [0u32; 32];
    for &spi in spis {
        words[(spi / 32) as usize] |= 1 << (spi % 32);
    }
    for (i, &bits) in words.iter().enumerate().filter(|(_, b)| **b != 0) {
        write32(gicd + ISPENDR + i as u64 * 4, bits);
    }
    // The target list: this CPU's interface only.
    write32(gicd + GICD_SGIR, own << 16 | sgi);
    // SAFETY: the virtual timer enabled with a compare value of 0, as in `burst`.
    unsafe { asm!("msr cntv_cval_el0, xzr", "msr cntv_ctl_el0, {}", "isb", in(reg) 1u64) };

    let expected = spis.len() + 2;
    let mut delivered = Delivered { intids: [0; 32], count: 0 };
    let mut idle_polls = 0u32;
    while delivered.count < expected && idle_polls < 5_000_000 {
        let iar = read32(gicc + GICC_IAR);
        let intid = iar & 0x3ff;
        if intid >= 1020 {
            idle_polls += 1;
            continue;
        }
        if intid == VIRTUAL_TIMER {
            // SAFETY: disables the virtual timer.
            unsafe { asm!("msr cntv_ctl_el0, xzr", "isb") };
        }
        if delivered.count < delivered.intids.len() {
            delivered.intids[delivered.count] = intid;
        }
        delivered.count += 1;
        // Priority drop and deactivation (EOImode 0); the whole IAR value,
        // an SGI's source CPU included.
        write32(gicc + GICC_EOIR, iar);
    }
    delivered
}

fn read8(address: u64) -> u8 {
    let value: u32;
    // SAFETY: as in `read32`.
    unsafe { asm!("ldrb {0:w}, [{1}]", out(reg) value, in(reg) address, options(nostack, readonly)) };
    value as u8
}

/// The GICv2 checks: Dom0's GIC node is Xen's (GICD and GICC, `reg_entries`
/// of them), its CPU interface answers, the distributor is filtered (the
/// hypervisor's UART SPI 33 and kick SGI 15 hidden, CPU interface numbers
/// Dom0's own, groups and GICD_SGIR reading as zero, a byte access where
/// the architecture has words reading as zero), and the burst arrives.
pub fn check_v2(r: &mut super::Report, gicd: u64, gicc: u64, reg_entries: usize) {
    r.check(reg_entries == 2, format_args!("the GICv2 node has GICD and GICC only ({reg_entries} reg entries)"));
    let iidr = read32(gicc + GICC_IIDR);
    r.check(iidr != 0, format_args!("the CPU interface at {gicc:#x} answers (GICC_IIDR {iidr:#x})"));
    let targets = read32(gicd + GICD_ITARGETSR);
    r.check(targets == 0x0101_0101, format_args!("vCPU 0 reads CPU interface 0 in GICD_ITARGETSR0 ({targets:#x})"));
    let spi33 = read32(gicd + ISENABLER + 4) & 0b10;
    r.check(spi33 == 0, format_args!("the hypervisor's UART SPI 33 is hidden in GICD_ISENABLER1 ({spi33:#x})"));
    let sgi15 = read32(gicd + ISENABLER) >> 15 & 1;
    r.check(sgi15 == 0, format_args!("the hypervisor's SGI 15 is hidden in GICD_ISENABLER0 ({sgi15})"));
    let (groups, sgir) = (read32(gicd + IGROUPR), read32(gicd + GICD_SGIR));
    r.check(
        groups == 0 && sgir == 0,
        format_args!("GICD_IGROUPR0 and GICD_SGIR read as zero ({groups:#x}, {sgir:#x})"),
    );
    let byte = read8(gicd + ISENABLER);
    r.check(byte == 0, format_args!("a byte read of GICD_ISENABLER0 reads as zero ({byte:#x})"));
    let lines = 32 * ((read32(gicd + 0x4) & 0x1f) + 1);
    let spis: [u32; 6] = core::array::from_fn(|i| lines - 6 + i as u32);
    const SGI: u32 = 3;
    let delivered = burst_v2(gicd, gicc, &spis, SGI);
    for &intid in spis.iter().chain([SGI, VIRTUAL_TIMER].iter()) {
        let n = delivered.times(intid);
        r.check(n == 1, format_args!("interrupt {intid} delivered once ({n} times)"));
    }
    r.check(
        delivered.count == spis.len() + 2,
        format_args!("{} interrupts raised at once, more than the 4 list registers, all delivered", delivered.count),
    );
}
