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
//! MMIO regions [`GicFrames`]; its SGI register writes the handlers below
//! (GICv3's system registers; GICv2's GICD_SGIR, a distributor write).
//! A GICv2's virtual CPU interface is Dom0's CPU interface, in its stage 2.
//!
//! A DomU drives no physical GIC: it sees an emulated one
//! (`gic::emulated`, [`domu_mmio_regions`]) whose enables and priorities
//! decide what of its raised interrupts goes into the list registers, by
//! the same [`raise`] and [`take_raised`] Dom0's purely virtual ones take.
//! Its CPU takes the virtual timer's physical PPI at EL2 and hands it over
//! as a purely virtual interrupt; its SGIs go to its own vCPUs only.

use super::cpu;
use super::gic::{self, Gic, KICK_SGI};
use crate::config::MAX_CPUS;
use crate::domain::Domain;
use crate::domain::mmio::{MmioDevice, MmioRegions, Refused};
use crate::domain::vcpu::Vcpu;
use crate::gic::emulated::{self, EmulatedGic, Wake};
use crate::gic::filter::Write;
use crate::gic::list_register::ListRegister;
use crate::gic::overflow::Overflow;
use crate::gic::partition::{Located, RegionView, view_typer};
use crate::gic::registers::{gicd_v2, gicr};
use crate::gic::targets::TargetMap;
use crate::gic::{FIRST_SPECIAL, PRIVATE_COUNT, SGI_COUNT};
use crate::mm::range::GuestRange;
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
                gic.write_list_register(i, current.repended());
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
    let Some((_, emulated)) = emulated_gic_of(vcpu) else {
        let take = raised & u64::from(gic.private_enabled(rd));
        let mut take = vcpu.interrupts.raised.fetch_and(!take, Ordering::AcqRel) & take;
        while take != 0 {
            let intid = take.trailing_zeros();
            take &= take - 1;
            inject(gic, vcpu, ListRegister::virtual_only(intid));
        }
        return;
    };
    let emulated = emulated.lock();
    let take = emulated.deliverable(vcpu.id, raised);
    // Only what is still raised: another vCPU may have cleared it (ICPENDR).
    let mut take = vcpu.interrupts.raised.fetch_and(!take, Ordering::AcqRel) & take;
    while take != 0 {
        let intid = take.trailing_zeros();
        take &= take - 1;
        let priority = emulated.priority(vcpu.id, intid);
        let mut lr = ListRegister::virtual_only(intid).with_priority(priority);
        if emulated.line_is_high(intid) {
            lr = lr.with_eoi_maintenance();
        }
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
    let mut ended = gic.ended_list_registers() & ((1u64 << count) - 1);
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
        } else if let Some((_, _)) = emulated_gic_of(vcpu) {
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

/// The distributor or a redistributor range as Dom0 sees it: the real
/// registers at the same address (Dom0 is 1:1), through the filter; of
/// the redistributors only its own CPUs' (`view`, `gic::partition`). Only
/// the widths the architecture defines reach the hardware.
struct GicFrames {
    gic: &'static Gic,
    base: u64,
    /// A redistributor region's view; `None` for the distributor.
    view: Option<RegionView>,
}

/// Where a Dom0 access goes on the hardware.
struct Target {
    address: u64,
    frame: crate::gic::filter::Frame,
    /// The offset within that frame.
    offset: u64,
    /// In a redistributor: whether it is the last of Dom0's in its region.
    last: bool,
}

impl GicFrames {
    /// The hardware an access at `offset` reaches: `None` where the view
    /// reads as zero (a region with none of Dom0's redistributors),
    /// refused (an abort) past Dom0's redistributors.
    fn locate(&self, offset: u64) -> Result<Option<Target>, Refused> {
        let (address, last) = match &self.view {
            None => (self.base + offset, false),
            Some(view) => match view.locate(offset) {
                Located::Frame { address, last, .. } => (address, last),
                Located::Empty => return Ok(None),
                Located::Absent => return Err(Refused),
            },
        };
        let (frame, offset) = self.gic.frame_of(address).ok_or(Refused)?;
        Ok(Some(Target { address, frame, offset, last }))
    }
}

impl MmioDevice for GicFrames {
    fn read(&self, vcpu: &Vcpu, offset: u64, width: u8) -> Result<u64, Refused> {
        let Some(Target { address, frame: kind, offset, last }) = self.locate(offset)? else { return Ok(0) };
        let valid = self.gic.filter.is_valid(kind, offset, width);
        let mut hardware =
            if valid && !is_write_only(self.gic, kind, offset) { gic::read_register(address, width) } else { 0 };
        if let Some(first_intid) = v2_targets(self.gic, kind, offset) {
            hardware = target_map(vcpu).word_to_virtual(hardware, width, first_intid, vcpu.id);
        }
        if kind == crate::gic::filter::Frame::RedistributorControl && offset == gicr::TYPER {
            hardware = view_typer(hardware, last);
        }
        Ok(self.gic.filter.read(kind, offset, width, hardware))
    }

    fn write(&self, vcpu: &Vcpu, offset: u64, width: u8, value: u64) -> Result<(), Refused> {
        let Some(Target { address, frame: kind, offset, .. }) = self.locate(offset)? else { return Ok(()) };
        let value = match v2_targets(self.gic, kind, offset) {
            Some(_) => target_map(vcpu).word_to_physical(value, width),
            None => value,
        };
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
            Write::Sgi(value) => send_sgi_v2(self.gic, vcpu, value),
            Write::Route { value, mask } => {
                // The whole routing register, kept on Dom0's CPUs.
                let register = address & !7;
                let wanted = (gic::read_register(register, 8) & !mask) | value;
                gic::write_register(register, 8, self.gic.dom0.route(wanted, vcpu.placement.mpidr));
            }
        }
        Ok(())
    }
}

/// GICD_SGIR reads as zero: it is write-only, and not read on the hardware.
fn is_write_only(gic: &Gic, frame: crate::gic::filter::Frame, offset: u64) -> bool {
    gic.v2.is_some() && frame == crate::gic::filter::Frame::Distributor && offset == gicd_v2::SGIR
}

/// The offset's first INTID if it is in a GICv2's GICD_ITARGETSR, whose
/// bytes are CPU interface masks, Dom0's or the hardware's.
fn v2_targets(gic: &Gic, frame: crate::gic::filter::Frame, offset: u64) -> Option<u64> {
    use crate::gic::registers::family::ITARGETSR;
    (gic.v2.is_some()
        && frame == crate::gic::filter::Frame::Distributor
        && (ITARGETSR..ITARGETSR + 0x400).contains(&offset))
    .then(|| offset - ITARGETSR)
}

/// Dom0's CPU interface numbers (vCPU n, bit n) against the hardware's,
/// through the placement of `vcpu`'s domain's vCPUs.
fn target_map(vcpu: &Vcpu) -> TargetMap {
    let mut map = TargetMap::default();
    for v in vcpu.domain().into_iter().flat_map(|d| d.vcpus.iter()).take(map.physical.len()) {
        map.physical[v.id] = gic::cpu_interface_mask(v.placement.cpu);
    }
    map
}

/// A GICv2 SGI Dom0 wrote to GICD_SGIR (not the kick SGI: the filter
/// dropped that), sent to the CPUs its vCPUs run on
/// ([`TargetMap::physical_sgir`]).
fn send_sgi_v2(gic: &Gic, vcpu: &Vcpu, value: u32) {
    if let Some(physical) = target_map(vcpu).physical_sgir(value, vcpu.id) {
        gic.write_sgir(physical);
    }
}

/// The GIC's emulated regions for Dom0, a 1:1 domain (it sees the GIC at
/// the host's addresses): the distributor and the redistributors that
/// exist (a GICv2 has none), each region showing only Dom0's own.
pub fn mmio_regions(gic: &'static Gic) -> MmioRegions {
    let mut regions = MmioRegions::new();
    let distributor = (gic.distributor, None);
    let redistributors = gic.redistributors.iter().map(|&range| (range, Some(gic.dom0_view(range))));
    for (range, view) in core::iter::once(distributor).chain(redistributors) {
        let seen_at = GuestRange::identity_of(range);
        if let Some(view) = &view {
            log::info!("GIC: Dom0 sees {} of the redistributors at {range}", view.len());
        }
        if range.size() > 0
            && regions.add(seen_at, alloc::boxed::Box::new(GicFrames { gic, base: range.start, view })).is_err()
        {
            log::error!("GIC: {range} overlaps another GIC range; not emulated");
        }
    }
    regions
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

/// A DomU's emulated distributor (`gic::emulated`), at Xen's guest address.
struct EmulatedDistributor;

/// A DomU's emulated redistributors (GICv3), one per vCPU, from Xen's
/// GUEST_GICV3_GICR0_BASE.
struct EmulatedRedistributors;

impl MmioDevice for EmulatedDistributor {
    fn read(&self, vcpu: &Vcpu, offset: u64, width: u8) -> Result<u64, Refused> {
        let (domain, emulated) = emulated_gic_of(vcpu).ok_or(Refused)?;
        Ok(emulated.lock().read_distributor(vcpu.id, offset, width, domain.vcpus.as_slice()))
    }

    fn write(&self, vcpu: &Vcpu, offset: u64, width: u8, value: u64) -> Result<(), Refused> {
        let (domain, emulated) = emulated_gic_of(vcpu).ok_or(Refused)?;
        let wake = emulated.lock().write_distributor(vcpu.id, offset, width, value, domain.vcpus.as_slice());
        wake_vcpus(domain, wake);
        Ok(())
    }
}

impl MmioDevice for EmulatedRedistributors {
    fn read(&self, vcpu: &Vcpu, offset: u64, width: u8) -> Result<u64, Refused> {
        let (domain, emulated) = emulated_gic_of(vcpu).ok_or(Refused)?;
        Ok(emulated.lock().read_redistributor(offset, width, domain.vcpus.as_slice()))
    }

    fn write(&self, vcpu: &Vcpu, offset: u64, width: u8, value: u64) -> Result<(), Refused> {
        let (domain, emulated) = emulated_gic_of(vcpu).ok_or(Refused)?;
        let wake = emulated.lock().write_redistributor(offset, width, value, domain.vcpus.as_slice());
        wake_vcpus(domain, wake);
        Ok(())
    }
}

/// A DomU's emulated GIC regions: the distributor at `distributor` and,
/// on GICv3, the redistributors at `redistributors` (its size from the
/// emulated GIC's vCPU count). A GICv2's CPU interface is the host's
/// virtual one, in the DomU's stage 2, not emulated.
pub fn domu_mmio_regions(emulated: &EmulatedGic, distributor: u64, redistributors: u64) -> MmioRegions {
    let mut regions = MmioRegions::new();
    let gicd = GuestRange::new(distributor, distributor + emulated.version().distributor_size());
    if regions.add(gicd, alloc::boxed::Box::new(EmulatedDistributor)).is_err() {
        log::error!("vGIC: the emulated distributor at {gicd} could not be added");
    }
    if emulated.version() == emulated::Version::V3 {
        let gicr = GuestRange::new(redistributors, redistributors + emulated.redistributors_size());
        if regions.add(gicr, alloc::boxed::Box::new(EmulatedRedistributors)).is_err() {
            log::error!("vGIC: the emulated redistributors at {gicr} could not be added");
        }
    }
    regions
}
