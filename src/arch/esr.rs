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

#[cfg(test)]
mod tests {
    use super::*;

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
