//! PSCI and SMCCC for the guests: the hypervisor is their firmware. A vCPU
//! is named by its virtual MPIDR and placed on one physical CPU, so CPU_ON
//! starts that physical CPU through the real firmware into the hypervisor
//! (`secondary_entry` in boot/head.S), which then enters the vCPU at the
//! address Dom0 gave. Function IDs and return codes are the `smccc` crate's.

use super::xen_board::Hardware;
use crate::arch::cpu;
use crate::arch::exception::TrapFrame;
use crate::domain::vcpu::Power;
use crate::fatal::Stop;
use crate::xen::vcpu::{runstate, set_runstate};
use smccc::arch::{SMCCC_ARCH_FEATURES, SMCCC_VERSION};
use smccc::psci::error::{
    ALREADY_ON, INTERNAL_FAILURE, INVALID_ADDRESS, INVALID_PARAMETERS, NOT_SUPPORTED, ON_PENDING, SUCCESS,
};
use smccc::psci::{
    MigrateType, PSCI_AFFINITY_INFO_64 as AFFINITY_INFO, PSCI_CPU_OFF as CPU_OFF, PSCI_CPU_ON_64 as CPU_ON,
    PSCI_FEATURES, PSCI_MIGRATE_INFO_TYPE as MIGRATE_INFO_TYPE, PSCI_SYSTEM_OFF as SYSTEM_OFF,
    PSCI_SYSTEM_RESET as SYSTEM_RESET, PSCI_VERSION, Version,
};

/// The SMCCC and PSCI versions offered: 1.1 both.
const VERSION_1_1: Version = Version { major: 1, minor: 1 };

/// An SMCCC call from Dom0 (HVC or trapped SMC): x0 is the function ID.
pub fn handle(frame: &mut TrapFrame) {
    let f = frame.regs[0] as u32;
    let [a1, a2, a3] = [frame.regs[1], frame.regs[2], frame.regs[3]];
    let result: i32 = match f {
        SMCCC_VERSION | PSCI_VERSION => u32::from(VERSION_1_1) as i32,
        PSCI_FEATURES => match a1 as u32 {
            SMCCC_VERSION | PSCI_VERSION | CPU_ON | CPU_OFF | AFFINITY_INFO | MIGRATE_INFO_TYPE | SYSTEM_OFF
            | SYSTEM_RESET | PSCI_FEATURES => SUCCESS,
            _ => NOT_SUPPORTED,
        },
        // No trusted OS needs migrating.
        MIGRATE_INFO_TYPE => MigrateType::MigrationNotRequired as i32,
        CPU_ON => cpu_on(a1, a2, a3),
        CPU_OFF => cpu_off(),
        AFFINITY_INFO => affinity_info(a1, a2),
        // A DomU's power is its own: it ends, not the machine.
        SYSTEM_OFF | SYSTEM_RESET if super::this_domain_id() != 0 => {
            let what =
                if f == SYSTEM_OFF { "PSCI SYSTEM_OFF" } else { "PSCI SYSTEM_RESET (no reboot yet: the domain stops)" };
            super::end_this_domu(format_args!("{what}"))
        }
        SYSTEM_OFF => crate::shutdown::stop_machine(format_args!("PSCI SYSTEM_OFF"), Stop::PowerOff),
        SYSTEM_RESET => crate::shutdown::stop_machine(
            format_args!("PSCI SYSTEM_RESET; the hypervisor cannot reboot the board, powering off"),
            Stop::PowerOff,
        ),
        SMCCC_ARCH_FEATURES => NOT_SUPPORTED,
        other => {
            log::debug!("d{}: SMCCC function {other:#x} not supported", super::this_domain_id());
            NOT_SUPPORTED
        }
    };
    // Sign-extended, as SMCCC returns a negative int32 in x0.
    frame.regs[0] = i64::from(result) as u64;
}

/// Starts the caller's domain's vCPU with virtual MPIDR `target` on the
/// physical CPU it is placed on.
fn cpu_on(target: u64, entry: u64, context: u64) -> i32 {
    let domain = cpu::this_cpu().domain().expect("a vCPU called");
    let Some(vcpu) = domain.vcpu_by_mpidr(target) else { return INVALID_PARAMETERS };
    let Some(physical) = cpu::mpidr_of(vcpu.placement.cpu) else { return INVALID_PARAMETERS };
    if !entry.is_multiple_of(4) || !domain.owns_ram(&crate::mm::range::GuestRange::new(entry, entry.saturating_add(4)))
    {
        return INVALID_ADDRESS;
    }
    match vcpu.begin_start(entry, context) {
        Ok(()) => {}
        Err(Power::OnPending) => return ON_PENDING,
        Err(_) => return ALREADY_ON,
    }
    if let Some(target_cpu) = cpu::per_cpu(vcpu.placement.cpu) {
        target_cpu.set_vcpu(vcpu);
    }
    let d = domain.id.0;
    match cpu::power_on(vcpu.placement.cpu) {
        Ok(_) => {
            log::info!("d{d}: vCPU {} starting on CPU {physical:#x} at {entry:#x}", vcpu.id);
            SUCCESS
        }
        Err(e) => {
            log::error!("d{d}: vCPU {}: firmware CPU_ON of {physical:#x} failed: {e:?}", vcpu.id);
            vcpu.set_power(Power::Off);
            INTERNAL_FAILURE
        }
    }
}

/// PSCI CPU_OFF of the calling vCPU: the same path as a vCPU that stops
/// at its domain's end ([`super::power_off_this_vcpu`]), so a vCPU that
/// turns itself off as its DomU ends still has the domain torn down if it
/// was the last. If the firmware refuses, the vCPU runs on only if its
/// domain has not ended (then it is back On before anyone can tear the
/// domain down); else nothing of the domain, which may be gone, is touched.
fn cpu_off() -> i32 {
    let vcpu = cpu::this_vcpu();
    let domain = vcpu.domain().expect("a vCPU called");
    log::info!("d{}: vCPU {} off", domain.id.0, vcpu.id);
    let e = super::power_off_this_vcpu();
    // Only reached if the firmware refused.
    log::error!("d{}: firmware CPU_OFF failed: {e:?}", domain.id.0);
    if !domain.has_ended() {
        vcpu.set_power(Power::On);
        // Pairs with the fences of `Domain::end` and `take_teardown`: if
        // the domain ends from now on, whoever ends it sees this vCPU On.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        if !domain.has_ended() {
            crate::arch::guest::resume_stage2();
            set_runstate(&domain.xen, &Hardware { domain }, vcpu.id, runstate::RUNNING);
            return INTERNAL_FAILURE;
        }
        // It ended meanwhile: Off again, and the domain torn down here if
        // this was its last vCPU running.
        vcpu.set_power(Power::Off);
        super::tear_down_if_last(domain);
    }
    super::wait_forever()
}

fn affinity_info(target: u64, lowest_level: u64) -> i32 {
    if lowest_level != 0 {
        return INVALID_PARAMETERS;
    }
    let domain = cpu::this_cpu().domain().expect("a vCPU called");
    match domain.vcpu_by_mpidr(target) {
        Some(vcpu) => vcpu.power() as i32,
        None => INVALID_PARAMETERS,
    }
}

/// A secondary CPU's first Rust code, from `boot/head.S` with its MMU on:
/// set up, then enter the vCPU placed here where CPU_ON asked.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(index: usize) -> ! {
    cpu::init_this_cpu(index);
    crate::arch::vgic::init_this_cpu();
    let vcpu = cpu::this_vcpu();
    let domain = vcpu.domain().expect("CPU_ON placed a built domain's vCPU");
    // Its domain ended while the CPU came up: it stops before it runs.
    if domain.has_ended() {
        super::park_this_vcpu();
    }
    let (pc, x0) = vcpu.start();
    let entry = crate::arch::guest::Entry::new(vcpu, pc, x0);
    vcpu.set_power(Power::On);
    set_runstate(&domain.xen, &Hardware { domain }, vcpu.id, runstate::RUNNING);
    crate::arch::guest::enter_el1(&entry)
}
