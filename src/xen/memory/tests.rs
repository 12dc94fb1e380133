use super::*;
use crate::mm::stage2::Leaf;
use crate::xen::testing::{GRANT_REGION, HYPERVISOR_FREE, Machine, RAM, args};
use crate::xen::{Board, DOMID_SELF, nr};

const ARG: u64 = RAM.start + 0x5000;
const LIST: u64 = RAM.start + 0x8000;
const ERRS: u64 = RAM.start + 0x7000;

fn add(m: &Machine, domid: u16, space: u16, idx: u64, gpfn: u64) -> i64 {
    let mut b = [0u8; 24];
    b[..2].copy_from_slice(&domid.to_le_bytes());
    b[4..8].copy_from_slice(&u32::from(space).to_le_bytes());
    b[8..16].copy_from_slice(&idx.to_le_bytes());
    b[16..24].copy_from_slice(&gpfn.to_le_bytes());
    m.board.put(ARG, &b);
    m.call(nr::MEMORY_OP, args(&[op::ADD_TO_PHYSMAP, ARG]))
}

fn reservation_at(m: &Machine, op: u64, at: u64, list: &[u64], order: u32, domid: u16) -> (i64, usize) {
    for (i, gfn) in list.iter().enumerate() {
        m.board.set_u64(LIST + 8 * i as u64, *gfn);
    }
    let mut r = [0u8; 32];
    r[..8].copy_from_slice(&at.to_le_bytes());
    r[8..16].copy_from_slice(&(list.len() as u64).to_le_bytes());
    r[16..20].copy_from_slice(&order.to_le_bytes());
    r[24..26].copy_from_slice(&domid.to_le_bytes());
    m.board.put(ARG, &r);
    match m.call_counting(0, nr::MEMORY_OP, args(&[op, ARG])) {
        (Outcome::Return(n), traps) => (n, traps),
        other => panic!("{other:?}"),
    }
}

fn reservation(m: &Machine, op: u64, gfns: &[u64], order: u32) -> i64 {
    reservation_at(m, op, LIST, gfns, order, DOMID_SELF).0
}

fn remove(m: &Machine, domid: u16, gpfn: u64) -> i64 {
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&domid.to_le_bytes());
    b[8..].copy_from_slice(&gpfn.to_le_bytes());
    m.board.put(ARG, &b);
    m.call(nr::MEMORY_OP, args(&[op::REMOVE_FROM_PHYSMAP, ARG]))
}

fn mapped(m: &Machine, ipa: u64) -> Option<Leaf> {
    m.domain.stage2.lock_holding_no_xen_lock().translate(Ipa(ipa))
}

#[test]
fn shared_info_in_place() {
    let m = Machine::new(1);
    let page = RAM.start + 0x20000;
    m.board.set_u64(page + 0x800, 0x1234);
    assert_eq!(add(&m, DOMID_SELF, space::SHARED_INFO, 1, page >> 12), -EINVAL);
    assert_eq!(add(&m, DOMID_SELF, space::SHARED_INFO, 0, RAM.end >> 12), -EINVAL);
    assert_eq!(add(&m, DOMID_SELF, space::SHARED_INFO, 0, u64::MAX), -EINVAL);
    assert_eq!(add(&m, 7, space::SHARED_INFO, 0, page >> 12), -ESRCH);
    assert_eq!(add(&m, 0, space::SHARED_INFO, 0, page >> 12), 0, "domid 0 is itself");
    assert_eq!(m.board.u64(page + 0x800), 0, "the page starts zeroed");
    assert_eq!(m.domain.xen.shared.address(), Some(page));
    assert_eq!(mapped(&m, page).map(|l| l.pa), Some(Pa(page)), "no stage-2 change");
    assert_eq!(add(&m, DOMID_SELF, space::SHARED_INFO, 0, (page >> 12) + 1), -EBUSY, "once");
    assert_eq!(remove(&m, DOMID_SELF, page >> 12), -EBUSY, "pinned");
    assert_eq!(add(&m, DOMID_SELF, space::GMFN_FOREIGN, 0, page >> 12), -ENOSYS, "only through the batch");
    assert_eq!(add(&m, DOMID_SELF, 2, 0, page >> 12), -ENOSYS);
    assert_eq!(add(&m, DOMID_SELF, space::DEV_MMIO, 0, page >> 12), -ENOSYS);
    for unoffered in [2, space::GMFN_RANGE, space::DEV_MMIO, 6, u16::MAX] {
        assert_eq!(add(&m, DOMID_SELF, unoffered, 0, 1 << 52), -ENOSYS, "space {unoffered}, whatever the frame");
        assert_eq!(add(&m, DOMID_SELF, unoffered, 0, u64::MAX), -EINVAL, "INVALID_GFN is checked first");
    }
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::ADD_TO_PHYSMAP, RAM.end - 8])), -EFAULT);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::ADD_TO_PHYSMAP | 1 << 6, ARG])), -EDOM);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[99, ARG])), -ENOSYS);
}

#[test]
fn grant_frames_are_hypervisor_frames_in_the_grant_region() {
    let m = Machine::new(1);
    let free = m.board.free_frames();
    let base = GRANT_REGION.start >> 12;
    // Linux maps the highest index first.
    for idx in (0..4).rev() {
        assert_eq!(add(&m, DOMID_SELF, space::GRANT_TABLE, idx, base + idx), 0, "frame {idx}");
    }
    assert_eq!(m.board.free_frames(), free - 4);
    let leaf = mapped(&m, GRANT_REGION.start + 0x3000).unwrap();
    assert!(HYPERVISOR_FREE.contains(leaf.pa.0) && leaf.kind == Kind::Ram && leaf.size == PAGE);
    assert_eq!(m.domain.xen.grants.lock().nr_frames(), 4);
    assert_eq!(add(&m, DOMID_SELF, space::GRANT_TABLE, 64, base), -EINVAL, "beyond the region's 64 frames");
    assert_eq!(add(&m, DOMID_SELF, space::GRANT_TABLE, 1 << 31, base + 5), -EINVAL, "no v2 status frames");
    assert_eq!(add(&m, DOMID_SELF, space::GRANT_TABLE, 5, RAM.start >> 12), -EINVAL, "outside the region");
    assert_eq!(add(&m, DOMID_SELF, space::GRANT_TABLE, 1, base + 9), -EBUSY, "already placed");
    assert_eq!(add(&m, DOMID_SELF, space::GRANT_TABLE, 7, base + 2), -EBUSY, "page taken");
    assert_eq!(remove(&m, DOMID_SELF, base + 1), 0);
    assert_eq!(mapped(&m, GRANT_REGION.start + 0x1000), None);
    assert_eq!(add(&m, DOMID_SELF, space::GRANT_TABLE, 1, base + 9), 0, "moved");
    assert_eq!(m.board.free_frames(), free - 8, "frames 4..7 grown for index 7 above");
    assert_eq!(add(&m, DOMID_SELF, space::GRANT_TABLE, 63, base + 63), 0);
}

#[test]
fn balloon_out_and_back_in() {
    let m = Machine::new(1);
    let free = m.board.free_frames();
    let (a, b, c) = (RAM.start + 0x40000, RAM.start + 0x41000, RAM.start + 0x90000);
    m.board.set_u64(b, 0x5555);
    // The third extent is not Dom0's RAM: two done.
    assert_eq!(reservation(&m, op::DECREASE_RESERVATION, &[a >> 12, b >> 12, RAM.end >> 12, c >> 12], 0), 2);
    assert_eq!(m.board.free_frames(), free + 2);
    assert!(m.board.is_free(a) && m.board.is_free(b));
    assert_eq!((mapped(&m, a), mapped(&m, b)), (None, None));
    assert!(mapped(&m, c).is_some() && mapped(&m, a + 2 * PAGE).is_some());
    assert_eq!(reservation(&m, op::DECREASE_RESERVATION, &[a >> 12], 0), 0, "already out");
    assert_eq!(reservation_size(&m, op::CURRENT_RESERVATION), (RAM.size() / PAGE - 2) as i64);
    assert_eq!(reservation(&m, op::POPULATE_PHYSMAP, &[b >> 12, a >> 12, c >> 12], 0), 2, "c is still in");
    assert_eq!(m.board.free_frames(), free);
    assert_eq!(mapped(&m, b).map(|l| (l.pa, l.kind)), Some((Pa(b), Kind::Ram)));
    assert_eq!(m.board.u64(b), 0, "comes back zeroed");
    // A frame the hypervisor took meanwhile cannot come back.
    assert_eq!(reservation(&m, op::DECREASE_RESERVATION, &[a >> 12], 0), 1);
    assert!(m.board.claim_frame(a));
    assert_eq!(reservation(&m, op::POPULATE_PHYSMAP, &[a >> 12], 0), 0);
    assert_eq!(mapped(&m, a), None);
    m.board.free_frame(a);
    assert_eq!(reservation(&m, op::POPULATE_PHYSMAP, &[a >> 12], 0), 1);
    // Outside the domain's RAM nothing is populated.
    assert_eq!(reservation(&m, op::POPULATE_PHYSMAP, &[HYPERVISOR_FREE.start >> 12], 0), 0);
    assert_eq!(m.board.free_frames(), free);
}

#[test]
fn two_megabyte_extents() {
    let m = Machine::new(1);
    let free = m.board.free_frames();
    let block = RAM.start + (4 << 20);
    assert_eq!(reservation(&m, op::DECREASE_RESERVATION, &[block >> 12], 9), 1);
    assert_eq!(m.board.free_frames(), free + 512);
    assert!((0..512).all(|i| mapped(&m, block + i * PAGE).is_none()));
    assert!(mapped(&m, block - PAGE).is_some() && mapped(&m, block + (2 << 20)).is_some());
    assert_eq!(reservation(&m, op::POPULATE_PHYSMAP, &[block >> 12], 9), 1);
    assert_eq!(m.board.free_frames(), free);
    assert_eq!(reservation(&m, op::DECREASE_RESERVATION, &[block >> 12], 10), 0, "order above 9");
    // An extent reaching past the RAM's end is refused whole.
    assert_eq!(reservation(&m, op::DECREASE_RESERVATION, &[(RAM.end >> 12) - 256], 9), 0);
    assert!(mapped(&m, RAM.end - PAGE).is_some());
}

#[test]
fn long_lists_continue_and_hostile_reservations_do_nothing() {
    let m = Machine::new(1);
    let gfns: Vec<u64> = (0..1000).map(|i| (RAM.start >> 12) + 0x100 + i).collect();
    let (done, traps) = reservation_at(&m, op::DECREASE_RESERVATION, LIST, &gfns, 0, DOMID_SELF);
    assert_eq!(done, 1000);
    assert!(traps >= 2, "{traps} traps");
    assert_eq!(reservation_at(&m, op::POPULATE_PHYSMAP, LIST, &gfns, 0, DOMID_SELF).0, 1000);
    // Another domain, PoD, increase: nothing.
    assert_eq!(reservation_at(&m, op::DECREASE_RESERVATION, LIST, &gfns[..1], 0, 3).0, 0);
    assert_eq!(reservation(&m, op::INCREASE_RESERVATION, &gfns[..1], 0), 0);
    // A list pointer into nothing, or wrapping.
    assert_eq!(reservation_at(&m, op::DECREASE_RESERVATION, 0x4000_0000, &gfns[..3], 0, DOMID_SELF).0, 0);
    assert_eq!(reservation_at(&m, op::DECREASE_RESERVATION, u64::MAX - 8, &gfns[..3], 0, DOMID_SELF).0, 0);
    // Huge counts: refused before any work.
    let mut r = [0u8; 32];
    r[..8].copy_from_slice(&LIST.to_le_bytes());
    r[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    r[24..26].copy_from_slice(&DOMID_SELF.to_le_bytes());
    m.board.put(ARG, &r);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::DECREASE_RESERVATION, ARG])), 0);
    // A start beyond the count returns the start; a bad struct, the start.
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::DECREASE_RESERVATION | 7 << 6, ARG])), 7);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::POPULATE_PHYSMAP | 3 << 6, RAM.end - 4])), 3);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::POPULATE_PHYSMAP, 0])), 0);
    assert!(gfns.iter().all(|g| mapped(&m, g << 12).is_some()));
}

fn reservation_size(m: &Machine, op: u64) -> i64 {
    m.board.put(ARG, &DOMID_SELF.to_le_bytes());
    m.call(nr::MEMORY_OP, args(&[op, ARG]))
}

#[test]
fn reservation_sizes() {
    let m = Machine::new(1);
    assert_eq!(reservation_size(&m, op::MAXIMUM_RESERVATION), (RAM.size() / PAGE) as i64);
    assert_eq!(reservation_size(&m, op::CURRENT_RESERVATION), (RAM.size() / PAGE) as i64);
    assert_eq!(reservation_size(&m, op::MAXIMUM_GPFN), ((RAM.end >> 12) - 1) as i64);
    m.board.put(ARG, &9u16.to_le_bytes());
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::MAXIMUM_GPFN, ARG])), -ESRCH);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::MAXIMUM_GPFN | 1 << 6, ARG])), -EINVAL);
}

#[test]
fn remove_from_physmap() {
    let m = Machine::new(1);
    let page = RAM.start + 0x30000;
    let free = m.board.free_frames();
    assert_eq!(remove(&m, DOMID_SELF, page >> 12), 0);
    assert_eq!(m.board.free_frames(), free + 1, "ballooned out");
    assert_eq!(remove(&m, DOMID_SELF, page >> 12), -ENOENT);
    assert_eq!(remove(&m, DOMID_SELF, 0x900_0000 >> 12), -ENOENT, "nothing there");
    assert_eq!(remove(&m, DOMID_SELF, u64::MAX), -ENOENT);
    assert_eq!(remove(&m, 4, page >> 12), -ESRCH);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::REMOVE_FROM_PHYSMAP | 1 << 6, ARG])), -EINVAL);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::REMOVE_FROM_PHYSMAP, 8])), -EFAULT);
    assert_eq!(reservation(&m, op::POPULATE_PHYSMAP, &[page >> 12], 0), 1);
}

fn batch(m: &Machine, space: u16, foreign: u16, entries: &[(u64, u64)], start: u64) -> (i64, Vec<i32>) {
    let mut b = [0u8; 32];
    b[..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    b[2..4].copy_from_slice(&space.to_le_bytes());
    b[4..6].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    b[6..8].copy_from_slice(&foreign.to_le_bytes());
    let (idxs, gpfns) = (LIST, LIST + 0x4000);
    b[8..16].copy_from_slice(&idxs.to_le_bytes());
    b[16..24].copy_from_slice(&gpfns.to_le_bytes());
    b[24..32].copy_from_slice(&ERRS.to_le_bytes());
    for (i, (idx, gpfn)) in entries.iter().enumerate() {
        m.board.set_u64(idxs + 8 * i as u64, *idx);
        m.board.set_u64(gpfns + 8 * i as u64, *gpfn);
    }
    m.board.put(ARG, &b);
    let rc = m.call(nr::MEMORY_OP, args(&[op::ADD_TO_PHYSMAP_BATCH | start << 6, ARG]));
    let errs = (0..entries.len() as u64)
        .map(|i| i32::from_le_bytes(m.board.get(ERRS + 4 * i, 4).try_into().unwrap()))
        .collect();
    (rc, errs)
}

#[test]
fn physmap_batches_fail_foreign_entries_one_by_one() {
    let m = Machine::new(1);
    let entries: Vec<(u64, u64)> = (0..200).map(|i| (i, (0x4800_0000 >> 12) + i)).collect();
    let (rc, errs) = batch(&m, space::GMFN_FOREIGN, 0, &entries, 0);
    assert_eq!(rc, 0);
    assert!(errs.iter().all(|&e| e == -EINVAL as i32), "its own frames are not foreign");
    let (rc, errs) = batch(&m, space::GMFN_FOREIGN, 5, &entries[..3], 0);
    assert_eq!((rc, errs), (0, vec![-ESRCH as i32; 3]), "no such domain");
    let base = GRANT_REGION.start >> 12;
    let (rc, errs) = batch(&m, space::GRANT_TABLE, 0, &[(1, base + 1), (0, base), (99, base + 2)], 0);
    assert_eq!((rc, errs), (0, vec![0, 0, -EINVAL as i32]));
    assert_eq!(batch(&m, space::GMFN_RANGE, 0, &entries[..1], 0).0, -EOPNOTSUPP);
    assert_eq!(batch(&m, space::DEV_MMIO, 1, &entries[..1], 0).0, -EOPNOTSUPP);
    assert_eq!(batch(&m, space::GMFN_FOREIGN, 0, &[], 0).0, 0);
    assert_eq!(batch(&m, space::GMFN_FOREIGN, 0, &entries[..2], 3).0, -EILSEQ);
    assert_eq!(batch(&m, space::GMFN_FOREIGN, 0, &entries[..2], 2).0, -EILSEQ);
    assert_eq!(batch(&m, space::GMFN_FOREIGN, 0, &entries[..2], 1 << 16).0, -EDOM);
    assert_eq!(batch(&m, space::GMFN_FOREIGN, 0, &[(0, u64::MAX)], 0).0, -EINVAL);
    let mut b = [0u8; 32];
    b[4..6].copy_from_slice(&1u16.to_le_bytes());
    b[8..16].copy_from_slice(&LIST.to_le_bytes());
    b[16..24].copy_from_slice(&LIST.to_le_bytes());
    b[24..32].copy_from_slice(&(RAM.end - 2).to_le_bytes());
    b[2..4].copy_from_slice(&space::GMFN_FOREIGN.to_le_bytes());
    m.board.put(ARG, &b);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[op::ADD_TO_PHYSMAP_BATCH, ARG])), -EFAULT, "errs runs off its RAM");
}

/// A 2 MiB extent straddling two blocks of RAM, ballooned out while the
/// table budget runs out: each block must be split, and when the second
/// cannot be, the pages already unmapped come back. None may vanish,
/// unmapped but neither free nor counted as ballooned out.
#[test]
fn ballooning_out_of_tables_loses_no_page() {
    let pages = RAM.size() / PAGE;
    let straddling = RAM.start + (2 << 20) - 256 * PAGE;
    let mut outcomes = Vec::new();
    for tables in crate::mm::stage2::TABLE_BUDGET - 8..=crate::mm::stage2::TABLE_BUDGET {
        let m = Machine::new(1);
        m.spend_tables(tables);
        let accounted = m.frames_accounted();
        let done = reservation(&m, op::DECREASE_RESERVATION, &[straddling >> 12], 9);
        let first_block_split = mapped(&m, straddling).is_some_and(|l| l.size == PAGE);
        outcomes.push(match done {
            1 => "ballooned",
            _ if first_block_split => "put back",
            _ => "refused",
        });
        let out = (0..512).filter(|i| mapped(&m, straddling + i * PAGE).is_none()).count() as u64;
        assert_eq!(out, done as u64 * 512, "with {tables} tables: the whole extent or none of it");
        let ram_mapped = m.audit().unwrap().ram_bytes / PAGE;
        let ballooned = m.domain.xen.ballooned.load(core::sync::atomic::Ordering::Acquire);
        assert_eq!(ram_mapped + ballooned, pages, "with {tables} tables: every page mapped or ballooned out");
        assert_eq!(m.frames_accounted(), accounted);
    }
    // Enough tables, enough for the first split only, not even that.
    assert_eq!(outcomes.last_chunk(), Some(&["ballooned", "put back", "refused"]), "{outcomes:?}");
}

/// Dom0 mapping a DomU's frames (privcmd's foreign maps) on the two-domain model.
mod foreign {
    use super::*;
    use crate::xen::testing::{DOMU, DOMU_FRAMES, DOMU_RAM, SCRATCH};

    const DOMU_GFN: u64 = DOMU_RAM.start >> 12;

    fn pinned(m: &Machine, ipa: u64) -> bool {
        m.dom(DOMU).stage2.lock_holding_no_xen_lock().is_pinned(Ipa(ipa))
    }

    #[test]
    fn dom0_maps_domu_frames_and_removes_them() {
        let m = Machine::with_domu(1);
        let free = m.board.free_frames();
        let scratch = SCRATCH >> 12;
        let entries = [(DOMU_GFN, scratch), (DOMU_GFN + 5, scratch + 1), (DOMU_GFN + 2048, scratch + 2)];
        let (rc, errs) = batch(&m, space::GMFN_FOREIGN, DOMU, &entries, 0);
        assert_eq!((rc, errs), (0, vec![0, 0, -EINVAL as i32]), "the last frame is past the DomU's RAM");
        let leaf = mapped(&m, SCRATCH + 0x1000).unwrap();
        assert_eq!((leaf.pa.0, leaf.kind), (DOMU_FRAMES + 0x5000, Kind::Granted { writable: true }));
        assert!(mapped(&m, SCRATCH + 0x2000).is_none());
        assert!(pinned(&m, DOMU_RAM.start + 0x5000), "pinned in the DomU while mapped");
        // Dom0 writes through it into the DomU's page.
        m.board.put(DOMU_FRAMES + 0x5000, b"from the DomU");
        m.audit_of(0).expect("Dom0 may see the DomU's frames");
        m.audit_of(DOMU).unwrap();
        // Double maps: at a taken address, and at the grant region.
        let (rc, errs) = batch(
            &m,
            space::GMFN_FOREIGN,
            DOMU,
            &[(DOMU_GFN + 1, scratch), (DOMU_GFN + 1, GRANT_REGION.start >> 12)],
            0,
        );
        assert_eq!((rc, errs), (0, vec![-EBUSY as i32, -EINVAL as i32]));
        let (_, errs) = batch(&m, space::GMFN_FOREIGN, DOMU, &[(DOMU_GFN + 1, RAM.start >> 12)], 0);
        assert_eq!(errs, vec![-EBUSY as i32], "over Dom0's RAM");
        // The same DomU frame twice is allowed, pinned twice.
        let (_, errs) = batch(&m, space::GMFN_FOREIGN, DOMU, &[(DOMU_GFN + 5, scratch + 3)], 0);
        assert_eq!(errs, vec![0]);
        assert_eq!(remove(&m, DOMID_SELF, scratch + 1), 0);
        assert!(pinned(&m, DOMU_RAM.start + 0x5000), "one mapping left");
        assert_eq!(remove(&m, DOMID_SELF, scratch + 3), 0);
        assert!(!pinned(&m, DOMU_RAM.start + 0x5000));
        assert_eq!(remove(&m, DOMID_SELF, scratch + 3), -ENOENT, "never mapped (any more)");
        assert_eq!(remove(&m, DOMID_SELF, scratch), 0);
        assert!(mapped(&m, SCRATCH).is_none() && !pinned(&m, DOMU_RAM.start));
        assert_eq!(m.board.free_frames(), free, "the DomU's frames stay its own");
        m.audit_of(0).unwrap();
    }

    #[test]
    fn hostile_foreign_maps() {
        let m = Machine::with_domu(1);
        let scratch = SCRATCH >> 12;
        let (_, errs) = batch(&m, space::GMFN_FOREIGN, 0, &[(RAM.start >> 12, scratch)], 0);
        assert_eq!(errs, vec![-EINVAL as i32], "Dom0 naming itself");
        let (_, errs) = batch(&m, space::GMFN_FOREIGN, DOMID_SELF, &[(RAM.start >> 12, scratch)], 0);
        assert_eq!(errs, vec![-EINVAL as i32]);
        let (_, errs) = batch(&m, space::GMFN_FOREIGN, 9, &[(DOMU_GFN, scratch)], 0);
        assert_eq!(errs, vec![-ESRCH as i32], "no domain 9");
        let (_, errs) = batch(&m, space::GMFN_FOREIGN, DOMU, &[(u64::MAX >> 8, scratch), (DOMU_GFN - 1, scratch)], 0);
        assert_eq!(errs, vec![-EINVAL as i32; 2], "frames outside the DomU's RAM");
        assert!(mapped(&m, SCRATCH).is_none());
        // The DomU may not map Dom0's frames (nor name an unknown domain).
        let at = DOMU_RAM.start + 0x3000;
        let (idxs, gpfns, errs) = (at + 0x100, at + 0x200, at + 0x300);
        let b = crate::xen::testing::le(
            &[
                (0, DOMID_SELF.into(), 2),
                (2, space::GMFN_FOREIGN.into(), 2),
                (4, 2, 2),
                (8, idxs, 8),
                (16, gpfns, 8),
                (24, errs, 8),
            ],
            32,
        );
        for (foreign, want) in [(0u16, -EPERM), (9, -ESRCH), (DOMU, -EINVAL)] {
            let mut b = b.clone();
            b[6..8].copy_from_slice(&foreign.to_le_bytes());
            m.put_in(DOMU, at, &b);
            m.put_in(DOMU, idxs, &[(RAM.start >> 12).to_le_bytes(), (DOMU_GFN).to_le_bytes()].concat());
            m.put_in(
                DOMU,
                gpfns,
                &[(0x9000_0000u64 >> 12).to_le_bytes(), (0x9000_1000u64 >> 12).to_le_bytes()].concat(),
            );
            assert_eq!(m.call_as(DOMU, nr::MEMORY_OP, args(&[op::ADD_TO_PHYSMAP_BATCH, at])), 0);
            let got = m.get_in(DOMU, errs, 8);
            let got: Vec<i64> = got.chunks(4).map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap()))).collect();
            assert_eq!(got, vec![want; 2], "DomU naming {foreign}");
        }
        assert!(m.dom(DOMU).stage2.lock_holding_no_xen_lock().translate(Ipa(0x9000_0000)).is_none());
        m.audit_of(0).unwrap();
        m.audit_of(DOMU).unwrap();
    }
}

/// A DomU balloons nothing: its memory is fixed at build, and its frames
/// go back whole, by the blocks it was built from, when it is released.
mod domu_memory {
    use super::*;
    use crate::mm::range::PhysRange;
    use crate::mm::stage2::{Geometry, Stage2Map};
    use crate::xen::testing::{DOMU, DOMU_RAM, le};

    const DOMU_ARG: u64 = DOMU_RAM.start + 0x6000;
    const DOMU_LIST: u64 = DOMU_RAM.start + 0x6100;

    /// The model's DomU, but with its RAM on the frames at its own
    /// addresses, as a DomU whose block happens to lie at PA == IPA.
    fn one_to_one_domu() -> Machine {
        let m = Machine::with_domu(1);
        let mut stage2 = Stage2Map::new(Geometry::for_ipa_bits(40));
        stage2.map_at(DOMU_RAM, Pa(DOMU_RAM.start), Kind::Ram).unwrap();
        *m.dom(DOMU).stage2.lock_holding_no_xen_lock() = stage2;
        m
    }

    /// A reservation call of the DomU's on the one page at `page`.
    fn domu_reservation(m: &Machine, op: u64, page: u64) -> i64 {
        m.put_in(DOMU, DOMU_LIST, &(page >> 12).to_le_bytes());
        let b = le(&[(0, DOMU_LIST, 8), (8, 1, 8), (24, DOMID_SELF.into(), 2)], 32);
        m.put_in(DOMU, DOMU_ARG, &b);
        m.call_as(DOMU, nr::MEMORY_OP, args(&[op, DOMU_ARG]))
    }

    fn domu_remove(m: &Machine, page: u64) -> i64 {
        m.put_in(DOMU, DOMU_ARG, &le(&[(0, DOMID_SELF.into(), 2), (8, page >> 12, 8)], 16));
        m.call_as(DOMU, nr::MEMORY_OP, args(&[op::REMOVE_FROM_PHYSMAP, DOMU_ARG]))
    }

    #[test]
    fn a_domu_at_pa_equal_ipa_balloons_nothing_out() {
        for remove_it in [false, true] {
            let m = one_to_one_domu();
            let page = DOMU_RAM.start + 0x10_0000;
            let free = m.board.free_frames();
            if remove_it {
                assert_eq!(domu_remove(&m, page), -EBUSY, "its RAM cannot be removed");
            } else {
                assert_eq!(domu_reservation(&m, op::DECREASE_RESERVATION, page), 0, "no extent done");
            }
            assert_eq!(m.board.free_frames(), free, "no frame of its blocks went back");
            assert!(!m.board.is_free(page));
            assert!(m.dom(DOMU).stage2.lock_holding_no_xen_lock().translate(Ipa(page)).is_some(), "still mapped");
            assert_eq!(m.dom(DOMU).xen.ballooned.load(Ordering::Acquire), 0);
        }
    }

    #[test]
    fn a_domu_takes_no_free_frame_at_its_own_address() {
        let m = one_to_one_domu();
        // A hole in its physmap over a frame that is free.
        let page = DOMU_RAM.start + 0x20_0000;
        m.dom(DOMU).stage2.lock_holding_no_xen_lock().unmap_page(Ipa(page), &m.board).unwrap();
        m.board.free_range(PhysRange::new(page, page + 0x1000));
        assert_eq!(domu_reservation(&m, op::POPULATE_PHYSMAP, page), 0, "no extent done");
        assert!(m.board.is_free(page), "the frame stays free");
        assert!(m.dom(DOMU).stage2.lock_holding_no_xen_lock().translate(Ipa(page)).is_none());
    }

    #[test]
    fn a_domu_anywhere_balloons_nothing_either() {
        let m = Machine::with_domu(1);
        let page = DOMU_RAM.start + 0x10_0000;
        let free = m.board.free_frames();
        assert_eq!(domu_reservation(&m, op::DECREASE_RESERVATION, page), 0);
        assert_eq!(domu_remove(&m, page), -EBUSY);
        assert_eq!(m.board.free_frames(), free);
        // Dom0 still balloons as before.
        assert_eq!(m.balloon(op::DECREASE_RESERVATION, RAM.start + 0x30000), 1);
    }
}
