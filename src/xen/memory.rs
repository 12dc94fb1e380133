//! `HYPERVISOR_memory_op` (`public/memory.h`): placing shared_info and the
//! grant-table frames in a domain's physmap, ballooning a 1:1 domain's own
//! RAM out and back in (IPA == PA, so a page comes back only as the very
//! frame that left), Dom0's foreign maps of a DomU's frames (privcmd's
//! add_to_physmap_batch, space gmfn_foreign), and removing pages. Errors and return values follow
//! Xen's `common/memory.c`: the reservation calls return how many extents
//! were done, whatever went wrong.

use super::Errno;
use super::errno::*;
use super::grant::Foreign;
use super::public::{Domid, XenAddToPhysmap, XenAddToPhysmapBatch, XenMemoryReservation, XenRemoveFromPhysmap};
use super::wire;
use super::{Call, Outcome};
use crate::mm::frames::FRAME_SIZE as PAGE;
use crate::mm::range::{GuestRange, Ipa, Pa};
use crate::mm::stage2::{Kind, Stage2Error};
use core::sync::atomic::Ordering;

pub mod op {
    pub const INCREASE_RESERVATION: u64 = 0;
    pub const DECREASE_RESERVATION: u64 = 1;
    pub const CURRENT_RESERVATION: u64 = 3;
    pub const MAXIMUM_RESERVATION: u64 = 4;
    pub const POPULATE_PHYSMAP: u64 = 6;
    pub const ADD_TO_PHYSMAP: u64 = 7;
    pub const MAXIMUM_GPFN: u64 = 14;
    pub const REMOVE_FROM_PHYSMAP: u64 = 15;
    pub const ADD_TO_PHYSMAP_BATCH: u64 = 23;
}

pub mod space {
    pub const SHARED_INFO: u16 = 0;
    pub const GRANT_TABLE: u16 = 1;
    pub const GMFN_RANGE: u16 = 3;
    pub const GMFN_FOREIGN: u16 = 4;
    pub const DEV_MMIO: u16 = 5;
}

/// The command's low bits; the rest is where a continued call resumes.
const EXTENT_SHIFT: u32 = 6;
const CMD_MASK: u64 = (1 << EXTENT_SHIFT) - 1;
/// Extents up to 2 MiB.
pub const MAX_EXTENT_ORDER: u32 = 9;
const POPULATE_ON_DEMAND: u32 = 1 << 16;
/// Pages changed (or batch entries done) before the call continues later.
const PAGES_PER_TRAP: u64 = 512;
const BATCH_PER_TRAP: u64 = 64;
/// No frame: refused before anything else, in every space.
const INVALID_GFN: u64 = u64::MAX;

/// `HYPERVISOR_memory_op(cmd, arg)`.
pub fn memory_op(call: &mut Call<'_>, args: [u64; 5]) -> Outcome {
    let (cmd, arg) = (args[0], args[1]);
    let (op, start) = (cmd & CMD_MASK, cmd >> EXTENT_SHIFT);
    let resume_at = |next: u64| {
        let mut again = args;
        again[0] = op | (next << EXTENT_SHIFT);
        again
    };
    match op {
        op::INCREASE_RESERVATION | op::DECREASE_RESERVATION | op::POPULATE_PHYSMAP => {
            reservation(call, op, start, arg).map_continue(resume_at)
        }
        op::ADD_TO_PHYSMAP_BATCH => add_to_physmap_batch(call, start, arg).map_continue(resume_at),
        op::ADD_TO_PHYSMAP if start != 0 => Outcome::from(EDOM),
        op::ADD_TO_PHYSMAP => add_to_physmap(call, arg).into(),
        op::REMOVE_FROM_PHYSMAP | op::CURRENT_RESERVATION | op::MAXIMUM_RESERVATION | op::MAXIMUM_GPFN
            if start != 0 =>
        {
            Outcome::from(EINVAL)
        }
        op::REMOVE_FROM_PHYSMAP => remove_from_physmap(call, arg).into(),
        op::CURRENT_RESERVATION | op::MAXIMUM_RESERVATION | op::MAXIMUM_GPFN => reservation_size(call, op, arg).into(),
        _ => Outcome::from(ENOSYS),
    }
}

/// `struct xen_memory_domain { domid_t domid; }`: pages now, pages at
/// most, highest frame number.
fn reservation_size(call: &mut Call<'_>, op: u64, arg: u64) -> Result<i64, Errno> {
    let b = wire::read::<Domid>(call.memory, arg)?;
    super::own_domain(call, b.dom)?;
    let ram = &call.domain.ram;
    let total: u64 = ram.iter().map(|r| r.size() / PAGE).sum();
    Ok(match op {
        op::CURRENT_RESERVATION => total - call.domain.xen.ballooned.load(Ordering::Acquire),
        op::MAXIMUM_RESERVATION => total,
        _ => ram.iter().map(|r| r.end / PAGE).max().unwrap_or(1) - 1,
    } as i64)
}

/// `struct xen_memory_reservation { handle extent_start; xen_ulong_t
/// nr_extents; uint extent_order, mem_flags; domid_t domid; }` (32 bytes).
fn reservation(call: &mut Call<'_>, op: u64, start: u64, arg: u64) -> Progress {
    let done = |n: u64| Progress::Done(Ok(n as i64));
    let Ok(r) = wire::read::<XenMemoryReservation>(call.memory, arg) else { return done(start) };
    let (list, count, order, flags) = (r.extent_start, r.nr_extents, r.extent_order, r.mem_flags);
    if count > u64::from(u32::MAX >> EXTENT_SHIFT) || start >= count || !super::is_self(call, r.domid) {
        return done(start);
    }
    // A 1:1 domain cannot take arbitrary new frames; PoD is not for oneself.
    if order > MAX_EXTENT_ORDER || op == op::INCREASE_RESERVATION || flags & POPULATE_ON_DEMAND != 0 {
        return done(start);
    }
    // A DomU's memory is fixed at build: the frame blocks it was built
    // from go back whole when it is released, so none leaves before (as
    // Xen would let it; `docs/xen-differences.md`).
    if !call.domain.is_direct_mapped() {
        return done(start);
    }
    let mut pages = 0;
    for i in start..count {
        if pages >= PAGES_PER_TRAP {
            return Progress::From(i);
        }
        let Some(gfn) = wire::element(list, i, 8).and_then(|at| wire::read::<u64>(call.memory, at).ok()) else {
            return done(i);
        };
        let extent =
            gfn.checked_add(1 << order).filter(|&end| end <= u64::MAX >> 12).map(|_| (gfn << 12, 1u64 << order));
        let ok = extent.is_some_and(|(base, n)| {
            if op == op::DECREASE_RESERVATION { decrease(call, base, n) } else { populate(call, base, n) }
        });
        if !ok {
            return done(i);
        }
        pages += 1 << order;
    }
    done(count)
}

/// Balloons out `n` pages from `base`: all must be the domain's own mapped,
/// unpinned RAM; unmapped, and their frames go back to the allocator. The
/// domain must be 1:1 (Dom0): each page's frame is at its own address.
fn decrease(call: &Call<'_>, base: u64, n: u64) -> bool {
    let domain = call.domain;
    if !domain.is_direct_mapped() {
        return false;
    }
    {
        let mut stage2 = domain.stage2.lock_holding_no_xen_lock();
        let pages = (0..n).map(|i| base + i * PAGE);
        if !pages.clone().all(|p| domain.has_page(&stage2, Ipa(p)) && !stage2.is_pinned(Ipa(p))) {
            return false;
        }
        for (done, page) in pages.enumerate() {
            if stage2.unmap_page(Ipa(page), call.board).is_err() {
                // Out of tables splitting a block: put back what went, into
                // the tables it left, which needs none.
                for p in (0..done as u64).map(|i| base + i * PAGE) {
                    stage2
                        .map_page(Ipa(p), Pa::identity_of(Ipa(p)), Kind::Ram, call.board)
                        .expect("a page just unmapped maps back");
                }
                return false;
            }
        }
    }
    // Unmapped, and every CPU's TLB told: nothing can reach the frames.
    (0..n).for_each(|i| call.board.free_frame(base + i * PAGE));
    domain.xen.ballooned.fetch_add(n, Ordering::AcqRel);
    true
}

/// Balloons back in `n` pages from `base`: the domain's RAM, unmapped now,
/// and each frame still free to take back. Zeroed before the guest sees it.
/// The domain must be 1:1 (Dom0): each page gets the frame of its own address.
fn populate(call: &Call<'_>, base: u64, n: u64) -> bool {
    let domain = call.domain;
    if !domain.is_direct_mapped() {
        return false;
    }
    let board = call.board;
    let mut stage2 = domain.stage2.lock_holding_no_xen_lock();
    let pages = (0..n).map(|i| base + i * PAGE);
    let in_ram = domain.owns_ram(&GuestRange::new(base, base + n * PAGE));
    if !in_ram || pages.clone().any(|p| stage2.translate(Ipa(p)).is_some()) {
        return false;
    }
    let mut claimed = 0;
    for page in pages.clone() {
        if !board.claim_frame(page) {
            break;
        }
        claimed += 1;
    }
    let mut mapped = 0;
    if claimed == n {
        for page in pages.clone() {
            super::shared::zero_page(board, page);
            if stage2.map_page(Ipa(page), Pa::identity_of(Ipa(page)), Kind::Ram, board).is_err() {
                break;
            }
            mapped += 1;
        }
    }
    if mapped < n {
        for page in pages.clone().take(mapped as usize) {
            let _ = stage2.unmap_page(Ipa(page), board);
        }
        pages.take(claimed as usize).for_each(|p| board.free_frame(p));
        return false;
    }
    domain.xen.ballooned.fetch_sub(n, Ordering::AcqRel);
    true
}

/// `struct xen_add_to_physmap { domid_t domid; uint16_t size; uint space;
/// xen_ulong_t idx; xen_pfn_t gpfn; }` (24 bytes).
fn add_to_physmap(call: &mut Call<'_>, arg: u64) -> Result<i64, Errno> {
    let b = wire::read::<XenAddToPhysmap>(call.memory, arg)?;
    let (domid, space, idx, gpfn) = (b.domid, b.space, b.idx, b.gpfn);
    if space == u32::from(space::GMFN_FOREIGN) {
        return Err(ENOSYS);
    }
    super::own_domain(call, domid)?;
    if gpfn == INVALID_GFN {
        return Err(EINVAL);
    }
    add_one(call, space, idx, gpfn).map(|()| 0)
}

/// One entry of add_to_physmap(_batch): what Xen's Arm `xenmem_add_to_physmap_one` does.
fn add_one(call: &Call<'_>, space: u32, idx: u64, gpfn: u64) -> Result<(), Errno> {
    // A space not offered is ENOSYS whatever the frame number, as in Xen.
    let page = || if gpfn > u64::MAX >> 12 { Err(EINVAL) } else { Ok(gpfn << 12) };
    let domain = call.domain;
    match u16::try_from(space) {
        Ok(space::SHARED_INFO) => {
            if idx != 0 {
                return Err(EINVAL);
            }
            let page = page()?;
            let mut stage2 = domain.stage2.lock_holding_no_xen_lock();
            // Like Xen, a page already placed must be removed before it moves.
            if domain.xen.shared.address().is_some() {
                return Err(EBUSY);
            }
            // Its own RAM page: 1:1 for Dom0, any frame for a DomU.
            let Some(frame) = domain.own_frame(&stage2, Ipa(page)) else { return Err(EINVAL) };
            stage2.pin(Ipa(page));
            domain.xen.shared.register(call.board, frame.0);
            Ok(())
        }
        Ok(space::GRANT_TABLE) => {
            let page = page()?;
            let mut grants = domain.xen.grants.lock();
            let mut stage2 = domain.stage2.lock_after_grants(&grants);
            grants.map_frame(&mut stage2, call.board, idx, page)
        }
        _ => Err(ENOSYS),
    }
}

/// `struct xen_add_to_physmap_batch { domid_t domid; uint16_t space, size;
/// domid_t foreign_domid; handle idxs, gpfns, errs; }` (32 bytes). Per-entry
/// results go to `errs`.
fn add_to_physmap_batch(call: &mut Call<'_>, start: u64, arg: u64) -> Progress {
    let result = (|| {
        let start = u16::try_from(start).map_err(|_| EDOM)?;
        let b = wire::read::<XenAddToPhysmapBatch>(call.memory, arg)?;
        let (domid, space, size, foreign) = (b.domid, b.space, b.size, b.foreign_domid);
        let (idxs, gpfns, errs) = (b.idxs, b.gpfns, b.errs);
        if space == space::GMFN_RANGE {
            return Err(EOPNOTSUPP);
        }
        super::own_domain(call, domid)?;
        if size < start || (size == start && start != 0) {
            return Err(EILSEQ);
        }
        if space == space::DEV_MMIO && foreign != 0 {
            return Err(EOPNOTSUPP);
        }
        for (n, i) in (u64::from(start)..u64::from(size)).enumerate() {
            if n as u64 == BATCH_PER_TRAP {
                return Ok(Some(i));
            }
            let element = |base: u64, size: u64| wire::element(base, i, size).ok_or(EFAULT);
            let idx = wire::read::<u64>(call.memory, element(idxs, 8)?)?;
            let gpfn = wire::read::<u64>(call.memory, element(gpfns, 8)?)?;
            if gpfn == INVALID_GFN {
                return Err(EINVAL);
            }
            let rc = if space == space::GMFN_FOREIGN {
                add_foreign(call, foreign, idx, gpfn).err().map_or(0, Errno::to_x0)
            } else {
                add_one(call, u32::from(space), idx, gpfn).err().map_or(0, Errno::to_x0)
            };
            wire::write(call.memory, element(errs, 4)?, &(rc as i32))?;
        }
        Ok(None)
    })();
    match result {
        Ok(None) => Progress::Done(Ok(0)),
        Ok(Some(next)) => Progress::From(next),
        Err(e) => Progress::Done(Err(e)),
    }
}

/// One gmfn_foreign entry (privcmd's foreign maps): domain `foreign`'s
/// frame `idx` mapped at the caller's `gpfn`, as Xen's Arm
/// `xenmem_add_to_physmap_one` checks it: no such domain -ESRCH, the caller
/// itself -EINVAL, a caller other than Dom0 -EPERM, a frame that is not the
/// other's RAM -EINVAL. The caller's page must be unmapped (-EBUSY) and
/// outside its grant region. The frame stays the other domain's, pinned in
/// its stage 2 until remove_from_physmap.
fn add_foreign(call: &Call<'_>, foreign: u16, idx: u64, gpfn: u64) -> Result<(), Errno> {
    if super::is_self(call, foreign) {
        return Err(EINVAL);
    }
    // A domain that ended is as if gone, as for a destroyed one under Xen.
    let owner = call.domains.find(foreign).filter(|o| o.xen.life.is_alive()).ok_or(ESRCH)?;
    if call.domain.id != 0 {
        return Err(EPERM);
    }
    if idx > u64::MAX >> 12 || gpfn > u64::MAX >> 12 {
        return Err(EINVAL);
    }
    let (page, their_page) = (gpfn << 12, idx << 12);
    let domain = call.domain;
    let mut grants = domain.xen.grants.lock();
    let mut stage2 = domain.stage2.lock_after_grants(&grants);
    // Dom0's stage 2 before the other's: lower domid first. None of the
    // other domain's Xen locks is held.
    let mut theirs = owner.stage2.lock_holding_no_xen_lock();
    // Its state changes only under the lock just taken.
    if !owner.xen.life.is_alive() {
        return Err(ESRCH);
    }
    let frame = owner.own_frame(&theirs, Ipa(their_page)).ok_or(EINVAL)?;
    if grants.region().contains(page) {
        return Err(EINVAL);
    }
    stage2.map_page(Ipa(page), frame, Kind::Granted { writable: true }, call.board).map_err(|e| match e {
        Stage2Error::Mapped => EBUSY,
        Stage2Error::NoTables => ENOMEM,
        _ => EINVAL,
    })?;
    theirs.pin(Ipa(their_page));
    let held = owner.xen.life.hold(&theirs);
    debug_assert!(held, "checked alive under the same lock");
    grants.add_foreign(page, Foreign { dom: foreign, page: their_page });
    // Logged with no lock held: the test compares these IPAs with the
    // extended regions (privcmd's pages have no frame in Dom0's pagemap).
    // At debug level: at info, the line cost a foreign map eight times
    // its work on QEMU (`docs/benchmarks.md`, (b')).
    drop((theirs, stage2, grants));
    log::debug!("d{}: foreign map of d{foreign} gfn {idx:#x} at IPA {page:#x}", domain.id);
    Ok(())
}

/// `struct xen_remove_from_physmap { domid_t domid; xen_pfn_t gpfn; }`:
/// a RAM page is ballooned out, a grant-table frame unmapped (it stays the
/// table's), a foreign frame unmapped (and unpinned in its domain). Pinned pages (shared areas) and grant mappings (unmapped with
/// unmap_grant_ref only) stay.
fn remove_from_physmap(call: &mut Call<'_>, arg: u64) -> Result<i64, Errno> {
    let b = wire::read::<XenRemoveFromPhysmap>(call.memory, arg)?;
    super::own_domain(call, b.domid)?;
    let gpfn = b.gpfn;
    if gpfn > u64::MAX >> 12 {
        return Err(ENOENT);
    }
    let page = gpfn << 12;
    let domain = call.domain;
    let is_ram = {
        let mut grants = domain.xen.grants.lock();
        let mut stage2 = domain.stage2.lock_after_grants(&grants);
        match stage2.translate(Ipa(page)) {
            None | Some(crate::mm::stage2::Leaf { kind: Kind::Device, .. }) => return Err(ENOENT),
            Some(_) if grants.frame_at(page).is_some() => {
                stage2.unmap_page(Ipa(page), call.board).map_err(|_| EINVAL)?;
                grants.forget_mapping(page);
                return Ok(0);
            }
            Some(_) if let Some(foreign) = grants.foreign_at(page) => {
                stage2.unmap_page(Ipa(page), call.board).map_err(|_| EINVAL)?;
                grants.take_foreign(page);
                log::debug!(
                    "d{}: foreign unmap of d{} gfn {:#x} at IPA {page:#x}",
                    domain.id,
                    foreign.dom,
                    foreign.page >> 12
                );
                // Lower domid first: only Dom0 maps foreign frames.
                let last = call.domains.find(foreign.dom).is_some_and(|owner| {
                    let mut theirs = owner.stage2.lock_holding_no_xen_lock();
                    theirs.unpin(Ipa(foreign.page));
                    owner.xen.life.let_go(&theirs)
                });
                drop(stage2);
                drop(grants);
                // The last mapping of an ended domain's frames went: it goes too.
                if last {
                    call.domains.release(foreign.dom);
                }
                return Ok(0);
            }
            // A DomU's RAM stays (its memory is fixed at build): the
            // answer for a page that cannot be removed now, as for Dom0's
            // pinned pages.
            Some(_) if !domain.is_direct_mapped() => return Err(EBUSY),
            Some(_) => domain.has_page(&stage2, Ipa(page)),
        }
    };
    if !is_ram {
        return Err(EINVAL);
    }
    if decrease(call, page, 1) { Ok(0) } else { Err(EBUSY) }
}

/// Where a call that works through a list stands.
enum Progress {
    Done(Result<i64, Errno>),
    /// Continue later from this element.
    From(u64),
}

impl Progress {
    fn map_continue(self, resume_at: impl Fn(u64) -> [u64; 5]) -> Outcome {
        match self {
            Progress::Done(result) => result.into(),
            Progress::From(next) => Outcome::Continue(resume_at(next)),
        }
    }
}

#[cfg(test)]
mod tests;
