//! Two small checks of a domain's own Xen devices, for the Linux DomU
//! tests (`tests/linux_domu_guest.rs`):
//!
//! - `gnttest --events N`: a loopback event channel in the calling
//!   domain through `/dev/xen/evtchn` (an unbound port for DOMID_SELF,
//!   bound interdomain to itself), then N notifications, each read back
//!   from the other end. Each goes through the event-channel upcall, so
//!   `/proc/interrupts` counts them on the `events` PPI and on the
//!   port's `xen-dyn` interrupt.
//! - `gnttest --peek ID --gfn G`: privcmd maps frame G of domain ID
//!   (`IOCTL_PRIVCMD_MMAPBATCH_V2`) and prints its arm64 Image magic (the
//!   4 bytes at 56); `ok` if they are `ARM\x64` and Linux's `Xen scratch`
//!   ranges, whence privcmd takes its pages (the mapping is VM_PFNMAP, so
//!   pagemap cannot show its frame), lie in the extended regions of
//!   `/hypervisor`. With `--gone`, the domain has ended: `ok` if the map
//!   fails with -ESRCH, as for a domain that does not exist.
//!
//! One line per fact, `gnttest: ` prefixed; the last `ok` or `FAIL ...`.

use crate::check::{Context, Failure, fail, hypervisor_regions, xen_scratch};
use crate::gntabi::*;
use crate::sys::{File, O_RDWR, say};
use core::fmt::Write;

const DOMID_SELF: u32 = 0x7ff0;

fn finish(result: Result<(), Failure>) -> i32 {
    match result {
        Ok(()) => {
            say(format_args!("ok"));
            0
        }
        Err(Failure(why)) => {
            say(format_args!("FAIL {}", why.as_str()));
            1
        }
    }
}

pub fn events(rounds: u64) -> i32 {
    finish((|| {
        let evtchn = File::open(c"/dev/xen/evtchn", O_RDWR).doing("open /dev/xen/evtchn")?;
        let mut unbound = BindUnboundPort { remote_domain: DOMID_SELF };
        let a = evtchn.ioctl(IOCTL_EVTCHN_BIND_UNBOUND_PORT, &mut unbound).doing("IOCTL_EVTCHN_BIND_UNBOUND_PORT")?;
        let mut bind = BindInterdomain { remote_domain: DOMID_SELF, remote_port: a as u32 };
        let b = evtchn.ioctl(IOCTL_EVTCHN_BIND_INTERDOMAIN, &mut bind).doing("IOCTL_EVTCHN_BIND_INTERDOMAIN")?;
        say(format_args!("events: loopback ports {a} and {b}"));
        // Events pending on either end, read and unmasked, until one on `want`.
        let take = |want: u32| -> Result<(), Failure> {
            for _ in 0..4 {
                if !evtchn.wait_readable(2000).doing("ppoll of /dev/xen/evtchn")? {
                    fail!("no event on port {want} within 2 s");
                }
                let mut got = [0u8; 4];
                if evtchn.read(&mut got).doing("read of /dev/xen/evtchn")? != 4 {
                    fail!("a short read of /dev/xen/evtchn");
                }
                evtchn.write(&got).doing("write of /dev/xen/evtchn (unmask)")?;
                if u32::from_le_bytes(got) == want {
                    return Ok(());
                }
            }
            fail!("no event on port {want} among four")
        };
        // Binding raises the new port once (as Xen does): drain it.
        let _ = evtchn.wait_readable(200).map(|ready| {
            if ready {
                let mut got = [0u8; 4];
                if matches!(evtchn.read(&mut got), Ok(4)) {
                    let _ = evtchn.write(&got);
                }
            }
        });
        for round in 0..rounds {
            let (from, to) = if round % 2 == 0 { (b as u32, a as u32) } else { (a as u32, b as u32) };
            evtchn.ioctl(IOCTL_EVTCHN_NOTIFY, &mut Port { port: from }).doing("IOCTL_EVTCHN_NOTIFY")?;
            take(to)?;
        }
        say(format_args!("events: {rounds} loopback events delivered"));
        // While the ports are bound: their interrupts and the upcall's.
        let mut buf = [0u8; 16 * 1024];
        let table = crate::sys::read_file(c"/proc/interrupts", &mut buf).doing("read /proc/interrupts")?;
        for line in core::str::from_utf8(table).unwrap_or("").lines() {
            if ["xen-dyn", "events", "arch_timer", "Rescheduling"].iter().any(|name| line.contains(name)) {
                let mut text = crate::sys::Text::<160>::new();
                for word in line.split_whitespace() {
                    let _ = write!(text, " {word}");
                }
                say(format_args!("events: interrupts:{}", text.as_str()));
            }
        }
        Ok(())
    })())
}

/// Xen's -ESRCH, in the per-frame error array.
const ESRCH: i32 = -3;

pub fn peek(domid: u16, gfn: u64, gone: bool) -> i32 {
    finish((|| {
        let privcmd = File::open(c"/dev/xen/privcmd", O_RDWR).doing("open /dev/xen/privcmd")?;
        let mapping = privcmd.map_shared(1, 0).doing("mmap of /dev/xen/privcmd")?;
        let gfns = [gfn];
        let mut errors = [0i32; 1];
        let mut batch = MmapBatchV2 {
            num: 1,
            dom: domid,
            addr: mapping.addr() as u64,
            arr: gfns.as_ptr(),
            err: errors.as_mut_ptr(),
        };
        let mapped = privcmd.ioctl(IOCTL_PRIVCMD_MMAPBATCH_V2, &mut batch);
        if gone {
            say(format_args!("peek: d{domid} gfn {gfn:#x}: ioctl {mapped:?}, frame error {}", errors[0]));
            if errors[0] != ESRCH {
                fail!("frame {gfn:#x} of the ended d{domid}: error {}, not -ESRCH", errors[0]);
            }
            say(format_args!("peek: d{domid} is gone: -ESRCH"));
            return Ok(());
        }
        mapped.doing("IOCTL_PRIVCMD_MMAPBATCH_V2")?;
        if errors[0] != 0 {
            fail!("frame {gfn:#x} of d{domid}: error {}", errors[0]);
        }
        let regions = hypervisor_regions()?;
        let extended = &regions.as_slice()[1..];
        let scratch = xen_scratch()?;
        if scratch.as_slice().is_empty() {
            fail!("no Xen scratch range: privcmd's page is not from the extended regions");
        }
        if let Some(stray) = scratch.as_slice().iter().find(|s| !extended.iter().any(|r| r.contains(**s))) {
            fail!("Xen scratch {stray} is in no extended region");
        }
        say(format_args!("peek: Linux's Xen scratch ranges lie in extended regions"));
        let magic = (mapping.read(7) as u32).to_le_bytes();
        say(format_args!("peek: d{domid} gfn {gfn:#x} bytes 56..60: {magic:02x?}"));
        if &magic != b"ARM\x64" {
            fail!("d{domid} gfn {gfn:#x} does not hold an arm64 Image header");
        }
        say(format_args!("peek: d{domid} gfn {gfn:#x} holds an arm64 Image header"));
        mapping.unmap().doing("munmap of the privcmd page")?;
        Ok(())
    })())
}
