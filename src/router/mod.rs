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
    vgic::take_raised();
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
