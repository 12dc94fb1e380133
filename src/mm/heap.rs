//! The hypervisor heap: `buddy_system_allocator` over frames taken from the
//! frame allocator at boot.

use super::range::PhysRange;
use buddy_system_allocator::LockedHeap;

/// Blocks up to 2^32 bytes: far more than one heap will hold.
#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Hands `region` to the heap.
///
/// # Safety
/// `region` must be RAM that nothing else uses, now or later.
pub unsafe fn init(region: PhysRange) {
    // SAFETY: forwarded from the caller.
    unsafe { HEAP.lock().init(region.start as usize, region.size() as usize) };
}

/// Bytes handed out and bytes managed.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.stats_alloc_actual(), heap.stats_total_bytes())
}
