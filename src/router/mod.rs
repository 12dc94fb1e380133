//! The top of the hypervisor: where a guest's exits and the machine's
//! interrupts arrive and are sent to what handles them (hypercalls to the
//! Xen ABI, accesses to emulated devices, firmware calls), and where the
//! Xen layer meets the real machine (`xen_board`). The one place that may
//! call into every other layer; nothing below calls up into it.

pub mod emulate;
pub mod traps;
pub mod xen_board;
