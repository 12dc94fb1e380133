//! The boot's phases, timed with the counter: at `loglvl=debug` each one's
//! length is logged, for people and for `cargo bench-qemu --only phases`.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The counter at the end of the last boot phase (see [`phase_done`]).
static PHASE_START: AtomicU64 = AtomicU64::new(0);

/// Starts the first phase; returns the counter then (the boot's entry).
pub fn start() -> u64 {
    let now = counter_ticks();
    PHASE_START.store(now, Relaxed);
    now
}

/// Logs, at debug level, how long the boot phase ending now took: where
/// the boot's time goes, for `loglvl=debug` and the benchmark.
pub fn phase_done(what: &str) {
    if log::log_enabled!(log::Level::Debug) {
        let now = counter_ticks();
        let start = PHASE_START.swap(now, Relaxed);
        log::debug!("boot phase: {what}: {} ticks", now - start);
    }
}

/// The physical counter (CNTPCT_EL0), read after earlier instructions complete.
pub fn counter_ticks() -> u64 {
    use aarch64_cpu::registers::CNTPCT_EL0;
    use tock_registers::interfaces::Readable;
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTPCT_EL0.get()
}
