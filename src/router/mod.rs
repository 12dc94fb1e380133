//! The top of the hypervisor: where a guest's exits and the machine's
//! interrupts arrive and are sent to what handles them (hypercalls to the
//! Xen ABI, accesses to emulated devices, firmware calls), and where the
//! Xen layer meets the real machine (`xen_board`). The one place that may
//! call into every other layer; nothing below calls up into it.

pub mod emulate;
pub mod psci;
pub mod traps;
pub mod xen_board;

use crate::arch::exception::{GuestException, Taken, TrapFrame};
use crate::arch::trap_counts::{Exit, count};
use crate::arch::vgic;

/// Every exception comes here from the vector table (`boot/vectors.S`),
/// with its `kind` (source and type). A guest's is served, and what it
/// raised meanwhile is put in its list registers before it runs again.
#[unsafe(no_mangle)]
extern "C" fn handle_exception(frame: &mut TrapFrame, kind: u64) {
    let Taken::FromGuest(exception) = Taken::from_kind(kind) else {
        return crate::crash::handle_at_el2(frame, kind);
    };
    match exception {
        GuestException::Synchronous => traps::handle_guest_sync(frame),
        GuestException::Irq => {
            count(Exit::Interrupt);
            vgic::handle_irq(hypervisor_device_interrupt);
        }
        GuestException::SError => traps::handle_guest_serror(frame),
        // Every interrupt is group 1 (the GIC filter sees to it), so none
        // is ever signalled as an FIQ.
        GuestException::Fiq => {}
    }
    // Another vCPU of this domain shut it down (and kicked us here).
    if let Some(domain) = crate::arch::cpu::this_cpu().domain()
        && domain.has_ended()
    {
        park_this_vcpu();
    }
    vgic::take_raised();
}

/// The id of the domain running on this CPU, for log lines (0 before any).
pub fn this_domain_id() -> u16 {
    crate::arch::cpu::this_cpu().domain().map_or(0, |d| d.id.0)
}

/// Ends the DomU running here for `why`: its vCPUs stop (this one now,
/// the others at their next exit, which a kick forces) and their CPUs
/// park; the machine and the other domains carry on. The last vCPU to
/// stop tears the domain down ([`tear_down`]): its memory goes back once
/// Dom0 maps none of it.
pub fn end_this_domu(why: core::fmt::Arguments<'_>) -> ! {
    let vcpu = crate::arch::cpu::this_vcpu();
    let domain = vcpu.domain().expect("a vCPU runs here");
    if domain.end() {
        log::info!("d{}: {why}; the domain's vCPUs stop, the machine carries on", domain.id.0);
        crate::arch::trap_counts::log(domain);
        // The kick, not an event: a vCPU with its event PPI (or every
        // interrupt) disabled must stop too, or the domain is never released.
        for other in domain.vcpus.iter().filter(|v| v.id != vcpu.id && v.power() != crate::domain::vcpu::Power::Off) {
            vgic::force_exit(other);
        }
        // As Xen tells its toolstack: Dom0 hears of it if it listens.
        if let Some(dom0) = crate::domain::dom0() {
            let board = xen_board::Hardware { domain: dom0 };
            crate::xen::events::raise_virq(&dom0.xen, &board, crate::xen::events::virq::DOM_EXC);
        }
    }
    park_this_vcpu()
}

/// Stops the vCPU running here for good and hands its CPU back to the
/// firmware (PSCI CPU_OFF), or parks it if the firmware refuses.
fn park_this_vcpu() -> ! {
    let vcpu = crate::arch::cpu::this_vcpu();
    let domain = vcpu.domain().expect("a vCPU runs here");
    log::info!("d{}: vCPU {} stopped; CPU {:#x} parked", domain.id.0, vcpu.id, crate::arch::cpu::this_mpidr());
    let refused = power_off_this_vcpu();
    log::warn!("d{}: firmware CPU_OFF refused ({refused:?}); the CPU waits instead", domain.id.0);
    wait_forever()
}

/// Turns the vCPU running here off, as a domain's end and the guest's own
/// PSCI CPU_OFF both do, in one order: its runstate OFFLINE, its power
/// Off, stage 2 off on this CPU (`arch::guest::stop_stage2`); then, if its
/// DomU has ended and this was its last vCPU running, the domain is torn
/// down here ([`tear_down`]), whatever exit got it here; then the CPU goes
/// to the firmware. Returns only if the firmware refused CPU_OFF, with its
/// answer; the domain may be gone by then (check `has_ended` before
/// touching anything of it).
fn power_off_this_vcpu() -> Result<(), smccc::psci::Error> {
    use crate::domain::vcpu::Power;
    use crate::xen::vcpu::{runstate, set_runstate};
    let vcpu = crate::arch::cpu::this_vcpu();
    let domain = vcpu.domain().expect("a vCPU runs here");
    set_runstate(&domain.xen, &xen_board::Hardware { domain }, vcpu.id, runstate::OFFLINE);
    vcpu.set_power(Power::Off);
    crate::arch::guest::stop_stage2();
    tear_down_if_last(domain);
    smccc::psci::cpu_off::<smccc::Smc>()
}

/// The CPU of a vCPU that stopped for good, once the firmware refused to
/// power it down: it waits at EL2, stage 2 off, touching nothing.
fn wait_forever() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Tears down the ended DomU `domain` if it ended and every vCPU of it has
/// stopped, for one caller only (as [`power_off_this_vcpu`] does).
fn tear_down_if_last(domain: &'static crate::domain::Domain) {
    if domain.id.0 != 0 && domain.take_teardown() {
        tear_down(domain);
    }
}

/// Tears down the ended DomU `domain`, all of whose vCPUs have stopped,
/// as Xen's `domain_kill` does ([`crate::xen::lifetime::kill`]): new calls
/// cannot reach it, its event channels close, its mappings of others'
/// frames go; then whatever is to be released now is (itself, if Dom0
/// maps nothing of it; otherwise Dom0's last unmap releases it).
fn tear_down(domain: &'static crate::domain::Domain) {
    let board = xen_board::Hardware { domain };
    let domains = xen_board::MachineDomains;
    let release = crate::xen::lifetime::kill(domain.view(), &board, &domains);
    let held = domain.xen.life.held();
    if held != 0 {
        log::info!(
            "d{}: ended; {held} of its frames still mapped by another domain: its memory waits for their unmap",
            domain.id.0
        );
    }
    for dead in release {
        crate::xen::Domains::release(&domains, dead);
    }
}

/// An interrupt of a device the hypervisor drives: today only its UART,
/// whose input is Dom0's console input, announced by VIRQ_CONSOLE.
fn hypervisor_device_interrupt(_intid: u32) {
    if crate::console::interrupt() == 0 {
        return;
    }
    if let Some(dom0) = crate::domain::dom0() {
        let board = xen_board::Hardware { domain: dom0 };
        crate::xen::events::raise_virq(&dom0.xen, &board, crate::xen::events::virq::CONSOLE);
    }
}
