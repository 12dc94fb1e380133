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
