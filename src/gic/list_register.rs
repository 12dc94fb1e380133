//! ICH_LR<n>_EL2 values: one virtual interrupt each (Arm IHI 0069, 12.5.10).
//! vINTID in bits 31:0, pINTID 44:32 (with HW), priority 55:48, group 60,
//! HW 61, state 63:62: `aarch64-cpu`'s fields (all list registers share
//! ICH_LR0_EL2's layout).

use aarch64_cpu::registers::ICH_LR0_EL2 as LR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Invalid,
    Pending,
    Active,
    PendingActive,
}

/// The priority of every interrupt Dom0 receives: Linux's default
/// (GICD_INT_DEF_PRI), above its default priority mask of 0xf0.
pub const GUEST_PRIORITY: u8 = 0xa0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRegister(pub u64);

impl ListRegister {
    /// A pending virtual interrupt that is the physical interrupt `intid`:
    /// Dom0's deactivation deactivates the physical one (HW=1).
    pub fn hardware(intid: u32) -> Self {
        Self::pending(intid).with_hw(intid)
    }

    /// A pending purely virtual interrupt (event PPI, forwarded SGIs).
    pub fn virtual_only(intid: u32) -> Self {
        Self::pending(intid)
    }

    fn pending(intid: u32) -> Self {
        let value = LR::State::Pending
            + LR::Group::SET
            + LR::Priority.val(u64::from(GUEST_PRIORITY))
            + LR::vINTID.val(u64::from(intid));
        Self(value.value)
    }

    fn with_hw(self, physical: u32) -> Self {
        // pINTID is 13 bits; INTIDs handed over are below 1020.
        Self(self.0 | (LR::HW::SET + LR::pINTID.val(u64::from(physical) & 0x1fff)).value)
    }

    pub fn intid(self) -> u32 {
        LR::vINTID.read(self.0) as u32
    }

    pub fn is_hardware(self) -> bool {
        LR::HW.is_set(self.0)
    }

    pub fn state(self) -> State {
        match LR::State.read_as_enum(self.0) {
            Some(LR::State::Value::Pending) => State::Pending,
            Some(LR::State::Value::Active) => State::Active,
            Some(LR::State::Value::PendingAndActive) => State::PendingActive,
            _ => State::Invalid,
        }
    }

    /// The same interrupt made pending again while Dom0 still handles it
    /// (only for purely virtual ones: a hardware one cannot fire again
    /// until Dom0 deactivates it).
    pub fn repended(self) -> Self {
        match self.state() {
            State::Active => Self(LR::State::PendingAndActive.modify(self.0)),
            _ => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_hardware_and_virtual_interrupts() {
        let timer = ListRegister::hardware(27);
        assert_eq!(timer.0, 0x70a0_001b_0000_001b);
        assert_eq!((timer.intid(), timer.state(), timer.is_hardware()), (27, State::Pending, true));
        let event = ListRegister::virtual_only(16);
        assert_eq!(event.0, 0x50a0_0000_0000_0010);
        assert!(!event.is_hardware());
        assert_eq!(ListRegister(0).state(), State::Invalid);
        let active = ListRegister((2 << 62) | 16);
        assert_eq!(active.repended().state(), State::PendingActive);
        assert_eq!(event.repended(), event);
    }
}
