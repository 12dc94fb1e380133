//! Memory the hypervisor and a guest both write: `shared_info`, each vCPU's
//! `vcpu_info`, the runstate areas, grant entries. The guest changes these
//! words concurrently, so every access is an atomic operation on the
//! hypervisor's own mapping of the frame ([`Board::word`]).
//!
//! Where shared_info lives: a 1:1 Dom0 names a page of its own RAM (Linux
//! gives a zeroed page it allocated), and the hypervisor keeps shared_info
//! in that very page instead of mapping a frame of its own over it as Xen
//! does. Nothing in stage 2 changes and no frame is spent; what Xen's
//! remapping guarantees (the guest cannot free the page under the
//! hypervisor) comes from pinning the frame: ballooning it out or removing
//! it from the physmap is refused while it is registered.

use super::Board;
use crate::mm::frames::FRAME_SIZE as PAGE;
use core::sync::atomic::{AtomicU64, Ordering};

/// Layout of `struct shared_info` and `struct vcpu_info` on arm64.
pub mod layout {
    pub const VCPU_INFO_SIZE: u64 = 48;
    /// `evtchn_upcall_pending`: a byte at offset 0.
    pub const UPCALL_PENDING: u64 = 0;
    pub const PENDING_SEL: u64 = 8;
    /// `evtchn_pending[64]` and `evtchn_mask[64]` in shared_info.
    pub const EVTCHN_PENDING: u64 = 48;
    pub const EVTCHN_MASK: u64 = 560;
    pub const WC_VERSION: u64 = 1072;
    pub const WC_SEC: u64 = 1076;
    pub const WC_NSEC: u64 = 1080;
    pub const WC_SEC_HI: u64 = 1084;
}

/// No address registered.
pub const NONE: u64 = u64::MAX;

/// Where a domain's shared_info is, and the wall clock it carries.
pub struct SharedInfo {
    address: AtomicU64,
    /// Wall-clock time at system time 0, as (seconds, nanoseconds), once
    /// Dom0 has set it.
    wallclock: spin::Mutex<Option<(u64, u32)>>,
}

impl SharedInfo {
    pub fn new() -> Self {
        Self { address: AtomicU64::new(NONE), wallclock: spin::Mutex::new(None) }
    }

    /// The physical address of shared_info, once registered.
    pub fn address(&self) -> Option<u64> {
        let address = self.address.load(Ordering::Acquire);
        (address != NONE).then_some(address)
    }

    /// Starts using the (pinned) page at `pa`: zeroes it, as Xen's page
    /// starts, puts the wall clock in, and publishes it.
    pub fn register(&self, board: &dyn Board, pa: u64) {
        zero_page(board, pa);
        if let Some((sec, nsec)) = *self.wallclock.lock() {
            write_wallclock(board, pa, sec, nsec);
        }
        self.address.store(pa, Ordering::Release);
    }

    /// Stops using the page (a released domain's, whose frame goes back):
    /// nothing is written there again.
    pub fn forget(&self) {
        self.address.store(NONE, Ordering::Release);
    }

    /// Records the wall clock and updates the page if there is one.
    pub fn set_wallclock(&self, board: &dyn Board, sec: u64, nsec: u32) {
        let mut wallclock = self.wallclock.lock();
        *wallclock = Some((sec, nsec));
        if let Some(pa) = self.address() {
            write_wallclock(board, pa, sec, nsec);
        }
    }
}

impl Default for SharedInfo {
    fn default() -> Self {
        Self::new()
    }
}

pub fn zero_page(board: &dyn Board, pa: u64) {
    for offset in (0..PAGE).step_by(8) {
        board.word(pa + offset).store(0, Ordering::Relaxed);
    }
    core::sync::atomic::fence(Ordering::Release);
}

fn word_and_mask(board: &dyn Board, bitmap: u64, bit: u32) -> (&AtomicU64, u64) {
    (board.word(bitmap + u64::from(bit / 64) * 8), 1 << (bit % 64))
}

/// Sets bit `bit` of the bitmap at `bitmap`; whether it was set before.
pub fn test_and_set_bit(board: &dyn Board, bitmap: u64, bit: u32) -> bool {
    let (word, mask) = word_and_mask(board, bitmap, bit);
    word.fetch_or(mask, Ordering::AcqRel) & mask != 0
}

/// Clears bit `bit`; whether it was set before.
pub fn test_and_clear_bit(board: &dyn Board, bitmap: u64, bit: u32) -> bool {
    let (word, mask) = word_and_mask(board, bitmap, bit);
    word.fetch_and(!mask, Ordering::AcqRel) & mask != 0
}

pub fn test_bit(board: &dyn Board, bitmap: u64, bit: u32) -> bool {
    let (word, mask) = word_and_mask(board, bitmap, bit);
    word.load(Ordering::Acquire) & mask != 0
}

/// A 32-bit field at `pa` (4-byte aligned), changed without touching its
/// neighbour in the same word.
pub fn store_u32(board: &dyn Board, pa: u64, value: u32) {
    let word = board.word(pa & !7);
    let shift = (pa & 4) * 8;
    let _ = word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
        Some((w & !(0xffff_ffff << shift)) | (u64::from(value) << shift))
    });
}

pub fn load_u32(board: &dyn Board, pa: u64) -> u32 {
    (board.word(pa & !7).load(Ordering::Acquire) >> ((pa & 4) * 8)) as u32
}

/// Writes the wall clock into shared_info with Xen's protocol: the version
/// is odd while the fields change.
fn write_wallclock(board: &dyn Board, page: u64, sec: u64, nsec: u32) {
    use layout::*;
    let version = load_u32(board, page + WC_VERSION);
    store_u32(board, page + WC_VERSION, version.wrapping_add(1));
    store_u32(board, page + WC_SEC, sec as u32);
    store_u32(board, page + WC_NSEC, nsec);
    store_u32(board, page + WC_SEC_HI, (sec >> 32) as u32);
    store_u32(board, page + WC_VERSION, version.wrapping_add(2));
}
