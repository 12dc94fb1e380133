//! GICv3 virtualisation for Dom0 (docs/boot-and-serving.md, "Serving Dom0"). Each vCPU
//! runs on one physical CPU for good, so that CPU's list registers belong
//! to it and are never switched. Physical interrupts of Dom0's are
//! acknowledged at EL2, their priority dropped, and handed over in a list
//! register with HW=1; Dom0's SGIs are forwarded to the physical CPU and
//! arrive there as purely virtual ones; the event-channel PPI is purely
//! virtual. When all list registers are busy, interrupts wait in the
//! vCPU's queue that the maintenance interrupt drains.
//!
//! Dom0's accesses to the distributor and redistributors are the emulated
//! MMIO regions [`GicFrames`]; its SGI register writes the handlers below.

use super::cpu;
use super::gic::{self, Gic, KICK_SGI};
use crate::config::MAX_CPUS;
use crate::domain::mmio::{MmioDevice, MmioRegions, Refused};
use crate::domain::vcpu::Vcpu;
use crate::gic::filter::{Filter, Write};
use crate::gic::list_register::ListRegister;
use crate::gic::overflow::Overflow;
use crate::gic::{FIRST_SPECIAL, PRIVATE_COUNT, SGI_COUNT};
use aarch64_cpu::registers::*;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tock_registers::interfaces::{ReadWriteable, Readable};

/// A physical CPU's virtual interface, as the hardware fixes it.
struct CpuInterface {
    /// The number of list registers; 0 until this CPU's interface is up.
    list_registers: AtomicUsize,
    /// This CPU's redistributor, whose enable bits Dom0 sets (through the
    /// filter) for its private interrupts, the purely virtual ones too.
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
    }
}

/// Puts `lr` in a free list register of this CPU, merges it with the same
/// interrupt already there, or queues it for `vcpu`, the vCPU running here.
fn inject(vcpu: &Vcpu, lr: ListRegister) {
    let count = this_interface().list_registers.load(Ordering::Acquire);
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
        let current = ListRegister(gic::read_list_register(i));
        if current.intid() == lr.intid() {
            if !lr.is_hardware() {
                gic::write_list_register(i, current.repended().0);
            }
            return;
        }
    }
    let mut overflow = vcpu.interrupts.overflow.lock();
    match free {
        Some(i) if overflow.is_empty() => gic::write_list_register(i, lr.0),
        _ => {
            if overflow.push(lr).is_err() {
                log::error!("vGIC: vCPU {} overflow queue full; interrupt {} lost", vcpu.id, lr.intid());
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
            Some(lr) => gic::write_list_register(i, lr.0),
            None => break,
        }
    }
    if overflow.is_empty() {
        ICH_HCR_EL2.modify(ICH_HCR_EL2::UIE.val(0));
    }
}

/// Makes virtual interrupt `intid` (an SGI or PPI) pending on `vcpu`, and
/// has the physical CPU it runs on look at it. Callable from any CPU, in a
/// trap handler or an interrupt handler.
pub fn raise(vcpu: &Vcpu, intid: u32) {
    if intid >= PRIVATE_COUNT {
        log::warn!("vGIC: cannot raise interrupt {intid} on vCPU {}", vcpu.id);
        return;
    }
    vcpu.interrupts.raised.fetch_or(1 << intid, Ordering::AcqRel);
    let target = vcpu.placement.cpu;
    if target == cpu::current_index() {
        take_raised();
    } else if let Some(mpidr) = cpu::mpidr_of(target) {
        gic::send_sgi(mpidr, KICK_SGI);
    }
}

/// Moves what was raised for this vCPU into its list registers, as far as
/// Dom0 has enabled those interrupts: like a real GIC, a disabled one stays
/// pending until it is enabled (Linux registers its event-channel handler
/// before enabling the event PPI, and must not see it earlier). Runs before
/// every return to Dom0.
pub fn take_raised() {
    let Some(vcpu) = cpu::this_cpu().vcpu() else { return };
    let raised = vcpu.interrupts.raised.load(Ordering::Acquire);
    if raised == 0 {
        return;
    }
    let rd = this_interface().redistributor.load(Ordering::Acquire);
    if rd == 0 {
        return;
    }
    let mut take = raised & gic::private_enabled(rd);
    vcpu.interrupts.raised.fetch_and(!take, Ordering::AcqRel);
    while take != 0 {
        let intid = take.trailing_zeros();
        take &= take - 1;
        inject(vcpu, ListRegister::virtual_only(intid));
    }
}

/// A physical IRQ taken while a guest ran: the guest's go into its list
/// registers; those of the hypervisor's own devices to `own_device`.
pub fn handle_irq(own_device: impl Fn(u32)) {
    let Some(gic) = gic::get() else { return };
    let vcpu = cpu::this_vcpu();
    // Bounded: whatever is still pending re-enters at once after ERET.
    for _ in 0..16 {
        let intid = gic::acknowledge();
        if intid >= FIRST_SPECIAL {
            break;
        }
        gic::priority_drop(intid);
        if gic.filter.owned().contains(intid) {
            if intid == gic.maintenance {
                refill(&mut vcpu.interrupts.overflow.lock(), this_interface().list_registers.load(Ordering::Acquire));
            } else if intid == KICK_SGI {
                take_raised();
            } else {
                own_device(intid);
            }
            gic::deactivate(intid);
        } else if intid < SGI_COUNT {
            // Dom0's own IPI, forwarded from another vCPU.
            gic::deactivate(intid);
            inject(vcpu, ListRegister::virtual_only(intid));
        } else {
            inject(vcpu, ListRegister::hardware(intid));
        }
    }
}

/// The distributor or a redistributor range as Dom0 sees it: the real
/// registers at the same address (Dom0 is 1:1), through the filter. Only
/// the widths the architecture defines reach the hardware.
struct GicFrames {
    gic: &'static Gic,
    base: u64,
}

impl MmioDevice for GicFrames {
    fn read(&self, _: &Vcpu, offset: u64, width: u8) -> Result<u64, Refused> {
        let address = self.base + offset;
        let (kind, offset) = self.gic.frame_of(address).ok_or(Refused)?;
        let hardware = if Filter::is_valid(kind, offset, width) { gic::read_register(address, width) } else { 0 };
        Ok(self.gic.filter.read(kind, offset, width, hardware))
    }

    fn write(&self, _: &Vcpu, offset: u64, width: u8, value: u64) -> Result<(), Refused> {
        let address = self.base + offset;
        let (kind, offset) = self.gic.frame_of(address).ok_or(Refused)?;
        match self.gic.filter.write(kind, offset, width, value) {
            Write::Forward(v) => gic::write_register(address, width, v),
            Write::Merge { keep, value } => {
                let current = gic::read_register(address, width);
                gic::write_register(address, width, (current & keep) | value);
            }
            Write::Drop => log::debug!(
                "d{}: GIC write of {value:#x} to {address:#x} dropped",
                cpu::this_cpu().domain().map_or(0, |d| d.id.0)
            ),
        }
        Ok(())
    }
}

/// The GIC's emulated regions for a 1:1 domain: the distributor and the
/// redistributors that exist.
pub fn mmio_regions(gic: &'static Gic) -> MmioRegions {
    let mut regions = MmioRegions::new();
    for range in core::iter::once(gic.distributor).chain(gic.redistributors.iter().copied()) {
        if range.size() > 0 && regions.add(range, alloc::boxed::Box::new(GicFrames { gic, base: range.start })).is_err()
        {
            log::error!("GIC: {range} overlaps another GIC range; not emulated");
        }
    }
    regions
}

/// ICC_SGI1R_EL1 written. Dom0 vCPU n is physical CPU n with the same
/// MPIDR, so the value is forwarded as it is, unless it names the
/// hypervisor's kick SGI.
pub fn write_sgi1r(_: &Vcpu, value: u64) -> Result<(), Refused> {
    let intid = ((value >> 24) & 0xf) as u32;
    if intid == KICK_SGI {
        ignore_sgi_write(value);
    } else {
        gic::write_sgi1r(value);
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
