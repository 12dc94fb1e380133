//! Per-vCPU areas (`public/vcpu.h`): where each vCPU's vcpu_info lives, and
//! its runstate area, which the hypervisor keeps up to date. Also
//! `vm_assist`, whose only Arm use is the runstate update flag.

use super::Errno;
use super::errno::*;
use super::public::{VcpuRegisterRunstateMemoryArea, VcpuRegisterVcpuInfo};
use super::shared::{NONE, layout};
use super::wire;
use super::{Board, Call, DomainState};
use crate::mm::frames::FRAME_SIZE as PAGE;
use crate::mm::range::{Ipa, Pa};
use core::sync::atomic::{AtomicU64, Ordering};

pub mod op {
    pub const REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
    pub const REGISTER_VCPU_INFO: u32 = 10;
}

pub mod runstate {
    pub const RUNNING: u32 = 0;
    pub const RUNNABLE: u32 = 1;
    pub const BLOCKED: u32 = 2;
    pub const OFFLINE: u32 = 3;
    /// Set in `state_entry_time` while the area changes (with the vm_assist).
    pub const UPDATE: u64 = 1 << 63;
}

pub const VMASST_CMD_ENABLE: u32 = 0;
pub const VMASST_CMD_DISABLE: u32 = 1;
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// The assists Xen offers on Arm.
const VMASST_VALID: u64 = 1 << VMASST_TYPE_RUNSTATE_UPDATE_FLAG;

/// `struct vcpu_runstate_info`: int state; u64 state_entry_time; u64 time[4].
const RUNSTATE_WORDS: usize = 6;

/// A vCPU's state as the runstate area shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Runstate {
    state: u32,
    entry_time: u64,
    time: [u64; 4],
    /// The six words of the guest's area: each one's guest page (pinned
    /// while registered) and physical address.
    area: Option<[(Ipa, u64); RUNSTATE_WORDS]>,
}

pub struct Vcpu {
    /// The registered vcpu_info's physical address, or NONE.
    info: AtomicU64,
    runstate: spin::Mutex<Runstate>,
}

impl Vcpu {
    /// vCPU 0 runs from the start (system time 0); the others once started.
    pub fn new(index: usize) -> Self {
        let state = if index == 0 { runstate::RUNNING } else { runstate::OFFLINE };
        Self {
            info: AtomicU64::new(NONE),
            runstate: spin::Mutex::new(Runstate { state, entry_time: 0, time: [0; 4], area: None }),
        }
    }

    pub fn info(&self) -> Option<u64> {
        let info = self.info.load(Ordering::Acquire);
        (info != NONE).then_some(info)
    }

    /// Stops using its vcpu_info and runstate area (a released domain's,
    /// whose frames go back): nothing is written there again. Their pins
    /// went with the domain's stage 2.
    pub fn forget_areas(&self) {
        self.info.store(NONE, Ordering::Release);
        self.runstate.lock().area = None;
    }
}

/// `HYPERVISOR_vcpu_op(cmd, vcpuid, arg)`. As on Xen for Arm, only the two
/// registrations exist; other commands are EINVAL, after the vCPU check.
pub fn vcpu_op(call: &mut Call<'_>, cmd: u32, vcpu: u32, arg: u64) -> Result<i64, Errno> {
    // As Xen for Arm: the two registrations are the only vCPU ops (vCPUs
    // come up through PSCI), any other is -EINVAL whatever vCPU it names.
    let register = match cmd {
        op::REGISTER_VCPU_INFO => register_vcpu_info,
        op::REGISTER_RUNSTATE_MEMORY_AREA => register_runstate,
        _ => return Err(EINVAL),
    };
    let vcpu = vcpu as usize;
    if vcpu >= call.domain.xen.vcpus.len() {
        return Err(ENOENT);
    }
    register(call, vcpu, arg)
}

/// `struct vcpu_register_vcpu_info { uint64_t mfn; uint32_t offset, rsvd; }`:
/// vcpu_info at `mfn` page + `offset`, in the domain's RAM, 8-byte aligned,
/// within the page; once per vCPU (errors as current Xen).
fn register_vcpu_info(call: &mut Call<'_>, vcpu: usize, arg: u64) -> Result<i64, Errno> {
    let b = wire::read::<VcpuRegisterVcpuInfo>(call.memory, arg)?;
    let (gfn, offset) = (b.mfn, u64::from(b.offset));
    if gfn > u64::MAX >> 12 || offset >= PAGE {
        return Err(EINVAL);
    }
    if offset > PAGE - layout::VCPU_INFO_SIZE || offset % 8 != 0 {
        return Err(ENXIO);
    }
    let state = call.domain.xen;
    let target = &state.vcpus[vcpu];
    let page = gfn << 12;
    let mut stage2 = call.domain.stage2.lock_holding_no_xen_lock();
    if target.info().is_some() {
        return Err(EBUSY);
    }
    // The guest names a frame of its own physmap: the frame behind it (the
    // same address for a 1:1 Dom0, anywhere for a DomU) is where it lives.
    let Some(frame) = call.domain.own_frame(&stage2, Ipa(page)) else { return Err(EINVAL) };
    let info = frame.0 + offset;
    stage2.pin(Ipa(page));
    let board = call.board;
    // Carry over what the old place held (vCPU 0's is in shared_info), else
    // start from zero.
    let old = super::events::vcpu_info(state, vcpu);
    for word in (0..layout::VCPU_INFO_SIZE).step_by(8) {
        let value = old.map_or(0, |old| board.word(old + word).load(Ordering::Acquire));
        board.word(info + word).store(value, Ordering::Relaxed);
    }
    target.info.store(info, Ordering::Release);
    drop(stage2);
    // Xen then selects every word and raises the upcall, always, so that
    // nothing raised meanwhile is lost: a spurious upcall, which Linux takes
    // as soon as the call returns, before it has noted where its vcpu_info
    // is, unless the event interrupt stays masked at the GIC until Linux
    // enables it. Here that happens only when an event does wait. (A
    // selector left set without an upcall would swallow the next event.)
    if super::events::any_pending(state, board) {
        board.word(info + layout::PENDING_SEL).store(u64::MAX, Ordering::Release);
        super::events::mark_events_pending(state, board, vcpu);
    }
    Ok(0)
}

/// `struct vcpu_register_runstate_memory_area { union { ... uint64_t p; } addr; }`:
/// a guest virtual address, translated now (the guest's kernel mapping of
/// it does not move) and kept pinned. Address 0 unregisters.
fn register_runstate(call: &mut Call<'_>, vcpu: usize, arg: u64) -> Result<i64, Errno> {
    let gva = wire::read::<VcpuRegisterRunstateMemoryArea>(call.memory, arg)?.addr;
    let area = if gva == 0 {
        None
    } else {
        if !gva.is_multiple_of(8) {
            return Err(EINVAL);
        }
        let mut words = [(Ipa(0), 0u64); RUNSTATE_WORDS];
        for (i, word) in words.iter_mut().enumerate() {
            let va = gva.checked_add(8 * i as u64).ok_or(EFAULT)?;
            let (ipa, pa) = call.memory.translate(va, true)?;
            *word = (ipa, pa.0);
        }
        Some(words)
    };
    let domain = call.domain;
    {
        let mut stage2 = domain.stage2.lock_holding_no_xen_lock();
        // The translation was checked without the lock: check it again,
        // through the domain's own stage 2 (1:1 for Dom0, not for a DomU).
        if let Some(words) = &area {
            let mapped = |&(ipa, pa): &(Ipa, u64)| domain.own_frame(&stage2, ipa) == Some(Pa(pa & !(PAGE - 1)));
            if !words.iter().all(mapped) {
                return Err(EFAULT);
            }
            words.iter().for_each(|&(ipa, _)| stage2.pin(ipa));
        }
        let mut runstate = domain.xen.vcpus[vcpu].runstate.lock();
        if let Some(old) = core::mem::replace(&mut runstate.area, area) {
            old.iter().for_each(|&(ipa, _)| stage2.unpin(ipa));
        }
    }
    publish(domain.xen, call.board, vcpu);
    Ok(0)
}

/// Writes vCPU `vcpu`'s runstate into its area, with the update flag set
/// meanwhile if the domain asked for it (Linux then reads it consistently
/// from another CPU).
fn publish(state: &DomainState, board: &dyn Board, vcpu: usize) {
    let runstate = *state.vcpus[vcpu].runstate.lock();
    let Some(area) = runstate.area else { return };
    let flag = state.vm_assist.load(Ordering::Acquire) & (1 << VMASST_TYPE_RUNSTATE_UPDATE_FLAG) != 0;
    let entry = board.word(area[1].1);
    if flag {
        entry.store(runstate.entry_time | runstate::UPDATE, Ordering::Release);
        core::sync::atomic::fence(Ordering::Release);
    }
    board.word(area[0].1).store(u64::from(runstate.state), Ordering::Relaxed);
    for (i, time) in runstate.time.iter().enumerate() {
        board.word(area[2 + i].1).store(*time, Ordering::Relaxed);
    }
    core::sync::atomic::fence(Ordering::Release);
    entry.store(runstate.entry_time, Ordering::Release);
}

/// Moves vCPU `vcpu` to `state` now, accounting the time spent in the old
/// one. For the SMP side (a vCPU turned off or on) and for the hypercall
/// path, which sees its caller running.
pub fn set_runstate(domain: &DomainState, board: &dyn Board, vcpu: usize, state: u32) {
    let Some(v) = domain.vcpus.get(vcpu) else { return };
    {
        let mut runstate = v.runstate.lock();
        if runstate.state == state || state > runstate::OFFLINE {
            return;
        }
        let now = board.now_ns().max(runstate.entry_time);
        let old = runstate.state as usize;
        runstate.time[old] += now - runstate.entry_time;
        runstate.entry_time = now;
        runstate.state = state;
    }
    publish(domain, board, vcpu);
}

/// `HYPERVISOR_vm_assist(cmd, type)`.
pub fn vm_assist(call: &mut Call<'_>, cmd: u32, kind: u32) -> Result<i64, Errno> {
    if kind >= 64 || VMASST_VALID & (1 << kind) == 0 {
        return Err(EINVAL);
    }
    let assists: &DomainState = call.domain.xen;
    match cmd {
        VMASST_CMD_ENABLE => assists.vm_assist.fetch_or(1 << kind, Ordering::AcqRel),
        VMASST_CMD_DISABLE => assists.vm_assist.fetch_and(!(1 << kind), Ordering::AcqRel),
        _ => return Err(ENOSYS),
    };
    Ok(0)
}

#[cfg(test)]
mod tests;
