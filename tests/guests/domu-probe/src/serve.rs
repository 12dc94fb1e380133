//! Serve mode (`mode=serve` on the DomU's command line): the DomU side of
//! Dom0's test of the calls between domains (`gnttest --domu`).
//!
//! It maps its shared_info (a page of its own RAM) and grant-table frame 0
//! (at GUEST_GNTTAB_BASE), fills `PATTERN_PAGES` pages with a pattern Dom0
//! checks through privcmd, grants `GRANTS` pages to domain 0 (writable),
//! allocates an unbound event channel for domain 0 and publishes all of it
//! in the mailbox page at the fixed address [`MAILBOX`] (inside its RAM for
//! any DomU of 32 MiB or more). Then it loops: it bumps the mailbox's
//! counter and polls its port's pending bit in shared_info, with its
//! interrupts masked (polling answers fastest, and the same way under
//! both hypervisors; `interrupts.rs` checks the upcall itself). On an
//! event it reads Dom0's request from granted page 0, writes the reply
//! there and into granted page 1, and sends an event back; Dom0's shutdown
//! word in the mailbox (with an event) ends it with SCHEDOP_shutdown (poweroff).
//! A ping (Dom0 writes a new number into the mailbox's ping word, then
//! sends an event) is answered with exactly one event back and nothing
//! else: the benchmark Dom0's event round trip (`tests/guests/bench`).
//!
//! What its own checks found goes both to `(d1)` console lines (refused
//! under Xen 4.17's release build) and into the mailbox, as counts and as
//! text, which Dom0 reads and prints.
//!
//! The MMU is off: addresses are IPAs, and data accesses are Device
//! memory (QEMU does not model the caches; on hardware the pages shared
//! with Dom0 and the hypervisor would want the MMU on, as write-back).

#[path = "../../common/mailbox.rs"]
mod mailbox;

use crate::probe::{Report, hypercall, shutdown};
use core::fmt::{self, Write};
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering, fence};
pub use mailbox::{MAGIC, MAILBOX, SHUTDOWN_ASKED};
use mailbox::{pattern, reply, request, word};

/// The pages Dom0 maps with privcmd (foreign maps), after the mailbox.
const PATTERN: u64 = MAILBOX + 0x1000;
const PATTERN_PAGES: u64 = 4;
/// The pages granted to Dom0, after those.
const GRANTED: u64 = PATTERN + PATTERN_PAGES * 0x1000;
const GRANTS: u64 = 4;
/// A page of its RAM for shared_info (Linux gives one too).
const SHARED_INFO: u64 = GRANTED + GRANTS * 0x1000;
/// Xen's GUEST_GNTTAB_BASE: grant-table frame 0.
const GNTTAB: u64 = 0x3800_0000;
/// The first grant reference a guest uses (0..7 are the toolstack's).
const FIRST_REF: u64 = 8;

const MEMORY_OP: u64 = 12;
const GRANT_TABLE_OP: u64 = 20;
const EVENT_CHANNEL_OP: u64 = 32;
const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMAPSPACE_SHARED_INFO: u32 = 0;
const XENMAPSPACE_GRANT_TABLE: u32 = 1;
const GNTTABOP_QUERY_SIZE: u64 = 6;
const EVTCHNOP_SEND: u64 = 4;
const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
const DOMID_SELF: u16 = 0x7ff0;
const GTF_PERMIT_ACCESS: u16 = 1;
/// shared_info's `evtchn_pending` bitmap, and vcpu_info[0]'s fields.
const EVTCHN_PENDING: u64 = 48;
const UPCALL_PENDING: u64 = 0;
const PENDING_SEL: u64 = 8;

fn read(addr: u64) -> u64 {
    // SAFETY: the callers pass pages of its RAM, the mailbox's and the
    // grant table's, all mapped and 8-byte aligned.
    unsafe { read_volatile(addr as *const u64) }
}

fn write(addr: u64, value: u64) {
    // SAFETY: as in `read`.
    unsafe { write_volatile(addr as *mut u64, value) }
}

fn mailbox(w: u64, value: u64) {
    write(MAILBOX + w * 8, value);
}

/// A word shared with another writer (the hypervisor), changed atomically.
fn atomic(addr: u64) -> &'static AtomicU64 {
    // SAFETY: 8-byte aligned, mapped for the program's life; only atomics touch it.
    unsafe { AtomicU64::from_ptr(addr as *mut u64) }
}

/// The report's text, kept in the mailbox as well as sent to the console.
struct Text;

impl Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let base = MAILBOX + word::TEXT * 8;
        let room = 0x1000 - word::TEXT * 8;
        let mut len = read(MAILBOX + word::TEXT_LEN * 8);
        for &b in s.as_bytes() {
            if len < room {
                // SAFETY: inside the mailbox page.
                unsafe { write_volatile((base + len) as *mut u8, b) };
                len += 1;
            }
        }
        mailbox(word::TEXT_LEN, len);
        Ok(())
    }
}

fn check(r: &mut Report, ok: bool, what: fmt::Arguments<'_>) {
    let verdict = if ok { "ok" } else { "FAIL" };
    let _ = writeln!(Text, "domu-serve: {verdict}: {what}");
    r.check(ok, format_args!("serve: {what}"));
    mailbox(word::CHECKS, u64::from(r.checks));
    mailbox(word::FAILURES, u64::from(r.failures));
}

fn say(r: &mut Report, what: fmt::Arguments<'_>) {
    let _ = writeln!(Text, "domu-serve: {what}");
    r.say(format_args!("serve: {what}"));
}

/// XENMEM_add_to_physmap of `space` index `idx` at `gfn`.
fn add_to_physmap(space: u32, idx: u64, gfn: u64) -> i64 {
    // struct xen_add_to_physmap: domid u16, size u16, space u32, idx u64, gpfn u64.
    let mut arg = [0u64; 3];
    arg[0] = u64::from(DOMID_SELF) | u64::from(space) << 32;
    arg[1] = idx;
    arg[2] = gfn;
    hypercall(MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP, arg.as_mut_ptr() as u64, 0])
}

fn send(port: u32) -> i64 {
    let arg = port;
    hypercall(EVENT_CHANNEL_OP, [EVTCHNOP_SEND, &arg as *const u32 as u64, 0])
}

pub fn serve(r: &mut Report, ram: (u64, u64)) -> ! {
    // The mailbox starts empty: no magic until everything is published.
    for w in 0..512 {
        mailbox(w, 0);
    }
    say(r, format_args!("serving: mailbox at {MAILBOX:#x}"));
    let inside = ram.0 <= MAILBOX && SHARED_INFO + 0x1000 <= ram.1;
    check(r, inside, format_args!("the mailbox and its pages lie in its RAM {:#x}->{:#x}", ram.0, ram.1));
    if !inside {
        shutdown(r);
    }

    let rc = add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, SHARED_INFO >> 12);
    check(r, rc == 0, format_args!("shared_info mapped at {SHARED_INFO:#x} ({rc})"));
    // struct gnttab_query_size: dom u16, nr_frames u32 @4, max u32 @8, status i16 @12.
    let mut query = [0u32; 4];
    query[0] = u32::from(DOMID_SELF);
    let rc = hypercall(GRANT_TABLE_OP, [GNTTABOP_QUERY_SIZE, query.as_mut_ptr() as u64, 1]);
    let status = query[3] as u16 as i16;
    say(r, format_args!("grant table: {} frames of at most {} ({rc}, status {status})", query[1], query[2]));
    let rc = add_to_physmap(XENMAPSPACE_GRANT_TABLE, 0, GNTTAB >> 12);
    check(r, rc == 0, format_args!("grant-table frame 0 mapped at {GNTTAB:#x} ({rc})"));

    // The pattern pages and the granted pages' contents.
    for page in 0..PATTERN_PAGES {
        let at = PATTERN + page * 0x1000;
        (0..512).for_each(|w| write(at + w * 8, pattern(at >> 12, w)));
    }
    for page in 0..GRANTS {
        let at = GRANTED + page * 0x1000;
        (0..512).for_each(|w| write(at + w * 8, pattern(at >> 12, w)));
    }
    // Request and reply words start at zero.
    (0..request::REPLY + request::PAYLOAD_WORDS).for_each(|w| write(GRANTED + w * 8, 0));

    // Grant entries (v1: flags u16, domid u16, frame u32): frame and domid
    // first, then the flags that make the entry valid.
    for i in 0..GRANTS {
        let entry = GNTTAB + (FIRST_REF + i) * 8;
        let frame = (GRANTED >> 12) + i;
        write(entry, frame << 32);
        fence(Ordering::SeqCst);
        write(entry, frame << 32 | u64::from(GTF_PERMIT_ACCESS));
        mailbox(word::REFS + i, FIRST_REF + i);
    }
    say(r, format_args!("granted refs {FIRST_REF}..{} to d0: gfns {:#x}..", FIRST_REF + GRANTS, GRANTED >> 12));

    // struct evtchn_alloc_unbound: dom u16, remote_dom u16, port u32 (out).
    let mut unbound = [0u32; 2];
    unbound[0] = u32::from(DOMID_SELF);
    let rc = hypercall(EVENT_CHANNEL_OP, [EVTCHNOP_ALLOC_UNBOUND, unbound.as_mut_ptr() as u64, 0]);
    let port = unbound[1];
    check(r, rc == 0 && port != 0, format_args!("EVTCHNOP_alloc_unbound for d0: port {port} ({rc})"));

    mailbox(word::PORT, u64::from(port));
    mailbox(word::GRANTS, GRANTS);
    mailbox(word::PATTERN_GFN, PATTERN >> 12);
    mailbox(word::PATTERN_PAGES, PATTERN_PAGES);
    mailbox(word::GRANTED_GFN, GRANTED >> 12);
    fence(Ordering::SeqCst);
    mailbox(word::MAGIC, MAGIC);
    say(r, format_args!("published; waiting for d0's requests on port {port}"));

    let pending = atomic(SHARED_INFO + EVTCHN_PENDING + u64::from(port / 64) * 8);
    let bit = 1u64 << (port % 64);
    let mut counter = 0u64;
    let mut answered = 0u64;
    let mut last_seq = 0u64;
    let mut last_ping = 0u64;
    let mut pings = 0u64;
    loop {
        counter += 1;
        mailbox(word::COUNTER, counter);
        if pending.load(Ordering::Acquire) & bit == 0 {
            core::hint::spin_loop();
            continue;
        }
        // As a guest does: the port's bit, then the vCPU's summary.
        pending.fetch_and(!bit, Ordering::AcqRel);
        atomic(SHARED_INFO + PENDING_SEL).store(0, Ordering::Release);
        // SAFETY: a byte of vcpu_info 0, in the shared_info page.
        unsafe { write_volatile((SHARED_INFO + UPCALL_PENDING) as *mut u8, 0) };
        // Dom0 unmaps the grants before it asks, so the ask is in the mailbox.
        if read(MAILBOX + word::SHUTDOWN * 8) == SHUTDOWN_ASKED {
            say(r, format_args!("d0 asked to shut down after {answered} requests"));
            let (checks, failures) = (r.checks, r.failures);
            r.say(format_args!("{checks} checks, {failures} failures"));
            shutdown(r);
        }
        let ping = read(MAILBOX + word::PING * 8);
        if ping != last_ping {
            last_ping = ping;
            pings += 1;
            mailbox(word::PINGS_ANSWERED, pings);
            let rc = send(port);
            if rc != 0 {
                check(r, false, format_args!("EVTCHNOP_send on port {port} (ping): {rc}"));
            }
            continue;
        }
        let seq = read(GRANTED + request::SEQ * 8);
        if seq == last_seq {
            continue;
        }
        fence(Ordering::SeqCst);
        match read(GRANTED + request::COMMAND * 8) {
            request::ECHO => {
                for w in 0..request::PAYLOAD_WORDS {
                    let value = reply(seq, read(GRANTED + (request::PAYLOAD + w) * 8));
                    write(GRANTED + (request::REPLY + w) * 8, value);
                    // Granted page 1 too: its words change in every round.
                    write(GRANTED + 0x1000 + w * 8, value);
                }
                fence(Ordering::SeqCst);
                write(GRANTED + request::REPLY_SEQ * 8, seq);
                last_seq = seq;
                answered += 1;
                mailbox(word::ANSWERED, answered);
                let rc = send(port);
                if rc != 0 {
                    check(r, false, format_args!("EVTCHNOP_send on port {port}: {rc}"));
                }
            }
            other => check(r, false, format_args!("request {seq}: unknown command {other}")),
        }
    }
}
