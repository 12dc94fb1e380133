//! PSCI and SMCCC for Dom0: the hypervisor is Dom0's
//! firmware. Dom0 vCPU n is physical CPU n, so CPU_ON starts the physical
//! CPU through the real firmware into the hypervisor (`secondary_entry` in
//! boot/head.S), which then enters Dom0 at the address Dom0 gave.

use crate::router::xen_board::Hardware;
use crate::xen::vcpu::{runstate, set_runstate};
use super::cpu;
use super::exception::TrapFrame;
use crate::dt::host::MAX_CPUS;
use crate::fatal::Stop;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

mod function {
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    pub const CPU_OFF: u32 = 0x8400_0002;
    pub const CPU_ON: u32 = 0xc400_0003;
    pub const AFFINITY_INFO: u32 = 0xc400_0004;
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    pub const PSCI_FEATURES: u32 = 0x8400_000a;
}

mod result {
    pub const SUCCESS: i64 = 0;
    pub const NOT_SUPPORTED: i64 = -1;
    pub const INVALID_PARAMETERS: i64 = -2;
    pub const ALREADY_ON: i64 = -4;
    pub const ON_PENDING: i64 = -5;
    pub const INTERNAL_FAILURE: i64 = -6;
    pub const INVALID_ADDRESS: i64 = -9;
    /// MIGRATE_INFO_TYPE: no trusted OS needs migrating.
    pub const NO_TRUSTED_OS: i64 = 2;
}

/// A vCPU's power state, as AFFINITY_INFO reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Power {
    On = 0,
    Off = 1,
    OnPending = 2,
}

/// Each vCPU's power state; vCPU 0 starts on.
static POWER: [AtomicU8; MAX_CPUS] = {
    let mut all = [const { AtomicU8::new(Power::Off as u8) }; MAX_CPUS];
    all[0] = AtomicU8::new(Power::On as u8);
    all
};

/// Where each starting vCPU enters Dom0: (entry point, context id).
static START: [(AtomicU64, AtomicU64); MAX_CPUS] = [const { (AtomicU64::new(0), AtomicU64::new(0)) }; MAX_CPUS];

fn power(index: usize) -> Power {
    match POWER[index].load(Ordering::Acquire) {
        0 => Power::On,
        2 => Power::OnPending,
        _ => Power::Off,
    }
}

/// An SMCCC call from Dom0 (HVC or trapped SMC): x0 is the function ID.
pub fn handle(frame: &mut TrapFrame) {
    use function::*;
    let f = frame.regs[0] as u32;
    let [a1, a2, a3] = [frame.regs[1], frame.regs[2], frame.regs[3]];
    let result: i64 = match f {
        SMCCC_VERSION | PSCI_VERSION => 0x1_0001,
        PSCI_FEATURES => match a1 as u32 {
            SMCCC_VERSION | PSCI_VERSION | CPU_ON | CPU_OFF | AFFINITY_INFO | MIGRATE_INFO_TYPE | SYSTEM_OFF
            | SYSTEM_RESET | PSCI_FEATURES => result::SUCCESS,
            _ => result::NOT_SUPPORTED,
        },
        MIGRATE_INFO_TYPE => result::NO_TRUSTED_OS,
        CPU_ON => cpu_on(a1, a2, a3),
        CPU_OFF => cpu_off(),
        AFFINITY_INFO => affinity_info(a1, a2),
        SYSTEM_OFF => crate::shutdown::stop_machine(format_args!("PSCI SYSTEM_OFF"), Stop::PowerOff),
        SYSTEM_RESET => crate::shutdown::stop_machine(
            format_args!("PSCI SYSTEM_RESET; the hypervisor cannot reboot the board, powering off"),
            Stop::PowerOff,
        ),
        SMCCC_ARCH_FEATURES => result::NOT_SUPPORTED,
        other => {
            log::debug!("d0: SMCCC function {other:#x} not supported");
            result::NOT_SUPPORTED
        }
    };
    frame.regs[0] = result as u64;
}

fn cpu_on(target: u64, entry: u64, context: u64) -> i64 {
    let Some(index) = cpu::index_of(target) else { return result::INVALID_PARAMETERS };
    let domain = cpu::this_cpu().domain().expect("a vCPU called");
    if !entry.is_multiple_of(4) || !domain.owns_ram(&crate::mm::range::PhysRange::new(entry, entry.saturating_add(4))) {
        return result::INVALID_ADDRESS;
    }
    match POWER[index].compare_exchange(Power::Off as u8, Power::OnPending as u8, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(state) if state == Power::OnPending as u8 => return result::ON_PENDING,
        Err(_) => return result::ALREADY_ON,
    }
    START[index].0.store(entry, Ordering::Release);
    START[index].1.store(context, Ordering::Release);
    if let Some(target_cpu) = cpu::per_cpu(index) {
        target_cpu.set_domain(domain);
    }
    unsafe extern "C" {
        fn secondary_entry();
    }
    match smccc::psci::cpu_on::<smccc::Smc>(target, secondary_entry as *const () as u64, index as u64) {
        Ok(()) => {
            log::info!("d0: vCPU {index} starting on CPU {target:#x} at {entry:#x}");
            result::SUCCESS
        }
        Err(e) => {
            log::error!("d0: vCPU {index}: firmware CPU_ON of {target:#x} failed: {e:?}");
            POWER[index].store(Power::Off as u8, Ordering::Release);
            result::INTERNAL_FAILURE
        }
    }
}

fn cpu_off() -> i64 {
    let index = cpu::current_index();
    log::info!("d0: vCPU {index} off");
    let domain = cpu::this_cpu().domain().expect("a vCPU called");
    set_runstate(&domain.xen, &Hardware, index, runstate::OFFLINE);
    POWER[index].store(Power::Off as u8, Ordering::Release);
    let e = smccc::psci::cpu_off::<smccc::Smc>();
    // Only reached if the firmware refused.
    log::error!("d0: firmware CPU_OFF failed: {e:?}");
    POWER[index].store(Power::On as u8, Ordering::Release);
    set_runstate(&domain.xen, &Hardware, index, runstate::RUNNING);
    result::INTERNAL_FAILURE
}

fn affinity_info(target: u64, lowest_level: u64) -> i64 {
    if lowest_level != 0 {
        return result::INVALID_PARAMETERS;
    }
    match cpu::index_of(target) {
        Some(index) => power(index) as i64,
        None => result::INVALID_PARAMETERS,
    }
}

/// A secondary CPU's first Rust code, from `boot/head.S` with its MMU on:
/// set up, then enter Dom0 where CPU_ON asked.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(index: usize) -> ! {
    cpu::init_this_cpu(index);
    super::vgic::init_this_cpu();
    let domain = cpu::this_cpu().domain().expect("CPU_ON recorded the domain");
    let (pc, x0) = (START[index].0.load(Ordering::Acquire), START[index].1.load(Ordering::Acquire));
    let entry = super::guest::Entry::new(domain, pc, x0);
    POWER[index].store(Power::On as u8, Ordering::Release);
    set_runstate(&domain.xen, &Hardware, index, runstate::RUNNING);
    super::guest::enter_el1(&entry)
}
