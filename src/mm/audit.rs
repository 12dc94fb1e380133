//! The audit of a guest's stage 2: every mapping, read from the descriptors
//! the MMU walks ([`Stage2Map::leaves`](super::stage2::Stage2Map::leaves)),
//! is judged by the frames it outputs, never by what the code that made it
//! meant. A mapping may be
//!
//! - the guest's RAM at its own address (`Kind::Ram`, 1:1), or for a guest
//!   not direct-mapped (a DomU), inside its RAM banks, on frames that are
//!   no other domain's;
//! - a passed-through device at its own address (`Kind::Device`, 1:1), or
//!   a device it is given at another address (`remapped_devices`);
//! - a frame of the guest's RAM that it granted, seen at another address
//!   (`Kind::Granted`) while the frame's own page is still mapped, so the
//!   frame is still the guest's;
//! - a frame of another domain's RAM (`Kind::Granted`: its grant, or a
//!   foreign mapping), while that domain has it mapped as its RAM;
//! - a frame the hypervisor shares with the guest (the grant-table frames),
//!   as RAM inside the window meant for them (the grant region).
//!
//! Anything else fails. A mapping that reaches memory the hypervisor owns
//! (its image, stacks, heap and the stage-2 tables in it, the allocator's
//! metadata, the frames it keeps, free memory) fails naming what it reached.

use super::range::{GuestRange, Pa, PhysRange, Range};
use super::stage2::{Extent, Kind};
use crate::mm::frames::FRAME_SIZE as PAGE;
use alloc::vec::Vec;
use core::fmt;

/// What the guest may see.
#[derive(Debug, Clone, Copy)]
pub struct Allowed<'a> {
    /// Its RAM banks, where it sees them.
    pub ram: &'a [GuestRange],
    /// Whether its RAM is 1:1 (Dom0); if not, the frames behind the banks
    /// are the stage 2's to say, and only their addresses are judged.
    pub direct_mapped: bool,
    /// Other domains' RAM frames: it may see them through `Kind::Granted`
    /// mappings only.
    pub foreign: &'a [PhysRange],
    /// The host devices passed through to it.
    pub devices: &'a [PhysRange],
    /// Devices it sees at another address than their own: (IPAs, the
    /// frame the first maps). A GICv2's virtual CPU interface, where its
    /// tree says the CPU interface is.
    pub remapped_devices: &'a [(GuestRange, Pa)],
    /// Frames of the hypervisor's that it may map, as RAM, inside `shared_window`.
    pub shared_frames: &'a [PhysRange],
    /// IPAs where shared frames go, and grant mappings do not.
    pub shared_window: GuestRange,
}

/// Something the hypervisor owns, with what it is for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owned {
    pub range: PhysRange,
    pub what: &'static str,
}

/// Names for what the hypervisor owns, shared by whoever builds the list.
pub mod owned {
    pub const TABLE: &str = "stage-2 tables";
    pub const GRANT_FRAME: &str = "grant-table frames";
    pub const IMAGE: &str = "image";
    pub const STACKS: &str = "boot stacks";
    pub const HEAP: &str = "heap";
    pub const METADATA: &str = "allocator metadata";
    pub const KEPT_DEVICE: &str = "kept devices";
    pub const FREE: &str = "free memory";
}

/// A mapping the guest must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// Its frames include memory the hypervisor owns.
    HypervisorMemory { mapping: Extent, owned: Owned },
    /// RAM or a device seen at another address than its own.
    NotOneToOne(Extent),
    /// RAM that is not the guest's.
    NotGuestRam(Extent),
    /// A device range that is not passed through.
    UnknownDevice(Extent),
    /// A granted frame whose own page is not mapped: the frame left the guest.
    GrantOfAbsentFrame(Extent),
    /// A grant mapping inside the window kept for shared frames.
    GrantInSharedWindow(Extent),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HypervisorMemory { mapping, owned } => {
                write!(f, "{mapping} reaches the hypervisor's {} at {}", owned.what, owned.range)
            }
            Self::NotOneToOne(m) => write!(f, "{m} is not mapped at its own address"),
            Self::NotGuestRam(m) => write!(f, "{m} is not the guest's RAM"),
            Self::UnknownDevice(m) => write!(f, "{m} is no passed-through device"),
            Self::GrantOfAbsentFrame(m) => write!(f, "{m} is a grant of a frame whose own page is gone"),
            Self::GrantInSharedWindow(m) => write!(f, "{m} is a grant mapping inside the shared window"),
        }
    }
}

/// What a passing audit found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    pub mappings: usize,
    pub ram_bytes: u64,
    pub device_bytes: u64,
    pub granted_bytes: u64,
    pub shared_bytes: u64,
    /// What the hypervisor owns, by name, with the bytes of it: shown
    /// unreachable but for the shared frames.
    pub owned: Vec<(&'static str, u64)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} mappings: RAM {}, devices {}, granted {}, shared {}; none reaches the hypervisor's other memory:",
            self.mappings,
            Size(self.ram_bytes),
            Size(self.device_bytes),
            Size(self.granted_bytes),
            Size(self.shared_bytes)
        )?;
        for (i, (what, bytes)) in self.owned.iter().enumerate() {
            write!(f, "{} {what} {}", if i == 0 { "" } else { "," }, Size(*bytes))?;
        }
        Ok(())
    }
}

/// Bytes for people, exactly: "3 MiB", "12 KiB", "2 GiB + 4 KiB".
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [(self.0 >> 30, "GiB"), ((self.0 >> 20) & 0x3ff, "MiB"), ((self.0 >> 10) & 0x3ff, "KiB")];
        let mut shown = parts.iter().filter(|(n, _)| *n > 0).peekable();
        if shown.peek().is_none() {
            return write!(f, "0 KiB");
        }
        for (i, (n, unit)) in shown.enumerate() {
            write!(f, "{}{n} {unit}", if i == 0 { "" } else { " + " })?;
        }
        Ok(())
    }
}

/// Ranges of one address space sorted and merged, to ask whether they cover a range.
struct Cover<S>(Vec<Range<S>>);

impl<S: Ord> Cover<S> {
    fn new(ranges: impl IntoIterator<Item = Range<S>>) -> Self {
        Self(crate::mm::range::merged(ranges))
    }

    fn covers(&self, range: &Range<S>) -> bool {
        let at = self.0.partition_point(|m| m.start <= range.start);
        at > 0 && self.0[at - 1].contains_range(range)
    }
}

/// Judges every extent of a stage 2 against what the guest may see and
/// what the hypervisor owns (`owned`, searched in order, so list the most
/// specific first: a table page before the heap that holds it).
pub fn audit(extents: &[Extent], allowed: &Allowed<'_>, owned: &[Owned]) -> Result<Summary, Violation> {
    // Its RAM by the frames behind it, which the mappings are judged by:
    // the guest's RAM is 1:1 (else `NotOneToOne`), so they are its IPAs.
    let ram = Cover::new(allowed.ram.iter().map(|&r| PhysRange::identity_of(r)));
    let devices = Cover::new(allowed.devices.iter().filter_map(|d| d.expand_to_alignment(PAGE)));
    let shared = Cover::new(allowed.shared_frames.iter().copied());
    let banks = Cover::new(allowed.ram.iter().copied());
    let foreign = Cover::new(allowed.foreign.iter().copied());
    let own_pages = Cover::new(extents.iter().filter(|e| e.kind == Kind::Ram && e.is_one_to_one()).map(|e| e.frames()));
    let mut summary = Summary::default();
    for &e in extents {
        let frames = e.frames();
        let is_shared = e.kind == Kind::Ram && allowed.shared_window.contains_range(&e.ipa) && shared.covers(&frames);
        if !is_shared && let Some(&o) = owned.iter().find(|o| o.range.overlaps(&frames)) {
            return Err(Violation::HypervisorMemory { mapping: e, owned: o });
        }
        let bytes = e.ipa.size();
        match e.kind {
            _ if is_shared => summary.shared_bytes += bytes,
            Kind::Device
                if allowed
                    .remapped_devices
                    .iter()
                    .any(|&(ipa, pa)| ipa.contains_range(&e.ipa) && e.pa.0 == pa.0 + (e.ipa.start - ipa.start)) =>
            {
                summary.device_bytes += bytes
            }
            Kind::Ram if !allowed.direct_mapped => {
                if !banks.covers(&e.ipa) || allowed.foreign.iter().any(|f| f.overlaps(&frames)) {
                    return Err(Violation::NotGuestRam(e));
                }
                summary.ram_bytes += bytes;
            }
            Kind::Ram | Kind::Device if !e.is_one_to_one() => return Err(Violation::NotOneToOne(e)),
            Kind::Ram if !ram.covers(&frames) => return Err(Violation::NotGuestRam(e)),
            Kind::Ram => summary.ram_bytes += bytes,
            Kind::Device if !devices.covers(&frames) => return Err(Violation::UnknownDevice(e)),
            Kind::Device => summary.device_bytes += bytes,
            Kind::Granted { .. } if allowed.shared_window.overlaps(&e.ipa) => {
                return Err(Violation::GrantInSharedWindow(e));
            }
            Kind::Granted { .. } if foreign.covers(&frames) => summary.granted_bytes += bytes,
            Kind::Granted { .. } if !ram.covers(&frames) => return Err(Violation::NotGuestRam(e)),
            Kind::Granted { .. } if !own_pages.covers(&frames) => return Err(Violation::GrantOfAbsentFrame(e)),
            Kind::Granted { .. } => summary.granted_bytes += bytes,
        }
        summary.mappings += 1;
    }
    for o in owned {
        match summary.owned.iter_mut().find(|(what, _)| *what == o.what) {
            Some((_, bytes)) => *bytes += o.range.size(),
            None => summary.owned.push((o.what, o.range.size())),
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests;
