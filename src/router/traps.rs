//! Synchronous exceptions from the guest: hypercalls, SMCCC/PSCI calls,
//! stage-2 faults. Nothing a guest does here stops the hypervisor: unknown
//! calls get an error code, bad accesses an abort injected back.

use crate::arch::cpu::this_vcpu;
use crate::arch::esr::{self, ec};
use crate::arch::exception::TrapFrame;
use crate::arch::guest::SPSR_EL1H_MASKED;
use crate::arch::trap_counts::Exit;
use crate::domain::vcpu::Vcpu;
use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, HCR_EL2, HPFAR_EL2, SPSR_EL1, VBAR_EL1};
use core::sync::atomic::{AtomicU64, Ordering};
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};

/// The HVC immediate of a Xen hypercall.
const XEN_HYPERCALL_IMM: u32 = 0xea1;
/// The HVC or SMC immediate of an SMCCC call (PSCI among them).
const SMCCC_IMM: u32 = 0;

/// Counts one kind of guest-triggered event for its log line: a Dom0 that
/// faults in a loop must not turn the console into its bottleneck (a line
/// costs a hundred times the trap), so the first few are logged, then each
/// time the count doubles.
struct LogLimit(AtomicU64);

impl LogLimit {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// The count so far, including this one, if this one is to be logged.
    fn next(&self) -> Option<u64> {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        (n <= 16 || n.is_power_of_two()).then_some(n)
    }
}

pub fn handle_guest_sync(frame: &mut TrapFrame) {
    let class = esr::exception_class(frame.esr);
    let iss = esr::iss(frame.esr);
    let immediate = iss & 0xffff;
    // Looked up once: every arm counts the exit against it.
    let vcpu = this_vcpu();
    let count = |exit| vcpu.exits.count(exit);
    match class {
        ec::HVC64 if immediate == XEN_HYPERCALL_IMM => {
            count(Exit::Hypercall);
            hypercall(frame, vcpu);
        }
        ec::HVC64 if immediate == SMCCC_IMM => {
            count(Exit::Firmware);
            super::psci::handle(frame);
        }
        ec::SMC64 if immediate == SMCCC_IMM => {
            count(Exit::Firmware);
            // SMC traps with ELR at the SMC itself.
            skip_instruction(frame);
            super::psci::handle(frame);
        }
        // Not an SMCCC call, so the caller may not understand an SMCCC
        // error: an undefined instruction, as Xen answers. ELR must name
        // the instruction, and an HVC's is already past it.
        ec::HVC64 | ec::SMC64 => {
            count(Exit::Other);
            if class == ec::HVC64 {
                frame.elr -= 4;
            }
            static LIMIT: LogLimit = LogLimit::new();
            if let Some(n) = LIMIT.next() {
                let instruction = esr::class_name(class);
                log::warn!(
                    "d{}: {instruction} #{immediate:#x} at PC {:#x}; undefined instruction injected ({n} so far)",
                    super::this_domain_id(),
                    frame.elr
                );
            }
            inject_undefined(frame);
        }
        ec::DABT_LOWER => match super::emulate::mmio(frame, vcpu, faulting_ipa(frame), iss) {
            Ok(()) => {
                count(Exit::Mmio);
                skip_instruction(frame);
            }
            Err(_) => {
                count(Exit::Abort);
                inject_abort(frame, false);
            }
        },
        ec::IABT_LOWER => {
            count(Exit::Abort);
            inject_abort(frame, true);
        }
        ec::SYSREG => match super::emulate::sysreg(frame, vcpu, esr::sysreg_access(iss)) {
            Ok(exit) => {
                count(exit);
                skip_instruction(frame);
            }
            Err(_) => unexpected(frame, vcpu, class),
        },
        _ => unexpected(frame, vcpu, class),
    }
}

/// A trap nothing emulates: an undefined instruction for the guest.
fn unexpected(frame: &mut TrapFrame, vcpu: &Vcpu, class: u8) {
    vcpu.exits.count(Exit::Other);
    static LIMIT: LogLimit = LogLimit::new();
    if let Some(n) = LIMIT.next() {
        let class = esr::class_name(class);
        log::warn!(
            "d{}: unexpected trap ({class}, ESR {:#x}) at PC {:#x}; undefined instruction injected ({n} so far)",
            super::this_domain_id(),
            frame.esr,
            frame.elr
        );
    }
    inject_undefined(frame);
}

/// Past the trapped instruction (all are 4 bytes: the guest runs AArch64).
fn skip_instruction(frame: &mut TrapFrame) {
    frame.elr += 4;
}

/// An undefined instruction exception for the instruction at ELR.
fn inject_undefined(frame: &mut TrapFrame) {
    inject(frame, esr::syndrome(ec::UNKNOWN, 0), 0);
}

/// A Xen hypercall: number in x16, arguments in x0..x4, result in x0.
fn hypercall(frame: &mut TrapFrame, vcpu: &Vcpu) {
    use crate::xen::Outcome;
    let r = &frame.regs;
    let (number, args) = (r[16], [r[0], r[1], r[2], r[3], r[4]]);
    let domain = vcpu.domain().expect("a guest trapped, so its domain is built");
    let mut memory = crate::arch::guest_memory::GuestRam { domain };
    let board = &super::xen_board::Hardware { domain };
    let domains = &super::xen_board::MachineDomains;
    let mut call = crate::xen::Call { domain: domain.view(), vcpu: vcpu.id, memory: &mut memory, board, domains };
    match crate::xen::dispatch(&mut call, number, args) {
        Outcome::Return(result) => {
            if result == -crate::xen::errno::ENOSYS {
                log::debug!("d{}: hypercall {number} ({:#x}) not implemented", domain.id.0, args[0]);
            }
            frame.regs[0] = result as u64;
        }
        // Run the HVC again with the updated arguments, as Xen's
        // continuations do: the guest takes its interrupts in between.
        Outcome::Continue(next) => {
            frame.regs[..5].copy_from_slice(&next);
            frame.elr -= 4;
        }
        Outcome::Shutdown(reason) => shut_down(reason),
    }
}

/// Ends the machine for Dom0's shutdown hypercall, as Xen does for the
/// hardware domain; a DomU's ends that domain alone.
fn shut_down(reason: crate::xen::sched::Reason) -> ! {
    use crate::fatal::Stop;
    use crate::shutdown::stop_machine;
    use crate::xen::sched::Reason;
    if super::this_domain_id() != 0 {
        match reason {
            Reason::PowerOff => super::end_this_domu(format_args!("shutdown: power off")),
            Reason::Reboot => {
                super::end_this_domu(format_args!("shutdown: reboot, which is not supported; the domain stops"))
            }
            Reason::Crash => super::end_this_domu(format_args!("shutdown: crashed")),
            other => super::end_this_domu(format_args!("shutdown ({other:?})")),
        }
    }
    match reason {
        Reason::PowerOff => stop_machine(format_args!("shutdown: power off"), Stop::PowerOff),
        Reason::Reboot => {
            stop_machine(format_args!("shutdown: reboot, which is not supported; powering off"), Stop::PowerOff)
        }
        Reason::Crash => stop_machine(format_args!("shutdown: Dom0 crashed"), Stop::Dom0Crashed),
        other => stop_machine(format_args!("shutdown ({other:?}): halting"), Stop::Dom0Crashed),
    }
}

/// The IPA of a stage-2 fault: the page from HPFAR_EL2, the offset from FAR.
fn faulting_ipa(frame: &TrapFrame) -> u64 {
    ((HPFAR_EL2.get() >> 4) << 12) | (frame.far & 0xfff)
}

/// A guest access to an IPA with no stage-2 mapping: log it and give the
/// guest a synchronous external abort, as real hardware would for an
/// address with nothing behind it.
fn inject_abort(frame: &mut TrapFrame, instruction: bool) {
    let iss = esr::iss(frame.esr);
    let ipa = faulting_ipa(frame);
    // Another vCPU may have been changing this page's tables (between the
    // break and the make): once its lock is free, a page mapped by now is
    // simply tried again.
    if esr::is_translation_fault(iss)
        && crate::arch::cpu::this_cpu()
            .domain()
            .is_some_and(|d| d.stage2.lock_holding_no_xen_lock().translate(crate::mm::range::Ipa(ipa)).is_some())
    {
        return;
    }
    let what = if instruction {
        "instruction fetch"
    } else if esr::is_write(iss) {
        "write"
    } else {
        "read"
    };
    static LIMIT: LogLimit = LogLimit::new();
    if let Some(n) = LIMIT.next() {
        let d = super::this_domain_id();
        log::warn!(
            "d{d}: {what} at IPA {ipa:#x} (VA {:#x}, PC {:#x}) outside d{d}'s memory and devices; abort injected ({n} so far)",
            frame.far,
            frame.elr
        );
    }
    let from_el0 = frame.spsr & 0xf == 0;
    let class = match (instruction, from_el0) {
        (true, true) => ec::IABT_LOWER,
        (true, false) => ec::IABT_CURRENT,
        (false, true) => ec::DABT_LOWER,
        (false, false) => ec::DABT_CURRENT,
    };
    let write = !instruction && esr::is_write(iss);
    inject(frame, esr::syndrome(class, esr::external_abort_iss(write)), frame.far);
}

/// An SError from the guest (an external abort on a device it drives, say):
/// logged, and passed on to the guest as a virtual SError.
pub fn handle_guest_serror(frame: &mut TrapFrame) {
    static LIMIT: LogLimit = LogLimit::new();
    if let Some(n) = LIMIT.next() {
        log::warn!(
            "d{}: SError (ESR {:#x}) at PC {:#x}; virtual SError injected ({n} so far)",
            super::this_domain_id(),
            frame.esr,
            frame.elr
        );
    }
    HCR_EL2.modify(HCR_EL2::VSE.val(1));
}

/// Delivers a synchronous exception to the guest's EL1 vector table.
fn inject(frame: &mut TrapFrame, esr: u64, far: u64) {
    ESR_EL1.set(esr);
    FAR_EL1.set(far);
    aarch64_cpu::registers::ELR_EL1.set(frame.elr);
    SPSR_EL1.set(frame.spsr);
    const SPSR_AARCH32: u64 = 1 << 4;
    let offset = match frame.spsr & 0x1f {
        0b0_0101 => 0x200,                   // EL1h: current EL with SP_ELx
        0b0_0100 => 0x000,                   // EL1t: current EL with SP_EL0
        m if m & SPSR_AARCH32 != 0 => 0x600, // EL0 in AArch32
        _ => 0x400,                          // EL0 in AArch64
    };
    frame.elr = VBAR_EL1.get() + offset;
    frame.spsr = SPSR_EL1H_MASKED;
}
