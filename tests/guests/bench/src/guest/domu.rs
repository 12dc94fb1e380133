//! The calls between domains, timed from Dom0 against a DomU serving
//! (`tests/guests/domu-probe` with `mode=serve`, `serve.rs`): Dom0 finds
//! the DomU's mailbox with a foreign map of its page 0x41000 into the first
//! extended region, waits for the magic, and then times
//!
//! - `foreign-map`: XENMEM_add_to_physmap_batch of one page in
//!   XENMAPSPACE_gmfn_foreign (one of the DomU's pattern pages into a page
//!   of the extended region), then XENMEM_remove_from_physmap of it: what
//!   Linux's privcmd does for one page;
//! - `grant-map`: GNTTABOP_map_grant_ref of the DomU's first grant
//!   (GNTMAP_host_map, into the extended region), then
//!   GNTTABOP_unmap_grant_ref: what gntdev does for one page;
//! - each of those two also in halves, `.map` and `.unmap`: the one call
//!   alone, timed by counter reads around it;
//! - `event-round-trip`: a ping (a new number in the mailbox's ping word),
//!   EVTCHNOP_send on the port bound to the DomU's (bind_interdomain, once),
//!   and the wait, polling Dom0's own shared_info, for the DomU's event
//!   back (the DomU polls its pending bit and answers each ping with one).
//!
//! Each checks its results (every call's status, the mapped page's
//! contents once, each event answered) and gives `n/a` with the reason
//! when something failed. Dom0 takes no interrupts: its events are read
//! from the pending bitmap of its shared_info, a page of its own RAM.

use super::board::Board;
use super::ops::{Timed, counter, frequency, time};
use super::out::{Figure, Out};
use core::arch::asm;
use core::cell::Cell;
use core::ptr::{addr_of_mut, read_volatile, write_volatile};

#[path = "../../../common/mailbox.rs"]
mod mailbox;
use mailbox::{MAGIC, MAILBOX, word};

/// The DomU's mailbox page (`serve.rs`'s `MAILBOX`), a guest frame number of its.
const MAILBOX_GFN: u64 = MAILBOX >> 12;
/// How long the DomU may take to publish its mailbox, and to answer.
const PUBLISH_SECONDS: u64 = 30;
const ANSWER_SECONDS: u64 = 1;

const MEMORY_OP: u64 = 12;
const GRANT_TABLE_OP: u64 = 20;
const EVENT_CHANNEL_OP: u64 = 32;
const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMEM_REMOVE_FROM_PHYSMAP: u64 = 15;
const XENMEM_ADD_TO_PHYSMAP_BATCH: u64 = 23;
const XENMAPSPACE_SHARED_INFO: u32 = 0;
const XENMAPSPACE_GMFN_FOREIGN: u16 = 4;
const GNTTABOP_MAP_GRANT_REF: u64 = 0;
const GNTTABOP_UNMAP_GRANT_REF: u64 = 1;
const GNTMAP_HOST_MAP: u32 = 1 << 1;
const EVTCHNOP_BIND_INTERDOMAIN: u64 = 0;
const EVTCHNOP_SEND: u64 = 4;
const DOMID_SELF: u16 = 0x7ff0;
/// shared_info's `evtchn_pending` bitmap (after the one legacy vcpu_info on Arm).
const EVTCHN_PENDING: u64 = 48;

/// Dom0's shared_info: a page of its RAM, as Linux gives one.
#[repr(C, align(4096))]
struct Page([u64; 512]);
static mut SHARED_INFO: Page = Page([0; 512]);

fn hypercall(number: u64, a0: u64, a1: u64, a2: u64) -> i64 {
    let result: u64;
    // SAFETY: the hypervisor writes only memory we point it at, and x0..x4.
    unsafe {
        asm!("hvc #0xea1", inout("x0") a0 => result, inout("x1") a1 => _, inout("x2") a2 => _,
             out("x3") _, out("x4") _, in("x16") number, options(nostack))
    };
    result as i64
}

fn read(addr: u64) -> u64 {
    // SAFETY: callers pass 8-byte aligned words of pages mapped in Dom0's
    // stage 2 (its RAM, or a DomU page it mapped).
    unsafe { read_volatile(addr as *const u64) }
}

fn write(addr: u64, value: u64) {
    // SAFETY: as in `read`.
    unsafe { write_volatile(addr as *mut u64, value) }
}

/// `struct xen_add_to_physmap_batch` (arm64).
#[repr(C)]
struct AddToPhysmapBatch {
    domid: u16,
    space: u16,
    size: u16,
    foreign_domid: u16,
    idxs: u64,
    gpfns: u64,
    errs: u64,
}

/// `struct xen_remove_from_physmap`.
#[repr(C)]
struct RemoveFromPhysmap {
    domid: u16,
    gpfn: u64,
}

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
struct MapGrantRef {
    host_addr: u64,
    flags: u32,
    gref: u32,
    dom: u16,
    status: i16,
    handle: u32,
    dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
struct UnmapGrantRef {
    host_addr: u64,
    dev_bus_addr: u64,
    handle: u32,
    status: i16,
}

/// Domain `domid`'s frame `gfn` mapped at Dom0's `page` (privcmd's way):
/// the call's result, then the entry's.
fn foreign_map(domid: u16, gfn: u64, page: u64) -> (i64, i32) {
    let idx = [gfn];
    let gpfn = [page >> 12];
    let mut err = [i32::MIN];
    let batch = AddToPhysmapBatch {
        domid: DOMID_SELF,
        space: XENMAPSPACE_GMFN_FOREIGN,
        size: 1,
        foreign_domid: domid,
        idxs: idx.as_ptr() as u64,
        gpfns: gpfn.as_ptr() as u64,
        errs: err.as_mut_ptr() as u64,
    };
    let rc = hypercall(MEMORY_OP, XENMEM_ADD_TO_PHYSMAP_BATCH, &batch as *const _ as u64, 0);
    // SAFETY: written by the hypervisor.
    (rc, unsafe { read_volatile(&err[0]) })
}

fn remove_from_physmap(page: u64) -> i64 {
    let arg = RemoveFromPhysmap { domid: DOMID_SELF, gpfn: page >> 12 };
    hypercall(MEMORY_OP, XENMEM_REMOVE_FROM_PHYSMAP, &arg as *const _ as u64, 0)
}

/// GNTTABOP_map_grant_ref of `gref` of `domid` at `page`: its handle.
fn grant_map(domid: u16, gref: u32, page: u64) -> Result<u32, &'static str> {
    let mut map = MapGrantRef {
        host_addr: page,
        flags: GNTMAP_HOST_MAP,
        gref,
        dom: domid,
        status: 0x777,
        handle: 0,
        dev_bus_addr: 0,
    };
    let rc = hypercall(GRANT_TABLE_OP, GNTTABOP_MAP_GRANT_REF, &mut map as *mut _ as u64, 1);
    // SAFETY: written by the hypervisor.
    let (status, handle) = unsafe { (read_volatile(&map.status), read_volatile(&map.handle)) };
    if rc != 0 || status != 0 {
        return Err("GNTTABOP_map_grant_ref failed");
    }
    Ok(handle)
}

fn grant_unmap(page: u64, handle: u32) -> Result<(), &'static str> {
    let mut unmap = UnmapGrantRef { host_addr: page, dev_bus_addr: 0, handle, status: 0x777 };
    let rc = hypercall(GRANT_TABLE_OP, GNTTABOP_UNMAP_GRANT_REF, &mut unmap as *mut _ as u64, 1);
    // SAFETY: written by the hypervisor.
    if rc != 0 || unsafe { read_volatile(&unmap.status) } != 0 {
        return Err("GNTTABOP_unmap_grant_ref failed");
    }
    Ok(())
}

/// Polls `done` for up to `seconds`.
fn wait(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let (start, limit) = (counter(), seconds * frequency());
    while !done() {
        if counter() - start > limit {
            return false;
        }
    }
    true
}

/// The DomU's pattern (`serve.rs`): word `w` of its frame `gfn`.
fn pattern(gfn: u64, w: u64) -> u64 {
    (gfn << 20 | w).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x7365_7276_6500_0000
}

/// What Dom0 learnt from the DomU's mailbox.
struct Peer {
    domid: u16,
    mailbox: u64,
    port: u32,
    gref: u32,
    pattern_gfn: u64,
}

/// Maps the mailbox at `page` and waits for the magic.
fn find_peer(domid: u16, page: u64, out: &mut Out) -> Result<Peer, &'static str> {
    let (rc, err) = foreign_map(domid, MAILBOX_GFN, page);
    if rc != 0 || err != 0 {
        out.line(format_args!("bench: foreign map of d{domid} gfn {MAILBOX_GFN:#x} at {page:#x}: {rc}, {err}"));
        return Err("the DomU's mailbox could not be mapped");
    }
    if !wait(PUBLISH_SECONDS, || read(page + word::MAGIC * 8) == MAGIC) {
        return Err("the DomU published no mailbox within 30 s");
    }
    let peer = Peer {
        domid,
        mailbox: page,
        port: read(page + word::PORT * 8) as u32,
        gref: read(page + word::REFS * 8) as u32,
        pattern_gfn: read(page + word::PATTERN_GFN * 8),
    };
    out.line(format_args!(
        "bench: d{domid}'s mailbox: port {}, grant ref {}, pattern gfn {:#x}",
        peer.port, peer.gref, peer.pattern_gfn
    ));
    Ok(peer)
}

/// A figure and its two halves: the map call alone and the unmap call
/// alone (each timed by counter reads around it).
struct Halves {
    both: Figure,
    map: Figure,
    unmap: Figure,
}

impl Halves {
    fn failed(why: &'static str) -> Self {
        Self { both: Err(why), map: Err(why), unmap: Err(why) }
    }
}

/// Times `n` rounds of `map` then `unmap` (each true if it worked).
fn time_halves(n: u64, mut map: impl FnMut() -> bool, mut unmap: impl FnMut() -> bool, why: &'static str) -> Halves {
    let (mut map_ticks, mut unmap_ticks) = (0, 0);
    let mut failed = false;
    let both = time(n, || {
        let start = counter();
        failed |= !map();
        let mapped = counter();
        failed |= !unmap();
        unmap_ticks += counter() - mapped;
        map_ticks += mapped - start;
    });
    if failed {
        return Halves::failed(why);
    }
    let half = |ticks| Ok(Timed { ticks, iterations: n });
    Halves { both: Ok(both), map: half(map_ticks), unmap: half(unmap_ticks) }
}

/// Foreign map and unmap of the DomU's first pattern page at `page`.
fn foreign_maps(peer: &Peer, page: u64, n: u64) -> Halves {
    // Once, untimed: the page mapped is the DomU's.
    let (rc, err) = foreign_map(peer.domid, peer.pattern_gfn, page);
    if rc != 0 || err != 0 {
        return Halves::failed("XENMEM_add_to_physmap_batch (gmfn_foreign) failed");
    }
    let right = (0..512).all(|w| read(page + w * 8) == pattern(peer.pattern_gfn, w));
    if remove_from_physmap(page) != 0 {
        return Halves::failed("XENMEM_remove_from_physmap failed");
    }
    if !right {
        return Halves::failed("the foreign page does not hold the DomU's pattern");
    }
    time_halves(
        n,
        || foreign_map(peer.domid, peer.pattern_gfn, page) == (0, 0),
        || remove_from_physmap(page) == 0,
        "a foreign map or its removal failed",
    )
}

fn grant_maps(peer: &Peer, page: u64, n: u64) -> Halves {
    let handle = match grant_map(peer.domid, peer.gref, page) {
        Ok(handle) => handle,
        Err(why) => return Halves::failed(why),
    };
    if let Err(why) = grant_unmap(page, handle) {
        return Halves::failed(why);
    }
    let handle = Cell::new(0);
    time_halves(
        n,
        || grant_map(peer.domid, peer.gref, page).map(|h| handle.set(h)).is_ok(),
        || grant_unmap(page, handle.get()).is_ok(),
        "a grant map or unmap failed",
    )
}

/// Dom0's shared_info mapped at a page of its RAM: its address.
fn map_shared_info() -> Result<u64, &'static str> {
    let shared = addr_of_mut!(SHARED_INFO) as u64;
    // struct xen_add_to_physmap: domid u16, size u16, space u32, idx u64, gpfn u64.
    let arg = [u64::from(DOMID_SELF) | u64::from(XENMAPSPACE_SHARED_INFO) << 32, 0, shared >> 12];
    match hypercall(MEMORY_OP, XENMEM_ADD_TO_PHYSMAP, arg.as_ptr() as u64, 0) {
        0 => Ok(shared),
        _ => Err("shared_info could not be mapped"),
    }
}

fn event_round_trips(peer: &Peer, shared: u64, n: u64, out: &mut Out) -> Figure {
    // struct evtchn_bind_interdomain: remote_dom u16, remote_port u32 @4, local_port u32 @8 (out).
    let mut bind = [u32::from(peer.domid), peer.port, 0];
    let rc = hypercall(EVENT_CHANNEL_OP, EVTCHNOP_BIND_INTERDOMAIN, bind.as_mut_ptr() as u64, 0);
    // SAFETY: written by the hypervisor.
    let local = unsafe { read_volatile(&bind[2]) };
    if rc != 0 {
        out.line(format_args!("bench: bind_interdomain to d{} port {}: {rc}", peer.domid, peer.port));
        return Err("EVTCHNOP_bind_interdomain failed");
    }
    let pending = shared + EVTCHN_PENDING + u64::from(local / 64) * 8;
    let bit = 1u64 << (local % 64);
    // Xen raises a freshly bound port once; start from nothing pending.
    write(pending, read(pending) & !bit);
    let ping_word = peer.mailbox + word::PING * 8;
    let mut ping = read(ping_word);
    let mut round_trip = || {
        ping += 1;
        write(ping_word, ping);
        // SAFETY: a barrier only: the ping is out before the event.
        unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
        let sent = hypercall(EVENT_CHANNEL_OP, EVTCHNOP_SEND, &local as *const u32 as u64, 0) == 0;
        let answered = sent && wait(ANSWER_SECONDS, || read(pending) & bit != 0);
        write(pending, read(pending) & !bit);
        answered
    };
    // Warm-up, untimed; the first also shows the path works.
    for _ in 0..16 {
        if !round_trip() {
            return Err("the DomU did not answer an event within 1 s");
        }
    }
    let before = read(peer.mailbox + word::PINGS_ANSWERED * 8);
    let mut lost = 0;
    let timed = time(n, || lost += u64::from(!round_trip()));
    let answered = read(peer.mailbox + word::PINGS_ANSWERED * 8) - before;
    if lost > 0 || answered != n {
        out.line(format_args!("bench: {lost} events unanswered; the DomU counted {answered} of {n}"));
        return Err("events were lost");
    }
    Ok(timed)
}

/// The extended region's first page mapped onto the DomU's mailbox, and
/// Dom0's shared_info: (peer, the region's start, shared_info).
fn set_up(board: &Board, domid: u16, out: &mut Out) -> Result<(Peer, u64, u64), &'static str> {
    let (start, end) = board.extended_region.ok_or("no extended region in /hypervisor's reg")?;
    if end - start < 3 * 0x1000 {
        return Err("the first extended region is smaller than 3 pages");
    }
    let shared = map_shared_info()?;
    Ok((find_peer(domid, start, out)?, start, shared))
}

/// The three figures, against domain `domid`.
pub fn run(board: &Board, domid: u16, out: &mut Out, n: u64) {
    let (peer, region, shared) = match set_up(board, domid, out) {
        Ok(found) => found,
        Err(why) => {
            for name in ["foreign-map", "grant-map", "event-round-trip"] {
                out.figure(name, Err(why));
            }
            return;
        }
    };
    let halves = foreign_maps(&peer, region + 0x1000, n);
    out.figure("foreign-map", halves.both);
    out.figure("foreign-map.map", halves.map);
    out.figure("foreign-map.unmap", halves.unmap);
    let halves = grant_maps(&peer, region + 0x2000, n);
    out.figure("grant-map", halves.both);
    out.figure("grant-map.map", halves.map);
    out.figure("grant-map.unmap", halves.unmap);
    let figure = event_round_trips(&peer, shared, n, out);
    out.figure("event-round-trip", figure);
}
