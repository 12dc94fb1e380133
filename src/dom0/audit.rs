//! Dom0's stage 2 audited on the board ([`crate::mm::audit`]): once built,
//! and again at shutdown, after whatever grant and balloon traffic Dom0 made.
//! A failed audit stops the machine with the mapping it found.

use crate::domain::Domain;
use crate::fatal;
use crate::fatal::Stop;
use crate::mm::FRAMES;
use crate::mm::audit::Owned;
use crate::mm::range::{GuestRange, Pa, PhysRange};
use alloc::vec::Vec;

/// What the audits judge Dom0's mappings against, besides what Dom0 itself
/// and the frame allocator say at the time.
pub struct Baseline {
    /// The host devices passed through.
    pub devices: Vec<PhysRange>,
    /// Devices Dom0 sees at another address: (IPAs, first frame).
    pub remapped_devices: Vec<(GuestRange, Pa)>,
    /// The hypervisor's own memory and devices, most specific first.
    pub hypervisor: Vec<Owned>,
}

static BASELINE: spin::Once<Baseline> = spin::Once::new();

/// Audits Dom0's stage 2 against `baseline`, and every later audit too.
pub fn at_build(dom0: &Domain, baseline: Baseline) {
    BASELINE.call_once(|| baseline);
    again(dom0, "at build");
}

/// Audits Dom0's stage 2 as it is now; `when` goes in the log line.
pub fn again(dom0: &Domain, when: &str) {
    let Some(baseline) = BASELINE.get() else {
        log::warn!("d0: stage 2 not audited {when}: Dom0 was never audited at build");
        return;
    };
    let free_ranges = || FRAMES.lock().as_ref().map(|f| f.free_ranges().collect()).unwrap_or_default();
    let foreign = crate::domain::others_ram_frames(dom0.id);
    match dom0.view().audit_stage2(
        &baseline.devices,
        &baseline.remapped_devices,
        &baseline.hypervisor,
        &foreign,
        free_ranges,
    ) {
        Ok(summary) => log::info!("d0: stage 2 audited {when}: {summary}"),
        Err(violation) => fatal!(Stop::Stage2AuditFailed, "d0: stage 2 audit {when} failed: {violation}"),
    }
}
