//! GIC virtualisation for Dom0, GICv3 or GICv2 (docs/boot-and-serving.md, "Serving Dom0"). Each vCPU
//! runs on one physical CPU for good, so that CPU's list registers belong
//! to it and are never switched. Physical interrupts of Dom0's are
//! acknowledged at EL2, their priority dropped, and handed over in a list
//! register with HW=1; Dom0's SGIs are forwarded to the physical CPU and
//! arrive there as purely virtual ones; the event-channel PPI is purely
//! virtual. When all list registers are busy, interrupts wait in the
//! vCPU's queue that the maintenance interrupt drains.
//!
//! Dom0's accesses to the distributor and redistributors are the emulated
//! MMIO regions of [`dom0_frames`]; its SGI register writes the handlers below
//! (GICv3's system registers; GICv2's GICD_SGIR, a distributor write).
//! A GICv2's virtual CPU interface is Dom0's CPU interface, in its stage 2.
//!
//! A DomU drives no physical GIC: it sees an emulated one
//! (`gic::emulated`, behind the regions of [`domu_frames`]) whose enables and priorities
//! decide what of its raised interrupts goes into the list registers, by
//! the same [`raise`] and [`take_raised`] Dom0's purely virtual ones take.
//! Its CPU takes the virtual timer's physical PPI at EL2 and hands it over
//! as a purely virtual interrupt; its SGIs go to its own vCPUs only.

mod dom0_frames;
mod domu_frames;

pub use dom0_frames::mmio_regions;
pub use domu_frames::domu_mmio_regions;

use super::cpu;
use super::gic::{self, Gic, KICK_SGI};
use crate::config::MAX_CPUS;
use crate::domain::Domain;
use crate::domain::mmio::Refused;
use crate::domain::vcpu::Vcpu;
use crate::gic::emulated::{self, EmulatedGic, Wake};
use crate::gic::list_register::ListRegister;
use crate::gic::overflow::Overflow;
use crate::gic::{FIRST_SPECIAL, PRIVATE_COUNT, SGI_COUNT};
use aarch64_cpu::registers::CNTV_CTL_EL0;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;
use tock_registers::interfaces::ReadWriteable;

/// A physical CPU's virtual interface, as the hardware fixes it.
struct CpuInterface {
    /// The number of list registers; 0 until this CPU's interface is up.
    list_registers: AtomicUsize,
    /// This CPU's redistributor, whose enable bits Dom0 sets (through the
    /// filter) for its private interrupts, the purely virtual ones too
    /// (0 on a GICv2, where they are the distributor's banked ones).
    redistributor: AtomicU64,
}

static INTERFACES: [CpuInterface; MAX_CPUS] =
    [const { CpuInterface { list_registers: AtomicUsize::new(0), redistributor: AtomicU64::new(0) } }; MAX_CPUS];

fn this_interface() -> &'static CpuInterface {
    &INTERFACES[cpu::current_index()]
}

/// Brings up this CPU's GIC interfaces; call on each CPU before it enters Dom0.
pub fn init_this_cpu() {
    let Some(gic) = gic::get() else { return };
    if let Some(found) = gic::init_this_cpu(gic, cpu::this_mpidr()) {
        let interface = this_interface();
        interface.redistributor.store(found.redistributor, Ordering::Release);
        interface.list_registers.store(found.list_registers, Ordering::Release);
        // A DomU's CPU: nobody else drives its redistributor, and its
        // virtual timer is taken here and handed over (`handle_irq`).
        if let (Some(_), Some(timer)) = (cpu::this_cpu().vcpu().and_then(emulated_gic_of), gic.virtual_timer) {
            gic.enable_private(found.redistributor, timer);
        }
    }
}

/// The emulated GIC of `vcpu`'s domain, and the domain: a DomU's.
fn emulated_gic_of(vcpu: &Vcpu) -> Option<(&'static Domain, &'static Mutex<EmulatedGic>)> {
    let domain = vcpu.domain()?;
    Some((domain, domain.emulated_gic.as_ref()?))
}

/// Has each vCPU of `wake` look at its raised interrupts: the one running
/// here before it returns to the guest, the others by a kick.
fn wake_vcpus(domain: &Domain, wake: Wake) {
    let mut mask = wake.0;
    while mask != 0 {
        let id = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        if let Some(vcpu) = domain.vcpus.get(id) {
            look_again(vcpu);
        }
    }
}

/// Has the physical CPU `vcpu` runs on move its raised interrupts into its
/// list registers: now if that is this CPU, else by the kick SGI.
fn look_again(vcpu: &Vcpu) {
    let target = vcpu.placement.cpu;
    if target == cpu::current_index() {
        take_raised();
    } else if let Some(gic) = gic::get() {
        gic.kick(target);
    }
}

/// Puts `lr` in a free list register of this CPU, merges it with the same
/// interrupt already there, or queues it for `vcpu`, the vCPU running here.
fn inject(gic: &Gic, vcpu: &Vcpu, lr: ListRegister) {
    let count = this_interface().list_registers.load(Ordering::Acquire);
    if count == 0 {
        return;
    }
    let empty = gic.empty_list_registers();
    let mut free = None;
    for i in 0..count {
        if empty & (1 << i) != 0 {
            free.get_or_insert(i);
            continue;
        }
        let current = gic.read_list_register(i);
        if current.intid() == lr.intid() {
            if !lr.is_hardware() {
                // Pending again; and if this raise is a level line's, its
                // end must be seen too (the one there may be an edge's).
                let merged = current.repended();
                let merged = if lr.asks_eoi_maintenance() { merged.with_eoi_maintenance() } else { merged };
                gic.write_list_register(i, merged);
            }
            return;
        }
    }
    let mut overflow = vcpu.interrupts.overflow.lock();
    match free {
        Some(i) if overflow.is_empty() => gic.write_list_register(i, lr),
        _ => {
            if overflow.push(lr).is_err() {
                log::error!("vGIC: vCPU {} overflow queue full; interrupt {} lost", vcpu.id, lr.intid());
            }
            // Ask for the maintenance interrupt when the list runs dry.
            gic.set_underflow_interrupt(true);
            refill(gic, &mut overflow, count);
        }
    }
}

/// Moves queued interrupts into free list registers, oldest first.
fn refill(gic: &Gic, overflow: &mut Overflow, count: usize) {
    let empty = gic.empty_list_registers();
    for i in (0..count).filter(|i| empty & (1 << i) != 0) {
        match overflow.pop() {
            Some(lr) => gic.write_list_register(i, lr),
            None => break,
        }
    }
    if overflow.is_empty() {
        gic.set_underflow_interrupt(false);
    }
}

/// Makes `vcpu` leave its guest at once, whatever the guest has enabled:
/// its physical CPU takes the hypervisor's kick SGI (this CPU: at its next
/// return to the guest, which the caller is about to make). For ending a
/// domain, whose other vCPUs must stop even with every interrupt of
/// theirs disabled.
pub fn force_exit(vcpu: &Vcpu) {
    let target = vcpu.placement.cpu;
    if target != cpu::current_index()
        && let Some(gic) = gic::get()
    {
        gic.kick(target);
    }
}

/// Makes virtual interrupt `intid` pending on `vcpu`, and has the
/// physical CPU it runs on look at it: an SGI or PPI for Dom0; for a DomU
/// also an SPI of its emulated GIC, which goes where that routes it.
/// Callable from any CPU, in a trap handler or an interrupt handler.
pub fn raise(vcpu: &Vcpu, intid: u32) {
    if let Some((domain, emulated)) = emulated_gic_of(vcpu) {
        let wake = emulated.lock().raise(vcpu.id, intid, domain.vcpus.as_slice());
        return wake_vcpus(domain, wake);
    }
    if intid >= PRIVATE_COUNT {
        log::warn!("vGIC: cannot raise interrupt {intid} on vCPU {}", vcpu.id);
        return;
    }
    vcpu.interrupts.raised.fetch_or(1 << intid, Ordering::AcqRel);
    look_again(vcpu);
}

/// Moves what was raised for this vCPU into its list registers, as far as
/// its guest has enabled those interrupts: like a real GIC, a disabled one
/// stays pending until it is enabled (Linux registers its event-channel
/// handler before enabling the event PPI, and must not see it earlier).
/// Dom0's enables are the physical redistributor's (it drives it through
/// the filter); a DomU's are its emulated GIC's, which gives the priority
/// too. Runs before every return to a guest.
pub fn take_raised() {
    let Some(vcpu) = cpu::this_cpu().vcpu() else { return };
    let raised = vcpu.interrupts.raised.load(Ordering::Acquire);
    if raised == 0 {
        return;
    }
    let Some(gic) = gic::get() else { return };
    let interface = this_interface();
    let rd = interface.redistributor.load(Ordering::Acquire);
    if interface.list_registers.load(Ordering::Acquire) == 0 {
        return;
    }
    let emulated = emulated_gic_of(vcpu).map(|(_, emulated)| emulated.lock());
    let deliverable = match &emulated {
        Some(emulated) => emulated.deliverable(vcpu.id, raised),
        None => raised & u64::from(gic.private_enabled(rd)),
    };
    // Only what is still raised: another vCPU may have cleared it (ICPENDR).
    let mut take = vcpu.interrupts.raised.fetch_and(!deliverable, Ordering::AcqRel) & deliverable;
    while take != 0 {
        let intid = take.trailing_zeros();
        take &= take - 1;
        let lr = ListRegister::virtual_only(intid);
        let lr = match &emulated {
            // A DomU's priority, and a level line's end to be seen.
            Some(emulated) => {
                let lr = lr.with_priority(emulated.priority(vcpu.id, intid));
                if emulated.line_is_high(intid) { lr.with_eoi_maintenance() } else { lr }
            }
            None => lr,
        };
        inject(gic, vcpu, lr);
    }
}

/// A DomU's level-triggered device (its vPL011) set its line into SPI
/// `intid` high or low. Level semantics come from two places: the
/// emulated GIC raises the SPI when the line rises, and the list register
/// it is delivered in asks for an EOI maintenance interrupt
/// ([`resample_ended_levels`]), after which a line still high raises it
/// again. That is the one moment a real GIC would look at the line, and
/// it needs no device to be asked: re-raising on each device update
/// instead (as Xen's vPL011 does) misses a guest that ends the interrupt
/// without touching the device, and raising on every update while high
/// delivers it again after the guest has already drained the device.
/// Callers hold their device's lock, so updates reach the GIC in order.
pub fn set_line(domain: &Domain, intid: u32, high: bool) {
    let Some(emulated) = domain.emulated_gic.as_ref() else { return };
    let wake = emulated.lock().set_line(intid, high, domain.vcpus.as_slice());
    wake_vcpus(domain, wake);
}

/// The maintenance interrupt's EOI half: the list registers whose
/// interrupt the guest ended and that asked to be told are emptied, and a
/// level-triggered SPI whose line is still high is raised again.
fn resample_ended_levels(gic: &Gic, vcpu: &Vcpu) {
    let count = this_interface().list_registers.load(Ordering::Acquire);
    let mut ended = gic.ended_list_registers() & u64::MAX.checked_shr(64 - count as u32).unwrap_or(0);
    if ended == 0 {
        return;
    }
    let emulated = emulated_gic_of(vcpu);
    while ended != 0 {
        let i = ended.trailing_zeros() as usize;
        ended &= ended - 1;
        let lr = gic.read_list_register(i);
        gic.write_list_register(i, ListRegister::EMPTY);
        if let Some((domain, emulated)) = emulated {
            let wake = {
                let mut emulated = emulated.lock();
                if !emulated.line_is_high(lr.intid()) {
                    continue;
                }
                emulated.raise(vcpu.id, lr.intid(), domain.vcpus.as_slice())
            };
            wake_vcpus(domain, wake);
        }
    }
}

/// A physical IRQ taken while a guest ran: the guest's go into its list
/// registers; those of the hypervisor's own devices to `own_device`.
pub fn handle_irq(own_device: impl Fn(u32)) {
    let Some(gic) = gic::get() else { return };
    let vcpu = cpu::this_vcpu();
    // Bounded: whatever is still pending re-enters at once after ERET.
    for _ in 0..16 {
        let (intid, acknowledged) = gic.acknowledge();
        if intid >= FIRST_SPECIAL {
            break;
        }
        gic.priority_drop(acknowledged);
        if gic.filter.owned().contains(intid) {
            if intid == gic.maintenance {
                resample_ended_levels(gic, vcpu);
                let count = this_interface().list_registers.load(Ordering::Acquire);
                refill(gic, &mut vcpu.interrupts.overflow.lock(), count);
            } else if intid == KICK_SGI {
                take_raised();
            } else {
                own_device(intid);
            }
            gic.deactivate(acknowledged);
        } else if emulated_gic_of(vcpu).is_some() {
            // A DomU's CPU: its virtual timer, handed over as on a GICv2
            // below, through the emulated GIC (whose enable decides).
            // Nothing else physical is the DomU's.
            if gic.virtual_timer == Some(intid) {
                CNTV_CTL_EL0.modify(CNTV_CTL_EL0::IMASK::SET);
                gic.deactivate(acknowledged);
                raise(vcpu, emulated::VIRTUAL_TIMER);
            } else {
                gic.deactivate(acknowledged);
                log::debug!("vGIC: physical interrupt {intid} on a DomU's CPU ignored");
            }
        } else if intid < SGI_COUNT {
            // Dom0's own IPI, forwarded from another vCPU.
            gic.deactivate(acknowledged);
            inject(gic, vcpu, ListRegister::virtual_only(intid));
        } else if gic.v2.as_ref().is_some_and(|v2| v2.virtual_timer == Some(intid)) {
            // On a GICv2, as in Xen 4.17: the virtual timer masked (Linux's
            // handler unmasks it as it sets the next deadline), the physical
            // interrupt deactivated here, a purely virtual one handed over.
            // With HW=1, QEMU's GICv2 does not look at the physical CPU
            // interface again when Dom0's EOI deactivates the interrupt: a
            // timer already due again then waits for some other interrupt,
            // forever on one idle CPU.
            CNTV_CTL_EL0.modify(CNTV_CTL_EL0::IMASK::SET);
            gic.deactivate(acknowledged);
            inject(gic, vcpu, ListRegister::virtual_only(intid));
        } else {
            inject(gic, vcpu, ListRegister::hardware(intid));
        }
    }
}

/// ICC_SGI1R_EL1 written. Dom0 vCPU n is physical CPU n with the same
/// MPIDR, so the value is forwarded, unless it names the hypervisor's kick
/// SGI, with only the targets that are Dom0's CPUs, "all but self" as a
/// list of Dom0's others (`gic::partition`). A DomU's names its own vCPUs by their virtual
/// MPIDRs and is raised on them as virtual SGIs: no physical SGI but the
/// kick, and only to the CPUs its vCPUs run on.
pub fn write_sgi1r(vcpu: &Vcpu, value: u64) -> Result<(), Refused> {
    let intid = ((value >> 24) & 0xf) as u32;
    if let Some((domain, emulated)) = emulated_gic_of(vcpu) {
        let wake = {
            let mut emulated = emulated.lock();
            let targets = emulated.sgi1r_targets(vcpu.id, value);
            emulated.send_sgi(targets, intid, domain.vcpus.as_slice())
        };
        wake_vcpus(domain, wake);
        return Ok(());
    }
    match gic::get() {
        Some(gic) if intid != KICK_SGI && gic.v2.is_none() => {
            for sgi in gic.dom0.sgi1r(value, vcpu.placement.mpidr) {
                gic::write_sgi1r(sgi);
            }
        }
        _ => ignore_sgi_write(value),
    }
    Ok(())
}

/// ICC_ASGI1R_EL1 or ICC_SGI0R_EL1 written: group 0 and the other
/// security state are not Dom0's to signal.
pub fn write_other_sgi_register(_: &Vcpu, value: u64) -> Result<(), Refused> {
    ignore_sgi_write(value);
    Ok(())
}

fn ignore_sgi_write(value: u64) {
    log::debug!("d{}: SGI write {value:#x} ignored", cpu::this_cpu().domain().map_or(0, |d| d.id.0));
}

/// The SGI registers are write-only: they read as zero.
pub fn read_sgi_register(_: &Vcpu) -> Result<u64, Refused> {
    Ok(0)
}
