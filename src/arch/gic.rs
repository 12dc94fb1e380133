//! The physical GIC, as the hypervisor drives it: the distributor and
//! this CPU's redistributor set up for the hypervisor's own interrupts, the
//! CPU interface with split priority drop and deactivation (EOImode 1), so
//! a physical interrupt handed to Dom0 stays active until Dom0's virtual
//! EOI deactivates it (list registers with HW=1).
//!
//! GICv3 through its system registers; GICv2 through its memory-mapped
//! CPU interface (GICC) and virtual interface control (GICH), both banked
//! per CPU. The callers see one interface (acknowledge, priority drop,
//! deactivate, kick a CPU, the list registers as [`ListRegister`]s).

use super::sysregs::{
    ICC_BPR1_EL1, ICC_CTLR_EL1, ICC_DIR_EL1, ICC_EOIR1_EL1, ICC_IAR1_EL1, ICC_IGRPEN1_EL1, ICC_PMR_EL1, ICC_SGI1R_EL1,
};
use crate::dt::host::{self, GicVersion};
use crate::gic::filter::{Filter, Frame};
use crate::gic::list_register::{Encoding, ListRegister};
use crate::gic::partition::{Dom0Cpus, RegionView};
use crate::gic::registers::{FRAME_SIZE, family, gicc, gicd, gicd_v2, gich, gicr};
use crate::gic::{IntidSet, PRIVATE_COUNT};
use crate::mm::range::PhysRange;
use aarch64_cpu::registers::*;
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicU8, Ordering};
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};

/// The SGI the hypervisor sends to make another CPU look at interrupts
/// raised for its vCPU. Linux uses SGIs 0-7 for its IPIs.
pub const KICK_SGI: u32 = 15;
/// Priority of the hypervisor's own interrupts (taken at EL2, where
/// interrupts are masked anyway, so only relative order matters).
const HYPERVISOR_PRIORITY: u8 = 0x80;
/// Priority mask: let everything through.
const PRIORITY_MASK_OPEN: u64 = 0xff;
/// ICC_CTLR_EL1.EOImode.
const EOI_MODE_SPLIT: u64 = 1 << 1;

/// GICv2 allows eight CPU interfaces.
pub const MAX_GICV2_CPUS: usize = 8;

/// A GICv2's CPU-side frames.
pub struct V2Interfaces {
    /// The physical CPU interface (GICC), the hypervisor's: where Dom0's
    /// tree says the CPU interface is.
    pub cpu: PhysRange,
    /// The virtual interface control (GICH), the hypervisor's.
    pub hypervisor: PhysRange,
    /// The virtual CPU interface (GICV), Dom0's CPU interface: mapped at
    /// `cpu`'s address, this many bytes of it.
    pub virtual_cpu: PhysRange,
    /// The virtual timer's interrupt, handed to Dom0 as a purely virtual
    /// one (see `vgic::handle_irq`).
    pub virtual_timer: Option<u32>,
}

pub struct Gic {
    pub version: GicVersion,
    pub distributor: PhysRange,
    pub redistributors: ArrayVec<PhysRange, { host::MAX_REDIST_REGIONS }>,
    /// Bytes from one redistributor to the next.
    redistributor_stride: u64,
    /// GICv2's CPU interfaces; `None` on a GICv3.
    pub v2: Option<V2Interfaces>,
    pub maintenance: u32,
    pub filter: Filter,
    /// The host's virtual timer interrupt (the tree's), which a DomU's
    /// CPU takes at EL2 and hands over as the DomU's virtual timer.
    pub virtual_timer: Option<u32>,
    /// The CPUs Dom0 runs on: the only ones its SPI routes and SGIs reach.
    pub dom0: Dom0Cpus,
}

/// Each CPU's GICv2 CPU interface, as a target-list bit (read from its
/// banked GICD_ITARGETSR0-7 when it comes up, as Linux finds it); 0 for a
/// CPU not up yet.
static CPU_INTERFACE_MASKS: [AtomicU8; MAX_GICV2_CPUS] = [const { AtomicU8::new(0) }; MAX_GICV2_CPUS];

/// CPU `index`'s GICv2 CPU interface bit; 0 if it is not up.
pub fn cpu_interface_mask(index: usize) -> u8 {
    CPU_INTERFACE_MASKS.get(index).map_or(0, |m| m.load(Ordering::Acquire))
}

static GIC: spin::Once<Gic> = spin::Once::new();

/// The GIC, once `init` has run.
pub fn get() -> Option<&'static Gic> {
    GIC.get()
}

/// Why the GIC cannot be virtualised.
#[derive(Debug)]
pub enum Unsupported {
    NoMaintenanceInterrupt,
    NoRedistributors,
    /// A GICv2 without its CPU, virtual control or virtual CPU interface
    /// in `reg`, or with one smaller than 8 KiB.
    NoV2Interfaces,
    /// A GICv2 has eight CPU interfaces; the tree lists this many CPUs.
    TooManyCpusForV2(usize),
}

impl core::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoMaintenanceInterrupt => f.write_str("the GIC node names no maintenance interrupt"),
            Self::NoRedistributors => f.write_str("the GIC node lists no redistributors"),
            Self::NoV2Interfaces => f.write_str(
                "the GICv2 node's reg lacks GICC, GICH or GICV (four regions, CPU interfaces of 8 KiB or more)",
            ),
            Self::TooManyCpusForV2(n) => {
                write!(f, "GICv2 serves at most {MAX_GICV2_CPUS} CPUs and the tree lists {n}; boot with fewer CPUs")
            }
        }
    }
}

fn read32(address: u64) -> u32 {
    // SAFETY: callers pass addresses inside the GIC's register frames,
    // which are mapped as Device memory at EL2 for the hypervisor's lifetime.
    unsafe { core::ptr::read_volatile(address as *const u32) }
}

fn write32(address: u64, value: u32) {
    // SAFETY: as in `read32`.
    unsafe { core::ptr::write_volatile(address as *mut u32, value) }
}

fn read64(address: u64) -> u64 {
    // SAFETY: as in `read32`.
    unsafe { core::ptr::read_volatile(address as *const u64) }
}

/// Reads `width` bytes of a GIC register at `address` (aligned).
pub fn read_register(address: u64, width: u8) -> u64 {
    // SAFETY: as in `read32`; the caller checked the width and alignment.
    unsafe {
        match width {
            1 => u64::from(core::ptr::read_volatile(address as *const u8)),
            2 => u64::from(core::ptr::read_volatile(address as *const u16)),
            4 => u64::from(core::ptr::read_volatile(address as *const u32)),
            _ => core::ptr::read_volatile(address as *const u64),
        }
    }
}

/// Writes `width` bytes of a GIC register at `address` (aligned).
pub fn write_register(address: u64, width: u8, value: u64) {
    // SAFETY: as in `read_register`.
    unsafe {
        match width {
            1 => core::ptr::write_volatile(address as *mut u8, value as u8),
            2 => core::ptr::write_volatile(address as *mut u16, value as u16),
            4 => core::ptr::write_volatile(address as *mut u32, value as u32),
            _ => core::ptr::write_volatile(address as *mut u64, value),
        }
    }
}

/// GICR_TYPER's affinity value for an MPIDR: Aff3.Aff2.Aff1.Aff0.
fn typer_affinity(mpidr: u64) -> u64 {
    (((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff)
}

/// Sets `intid`'s byte in a priority register block at `base`.
fn set_priority(base: u64, intid: u32, priority: u8) {
    write_register(base + family::IPRIORITYR + u64::from(intid), 1, u64::from(priority));
}

fn set_bit(base: u64, family: u64, intid: u32) {
    write32(base + family + u64::from(intid / 32) * 4, 1 << (intid % 32));
}

impl Gic {
    /// Where `address` lies: a frame of the distributor or of a
    /// redistributor, and the offset in it.
    pub fn frame_of(&self, address: u64) -> Option<(Frame, u64)> {
        if self.distributor.contains(address) {
            return Some((Frame::Distributor, address - self.distributor.start));
        }
        let region = self.redistributors.iter().find(|r| r.contains(address))?;
        let within = (address - region.start) % self.redistributor_stride;
        Some(match within / FRAME_SIZE {
            0 => (Frame::RedistributorControl, within),
            1 => (Frame::RedistributorSgi, within - FRAME_SIZE),
            _ => (Frame::RedistributorOther, within % FRAME_SIZE),
        })
    }

    /// A redistributor region as Dom0 sees it: only its own CPUs' frames
    /// (`gic::partition`), found by their GICR_TYPER affinity.
    pub fn dom0_view(&self, region: PhysRange) -> RegionView {
        RegionView::new(region, self.redistributor_stride, |frame| {
            let affinity = read64(frame + gicr::TYPER) >> 32;
            self.dom0.contains(((affinity >> 24) << 32) | (affinity & 0xff_ffff))
        })
    }

    /// The RD frame of the redistributor whose affinity is `mpidr`'s.
    pub fn redistributor_of(&self, mpidr: u64) -> Option<u64> {
        let wanted = typer_affinity(mpidr);
        for region in &self.redistributors {
            let mut frame = region.start;
            while frame + self.redistributor_stride <= region.end {
                let typer = read64(frame + gicr::TYPER);
                if typer >> 32 == wanted {
                    return Some(frame);
                }
                if typer & gicr::TYPER_LAST != 0 {
                    break;
                }
                frame += self.redistributor_stride;
            }
        }
        None
    }

    fn wait_for_distributor(&self) {
        while read32(self.distributor.start + gicd::CTLR) & gicd::CTLR_RWP != 0 {
            core::hint::spin_loop();
        }
    }

    /// Routes every SPI not the hypervisor's that the firmware left routed
    /// outside Dom0's CPUs (or 1-of-N) to `boot`, Dom0's first: Dom0's own
    /// route writes are kept on its CPUs, but one it never writes would
    /// otherwise let it make an SPI pending on a DomU's CPU (GICv3; a
    /// GICv2's SPI targets are Dom0's vCPUs' interfaces through
    /// `gic::targets` from the start).
    fn route_spis_to_dom0(&self, boot: u64) {
        let base = self.distributor.start;
        let lines = (read32(base + gicd::TYPER) & 0x1f) + 1;
        let spis = (PRIVATE_COUNT..lines * 32).take_while(|&i| i < crate::gic::FIRST_SPECIAL);
        for intid in spis.filter(|&i| !self.filter.owned().contains(i)) {
            let router = base + gicd::IROUTER + u64::from(intid) * 8;
            let route = read_register(router, 8);
            let kept = self.dom0.route(route, boot);
            if kept != route {
                write_register(router, 8, kept);
            }
        }
    }

    /// Routes SPI `intid` to the CPU `mpidr` as a level-triggered group 1
    /// interrupt of the hypervisor's, and enables it.
    /// On a GICv2 the SPI targets this CPU's interface.
    pub fn enable_spi(&self, intid: u32, mpidr: u64) {
        let base = self.distributor.start;
        if self.version == GicVersion::V3 {
            let group = base + family::IGROUPR + u64::from(intid / 32) * 4;
            write32(group, read32(group) | 1 << (intid % 32));
        }
        set_priority(base, intid, HYPERVISOR_PRIORITY);
        let config = base + family::ICFGR + u64::from(intid / 16) * 4;
        write32(config, read32(config) & !(0b11 << ((intid % 16) * 2)));
        match self.version {
            GicVersion::V3 => write_register(
                base + gicd::IROUTER + u64::from(intid) * 8,
                8,
                mpidr & crate::arch::cpu::MPIDR_AFFINITY_MASK,
            ),
            GicVersion::V2 => {
                let mask = super::cpu::index_of(mpidr).map_or(0, cpu_interface_mask);
                write_register(base + family::ITARGETSR + u64::from(intid), 1, u64::from(mask));
            }
        }
        set_bit(base, family::ISENABLER, intid);
        if self.version == GicVersion::V3 {
            self.wait_for_distributor();
        }
    }

    fn hypervisor_interface(&self) -> u64 {
        self.v2.as_ref().map_or(0, |v| v.hypervisor.start)
    }

    fn cpu_interface(&self) -> u64 {
        self.v2.as_ref().map_or(0, |v| v.cpu.start)
    }

    fn encoding(&self) -> Encoding {
        match self.version {
            GicVersion::V3 => Encoding::V3,
            GicVersion::V2 => Encoding::V2,
        }
    }

    /// Acknowledges the highest-priority pending interrupt: its INTID
    /// (1020-1023 if none) and the value to end it with (a GICv2 SGI's
    /// carries its source CPU).
    pub fn acknowledge(&self) -> (u32, u32) {
        match self.version {
            GicVersion::V3 => {
                let intid = ICC_IAR1_EL1.get() as u32 & 0xff_ffff;
                (intid, intid)
            }
            GicVersion::V2 => {
                let iar = read32(self.cpu_interface() + gicc::IAR) & 0x1fff;
                (iar & 0x3ff, iar)
            }
        }
    }

    /// Drops the running priority of an acknowledged interrupt (it stays active).
    pub fn priority_drop(&self, acknowledged: u32) {
        match self.version {
            GicVersion::V3 => ICC_EOIR1_EL1.set(u64::from(acknowledged)),
            GicVersion::V2 => write32(self.cpu_interface() + gicc::EOIR, acknowledged),
        }
    }

    pub fn deactivate(&self, acknowledged: u32) {
        match self.version {
            GicVersion::V3 => ICC_DIR_EL1.set(u64::from(acknowledged)),
            GicVersion::V2 => write32(self.cpu_interface() + gicc::DIR, acknowledged),
        }
    }

    /// Sends the kick SGI to CPU `index`.
    pub fn kick(&self, index: usize) {
        match self.version {
            GicVersion::V3 => {
                if let Some(mpidr) = super::cpu::mpidr_of(index) {
                    send_sgi(mpidr, KICK_SGI);
                }
            }
            GicVersion::V2 => {
                let mask = cpu_interface_mask(index);
                if mask != 0 {
                    self.write_sgir((u32::from(mask) << gicd_v2::SGIR_TARGETS_SHIFT) | KICK_SGI);
                }
            }
        }
    }

    /// Writes GICD_SGIR (GICv2).
    pub fn write_sgir(&self, value: u32) {
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
        write32(self.distributor.start + gicd_v2::SGIR, value);
    }

    /// The private interrupts enabled for this CPU (`rd`, its
    /// redistributor on a GICv3), one bit each.
    pub fn private_enabled(&self, rd: u64) -> u32 {
        match self.version {
            GicVersion::V3 => read32(rd + gicr::SGI_FRAME + family::ISENABLER),
            // Banked: this CPU's.
            GicVersion::V2 => read32(self.distributor.start + family::ISENABLER),
        }
    }

    /// Enables private interrupt `intid` of this CPU (`rd`, its
    /// redistributor on a GICv3) as one the hypervisor takes: group 1 on a
    /// GICv3, the hypervisor's priority. For a DomU's CPU, whose
    /// redistributor no guest drives.
    pub fn enable_private(&self, rd: u64, intid: u32) {
        if intid >= PRIVATE_COUNT {
            return;
        }
        let base = match self.version {
            GicVersion::V3 => {
                let sgi = rd + gicr::SGI_FRAME;
                write32(sgi + family::IGROUPR, read32(sgi + family::IGROUPR) | 1 << intid);
                sgi
            }
            // Banked: this CPU's.
            GicVersion::V2 => self.distributor.start,
        };
        set_priority(base, intid, HYPERVISOR_PRIORITY);
        set_bit(base, family::ISENABLER, intid);
    }

    pub fn read_list_register(&self, index: usize) -> ListRegister {
        let raw = match self.version {
            GicVersion::V3 => read_list_register(index),
            GicVersion::V2 => u64::from(read32(self.hypervisor_interface() + gich::LR + index as u64 * 4)),
        };
        self.encoding().decode(raw)
    }

    pub fn write_list_register(&self, index: usize, lr: ListRegister) {
        let raw = self.encoding().encode(lr);
        match self.version {
            GicVersion::V3 => write_list_register(index, raw),
            GicVersion::V2 => write32(self.hypervisor_interface() + gich::LR + index as u64 * 4, raw as u32),
        }
    }

    /// This CPU's empty list registers, one bit each.
    pub fn empty_list_registers(&self) -> u64 {
        match self.version {
            GicVersion::V3 => super::sysregs::ICH_ELRSR_EL2.get(),
            GicVersion::V2 => {
                let base = self.hypervisor_interface();
                u64::from(read32(base + gich::ELRSR0)) | u64::from(read32(base + gich::ELRSR1)) << 32
            }
        }
    }

    /// This CPU's list registers whose interrupt the guest ended and that
    /// asked for EOI maintenance, one bit each (they stay out of the empty
    /// ones until rewritten).
    pub fn ended_list_registers(&self) -> u64 {
        match self.version {
            GicVersion::V3 => super::sysregs::ICH_EISR_EL2.get(),
            GicVersion::V2 => {
                let base = self.hypervisor_interface();
                u64::from(read32(base + gich::EISR0)) | u64::from(read32(base + gich::EISR1)) << 32
            }
        }
    }

    /// Asks for the maintenance interrupt when the list registers run dry
    /// (underflow), or stops asking.
    pub fn set_underflow_interrupt(&self, on: bool) {
        match self.version {
            GicVersion::V3 => ICH_HCR_EL2.modify(ICH_HCR_EL2::UIE.val(u64::from(on))),
            GicVersion::V2 => {
                let hcr = self.hypervisor_interface() + gich::HCR;
                let value = read32(hcr);
                write32(hcr, if on { value | gich::HCR_UIE } else { value & !gich::HCR_UIE });
            }
        }
    }
}

/// Takes the GIC over on the boot CPU: affinity routing and group 1 on at
/// the distributor. `owned` are the hypervisor's interrupts besides the
/// maintenance interrupt and the kick SGI, which are added here.
/// `cpus` is the number of CPUs the tree lists; `virtual_timer` its
/// virtual timer's interrupt; `dom0` the CPUs Dom0's vCPUs run on.
pub fn init(
    tree_gic: &host::Gic,
    mut owned: IntidSet,
    cpus: usize,
    virtual_timer: Option<u32>,
    dom0: Dom0Cpus,
) -> Result<&'static Gic, Unsupported> {
    if tree_gic.version == GicVersion::V2 {
        return init_v2(tree_gic, owned, cpus, virtual_timer, dom0);
    }
    let maintenance = tree_gic.maintenance_intid.ok_or(Unsupported::NoMaintenanceInterrupt)?;
    let first = *tree_gic.redistributors.first().ok_or(Unsupported::NoRedistributors)?;
    let stride = if read64(first.start + gicr::TYPER) & gicr::TYPER_VLPIS != 0 { 4 } else { 2 } * FRAME_SIZE;
    owned.insert(maintenance);
    owned.insert(KICK_SGI);
    let redistributors = tree_gic
        .redistributors
        .iter()
        .map(|&region| {
            let populated = crate::gic::populated_redistributors(region, stride, |frame| read64(frame + gicr::TYPER));
            if populated != region {
                log::info!("GIC: redistributors at {populated}; the rest of {region} is nothing, and aborts");
            }
            populated
        })
        .collect();
    let gic = GIC.call_once(|| Gic {
        version: GicVersion::V3,
        distributor: tree_gic.distributor,
        redistributors,
        redistributor_stride: stride,
        v2: None,
        maintenance,
        filter: Filter::new(owned),
        virtual_timer,
        dom0,
    });
    let ctlr = gic.distributor.start + gicd::CTLR;
    write32(ctlr, read32(ctlr) | gicd::CTLR_ARE | gicd::CTLR_ENABLE_G1);
    gic.wait_for_distributor();
    gic.route_spis_to_dom0(super::cpu::this_mpidr());
    Ok(gic)
}

/// The GICv2 half of `init`: the distributor on (groups as the firmware
/// left them: Linux's GICv2 driver and Xen use group 0 on a GIC without
/// security extensions, and a secure GIC's non-secure view sees group 1 only).
fn init_v2(
    tree_gic: &host::Gic,
    mut owned: IntidSet,
    cpus: usize,
    virtual_timer: Option<u32>,
    dom0: Dom0Cpus,
) -> Result<&'static Gic, Unsupported> {
    if cpus > MAX_GICV2_CPUS {
        return Err(Unsupported::TooManyCpusForV2(cpus));
    }
    let maintenance = tree_gic.maintenance_intid.ok_or(Unsupported::NoMaintenanceInterrupt)?;
    let interfaces = match (tree_gic.cpu_interface, tree_gic.hypervisor_interface, tree_gic.virtual_cpu_window()) {
        (Some(cpu), Some(hypervisor), Some((window, gicv))) => {
            V2Interfaces { cpu, hypervisor, virtual_cpu: PhysRange::new(gicv, gicv + window.size()), virtual_timer }
        }
        _ => return Err(Unsupported::NoV2Interfaces),
    };
    owned.insert(maintenance);
    owned.insert(KICK_SGI);
    let gic = GIC.call_once(|| Gic {
        version: GicVersion::V2,
        distributor: tree_gic.distributor,
        redistributors: ArrayVec::new(),
        redistributor_stride: 0,
        v2: Some(interfaces),
        maintenance,
        filter: Filter::new_v2(owned),
        virtual_timer,
        dom0,
    });
    let ctlr = gic.distributor.start + gicd::CTLR;
    write32(ctlr, read32(ctlr) | gicd_v2::CTLR_ENABLE);
    Ok(gic)
}

/// What `init_this_cpu` found.
pub struct ThisCpu {
    pub list_registers: usize,
    /// This CPU's redistributor (RD frame).
    pub redistributor: u64,
}

/// Sets up this CPU's redistributor and CPU interface for the hypervisor,
/// and turns the virtual CPU interface on.
pub fn init_this_cpu(gic: &Gic, mpidr: u64) -> Option<ThisCpu> {
    if gic.version == GicVersion::V2 {
        return Some(init_this_cpu_v2(gic));
    }
    let Some(rd) = gic.redistributor_of(mpidr) else {
        log::error!("GIC: no redistributor for CPU {mpidr:#x}; its interrupts stay off");
        return None;
    };
    let waker = rd + gicr::WAKER;
    write32(waker, read32(waker) & !gicr::WAKER_PROCESSOR_SLEEP);
    while read32(waker) & gicr::WAKER_CHILDREN_ASLEEP != 0 {
        core::hint::spin_loop();
    }
    let sgi = rd + gicr::SGI_FRAME;
    let private: u32 = gic.filter.owned().iter().filter(|&i| i < PRIVATE_COUNT).fold(0, |m, i| m | 1 << i);
    write32(sgi + family::IGROUPR, read32(sgi + family::IGROUPR) | private);
    for intid in gic.filter.owned().iter().filter(|&i| i < PRIVATE_COUNT) {
        set_priority(sgi, intid, HYPERVISOR_PRIORITY);
    }
    write32(sgi + family::ISENABLER, private);

    ICC_SRE_EL2.write(ICC_SRE_EL2::SRE.val(1) + ICC_SRE_EL2::ENABLE.val(1));
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    ICC_PMR_EL1.set(PRIORITY_MASK_OPEN);
    ICC_BPR1_EL1.set(0);
    ICC_CTLR_EL1.set(ICC_CTLR_EL1.get() | EOI_MODE_SPLIT);
    ICC_IGRPEN1_EL1.set(1);
    let list_registers = ICH_VTR_EL2.read(ICH_VTR_EL2::ListRegs) as usize + 1;
    for i in 0..list_registers {
        write_list_register(i, 0);
    }
    ICH_HCR_EL2.write(ICH_HCR_EL2::En.val(1));
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    Some(ThisCpu { list_registers, redistributor: rd })
}

/// The GICv2 half of `init_this_cpu`: this CPU's interface number found,
/// its banked private interrupts of the hypervisor's enabled, the physical
/// CPU interface on with split priority drop and deactivation, the
/// virtual interface on.
fn init_this_cpu_v2(gic: &Gic) -> ThisCpu {
    let base = gic.distributor.start;
    // The first non-zero byte of ITARGETSR0-7 (banked) names this CPU's
    // interface, as Linux's gic_get_cpumask reads it.
    let mask = (0..8u64)
        .map(|i| read32(base + family::ITARGETSR + i * 4))
        .map(|word| (word | word >> 8 | word >> 16 | word >> 24) as u8)
        .find(|&m| m != 0)
        .unwrap_or(0);
    // GICD_TYPER.CPUNumber: a uniprocessor GIC's targets read as zero,
    // and its one CPU needs no kicks.
    let uniprocessor = (read32(base + gicd::TYPER) >> 5) & 0b111 == 0;
    if mask == 0 && !uniprocessor {
        log::error!(
            "GIC: CPU {} reads no CPU interface in GICD_ITARGETSR; it gets no kicks",
            super::cpu::current_index()
        );
    }
    if let Some(slot) = CPU_INTERFACE_MASKS.get(super::cpu::current_index()) {
        slot.store(mask, Ordering::Release);
    }
    let private: u32 = gic.filter.owned().iter().filter(|&i| i < PRIVATE_COUNT).fold(0, |m, i| m | 1 << i);
    for intid in gic.filter.owned().iter().filter(|&i| i < PRIVATE_COUNT) {
        set_priority(base, intid, HYPERVISOR_PRIORITY);
    }
    write32(base + family::ISENABLER, private);

    let cpu = gic.cpu_interface();
    write32(cpu + gicc::PMR, PRIORITY_MASK_OPEN as u32);
    write32(cpu + gicc::BPR, 0);
    write32(cpu + gicc::CTLR, gicc::CTLR_ENABLE_GRP0 | gicc::CTLR_EOI_MODE);
    let hypervisor = gic.hypervisor_interface();
    let list_registers = (read32(hypervisor + gich::VTR) & gich::VTR_LIST_REGS) as usize + 1;
    for i in 0..list_registers {
        write32(hypervisor + gich::LR + i as u64 * 4, 0);
    }
    write32(hypervisor + gich::HCR, gich::HCR_EN);
    ThisCpu { list_registers, redistributor: 0 }
}

/// Sends SGI `intid` to the CPU with affinity `mpidr` (GICv3).
fn send_sgi(mpidr: u64, intid: u32) {
    let aff0 = mpidr & 0xff;
    let value = (((mpidr >> 32) & 0xff) << 48)
        | (((mpidr >> 16) & 0xff) << 32)
        | ((aff0 / 16) << 44)
        | (((mpidr >> 8) & 0xff) << 16)
        | (u64::from(intid & 0xf) << 24)
        | (1 << (aff0 % 16));
    write_sgi1r(value);
}

/// Writes ICC_SGI1R_EL1 as given (a forwarded Dom0 write).
pub fn write_sgi1r(value: u64) {
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
    ICC_SGI1R_EL1.set(value);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

fn read_list_register(index: usize) -> u64 {
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

fn write_list_register(index: usize, value: u64) {
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
