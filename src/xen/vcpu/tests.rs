use super::*;
use crate::xen::events::tests::{SHARED, op as evtchn, with_shared_info};
use crate::xen::memory::op as mem;
use crate::xen::nr;
use crate::xen::testing::{Machine, RAM, args};

const ARG: u64 = RAM.start + 0x3000;
const INFO_PAGE: u64 = RAM.start + 0x11000;

fn register_info(m: &Machine, vcpu: u64, mfn: u64, offset: u32) -> i64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&mfn.to_le_bytes());
    b[8..12].copy_from_slice(&offset.to_le_bytes());
    m.board.put(ARG, &b);
    m.call(nr::VCPU_OP, args(&[u64::from(op::REGISTER_VCPU_INFO), vcpu, ARG]))
}

fn register_runstate(m: &Machine, vcpu: u64, gva: u64) -> i64 {
    m.board.put(ARG, &gva.to_le_bytes());
    m.call(nr::VCPU_OP, args(&[u64::from(op::REGISTER_RUNSTATE_MEMORY_AREA), vcpu, ARG]))
}

#[test]
fn vcpu_info_moves_out_of_shared_info_with_every_word_selected() {
    let m = with_shared_info(2);
    m.board.set_u64(SHARED + 16, 0x7777);
    m.board.take_raised();
    let info = INFO_PAGE + 64;
    m.board.set_u64(info + 16, 0xdead);
    assert_eq!(register_info(&m, 0, INFO_PAGE >> 12, 64), 0);
    assert_eq!(m.board.u64(info + 16), 0x7777, "the old vcpu_info (in shared_info) carried over");
    assert_eq!((m.board.byte(info), m.board.u64(info + 8)), (0, 0), "no upcall: nothing is pending");
    assert!(m.board.take_raised().is_empty());
    assert_eq!(register_info(&m, 0, INFO_PAGE >> 12, 128), -EBUSY, "once per vCPU");
    // The next event raises the upcall (no selector left set swallows it).
    let (rc, b) = evtchn(&m, crate::xen::events::op::BIND_IPI, &[0; 8]);
    assert_eq!(rc, 0);
    let ipi0 = u32::from_le_bytes(b[4..8].try_into().unwrap());
    assert_eq!(evtchn(&m, crate::xen::events::op::SEND, &ipi0.to_le_bytes()).0, 0);
    assert_eq!((m.board.byte(info), m.board.u64(info + 8)), (1, 1));
    assert_eq!(m.board.take_raised(), vec![0]);
    m.board.set_u64(SHARED + layout::EVTCHN_PENDING, 0);
    // An event waits (raised while vCPU 1 had no vcpu_info): its
    // registration raises the upcall.
    let (rc, b) = evtchn(&m, crate::xen::events::op::BIND_IPI, &[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(rc, 0);
    let port = u32::from_le_bytes(b[4..8].try_into().unwrap());
    assert_eq!(evtchn(&m, crate::xen::events::op::SEND, &port.to_le_bytes()).0, 0);
    assert!(m.board.take_raised().is_empty());
    assert_eq!(register_info(&m, 1, INFO_PAGE >> 12, 128), 0);
    assert_eq!((m.board.byte(INFO_PAGE + 128), m.board.u64(INFO_PAGE + 128 + 8)), (1, u64::MAX));
    assert_eq!(m.board.take_raised(), vec![1]);
    // An event for vCPU 1 goes to its own area.
    m.board.set_byte(INFO_PAGE + 128, 0);
    m.board.set_u64(INFO_PAGE + 128 + layout::PENDING_SEL, 0);
    m.board.set_u64(SHARED + layout::EVTCHN_PENDING, 0);
    assert_eq!(evtchn(&m, crate::xen::events::op::SEND, &port.to_le_bytes()).0, 0);
    assert_eq!((m.board.byte(INFO_PAGE + 128), m.board.u64(INFO_PAGE + 128 + 8)), (1, 1));
    assert_eq!(m.board.take_raised(), vec![1]);
}

#[test]
fn bad_vcpu_info_registrations() {
    let m = with_shared_info(2);
    let gfn = INFO_PAGE >> 12;
    assert_eq!(register_info(&m, 1, gfn, 4), -ENXIO, "misaligned");
    assert_eq!(register_info(&m, 1, gfn, 4096 - 40), -ENXIO, "crosses the page");
    assert_eq!(register_info(&m, 1, gfn, 4096), -EINVAL);
    assert_eq!(register_info(&m, 1, gfn, u32::MAX), -EINVAL);
    assert_eq!(register_info(&m, 1, RAM.end >> 12, 0), -EINVAL, "not its RAM");
    assert_eq!(register_info(&m, 1, 0x4020_0000 >> 12, 0), -EINVAL, "the grant region");
    assert_eq!(register_info(&m, 1, u64::MAX, 0), -EINVAL);
    assert_eq!(register_info(&m, 1, u64::MAX >> 12, 0), -EINVAL);
    assert_eq!(register_info(&m, 2, gfn, 0), -ENOENT);
    assert_eq!(register_info(&m, u64::from(u32::MAX), gfn, 0), -ENOENT);
    assert_eq!(m.call(nr::VCPU_OP, args(&[u64::from(op::REGISTER_VCPU_INFO), 1, RAM.end - 8])), -EFAULT);
    assert_eq!(m.call(nr::VCPU_OP, args(&[1, 0, ARG])), -EINVAL, "VCPUOP_up: not on Arm");
    assert_eq!(m.call(nr::VCPU_OP, args(&[99, 0, ARG])), -EINVAL);
    assert_eq!(m.call(nr::VCPU_OP, args(&[1, 7, ARG])), -EINVAL, "VCPUOP_up of a vCPU it lacks: -EINVAL first, as Xen");
    assert_eq!(m.call(nr::VCPU_OP, args(&[99, 5, ARG])), -EINVAL, "the op before the vCPU, as Xen for Arm");
    assert_eq!(register_info(&m, 1, gfn, 4096 - 48), 0, "the last slot fits");
}

#[test]
fn registered_pages_cannot_be_ballooned_out() {
    let m = with_shared_info(1);
    assert_eq!(register_info(&m, 0, INFO_PAGE >> 12, 0), 0);
    for page in [INFO_PAGE, SHARED] {
        assert_eq!(m.balloon(mem::DECREASE_RESERVATION, page), 0, "{page:#x}");
    }
}

#[test]
fn runstate_area_shows_running_and_accounts_time() {
    let m = Machine::new(2);
    let area = RAM.start + 0x12ff0; // crosses into the next page
    m.board.now.store(5_000, Ordering::Relaxed);
    assert_eq!(register_runstate(&m, 0, area), 0);
    let read = |i: u64| m.board.u64(area + 8 * i);
    assert_eq!((read(0), read(1)), (u64::from(runstate::RUNNING), 0), "vCPU 0 ran since system time 0");
    // vCPU 1 is offline until PSCI CPU_ON starts it.
    let other = RAM.start + 0x14000;
    assert_eq!(register_runstate(&m, 1, other), 0);
    assert_eq!(m.board.u64(other), u64::from(runstate::OFFLINE));
    m.board.now.store(9_000, Ordering::Relaxed);
    set_runstate(&m.domain.xen, &m.board, 1, runstate::RUNNING);
    assert_eq!(m.board.u64(other), u64::from(runstate::RUNNING));
    assert_eq!(m.board.u64(other + 8), 9_000);
    assert_eq!(m.board.u64(other + 8 * (2 + u64::from(runstate::OFFLINE))), 9_000);
    // PSCI CPU_OFF turns vCPU 0 off; with the update flag asked for, the
    // entry time still ends without it.
    assert_eq!(m.call(nr::VM_ASSIST, args(&[u64::from(VMASST_CMD_ENABLE), 5])), 0);
    m.board.now.store(12_000, Ordering::Relaxed);
    set_runstate(&m.domain.xen, &m.board, 0, runstate::OFFLINE);
    assert_eq!((read(0), read(1), read(2)), (u64::from(runstate::OFFLINE), 12_000, 12_000));
    // Unregistering stops the updates and unpins.
    set_runstate(&m.domain.xen, &m.board, 0, runstate::RUNNING);
    assert_eq!(register_runstate(&m, 0, 0), 0);
    set_runstate(&m.domain.xen, &m.board, 0, runstate::OFFLINE);
    assert_eq!(read(0), u64::from(runstate::RUNNING));
    assert!(!m.domain.stage2.lock_holding_no_xen_lock().is_pinned(Ipa(area)));
    assert!(m.domain.stage2.lock_holding_no_xen_lock().is_pinned(Ipa(other)));
}

#[test]
fn bad_runstate_areas() {
    let m = Machine::new(1);
    assert_eq!(register_runstate(&m, 0, RAM.start + 4), -EINVAL);
    assert_eq!(register_runstate(&m, 0, RAM.end - 16), -EFAULT, "runs off its RAM");
    assert_eq!(register_runstate(&m, 0, 0x4020_0000), -EFAULT);
    assert_eq!(register_runstate(&m, 0, !7), -EFAULT);
    assert_eq!(register_runstate(&m, 1, RAM.start), -ENOENT);
    assert_eq!(m.call(nr::VCPU_OP, args(&[u64::from(op::REGISTER_RUNSTATE_MEMORY_AREA), 0, 8])), -EFAULT);
}

#[test]
fn vm_assist_knows_only_the_runstate_flag() {
    let m = Machine::new(1);
    assert_eq!(m.call(nr::VM_ASSIST, args(&[u64::from(VMASST_CMD_ENABLE), 5])), 0);
    assert_eq!(m.call(nr::VM_ASSIST, args(&[u64::from(VMASST_CMD_DISABLE), 5])), 0);
    assert_eq!(m.call(nr::VM_ASSIST, args(&[u64::from(VMASST_CMD_ENABLE), 0])), -EINVAL);
    assert_eq!(m.call(nr::VM_ASSIST, args(&[u64::from(VMASST_CMD_ENABLE), 64])), -EINVAL);
    assert_eq!(m.call(nr::VM_ASSIST, args(&[u64::from(VMASST_CMD_ENABLE), u64::MAX])), -EINVAL);
    assert_eq!(m.call(nr::VM_ASSIST, args(&[7, 5])), -ENOSYS);
}
