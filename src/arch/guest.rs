//! Entering a guest at EL1, and what EL2 configures for it: stage-2
//! translation, which EL1 operations trap, the virtual timer offset, the IDs
//! the guest reads.

use super::sysregs;
use aarch64_cpu::registers::{
    CNTHCTL_EL2, CNTVOFF_EL2, ELR_EL2, HCR_EL2, ID_AA64ISAR1_EL1, ID_AA64MMFR1_EL1, MIDR_EL1, MPIDR_EL1, SCTLR_EL1,
    SPSR_EL2, VMPIDR_EL2, VTCR_EL2, VTTBR_EL2,
};
use core::arch::asm;
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};

/// SPSR for EL1h with D, A, I and F masked: how a kernel is entered.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// SCTLR_EL1's RES1 bits (Armv8.0): MMU and caches off, as the boot
/// protocol requires at kernel entry.
const SCTLR_EL1_RES1: u64 = 0x30d0_0800;

/// Where a vCPU starts: its domain's stage 2 and VMID, its virtual MPIDR,
/// and its first PC and x0 (the device tree for the boot vCPU, CPU_ON's
/// context id for the others).
pub struct Entry {
    pub pc: u64,
    pub x0: u64,
    pub stage2_root: u64,
    pub vtcr: u64,
    pub vmid: u16,
    /// MPIDR affinity fields the guest reads.
    pub mpidr: u64,
}

impl Entry {
    pub fn new(vcpu: &crate::domain::vcpu::Vcpu, pc: u64, x0: u64) -> Self {
        let domain = vcpu.domain().expect("a vCPU is entered once its domain is built");
        let s2 = domain.stage2.lock_holding_no_xen_lock();
        let vtcr = s2.geometry().vtcr(super::cpu::pa_bits());
        let vmid = u16::from(domain.vmid.0);
        Self { pc, x0, stage2_root: s2.root_address(), vtcr, vmid, mpidr: vcpu.placement.mpidr }
    }
}

fn has_pointer_auth() -> bool {
    use ID_AA64ISAR1_EL1 as ISAR1;
    let isar1 = ID_AA64ISAR1_EL1.extract();
    // APA3 (ID_AA64ISAR2_EL1 bits 15:12) is past what `aarch64-cpu` defines.
    let apa3 = (sysregs::ID_AA64ISAR2_EL1.get() >> 12) & 0xf;
    [ISAR1::APA, ISAR1::API, ISAR1::GPA, ISAR1::GPI].into_iter().any(|field| isar1.read(field) != 0) || apa3 != 0
}

/// With FEAT_HCX, EL1's newer registers and instructions trap to EL2
/// unless HCRX_EL2 enables them: TCR2_EL1 and SCTLR2_EL1 (Linux uses
/// TCR2 for permission indirection) and the memory copy/set instructions.
fn enable_newer_el1_features() {
    const HCX: u64 = 0xf << 40;
    if ID_AA64MMFR1_EL1.get() & HCX == 0 {
        return;
    }
    const MSCEN: u64 = 1 << 11;
    const TCR2EN: u64 = 1 << 14;
    const SCTLR2EN: u64 = 1 << 15;
    let mmfr3 = sysregs::ID_AA64MMFR3_EL1.get();
    let mut enable = 0;
    if mmfr3 & 0xf != 0 {
        enable |= TCR2EN;
    }
    if (mmfr3 >> 4) & 0xf != 0 {
        enable |= SCTLR2EN;
    }
    if (sysregs::ID_AA64ISAR2_EL1.get() >> 16) & 0xf != 0 {
        enable |= MSCEN;
    }
    sysregs::HCRX_EL2.set(enable);
}

/// Drops every TLB entry tagged with `vmid`, on every CPU (a released
/// domain's, before its VMID is given out again): TLBI VMALLS12E1IS with
/// VTTBR_EL2 briefly naming that VMID and `root`, its stage 2's root table
/// (still allocated), then the running vCPU's value back. EL2 runs with
/// interrupts masked: no EL1 code runs in between.
pub fn invalidate_vmid(vmid: u8, root: u64) {
    let saved = VTTBR_EL2.get();
    VTTBR_EL2.set(root | (u64::from(vmid) << 48));
    // SAFETY: barriers and TLB maintenance only; VTTBR_EL2 is restored
    // before anything translates through it.
    unsafe {
        asm!("dsb ishst", "isb", "tlbi vmalls12e1is", "dsb ish", "isb", options(nostack, preserves_flags));
    }
    VTTBR_EL2.set(saved);
    // SAFETY: a barrier only.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Turns stage-2 translation off on this CPU (HCR_EL2.VM), for a vCPU that
/// stops: its domain's tables may be freed while the CPU parks at EL2, and
/// no walk (speculative ones included) may use them. VTTBR_EL2 keeps the
/// VMID, so TLB maintenance of the domain from here still names it.
pub fn stop_stage2() {
    HCR_EL2.modify(HCR_EL2::VM::CLEAR);
    // SAFETY: a barrier only.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Turns stage-2 translation back on (the firmware refused CPU_OFF to a
/// vCPU whose domain goes on).
pub fn resume_stage2() {
    HCR_EL2.modify(HCR_EL2::VM::SET);
    // SAFETY: a barrier only.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Sets up EL2 for the guest and ERETs to `entry.pc` at EL1h, all other
/// general registers zero.
pub fn enter_el1(entry: &Entry) -> ! {
    VTCR_EL2.set(entry.vtcr);
    VTTBR_EL2.set(entry.stage2_root | (u64::from(entry.vmid) << 48));
    // Dom0 vCPU n owns CPU n for good, so its pointer authentication keys
    // need no switching: let it use them without trapping.
    let pointer_auth = u64::from(has_pointer_auth());
    HCR_EL2.write(
        HCR_EL2::VM.val(1)        // stage 2 on
            + HCR_EL2::SWIO.val(1)  // set/way invalidation is clean+invalidate
            + HCR_EL2::FMO.val(1)   // physical FIQ/IRQ/SError to EL2, virtual ones to the guest
            + HCR_EL2::IMO.val(1)
            + HCR_EL2::AMO.val(1)
            + HCR_EL2::TSC.val(1)   // SMC traps: we are the guest's PSCI firmware
            + HCR_EL2::FB.val(1)    // broadcast TLB and cache maintenance
            + HCR_EL2::BSU.val(1)   // inner-shareable barriers
            + HCR_EL2::RW.val(1)    // EL1 is AArch64
            + HCR_EL2::APK.val(pointer_auth) // pointer authentication is the guest's own
            + HCR_EL2::API.val(pointer_auth),
    );
    enable_newer_el1_features();
    // The physical counter and timer stay the guest's; the virtual counter
    // reads the same as the physical one.
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCEN.val(1) + CNTHCTL_EL2::EL1PCTEN.val(1));
    CNTVOFF_EL2.set(0);
    // The vCPU's affinity; the other fields (RES1, U, MT) as the CPU's.
    let affinity = super::cpu::MPIDR_AFFINITY_MASK;
    VMPIDR_EL2.set((MPIDR_EL1.get() & !affinity) | (entry.mpidr & affinity));
    super::sysregs::VPIDR_EL2.set(MIDR_EL1.get());
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
