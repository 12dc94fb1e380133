use super::*;
use crate::xen::memory::{op as mem, space};
use crate::xen::testing::{GRANT_REGION, Machine, RAM, SCRATCH, args, u16_at, u32_at, u64_at};
use crate::xen::{DOMID_SELF, GuestMemory, nr};

const ARG: u64 = RAM.start + 0x6000;
const PAGE_A: u64 = RAM.start + 0x50000;
const PAGE_B: u64 = RAM.start + 0x51000;

/// Dom0 with grant frames 0 and 1 in place.
fn machine() -> Machine {
    let m = Machine::new(1);
    for idx in (0..2u64).rev() {
        let mut b = [0u8; 24];
        b[..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
        b[4..8].copy_from_slice(&u32::from(space::GRANT_TABLE).to_le_bytes());
        b[8..16].copy_from_slice(&idx.to_le_bytes());
        b[16..24].copy_from_slice(&((GRANT_REGION.start >> 12) + idx).to_le_bytes());
        m.board.put(ARG, &b);
        assert_eq!(m.call(nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP, ARG])), 0);
    }
    m
}

fn grant(m: &Machine, gref: u32, flags: u16, domid: u16, frame: u64) {
    assert!(m.write_grant(gref, flags, domid, frame), "entry {gref} is in a frame in place");
}

fn flags(m: &Machine, gref: u32) -> u16 {
    m.board.u64(m.grant_entry(gref).unwrap()) as u16
}

fn map_request(host_addr: u64, flags: u32, gref: u32, dom: u16) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&host_addr.to_le_bytes());
    b[8..12].copy_from_slice(&flags.to_le_bytes());
    b[12..16].copy_from_slice(&gref.to_le_bytes());
    b[16..18].copy_from_slice(&dom.to_le_bytes());
    b[18..20].copy_from_slice(&0x7777u16.to_le_bytes());
    b
}

/// One map op: (status, handle, dev_bus_addr).
fn map(m: &Machine, host_addr: u64, flags: u32, gref: u32, dom: u16) -> (i16, u32, u64) {
    m.board.put(ARG, &map_request(host_addr, flags, gref, dom));
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::MAP_GRANT_REF), ARG, 1])), 0);
    let b = m.board.get(ARG, 32);
    (u16_at(&b, 18) as i16, u32_at(&b, 20), u64_at(&b, 24))
}

fn unmap(m: &Machine, host_addr: u64, dev_bus_addr: u64, handle: u32) -> i16 {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&host_addr.to_le_bytes());
    b[8..16].copy_from_slice(&dev_bus_addr.to_le_bytes());
    b[16..20].copy_from_slice(&handle.to_le_bytes());
    m.board.put(ARG, &b);
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::UNMAP_GRANT_REF), ARG, 1])), 0);
    u16_at(&m.board.get(ARG, 24), 20) as i16
}

#[test]
fn sizes_and_versions() {
    let m = Machine::new(1);
    let query = |m: &Machine, dom: u16, count: u64| {
        m.board.put(ARG, &[dom.to_le_bytes().as_slice(), &[0; 14]].concat());
        let rc = m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::QUERY_SIZE), ARG, count]));
        let b = m.board.get(ARG, 16);
        (rc, u32_at(&b, 4), u32_at(&b, 8), u16_at(&b, 12) as i16)
    };
    assert_eq!(query(&m, DOMID_SELF, 1), (0, 0, 64, status::OKAY));
    let m = machine();
    assert_eq!(query(&m, 0, 1), (0, 2, 64, status::OKAY));
    assert_eq!(query(&m, 5, 1).3, status::BAD_DOMAIN);
    assert_eq!(query(&m, DOMID_SELF, 2).0, -EINVAL);
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::QUERY_SIZE), RAM.end - 4, 1])), -EFAULT);
    for (version, rc) in [(1u32, 0), (2, -ENOSYS), (0, -EINVAL), (u32::MAX, -EINVAL)] {
        m.board.put(ARG, &version.to_le_bytes());
        assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::SET_VERSION), ARG, 1])), rc);
        assert_eq!(u32_at(&m.board.get(ARG, 4), 0), 1, "the version in use is written back");
    }
    m.board.put(ARG, &[0xf0, 0x7f, 0, 0, 9, 9, 9, 9]);
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::GET_VERSION), ARG, 1])), 0);
    assert_eq!(u32_at(&m.board.get(ARG, 8), 4), 1);
    for (cmd, count, rc) in
        [(op::CACHE_FLUSH, 1, -ENOSYS), (5, 1, -ENOSYS), (99, 1, -ENOSYS), (op::MAP_GRANT_REF | 1 << 12, 1, -EINVAL)]
    {
        assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(cmd), ARG, count])), rc, "cmd {cmd:#x}");
    }
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::MAP_GRANT_REF), ARG, 0x8000_0000])), -EINVAL);
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::MAP_GRANT_REF), 0, 0])), 0, "nothing to do");
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::MAP_GRANT_REF), 0, 1])), -EFAULT);
}

#[test]
fn a_self_grant_maps_reads_back_and_unmaps() {
    let m = machine();
    m.board.set_u64(PAGE_A + 0x10, 0x0123_4567_89ab_cdef);
    grant(&m, 10, gtf::PERMIT_ACCESS, 0, PAGE_A);
    let (status, handle, bus) = map(&m, SCRATCH, map::HOST_MAP, 10, 0);
    assert_eq!((status, bus), (status::OKAY, PAGE_A));
    assert_eq!(flags(&m, 10), gtf::PERMIT_ACCESS | gtf::READING | gtf::WRITING);
    let mut word = [0u8; 8];
    m.guest().read(SCRATCH + 0x10, &mut word).unwrap();
    assert_eq!(u64::from_le_bytes(word), 0x0123_4567_89ab_cdef, "the granted page, seen at the new address");
    m.guest().write(SCRATCH + 0x18, &[0xaa]).unwrap();
    assert_eq!(m.board.byte(PAGE_A + 0x18), 0xaa);
    // The frame stays Dom0's while mapped, and the mapping is no RAM page.
    assert_eq!(m.balloon(mem::DECREASE_RESERVATION, PAGE_A), 0);
    assert_eq!(m.balloon(mem::POPULATE_PHYSMAP, SCRATCH), 0);
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    b[8..].copy_from_slice(&(SCRATCH >> 12).to_le_bytes());
    m.board.put(ARG, &b);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[mem::REMOVE_FROM_PHYSMAP, ARG])), -EINVAL);
    assert_eq!(unmap(&m, SCRATCH, 0, handle), status::OKAY);
    assert_eq!(flags(&m, 10), gtf::PERMIT_ACCESS);
    assert!(m.guest().read(SCRATCH, &mut word).is_err());
    assert_eq!(unmap(&m, SCRATCH, 0, handle), status::BAD_HANDLE, "double unmap");
    assert_eq!(m.balloon(mem::DECREASE_RESERVATION, PAGE_A), 1, "free to go now");
}

#[test]
fn read_only_grants() {
    let m = machine();
    grant(&m, 600, gtf::PERMIT_ACCESS | gtf::READONLY, 0, PAGE_B);
    assert_eq!(map(&m, SCRATCH, map::HOST_MAP, 600, 0).0, status::GENERAL_ERROR, "writing a read-only grant");
    assert_eq!(flags(&m, 600), gtf::PERMIT_ACCESS | gtf::READONLY);
    let (status, handle, _) = map(&m, SCRATCH, map::HOST_MAP | map::READONLY, 600, 0);
    assert_eq!(status, status::OKAY);
    assert_eq!(flags(&m, 600), gtf::PERMIT_ACCESS | gtf::READONLY | gtf::READING);
    assert!(m.guest().write(SCRATCH, &[1]).is_err(), "read-only in stage 2");
    assert!(m.guest().read(SCRATCH, &mut [0]).is_ok());
    assert_eq!(unmap(&m, SCRATCH, PAGE_B, handle), status::OKAY, "the right bus address is fine");
    assert_eq!(flags(&m, 600), gtf::PERMIT_ACCESS | gtf::READONLY);
}

#[test]
fn readers_and_writers_of_one_entry() {
    let m = machine();
    grant(&m, 1, gtf::PERMIT_ACCESS, 0, PAGE_A);
    let (s1, reader, _) = map(&m, SCRATCH, map::HOST_MAP | map::READONLY, 1, 0);
    assert_eq!(flags(&m, 1), gtf::PERMIT_ACCESS | gtf::READING);
    // The guest changes the entry meanwhile: the mapped frame stays.
    grant(&m, 1, gtf::PERMIT_ACCESS | gtf::READING, 0, PAGE_B);
    let (s2, writer, bus) = map(&m, SCRATCH + PAGE, map::HOST_MAP, 1, 0);
    assert_eq!((s1, s2, bus), (status::OKAY, status::OKAY, PAGE_A));
    assert_eq!(flags(&m, 1), gtf::PERMIT_ACCESS | gtf::READING | gtf::WRITING);
    assert_eq!(unmap(&m, SCRATCH + PAGE, 0, writer), status::OKAY);
    assert_eq!(flags(&m, 1), gtf::PERMIT_ACCESS | gtf::READING);
    assert_eq!(unmap(&m, SCRATCH, 0, reader), status::OKAY);
    assert_eq!(flags(&m, 1), gtf::PERMIT_ACCESS);
    assert!(!m.domain.stage2.lock_holding_no_xen_lock().is_pinned(Ipa(PAGE_A)));
}

#[test]
fn hostile_maps_change_nothing() {
    let m = machine();
    grant(&m, 5, gtf::PERMIT_ACCESS, 0, PAGE_A);
    grant(&m, 6, 0, 0, PAGE_A);
    grant(&m, 7, gtf::PERMIT_ACCESS, 3, PAGE_A);
    grant(&m, 8, gtf::PERMIT_ACCESS, 0, 0x4100_0000);
    grant(&m, 9, gtf::PERMIT_ACCESS, 0, RAM.start + 0x60000);
    grant(&m, 11, gtf::PERMIT_ACCESS | 2, 0, PAGE_A);
    assert_eq!(m.balloon(mem::DECREASE_RESERVATION, RAM.start + 0x60000), 1);
    let tables = m.domain.stage2.lock_holding_no_xen_lock().tables();
    let cases: &[(u64, u32, u32, u16, i16)] = &[
        (SCRATCH, 0, 5, 0, status::BAD_GNTREF),
        (SCRATCH, map::DEVICE_MAP | map::HOST_MAP, 5, 0, status::GENERAL_ERROR),
        (SCRATCH, map::HOST_MAP | map::CONTAINS_PTE, 5, 0, status::GENERAL_ERROR),
        (SCRATCH, map::HOST_MAP | map::APPLICATION_MAP, 5, 0, status::GENERAL_ERROR),
        (SCRATCH, map::HOST_MAP, 5, 1, status::BAD_DOMAIN),
        (SCRATCH, map::HOST_MAP, 5, DOMID_SELF, status::BAD_DOMAIN),
        (SCRATCH, map::HOST_MAP, 1024, 0, status::BAD_GNTREF),
        (SCRATCH, map::HOST_MAP, u32::MAX, 0, status::BAD_GNTREF),
        (SCRATCH, map::HOST_MAP, 6, 0, status::GENERAL_ERROR),
        (SCRATCH, map::HOST_MAP, 7, 0, status::GENERAL_ERROR),
        (SCRATCH, map::HOST_MAP, 11, 0, status::GENERAL_ERROR),
        (SCRATCH, map::HOST_MAP, 8, 0, status::BAD_PAGE),
        (SCRATCH, map::HOST_MAP, 9, 0, status::BAD_PAGE),
        (SCRATCH + 8, map::HOST_MAP, 5, 0, status::BAD_VIRT_ADDR),
        (PAGE_B, map::HOST_MAP, 5, 0, status::BAD_VIRT_ADDR),
        (0x900_0000, map::HOST_MAP, 5, 0, status::OKAY),
        (0x900_0000, map::HOST_MAP, 5, 0, status::BAD_VIRT_ADDR),
        (GRANT_REGION.start + 0x10000, map::HOST_MAP, 5, 0, status::BAD_VIRT_ADDR),
        (1 << 40, map::HOST_MAP, 5, 0, status::BAD_VIRT_ADDR),
        (!0xfff, map::HOST_MAP, 5, 0, status::BAD_VIRT_ADDR),
    ];
    for &(host_addr, map_flags, gref, dom, expected) in cases {
        let before = [5, 6, 7, 8, 9, 11].map(|g| flags(&m, g));
        let (status, _, _) = map(&m, host_addr, map_flags, gref, dom);
        assert_eq!(status, expected, "map {gref} at {host_addr:#x} flags {map_flags:#x} dom {dom}");
        if expected != status::OKAY {
            assert_eq!([5, 6, 7, 8, 9, 11].map(|g| flags(&m, g)), before, "undone");
        }
    }
    assert_eq!(
        m.domain.stage2.lock_holding_no_xen_lock().tables(),
        tables + 2,
        "tables for the one mapping at 0x9000000 only"
    );
}

#[test]
fn hostile_unmaps() {
    let m = machine();
    grant(&m, 3, gtf::PERMIT_ACCESS, 0, PAGE_A);
    let (_, handle, _) = map(&m, SCRATCH, map::HOST_MAP, 3, 0);
    assert_eq!(unmap(&m, SCRATCH, 0, 9999), status::BAD_HANDLE);
    assert_eq!(unmap(&m, SCRATCH, 0, u32::MAX), status::BAD_HANDLE);
    assert_eq!(unmap(&m, SCRATCH + PAGE, 0, handle), status::GENERAL_ERROR, "wrong address");
    assert_eq!(unmap(&m, 0, 0, handle), status::GENERAL_ERROR);
    assert_eq!(unmap(&m, SCRATCH, PAGE_B, handle), status::BAD_DEV_ADDR);
    assert!(
        m.domain.stage2.lock_holding_no_xen_lock().translate(Ipa(SCRATCH)).is_some(),
        "still mapped after the refusals"
    );
    assert_eq!(unmap(&m, SCRATCH + 0x123, PAGE_A, handle), status::OKAY, "offsets in the page are ignored");
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::UNMAP_GRANT_REF), RAM.end - 8, 1])), -EFAULT);
}

#[test]
fn batches_continue_and_report_each_status() {
    let m = machine();
    grant(&m, 20, gtf::PERMIT_ACCESS, 0, PAGE_A);
    grant(&m, 21, gtf::PERMIT_ACCESS, 0, PAGE_B);
    let n = 150u64;
    let ops = RAM.start + 0x100000;
    for i in 0..n {
        let gref = if i == 77 { 5000 } else { 20 + (i % 2) as u32 };
        m.board.put(ops + i * 32, &map_request(SCRATCH + i * PAGE, map::HOST_MAP | map::READONLY, gref, 0));
    }
    let (outcome, traps) = m.call_counting(0, nr::GRANT_TABLE_OP, args(&[u64::from(op::MAP_GRANT_REF), ops, n]));
    assert_eq!(outcome, Outcome::Return(0));
    assert!(traps >= 3, "{traps} traps");
    let results: Vec<(i16, u32)> =
        (0..n).map(|i| m.board.get(ops + i * 32, 32)).map(|b| (u16_at(&b, 18) as i16, u32_at(&b, 20))).collect();
    assert_eq!(results[77].0, status::BAD_GNTREF);
    assert!(results.iter().enumerate().all(|(i, r)| i == 77 || r.0 == status::OKAY));
    let mut handles: Vec<u32> = results.iter().enumerate().filter(|(i, _)| *i != 77).map(|(_, r)| r.1).collect();
    handles.sort();
    handles.dedup();
    assert_eq!(handles.len(), n as usize - 1);
    // Unmap them all in one batch.
    let unmaps = RAM.start + 0x200000;
    for (i, r) in results.iter().enumerate() {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&(SCRATCH + i as u64 * PAGE).to_le_bytes());
        b[16..20].copy_from_slice(&r.1.to_le_bytes());
        m.board.put(unmaps + i as u64 * 24, &b);
    }
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[u64::from(op::UNMAP_GRANT_REF), unmaps, n])), 0);
    let bad = (0..n).filter(|i| u16_at(&m.board.get(unmaps + i * 24, 24), 20) != 0).count();
    assert_eq!(bad, 1, "only the one that never mapped");
    assert_eq!((flags(&m, 20), flags(&m, 21)), (gtf::PERMIT_ACCESS, gtf::PERMIT_ACCESS));
}

#[test]
fn maptrack_runs_out_cleanly() {
    let m = machine();
    grant(&m, 30, gtf::PERMIT_ACCESS, 0, PAGE_A);
    let mut grants = m.domain.xen.grants.lock();
    let mut stage2 = m.domain.stage2.lock_after_grants(&grants);
    let request =
        |i: u64| MapRequest { host_addr: SCRATCH + i * PAGE, flags: map::HOST_MAP | map::READONLY, gref: 30, dom: 0 };
    // Pins per entry are bounded too, so spread over entries.
    for i in 0..MAX_MAPTRACK as u64 {
        let gref = 30 + (i / 100) as u32;
        if i % 100 == 0 {
            let pa = grants.entry(gref).unwrap();
            m.board.set_u64(pa, u64::from(gtf::PERMIT_ACCESS) | (PAGE_A >> 12) << 32);
        }
        let r = MapRequest { gref, ..request(i) };
        assert_eq!(grants.map_one(&m.domain.view(), &mut stage2, &m.board, &r).0, status::OKAY, "map {i}");
    }
    assert_eq!(
        grants.map_one(&m.domain.view(), &mut stage2, &m.board, &request(MAX_MAPTRACK as u64)).0,
        status::NO_SPACE
    );
    assert_eq!(grants.unmap_one(&mut stage2, &m.board, SCRATCH, 0, 0), status::OKAY);
    assert_eq!(grants.map_one(&m.domain.view(), &mut stage2, &m.board, &request(0)).1, 0, "the freed handle again");
}

#[test]
fn pin_counts_are_bounded() {
    let m = machine();
    grant(&m, 40, gtf::PERMIT_ACCESS, 0, PAGE_A);
    for i in 0..u64::from(PIN_LIMIT) {
        assert_eq!(map(&m, SCRATCH + i * PAGE, map::HOST_MAP | map::READONLY, 40, 0).0, status::OKAY);
    }
    assert_eq!(map(&m, SCRATCH + 0x100_0000, map::HOST_MAP | map::READONLY, 40, 0).0, status::GENERAL_ERROR);
    assert_eq!(map(&m, SCRATCH + 0x100_0000, map::HOST_MAP, 40, 0).0, status::OKAY, "writers count apart");
}

proptest::proptest! {
    /// Random maps, unmaps and ballooning: every live mapping shows its
    /// frame at its address, the entry's flags match the live mappings, no
    /// mapped frame is ever free, no frame is lost, and the stage 2 passes
    /// the audit.
    #[test]
    fn grant_state_stays_consistent(ops in proptest::collection::vec((0u8..4, 0u32..6, 0u64..8, proptest::bool::ANY), 1..60)) {
        let m = machine();
        let accounted = m.frames_accounted();
        let pages = [PAGE_A, PAGE_B, RAM.start + 0x52000];
        for gref in 0..6u32 {
            let ro = if gref % 3 == 2 { gtf::READONLY } else { 0 };
            grant(&m, gref, gtf::PERMIT_ACCESS | ro, 0, pages[gref as usize % 3]);
        }
        let mut live: Vec<(u64, u32, u32, bool)> = Vec::new(); // (addr, handle, gref, writable)
        for (kind, gref, slot, readonly) in ops {
            let addr = SCRATCH + slot * PAGE;
            match kind {
                0 | 1 => {
                    let flags = map::HOST_MAP | if readonly { map::READONLY } else { 0 };
                    let (status, handle, bus) = map(&m, addr, flags, gref, 0);
                    if status == status::OKAY {
                        proptest::prop_assert_eq!(bus, pages[gref as usize % 3]);
                        live.push((addr, handle, gref, !readonly));
                    }
                }
                2 => {
                    if let Some(i) = live.iter().position(|l| l.0 == addr) {
                        let (addr, handle, _, _) = live.remove(i);
                        proptest::prop_assert_eq!(unmap(&m, addr, 0, handle), status::OKAY);
                    } else {
                        proptest::prop_assert_eq!(unmap(&m, addr, 0, slot as u32 + 500), status::BAD_HANDLE);
                    }
                }
                _ => {
                    let page = pages[gref as usize % 3];
                    let op = if readonly { mem::POPULATE_PHYSMAP } else { mem::DECREASE_RESERVATION };
                    m.balloon(op, page);
                }
            }
        }
        let stage2 = m.domain.stage2.lock_holding_no_xen_lock();
        for &(addr, _, gref, writable) in &live {
            let leaf = stage2.translate(Ipa(addr)).unwrap();
            proptest::prop_assert_eq!(leaf.pa, Pa(pages[gref as usize % 3]));
            proptest::prop_assert_eq!(leaf.kind, Kind::Granted { writable });
            proptest::prop_assert!(!m.board.is_free(leaf.pa.0));
            proptest::prop_assert!(stage2.translate(Ipa::identity_of(leaf.pa)).is_some(), "the granted frame's own page stays");
        }
        drop(stage2);
        for gref in 0..6u32 {
            let users: Vec<_> = live.iter().filter(|l| l.2 == gref).collect();
            let f = flags(&m, gref);
            proptest::prop_assert_eq!(f & gtf::READING != 0, !users.is_empty());
            proptest::prop_assert_eq!(f & gtf::WRITING != 0, users.iter().any(|l| l.3));
        }
        proptest::prop_assert_eq!(m.frames_accounted(), accounted);
        let summary = m.audit().map_err(|v| proptest::test_runner::TestCaseError::fail(v.to_string()))?;
        proptest::prop_assert_eq!(summary.granted_bytes, live.len() as u64 * PAGE);
    }
}

#[test]
fn the_audit_follows_grants_and_ballooning_and_names_a_leak() {
    use crate::mm::audit::{Violation, owned};
    let m = machine();
    grant(&m, 5, gtf::PERMIT_ACCESS, 0, PAGE_A);
    assert_eq!(map(&m, SCRATCH, map::HOST_MAP, 5, 0).0, status::OKAY);
    assert_eq!(m.balloon(mem::DECREASE_RESERVATION, PAGE_B), 1);
    let summary = m.audit().unwrap();
    assert_eq!(summary.granted_bytes, PAGE);
    assert_eq!(summary.shared_bytes, 2 * PAGE, "grant frames 0 and 1");
    assert_eq!(summary.ram_bytes, RAM.size() - PAGE, "less the ballooned page");
    // What the hypercalls never do: a table frame outside the region, a
    // ballooned frame back behind the allocator's back.
    let table_frame = m.domain.xen.grants.lock().frame_addresses().next().unwrap();
    let leaked = |ipa: u64, pa: u64| {
        m.domain.stage2.lock_holding_no_xen_lock().map_page(Ipa(ipa), Pa(pa), Kind::Ram, &m.board).unwrap();
        let found = m.audit();
        m.domain.stage2.lock_holding_no_xen_lock().unmap_page(Ipa(ipa), &m.board).unwrap();
        match found {
            Err(Violation::HypervisorMemory { mapping, owned }) if mapping.ipa.contains(ipa) => owned.what,
            other => panic!("{ipa:#x} -> {pa:#x}: {other:?}"),
        }
    };
    assert_eq!(leaked(SCRATCH + PAGE, table_frame), owned::GRANT_FRAME);
    assert_eq!(leaked(PAGE_B, PAGE_B), owned::FREE);
    assert!(m.audit().is_ok());
}

#[test]
fn frames_reserved_at_build_are_used_as_the_guest_grows_the_table() {
    let m = Machine::new(1);
    let free = m.board.free_frames();
    m.domain.xen.grants.lock().reserve_frames(&m.board).unwrap();
    assert_eq!(m.board.free_frames(), free - 64);
    assert_eq!(m.domain.xen.grants.lock().nr_frames(), 0);
    let mut b = [0u8; 24];
    b[..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    b[4..8].copy_from_slice(&u32::from(space::GRANT_TABLE).to_le_bytes());
    b[8..16].copy_from_slice(&3u64.to_le_bytes());
    b[16..24].copy_from_slice(&((GRANT_REGION.start >> 12) + 3).to_le_bytes());
    m.board.put(ARG, &b);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP, ARG])), 0);
    assert_eq!(m.domain.xen.grants.lock().nr_frames(), 4);
    assert_eq!(m.board.free_frames(), free - 64, "no frame taken at runtime");
    assert_eq!(map(&m, SCRATCH, map::HOST_MAP, 2048, 0).0, status::BAD_GNTREF, "beyond the grown size");
}

/// Dom0 mapping a DomU's grants on the two-domain model.
mod interdomain {
    use super::*;
    use crate::xen::testing::{DOMU, DOMU_FRAMES, DOMU_GRANT_REGION, DOMU_RAM};

    const DOMU_ARG: u64 = DOMU_RAM.start + 0x6000;
    /// A page of the DomU's, and the frame behind it.
    const SHARED_PAGE: u64 = DOMU_RAM.start + 0x20_0000;
    const SHARED_FRAME: u64 = DOMU_FRAMES + 0x20_0000;

    /// Dom0 (grant frames in place) and the DomU, its grant frame 0 in place.
    fn machine() -> Machine {
        let m = Machine::with_domu(1);
        for idx in (0..2u64).rev() {
            let b = crate::xen::testing::le(
                &[
                    (0, DOMID_SELF.into(), 2),
                    (4, space::GRANT_TABLE.into(), 4),
                    (8, idx, 8),
                    (16, (GRANT_REGION.start >> 12) + idx, 8),
                ],
                24,
            );
            m.board.put(ARG, &b);
            assert_eq!(m.call(nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP, ARG])), 0);
        }
        let b = crate::xen::testing::le(
            &[(0, DOMID_SELF.into(), 2), (4, space::GRANT_TABLE.into(), 4), (16, DOMU_GRANT_REGION.start >> 12, 8)],
            24,
        );
        m.put_in(DOMU, DOMU_ARG, &b);
        assert_eq!(m.call_as(DOMU, nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP, DOMU_ARG])), 0);
        m
    }

    /// The DomU's entry `gref`, where the hypervisor keeps it.
    fn entry(m: &Machine, gref: u32) -> u64 {
        m.pa_in(DOMU, DOMU_GRANT_REGION.start + u64::from(gref) * 8)
    }

    /// The DomU grants its page at `page` to `domid`, as it writes its table.
    fn domu_grant(m: &Machine, gref: u32, flags: u16, domid: u16, page: u64) {
        m.board.set_u64(entry(m, gref), u64::from(flags) | u64::from(domid) << 16 | (page >> 12) << 32);
    }

    fn domu_flags(m: &Machine, gref: u32) -> u16 {
        m.board.u64(entry(m, gref)) as u16
    }

    fn leaf(m: &Machine, domid: u16, ipa: u64) -> Option<crate::mm::stage2::Leaf> {
        m.dom(domid).stage2.lock_holding_no_xen_lock().translate(Ipa(ipa))
    }

    fn pinned(m: &Machine, ipa: u64) -> bool {
        m.dom(DOMU).stage2.lock_holding_no_xen_lock().is_pinned(Ipa(ipa))
    }

    #[test]
    fn dom0_maps_a_domu_grant_at_the_frame_behind_it() {
        let m = machine();
        domu_grant(&m, 3, gtf::PERMIT_ACCESS, 0, SHARED_PAGE);
        let (st, handle, bus) = map(&m, SCRATCH, map::HOST_MAP, 3, DOMU);
        assert_eq!((st, bus), (status::OKAY, SHARED_FRAME), "dev_bus_addr is the host frame");
        assert_eq!(domu_flags(&m, 3), gtf::PERMIT_ACCESS | gtf::READING | gtf::WRITING);
        let l = leaf(&m, 0, SCRATCH).unwrap();
        assert_eq!((l.pa.0, l.kind), (SHARED_FRAME, Kind::Granted { writable: true }));
        assert!(pinned(&m, SHARED_PAGE), "the frame is pinned in the DomU's stage 2");
        m.audit_of(0).expect("Dom0 may see a DomU's granted frame");
        m.audit_of(DOMU).expect("the DomU's stage 2 is its RAM and grant frames");
        // A read-only second map of the same entry.
        let (st, ro, _) = map(&m, SCRATCH + 0x1000, map::HOST_MAP | map::READONLY, 3, DOMU);
        assert_eq!(st, status::OKAY);
        assert_eq!(unmap(&m, SCRATCH, SHARED_FRAME, handle), status::OKAY);
        assert_eq!(domu_flags(&m, 3), gtf::PERMIT_ACCESS | gtf::READING, "writing cleared with the last writer");
        assert!(pinned(&m, SHARED_PAGE));
        assert_eq!(unmap(&m, SCRATCH + 0x1000, 0, ro), status::OKAY);
        assert_eq!(domu_flags(&m, 3), gtf::PERMIT_ACCESS);
        assert!(!pinned(&m, SHARED_PAGE) && leaf(&m, 0, SCRATCH).is_none());
        assert_eq!(unmap(&m, SCRATCH, 0, handle), status::BAD_HANDLE, "unmapped twice");
        m.audit_of(0).unwrap();
    }

    #[test]
    fn hostile_maps_of_domu_grants_fail_and_change_nothing() {
        let m = machine();
        domu_grant(&m, 1, gtf::PERMIT_ACCESS, 0, SHARED_PAGE);
        domu_grant(&m, 2, gtf::PERMIT_ACCESS, 5, SHARED_PAGE);
        domu_grant(&m, 3, gtf::PERMIT_ACCESS | gtf::READONLY, 0, SHARED_PAGE);
        domu_grant(&m, 4, 0, 0, SHARED_PAGE);
        domu_grant(&m, 5, gtf::PERMIT_ACCESS, 0, DOMU_RAM.end);
        domu_grant(&m, 6, gtf::PERMIT_ACCESS, 0, RAM.start);
        let rw = map::HOST_MAP;
        assert_eq!(map(&m, SCRATCH, rw, 1, 7).0, status::BAD_DOMAIN, "no domain 7");
        assert_eq!(map(&m, SCRATCH, rw, 2, DOMU).0, status::GENERAL_ERROR, "granted to domain 5");
        assert_eq!(map(&m, SCRATCH, rw, 3, DOMU).0, status::GENERAL_ERROR, "read-only grant mapped writable");
        assert_eq!(map(&m, SCRATCH, rw, 4, DOMU).0, status::GENERAL_ERROR, "not permitted");
        assert_eq!(map(&m, SCRATCH, rw, 5, DOMU).0, status::BAD_PAGE, "a frame outside the DomU's RAM");
        assert_eq!(map(&m, SCRATCH, rw, 6, DOMU).0, status::BAD_PAGE, "Dom0's page through the DomU's grant");
        assert_eq!(map(&m, SCRATCH, rw, 512, DOMU).0, status::BAD_GNTREF, "beyond the DomU's table");
        assert_eq!(map(&m, GRANT_REGION.start, rw, 1, DOMU).0, status::BAD_VIRT_ADDR);
        assert_eq!(map(&m, PAGE_A, rw, 1, DOMU).0, status::BAD_VIRT_ADDR, "over Dom0's RAM");
        assert_eq!(map(&m, SCRATCH + 1, rw, 1, DOMU).0, status::BAD_VIRT_ADDR);
        for gref in 1..=6 {
            let want = m.board.u64(entry(&m, gref)) as u16 & (gtf::READING | gtf::WRITING);
            assert_eq!(want, 0, "entry {gref} left unmarked");
        }
        assert!(!pinned(&m, SHARED_PAGE));
        // A double map at one address.
        let (st, handle, _) = map(&m, SCRATCH, rw | map::READONLY, 3, DOMU);
        assert_eq!(st, status::OKAY);
        assert_eq!(map(&m, SCRATCH, rw, 1, DOMU).0, status::BAD_VIRT_ADDR, "the address is taken");
        assert_eq!(domu_flags(&m, 1), gtf::PERMIT_ACCESS);
        assert_eq!(unmap(&m, SCRATCH, 0x1234_5000, handle), status::BAD_DEV_ADDR);
        assert_eq!(unmap(&m, SCRATCH + 0x1000, 0, handle), status::GENERAL_ERROR);
        assert_eq!(unmap(&m, SCRATCH, 0, 999), status::BAD_HANDLE, "never mapped");
        assert_eq!(unmap(&m, SCRATCH, 0, handle), status::OKAY);
        // The DomU may not map Dom0's grant to someone else, nor its own
        // grant to Dom0 (not a grantee of it).
        assert!(m.write_grant(0, gtf::PERMIT_ACCESS, 0, PAGE_B));
        let req = map_request(DOMU_RAM.end + 0x10_0000, rw, 0, 0);
        m.put_in(DOMU, DOMU_ARG, &req);
        assert_eq!(m.call_as(DOMU, nr::GRANT_TABLE_OP, args(&[u64::from(op::MAP_GRANT_REF), DOMU_ARG, 1])), 0);
        assert_eq!(u16_at(&m.get_in(DOMU, DOMU_ARG, 32), 18) as i16, status::GENERAL_ERROR, "granted to Dom0, not it");
        assert_eq!(flags(&m, 0), gtf::PERMIT_ACCESS);
        m.audit_of(0).unwrap();
        m.audit_of(DOMU).unwrap();
    }

    #[test]
    fn self_grants_are_unchanged_beside_a_domu() {
        let m = machine();
        grant(&m, 9, gtf::PERMIT_ACCESS, 0, PAGE_A);
        assert_eq!(map(&m, SCRATCH, map::HOST_MAP, 9, DOMID_SELF).0, status::BAD_DOMAIN, "as before");
        let (st, handle, bus) = map(&m, SCRATCH, map::HOST_MAP, 9, 0);
        assert_eq!((st, bus), (status::OKAY, PAGE_A));
        assert_eq!(map(&m, SCRATCH, map::HOST_MAP, 9, 0).0, status::BAD_VIRT_ADDR);
        assert_eq!(unmap(&m, SCRATCH, PAGE_A, handle), status::OKAY);
    }
}
