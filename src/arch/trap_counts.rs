//! How often Dom0 left for the hypervisor, and why: counted on every exit,
//! logged at shutdown. Where a guest's time under the hypervisor goes (a
//! Linux boot makes thousands of GIC accesses, each a trap).

use crate::dt::host::MAX_CPUS;
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

/// One CPU's counts, in a cache line of their own: counting on every exit
/// must not bounce a shared line between CPUs.
#[repr(align(64))]
struct Counts([AtomicU64; KINDS]);

static COUNTS: [Counts; MAX_CPUS] = [const { Counts([const { AtomicU64::new(0) }; KINDS]) }; MAX_CPUS];

pub fn count(exit: Exit) {
    // Only this CPU writes its line; relaxed is enough for a statistic.
    let mine = &COUNTS[super::cpu::this_cpu().index].0[exit as usize];
    mine.store(mine.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// One line: the total over all CPUs and each kind that occurred.
pub fn log() {
    let counts: [u64; KINDS] =
        core::array::from_fn(|i| COUNTS.iter().map(|cpu| cpu.0[i].load(Ordering::Relaxed)).sum());
    let mut line = arrayvec::ArrayString::<256>::new();
    for (name, n) in NAMES.iter().zip(counts).filter(|&(_, n)| n > 0) {
        let _ = core::fmt::write(&mut line, format_args!(", {n} {name}"));
    }
    log::info!("d0: {} exits to the hypervisor{line}", counts.iter().sum::<u64>());
}
