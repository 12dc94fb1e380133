//! How often Dom0 left for the hypervisor, and why: counted on every exit,
//! logged at shutdown. Where a guest's time under the hypervisor goes (a
//! Linux boot makes thousands of GIC accesses, each a trap).

use core::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy)]
pub enum Exit {
    Hypercall,
    /// PSCI and other SMCCC calls, by HVC or SMC.
    Firmware,
    /// A distributor or redistributor access, emulated.
    GicAccess,
    /// ICC_SGI1R_EL1 written.
    Sgi,
    /// A stage-2 fault answered with an abort.
    Abort,
    Interrupt,
    Other,
}

const KINDS: usize = 7;
const NAMES: [&str; KINDS] =
    ["hypercalls", "firmware calls", "GIC accesses", "SGIs sent", "aborts", "interrupts", "other"];

static COUNTS: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];

pub fn count(exit: Exit) {
    COUNTS[exit as usize].fetch_add(1, Ordering::Relaxed);
}

/// One line: the total and each kind that occurred.
pub fn log() {
    let counts: [u64; KINDS] = core::array::from_fn(|i| COUNTS[i].load(Ordering::Relaxed));
    let mut line = arrayvec::ArrayString::<256>::new();
    for (name, n) in NAMES.iter().zip(counts).filter(|&(_, n)| n > 0) {
        let _ = core::fmt::write(&mut line, format_args!(", {n} {name}"));
    }
    log::info!("d0: {} exits to the hypervisor{line}", counts.iter().sum::<u64>());
}
