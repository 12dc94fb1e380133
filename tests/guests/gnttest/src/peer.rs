//! `gnttest --domu ID --mailbox ADDRESS [--ballooned]`: Dom0's side of the
//! calls between domains, against a DomU running `domu-probe` in serve
//! mode (`tests/guests/domu-probe/src/serve.rs`, whose mailbox layout this
//! mirrors).
//!
//! It maps the DomU's mailbox page (at the guest address given) and its
//! pattern pages with privcmd's foreign maps (`IOCTL_PRIVCMD_MMAPBATCH_V2`),
//! finds the magic, the pattern and a counter that moves; maps the four
//! pages the DomU granted to Dom0 with gntdev, checks their contents and
//! where Linux put them (`/proc/self/pagemap`); binds the DomU's unbound
//! port (`/dev/xen/evtchn`) and makes round trips: a request written into
//! granted page 0, an event, the DomU's event back, its reply checked.
//! Then it prints what the DomU recorded of its own checks, unmaps
//! everything, asks the DomU to shut down through the mailbox and an
//! event, and exits 0 if every fact held.
//!
//! Where the privcmd pages are cannot be read from userspace (the mapping
//! is VM_PFNMAP: pagemap shows no frame); what is checked here is that
//! Linux's `Xen scratch` ranges, where both drivers take their pages, lie
//! in the extended regions. The test checks the addresses our hypervisor
//! logs for each foreign map.
//!
//! One line per fact, `gnttest: domu: <fact>: ok` or `: FAIL <why>`.

use crate::check::{Context, Failure, Ranges, fail, hypervisor_regions, physical_address, xen_scratch};
use crate::gntabi::*;
use crate::parse::{self, Range};
use crate::sys::{File, Mapping, O_RDWR, PAGE_SIZE, say, sleep_ms};
use core::fmt::Write;

#[path = "../../common/mailbox.rs"]
mod mailbox;
use core::sync::atomic::{Ordering, fence};
pub use mailbox::SHUTDOWN_ASKED;
use mailbox::{MAGIC, pattern, reply, request, word};

const GRANTS: usize = 4;
const ROUNDS: u64 = 16;
/// How long the DomU may take to publish, and to answer an event.
const PUBLISH_MS: u64 = 20_000;
const ANSWER_MS: u64 = 5_000;

/// A mailbox or request word's slot in a mapping of words.
const fn slot(word: u64) -> usize {
    word as usize
}

fn payload(seq: u64, w: usize) -> u64 {
    seq.wrapping_mul(0x0100_0000_01b3) ^ (w as u64) << 48 ^ 0x6430_6430
}

struct Facts {
    held: u32,
    failed: u32,
}

impl Facts {
    fn record<T>(&mut self, what: &str, result: Result<T, Failure>) -> Option<T> {
        match result {
            Ok(value) => {
                say(format_args!("domu: {what}: ok"));
                self.held += 1;
                Some(value)
            }
            Err(Failure(why)) => {
                say(format_args!("domu: {what}: FAIL {}", why.as_str()));
                self.failed += 1;
                None
            }
        }
    }
}

pub fn main(domid: u16, mailbox: u64, ballooned: bool) -> i32 {
    let mut facts = Facts { held: 0, failed: 0 };
    run(&mut facts, domid, mailbox, ballooned);
    say(format_args!("domu: {} facts held, {} failed", facts.held, facts.failed));
    if facts.failed == 0 && facts.held > 0 {
        say(format_args!("ok"));
        0
    } else {
        say(format_args!("FAIL {} of the DomU facts", facts.failed));
        1
    }
}

/// Frames of domain `domid` mapped through privcmd (a foreign map).
fn privcmd_map(privcmd: &File, domid: u16, gfns: &[u64]) -> Result<Mapping, Failure> {
    let mapping = privcmd.map_shared(gfns.len(), 0).doing("mmap of /dev/xen/privcmd")?;
    let mut errors = [0i32; 8];
    let errors = &mut errors[..gfns.len()];
    let mut batch = MmapBatchV2 {
        num: gfns.len() as u32,
        dom: domid,
        addr: mapping.addr() as u64,
        arr: gfns.as_ptr(),
        err: errors.as_mut_ptr(),
    };
    privcmd.ioctl(IOCTL_PRIVCMD_MMAPBATCH_V2, &mut batch).doing("IOCTL_PRIVCMD_MMAPBATCH_V2")?;
    if let Some((i, e)) = errors.iter().enumerate().find(|(_, e)| **e != 0) {
        fail!("frame {:#x} of d{domid}: error {e}", gfns[i]);
    }
    Ok(mapping)
}

/// `/proc/iomem`'s `System RAM` ranges.
fn system_ram() -> Result<Ranges, Failure> {
    let mut buf = [0u8; 64 * 1024];
    let iomem = crate::sys::read_file(c"/proc/iomem", &mut buf).doing("read /proc/iomem")?;
    let Ok(iomem) = core::str::from_utf8(iomem) else { fail!("/proc/iomem is not UTF-8") };
    let mut ram = Ranges::new();
    for (range, _) in iomem.lines().filter_map(parse::iomem_line).filter(|(_, name)| *name == "System RAM") {
        ram.push(range)?;
    }
    Ok(ram)
}

fn run(facts: &mut Facts, domid: u16, mailbox_address: u64, ballooned: bool) {
    say(format_args!("domu: d{domid}, mailbox at its address {mailbox_address:#x}"));
    let Some((regions, ram)) = facts
        .record("the hypervisor's regions and Linux's RAM are read", (|| Ok((hypervisor_regions()?, system_ram()?)))())
    else {
        return;
    };
    let extended = &regions.as_slice()[1..];

    // privcmd: the mailbox, found when the DomU has published.
    let Some(privcmd) = facts.record("open /dev/xen/privcmd", File::open(c"/dev/xen/privcmd", O_RDWR).doing("open"))
    else {
        return;
    };
    let Some(mailbox) =
        facts.record("privcmd maps the DomU's mailbox page", privcmd_map(&privcmd, domid, &[mailbox_address >> 12]))
    else {
        return;
    };
    say(format_args!("domu: the mailbox is mapped at {:#x} (VM_PFNMAP: no frame in pagemap)", mailbox.addr()));
    let found = (|| {
        let mut waited = 0;
        while mailbox.read(slot(word::MAGIC)) != MAGIC {
            if waited >= PUBLISH_MS {
                fail!("no magic after {PUBLISH_MS} ms: word 0 is {:#x}", mailbox.read(slot(word::MAGIC)));
            }
            sleep_ms(10);
            waited += 10;
        }
        Ok(waited)
    })();
    if facts.record("the mailbox holds the DomU's magic", found).is_none() {
        return;
    }
    fence(Ordering::SeqCst);
    facts.record(
        "the DomU's counter moves between two reads",
        (|| {
            let before = mailbox.read(slot(word::COUNTER));
            sleep_ms(20);
            let after = mailbox.read(slot(word::COUNTER));
            say(format_args!("domu: counter {before} then {after}"));
            if after == before {
                fail!("the counter stays at {before}");
            }
            Ok(())
        })(),
    );
    let port = mailbox.read(slot(word::PORT)) as u32;
    let grants = mailbox.read(slot(word::GRANTS)) as usize;
    let mut refs = [0u32; GRANTS];
    (0..GRANTS).for_each(|i| refs[i] = mailbox.read(slot(word::REFS) + i) as u32);
    let (pattern_gfn, pattern_pages) =
        (mailbox.read(slot(word::PATTERN_GFN)), mailbox.read(slot(word::PATTERN_PAGES)) as usize);
    let granted_gfn = mailbox.read(slot(word::GRANTED_GFN));
    say(format_args!(
        "domu: port {port}, grant refs {refs:?} (gfns from {granted_gfn:#x}), pattern gfns {pattern_gfn:#x}+{pattern_pages}"
    ));
    if grants != GRANTS || !(1..=8).contains(&pattern_pages) {
        facts.record::<()>(
            "the mailbox's counts",
            Err(failure(format_args!("{grants} grants, {pattern_pages} pattern pages"))),
        );
        return;
    }

    // privcmd: the pattern pages, all in one batch.
    let mut gfns = [0u64; 8];
    (0..pattern_pages).for_each(|i| gfns[i] = pattern_gfn + i as u64);
    let patterned = facts.record(
        "privcmd maps the DomU's pattern pages in one batch",
        privcmd_map(&privcmd, domid, &gfns[..pattern_pages]),
    );
    if let Some(pages) = &patterned {
        facts.record(
            "the pattern pages read as the DomU wrote them",
            (|| {
                for w in 0..pages.words() {
                    let gfn = pattern_gfn + (w / 512) as u64;
                    if pages.read(w) != pattern(gfn, (w % 512) as u64) {
                        fail!("gfn {gfn:#x} word {}: {:#x}", w % 512, pages.read(w));
                    }
                }
                Ok(())
            })(),
        );
    }

    // gntdev: the four granted pages.
    let Some(gntdev) = facts.record("open /dev/xen/gntdev", File::open(c"/dev/xen/gntdev", O_RDWR).doing("open"))
    else {
        return;
    };
    let mut map = MapGrantRefs {
        count: GRANTS as u32,
        pad: 0,
        index: 0,
        refs: refs.map(|gref| GrantRef { domid: u32::from(domid), gref }),
    };
    let granted = facts.record(
        "gntdev maps the DomU's four grants",
        (|| {
            gntdev.ioctl(IOCTL_GNTDEV_MAP_GRANT_REF, &mut map).doing("IOCTL_GNTDEV_MAP_GRANT_REF")?;
            gntdev.map_shared(GRANTS, map.index).doing("mmap of the gntdev grants")
        })(),
    );
    let Some(granted) = granted else { return };
    facts.record(
        "the granted pages read as the DomU wrote them",
        (|| {
            // Page 0 below its request and reply words and page 1 below its
            // reply copy change; the rest is the pattern.
            for w in 0..granted.words() {
                let (page, at) = (w / 512, w % 512);
                let changing = (page == 0 && at < slot(request::REPLY + request::PAYLOAD_WORDS))
                    || (page == 1 && at < slot(request::PAYLOAD_WORDS));
                let gfn = granted_gfn + page as u64;
                if !changing && granted.read(w) != pattern(gfn, at as u64) {
                    fail!("granted page {page} word {at}: {:#x}", granted.read(w));
                }
            }
            Ok(())
        })(),
    );
    // Linux takes its scratch ranges on the first unpopulated page asked
    // for: read them once both drivers have mapped.
    let Some(scratch) = facts.record("Linux's Xen scratch ranges are read", xen_scratch()) else { return };
    if ballooned {
        facts.record(
            "no Xen scratch range: Linux maps over ballooned RAM",
            match scratch.as_slice() {
                [] => Ok(()),
                [first, ..] => Err(failure(format_args!("Xen scratch {first} exists"))),
            },
        );
    } else {
        facts.record(
            "Linux's Xen scratch ranges lie in extended regions",
            (|| {
                if scratch.as_slice().is_empty() {
                    fail!("no Xen scratch range");
                }
                if let Some(stray) = scratch.as_slice().iter().find(|s| !extended.iter().any(|r| r.contains(**s))) {
                    fail!("Xen scratch {stray} is in no extended region");
                }
                Ok(())
            })(),
        );
    }

    facts.record(
        if ballooned {
            "the granted pages lie in Dom0's System RAM (ballooned pages)"
        } else {
            "the granted pages lie in extended regions"
        },
        (|| {
            for page in 0..GRANTS {
                let physical = physical_address(granted.addr() + page * PAGE_SIZE)?;
                say(format_args!("domu: granted page {page} is at physical address {physical:#x}"));
                let within: &[Range] = if ballooned { ram.as_slice() } else { extended };
                if !within.iter().any(|r| r.contains_address(physical)) {
                    fail!("page {page} at {physical:#x} is outside them");
                }
            }
            Ok(())
        })(),
    );

    // Events: the DomU's unbound port, and round trips.
    let Some(evtchn) = facts.record("open /dev/xen/evtchn", File::open(c"/dev/xen/evtchn", O_RDWR).doing("open"))
    else {
        return;
    };
    let mut bind = BindInterdomain { remote_domain: u32::from(domid), remote_port: port };
    let Some(local) = facts.record(
        "the DomU's port binds interdomain",
        evtchn.ioctl(IOCTL_EVTCHN_BIND_INTERDOMAIN, &mut bind).doing("IOCTL_EVTCHN_BIND_INTERDOMAIN"),
    ) else {
        return;
    };
    let local = local as u32;
    say(format_args!("domu: d{domid} port {port} bound to local port {local}"));
    let next_event = |millis: u64| -> Result<bool, Failure> {
        if !evtchn.wait_readable(millis).doing("ppoll of /dev/xen/evtchn")? {
            return Ok(false);
        }
        let mut got = [0u8; 4];
        if evtchn.read(&mut got).doing("read of /dev/xen/evtchn")? != 4 || u32::from_le_bytes(got) != local {
            fail!("the event read is {got:?}, not port {local}");
        }
        // Written back, the port is unmasked for the next one.
        evtchn.write(&got).doing("write of /dev/xen/evtchn (unmask)")?;
        Ok(true)
    };
    // Xen raises a freshly bound interdomain port once, for notifications
    // the unbound end may have lost; so does ours.
    facts.record(
        "the freshly bound port is raised once, as Xen does",
        match next_event(1000) {
            Ok(true) => Ok(()),
            Ok(false) => Err(failure(format_args!("no event within 1 s of binding"))),
            Err(e) => Err(e),
        },
    );
    let notify = || evtchn.ioctl(IOCTL_EVTCHN_NOTIFY, &mut Port { port: local }).doing("IOCTL_EVTCHN_NOTIFY");
    facts.record(
        "round trips: a request in a granted page, an event, the reply and an event back",
        (|| {
            for seq in 1..=ROUNDS {
                for w in 0..slot(request::PAYLOAD_WORDS) {
                    granted.write(slot(request::PAYLOAD) + w, payload(seq, w));
                }
                granted.write(slot(request::COMMAND), request::ECHO);
                fence(Ordering::SeqCst);
                granted.write(slot(request::SEQ), seq);
                notify()?;
                if !next_event(ANSWER_MS)? {
                    fail!(
                        "round {seq}: no event back in {ANSWER_MS} ms (the DomU answered {})",
                        mailbox.read(slot(word::ANSWERED))
                    );
                }
                fence(Ordering::SeqCst);
                if granted.read(slot(request::REPLY_SEQ)) != seq {
                    fail!("round {seq}: the reply is to request {}", granted.read(slot(request::REPLY_SEQ)));
                }
                for w in 0..slot(request::PAYLOAD_WORDS) {
                    let want = reply(seq, payload(seq, w));
                    if granted.read(slot(request::REPLY) + w) != want || granted.read(512 + w) != want {
                        fail!(
                            "round {seq}: reply word {w} is {:#x}, page 1 has {:#x}, not {want:#x}",
                            granted.read(slot(request::REPLY) + w),
                            granted.read(512 + w)
                        );
                    }
                }
            }
            say(format_args!("domu: {ROUNDS} round trips"));
            Ok(())
        })(),
    );
    facts.record(
        "the DomU counted every request",
        match mailbox.read(slot(word::ANSWERED)) {
            ROUNDS => Ok(()),
            n => Err(failure(format_args!("it answered {n} of {ROUNDS}"))),
        },
    );

    // What the DomU found itself (under Xen 4.17 its console is refused).
    let len = (mailbox.read(slot(word::TEXT_LEN)) as usize).min(4096 - slot(word::TEXT) * 8);
    let mut text = [0u8; 4096];
    for (i, byte) in text[..len].iter_mut().enumerate() {
        *byte = (mailbox.read(slot(word::TEXT) + i / 8) >> (i % 8 * 8)) as u8;
    }
    for line in core::str::from_utf8(&text[..len]).unwrap_or("(not UTF-8)").lines() {
        say(format_args!("domu: d{domid} says: {line}"));
    }
    let (checks, failures) = (mailbox.read(slot(word::CHECKS)), mailbox.read(slot(word::FAILURES)));
    facts.record(
        "the DomU's own checks passed",
        if checks > 0 && failures == 0 {
            Ok(())
        } else {
            Err(failure(format_args!("{checks} checks, {failures} failures")))
        },
    );

    // Unmap, then ask the DomU to stop: the mailbox word, and an event.
    let index = map.index;
    facts.record(
        "the grants unmap",
        (|| {
            granted.unmap().doing("munmap of the gntdev grants")?;
            let mut unmap = UnmapGrantRef { index, count: GRANTS as u32, pad: 0 };
            gntdev.ioctl(IOCTL_GNTDEV_UNMAP_GRANT_REF, &mut unmap).doing("IOCTL_GNTDEV_UNMAP_GRANT_REF")?;
            Ok(())
        })(),
    );
    if let Some(pages) = patterned {
        facts.record("the pattern pages unmap", pages.unmap().doing("munmap of the privcmd pages"));
    }
    mailbox.write(slot(word::SHUTDOWN), SHUTDOWN_ASKED);
    fence(Ordering::SeqCst);
    facts.record("the mailbox unmaps", mailbox.unmap().doing("munmap of the privcmd mailbox"));
    facts.record("the DomU is asked to shut down", notify().map(|_| ()));
    let unbind = evtchn.ioctl(IOCTL_EVTCHN_UNBIND, &mut Port { port: local }).doing("IOCTL_EVTCHN_UNBIND");
    facts.record("the port unbinds", unbind.map(|_| ()));
    say(format_args!("domu: asked d{domid} to shut down"));
}

fn failure(why: core::fmt::Arguments<'_>) -> Failure {
    let mut text = crate::sys::Text::new();
    let _ = text.write_fmt(why);
    Failure(text)
}
