//! System registers that `aarch64-cpu` does not define (the GICv3 CPU
//! interface, newer feature and trap-control registers), in the same
//! `tock-registers` shape. Each accessor is one MRS/MSR; nothing else in
//! the hypervisor writes these names in assembly. Newer registers are named
//! by encoding, which every assembler accepts. ICC_CTLR_EL1 stays here:
//! `aarch64-cpu` 11.2 has it read-only (with ExtRange only), and EL2 must
//! write EOImode.

use tock_registers::interfaces::{Readable, Writeable};

macro_rules! sysreg {
    ($(#[$doc:meta])* $name:ident, $asm:literal, $($access:ident),+) => {
        $(#[$doc])*
        pub struct $name;
        $(sysreg!(@$access $name, $asm);)+
    };
    (@read $name:ident, $asm:literal) => {
        impl Readable for $name {
            type T = u64;
            type R = ();
            #[inline]
            fn get(&self) -> u64 {
                let value;
                // SAFETY: reading this system register has no memory effect.
                unsafe { core::arch::asm!(concat!("mrs {}, ", $asm), out(reg) value, options(nomem, nostack)) };
                value
            }
        }
    };
    (@write $name:ident, $asm:literal) => {
        impl Writeable for $name {
            type T = u64;
            type R = ();
            #[inline]
            fn set(&self, value: u64) {
                // SAFETY: writing this system register changes interrupt
                // or trap state, never memory.
                unsafe { core::arch::asm!(concat!("msr ", $asm, ", {}"), in(reg) value, options(nomem, nostack)) };
            }
        }
    };
}

sysreg!(
    /// Acknowledges the highest-priority pending group 1 interrupt.
    IccIar1El1, "icc_iar1_el1", read);
sysreg!(
    /// Priority drop (and deactivation unless ICC_CTLR_EL1.EOImode).
    IccEoir1El1, "icc_eoir1_el1", write);
sysreg!(
    /// Deactivation, with EOImode = 1.
    IccDirEl1, "icc_dir_el1", write);
sysreg!(IccPmrEl1, "icc_pmr_el1", write);
sysreg!(IccBpr1El1, "icc_bpr1_el1", write);
sysreg!(IccIgrpen1El1, "icc_igrpen1_el1", write);
sysreg!(
    /// Generates group 1 SGIs.
    IccSgi1rEl1, "icc_sgi1r_el1", write);
sysreg!(
    /// Which list registers hold no interrupt.
    IchElrsrEl2, "ich_elrsr_el2", read);
sysreg!(
    /// Which list registers the guest ended that asked for EOI maintenance.
    IchEisrEl2, "ich_eisr_el2", read);
sysreg!(IccCtlrEl1, "icc_ctlr_el1", read, write);

sysreg!(
    /// ID_AA64MMFR3_EL1: TCRX in bits 3:0, SCTLRX in 7:4.
    IdAa64Mmfr3El1, "s3_0_c0_c7_3", read);
sysreg!(
    /// ID_AA64ISAR2_EL1: MOPS in bits 19:16.
    IdAa64Isar2El1, "s3_0_c0_c6_2", read);
sysreg!(
    /// HCRX_EL2 (FEAT_HCX): more of EL2's trap controls.
    HcrxEl2, "s3_4_c1_c2_2", write);
sysreg!(
    /// VPIDR_EL2: what the guest reads as MIDR_EL1.
    VpidrEl2, "vpidr_el2", write);

pub const VPIDR_EL2: VpidrEl2 = VpidrEl2;
pub const ID_AA64MMFR3_EL1: IdAa64Mmfr3El1 = IdAa64Mmfr3El1;
pub const ID_AA64ISAR2_EL1: IdAa64Isar2El1 = IdAa64Isar2El1;
pub const HCRX_EL2: HcrxEl2 = HcrxEl2;
pub const ICC_IAR1_EL1: IccIar1El1 = IccIar1El1;
pub const ICC_EOIR1_EL1: IccEoir1El1 = IccEoir1El1;
pub const ICC_DIR_EL1: IccDirEl1 = IccDirEl1;
pub const ICC_PMR_EL1: IccPmrEl1 = IccPmrEl1;
pub const ICC_BPR1_EL1: IccBpr1El1 = IccBpr1El1;
pub const ICC_IGRPEN1_EL1: IccIgrpen1El1 = IccIgrpen1El1;
pub const ICC_SGI1R_EL1: IccSgi1rEl1 = IccSgi1rEl1;
pub const ICH_ELRSR_EL2: IchElrsrEl2 = IchElrsrEl2;
pub const ICH_EISR_EL2: IchEisrEl2 = IchEisrEl2;
pub const ICC_CTLR_EL1: IccCtlrEl1 = IccCtlrEl1;
