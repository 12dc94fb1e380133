//! Giving back a DomU that ended and that no other domain maps anything of
//! any more (the Xen layer's `lifetime` decides when), in an order that
//! leaves nothing reaching a frame once it is free: the domain leaves the
//! machine's registry first (no call between domains finds it again), the
//! TLB entries of its VMID go on every CPU, then its stage-2 tables (its
//! parked CPUs run with stage 2 off, `arch::guest::stop_stage2`), then
//! what the Xen layer held for it (its grant-table frames, the pages it
//! shared with the hypervisor forgotten, other domains' frames it still
//! mapped let go), then its RAM's frames and its VMID; then one log line
//! with the free frames (less those Dom0 ballooned out, as at shutdown),
//! which a test compares with the count before the DomU was built.

use crate::domain::{Domain, VMIDS};
use crate::mm::FRAMES;
use crate::mm::frames::order_size;
use crate::mm::stage2::Stage2Map;
use crate::xen::{Board, Domains};

pub fn release(domain: &'static Domain, board: &dyn Board, domains: &dyn Domains) {
    let d = domain.id.0;
    // First: `Domains::find` never returns a domain whose frames are going.
    crate::domain::unregister(domain.id);
    // Its vCPUs are stopped and nothing maps its frames: its stage 2 goes,
    // after every CPU forgot what it cached of it.
    let tables = {
        let mut stage2 = domain.stage2.lock_holding_no_xen_lock();
        crate::arch::guest::invalidate_vmid(domain.vmid.0, stage2.root_address());
        let before = stage2.tables();
        *stage2 = Stage2Map::new(stage2.geometry());
        before - stage2.tables()
    };
    // Nothing translates through it any more: the frames it mapped may go.
    let (grant_frames, others) = crate::xen::lifetime::release_state(domain.view(), board, domains);
    let (ram_frames, free) = {
        let mut guard = FRAMES.lock();
        let Some(frames) = guard.as_mut() else { return log::error!("d{d}: no frame allocator to release into") };
        let mut ram = 0;
        for &(pa, order) in &domain.blocks {
            match frames.free(pa, order) {
                Ok(()) => ram += order_size(order) / 4096,
                Err(e) => log::error!("d{d}: block {pa:#x} (order {order}) not freed: {e}"),
            }
        }
        (ram, frames.free_frames())
    };
    // Frames Dom0 ballooned out are free but its own to take back: not
    // counted, as at shutdown, so the count compares with the one before.
    let ballooned = crate::domain::dom0().map_or(0, |d| d.xen.ballooned.load(core::sync::atomic::Ordering::Acquire));
    let free = free.saturating_sub(ballooned);
    VMIDS.lock().free(domain.vmid);
    log::info!(
        "d{d}: released: {} frames back ({ram_frames} RAM, {grant_frames} grant table), {tables} stage-2 table pages, VMID {}; free frames {free} (before d{d} was built: {})",
        ram_frames + grant_frames,
        domain.vmid.0,
        domain.free_before_build
    );
    // Another dead domain whose last frame it mapped: released too.
    for other in others {
        domains.release(other);
    }
}
