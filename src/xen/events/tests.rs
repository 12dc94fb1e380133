use super::*;
use crate::xen::memory::{op as mem, space};
use crate::xen::nr;
use crate::xen::testing::{Machine, RAM, args, le, u16_at, u32_at};

/// The vCPU's `evtchn_upcall_pending` byte, as Dom0 would read it.
fn upcall_pending(state: &DomainState, board: &dyn Board, vcpu: usize) -> bool {
    vcpu_info(state, vcpu).is_some_and(|info| board.word(info).load(Ordering::Acquire) & 0xff != 0)
}

pub const SHARED: u64 = RAM.start + 0x10000;
const ARG: u64 = RAM.start + 0x2000;

/// Runs EVTCHNOP `cmd` with `bytes` as its struct; x0 and the struct after.
pub fn op(m: &Machine, cmd: u32, bytes: &[u8]) -> (i64, Vec<u8>) {
    m.board.put(ARG, bytes);
    let rc = m.call(nr::EVENT_CHANNEL_OP, args(&[u64::from(cmd), ARG]));
    (rc, m.board.get(ARG, bytes.len()))
}

pub fn alloc_unbound(m: &Machine, dom: u16, remote: u16) -> Result<u32, i64> {
    let (rc, b) = op(m, op::ALLOC_UNBOUND, &le(&[(0, dom.into(), 2), (2, remote.into(), 2)], 8));
    if rc == 0 { Ok(u32_at(&b, 4)) } else { Err(rc) }
}

fn bind_interdomain(m: &Machine, remote_port: u32) -> Result<u32, i64> {
    let (rc, b) = op(m, op::BIND_INTERDOMAIN, &le(&[(0, DOMID_SELF.into(), 2), (4, remote_port.into(), 4)], 12));
    if rc == 0 { Ok(u32_at(&b, 8)) } else { Err(rc) }
}

fn bind_virq(m: &Machine, virq: u32, vcpu: u32) -> Result<u32, i64> {
    let (rc, b) = op(m, op::BIND_VIRQ, &le(&[(0, virq.into(), 4), (4, vcpu.into(), 4)], 12));
    if rc == 0 { Ok(u32_at(&b, 8)) } else { Err(rc) }
}

fn port_op(m: &Machine, cmd: u32, port: u32) -> i64 {
    op(m, cmd, &port.to_le_bytes()).0
}

fn status(m: &Machine, port: u32) -> Result<(u32, u32, u16, u32), i64> {
    let (rc, b) = op(m, op::STATUS, &le(&[(0, DOMID_SELF.into(), 2), (4, port.into(), 4)], 24));
    if rc == 0 { Ok((u32_at(&b, 8), u32_at(&b, 12), u16_at(&b, 16), u32_at(&b, 20))) } else { Err(rc) }
}

fn bind_vcpu(m: &Machine, port: u32, vcpu: u32) -> i64 {
    op(m, op::BIND_VCPU, &le(&[(0, port.into(), 4), (4, vcpu.into(), 4)], 8)).0
}

/// shared_info at SHARED, as Linux places it.
pub fn with_shared_info(vcpus: usize) -> Machine {
    let m = Machine::new(vcpus);
    m.board.put(ARG, &le(&[(0, DOMID_SELF.into(), 2), (4, space::SHARED_INFO.into(), 4), (16, SHARED >> 12, 8)], 24));
    assert_eq!(m.call(nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP, ARG])), 0);
    m
}

fn pending(m: &Machine, port: u32) -> bool {
    m.board.u64(SHARED + layout::EVTCHN_PENDING + u64::from(port / 64) * 8) & (1 << (port % 64)) != 0
}

fn set_mask(m: &Machine, port: u32, masked: bool) {
    let at = SHARED + layout::EVTCHN_MASK + u64::from(port / 64) * 8;
    let w = m.board.u64(at);
    m.board.set_u64(at, if masked { w | 1 << (port % 64) } else { w & !(1 << (port % 64)) });
}

/// vCPU 0's vcpu_info (in shared_info): (upcall pending, selector).
fn vcpu0(m: &Machine) -> (u8, u64) {
    (m.board.byte(SHARED), m.board.u64(SHARED + layout::PENDING_SEL))
}

fn clear_vcpu0(m: &Machine) {
    m.board.set_byte(SHARED, 0);
    m.board.set_u64(SHARED + layout::PENDING_SEL, 0);
    m.board.take_raised();
}

#[test]
fn linux_boot_sequence_and_fifo_refused() {
    let m = with_shared_info(2);
    assert_eq!(op(&m, op::INIT_CONTROL, &[0; 24]).0, -ENOSYS, "Linux falls back to 2-level");
    // xenbus: a local xenstore port, remote 0 or DOMID_SELF.
    assert_eq!(alloc_unbound(&m, DOMID_SELF, 0), Ok(1));
    assert_eq!(alloc_unbound(&m, 0, DOMID_SELF), Ok(2));
    assert_eq!(status(&m, 2), Ok((stat::UNBOUND, 0, 0, 0)));
    // hvc0 input.
    let console = bind_virq(&m, virq::CONSOLE, 0).unwrap();
    assert_eq!(console, 3);
    assert_eq!(status(&m, console), Ok((stat::VIRQ, 0, virq::CONSOLE as u16, 0)));
    assert_eq!(bind_virq(&m, virq::CONSOLE, 0), Err(-EEXIST));
}

#[test]
fn a_send_reaches_shared_info_the_selector_and_the_interrupt() {
    let m = with_shared_info(2);
    let unbound = alloc_unbound(&m, DOMID_SELF, DOMID_SELF).unwrap();
    // Unbound: dropped, as Xen does.
    assert_eq!(port_op(&m, op::SEND, unbound), 0);
    assert!(!pending(&m, unbound));
    let local = bind_interdomain(&m, unbound).unwrap();
    assert_eq!(status(&m, unbound), Ok((stat::INTERDOMAIN, 0, 0, local)));
    assert_eq!(status(&m, local), Ok((stat::INTERDOMAIN, 0, 0, unbound)));
    assert!(pending(&m, local), "the new end is raised once");
    assert_eq!(m.board.take_raised(), vec![0]);
    clear_vcpu0(&m);
    let word = SHARED + layout::EVTCHN_PENDING;
    m.board.set_u64(word, 0);
    assert_eq!(port_op(&m, op::SEND, local), 0);
    assert!(pending(&m, unbound) && !pending(&m, local));
    assert_eq!(vcpu0(&m), (1, 1), "word 0 selected, upcall pending");
    assert_eq!(m.board.take_raised(), vec![0]);
    // Already pending: no new interrupt.
    assert_eq!(port_op(&m, op::SEND, local), 0);
    assert!(m.board.take_raised().is_empty());
    // A high port lands in its own word.
    let mut high = 0;
    for _ in 0..100 {
        high = alloc_unbound(&m, DOMID_SELF, DOMID_SELF).unwrap();
    }
    let bound = bind_interdomain(&m, high).unwrap();
    clear_vcpu0(&m);
    assert_eq!(port_op(&m, op::SEND, bound), 0);
    assert_eq!(vcpu0(&m), (1, 1 << (high / 64)));
}

#[test]
fn masked_ports_wait_for_unmask() {
    let m = with_shared_info(1);
    let a = alloc_unbound(&m, DOMID_SELF, DOMID_SELF).unwrap();
    let b = bind_interdomain(&m, a).unwrap();
    clear_vcpu0(&m);
    set_mask(&m, a, true);
    assert_eq!(port_op(&m, op::SEND, b), 0);
    assert!(pending(&m, a));
    assert_eq!(vcpu0(&m), (0, 0), "masked: no upcall");
    assert_eq!(port_op(&m, op::UNMASK, a), 0);
    assert_eq!(vcpu0(&m), (1, 1), "unmask re-raises a pending port");
    assert_eq!(m.board.take_raised(), vec![0]);
    // Unmasking what is not pending raises nothing.
    clear_vcpu0(&m);
    m.board.set_u64(SHARED + layout::EVTCHN_PENDING, 0);
    set_mask(&m, b, true);
    assert_eq!(port_op(&m, op::UNMASK, b), 0);
    assert_eq!(vcpu0(&m), (0, 0));
    assert_eq!(port_op(&m, op::UNMASK, 3000), 0, "a free port is a valid port");
    assert_eq!(port_op(&m, op::UNMASK, NR_PORTS), -EINVAL);
}

#[test]
fn ipis_and_vcpu_binding() {
    let m = with_shared_info(2);
    let (rc, b) = op(&m, op::BIND_IPI, &le(&[(0, 1, 4)], 8));
    assert_eq!(rc, 0);
    let ipi = u32_at(&b, 4);
    assert_eq!(op(&m, op::BIND_IPI, &le(&[(0, 2, 4)], 8)).0, -ENOENT);
    // vCPU 1 has no vcpu_info yet: the bit is pending, nothing else.
    assert_eq!(port_op(&m, op::SEND, ipi), 0);
    assert!(pending(&m, ipi));
    assert!(m.board.take_raised().is_empty());
    assert_eq!(bind_vcpu(&m, ipi, 0), -EINVAL, "IPIs stay where they are bound");
    let console = bind_virq(&m, virq::CONSOLE, 0).unwrap();
    assert_eq!(bind_vcpu(&m, console, 1), 0);
    assert_eq!(status(&m, console).unwrap().1, 1);
    assert_eq!(bind_vcpu(&m, console, 2), -ENOENT);
    assert_eq!(bind_vcpu(&m, 4000, 1), -EINVAL, "free port");
    assert_eq!(bind_vcpu(&m, 5000, 1), -EINVAL);
    let timer = bind_virq(&m, virq::TIMER, 1).unwrap();
    assert_eq!(bind_vcpu(&m, timer, 0), -EINVAL, "per-vCPU VIRQs do not move");
    assert_eq!(bind_virq(&m, virq::CONSOLE, 1), Err(-EINVAL), "global VIRQs bind on vCPU 0");
    assert_eq!(bind_virq(&m, 24, 0), Err(-EINVAL));
    assert_eq!(bind_virq(&m, u32::MAX, 0), Err(-EINVAL));
    assert_eq!(bind_virq(&m, virq::TIMER, 7), Err(-ENOENT));
}

#[test]
fn virqs_raised_from_interrupt_context() {
    let m = with_shared_info(1);
    raise_virq(&m.domain.xen, &m.board, virq::CONSOLE); // unbound: nothing
    assert!(m.board.take_raised().is_empty());
    let port = bind_virq(&m, virq::CONSOLE, 0).unwrap();
    clear_vcpu0(&m);
    raise_virq(&m.domain.xen, &m.board, virq::CONSOLE);
    assert!(pending(&m, port));
    assert_eq!(m.board.take_raised(), vec![0]);
    assert!(upcall_pending(&m.domain.xen, &m.board, 0));
    assert_eq!(port_op(&m, op::CLOSE, port), 0);
    assert!(!pending(&m, port), "closing clears the pending bit");
    raise_virq(&m.domain.xen, &m.board, virq::CONSOLE);
    assert!(!pending(&m, port));
    raise_virq(&m.domain.xen, &m.board, 9999);
    assert_eq!(bind_virq(&m, virq::CONSOLE, 0), Ok(port), "bindable again");
}

#[test]
fn close_and_status_of_hostile_ports() {
    let m = with_shared_info(1);
    let a = alloc_unbound(&m, DOMID_SELF, DOMID_SELF).unwrap();
    let b = bind_interdomain(&m, a).unwrap();
    assert_eq!(port_op(&m, op::CLOSE, b), 0);
    assert_eq!(status(&m, a), Ok((stat::UNBOUND, 0, 0, 0)), "the other end waits again");
    assert_eq!(status(&m, b), Ok((stat::CLOSED, 0, 0, 0)));
    assert_eq!(port_op(&m, op::CLOSE, b), -EINVAL, "double close");
    assert_eq!(port_op(&m, op::CLOSE, 0), -EINVAL);
    assert_eq!(port_op(&m, op::CLOSE, NR_PORTS), -EINVAL);
    assert_eq!(port_op(&m, op::CLOSE, u32::MAX), -EINVAL);
    assert_eq!(port_op(&m, op::SEND, b), -EINVAL);
    assert_eq!(port_op(&m, op::SEND, 0), -EINVAL);
    assert_eq!(port_op(&m, op::SEND, u32::MAX), -EINVAL);
    assert_eq!(status(&m, u32::MAX), Err(-EINVAL));
    assert_eq!(op(&m, op::STATUS, &le(&[(0, 3, 2), (4, 1, 4)], 24)).0, -ESRCH);
    assert_eq!(alloc_unbound(&m, 1, DOMID_SELF), Err(-ESRCH));
    assert_eq!(bind_interdomain(&m, b), Err(-EINVAL), "not unbound");
    assert_eq!(bind_interdomain(&m, 9999), Err(-EINVAL));
    assert_eq!(op(&m, op::BIND_INTERDOMAIN, &le(&[(0, 9, 2), (4, a.into(), 4)], 12)).0, -ESRCH);
    // Remote 5 may bind a (it will never exist), we may not.
    let for_five = alloc_unbound(&m, DOMID_SELF, 5).unwrap();
    assert_eq!(bind_interdomain(&m, for_five), Err(-EINVAL));
    assert_eq!(op(&m, op::BIND_PIRQ, &[0; 12]).0, -EINVAL, "no PIRQs on Arm");
    assert_eq!(op(&m, 99, &[0; 8]).0, -ENOSYS);
    for cmd in [op::ALLOC_UNBOUND, op::BIND_VIRQ, op::CLOSE, op::SEND, op::STATUS, op::UNMASK, op::BIND_VCPU, op::RESET]
    {
        for bad in [0, u64::MAX - 1, RAM.end - 1, 0x4000_0000] {
            assert_eq!(m.call(nr::EVENT_CHANNEL_OP, args(&[u64::from(cmd), bad])), -EFAULT, "cmd {cmd} at {bad:#x}");
        }
    }
}

#[test]
fn ports_run_out_and_reset_frees_them() {
    let m = with_shared_info(1);
    for expected in 1..NR_PORTS {
        assert_eq!(alloc_unbound(&m, DOMID_SELF, DOMID_SELF), Ok(expected));
    }
    assert_eq!(alloc_unbound(&m, DOMID_SELF, DOMID_SELF), Err(-ENOSPC));
    assert_eq!(bind_virq(&m, virq::CONSOLE, 0), Err(-ENOSPC));
    assert_eq!(op(&m, op::RESET, &le(&[(0, 1, 2)], 2)).0, -ESRCH);
    assert_eq!(op(&m, op::RESET, &le(&[(0, DOMID_SELF.into(), 2)], 2)).0, 0);
    assert_eq!(status(&m, 4000), Ok((stat::CLOSED, 0, 0, 0)));
    assert_eq!(alloc_unbound(&m, DOMID_SELF, DOMID_SELF), Ok(1));
}

#[test]
fn events_before_shared_info_are_harmless() {
    let m = Machine::new(1);
    let a = alloc_unbound(&m, DOMID_SELF, DOMID_SELF).unwrap();
    let b = bind_interdomain(&m, a).unwrap();
    assert_eq!(port_op(&m, op::SEND, b), 0);
    assert_eq!(port_op(&m, op::UNMASK, a), 0);
    assert!(m.board.take_raised().is_empty());
    assert!(!upcall_pending(&m.domain.xen, &m.board, 0));
}

proptest::proptest! {
    /// Any sequence of operations with any values: no panic, errors only
    /// from the documented set, and every bound VIRQ's table entry names a
    /// port that says it is that VIRQ.
    #[test]
    fn hostile_sequences_keep_the_table_consistent(ops in proptest::collection::vec((0u32..16, 0u32..4200, 0u32..30), 1..80)) {
        let m = with_shared_info(2);
        for (cmd, port, small) in ops {
            let bytes = match cmd {
                op::ALLOC_UNBOUND => le(&[(0, DOMID_SELF.into(), 2), (2, u64::from(small % 3), 2)], 8),
                op::BIND_INTERDOMAIN => le(&[(0, DOMID_SELF.into(), 2), (4, port.into(), 4)], 12),
                op::BIND_VIRQ => le(&[(0, small.into(), 4), (4, u64::from(port % 3), 4)], 12),
                op::STATUS => le(&[(0, DOMID_SELF.into(), 2), (4, port.into(), 4)], 24),
                op::BIND_IPI => le(&[(0, u64::from(small % 3), 4)], 8),
                op::BIND_VCPU => le(&[(0, port.into(), 4), (4, u64::from(small % 3), 4)], 8),
                _ => le(&[(0, port.into(), 4)], 24),
            };
            let (rc, _) = op(&m, cmd, &bytes);
            proptest::prop_assert!([0, -EINVAL, -ENOENT, -EEXIST, -ENOSPC, -ESRCH, -ENOSYS].contains(&rc), "cmd {} rc {}", cmd, rc);
        }
        let events = &m.domain.xen.events;
        let ports = events.ports.lock();
        for (vcpu, table) in events.virqs.iter().enumerate() {
            for (virq, slot) in table.iter().enumerate() {
                let port = slot.load(Ordering::Relaxed);
                if port != 0 {
                    proptest::prop_assert_eq!(ports[port as usize], Binding::Virq(virq as u32));
                    if !virq_is_global(virq as u32) {
                        proptest::prop_assert_eq!(events.notify[port as usize].load(Ordering::Relaxed) as usize, vcpu);
                    }
                }
            }
        }
        for (port, binding) in ports.iter().enumerate() {
            if let Binding::Interdomain { remote_dom, remote_port } = binding {
                proptest::prop_assert_eq!(*remote_dom, 0);
                proptest::prop_assert_eq!(
                    ports[*remote_port as usize],
                    Binding::Interdomain { remote_dom: 0, remote_port: port as u32 }
                );
            }
        }
    }
}

/// Event channels between Dom0 and a DomU on the two-domain model.
mod interdomain {
    use super::*;
    use crate::xen::testing::{DOMU, DOMU_RAM};

    const DOMU_SHARED: u64 = DOMU_RAM.start + 0x10000;

    fn arg_of(domid: u16) -> u64 {
        if domid == 0 { ARG } else { DOMU_RAM.start + 0x2000 }
    }

    /// EVTCHNOP `cmd` from domain `domid`: x0 and the struct after.
    fn op_as(m: &Machine, domid: u16, cmd: u32, bytes: &[u8]) -> (i64, Vec<u8>) {
        let arg = arg_of(domid);
        m.put_in(domid, arg, bytes);
        let rc = m.call_as(domid, nr::EVENT_CHANNEL_OP, args(&[u64::from(cmd), arg]));
        (rc, m.get_in(domid, arg, bytes.len()))
    }

    fn alloc(m: &Machine, domid: u16, dom: u16, remote: u16) -> Result<u32, i64> {
        let (rc, b) = op_as(m, domid, op::ALLOC_UNBOUND, &le(&[(0, dom.into(), 2), (2, remote.into(), 2)], 8));
        if rc == 0 { Ok(u32_at(&b, 4)) } else { Err(rc) }
    }

    fn bind(m: &Machine, domid: u16, remote_dom: u16, remote_port: u32) -> Result<u32, i64> {
        let bytes = le(&[(0, remote_dom.into(), 2), (4, remote_port.into(), 4)], 12);
        let (rc, b) = op_as(m, domid, op::BIND_INTERDOMAIN, &bytes);
        if rc == 0 { Ok(u32_at(&b, 8)) } else { Err(rc) }
    }

    fn port_cmd(m: &Machine, domid: u16, cmd: u32, port: u32) -> i64 {
        op_as(m, domid, cmd, &port.to_le_bytes()).0
    }

    /// (status, remote domain, remote port) of `port` as `domid` sees it.
    fn stat_of(m: &Machine, domid: u16, port: u32) -> (u32, u16, u32) {
        let (rc, b) = op_as(m, domid, op::STATUS, &le(&[(0, DOMID_SELF.into(), 2), (4, port.into(), 4)], 24));
        assert_eq!(rc, 0);
        (u32_at(&b, 8), u16_at(&b, 16), u32_at(&b, 20))
    }

    fn pending_in(m: &Machine, domid: u16, port: u32) -> bool {
        let page = if domid == 0 { SHARED } else { DOMU_SHARED };
        let at = page + layout::EVTCHN_PENDING + u64::from(port / 64) * 8;
        u64::from_le_bytes(m.get_in(domid, at, 8).try_into().unwrap()) & (1 << (port % 64)) != 0
    }

    /// Dom0 and the DomU, each with shared_info placed.
    fn machine() -> Machine {
        let m = Machine::with_domu(1);
        for (domid, page) in [(0, SHARED), (DOMU, DOMU_SHARED)] {
            let arg = arg_of(domid);
            m.put_in(
                domid,
                arg,
                &le(&[(0, DOMID_SELF.into(), 2), (4, space::SHARED_INFO.into(), 4), (16, page >> 12, 8)], 24),
            );
            assert_eq!(m.call_as(domid, nr::MEMORY_OP, args(&[mem::ADD_TO_PHYSMAP, arg])), 0);
        }
        m
    }

    /// A channel the DomU offers and Dom0 binds: (DomU's port, Dom0's).
    fn connected(m: &Machine) -> (u32, u32) {
        let theirs = alloc(m, DOMU, DOMID_SELF, 0).unwrap();
        let ours = bind(m, 0, DOMU, theirs).unwrap();
        (theirs, ours)
    }

    #[test]
    fn a_domu_offers_dom0_binds_and_sends_cross_both_ways() {
        let m = machine();
        let theirs = alloc(&m, DOMU, DOMID_SELF, 0).unwrap();
        assert_eq!(stat_of(&m, DOMU, theirs), (stat::UNBOUND, 0, 0));
        // Nobody listens yet: dropped.
        assert_eq!(port_cmd(&m, DOMU, op::SEND, theirs), 0);
        assert!(!pending_in(&m, 0, 1) && m.remote_raised.lock().unwrap().is_empty());
        let ours = bind(&m, 0, DOMU, theirs).unwrap();
        assert_eq!(stat_of(&m, 0, ours), (stat::INTERDOMAIN, DOMU, theirs));
        assert_eq!(stat_of(&m, DOMU, theirs), (stat::INTERDOMAIN, 0, ours));
        assert!(pending_in(&m, 0, ours), "the binding end is raised once, as in Xen");
        assert_eq!(m.board.take_raised(), vec![0]);
        // Dom0 -> DomU: the DomU's shared_info and vCPU, not Dom0's.
        assert_eq!(port_cmd(&m, 0, op::SEND, ours), 0);
        assert!(pending_in(&m, DOMU, theirs));
        assert_eq!(m.get_in(DOMU, DOMU_SHARED + layout::UPCALL_PENDING, 1), [1]);
        assert_eq!(std::mem::take(&mut *m.remote_raised.lock().unwrap()), vec![(DOMU, 0)]);
        assert!(m.board.take_raised().is_empty());
        // DomU -> Dom0.
        m.put_in(0, SHARED + layout::EVTCHN_PENDING, &[0; 8]);
        m.put_in(0, SHARED, &[0]);
        m.put_in(0, SHARED + layout::PENDING_SEL, &[0; 8]);
        assert_eq!(port_cmd(&m, DOMU, op::SEND, theirs), 0);
        assert!(pending_in(&m, 0, ours));
        assert_eq!(std::mem::take(&mut *m.remote_raised.lock().unwrap()), vec![(0, 0)]);
        // And the other way round: Dom0 offers, the DomU binds.
        let offered = alloc(&m, 0, DOMID_SELF, DOMU).unwrap();
        let bound = bind(&m, DOMU, 0, offered).unwrap();
        assert_eq!(stat_of(&m, 0, offered), (stat::INTERDOMAIN, DOMU, bound));
    }

    #[test]
    fn hostile_binds_fail_as_in_xen() {
        let m = machine();
        let theirs = alloc(&m, DOMU, DOMID_SELF, 0).unwrap();
        assert_eq!(bind(&m, 0, 7, theirs), Err(-ESRCH), "no domain 7");
        assert_eq!(bind(&m, 0, DOMU, 0), Err(-EINVAL), "port 0 is reserved");
        assert_eq!(bind(&m, 0, DOMU, NR_PORTS), Err(-EINVAL), "out of range");
        assert_eq!(bind(&m, 0, DOMU, theirs + 1), Err(-EINVAL), "a free port");
        let for_itself = alloc(&m, DOMU, DOMID_SELF, DOMID_SELF).unwrap();
        assert_eq!(bind(&m, 0, DOMU, for_itself), Err(-EINVAL), "unbound for someone else");
        let for_two = alloc(&m, DOMU, DOMID_SELF, 2).unwrap();
        assert_eq!(bind(&m, 0, DOMU, for_two), Err(-EINVAL), "unbound for domain 2");
        let virq = op_as(&m, DOMU, op::BIND_VIRQ, &le(&[(0, virq::CONSOLE.into(), 4)], 12));
        assert_eq!(virq.0, 0);
        assert_eq!(bind(&m, 0, DOMU, u32_at(&virq.1, 8)), Err(-EINVAL), "a VIRQ port");
        let ours = bind(&m, 0, DOMU, theirs).unwrap();
        assert_eq!(bind(&m, 0, DOMU, theirs), Err(-EINVAL), "bound already");
        // Dom0's own port through the DomU's id is not the DomU's.
        assert_eq!(bind(&m, DOMU, 0, ours), Err(-EINVAL));
        // A DomU allocates only its own ports (Xen's XSM_TARGET): -EPERM
        // for another domain's, -ESRCH for none.
        assert_eq!(alloc(&m, DOMU, 0, DOMU), Err(-EPERM));
        assert_eq!(alloc(&m, DOMU, 7, DOMU), Err(-ESRCH));
        // Nothing half-done: the failures took no port.
        assert_eq!(stat_of(&m, 0, ours + 1), (stat::CLOSED, 0, 0));
        let free = alloc(&m, DOMU, DOMID_SELF, 0).unwrap();
        assert_eq!(port_cmd(&m, DOMU, op::CLOSE, free), 0);
        assert_eq!(stat_of(&m, DOMU, free), (stat::CLOSED, 0, 0), "the refused allocation took no DomU port");
    }

    /// (status, remote domain, remote port) of `port` of domain `dom` as
    /// `caller` asks for it: Err(errno) if refused.
    fn stat_for(m: &Machine, caller: u16, dom: u16, port: u32) -> Result<(u32, u16, u32), i64> {
        let (rc, b) = op_as(m, caller, op::STATUS, &le(&[(0, dom.into(), 2), (4, port.into(), 4)], 24));
        if rc != 0 {
            return Err(rc);
        }
        Ok((u32_at(&b, 8), u16_at(&b, 16), u32_at(&b, 20)))
    }

    #[test]
    fn dom0_names_a_domus_ports_the_domu_only_its_own() {
        let m = machine();
        // Dom0, privileged, offers a channel in the DomU's table, waiting
        // for Dom0 (DOMID_SELF names the caller, as in Xen).
        let offered = alloc(&m, 0, DOMU, DOMID_SELF).unwrap();
        assert_eq!(stat_of(&m, DOMU, offered), (stat::UNBOUND, 0, 0));
        assert_eq!(stat_for(&m, 0, DOMU, offered), Ok((stat::UNBOUND, 0, 0)));
        assert_eq!(stat_for(&m, 0, DOMU, NR_PORTS), Err(-EINVAL), "no such port");
        assert_eq!(stat_for(&m, 0, 7, 1), Err(-ESRCH), "no such domain");
        let ours = bind(&m, 0, DOMU, offered).unwrap();
        assert_eq!(stat_for(&m, 0, DOMU, offered), Ok((stat::INTERDOMAIN, 0, ours)));
        // The DomU may not look at Dom0's ports.
        assert_eq!(stat_for(&m, DOMU, 0, ours), Err(-EPERM));
        assert_eq!(stat_for(&m, DOMU, 0, NR_PORTS), Err(-EINVAL), "the port is checked first, as in Xen");
        assert_eq!(stat_for(&m, DOMU, DOMU, offered), Ok((stat::INTERDOMAIN, 0, ours)), "its own id is itself");
    }

    #[test]
    fn close_from_either_side_leaves_the_other_unbound_for_the_closer() {
        let m = machine();
        let (theirs, ours) = connected(&m);
        assert_eq!(port_cmd(&m, DOMU, op::CLOSE, theirs), 0);
        assert_eq!(stat_of(&m, DOMU, theirs), (stat::CLOSED, 0, 0));
        assert_eq!(stat_of(&m, 0, ours), (stat::UNBOUND, DOMU, 0));
        assert_eq!(port_cmd(&m, 0, op::SEND, ours), 0, "dropped");
        assert!(m.remote_raised.lock().unwrap().is_empty());
        // The DomU may bind to it again.
        let again = bind(&m, DOMU, 0, ours).unwrap();
        assert_eq!(stat_of(&m, 0, ours), (stat::INTERDOMAIN, DOMU, again));
        assert_eq!(port_cmd(&m, 0, op::CLOSE, ours), 0);
        assert_eq!(stat_of(&m, DOMU, again), (stat::UNBOUND, 0, 0));
        assert_eq!(port_cmd(&m, 0, op::CLOSE, ours), -EINVAL, "closed twice");
        // A reset closes interdomain ports too.
        let (theirs, ours) = connected(&m);
        let reset = op_as(&m, 0, op::RESET, &le(&[(0, DOMID_SELF.into(), 2)], 2)).0;
        assert_eq!(reset, 0);
        assert_eq!(stat_of(&m, 0, ours), (stat::CLOSED, 0, 0));
        assert_eq!(stat_of(&m, DOMU, theirs), (stat::UNBOUND, 0, 0));
    }

    #[test]
    fn both_sides_closing_at_once_do_not_deadlock() {
        for _ in 0..20 {
            let m = machine();
            let pairs: Vec<(u32, u32)> = (0..64).map(|_| connected(&m)).collect();
            std::thread::scope(|s| {
                s.spawn(|| pairs.iter().for_each(|&(_, ours)| assert_eq!(port_cmd(&m, 0, op::CLOSE, ours), 0)));
                s.spawn(|| pairs.iter().for_each(|&(theirs, _)| assert_eq!(port_cmd(&m, DOMU, op::CLOSE, theirs), 0)));
            });
            for &(theirs, ours) in &pairs {
                let (a, b) = (stat_of(&m, 0, ours).0, stat_of(&m, DOMU, theirs).0);
                assert_eq!((a, b), (stat::CLOSED, stat::CLOSED), "each end closed, whichever went first");
            }
        }
    }
}

/// Calls racing with a DomU's end: whatever passed the liveness check
/// before the end began checks again under the DomU's port lock, and the
/// end's walk closes whatever it finds once it holds that lock.
mod racing_the_end {
    use super::*;
    use crate::xen::testing::DOMU;
    use std::time::Duration;

    /// Long enough for the other thread to pass its liveness check and
    /// wait on the lock held here (if it is slower, the test still holds:
    /// the check itself then refuses).
    const SETTLE: Duration = Duration::from_millis(100);

    fn domu_ports_all_free(m: &Machine) -> bool {
        (1..NR_PORTS).all(|p| m.dom(DOMU).xen.events.is_free(p))
    }

    #[test]
    fn dom0s_alloc_unbound_in_a_domu_that_began_ending_meanwhile_is_refused() {
        let m = Machine::with_domu(1);
        let domu = m.dom(DOMU);
        let rc = std::thread::scope(|s| {
            let guard = domu.xen.events.ports.lock();
            let call = s.spawn(|| alloc_unbound(&m, DOMU, 0));
            std::thread::sleep(SETTLE);
            // Its end begins (its walk of the ports would take this lock
            // next, port by port).
            domu.xen.life.begin_ending();
            drop(guard);
            call.join().unwrap()
        });
        assert_eq!(rc, Err(-ESRCH));
        assert!(domu_ports_all_free(&m), "no port of the ending DomU allocated");
    }

    #[test]
    fn dom0s_bind_to_a_domu_that_began_ending_meanwhile_is_refused() {
        let m = Machine::with_domu(1);
        let domu = m.dom(DOMU);
        let offered = alloc_unbound(&m, DOMU, 0).unwrap();
        let bind = || {
            let bytes = le(&[(0, DOMU.into(), 2), (4, offered.into(), 4)], 12);
            let (rc, b) = op(&m, op::BIND_INTERDOMAIN, &bytes);
            if rc == 0 { Ok(u32_at(&b, 8)) } else { Err(rc) }
        };
        let rc = std::thread::scope(|s| {
            let guard = domu.xen.events.ports.lock();
            let call = s.spawn(bind);
            std::thread::sleep(SETTLE);
            domu.xen.life.begin_ending();
            drop(guard);
            call.join().unwrap()
        });
        assert_eq!(rc, Err(-ESRCH));
        assert_eq!(domu.xen.events.ports.lock()[offered as usize], Binding::Unbound { remote: 0 }, "left unbound");
        assert!((1..NR_PORTS).all(|p| m.domain.xen.events.is_free(p)), "Dom0 got no port to the ending DomU");
    }

    #[test]
    fn the_ends_walk_closes_a_port_whose_binding_changed_between_its_locks() {
        let m = Machine::with_domu(1);
        let (domu, dom0) = (m.dom(DOMU), &m.domain);
        let theirs = alloc_unbound(&m, DOMU, 0).unwrap();
        let bytes = le(&[(0, DOMU.into(), 2), (4, theirs.into(), 4)], 12);
        let (rc, b) = op(&m, op::BIND_INTERDOMAIN, &bytes);
        assert_eq!(rc, 0);
        let ours = u32_at(&b, 8);
        std::thread::scope(|s| {
            let dom0_ports = dom0.xen.events.ports.lock();
            // The walk reads the DomU's port (interdomain, to Dom0), then
            // waits here for Dom0's table.
            let end = s.spawn(|| m.end(DOMU));
            std::thread::sleep(SETTLE);
            // Meanwhile Dom0 closes its end, as `close` does with both
            // tables locked: the DomU's goes back to unbound for Dom0.
            let mut dom0_ports = dom0_ports;
            let mut domu_ports = domu.xen.events.ports.lock();
            domu_ports[theirs as usize] = Binding::Unbound { remote: 0 };
            dom0_ports[ours as usize] = Binding::Free;
            drop((domu_ports, dom0_ports));
            end.join().unwrap();
        });
        assert!(domu_ports_all_free(&m), "the walk closed what it found after the re-lock");
    }
}
