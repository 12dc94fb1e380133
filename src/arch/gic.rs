//! The physical GICv3, as the hypervisor drives it: the distributor and
//! this CPU's redistributor set up for the hypervisor's own interrupts, the
//! CPU interface with split priority drop and deactivation (EOImode 1), so
//! a physical interrupt handed to Dom0 stays active until Dom0's virtual
//! EOI deactivates it (list registers with HW=1).

use super::sysregs::{
    ICC_BPR1_EL1, ICC_CTLR_EL1, ICC_DIR_EL1, ICC_EOIR1_EL1, ICC_IAR1_EL1, ICC_IGRPEN1_EL1, ICC_PMR_EL1, ICC_SGI1R_EL1,
};
use crate::dt::host::{self, GicVersion};
use crate::gic::filter::{Filter, Frame};
use crate::gic::registers::{FRAME_SIZE, family, gicd, gicr};
use crate::gic::{IntidSet, PRIVATE_COUNT};
use crate::mm::range::PhysRange;
use aarch64_cpu::registers::*;
use arrayvec::ArrayVec;
use tock_registers::interfaces::{Readable, Writeable};

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

pub struct Gic {
    pub distributor: PhysRange,
    pub redistributors: ArrayVec<PhysRange, { host::MAX_REDIST_REGIONS }>,
    /// Bytes from one redistributor to the next.
    redistributor_stride: u64,
    pub maintenance: u32,
    pub filter: Filter,
}

static GIC: spin::Once<Gic> = spin::Once::new();

/// The GIC, once `init` has run.
pub fn get() -> Option<&'static Gic> {
    GIC.get()
}

/// Why the GIC cannot be virtualised.
#[derive(Debug)]
pub enum Unsupported {
    Version2,
    NoMaintenanceInterrupt,
    NoRedistributors,
}

impl core::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Version2 => "GICv2 (only GICv3 is virtualised; use gic-version=3)",
            Self::NoMaintenanceInterrupt => "the GIC node names no maintenance interrupt",
            Self::NoRedistributors => "the GIC node lists no redistributors",
        })
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

    /// Routes SPI `intid` to the CPU `mpidr` as a level-triggered group 1
    /// interrupt of the hypervisor's, and enables it.
    pub fn enable_spi(&self, intid: u32, mpidr: u64) {
        let base = self.distributor.start;
        let group = base + family::IGROUPR + u64::from(intid / 32) * 4;
        write32(group, read32(group) | 1 << (intid % 32));
        set_priority(base, intid, HYPERVISOR_PRIORITY);
        let config = base + family::ICFGR + u64::from(intid / 16) * 4;
        write32(config, read32(config) & !(0b11 << ((intid % 16) * 2)));
        write_register(base + gicd::IROUTER + u64::from(intid) * 8, 8, mpidr & crate::arch::cpu::MPIDR_AFFINITY_MASK);
        set_bit(base, family::ISENABLER, intid);
        self.wait_for_distributor();
    }
}

/// Takes the GIC over on the boot CPU: affinity routing and group 1 on at
/// the distributor. `owned` are the hypervisor's interrupts besides the
/// maintenance interrupt and the kick SGI, which are added here.
pub fn init(tree_gic: &host::Gic, mut owned: IntidSet) -> Result<&'static Gic, Unsupported> {
    if tree_gic.version == GicVersion::V2 {
        return Err(Unsupported::Version2);
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
        distributor: tree_gic.distributor,
        redistributors,
        redistributor_stride: stride,
        maintenance,
        filter: Filter::new(owned),
    });
    let ctlr = gic.distributor.start + gicd::CTLR;
    write32(ctlr, read32(ctlr) | gicd::CTLR_ARE | gicd::CTLR_ENABLE_G1);
    gic.wait_for_distributor();
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

/// The private interrupts enabled at the redistributor `rd`, one bit each.
pub fn private_enabled(rd: u64) -> u32 {
    read32(rd + gicr::SGI_FRAME + family::ISENABLER)
}

/// Acknowledges the highest-priority pending interrupt; 1020-1023 if none.
pub fn acknowledge() -> u32 {
    ICC_IAR1_EL1.get() as u32 & 0xff_ffff
}

/// Drops the running priority (the interrupt stays active).
pub fn priority_drop(intid: u32) {
    ICC_EOIR1_EL1.set(u64::from(intid));
}

pub fn deactivate(intid: u32) {
    ICC_DIR_EL1.set(u64::from(intid));
}

/// Sends SGI `intid` to the CPU with affinity `mpidr`.
pub fn send_sgi(mpidr: u64, intid: u32) {
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
