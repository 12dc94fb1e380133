//! Entering a guest at EL1, and what EL2 configures for it: stage-2
//! translation, which EL1 operations trap, the virtual timer offset, the IDs
//! the guest reads.

use aarch64_cpu::registers::{
    CNTHCTL_EL2, CNTVOFF_EL2, ELR_EL2, HCR_EL2, MIDR_EL1, MPIDR_EL1, SCTLR_EL1, SPSR_EL2, VMPIDR_EL2, VTCR_EL2,
    VTTBR_EL2,
};
use core::arch::asm;
use tock_registers::interfaces::{Readable, Writeable};

/// SPSR for EL1h with D, A, I and F masked: how a kernel is entered.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// SCTLR_EL1's RES1 bits (Armv8.0): MMU and caches off, as the boot
/// protocol requires at kernel entry.
const SCTLR_EL1_RES1: u64 = 0x30d0_0800;

pub struct Entry {
    pub pc: u64,
    /// x0 at entry: the device tree's address.
    pub x0: u64,
    pub stage2_root: u64,
    pub vtcr: u64,
    pub vmid: u16,
}

/// Sets up EL2 for the guest and ERETs to `entry.pc` at EL1h, all other
/// general registers zero.
pub fn enter_el1(entry: &Entry) -> ! {
    VTCR_EL2.set(entry.vtcr);
    VTTBR_EL2.set(entry.stage2_root | (u64::from(entry.vmid) << 48));
    HCR_EL2.write(
        HCR_EL2::VM.val(1)        // stage 2 on
            + HCR_EL2::SWIO.val(1)  // set/way invalidation is clean+invalidate
            + HCR_EL2::FMO.val(1)   // physical FIQ/IRQ/SError to EL2, virtual ones to the guest
            + HCR_EL2::IMO.val(1)
            + HCR_EL2::AMO.val(1)
            + HCR_EL2::TSC.val(1)   // SMC traps: we are the guest's PSCI firmware
            + HCR_EL2::FB.val(1)    // broadcast TLB and cache maintenance
            + HCR_EL2::BSU.val(1)   // inner-shareable barriers
            + HCR_EL2::RW.val(1), // EL1 is AArch64
    );
    // The physical counter and timer stay the guest's; the virtual counter
    // reads the same as the physical one.
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCEN.val(1) + CNTHCTL_EL2::EL1PCTEN.val(1));
    CNTVOFF_EL2.set(0);
    // Dom0 vCPU n runs on CPU n: it sees the real IDs.
    VMPIDR_EL2.set(MPIDR_EL1.get());
    let midr = MIDR_EL1.get();
    // SAFETY: VPIDR_EL2 only changes what the guest reads as MIDR_EL1.
    unsafe { asm!("msr vpidr_el2, {}", in(reg) midr, options(nomem, nostack, preserves_flags)) };
    SCTLR_EL1.set(SCTLR_EL1_RES1);
    // SAFETY: drops stale stage-1+2 translations of this VMID; no memory effect.
    unsafe { asm!("isb", "tlbi vmalls12e1is", "dsb ish", "isb", options(nostack, preserves_flags)) };
    SPSR_EL2.set(SPSR_EL1H_MASKED);
    ELR_EL2.set(entry.pc);
    // SAFETY: everything the guest needs is configured above; ERET leaves
    // EL2 for good on this path, with no hypervisor state in registers.
    unsafe {
        asm!(
            "mov x1, xzr", "mov x2, xzr", "mov x3, xzr", "mov x4, xzr", "mov x5, xzr",
            "mov x6, xzr", "mov x7, xzr", "mov x8, xzr", "mov x9, xzr", "mov x10, xzr",
            "mov x11, xzr", "mov x12, xzr", "mov x13, xzr", "mov x14, xzr", "mov x15, xzr",
            "mov x16, xzr", "mov x17, xzr", "mov x18, xzr", "mov x19, xzr", "mov x20, xzr",
            "mov x21, xzr", "mov x22, xzr", "mov x23, xzr", "mov x24, xzr", "mov x25, xzr",
            "mov x26, xzr", "mov x27, xzr", "mov x28, xzr", "mov x29, xzr", "mov x30, xzr",
            "eret",
            in("x0") entry.x0,
            options(noreturn),
        )
    }
}
