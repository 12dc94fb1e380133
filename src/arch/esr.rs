//! Decoding the Exception Syndrome Register (Arm ARM D17.2.37, ESR_EL2).

/// The exception class, ESR bits [31:26].
pub fn exception_class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// The instruction-specific syndrome, ESR bits [24:0].
pub fn iss(esr: u64) -> u32 {
    (esr & 0x1ff_ffff) as u32
}

pub mod ec {
    pub const UNKNOWN: u8 = 0x00;
    pub const WFX: u8 = 0x01;
    pub const FP_ACCESS: u8 = 0x07;
    pub const ILLEGAL_STATE: u8 = 0x0e;
    pub const SVC64: u8 = 0x15;
    pub const HVC64: u8 = 0x16;
    pub const SMC64: u8 = 0x17;
    pub const SYSREG: u8 = 0x18;
    pub const IABT_LOWER: u8 = 0x20;
    pub const IABT_CURRENT: u8 = 0x21;
    pub const PC_ALIGNMENT: u8 = 0x22;
    pub const DABT_LOWER: u8 = 0x24;
    pub const DABT_CURRENT: u8 = 0x25;
    pub const SP_ALIGNMENT: u8 = 0x26;
    pub const SERROR: u8 = 0x2f;
    pub const BRK64: u8 = 0x3c;
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
    match iss & 0x3f {
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
    iss & (1 << 6) != 0
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
/// the access (ISV clear: load/store pair, writeback, SIMD...).
pub fn data_access(iss: u32) -> Option<DataAccess> {
    if iss & (1 << 24) == 0 {
        return None;
    }
    Some(DataAccess {
        width: 1 << ((iss >> 22) & 3),
        write: is_write(iss),
        register: ((iss >> 16) & 0x1f) as u8,
        sign_extend: iss & (1 << 21) != 0,
        sixty_four: iss & (1 << 15) != 0,
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

/// A trapped MSR/MRS (EC 0x18): which system register, which general
/// register, which direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysRegAccess {
    /// (op0, op1, CRn, CRm, op2), as in `S3_0_C12_C11_5`.
    pub encoding: (u8, u8, u8, u8, u8),
    pub register: u8,
    pub read: bool,
}

pub fn sysreg_access(iss: u32) -> SysRegAccess {
    let field = |shift: u32, bits: u32| ((iss >> shift) & ((1 << bits) - 1)) as u8;
    SysRegAccess {
        encoding: (field(20, 2), field(14, 3), field(10, 4), field(1, 4), field(17, 3)),
        register: field(5, 5),
        read: iss & 1 != 0,
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
}
