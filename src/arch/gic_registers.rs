//! The GICv3 CPU-interface and virtualisation system registers that
//! `aarch64-cpu` does not define, in the same `tock-registers` shape.
//! Each accessor is one MRS/MSR; nothing else in the hypervisor writes
//! these names in assembly.

use tock_registers::interfaces::{Readable, Writeable};

macro_rules! gic_sysreg {
    ($(#[$doc:meta])* $name:ident, $asm:literal, read) => {
        $(#[$doc])*
        pub struct $name;
        impl Readable for $name {
            type T = u64;
            type R = ();
            #[inline]
            fn get(&self) -> u64 {
                let value;
                // SAFETY: reading this GIC system register has no memory effect.
                unsafe { core::arch::asm!(concat!("mrs {}, ", $asm), out(reg) value, options(nomem, nostack)) };
                value
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $asm:literal, write) => {
        $(#[$doc])*
        pub struct $name;
        impl Writeable for $name {
            type T = u64;
            type R = ();
            #[inline]
            fn set(&self, value: u64) {
                // SAFETY: writing this GIC system register only changes
                // interrupt state, never memory.
                unsafe { core::arch::asm!(concat!("msr ", $asm, ", {}"), in(reg) value, options(nomem, nostack)) };
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $asm:literal, read_write) => {
        gic_sysreg!($(#[$doc])* $name, $asm, read);
        impl Writeable for $name {
            type T = u64;
            type R = ();
            #[inline]
            fn set(&self, value: u64) {
                // SAFETY: as above.
                unsafe { core::arch::asm!(concat!("msr ", $asm, ", {}"), in(reg) value, options(nomem, nostack)) };
            }
        }
    };
}

gic_sysreg!(
    /// Acknowledges the highest-priority pending group 1 interrupt.
    IccIar1El1, "icc_iar1_el1", read);
gic_sysreg!(
    /// Priority drop (and deactivation unless ICC_CTLR_EL1.EOImode).
    IccEoir1El1, "icc_eoir1_el1", write);
gic_sysreg!(
    /// Deactivation, with EOImode = 1.
    IccDirEl1, "icc_dir_el1", write);
gic_sysreg!(IccPmrEl1, "icc_pmr_el1", write);
gic_sysreg!(IccBpr1El1, "icc_bpr1_el1", write);
gic_sysreg!(IccIgrpen1El1, "icc_igrpen1_el1", write);
gic_sysreg!(
    /// Generates group 1 SGIs.
    IccSgi1rEl1, "icc_sgi1r_el1", write);
gic_sysreg!(
    /// Which list registers hold no interrupt.
    IchElrsrEl2, "ich_elrsr_el2", read);
gic_sysreg!(IccCtlrEl1, "icc_ctlr_el1", read_write);

pub const ICC_IAR1_EL1: IccIar1El1 = IccIar1El1;
pub const ICC_EOIR1_EL1: IccEoir1El1 = IccEoir1El1;
pub const ICC_DIR_EL1: IccDirEl1 = IccDirEl1;
pub const ICC_PMR_EL1: IccPmrEl1 = IccPmrEl1;
pub const ICC_BPR1_EL1: IccBpr1El1 = IccBpr1El1;
pub const ICC_IGRPEN1_EL1: IccIgrpen1El1 = IccIgrpen1El1;
pub const ICC_SGI1R_EL1: IccSgi1rEl1 = IccSgi1rEl1;
pub const ICH_ELRSR_EL2: IchElrsrEl2 = IchElrsrEl2;
pub const ICC_CTLR_EL1: IccCtlrEl1 = IccCtlrEl1;
