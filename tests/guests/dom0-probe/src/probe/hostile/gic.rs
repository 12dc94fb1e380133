//! The emulated GIC from its odd side: byte, halfword, doubleword,
//! misaligned, paired, write-back and acquire accesses to distributor and
//! redistributor registers, reserved offsets, read-only registers, the
//! hypervisor's own interrupts, the space past the last redistributor;
//! and the SGI system registers with reserved bits, targets that do not
//! exist, broadcast, the hypervisor's own SGI and the group-0 and
//! alternate registers. (Not the range selector: on a GIC without range
//! selector support, such as QEMU's, RS is ignored or unpredictable.) What the filter does (`src/gic/filter.rs`): an
//! access the GIC does not define reads as zero and writes nothing; the
//! hypervisor's interrupts read as zero and keep their state; an access
//! the syndrome does not describe gets an abort. (Xen 4.17 answers a
//! width a register does not have with an abort.)

use super::super::faults;
use super::super::interrupts::{
    self, GICD_CTLR, GICD_CTLR_ENABLE_G1, GICD_IROUTER, GICR_SGI_FRAME, GICR_STRIDE, GICR_TYPER, GICR_WAKER,
    IPRIORITYR, ISENABLER, drain, enable, read32, read64,
};
use super::{Board, Hostile, mmu};
use core::arch::asm;

const GICD_TYPER: u64 = 0x0004;
const GICD_TYPER_LPIS: u64 = 1 << 17;
const GICR_WAKER_PROCESSOR_SLEEP: u64 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u64 = 1 << 2;
const GICR_TYPER_LAST: u64 = 1 << 4;
/// Offsets the GICv3 architecture leaves reserved in the distributor.
const RESERVED: [u64; 3] = [0x0014, 0x0f30, 0xc000];
/// What a load leaves in its register when the handler skipped it.
const UNTOUCHED: u64 = 0x5a5a_5a5a_5a5a_5a5a;
/// The hypervisor's own private interrupts: the SGI it kicks CPUs with
/// and the maintenance interrupt (PPI 9 on QEMU's virt).
const KICK_SGI: u32 = 15;
const MAINTENANCE: u32 = 25;

/// How an access is made.
#[derive(Clone, Copy, Debug)]
enum Access {
    Byte,
    Half,
    Word,
    Double,
    /// LDP/STP of two doublewords: no syndrome describes it.
    Pair,
    /// LDR/STR with post-index write-back: no syndrome either.
    WriteBack,
    /// LDAR/STLR of a word.
    Ordered,
}

/// A load: the value, or the ESR of the abort it took.
fn load(access: Access, address: u64) -> Result<u64, u64> {
    let mut value = UNTOUCHED;
    // SAFETY: a load from a GIC frame or space next to it, whatever the
    // arm: it is emulated or aborts, and the handler skips an aborted one.
    let esr = faults(|| unsafe {
        match access {
            Access::Byte => asm!("ldrb {v:w}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack)),
            Access::Half => asm!("ldrh {v:w}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack)),
            Access::Word => asm!("ldr {v:w}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack)),
            Access::Double => asm!("ldr {v}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack)),
            Access::Pair => {
                asm!("ldp {v}, {w}, [{a}]", a = in(reg) address, v = inout(reg) value, w = out(reg) _, options(nostack))
            }
            Access::WriteBack => {
                asm!("ldr {v:w}, [{a}], #4", a = inout(reg) address => _, v = inout(reg) value, options(nostack))
            }
            Access::Ordered => asm!("ldar {v:w}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack)),
        }
    });
    esr.map_or(Ok(value), Err)
}

/// A store; the ESR of the abort it took, if any.
fn store(access: Access, address: u64, value: u64) -> Option<u64> {
    // SAFETY: as in `load`, for stores.
    faults(|| unsafe {
        match access {
            Access::Byte => asm!("strb {v:w}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack)),
            Access::Half => asm!("strh {v:w}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack)),
            Access::Word => asm!("str {v:w}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack)),
            Access::Double => asm!("str {v}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack)),
            Access::Pair => asm!("stp {v}, {v}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack)),
            Access::WriteBack => {
                asm!("str {v:w}, [{a}], #4", a = inout(reg) address => _, v = in(reg) value, options(nostack))
            }
            Access::Ordered => asm!("stlr {v:w}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack)),
        }
    })
}

impl Hostile<'_> {
    /// A load that must be emulated and read `expected`.
    fn reads(&mut self, access: Access, address: u64, expected: u64, what: &str) {
        let got = load(access, address);
        self.case(
            got == Ok(expected),
            format_args!("{access:?} read of {what} ({address:#x}): expected {expected:#x}, got {got:#x?}"),
        );
    }

    fn load_aborts(&mut self, access: Access, address: u64, what: &str) {
        match load(access, address) {
            Err(esr) => self.aborts(Some(esr), format_args!("{access:?} read of {what} ({address:#x})")),
            Ok(value) => self.case(
                false,
                format_args!("{access:?} read of {what} ({address:#x}): expected an abort, read {value:#x}"),
            ),
        }
    }

    fn store_aborts(&mut self, access: Access, address: u64, what: &str) {
        self.aborts(store(access, address, 0), format_args!("{access:?} write of {what} ({address:#x})"));
    }

    /// A store that must be emulated and change nothing the word at
    /// `watched` shows.
    fn store_changes_nothing(&mut self, access: Access, address: u64, value: u64, watched: u64, what: &str) {
        let before = read32(watched);
        let esr = store(access, address, value);
        let after = read32(watched);
        self.no_abort(esr, format_args!("{access:?} write of {what} ({address:#x})"));
        self.case(
            before == after,
            format_args!("{access:?} write of {what}: {watched:#x} was {before:#x}, is {after:#x}"),
        );
    }
}

/// The RD frame of the last redistributor (GICR_TYPER.Last), found as
/// Linux finds it.
fn last_redistributor(region: (u64, u64)) -> u64 {
    let mut frame = region.0;
    while frame + GICR_STRIDE < region.1 && read64(frame + GICR_TYPER) & GICR_TYPER_LAST == 0 {
        frame += GICR_STRIDE;
    }
    frame
}

pub fn run(h: &mut Hostile<'_>, board: &Board<'_>) {
    let gicd = board.gicd;
    let Some(rd) = interrupts::redistributor_of_cpu0(board.gicr.0, board.gicr.1 - board.gicr.0) else {
        h.case(false, format_args!("CPU 0's redistributor is found by its affinity"));
        return;
    };
    let sgi_frame = rd + GICR_SGI_FRAME;
    let beyond = last_redistributor(board.gicr) + GICR_STRIDE;
    mmu::with_normal_memory(|| {
        let typer = u64::from(read32(gicd + GICD_TYPER));
        h.case(typer != 0 && typer & GICD_TYPER_LPIS == 0, format_args!("GICD_TYPER reads {typer:#x}, no LPIs"));
        h.reads(Access::Ordered, gicd + GICD_TYPER, typer, "GICD_TYPER");
        for (access, offset, what) in [
            (Access::Byte, GICD_TYPER, "GICD_TYPER"),
            (Access::Half, GICD_TYPER, "GICD_TYPER"),
            (Access::Double, GICD_CTLR, "GICD_CTLR and GICD_TYPER together"),
            (Access::Word, GICD_TYPER + 1, "GICD_TYPER, misaligned"),
            (Access::Word, GICD_TYPER + 2, "GICD_TYPER, misaligned"),
            (Access::Double, GICD_IROUTER + 40 * 8 + 4, "GICD_IROUTER40, misaligned"),
            (Access::Byte, GICD_IROUTER + 40 * 8, "GICD_IROUTER40"),
            (Access::Half, IPRIORITYR + 40, "GICD_IPRIORITYR10"),
        ] {
            h.reads(access, gicd + offset, 0, what);
        }
        for offset in RESERVED {
            h.reads(Access::Word, gicd + offset, 0, "a reserved distributor offset");
            h.store_changes_nothing(
                Access::Word,
                gicd + offset,
                u64::MAX,
                gicd + offset,
                "a reserved distributor offset",
            );
        }
        h.store_changes_nothing(Access::Word, gicd + GICD_TYPER, 0, gicd + GICD_TYPER, "the read-only GICD_TYPER");
        h.store_changes_nothing(Access::Byte, gicd + GICD_CTLR, 0, gicd + GICD_CTLR, "GICD_CTLR");
        h.store_changes_nothing(Access::Half, gicd + GICD_CTLR, 0, gicd + GICD_CTLR, "GICD_CTLR");
        h.store_changes_nothing(Access::Word, gicd + GICD_CTLR + 2, 0, gicd + GICD_CTLR, "GICD_CTLR, misaligned");
        let ctlr = read32(gicd + GICD_CTLR);
        for access in [Access::Pair, Access::WriteBack] {
            h.load_aborts(access, gicd + GICD_CTLR, "GICD_CTLR");
            h.store_aborts(access, gicd + GICD_CTLR, "GICD_CTLR");
        }
        h.case(read32(gicd + GICD_CTLR) == ctlr, format_args!("GICD_CTLR unchanged by the aborted writes"));

        // The redistributor: its RD frame, its SGI frame, and beyond.
        let typer = read64(rd + GICR_TYPER);
        h.reads(Access::Word, rd + GICR_TYPER + 4, typer >> 32, "GICR_TYPER's upper half");
        h.reads(Access::Byte, rd + GICR_TYPER, 0, "GICR_TYPER");
        h.reads(Access::Word, rd + GICR_WAKER + 1, 0, "GICR_WAKER, misaligned");
        h.load_aborts(Access::Pair, rd + GICR_TYPER, "GICR_TYPER");
        h.store_aborts(Access::Pair, sgi_frame + ISENABLER, "GICR_ISENABLER0");
        for (what, address) in [
            ("the RD frame past the last redistributor", beyond + GICR_TYPER),
            ("the SGI frame past the last redistributor", beyond + GICR_SGI_FRAME + ISENABLER),
            ("the redistributor region's last word", board.gicr.1 - 4),
            ("the page past the distributor", gicd + 0x1_0000),
        ] {
            h.load_aborts(Access::Word, address, what);
            h.store_aborts(Access::Word, address, what);
        }

        // The hypervisor's private interrupts read as zero, whatever Dom0
        // writes; Dom0's own take what it writes.
        for intid in [KICK_SGI, MAINTENANCE, 20] {
            let priority = sgi_frame + IPRIORITYR + u64::from(intid);
            let expected = if intid == 20 { 0xa0 } else { 0 };
            h.case(store(Access::Byte, priority, 0xa0).is_none(), format_args!("a byte write of priority {intid}"));
            h.reads(Access::Byte, priority, expected, "a private interrupt's priority");
        }
        let enabled = load(Access::Word, sgi_frame + ISENABLER).unwrap_or(u64::MAX);
        let hidden = 1 << KICK_SGI | 1 << MAINTENANCE;
        h.case(enabled & hidden == 0, format_args!("GICR_ISENABLER0 hides the hypervisor's ({enabled:#x})"));

        // Dom0 cannot switch the hypervisor's interrupts off wholesale:
        // group 1 stays enabled and the redistributor awake.
        let ctlr = read32(gicd + GICD_CTLR);
        let stored = store(Access::Word, gicd + GICD_CTLR, 0);
        let after = read32(gicd + GICD_CTLR);
        h.case(
            stored.is_none() && after & GICD_CTLR_ENABLE_G1 != 0,
            format_args!("GICD_CTLR = 0 leaves group 1 enabled ({after:#x})"),
        );
        let _ = store(Access::Word, gicd + GICD_CTLR, u64::from(ctlr));
        let stored = store(Access::Word, rd + GICR_WAKER, GICR_WAKER_PROCESSOR_SLEEP);
        let waker = read32(rd + GICR_WAKER);
        h.case(
            stored.is_none() && waker & (GICR_WAKER_PROCESSOR_SLEEP | GICR_WAKER_CHILDREN_ASLEEP) as u32 == 0,
            format_args!("GICR_WAKER ProcessorSleep is refused ({waker:#x})"),
        );
    });
}

/// ICC_SGI1R_EL1 with the INTID, affinity and target fields given; the
/// other bits as `extra`.
fn sgi1r(intid: u64, target_list: u64, affinity: u64, extra: u64) -> u64 {
    intid << 24 | target_list | affinity | extra
}

pub fn sgi_registers(h: &mut Hostile<'_>, board: &Board<'_>) {
    const SGI: u64 = 3;
    let Some(rd) = interrupts::redistributor_of_cpu0(board.gicr.0, board.gicr.1 - board.gicr.0) else {
        h.case(false, format_args!("CPU 0's redistributor is found by its affinity"));
        return;
    };
    interrupts::open_cpu_interface(board.gicd);
    interrupts::wake(rd);
    enable(rd + GICR_SGI_FRAME, SGI as u32);
    enable(rd + GICR_SGI_FRAME, KICK_SGI);
    const RES0: u64 = 0xff << 56 | 0b111 << 41 | 0xf << 28;
    const AFF1: u64 = 1 << 16;
    const AFF2: u64 = 1 << 32;
    const AFF3: u64 = 1 << 48;
    const IRM: u64 = 1 << 40;
    /// Which register a write goes to.
    #[derive(Clone, Copy)]
    enum Register {
        Sgi1,
        Asgi1,
        Sgi0,
    }
    let cases = [
        ("a valid SGI to this CPU", Register::Sgi1, sgi1r(SGI, 1, 0, 0), 1),
        ("reserved bits set", Register::Sgi1, sgi1r(SGI, 1, 0, RES0), 1),
        ("an empty target list", Register::Sgi1, sgi1r(SGI, 0, 0, 0), 0),
        ("targets that do not exist", Register::Sgi1, sgi1r(SGI, 0xfffc, 0, 0), 0),
        ("Aff1 1", Register::Sgi1, sgi1r(SGI, 1, AFF1, 0), 0),
        ("Aff2 1", Register::Sgi1, sgi1r(SGI, 1, AFF2, 0), 0),
        ("Aff3 1", Register::Sgi1, sgi1r(SGI, 1, AFF3, 0), 0),
        ("broadcast to the others", Register::Sgi1, sgi1r(SGI, 0, 0, IRM), 0),
        ("the hypervisor's SGI 15", Register::Sgi1, sgi1r(u64::from(KICK_SGI), 1, 0, 0), 0),
        ("ICC_ASGI1R_EL1", Register::Asgi1, sgi1r(SGI, 1, 0, 0), 0),
        ("ICC_SGI0R_EL1", Register::Sgi0, sgi1r(SGI, 1, 0, 0), 0),
        ("zero", Register::Sgi1, 0, 0),
        ("a valid SGI again", Register::Sgi1, sgi1r(SGI, 1, 0, 0), 1),
    ];
    for (what, register, value, expected) in cases {
        // SAFETY: writes of the SGI generation registers, which trap to the
        // hypervisor; none touches memory.
        let esr = faults(|| unsafe {
            match register {
                Register::Sgi1 => asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) value),
                Register::Asgi1 => asm!("msr S3_0_C12_C11_6, {}", "isb", in(reg) value),
                Register::Sgi0 => asm!("msr S3_0_C12_C11_7, {}", "isb", in(reg) value),
            }
        });
        let delivered = drain(expected + 1, 200_000);
        let count = delivered.count;
        let intid = (value >> 24 & 0xf) as u32;
        let right = delivered.times(intid) == count;
        h.case(
            esr.is_none() && count == expected && right,
            format_args!("{what} ({value:#x}): {count} delivered, expected {expected}; ESR {esr:#x?}"),
        );
    }
}
