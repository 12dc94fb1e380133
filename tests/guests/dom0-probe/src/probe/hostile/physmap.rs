//! add_to_physmap in every space, aimed at every kind of place: Dom0's RAM,
//! a device, the grant region, the hypervisor's image, an extended region,
//! beyond the IPA space, an invalid frame number; also through
//! add_to_physmap_batch, and remove_from_physmap of each. Ends with the
//! good calls Linux makes (shared_info in RAM, grant frames 0 and 1 in the
//! grant region), which later categories rely on.

use super::super::read_faults;
use super::{Board, Hostile, scratch_page, shared_info_page};
use crate::probe::abi::*;

/// INVALID_GFN: refused in every space before the space is looked at.
const INVALID_GFN: u64 = u64::MAX;

/// The places, as frame numbers, with what the cases call them.
fn targets(board: &Board<'_>) -> [(&'static str, u64); 8] {
    [
        ("Dom0 RAM", scratch_page() >> 12),
        ("a device", board.device >> 12),
        ("the grant region", (board.grant_region.0 >> 12) + 2),
        ("the hypervisor's image", board.image_past_grants() >> 12),
        ("an extended region", board.unmapped() >> 12),
        ("beyond the IPA space", NOTHING >> 12),
        ("a frame past any address", 1 << 52),
        ("INVALID_GFN", INVALID_GFN),
    ]
}

/// `struct xen_remove_from_physmap { domid_t domid; xen_pfn_t gpfn; }`
pub fn remove_from_physmap(domid: u16, gpfn: u64) -> i64 {
    let mut remove = [u64::from(domid), gpfn];
    with(MEMORY_OP, &[15], &mut remove)
}

/// A batch of one `space` entry (idx, gpfn): the call's result and the
/// entry's error.
pub fn batch_of_one(domid: u16, space: u32, foreign: u16, idx: u64, gpfn: u64) -> (i64, i32) {
    let (mut idxs, mut gpfns, mut errs) = ([idx], [gpfn], [0x7777_i32]);
    let mut b = AddToPhysmapBatch {
        domid,
        space: space as u16,
        size: 1,
        foreign_domid: foreign,
        idxs: idxs.as_mut_ptr() as u64,
        gpfns: gpfns.as_mut_ptr() as u64,
        errs: errs.as_mut_ptr() as u64,
    };
    let rc = with(MEMORY_OP, &[23], &mut b);
    (rc, read(&errs)[0])
}

pub fn run(h: &mut Hostile<'_>, board: &Board<'_>) {
    let targets = targets(board);
    let region_page = board.grant_region.0 >> 12;
    for (place, gpfn) in targets {
        // shared_info stays in a page of Dom0's RAM (README: Xen would map
        // its own frame over anything); grant frames only in their region.
        let shared_info = if place == "Dom0 RAM" { None } else { Some(EINVAL) };
        let grant_frame = if place == "the grant region" { None } else { Some(EINVAL) };
        // Spaces not offered: -ENOSYS, but for INVALID_GFN.
        let unoffered = Some(if gpfn == INVALID_GFN { EINVAL } else { ENOSYS });
        for (space, idx, expected) in [
            (space::SHARED_INFO, 0, shared_info),
            (space::GRANT_TABLE, 0, grant_frame),
            (space::GMFN, scratch_page() >> 12, unoffered),
            (space::GMFN_RANGE, scratch_page() >> 12, unoffered),
            // Foreign maps are for the batch alone, whatever the frame.
            (space::GMFN_FOREIGN, scratch_page() >> 12, Some(ENOSYS)),
            (space::DEV_MMIO, board.device >> 12, unoffered),
            (6, 0, unoffered),
            (u32::MAX, 0, unoffered),
        ] {
            if let Some(expected) = expected {
                let rc = add_to_physmap(space, idx, gpfn);
                h.expect(
                    rc,
                    expected,
                    format_args!("add_to_physmap space {space} idx {idx:#x} at {place} ({gpfn:#x})"),
                );
            }
        }
        // The batch: the entry's error, the call itself succeeds.
        for (space, foreign, entry) in [
            (space::SHARED_INFO, 0, shared_info),
            (space::GRANT_TABLE, 0, grant_frame),
            (space::GMFN, 0, Some(ENOSYS)),
            (space::GMFN_FOREIGN, DOMID_SELF, Some(EINVAL)),
            (space::GMFN_FOREIGN, 1, Some(ESRCH)),
            (space::DEV_MMIO, 0, Some(ENOSYS)),
        ] {
            if let (Some(entry), true) = (entry, gpfn != INVALID_GFN) {
                let (rc, err) = batch_of_one(DOMID_SELF, space, foreign, 0, gpfn);
                h.expect(rc, 0, format_args!("add_to_physmap_batch space {space} at {place}: the call"));
                h.expect(
                    i64::from(err),
                    entry,
                    format_args!("add_to_physmap_batch space {space} at {place}: the entry"),
                );
            }
        }
        // Nothing here is a page Dom0 may remove, but its own RAM.
        if place != "Dom0 RAM" {
            let rc = remove_from_physmap(DOMID_SELF, gpfn);
            h.expect(rc, ENOENT, format_args!("remove_from_physmap of {place} ({gpfn:#x})"));
        }
    }
    for (what, space, foreign, expected) in [
        ("gmfn_range", space::GMFN_RANGE, 0, EOPNOTSUPP),
        ("dev_mmio with a foreign domain", space::DEV_MMIO, 1, EOPNOTSUPP),
    ] {
        let rc = batch_of_one(DOMID_SELF, space, foreign, 0, scratch_page() >> 12).0;
        h.expect(rc, expected, format_args!("add_to_physmap_batch of {what}"));
    }
    let rc = batch_of_one(DOMID_SELF, space::GMFN_FOREIGN, 1, 0, INVALID_GFN).0;
    h.expect(rc, EINVAL, format_args!("add_to_physmap_batch to INVALID_GFN"));

    // Grant frames: beyond the table, the status frames of version 2.
    for (what, idx) in [
        ("frame 64, beyond the table", 64),
        ("frame u64::MAX", u64::MAX),
        ("XENMAPIDX_grant_table_status | 0", 1 << 31),
        ("XENMAPIDX_grant_table_status | 1", 1 << 31 | 1),
    ] {
        let rc = add_to_physmap(space::GRANT_TABLE, idx, region_page + 2);
        h.expect(rc, EINVAL, format_args!("add_to_physmap grant_table {what}"));
    }
    let rc = add_to_physmap(space::SHARED_INFO, 1, scratch_page() >> 12);
    h.expect(rc, EINVAL, format_args!("add_to_physmap shared_info index 1"));

    // What Linux does, which the categories after this one build on.
    let shared = shared_info_page();
    h.expect(add_to_physmap(space::SHARED_INFO, 0, shared >> 12), 0, format_args!("shared_info in RAM"));
    h.expect(add_to_physmap(space::GRANT_TABLE, 1, region_page + 1), 0, format_args!("grant frame 1"));
    h.expect(add_to_physmap(space::GRANT_TABLE, 0, region_page), 0, format_args!("grant frame 0"));
    h.no_abort(read_faults(board.grant_region.0), format_args!("grant frame 0 reads at the region's start"));
    // A grant frame comes out of the physmap and goes back in.
    h.expect(remove_from_physmap(DOMID_SELF, region_page + 1), 0, format_args!("remove grant frame 1"));
    h.aborts(read_faults(board.grant_region.0 + 0x1000), format_args!("grant frame 1 removed"));
    h.expect(add_to_physmap(space::GRANT_TABLE, 1, region_page + 1), 0, format_args!("grant frame 1 again"));
}
