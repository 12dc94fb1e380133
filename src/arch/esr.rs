//! Decoding the Exception Syndrome Register (Arm ARM D17.2.37, ESR_EL2).
//! The exception classes and the EC/ISS split are `aarch64-cpu`'s; the
//! instruction-specific syndromes it does not define (data aborts, trapped
//! system registers) are described here the same way.

use aarch64_cpu::registers::ESR_EL2;
use tock_registers::register_bitfields;

/// The exception class, ESR bits [31:26].
pub fn exception_class(esr: u64) -> u8 {
    ESR_EL2::EC.read(esr) as u8
}

/// The instruction-specific syndrome, ESR bits [24:0].
pub fn iss(esr: u64) -> u32 {
    ESR_EL2::ISS.read(esr) as u32
}

/// A syndrome for an exception injected into a guest: `class`, a 32-bit
/// instruction (IL), and `iss`.
pub fn syndrome(class: u8, iss: u32) -> u64 {
    (ESR_EL2::EC.val(u64::from(class)) + ESR_EL2::IL::SET + ESR_EL2::ISS.val(u64::from(iss))).value
}

/// The abort ISS of a synchronous external abort, on a write if `write`.
pub fn external_abort_iss(write: bool) -> u32 {
    const SYNCHRONOUS_EXTERNAL_ABORT: u32 = 0x10;
    (DATA_ABORT_ISS::DFSC.val(SYNCHRONOUS_EXTERNAL_ABORT) + DATA_ABORT_ISS::WNR.val(u32::from(write))).value
}

/// The exception classes the hypervisor tells apart, as `aarch64-cpu` names them.
pub mod ec {
    use aarch64_cpu::registers::ESR_EL2::EC::Value as Class;

    pub const UNKNOWN: u8 = Class::Unknown as u8;
    pub const WFX: u8 = Class::TrappedWFIorWFE as u8;
    pub const FP_ACCESS: u8 = Class::TrappedFP as u8;
    pub const ILLEGAL_STATE: u8 = Class::IllegalExecutionState as u8;
    pub const SVC64: u8 = Class::SVC64 as u8;
    pub const HVC64: u8 = Class::HVC64 as u8;
    pub const SMC64: u8 = Class::SMC64 as u8;
    pub const SYSREG: u8 = Class::TrappedMsrMrs as u8;
    pub const IABT_LOWER: u8 = Class::InstrAbortLowerEL as u8;
    pub const IABT_CURRENT: u8 = Class::InstrAbortCurrentEL as u8;
    pub const PC_ALIGNMENT: u8 = Class::PCAlignmentFault as u8;
    pub const DABT_LOWER: u8 = Class::DataAbortLowerEL as u8;
    pub const DABT_CURRENT: u8 = Class::DataAbortCurrentEL as u8;
    pub const SP_ALIGNMENT: u8 = Class::SPAlignmentFault as u8;
    pub const SERROR: u8 = Class::SError as u8;
    pub const BRK64: u8 = Class::Brk64 as u8;
}

register_bitfields! {u32,
    /// The ISS of a data abort (Arm ARM D17.2.37.10).
    pub DATA_ABORT_ISS [
        /// The fault status code.
        DFSC OFFSET(0) NUMBITS(6) [],
        /// Write, not read.
        WNR OFFSET(6) NUMBITS(1) [],
        /// The register is 64 bits wide.
        SF OFFSET(15) NUMBITS(1) [],
        /// The general register transferred; 31 is XZR.
        SRT OFFSET(16) NUMBITS(5) [],
        /// Sign-extend the loaded value.
        SSE OFFSET(21) NUMBITS(1) [],
        /// log2 of the access width in bytes.
        SAS OFFSET(22) NUMBITS(2) [],
        /// Bits 23:14 are valid. Set only for a load or store of a single
        /// general register without writeback (not a pair, exclusive,
        /// SIMD or writeback access).
        ISV OFFSET(24) NUMBITS(1) []
    ],
    /// The ISS of a trapped MSR, MRS or system instruction (EC 0x18).
    pub SYSREG_ISS [
        /// Read (MRS), not write.
        DIRECTION OFFSET(0) NUMBITS(1) [],
        CRM OFFSET(1) NUMBITS(4) [],
        RT OFFSET(5) NUMBITS(5) [],
        CRN OFFSET(10) NUMBITS(4) [],
        OP1 OFFSET(14) NUMBITS(3) [],
        OP2 OFFSET(17) NUMBITS(3) [],
        OP0 OFFSET(20) NUMBITS(2) []
    ]
}

/// A name for the exception class, for crash reports.
pub fn class_name(class: u8) -> &'static str {
    match class {
        ec::UNKNOWN => "unknown reason (undefined instruction)",
        ec::WFX => "WFI/WFE",
        0x03 | 0x04 | 0x05 | 0x06 | 0x0c => "trapped AArch32 coprocessor access",
        ec::FP_ACCESS => "SIMD/FP access",
        ec::ILLEGAL_STATE => "illegal execution state",
        0x11 => "SVC (AArch32)",
        0x12 => "HVC (AArch32)",
        0x13 => "SMC (AArch32)",
        ec::SVC64 => "SVC",
        ec::HVC64 => "HVC",
        ec::SMC64 => "SMC",
        ec::SYSREG => "trapped system register access",
        0x19 => "SVE access",
        ec::IABT_LOWER => "instruction abort from a lower EL",
        ec::IABT_CURRENT => "instruction abort at EL2",
        ec::PC_ALIGNMENT => "PC alignment fault",
        ec::DABT_LOWER => "data abort from a lower EL",
        ec::DABT_CURRENT => "data abort at EL2",
        ec::SP_ALIGNMENT => "SP alignment fault",
        0x28 | 0x2c => "floating-point exception",
        ec::SERROR => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        ec::BRK64 => "BRK instruction",
        _ => "reserved exception class",
    }
}

/// For data and instruction aborts: the fault status code, ISS bits [5:0].
pub fn fault_status_name(iss: u32) -> &'static str {
    match DATA_ABORT_ISS::DFSC.read(iss) {
        0x00..=0x03 => "address size fault",
        0x04..=0x07 => "translation fault",
        0x09..=0x0b => "access flag fault",
        0x0d..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x21 => "alignment fault",
        0x30 => "TLB conflict abort",
        _ => "other fault",
    }
}

/// For data aborts: whether the access was a write (ISS.WnR).
pub fn is_write(iss: u32) -> bool {
    DATA_ABORT_ISS::WNR.is_set(iss)
}

/// For aborts: whether the fault status is a translation fault (any level).
pub fn is_translation_fault(iss: u32) -> bool {
    (0x04..=0x07).contains(&DATA_ABORT_ISS::DFSC.read(iss))
}

/// A data abort's description of the access (ISS.ISV set): enough to
/// emulate the instruction without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataAccess {
    /// 1, 2, 4 or 8 bytes.
    pub width: u8,
    pub write: bool,
    /// The general register transferred; 31 is XZR.
    pub register: u8,
    /// Loads: sign-extend the value.
    pub sign_extend: bool,
    /// Loads: the register is 64 bits wide (else 32, upper half zeroed).
    pub sixty_four: bool,
}

/// Decodes a data abort's ISS; `None` when the syndrome does not describe
/// the access (ISV clear: load/store pair, writeback, SIMD...), which the
/// hypervisor then refuses rather than decode the instruction.
pub fn data_access(iss: u32) -> Option<DataAccess> {
    use DATA_ABORT_ISS::*;
    if !ISV.is_set(iss) {
        return None;
    }
    Some(DataAccess {
        width: 1 << SAS.read(iss),
        write: WNR.is_set(iss),
        register: SRT.read(iss) as u8,
        sign_extend: SSE.is_set(iss),
        sixty_four: SF.is_set(iss),
    })
}

impl DataAccess {
    /// What a load puts in its register, from `value` as read (zero
    /// upper bits beyond `width`).
    pub fn loaded(&self, value: u64) -> u64 {
        let bits = u32::from(self.width) * 8;
        let value = if bits == 64 { value } else { value & ((1 << bits) - 1) };
        let value = if self.sign_extend && bits < 64 {
            let shift = 64 - bits;
            (((value << shift) as i64) >> shift) as u64
        } else {
            value
        };
        if self.sixty_four { value } else { value & 0xffff_ffff }
    }

    /// What a store writes, from its register's value.
    pub fn stored(&self, register_value: u64) -> u64 {
        let bits = u32::from(self.width) * 8;
        if bits == 64 { register_value } else { register_value & ((1 << bits) - 1) }
    }
}

/// A system register's encoding, (op0, op1, CRn, CRm, op2), as in `S3_0_C12_C11_5`.
pub type SysRegEncoding = (u8, u8, u8, u8, u8);

/// A trapped MSR/MRS (EC 0x18): which system register, which general
/// register, which direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysRegAccess {
    pub encoding: SysRegEncoding,
    /// The general register transferred; 31 is XZR.
    pub register: u8,
    pub read: bool,
}

pub fn sysreg_access(iss: u32) -> SysRegAccess {
    use SYSREG_ISS::*;
    let field = |f: tock_registers::fields::Field<u32, SYSREG_ISS::Register>| f.read(iss) as u8;
    SysRegAccess {
        encoding: (field(OP0), field(OP1), field(CRN), field(CRM), field(OP2)),
        register: field(RT),
        read: DIRECTION.is_set(iss),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_data_accesses() {
        // ldr w3, [x0]: ISV, 32-bit, SRT 3, read.
        let iss = (1 << 24) | (2 << 22) | (3 << 16);
        let a = data_access(iss).unwrap();
        assert_eq!((a.width, a.write, a.register, a.sixty_four), (4, false, 3, false));
        assert_eq!(a.loaded(0xdead_beef_1234_5678), 0x1234_5678);
        // ldrsb x5, [x1]: sign-extended byte into a 64-bit register.
        let a = data_access((1 << 24) | (1 << 21) | (5 << 16) | (1 << 15)).unwrap();
        assert_eq!(a.width, 1);
        assert_eq!(a.loaded(0x80), 0xffff_ffff_ffff_ff80);
        // ldrsh w5: sign-extended into 32 bits only.
        let a = data_access((1 << 24) | (1 << 22) | (1 << 21) | (5 << 16)).unwrap();
        assert_eq!(a.loaded(0x8000), 0xffff_8000);
        // str x7: 64-bit write.
        let a = data_access((1 << 24) | (3 << 22) | (7 << 16) | (1 << 6) | (1 << 15)).unwrap();
        assert!(a.write);
        assert_eq!(a.stored(u64::MAX), u64::MAX);
        let byte = data_access((1 << 24) | (1 << 6)).unwrap();
        assert_eq!(byte.stored(0x1ff), 0xff);
        // No syndrome: nothing to emulate.
        assert_eq!(data_access(1 << 6), None);
    }

    #[test]
    fn decodes_sysreg_traps() {
        // msr ICC_SGI1R_EL1, x2 = S3_0_C12_C11_5.
        let iss = ((3 << 20) | (5 << 17)) | (12 << 10) | (2 << 5) | (11 << 1);
        let a = sysreg_access(iss);
        assert_eq!(a.encoding, (3, 0, 12, 11, 5));
        assert_eq!(a.register, 2);
        assert!(!a.read);
        assert!(sysreg_access(iss | 1).read);
    }

    #[test]
    fn decodes_classes_and_faults() {
        // A translation fault at level 3 on a write, taken from EL2.
        let esr = (0x25u64 << 26) | (1 << 25) | (1 << 6) | 0x07;
        assert_eq!(exception_class(esr), ec::DABT_CURRENT);
        assert_eq!(class_name(exception_class(esr)), "data abort at EL2");
        assert_eq!(fault_status_name(iss(esr)), "translation fault");
        assert!(is_write(iss(esr)));
        assert_eq!(class_name(0x16), "HVC");
        assert_eq!(class_name(0x3f), "reserved exception class");
        assert_eq!(iss(u64::MAX), 0x1ff_ffff);
    }

    #[test]
    fn builds_injected_syndromes() {
        assert_eq!(syndrome(ec::UNKNOWN, 0), 1 << 25);
        let abort = syndrome(ec::DABT_CURRENT, external_abort_iss(true));
        assert_eq!(abort, (0x25 << 26) | (1 << 25) | (1 << 6) | 0x10);
        assert_eq!(fault_status_name(iss(abort)), "synchronous external abort");
        assert_eq!(external_abort_iss(false), 0x10);
    }
}
