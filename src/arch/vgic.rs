//! GICv3 virtualisation for Dom0 (the README's "Serving Dom0"). Dom0 vCPU n runs on
//! physical CPU n, always, so each CPU's list registers belong to one vCPU
//! and are never switched. Physical interrupts of Dom0's are acknowledged
//! at EL2, their priority dropped, and handed over in a list register with
//! HW=1; Dom0's SGIs are forwarded to the physical CPU and arrive there as
//! purely virtual ones; the event-channel PPI is purely virtual. When all
//! list registers are busy, interrupts wait in a per-CPU queue that the
//! maintenance interrupt drains.

use super::esr::{DataAccess, SysRegAccess};
use super::exception::TrapFrame;
use super::gic::{self, KICK_SGI};
use crate::dt::host::MAX_CPUS;
use crate::gic::filter::Write;
use crate::gic::list_register::ListRegister;
use crate::gic::overflow::Overflow;
use crate::gic::{FIRST_SPECIAL, PRIVATE_COUNT, SGI_COUNT};
use aarch64_cpu::registers::*;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};

/// What each CPU's virtual interface holds beyond its list registers.
struct VcpuInterrupts {
    /// Private interrupts raised for this vCPU from elsewhere (other CPUs,
    /// hypercalls), one bit per INTID; moved into list registers on this CPU.
    raised: AtomicU32,
    /// Interrupts waiting for a free list register.
    overflow: Mutex<Overflow>,
    /// The number of list registers; 0 until this CPU's interface is up.
    list_registers: AtomicUsize,
    /// This CPU's redistributor, whose enable bits Dom0 sets (through the
    /// filter) for its private interrupts, the purely virtual ones too.
    redistributor: AtomicU64,
}

static VCPUS: [VcpuInterrupts; MAX_CPUS] = [const {
    VcpuInterrupts {
        raised: AtomicU32::new(0),
        overflow: Mutex::new(Overflow::new()),
        list_registers: AtomicUsize::new(0),
        redistributor: AtomicU64::new(0),
    }
}; MAX_CPUS];

fn this_vcpu() -> &'static VcpuInterrupts {
    &VCPUS[super::cpu::current_index()]
}

/// Brings up this CPU's GIC interfaces; call on each CPU before it enters Dom0.
pub fn init_this_cpu() {
    let Some(gic) = gic::get() else { return };
    if let Some(found) = gic::init_this_cpu(gic, super::cpu::this_mpidr()) {
        let vcpu = this_vcpu();
        vcpu.redistributor.store(found.redistributor, Ordering::Release);
        vcpu.list_registers.store(found.list_registers, Ordering::Release);
    }
}

pub fn read_list_register(index: usize) -> u64 {
    match index {
        0 => ICH_LR0_EL2.get(),
        1 => ICH_LR1_EL2.get(),
        2 => ICH_LR2_EL2.get(),
        3 => ICH_LR3_EL2.get(),
        4 => ICH_LR4_EL2.get(),
        5 => ICH_LR5_EL2.get(),
        6 => ICH_LR6_EL2.get(),
        7 => ICH_LR7_EL2.get(),
        8 => ICH_LR8_EL2.get(),
        9 => ICH_LR9_EL2.get(),
        10 => ICH_LR10_EL2.get(),
        11 => ICH_LR11_EL2.get(),
        12 => ICH_LR12_EL2.get(),
        13 => ICH_LR13_EL2.get(),
        14 => ICH_LR14_EL2.get(),
        _ => ICH_LR15_EL2.get(),
    }
}

pub fn write_list_register(index: usize, value: u64) {
    match index {
        0 => ICH_LR0_EL2.set(value),
        1 => ICH_LR1_EL2.set(value),
        2 => ICH_LR2_EL2.set(value),
        3 => ICH_LR3_EL2.set(value),
        4 => ICH_LR4_EL2.set(value),
        5 => ICH_LR5_EL2.set(value),
        6 => ICH_LR6_EL2.set(value),
        7 => ICH_LR7_EL2.set(value),
        8 => ICH_LR8_EL2.set(value),
        9 => ICH_LR9_EL2.set(value),
        10 => ICH_LR10_EL2.set(value),
        11 => ICH_LR11_EL2.set(value),
        12 => ICH_LR12_EL2.set(value),
        13 => ICH_LR13_EL2.set(value),
        14 => ICH_LR14_EL2.set(value),
        _ => ICH_LR15_EL2.set(value),
    }
}

/// Puts `lr` in a free list register of this CPU, merges it with the same
/// interrupt already there, or queues it.
fn inject(lr: ListRegister) {
    let vcpu = this_vcpu();
    let count = vcpu.list_registers.load(Ordering::Acquire);
    if count == 0 {
        return;
    }
    let empty = super::sysregs::ICH_ELRSR_EL2.get();
    let mut free = None;
    for i in 0..count {
        if empty & (1 << i) != 0 {
            free.get_or_insert(i);
            continue;
        }
        let current = ListRegister(read_list_register(i));
        if current.intid() == lr.intid() {
            if !lr.is_hardware() {
                write_list_register(i, current.repended().0);
            }
            return;
        }
    }
    let mut overflow = vcpu.overflow.lock();
    match free {
        Some(i) if overflow.is_empty() => write_list_register(i, lr.0),
        _ => {
            if overflow.push(lr).is_err() {
                log::error!("vGIC: CPU {} overflow queue full; interrupt {} lost", super::cpu::current_index(), lr.intid());
            }
            // Ask for the maintenance interrupt when the list runs dry.
            ICH_HCR_EL2.modify(ICH_HCR_EL2::UIE.val(1));
            refill(&mut overflow, count);
        }
    }
}

/// Moves queued interrupts into free list registers, oldest first.
fn refill(overflow: &mut Overflow, count: usize) {
    let empty = super::sysregs::ICH_ELRSR_EL2.get();
    for i in (0..count).filter(|i| empty & (1 << i) != 0) {
        match overflow.pop() {
            Some(lr) => write_list_register(i, lr.0),
            None => break,
        }
    }
    if overflow.is_empty() {
        ICH_HCR_EL2.modify(ICH_HCR_EL2::UIE.val(0));
    }
}

/// Makes virtual interrupt `intid` (an SGI or PPI) pending on the vCPU that
/// runs on physical CPU `cpu`. Callable from any CPU, in a trap handler or
/// an interrupt handler.
pub fn raise(cpu: usize, intid: u32) {
    if intid >= PRIVATE_COUNT || cpu >= MAX_CPUS {
        log::warn!("vGIC: cannot raise interrupt {intid} on CPU {cpu}");
        return;
    }
    VCPUS[cpu].raised.fetch_or(1 << intid, Ordering::AcqRel);
    if cpu == super::cpu::current_index() {
        take_raised();
    } else if let Some(mpidr) = super::cpu::mpidr_of(cpu) {
        gic::send_sgi(mpidr, KICK_SGI);
    }
}

/// Moves what was raised for this vCPU into its list registers, as far as
/// Dom0 has enabled those interrupts: like a real GIC, a disabled one stays
/// pending until it is enabled (Linux registers its event-channel handler
/// before enabling the event PPI, and must not see it earlier). Runs before
/// every return to Dom0.
pub fn take_raised() {
    let vcpu = this_vcpu();
    let raised = vcpu.raised.load(Ordering::Acquire);
    if raised == 0 {
        return;
    }
    let rd = vcpu.redistributor.load(Ordering::Acquire);
    if rd == 0 {
        return;
    }
    let mut take = raised & gic::private_enabled(rd);
    vcpu.raised.fetch_and(!take, Ordering::AcqRel);
    while take != 0 {
        let intid = take.trailing_zeros();
        take &= take - 1;
        inject(ListRegister::virtual_only(intid));
    }
}

/// A physical IRQ taken while Dom0 ran.
pub fn handle_irq() {
    let Some(gic) = gic::get() else { return };
    // Bounded: whatever is still pending re-enters at once after ERET.
    for _ in 0..16 {
        let intid = gic::acknowledge();
        if intid >= FIRST_SPECIAL {
            break;
        }
        gic::priority_drop(intid);
        if gic.filter.owned().contains(intid) {
            if intid == gic.maintenance {
                let vcpu = this_vcpu();
                refill(&mut vcpu.overflow.lock(), vcpu.list_registers.load(Ordering::Acquire));
            } else if intid == KICK_SGI {
                take_raised();
            } else {
                crate::console::interrupt();
            }
            gic::deactivate(intid);
        } else if intid < SGI_COUNT {
            // Dom0's own IPI, forwarded from another vCPU.
            gic::deactivate(intid);
            inject(ListRegister::virtual_only(intid));
        } else {
            inject(ListRegister::hardware(intid));
        }
    }
}

/// Emulates Dom0's access to the distributor or a redistributor at `ipa`
/// (1:1, so the same physical address). Returns false if `ipa` is not
/// the GIC's.
pub fn emulate_mmio(frame: &mut TrapFrame, ipa: u64, access: DataAccess) -> bool {
    let Some(gic) = gic::get() else { return false };
    let Some((kind, offset)) = gic.frame_of(ipa) else { return false };
    let register = usize::from(access.register);
    if access.write {
        let value = if register == 31 { 0 } else { access.stored(frame.regs[register]) };
        match gic.filter.write(kind, offset, access.width, value) {
            Write::Forward(v) => gic::write_register(ipa, access.width, v),
            Write::Merge { keep, value } => {
                let current = gic::read_register(ipa, access.width);
                gic::write_register(ipa, access.width, (current & keep) | value);
            }
            Write::Drop => log::debug!("d0: GIC write of {value:#x} to {ipa:#x} dropped"),
        }
    } else {
        let hardware = if crate::gic::filter::Filter::is_valid(kind, offset, access.width) {
            gic::read_register(ipa, access.width)
        } else {
            0
        };
        if register != 31 {
            frame.regs[register] = access.loaded(gic.filter.read(kind, offset, access.width, hardware));
        }
    }
    frame.elr += 4;
    true
}

/// ICC_SGI1R_EL1, ICC_ASGI1R_EL1, ICC_SGI0R_EL1 as (op0, op1, CRn, CRm, op2).
const SGI1R: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 5);
const ASGI1R: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 6);
const SGI0R: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 7);

/// Dom0 writing an SGI register (trapped while IMO is set). Dom0 vCPU n is
/// physical CPU n with the same MPIDR, so the value is forwarded as it is,
/// unless it names the hypervisor's kick SGI. Returns false for other
/// registers.
pub fn emulate_sgi_register(frame: &mut TrapFrame, access: SysRegAccess) -> bool {
    if ![SGI1R, ASGI1R, SGI0R].contains(&access.encoding) {
        return false;
    }
    if !access.read {
        let value = if access.register == 31 { 0 } else { frame.regs[usize::from(access.register)] };
        let intid = ((value >> 24) & 0xf) as u32;
        if intid == KICK_SGI || access.encoding != SGI1R {
            log::debug!("d0: SGI write {value:#x} ignored");
        } else {
            gic::write_sgi1r(value);
        }
    } else if access.register != 31 {
        // Write-only registers read as zero.
        frame.regs[usize::from(access.register)] = 0;
    }
    frame.elr += 4;
    true
}
