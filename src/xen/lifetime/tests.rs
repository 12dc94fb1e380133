use crate::xen::errno::*;
use crate::xen::events::{NR_PORTS, op as ev, stat, virq};
use crate::xen::grant::{gtf, map, op as gnt, status};
use crate::xen::memory::{op as mem, space};
use crate::xen::testing::{
    DOMU, DOMU_FRAMES, DOMU_GRANT_REGION, DOMU_RAM, Machine, RAM, SCRATCH, args, le, u16_at, u32_at,
};
use crate::xen::{DOMID_SELF, Domains, nr};

const ARG: u64 = RAM.start + 0x7000;
const LIST: u64 = RAM.start + 0x8000;
const SHARED: u64 = RAM.start + 0x9000;
const DOMU_ARG: u64 = DOMU_RAM.start + 0x6000;
const DOMU_SHARED: u64 = DOMU_RAM.start + 0x7000;
/// The DomU's RAM in frames.
const DOMU_PAGES: u64 = DOMU_RAM.size() / 4096;

/// The DomU's page `i` of those Dom0 maps, and the frame behind it.
fn page(i: u64) -> u64 {
    DOMU_RAM.start + 0x10_0000 + i * 0x1000
}

fn frame(i: u64) -> u64 {
    DOMU_FRAMES + 0x10_0000 + i * 0x1000
}

/// Dom0's slot `i` (IPA space outside its RAM) for a mapping.
fn slot(i: u64) -> u64 {
    SCRATCH + i * 0x1000
}

/// Dom0 and the DomU, each with shared_info placed, the DomU's grant frame 0 too.
fn machine() -> Machine {
    let m = Machine::with_domu(1);
    for (domid, arg, page) in [(0, ARG, SHARED), (DOMU, DOMU_ARG, DOMU_SHARED)] {
        m.put_in(
            domid,
            arg,
            &le(&[(0, DOMID_SELF.into(), 2), (4, space::SHARED_INFO.into(), 4), (16, page >> 12, 8)], 24),
        );
        assert_eq!(m.call_as(domid, nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP, arg])), 0);
    }
    let b =
        le(&[(0, DOMID_SELF.into(), 2), (4, space::GRANT_TABLE.into(), 4), (16, DOMU_GRANT_REGION.start >> 12, 8)], 24);
    m.put_in(DOMU, DOMU_ARG, &b);
    assert_eq!(m.call_as(DOMU, nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP, DOMU_ARG])), 0);
    m
}

/// Dom0 maps the DomU's page `i` at its slot `s` with privcmd's batch:
/// the entry's error (or the call's).
fn foreign_map(m: &Machine, s: u64, i: u64) -> i64 {
    m.board.set_u64(LIST, page(i) >> 12);
    m.board.set_u64(LIST + 8, slot(s) >> 12);
    m.board.set_u64(LIST + 16, 0x5555);
    let b = le(
        &[
            (0, DOMID_SELF.into(), 2),
            (2, space::GMFN_FOREIGN.into(), 2),
            (4, 1, 2),
            (6, DOMU.into(), 2),
            (8, LIST, 8),
            (16, LIST + 8, 8),
            (24, LIST + 16, 8),
        ],
        32,
    );
    m.board.put(ARG, &b);
    match m.call(nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP_BATCH, ARG])) {
        0 => i64::from(m.board.u64(LIST + 16) as u32 as i32),
        rc => rc,
    }
}

/// Dom0's remove_from_physmap of its slot `s`.
fn foreign_unmap(m: &Machine, s: u64) -> i64 {
    m.board.put(ARG, &le(&[(0, DOMID_SELF.into(), 2), (8, slot(s) >> 12, 8)], 16));
    m.call(nr::MEMORY_OP, args(&[mem::REMOVE_FROM_PHYSMAP, ARG]))
}

/// The DomU grants its page `i` to Dom0 as entry `gref`.
fn domu_grant(m: &Machine, gref: u32, i: u64) {
    let entry = m.pa_in(DOMU, DOMU_GRANT_REGION.start + u64::from(gref) * 8);
    m.board.set_u64(entry, u64::from(gtf::PERMIT_ACCESS) | (page(i) >> 12) << 32);
}

/// Dom0 maps the DomU's grant `gref` at its slot `s`: (status, handle).
fn grant_map(m: &Machine, s: u64, gref: u32) -> (i16, u32) {
    let b = le(&[(0, slot(s), 8), (8, map::HOST_MAP.into(), 4), (12, gref.into(), 4), (16, DOMU.into(), 2)], 32);
    m.board.put(ARG, &b);
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[gnt::MAP_GRANT_REF.into(), ARG, 1])), 0);
    let out = m.board.get(ARG, 32);
    (u16_at(&out, 18) as i16, u32_at(&out, 20))
}

fn grant_unmap(m: &Machine, s: u64, handle: u32) -> i16 {
    m.board.put(ARG, &le(&[(0, slot(s), 8), (16, handle.into(), 4)], 24));
    assert_eq!(m.call(nr::GRANT_TABLE_OP, args(&[gnt::UNMAP_GRANT_REF.into(), ARG, 1])), 0);
    u16_at(&m.board.get(ARG, 24), 20) as i16
}

/// An event-channel call of `domid` with `bytes` at its argument page:
/// (x0, the struct after).
fn evtchn(m: &Machine, domid: u16, cmd: u32, bytes: &[u8]) -> (i64, Vec<u8>) {
    let arg = if domid == 0 { ARG } else { DOMU_ARG };
    m.put_in(domid, arg, bytes);
    let rc = m.call_as(domid, nr::EVENT_CHANNEL_OP, args(&[cmd.into(), arg]));
    (rc, m.get_in(domid, arg, bytes.len()))
}

/// EVTCHNOP_status of `dom`'s `port` asked by Dom0: (status, domain, port).
fn status_of(m: &Machine, dom: u16, port: u32) -> Result<(u32, u16, u32), i64> {
    let (rc, b) = evtchn(m, 0, ev::STATUS, &le(&[(0, dom.into(), 2), (4, port.into(), 4)], 24));
    if rc != 0 { Err(rc) } else { Ok((u32_at(&b, 8), u16_at(&b, 16), u32_at(&b, 20))) }
}

fn released(m: &Machine) -> Vec<(u16, u64)> {
    m.released.lock().unwrap().clone()
}

#[test]
fn a_domu_ending_with_nothing_mapped_is_released_at_once() {
    let before = Machine::with_domu(1).board.free_frames();
    let m = machine();
    let grant_frames = (before - m.board.free_frames()) as usize;
    assert_eq!(grant_frames, 1, "the DomU's one grant-table frame");
    // It mapped its own grant (its own state, nothing another domain holds).
    domu_grant(&m, 1, 0);
    m.end(DOMU);
    assert_eq!(released(&m), vec![(DOMU, DOMU_PAGES + 1)], "its RAM and its grant frame");
    assert_eq!(m.board.free_frames(), before + DOMU_PAGES, "every frame back");
    assert!(m.find(DOMU).is_none(), "gone");
    m.end(DOMU);
    assert_eq!(released(&m).len(), 1, "ended once");
    m.audit_of(0).expect("Dom0's stage 2 is its own");
}

#[test]
fn frames_dom0_maps_keep_a_dead_domu_until_the_last_unmap() {
    for grant_first in [true, false] {
        let m = machine();
        let before = m.board.free_frames();
        domu_grant(&m, 2, 1);
        assert_eq!(foreign_map(&m, 0, 0), 0);
        let (st, handle) = grant_map(&m, 1, 2);
        assert_eq!(st, status::OKAY);
        m.board.set_u64(frame(0), 0xfeed);
        m.end(DOMU);
        assert!(released(&m).is_empty(), "two of its frames are mapped");
        assert_eq!(m.dom(DOMU).xen.life.held(), 2);
        assert_eq!(m.board.free_frames(), before, "nothing freed");
        assert!(!m.board.is_free(frame(0)) && !m.board.is_free(frame(1)));
        // What Dom0 maps still reaches the DomU's frames.
        assert_eq!(m.pa_in(0, slot(0)), frame(0));
        assert_eq!(m.board.u64(m.pa_in(0, slot(0))), 0xfeed);
        // New maps naming it fail as for a domain that is gone.
        assert_eq!(foreign_map(&m, 2, 3), -ESRCH);
        domu_grant(&m, 3, 3);
        assert_eq!(grant_map(&m, 3, 3).0, status::BAD_DOMAIN);
        assert_eq!(m.dom(DOMU).xen.life.held(), 2);
        m.audit_of(0).expect("Dom0 still maps the dead DomU's frames, and only those");
        let unmap = |grant: bool| {
            if grant { grant_unmap(&m, 1, handle) == status::OKAY } else { foreign_unmap(&m, 0) == 0 }
        };
        assert!(unmap(grant_first));
        assert!(released(&m).is_empty(), "one frame still mapped");
        assert_eq!(m.board.free_frames(), before);
        assert!(unmap(!grant_first));
        assert_eq!(released(&m), vec![(DOMU, DOMU_PAGES + 1)], "released with the last unmap");
        assert_eq!(m.board.free_frames(), before + DOMU_PAGES + 1);
        assert_eq!(m.dom(DOMU).xen.life.held(), 0);
        m.audit_of(0).unwrap();
    }
}

#[test]
fn dom0s_channels_to_a_dead_domu_are_unbound_for_it_and_sends_dropped() {
    let m = machine();
    // The DomU offers, Dom0 binds; Dom0 offers one the DomU never binds;
    // the DomU has a VIRQ and a loopback channel of its own.
    let (rc, b) = evtchn(&m, DOMU, ev::ALLOC_UNBOUND, &le(&[(0, DOMID_SELF.into(), 2)], 8));
    assert_eq!(rc, 0);
    let theirs = u32_at(&b, 4);
    let (rc, b) = evtchn(&m, 0, ev::BIND_INTERDOMAIN, &le(&[(0, DOMU.into(), 2), (4, theirs.into(), 4)], 12));
    assert_eq!(rc, 0);
    let ours = u32_at(&b, 8);
    let (rc, b) = evtchn(&m, 0, ev::ALLOC_UNBOUND, &le(&[(0, DOMID_SELF.into(), 2), (2, DOMU.into(), 2)], 8));
    assert_eq!(rc, 0);
    let offered = u32_at(&b, 4);
    assert_eq!(evtchn(&m, DOMU, ev::BIND_VIRQ, &le(&[(0, virq::CONSOLE.into(), 4)], 12)).0, 0);
    let (_, b) = evtchn(&m, DOMU, ev::ALLOC_UNBOUND, &le(&[(0, DOMID_SELF.into(), 2), (2, DOMID_SELF.into(), 2)], 8));
    let (rc, _) =
        evtchn(&m, DOMU, ev::BIND_INTERDOMAIN, &le(&[(0, DOMID_SELF.into(), 2), (4, u32_at(&b, 4).into(), 4)], 12));
    assert_eq!(rc, 0);
    assert_eq!(status_of(&m, 0, ours), Ok((stat::INTERDOMAIN, DOMU, theirs)));

    m.end(DOMU);
    assert_eq!(status_of(&m, 0, ours), Ok((stat::UNBOUND, DOMU, 0)), "as evtchn_close leaves the other end");
    assert_eq!(status_of(&m, 0, offered), Ok((stat::UNBOUND, DOMU, 0)), "left as it was");
    m.remote_raised.lock().unwrap().clear();
    m.board.take_raised();
    let (rc, _) = evtchn(&m, 0, ev::SEND, &ours.to_le_bytes());
    assert_eq!(rc, 0, "a send on an unbound port is dropped, as in Xen");
    assert!(m.remote_raised.lock().unwrap().is_empty() && m.board.take_raised().is_empty());
    // Every port of the dead domain is closed; new calls cannot name it.
    let ports = &m.dom(DOMU).xen.events;
    assert!((1..NR_PORTS).all(|p| ports.is_free(p)), "the DomU's ports all closed");
    assert_eq!(status_of(&m, DOMU, theirs), Err(-ESRCH));
    let (rc, _) = evtchn(&m, 0, ev::BIND_INTERDOMAIN, &le(&[(0, DOMU.into(), 2), (4, theirs.into(), 4)], 12));
    assert_eq!(rc, -ESRCH);
    assert_eq!(evtchn(&m, 0, ev::ALLOC_UNBOUND, &le(&[(0, DOMU.into(), 2)], 8)).0, -ESRCH);
    assert_eq!(evtchn(&m, 0, ev::CLOSE, &ours.to_le_bytes()).0, 0, "Dom0 closes its end");
    assert_eq!(status_of(&m, 0, ours), Ok((stat::CLOSED, 0, 0)));
}

#[test]
fn a_dying_domus_own_maps_of_dom0s_grants_are_released() {
    let m = machine();
    // Dom0's grant table in place, entry 5 granting its page to the DomU.
    let b = le(
        &[
            (0, DOMID_SELF.into(), 2),
            (4, space::GRANT_TABLE.into(), 4),
            (16, crate::xen::testing::GRANT_REGION.start >> 12, 8),
        ],
        24,
    );
    m.board.put(ARG, &b);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP, ARG])), 0);
    let dom0_page = RAM.start + 0x40_0000;
    assert!(m.write_grant(5, gtf::PERMIT_ACCESS, DOMU, dom0_page));
    let at = DOMU_RAM.end + 0x10_0000;
    let req = le(&[(0, at, 8), (8, map::HOST_MAP.into(), 4), (12, 5, 4), (16, 0, 2)], 32);
    m.put_in(DOMU, DOMU_ARG, &req);
    assert_eq!(m.call_as(DOMU, nr::GRANT_TABLE_OP, args(&[gnt::MAP_GRANT_REF.into(), DOMU_ARG, 1])), 0);
    assert_eq!(u16_at(&m.get_in(DOMU, DOMU_ARG, 32), 18) as i16, status::OKAY);
    let entry = m.grant_entry(5).unwrap();
    assert_eq!(m.board.u64(entry) as u16 & gtf::READING, gtf::READING);
    assert_eq!(m.domain.xen.life.held(), 1, "the DomU holds a frame of Dom0's");
    m.end(DOMU);
    assert_eq!(m.board.u64(entry) as u16, gtf::PERMIT_ACCESS, "Dom0's entry no longer in use");
    assert!(!m.domain.stage2.lock_holding_no_xen_lock().is_pinned(crate::mm::range::Ipa(dom0_page)));
    assert_eq!(m.domain.xen.life.held(), 0);
    assert_eq!(released(&m), vec![(DOMU, DOMU_PAGES + 1)]);
    assert_eq!(m.balloon(mem::DECREASE_RESERVATION, dom0_page), 1, "Dom0's page is its own again");
}

#[test]
fn a_domus_vcpu_info_and_runstate_live_in_the_frames_behind_its_gfns() {
    let m = machine();
    let info_page = DOMU_RAM.start + 0x5_0000;
    let register = crate::xen::vcpu::op::REGISTER_VCPU_INFO;
    // Dom0's frame number is no gfn of the DomU's.
    m.put_in(DOMU, DOMU_ARG, &le(&[(0, RAM.start >> 12, 8)], 16));
    assert_eq!(m.call_as(DOMU, nr::VCPU_OP, args(&[register.into(), 0, DOMU_ARG])), -EINVAL);
    let b = le(&[(0, info_page >> 12, 8), (8, 64, 4)], 16);
    m.put_in(DOMU, DOMU_ARG, &b);
    let rc = m.call_as(DOMU, nr::VCPU_OP, args(&[crate::xen::vcpu::op::REGISTER_VCPU_INFO.into(), 0, DOMU_ARG]));
    assert_eq!(rc, 0);
    let info = m.dom(DOMU).xen.vcpus[0].info().unwrap();
    assert_eq!(info, DOMU_FRAMES + 0x5_0000 + 64, "the frame behind the gfn, not the gfn");
    let area = DOMU_RAM.start + 0x5_0100;
    m.board.set_u64(DOMU_FRAMES + 0x5_0100, 0xdead);
    m.put_in(DOMU, DOMU_ARG, &area.to_le_bytes());
    let op = crate::xen::vcpu::op::REGISTER_RUNSTATE_MEMORY_AREA;
    assert_eq!(m.call_as(DOMU, nr::VCPU_OP, args(&[op.into(), 0, DOMU_ARG])), 0);
    assert_eq!(m.board.u64(DOMU_FRAMES + 0x5_0100), u64::from(crate::xen::vcpu::runstate::RUNNING));
    let s2 = m.dom(DOMU).stage2.lock_holding_no_xen_lock();
    assert!(s2.is_pinned(crate::mm::range::Ipa(info_page)), "pinned by its guest address");
    drop(s2);
    m.put_in(DOMU, DOMU_ARG, &b);
    assert_eq!(m.call_as(DOMU, nr::VCPU_OP, args(&[register.into(), 0, DOMU_ARG])), -EBUSY, "registered once");
    m.audit_of(DOMU).unwrap();
}

#[test]
fn a_released_domus_shared_pages_are_written_no_more() {
    let m = machine();
    // Its vcpu_info and runstate area placed, an event bound.
    let info_page = DOMU_RAM.start + 0x5_0000;
    let b = le(&[(0, info_page >> 12, 8), (8, 64, 4)], 16);
    m.put_in(DOMU, DOMU_ARG, &b);
    let register = crate::xen::vcpu::op::REGISTER_VCPU_INFO;
    assert_eq!(m.call_as(DOMU, nr::VCPU_OP, args(&[register.into(), 0, DOMU_ARG])), 0);
    m.put_in(DOMU, DOMU_ARG, &(DOMU_RAM.start + 0x5_0100).to_le_bytes());
    let op = crate::xen::vcpu::op::REGISTER_RUNSTATE_MEMORY_AREA;
    assert_eq!(m.call_as(DOMU, nr::VCPU_OP, args(&[op.into(), 0, DOMU_ARG])), 0);
    assert_eq!(evtchn(&m, DOMU, ev::BIND_VIRQ, &le(&[(0, virq::CONSOLE.into(), 4)], 12)).0, 0);
    m.end(DOMU);
    assert_eq!(released(&m).len(), 1);
    let state = &m.dom(DOMU).xen;
    assert_eq!(state.shared.address(), None, "shared_info forgotten");
    assert_eq!(state.vcpus[0].info(), None, "vcpu_info forgotten");
    // Its frames are free (and may be anyone's): whatever still reaches
    // its state (a vCPU's last runstate change, a VIRQ) writes nothing.
    let frames = [DOMU_FRAMES + 0x7000, DOMU_FRAMES + 0x5_0000];
    let words = |m: &Machine| -> Vec<u64> {
        frames.iter().flat_map(|&f| (0..512).map(move |w| f + w * 8)).map(|pa| m.board.u64(pa)).collect()
    };
    let before = words(&m);
    m.board.now.store(5_000, std::sync::atomic::Ordering::Relaxed);
    crate::xen::vcpu::set_runstate(state, &m.board, 0, crate::xen::vcpu::runstate::OFFLINE);
    crate::xen::events::raise_virq(state, &m.board, virq::CONSOLE);
    crate::xen::events::mark_events_pending(state, &m.board, 0);
    assert_eq!(words(&m), before, "nothing written in its freed frames");
}

#[test]
fn a_dom0_frame_the_dead_domus_stage2_keeps_mapped_stays_held_until_that_stage2_goes() {
    use crate::mm::range::{Ipa, Pa};
    use crate::mm::stage2::Kind;
    let m = machine();
    let b = le(
        &[
            (0, DOMID_SELF.into(), 2),
            (4, space::GRANT_TABLE.into(), 4),
            (16, crate::xen::testing::GRANT_REGION.start >> 12, 8),
        ],
        24,
    );
    m.board.put(ARG, &b);
    assert_eq!(m.call(nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP, ARG])), 0);
    let dom0_page = RAM.start + 0x40_0000;
    assert!(m.write_grant(5, gtf::PERMIT_ACCESS, DOMU, dom0_page));
    let at = DOMU_RAM.end + 0x10_0000;
    let req = le(&[(0, at, 8), (8, map::HOST_MAP.into(), 4), (12, 5, 4), (16, 0, 2)], 32);
    m.put_in(DOMU, DOMU_ARG, &req);
    assert_eq!(m.call_as(DOMU, nr::GRANT_TABLE_OP, args(&[gnt::MAP_GRANT_REF.into(), DOMU_ARG, 1])), 0);
    assert_eq!(u16_at(&m.get_in(DOMU, DOMU_ARG, 32), 18) as i16, status::OKAY);
    // Its stage 2 will refuse the unmap at its end: what stands at `at`
    // is now a pinned page (no guest can make one so today; the teardown
    // must hold anyway).
    {
        let mut s2 = m.dom(DOMU).stage2.lock_holding_no_xen_lock();
        s2.unmap_page(Ipa(at), &m.board).unwrap();
        s2.map_page(Ipa(at), Pa(dom0_page), Kind::Ram, &m.board).unwrap();
        s2.pin(Ipa(at));
    }
    let release = crate::xen::lifetime::kill(m.dom(DOMU).view(), &m.board, &m);
    assert_eq!(release, vec![DOMU], "nothing of the DomU's is mapped elsewhere");
    // Still mapped in the dead DomU's stage 2: Dom0's frame stays held.
    let entry = m.grant_entry(5).unwrap();
    assert_eq!(m.board.u64(entry) as u16 & gtf::READING, gtf::READING, "Dom0's entry still in use");
    assert!(m.domain.stage2.lock_holding_no_xen_lock().is_pinned(Ipa(dom0_page)));
    assert_eq!(m.domain.xen.life.held(), 1);
    assert_eq!(m.balloon(mem::DECREASE_RESERVATION, dom0_page), 0, "Dom0 cannot balloon it out");
    // Released: its stage 2 goes, then the hold.
    m.release(DOMU);
    assert_eq!(m.board.u64(entry) as u16, gtf::PERMIT_ACCESS);
    assert!(!m.domain.stage2.lock_holding_no_xen_lock().is_pinned(Ipa(dom0_page)));
    assert_eq!(m.domain.xen.life.held(), 0);
    assert_eq!(m.balloon(mem::DECREASE_RESERVATION, dom0_page), 1, "Dom0's page is its own again");
}

mod random {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        ForeignMap(u64, u64),
        ForeignUnmap(u64),
        GrantMap(u64, u32),
        GrantUnmap(u64),
        End,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..6, 0u64..4).prop_map(|(s, i)| Op::ForeignMap(s, i)),
            (0u64..6).prop_map(Op::ForeignUnmap),
            (6u64..12, 1u32..5).prop_map(|(s, g)| Op::GrantMap(s, g)),
            (6u64..12).prop_map(Op::GrantUnmap),
            Just(Op::End),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        /// Maps, unmaps and the DomU's end in any order: no frame of the
        /// DomU is free while Dom0 maps it, it is released exactly when it
        /// has ended and nothing is mapped, and then every frame is back.
        #[test]
        fn no_frame_is_freed_while_mapped_nor_lost(ops in proptest::collection::vec(op(), 1..40)) {
            let m = machine();
            for gref in 1..5u32 {
                domu_grant(&m, gref, u64::from(gref));
            }
            let before = m.board.free_frames();
            let mut foreign: std::collections::BTreeMap<u64, u64> = Default::default();
            let mut grants: std::collections::BTreeMap<u64, (u32, u64)> = Default::default();
            let mut ended = false;
            for op in ops {
                match op {
                    Op::ForeignMap(s, i) => {
                        let rc = foreign_map(&m, s, i);
                        let want = if ended { -ESRCH } else if foreign.contains_key(&s) { -EBUSY } else { 0 };
                        prop_assert_eq!(rc, want);
                        if rc == 0 { foreign.insert(s, i); }
                    }
                    Op::ForeignUnmap(s) => {
                        let rc = foreign_unmap(&m, s);
                        prop_assert_eq!(rc, if foreign.remove(&s).is_some() { 0 } else { -ENOENT });
                    }
                    Op::GrantMap(s, g) => {
                        let (st, h) = grant_map(&m, s, g);
                        let want = if ended { status::BAD_DOMAIN } else if grants.contains_key(&s) { status::BAD_VIRT_ADDR } else { status::OKAY };
                        prop_assert_eq!(st, want);
                        if st == status::OKAY { grants.insert(s, (h, u64::from(g))); }
                    }
                    Op::GrantUnmap(s) => {
                        if let Some((h, _)) = grants.remove(&s) {
                            prop_assert_eq!(grant_unmap(&m, s, h), status::OKAY);
                        }
                    }
                    Op::End => {
                        m.end(DOMU);
                        ended = true;
                    }
                }
                let mapped: Vec<u64> = foreign.values().chain(grants.values().map(|(_, i)| i)).copied().collect();
                for &i in &mapped {
                    prop_assert!(!m.board.is_free(frame(i)), "frame of page {} freed while mapped", i);
                }
                let done = m.is_released(DOMU);
                prop_assert_eq!(done, ended && mapped.is_empty());
                prop_assert_eq!(m.dom(DOMU).xen.life.held() as usize, if done { 0 } else { mapped.len() });
                let free = m.board.free_frames();
                prop_assert_eq!(free, if done { before + DOMU_PAGES + 1 } else { before });
            }
            for (s, _) in std::mem::take(&mut foreign) {
                prop_assert_eq!(foreign_unmap(&m, s), 0);
            }
            for (s, (h, _)) in std::mem::take(&mut grants) {
                prop_assert_eq!(grant_unmap(&m, s, h), status::OKAY);
            }
            m.end(DOMU);
            prop_assert_eq!(released(&m), vec![(DOMU, DOMU_PAGES + 1)]);
            prop_assert_eq!(m.board.free_frames(), before + DOMU_PAGES + 1);
            m.audit_of(0).unwrap();
        }
    }
}
