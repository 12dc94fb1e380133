//! TLB and cache maintenance: the few instructions `aarch64-cpu` does not wrap.

use aarch64_cpu::asm::barrier;
use core::arch::asm;

/// Cache line size to step by: the architectural minimum, always safe.
const MIN_LINE: usize = 16;

/// Invalidates the EL2 TLB of this CPU.
pub fn tlb_invalidate_el2() {
    // SAFETY: TLB invalidation changes no memory and no register state.
    unsafe { asm!("dsb ishst", "tlbi alle2", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    (4usize << ((ctr >> 16) & 0xf)).max(MIN_LINE) as u64
}

/// Runs `op` on each cache line of `[start, start + len)`, then waits.
fn each_line(start: u64, len: u64, op: impl Fn(u64)) {
    let line = dcache_line();
    let mut addr = start & !(line - 1);
    while addr < start.saturating_add(len) {
        op(addr);
        addr += line;
    }
    barrier::dsb(barrier::SY);
}

/// Cleans the data cache lines of `[start, start + len)` to the point of
/// coherency, so that a guest running with its MMU and caches off reads
/// what we wrote through the cache.
pub fn dcache_clean(start: u64, len: u64) {
    // SAFETY: cleaning writes back dirty lines; memory contents stay.
    each_line(start, len, |addr| unsafe { asm!("dc cvac, {}", in(reg) addr, options(nostack, preserves_flags)) });
}

/// Invalidates the data cache lines of `[start, start + len)` to the point
/// of coherency, discarding whatever a boot loader left dirty there, so that
/// lines evicted later cannot overwrite what we write with the MMU off.
pub fn dcache_invalidate(start: u64, len: u64) {
    // SAFETY: invalidation only drops cached copies of memory the caller
    // owns and has not written through the cache yet.
    each_line(start, len, |addr| unsafe { asm!("dc ivac, {}", in(reg) addr, options(nostack, preserves_flags)) });
}
