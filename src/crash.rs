//! The hypervisor's own faults: an exception taken at EL2 is reported in
//! full (class, syndrome, addresses, registers) and stops the machine with
//! its exit code. The one expected exception, a failed semihosting probe,
//! is skipped.

use crate::arch::esr::{self, ec};
use crate::arch::exception::{KIND_NAMES, Source, TrapFrame};
use crate::arch::{cpu, semihosting};
use crate::fatal::Stop;
use crate::println_emergency;
use core::sync::atomic::{AtomicBool, Ordering};

/// Set while a crash report is being printed: a fault inside the report
/// (a console that faults) must not recurse.
static REPORTING: AtomicBool = AtomicBool::new(false);

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
        println_emergency!(
            "(HV) fault while reporting a fault (console at ELR {:#x}, FAR {:#x})",
            frame.elr,
            frame.far
        );
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
    println_emergency!("(HV) {kind} exception from {from} on CPU {}", cpu::current_index());
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
                line[0].0,
                line[0].1,
                line[1].0,
                line[1].1,
                line[2].0,
                line[2].1
            ),
            _ => println_emergency!("(HV) x{:<2} {:#018x}", line[0].0, line[0].1),
        }
    }
    if matches!(source, Source::El2Sp0 | Source::El2Spx) {
        let sp = frame as *const TrapFrame as u64 + core::mem::size_of::<TrapFrame>() as u64;
        println_emergency!("(HV) SP       {sp:#018x}");
    }
}
