//! Exceptions taken to EL2. `boot/vectors.S` saves a `TrapFrame` and calls
//! `handle_exception`. For now every exception is unexpected but one (the
//! semihosting probe); each is reported in full and stops the hypervisor.

use super::esr::{self, ec};
use super::semihosting;
use crate::fatal::Stop;
use crate::println_emergency;
use core::sync::atomic::{AtomicBool, Ordering};

/// Set while a crash report is being printed: a fault inside the report
/// (a console that faults) must not recurse.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// The interrupted context, as `boot/vectors.S` lays it out.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub regs: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    _pad: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 288);

/// The register number that names XZR in a trapped access.
pub const XZR: u8 = 31;

impl TrapFrame {
    /// General register `r` as an instruction reads it: XZR reads as zero.
    pub fn register(&self, r: u8) -> u64 {
        self.regs.get(usize::from(r)).copied().unwrap_or(0)
    }

    /// Writes general register `r` as an instruction would: XZR discards it.
    pub fn set_register(&mut self, r: u8, value: u64) {
        if let Some(reg) = self.regs.get_mut(usize::from(r)) {
            *reg = value;
        }
    }
}

/// Where the exception came from: the vector table's four groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    El2Sp0,
    El2Spx,
    LowerA64,
    LowerA32,
}

impl Source {
    /// The vector group, from bits 3:2 of the vector's `kind`.
    fn of(kind: u64) -> Self {
        [Source::El2Sp0, Source::El2Spx, Source::LowerA64, Source::LowerA32][(kind >> 2) as usize & 3]
    }
}

const KIND_NAMES: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];

/// What the vector table's `kind` says about an exception: from a guest
/// (to be served), or taken at EL2 (a fault of the hypervisor's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    FromGuest(GuestException),
    AtEl2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestException {
    Synchronous,
    Irq,
    Fiq,
    SError,
}

impl Taken {
    /// Decodes the vector's `kind`: the source in bits 3:2, the type in 1:0.
    pub fn from_kind(kind: u64) -> Self {
        let source = Source::of(kind);
        // Nothing a guest does, in AArch64 or AArch32 state, may stop us.
        if matches!(source, Source::LowerA64 | Source::LowerA32) {
            let types = [GuestException::Synchronous, GuestException::Irq, GuestException::Fiq, GuestException::SError];
            Taken::FromGuest(types[kind as usize & 3])
        } else {
            Taken::AtEl2
        }
    }
}

/// An exception taken at EL2: a failed semihosting probe is skipped; any
/// other is the hypervisor's own fault, reported, and the machine stops.
pub fn handle_at_el2(frame: &mut TrapFrame, kind: u64) {
    let source = Source::of(kind);
    let synchronous = kind & 3 == 0;
    if synchronous && source == Source::El2Spx && esr::exception_class(frame.esr) == ec::UNKNOWN {
        // SAFETY: ELR points at the instruction that trapped, in our own
        // mapped, 4-byte aligned text.
        let instruction = unsafe { core::ptr::read_volatile(frame.elr as *const u32) };
        if semihosting::skip_failed_probe(instruction) {
            frame.elr += 4;
            return;
        }
    }
    if REPORTING.swap(true, Ordering::SeqCst) {
        // The report itself faulted, most likely on the console: drop it
        // and say what we can through semihosting.
        crate::console::abandon_uart();
        println_emergency!("(HV) fault while reporting a fault (console at ELR {:#x}, FAR {:#x})", frame.elr, frame.far);
    }
    report(frame, source, KIND_NAMES[kind as usize & 3]);
    crate::shutdown::stop(Stop::Exception);
}

fn report(frame: &TrapFrame, source: Source, kind: &str) {
    let class = esr::exception_class(frame.esr);
    let iss = esr::iss(frame.esr);
    println_emergency!("(HV) ----[ unexpected exception: {} ]----", esr::class_name(class));
    let from = match source {
        Source::El2Sp0 => "EL2 on SP_EL0",
        Source::El2Spx => "EL2",
        Source::LowerA64 => "a lower EL (AArch64)",
        Source::LowerA32 => "a lower EL (AArch32)",
    };
    println_emergency!("(HV) {kind} exception from {from} on CPU {}", super::cpu::current_index());
    println_emergency!("(HV) ESR_EL2  {:#018x}  EC {class:#04x} ISS {iss:#09x}", frame.esr);
    if matches!(class, ec::DABT_CURRENT | ec::DABT_LOWER | ec::IABT_CURRENT | ec::IABT_LOWER) {
        let access = if esr::is_write(iss) { "write" } else { "read" };
        println_emergency!("(HV)           {} on {access}", esr::fault_status_name(iss));
    }
    println_emergency!("(HV) FAR_EL2  {:#018x}", frame.far);
    println_emergency!("(HV) ELR_EL2  {:#018x}  SPSR_EL2 {:#010x}", frame.elr, frame.spsr);
    for row in 0..11 {
        let mut line = [(0usize, 0u64); 3];
        let mut n = 0;
        for col in 0..3 {
            let i = row * 3 + col;
            if i < 31 {
                line[n] = (i, frame.regs[i]);
                n += 1;
            }
        }
        match n {
            3 => println_emergency!(
                "(HV) x{:<2} {:#018x}  x{:<2} {:#018x}  x{:<2} {:#018x}",
                line[0].0, line[0].1, line[1].0, line[1].1, line[2].0, line[2].1
            ),
            _ => println_emergency!("(HV) x{:<2} {:#018x}", line[0].0, line[0].1),
        }
    }
    if matches!(source, Source::El2Sp0 | Source::El2Spx) {
        let sp = frame as *const TrapFrame as u64 + core::mem::size_of::<TrapFrame>() as u64;
        println_emergency!("(HV) SP       {sp:#018x}");
    }
}
