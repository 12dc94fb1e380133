//! A domain's end, as Xen's `domain_kill` and `domain_relinquish_resources`
//! do it (`common/domain.c`): once its vCPUs have stopped, the domain is
//! *dying*: no new call may reach it (another domain's foreign or grant
//! map naming it fails as for a domain that is gone: -ESRCH, GNTST_bad_domain),
//! its event channels are closed (another domain's end of an interdomain
//! channel goes back to unbound, waiting for the dead domain, as
//! `evtchn_close` leaves it), and the mappings it held of other domains'
//! grants and frames are taken out. Its memory stays its own while another
//! domain still maps a frame of it (Xen holds a page reference for each
//! foreign map and each grant map); when the last goes, the domain is
//! *released*: the owner of the domain ([`Domains::release`]) gives its
//! frames, grant-table frames, stage-2 tables and VMID back.
//!
//! The references other domains hold are counted here ([`Life`]), under the
//! owner's stage-2 lock, the lock every such mapping already takes to pin
//! the frame; the domain's end takes the same lock to change its state, so
//! a map that raced with the end either counted before it or was refused.

use super::{Board, DomainView, Domains};
use crate::mm::stage2::Stage2Map;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};

const ALIVE: u8 = 0;
/// Ending: being cleaned up; not released yet whatever the count.
const DYING: u8 = 1;
/// Cleaned up; released when nothing of it is mapped elsewhere.
const DEAD: u8 = 2;
const RELEASED: u8 = 3;

/// Where a domain stands in its life, and how many references other
/// domains hold on its frames (foreign maps and grant maps).
pub struct Life {
    state: AtomicU8,
    held: AtomicU32,
}

impl Life {
    pub const fn new() -> Self {
        Self { state: AtomicU8::new(ALIVE), held: AtomicU32::new(0) }
    }

    /// Whether new calls may still reach the domain.
    pub fn is_alive(&self) -> bool {
        self.state.load(Ordering::Acquire) == ALIVE
    }

    pub fn is_released(&self) -> bool {
        self.state.load(Ordering::Acquire) == RELEASED
    }

    /// References other domains hold on its frames.
    pub fn held(&self) -> u32 {
        self.held.load(Ordering::Acquire)
    }

    /// Another domain maps a frame of this one: counted, unless the domain
    /// is ending (then the map must fail). `_stage2` is this domain's map,
    /// locked: the count changes only under that lock.
    pub fn hold(&self, _stage2: &Stage2Map) -> bool {
        if !self.is_alive() {
            return false;
        }
        self.held.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Another domain unmapped a frame of this one (`hold`'s undo); true if
    /// that was the last reference of a dead domain: the caller must have
    /// it released ([`Domains::release`]) once it holds none of its locks.
    #[must_use]
    pub fn let_go(&self, _stage2: &Stage2Map) -> bool {
        let before = self.held.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before > 0, "a reference let go that was never held");
        before == 1 && self.take_release()
    }

    /// Dead to released, once.
    fn take_release(&self) -> bool {
        self.held() == 0 && self.state.compare_exchange(DEAD, RELEASED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

#[cfg(test)]
impl Life {
    /// The domain begins ending (as [`kill`] first does), nothing more:
    /// for tests of calls racing with that.
    pub(crate) fn begin_ending(&self) {
        self.state.store(DYING, Ordering::Release);
    }
}

impl Default for Life {
    fn default() -> Self {
        Self::new()
    }
}

/// Ends `domain`, whose vCPUs have all stopped: it becomes unreachable,
/// its event channels close, its mappings of other domains' grants and
/// frames go. Returns the domains to release now (call
/// [`Domains::release`] on each): the domain itself if nothing of it is
/// mapped elsewhere, and any dead domain whose last mapped frame it held.
/// A domain already ending is left alone (an empty list).
pub fn kill(domain: DomainView<'_>, board: &dyn Board, domains: &dyn Domains) -> Vec<u16> {
    let life = &domain.xen.life;
    {
        let stage2 = domain.stage2.lock_holding_no_xen_lock();
        let _witness: &Stage2Map = &stage2;
        if life.state.compare_exchange(ALIVE, DYING, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Vec::new();
        }
    }
    super::events::close_all(domain, board, domains);
    let mut release = super::grant::release_mappings(domain, board, domains);
    let stage2 = domain.stage2.lock_holding_no_xen_lock();
    let _witness: &Stage2Map = &stage2;
    life.state.store(DEAD, Ordering::Release);
    if life.take_release() {
        release.push(domain.id);
    }
    release
}

/// What the Xen layer gave a released domain of the hypervisor's own
/// memory, given back (its grant-table frames), and what it still held of
/// other domains' frames, let go; the pages it shared with the hypervisor
/// (shared_info, each vCPU's vcpu_info and runstate area) are forgotten,
/// so nothing writes its frames again. Called once its stage 2 is gone
/// (nothing maps what is let go here any more) and before its RAM goes
/// back. Returns the number of grant-table frames, and the dead domains
/// whose last mapped frame went with it, to be released
/// ([`Domains::release`]). Its RAM, stage 2 and VMID are its owner's to
/// give back.
pub fn release_state(domain: DomainView<'_>, board: &dyn Board, domains: &dyn Domains) -> (u64, Vec<u16>) {
    debug_assert!(domain.xen.life.is_released());
    domain.xen.shared.forget();
    for vcpu in &domain.xen.vcpus {
        vcpu.forget_areas();
    }
    let release = super::grant::release_stranded(domain, board, domains);
    (domain.xen.grants.lock().release_frames(board), release)
}

#[cfg(test)]
mod tests;
