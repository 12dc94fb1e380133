//! Exceptions taken to EL2: `boot/vectors.S` saves a `TrapFrame` and calls
//! `handle_exception` (`src/router/`) with the vector's kind, decoded here.
//! A guest's are served by the router; the hypervisor's own end in a crash
//! report (`src/crash.rs`).

/// The interrupted context, as `boot/vectors.S` lays it out.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub regs: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    _pad: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 288);

impl TrapFrame {
    /// General register `r` as an instruction reads it: XZR reads as zero.
    pub fn register(&self, r: u8) -> u64 {
        self.regs.get(usize::from(r)).copied().unwrap_or(0)
    }

    /// Writes general register `r` as an instruction would: XZR discards it.
    pub fn set_register(&mut self, r: u8, value: u64) {
        if let Some(reg) = self.regs.get_mut(usize::from(r)) {
            *reg = value;
        }
    }
}

/// Where the exception came from: the vector table's four groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    El2Sp0,
    El2Spx,
    LowerA64,
    LowerA32,
}

impl Source {
    /// The vector group, from bits 3:2 of the vector's `kind`.
    pub fn of(kind: u64) -> Self {
        [Source::El2Sp0, Source::El2Spx, Source::LowerA64, Source::LowerA32][(kind >> 2) as usize & 3]
    }
}

pub const KIND_NAMES: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];

/// What the vector table's `kind` says about an exception: from a guest
/// (to be served), or taken at EL2 (a fault of the hypervisor's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    FromGuest(GuestException),
    AtEl2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestException {
    Synchronous,
    Irq,
    Fiq,
    SError,
}

impl Taken {
    /// Decodes the vector's `kind`: the source in bits 3:2, the type in 1:0.
    pub fn from_kind(kind: u64) -> Self {
        let source = Source::of(kind);
        // Nothing a guest does, in AArch64 or AArch32 state, may stop us.
        if matches!(source, Source::LowerA64 | Source::LowerA32) {
            let types = [GuestException::Synchronous, GuestException::Irq, GuestException::Fiq, GuestException::SError];
            Taken::FromGuest(types[kind as usize & 3])
        } else {
            Taken::AtEl2
        }
    }
}
