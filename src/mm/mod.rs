//! Memory management: physical ranges, the frame allocator, the boot-time
//! memory plan and (on the board) the hypervisor heap.

pub mod audit;
pub mod frames;
pub mod plan;
pub mod range;
pub mod stage2;

#[cfg(target_os = "none")]
pub mod heap;

/// The frame allocator, once memory is set up at boot.
#[cfg(target_os = "none")]
pub static FRAMES: spin::Mutex<Option<frames::FrameAllocator<'static>>> = spin::Mutex::new(None);

/// Gives back to the frame allocator the frames of what `plan` kept as
/// `what` (the boot tree once copied, the modules once copied into Dom0).
#[cfg(target_os = "none")]
pub fn release(plan: &plan::MemoryPlan, name: &str, what: impl Fn(&plan::Keep) -> bool) {
    let mut guard = FRAMES.lock();
    let frames = guard.as_mut().expect("memory is up");
    for range in plan.releasable(what).iter() {
        match frames.free_range(range) {
            Ok(()) => log::info!("Freed {range} ({name})"),
            Err(e) => log::error!("could not free {range} ({name}): {e}"),
        }
    }
}
