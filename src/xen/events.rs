//! Event channels with the 2-level ABI (`public/event_channel.h`): a table
//! of 4096 ports per domain, their pending and mask bits in shared_info,
//! one selector word per vCPU in its vcpu_info, and one interrupt, the
//! event PPI. FIFO (`init_control`) is refused, so Linux uses 2-level.
//! Behaviour follows Xen's `event_channel.c` and `event_2l.c`.

use super::Errno;
use super::errno::*;
use super::public::{
    Domid, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindPirq, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnPort, EvtchnStatus,
};
use super::shared::{self, layout};
use super::wire;
use super::{Board, Call, DOMID_SELF, DomainState, DomainView};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

/// The PPI that signals events: PPI 0 (INTID 16), as Xen picks on this
/// machine; Dom0's `/hypervisor` node names it.
pub const EVENT_PPI: u32 = 0;
pub const EVENT_INTID: u32 = 16 + EVENT_PPI;

/// 2-level: 64 words of 64 bits.
pub const NR_PORTS: u32 = 4096;
pub const NR_VIRQS: usize = 24;

pub mod virq {
    pub const TIMER: u32 = 0;
    pub const DEBUG: u32 = 1;
    pub const CONSOLE: u32 = 2;
    /// Another domain shut down or crashed: Dom0's to hear.
    pub const DOM_EXC: u32 = 3;
    pub const XENOPROF: u32 = 7;
    pub const XENPMU: u32 = 13;
}

pub mod op {
    pub const BIND_INTERDOMAIN: u32 = 0;
    pub const BIND_VIRQ: u32 = 1;
    pub const BIND_PIRQ: u32 = 2;
    pub const CLOSE: u32 = 3;
    pub const SEND: u32 = 4;
    pub const STATUS: u32 = 5;
    pub const ALLOC_UNBOUND: u32 = 6;
    pub const BIND_IPI: u32 = 7;
    pub const BIND_VCPU: u32 = 8;
    pub const UNMASK: u32 = 9;
    pub const RESET: u32 = 10;
    pub const INIT_CONTROL: u32 = 11;
    pub const RESET_CONT: u32 = 14;
}

/// EVTCHNSTAT_* for `status`.
pub mod stat {
    pub const CLOSED: u32 = 0;
    pub const UNBOUND: u32 = 1;
    pub const INTERDOMAIN: u32 = 2;
    pub const VIRQ: u32 = 4;
    pub const IPI: u32 = 5;
}

/// What a port is bound to. An interdomain channel's other end is a port
/// of `remote_dom`, which may be the domain itself (loopback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    Free,
    /// Port 0, never used.
    Reserved,
    /// Waiting for `remote` to bind to it.
    Unbound {
        remote: u16,
    },
    Interdomain {
        remote_dom: u16,
        remote_port: u32,
    },
    Virq(u32),
    Ipi,
}

/// Per-vCPU VIRQ-to-port table; ports are never 0, so 0 means unbound.
type VirqTable = [AtomicU32; NR_VIRQS];

pub struct EventChannels {
    ports: spin::Mutex<Vec<Binding>>,
    /// The vCPU each port notifies. Changed under the lock, read without it
    /// by VIRQs raised in interrupt context.
    notify: Vec<AtomicU32>,
    /// Global VIRQs live in vCPU 0's table, as in Xen.
    virqs: Vec<VirqTable>,
}

/// Global VIRQs go to one vCPU of the domain (bindable on vCPU 0 only,
/// movable with bind_vcpu); the others exist per vCPU.
fn virq_is_global(virq: u32) -> bool {
    !matches!(virq, virq::TIMER | virq::DEBUG | virq::XENOPROF | virq::XENPMU)
}

impl EventChannels {
    pub fn new(vcpus: usize) -> Self {
        let mut ports = alloc::vec![Binding::Free; NR_PORTS as usize];
        ports[0] = Binding::Reserved;
        Self {
            ports: spin::Mutex::new(ports),
            notify: (0..NR_PORTS).map(|_| AtomicU32::new(0)).collect(),
            virqs: (0..vcpus).map(|_| core::array::from_fn(|_| AtomicU32::new(0))).collect(),
        }
    }
}

impl EventChannels {
    /// Whether `port` is free (closed, or never used).
    pub fn is_free(&self, port: u32) -> bool {
        self.ports.lock().get(port as usize) == Some(&Binding::Free)
    }
}

/// The vcpu_info of `vcpu`: its registered one, or for vCPU 0 the one
/// inside shared_info (Arm has one legacy vcpu_info there).
pub fn vcpu_info(state: &DomainState, vcpu: usize) -> Option<u64> {
    state.vcpus.get(vcpu)?.info().or_else(|| if vcpu == 0 { state.shared.address() } else { None })
}

/// Marks the vCPU's upcall pending; interrupts it on the 0 -> 1 edge, as
/// Xen does on Arm.
pub fn mark_events_pending(state: &DomainState, board: &dyn Board, vcpu: usize) {
    if let Some(info) = vcpu_info(state, vcpu)
        && !shared::test_and_set_bit(board, info + layout::UPCALL_PENDING, 0)
    {
        board.raise_event(vcpu);
    }
}

/// Whether any unmasked port is pending in shared_info.
pub fn any_pending(state: &DomainState, board: &dyn Board) -> bool {
    let Some(page) = state.shared.address() else { return false };
    (0..u64::from(NR_PORTS / 64)).any(|w| {
        let pending = board.word(page + layout::EVTCHN_PENDING + w * 8).load(Ordering::Acquire);
        pending & !board.word(page + layout::EVTCHN_MASK + w * 8).load(Ordering::Acquire) != 0
    })
}

/// Raises `port` for `vcpu` (Xen's `evtchn_2l_set_pending`).
pub fn set_pending(state: &DomainState, board: &dyn Board, port: u32, vcpu: usize) {
    let Some(page) = state.shared.address() else { return };
    if shared::test_and_set_bit(board, page + layout::EVTCHN_PENDING, port) {
        return;
    }
    if shared::test_bit(board, page + layout::EVTCHN_MASK, port) {
        return;
    }
    let Some(info) = vcpu_info(state, vcpu) else { return };
    if !shared::test_and_set_bit(board, info + layout::PENDING_SEL, port / 64) {
        mark_events_pending(state, board, vcpu);
    }
}

/// Raises a global VIRQ if the domain bound it. Lock-free: callable from
/// interrupt context on any CPU.
pub fn raise_virq(state: &DomainState, board: &dyn Board, virq: u32) {
    let events = &state.events;
    let Some(table) = events.virqs.first() else { return };
    let Some(slot) = table.get(virq as usize) else { return };
    let port = slot.load(Ordering::Acquire);
    if port == 0 || port >= NR_PORTS {
        return;
    }
    let vcpu = events.notify[port as usize].load(Ordering::Acquire) as usize;
    set_pending(state, board, port, vcpu);
}

fn unmask(state: &DomainState, board: &dyn Board, port: u32) {
    let Some(page) = state.shared.address() else { return };
    let vcpu = state.events.notify[port as usize].load(Ordering::Acquire) as usize;
    if shared::test_and_clear_bit(board, page + layout::EVTCHN_MASK, port)
        && shared::test_bit(board, page + layout::EVTCHN_PENDING, port)
        && let Some(info) = vcpu_info(state, vcpu)
        && !shared::test_and_set_bit(board, info + layout::PENDING_SEL, port / 64)
    {
        mark_events_pending(state, board, vcpu);
    }
}

/// One operation under the port-table lock.
struct Ports<'a> {
    state: &'a DomainState,
    board: &'a dyn Board,
    table: spin::MutexGuard<'a, Vec<Binding>>,
}

impl Ports<'_> {
    fn events(&self) -> &EventChannels {
        &self.state.events
    }

    fn get(&self, port: u32) -> Result<Binding, Errno> {
        self.table.get(port as usize).copied().ok_or(EINVAL)
    }

    /// The lowest free port, or -ENOSPC.
    fn free_port(&self) -> Result<u32, Errno> {
        self.table.iter().position(|b| *b == Binding::Free).map(|p| p as u32).ok_or(ENOSPC)
    }

    /// The lowest free port, bound as `binding` to notify `vcpu`. A pending
    /// bit a racing VIRQ left on the free port is dropped first.
    fn allocate(&mut self, binding: Binding, vcpu: u32) -> Result<u32, Errno> {
        let port = self.free_port()?;
        self.clear_pending(port);
        self.table[port as usize] = binding;
        self.events().notify[port as usize].store(vcpu, Ordering::Release);
        Ok(port)
    }

    fn clear_pending(&self, port: u32) {
        if let Some(page) = self.state.shared.address() {
            shared::test_and_clear_bit(self.board, page + layout::EVTCHN_PENDING, port);
        }
    }

    fn free(&mut self, port: u32) {
        self.table[port as usize] = Binding::Free;
        self.events().notify[port as usize].store(0, Ordering::Release);
        self.clear_pending(port);
    }

    /// Closes `port` unless it leads to another domain (which needs both
    /// tables: [`close`]); then -EINVAL, as a port whose binding changed.
    fn close_unless_foreign(&mut self, port: u32, own_id: u16) -> Result<(), Errno> {
        match self.get(port)? {
            Binding::Interdomain { remote_dom, .. } if remote_dom != own_id => Err(EINVAL),
            _ => self.close(port, own_id),
        }
    }

    fn close(&mut self, port: u32, own_id: u16) -> Result<(), Errno> {
        match self.get(port)? {
            Binding::Free | Binding::Reserved => return Err(EINVAL),
            Binding::Unbound { .. } | Binding::Ipi => {}
            Binding::Virq(virq) => {
                let vcpu =
                    if virq_is_global(virq) { 0 } else { self.events().notify[port as usize].load(Ordering::Acquire) };
                self.events().virqs[vcpu as usize][virq as usize].store(0, Ordering::Release);
            }
            Binding::Interdomain { remote_dom, remote_port } => {
                // The other end is ours too: another domain's is closed by
                // `close`, with both tables locked.
                debug_assert_eq!(remote_dom, own_id);
                self.table[remote_port as usize] = Binding::Unbound { remote: own_id };
            }
        }
        self.free(port);
        Ok(())
    }
}

fn lock<'a>(call: &'a Call<'_>) -> Ports<'a> {
    let state = call.domain.xen;
    Ports { state, board: call.board, table: state.events.ports.lock() }
}

/// The board as another domain's events see it: the same machine, but the
/// event interrupt goes to that domain's vCPU.
struct RemoteBoard<'a> {
    board: &'a dyn Board,
    domains: &'a dyn super::Domains,
    domid: u16,
}

impl crate::mm::stage2::Tlb for RemoteBoard<'_> {
    fn invalidate_ipa(&self, ipa: crate::mm::range::Ipa) {
        self.board.invalidate_ipa(ipa)
    }
    fn publish(&self) {
        self.board.publish()
    }
}

impl Board for RemoteBoard<'_> {
    fn word(&self, pa: u64) -> &core::sync::atomic::AtomicU64 {
        self.board.word(pa)
    }
    fn alloc_frame(&self) -> Option<u64> {
        self.board.alloc_frame()
    }
    fn free_frame(&self, pa: u64) {
        self.board.free_frame(pa)
    }
    fn claim_frame(&self, pa: u64) -> bool {
        self.board.claim_frame(pa)
    }
    fn raise_event(&self, vcpu: usize) {
        self.domains.raise_event(self.domid, vcpu)
    }
    fn now_ns(&self) -> u64 {
        self.board.now_ns()
    }
    fn console_write(&self, bytes: &[u8]) {
        self.board.console_write(bytes)
    }
    fn console_read(&self, buf: &mut [u8]) -> usize {
        self.board.console_read(buf)
    }
}

impl<'a> RemoteBoard<'a> {
    fn new(call: &Call<'a>, domid: u16) -> Self {
        Self { board: call.board, domains: call.domains, domid }
    }
}

/// The caller's port table and `remote`'s (another domain), locked lower
/// domid first as Xen does, so two domains binding or closing towards each
/// other cannot deadlock.
fn lock_both<'a>(
    call: &'a Call<'_>,
    remote: super::DomainView<'a>,
    remote_board: &'a RemoteBoard<'a>,
) -> (Ports<'a>, Ports<'a>) {
    let own = call.domain;
    let (mine, theirs) =
        super::lock_two((own.id, own.xen), (remote.id, remote.xen), |x: &'a DomainState| x.events.ports.lock());
    let theirs = theirs.expect("another domain has its own table");
    (
        Ports { state: own.xen, board: call.board, table: mine },
        Ports { state: remote.xen, board: remote_board, table: theirs },
    )
}

/// EVTCHNOP_close of the caller's `port`; an interdomain port's other end
/// goes back to unbound, waiting for the caller again, as in Xen.
fn close(call: &Call<'_>, port: u32) -> Result<(), Errno> {
    let own = call.domain.id;
    let binding = lock(call).get(port)?;
    let remote_dom = match binding {
        Binding::Interdomain { remote_dom, .. } if remote_dom != own => remote_dom,
        _ => return lock(call).close_unless_foreign(port, own),
    };
    let Some(remote) = call.domains.find(remote_dom) else { return lock(call).close_unless_foreign(port, own) };
    let remote_board = RemoteBoard::new(call, remote_dom);
    let (mut mine, mut theirs) = lock_both(call, remote, &remote_board);
    match mine.get(port)? {
        Binding::Interdomain { remote_dom: now, remote_port } if now == remote_dom => {
            theirs.table[remote_port as usize] = Binding::Unbound { remote: own };
            mine.free(port);
            Ok(())
        }
        // Closed and bound elsewhere while unlocked: as Xen, the error of
        // a port seen closed.
        Binding::Interdomain { remote_dom: now, .. } if now != own => Err(EINVAL),
        _ => mine.close(port, own),
    }
}

/// Closes every port of `domain`, which is ending (Xen's `evtchn_destroy`):
/// the other end of an interdomain channel goes back to unbound, waiting
/// for the dead domain (`evtchn_close`), so its owner's sends are dropped
/// and EVTCHNOP_status says so; its bound VIRQs and IPIs go. Whatever a
/// port is bound to once its table is locked again is what is closed: a
/// call that passed its liveness check before the domain began ending
/// checks again under the lock, so once this walk has passed a port
/// nothing binds it again.
pub fn close_all(domain: DomainView<'_>, board: &dyn Board, domains: &dyn super::Domains) {
    for port in 1..NR_PORTS {
        close_for_good(domain, board, domains, port);
    }
}

/// Closes `port` of the ending `domain`, whatever it is bound to, looking
/// again each time the binding changed between the two locks.
fn close_for_good(domain: DomainView<'_>, board: &dyn Board, domains: &dyn super::Domains, port: u32) {
    let own = domain.id;
    let local = |table| Ports { state: domain.xen, board, table };
    loop {
        let binding = domain.xen.events.ports.lock()[port as usize];
        match binding {
            Binding::Free | Binding::Reserved => return,
            Binding::Interdomain { remote_dom, .. } if remote_dom != own => {
                let Some(remote) = domains.find(remote_dom) else {
                    let mut mine = local(domain.xen.events.ports.lock());
                    // Still that binding (else look again): the other
                    // domain is gone, its end with it.
                    if mine.table[port as usize] == binding {
                        mine.free(port);
                        return;
                    }
                    continue;
                };
                let (mine, theirs) = super::lock_two((own, domain.xen), (remote.id, remote.xen), |x: &DomainState| {
                    x.events.ports.lock()
                });
                let (mut mine, mut theirs) = (local(mine), theirs.expect("another domain has its own table"));
                match mine.table[port as usize] {
                    Binding::Interdomain { remote_dom: now, remote_port } if now == remote_dom => {
                        theirs[remote_port as usize] = Binding::Unbound { remote: own };
                        mine.free(port);
                        return;
                    }
                    // Changed while unlocked (the other end closed it):
                    // close what is there now.
                    _ => continue,
                }
            }
            _ => {
                let mut mine = local(domain.xen.events.ports.lock());
                match mine.table[port as usize] {
                    Binding::Free | Binding::Reserved => return,
                    Binding::Interdomain { remote_dom, .. } if remote_dom != own => continue,
                    _ => {
                        let _ = mine.close(port, own);
                        return;
                    }
                }
            }
        }
    }
}

/// `HYPERVISOR_event_channel_op(cmd, arg)`.
pub fn event_channel_op(call: &mut Call<'_>, cmd: u32, arg: u64) -> Result<i64, Errno> {
    match cmd {
        op::ALLOC_UNBOUND => alloc_unbound(call, arg),
        op::BIND_INTERDOMAIN => bind_interdomain(call, arg),
        op::BIND_VIRQ => bind_virq(call, arg),
        op::BIND_IPI => bind_ipi(call, arg),
        op::BIND_PIRQ => wire::read::<EvtchnBindPirq>(call.memory, arg).and(Err(EINVAL)),
        op::CLOSE => port_arg(call, arg).and_then(|port| close(call, port).map(|()| 0)),
        op::SEND => port_arg(call, arg).and_then(|port| send(call, port)),
        op::STATUS => status(call, arg),
        op::BIND_VCPU => bind_vcpu(call, arg),
        op::UNMASK => port_arg(call, arg).and_then(|port| {
            if port >= NR_PORTS {
                return Err(EINVAL);
            }
            unmask(call.domain.xen, call.board, port);
            Ok(0)
        }),
        op::RESET | op::RESET_CONT => reset(call, arg),
        // FIFO (init_control, expand_array, set_priority) and the rest.
        _ => Err(ENOSYS),
    }
}

fn port_arg(call: &mut Call<'_>, arg: u64) -> Result<u32, Errno> {
    wire::read::<EvtchnPort>(call.memory, arg).map(|b| b.port)
}

fn check_vcpu(call: &Call<'_>, vcpu: u32) -> Result<(), Errno> {
    if (vcpu as usize) < call.domain.xen.vcpus.len() { Ok(()) } else { Err(ENOENT) }
}

/// Whether the caller may act on `target`'s ports: its own, or any
/// domain's for Dom0, the privileged domain (Xen's XSM_TARGET under the
/// default policy).
fn may_name(call: &Call<'_>, target: &DomainView<'_>) -> Result<(), Errno> {
    if target.id == call.domain.id || call.domain.id == 0 { Ok(()) } else { Err(EPERM) }
}

/// `struct evtchn_alloc_unbound { domid_t dom, remote_dom; evtchn_port_t port; }`:
/// a port of `dom` (the caller's, or for Dom0 any domain's) waiting for
/// `remote_dom` (DOMID_SELF: the caller). Errors in Xen's order: no such
/// domain (or an ended one) -ESRCH, no free port -ENOSPC, a domain the
/// caller may not name -EPERM.
fn alloc_unbound(call: &mut Call<'_>, arg: u64) -> Result<i64, Errno> {
    let mut b = wire::read::<EvtchnAllocUnbound>(call.memory, arg)?;
    let target = call.find_domain(b.dom)?;
    let remote = match b.remote_dom {
        DOMID_SELF => call.domain.id,
        other => other,
    };
    let port = {
        let mut ports = Ports { state: target.xen, board: call.board, table: target.xen.events.ports.lock() };
        // Checked again under the lock: a domain that began ending since
        // (its `close_all` may have walked past the port) takes no new one.
        if !target.xen.life.is_alive() {
            return Err(ESRCH);
        }
        ports.free_port()?;
        may_name(call, &target)?;
        ports.allocate(Binding::Unbound { remote }, 0)?
    };
    b.port = port;
    wire::write(call.memory, arg, &b).map(|()| 0)
}

/// `struct evtchn_bind_interdomain { domid_t remote_dom; evtchn_port_t
/// remote_port, local_port; }`: to a port of `remote_dom` (the caller
/// itself, or another domain) that is unbound and allocated for the caller.
/// Errors as Xen's: no such domain -ESRCH, no free local port -ENOSPC,
/// then a remote port out of range, not unbound or for someone else -EINVAL.
fn bind_interdomain(call: &mut Call<'_>, arg: u64) -> Result<i64, Errno> {
    let mut b = wire::read::<EvtchnBindInterdomain>(call.memory, arg)?;
    let remote = call.find_domain(b.remote_dom)?;
    let remote_port = b.remote_port;
    let own = call.domain.id;
    // Notifications sent to the unbound end were dropped: the new end is
    // raised once, as Xen does.
    let local_port = if remote.id == own {
        let mut ports = lock(call);
        ports.free_port()?;
        if ports.get(remote_port)? != (Binding::Unbound { remote: own }) {
            return Err(EINVAL);
        }
        let local = ports.allocate(Binding::Interdomain { remote_dom: own, remote_port }, 0)?;
        ports.table[remote_port as usize] = Binding::Interdomain { remote_dom: own, remote_port: local };
        set_pending(ports.state, ports.board, local, 0);
        local
    } else {
        let remote_board = RemoteBoard::new(call, remote.id);
        let (mut mine, mut theirs) = lock_both(call, remote, &remote_board);
        // Checked again under its lock: a domain that began ending since
        // binds nothing more (its `close_all` may have passed the port).
        if !remote.xen.life.is_alive() {
            return Err(ESRCH);
        }
        mine.free_port()?;
        if theirs.get(remote_port)? != (Binding::Unbound { remote: own }) {
            return Err(EINVAL);
        }
        let local = mine.allocate(Binding::Interdomain { remote_dom: remote.id, remote_port }, 0)?;
        theirs.table[remote_port as usize] = Binding::Interdomain { remote_dom: own, remote_port: local };
        set_pending(mine.state, mine.board, local, 0);
        local
    };
    b.local_port = local_port;
    wire::write(call.memory, arg, &b).map(|()| 0)
}

/// `struct evtchn_bind_virq { uint32_t virq, vcpu; evtchn_port_t port; }`
fn bind_virq(call: &mut Call<'_>, arg: u64) -> Result<i64, Errno> {
    let mut b = wire::read::<EvtchnBindVirq>(call.memory, arg)?;
    let (virq, vcpu) = (b.virq, b.vcpu);
    if virq as usize >= NR_VIRQS || (virq_is_global(virq) && vcpu != 0) {
        return Err(EINVAL);
    }
    check_vcpu(call, vcpu)?;
    let port = {
        let mut ports = lock(call);
        let slot = &ports.events().virqs[vcpu as usize][virq as usize];
        if slot.load(Ordering::Acquire) != 0 {
            return Err(EEXIST);
        }
        let port = ports.allocate(Binding::Virq(virq), vcpu)?;
        ports.events().virqs[vcpu as usize][virq as usize].store(port, Ordering::Release);
        port
    };
    b.port = port;
    wire::write(call.memory, arg, &b).map(|()| 0)
}

/// `struct evtchn_bind_ipi { uint32_t vcpu; evtchn_port_t port; }`
fn bind_ipi(call: &mut Call<'_>, arg: u64) -> Result<i64, Errno> {
    let mut b = wire::read::<EvtchnBindIpi>(call.memory, arg)?;
    let vcpu = b.vcpu;
    check_vcpu(call, vcpu)?;
    let port = lock(call).allocate(Binding::Ipi, vcpu)?;
    b.port = port;
    wire::write(call.memory, arg, &b).map(|()| 0)
}

/// EVTCHNOP_send: raises the other end of an interdomain channel (in the
/// other domain's shared_info, on the vCPU that port notifies), or an IPI.
fn send(call: &mut Call<'_>, port: u32) -> Result<i64, Errno> {
    let ports = lock(call);
    let own = call.domain.id;
    let target = match ports.get(port)? {
        Binding::Interdomain { remote_dom, remote_port } if remote_dom != own => {
            // Our lock keeps the other end bound to this port: closing
            // either end takes both tables.
            let Some(remote) = call.domains.find(remote_dom) else { return Ok(0) };
            let vcpu = remote.xen.events.notify[remote_port as usize].load(Ordering::Acquire) as usize;
            set_pending(remote.xen, &RemoteBoard::new(call, remote_dom), remote_port, vcpu);
            return Ok(0);
        }
        Binding::Interdomain { remote_port, .. } => remote_port,
        Binding::Ipi => port,
        // Nobody is listening yet: dropped, as Xen does.
        Binding::Unbound { .. } => return Ok(0),
        _ => return Err(EINVAL),
    };
    let vcpu = ports.events().notify[target as usize].load(Ordering::Acquire) as usize;
    set_pending(ports.state, ports.board, target, vcpu);
    Ok(0)
}

/// `struct evtchn_status { domid_t dom; evtchn_port_t port; uint32_t
/// status, vcpu; union { ... } u; }` (24 bytes).
fn status(call: &mut Call<'_>, arg: u64) -> Result<i64, Errno> {
    let mut b = wire::read::<EvtchnStatus>(call.memory, arg)?;
    // Another domain's port for Dom0 (as Xen's XSM_TARGET): -ESRCH for no
    // such domain, -EINVAL for no such port, then -EPERM.
    let target = call.find_domain(b.dom)?;
    let port = b.port;
    let (binding, vcpu) = {
        let events = &target.xen.events;
        let ports = events.ports.lock();
        let binding = ports.get(port as usize).copied().ok_or(EINVAL)?;
        may_name(call, &target)?;
        (binding, events.notify[port as usize].load(Ordering::Acquire))
    };
    let (status, u0, u1) = match binding {
        Binding::Free | Binding::Reserved => (stat::CLOSED, 0, 0),
        Binding::Unbound { remote } => (stat::UNBOUND, u32::from(remote), 0),
        Binding::Interdomain { remote_dom, remote_port } => (stat::INTERDOMAIN, u32::from(remote_dom), remote_port),
        Binding::Virq(virq) => (stat::VIRQ, virq, 0),
        Binding::Ipi => (stat::IPI, 0, 0),
    };
    b.status = status;
    b.vcpu = vcpu;
    match status {
        stat::UNBOUND => b.u_dom = u0 as u16,
        stat::INTERDOMAIN => {
            b.u_dom = u0 as u16;
            b.u_port = u1;
        }
        // `u.virq`, a u32 over the domid and the hole after it.
        stat::VIRQ => (b.u_dom, b._u_pad) = (u0 as u16, (u0 >> 16) as u16),
        _ => {}
    }
    wire::write(call.memory, arg, &b).map(|()| 0)
}

/// `struct evtchn_bind_vcpu { evtchn_port_t port; uint32_t vcpu; }`
fn bind_vcpu(call: &mut Call<'_>, arg: u64) -> Result<i64, Errno> {
    let b = wire::read::<EvtchnBindVcpu>(call.memory, arg)?;
    let (port, vcpu) = (b.port, b.vcpu);
    check_vcpu(call, vcpu)?;
    let ports = lock(call);
    match ports.get(port)? {
        Binding::Virq(virq) if virq_is_global(virq) => {}
        Binding::Unbound { .. } | Binding::Interdomain { .. } => {}
        _ => return Err(EINVAL),
    }
    ports.events().notify[port as usize].store(vcpu, Ordering::Release);
    Ok(0)
}

/// `struct evtchn_reset { domid_t dom; }`: closes every port.
fn reset(call: &mut Call<'_>, arg: u64) -> Result<i64, Errno> {
    let b = wire::read::<Domid>(call.memory, arg)?;
    super::own_domain(call, b.dom)?;
    for port in 1..NR_PORTS {
        let _ = close(call, port);
    }
    Ok(0)
}

#[cfg(test)]
pub(crate) mod tests;
