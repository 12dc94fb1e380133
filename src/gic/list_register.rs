//! List-register values: one virtual interrupt each, as the injection
//! logic and the overflow queue see it ([`ListRegister`]), and its two
//! hardware encodings ([`Encoding`]):
//!
//! - GICv3's ICH_LR<n>_EL2 (Arm IHI 0069, 12.5.10): vINTID in bits 31:0,
//!   pINTID 44:32 (with HW), priority 55:48, group 60, HW 61, state 63:62:
//!   `aarch64-cpu`'s fields (all list registers share ICH_LR0_EL2's layout).
//! - GICv2's GICH_LRn (Arm IHI 0048B, 5.3.11), 32 bits: VirtualID 9:0,
//!   PhysicalID 19:10 (with HW), priority 27:23 (its top five bits), state
//!   29:28, Grp1 30, HW 31.
//!
//! Either can ask for an EOI maintenance interrupt when the guest ends a
//! purely virtual interrupt (GICv3 bit 41, GICv2 bit 19, both only with
//! HW = 0): how a level-triggered emulated interrupt whose line is still
//! high gets delivered again.

use aarch64_cpu::registers::ICH_LR0_EL2 as LR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Invalid,
    Pending,
    Active,
    PendingActive,
}

impl State {
    /// The two-bit state field both encodings share.
    fn bits(self) -> u64 {
        match self {
            Self::Invalid => 0,
            Self::Pending => 1,
            Self::Active => 2,
            Self::PendingActive => 3,
        }
    }

    fn from_bits(bits: u64) -> Self {
        match bits & 3 {
            1 => Self::Pending,
            2 => Self::Active,
            3 => Self::PendingActive,
            _ => Self::Invalid,
        }
    }
}

/// The priority of every interrupt Dom0 receives: Linux's default
/// (GICD_INT_DEF_PRI), above its default priority mask of 0xf0.
pub const GUEST_PRIORITY: u8 = 0xa0;

/// One virtual interrupt, whatever the GIC: the interrupt, whether it is
/// the physical interrupt of the same number (HW=1), its state and its
/// priority ([`GUEST_PRIORITY`] for Dom0's, whose priorities are the
/// physical GIC's; a DomU's own from its emulated GIC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRegister {
    intid: u32,
    hardware: bool,
    state: State,
    priority: u8,
    /// A maintenance interrupt when the guest ends it (purely virtual only).
    eoi_maintenance: bool,
}

/// ICH_LR<n>_EL2.EOI and GICH_LRn.EOI (with HW = 0).
const V3_EOI: u64 = 1 << 41;
const V2_EOI: u64 = 1 << 19;

impl ListRegister {
    /// A pending virtual interrupt that is the physical interrupt `intid`:
    /// Dom0's deactivation deactivates the physical one (HW=1).
    pub fn hardware(intid: u32) -> Self {
        Self { intid, hardware: true, state: State::Pending, priority: GUEST_PRIORITY, eoi_maintenance: false }
    }

    /// A pending purely virtual interrupt (event PPI, forwarded SGIs).
    pub fn virtual_only(intid: u32) -> Self {
        Self { intid, hardware: false, state: State::Pending, priority: GUEST_PRIORITY, eoi_maintenance: false }
    }

    /// An empty list register.
    pub const EMPTY: Self =
        Self { intid: 0, hardware: false, state: State::Invalid, priority: GUEST_PRIORITY, eoi_maintenance: false };

    /// The same interrupt at the guest's `priority` (a DomU's, as its
    /// emulated GIC holds it).
    pub fn with_priority(self, priority: u8) -> Self {
        Self { priority, ..self }
    }

    /// The same purely virtual interrupt, asking for a maintenance
    /// interrupt when the guest ends it (a level-triggered one, whose line
    /// is looked at again then). A hardware one has no such bit.
    pub fn with_eoi_maintenance(self) -> Self {
        Self { eoi_maintenance: !self.hardware, ..self }
    }

    pub fn asks_eoi_maintenance(self) -> bool {
        self.eoi_maintenance
    }

    pub fn priority(self) -> u8 {
        self.priority
    }

    pub fn intid(self) -> u32 {
        self.intid
    }

    pub fn is_hardware(self) -> bool {
        self.hardware
    }

    pub fn state(self) -> State {
        self.state
    }

    /// The same interrupt made pending again while the guest still
    /// handles it, or after it ended it while the list register waits for
    /// its EOI maintenance (only for purely virtual ones: a hardware one
    /// cannot fire again until the guest deactivates it).
    pub fn repended(self) -> Self {
        match self.state {
            State::Active => Self { state: State::PendingActive, ..self },
            State::Invalid => Self { state: State::Pending, ..self },
            _ => self,
        }
    }
}

/// How the CPU's list registers encode a [`ListRegister`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// ICH_LR<n>_EL2; group 1, which Linux's GICv3 driver enables.
    V3,
    /// GICH_LRn; group 0, the only group Linux's GICv2 driver enables at
    /// its CPU interface (GICC_CTLR.EnableGrp0).
    V2,
}

impl Encoding {
    pub fn encode(self, lr: ListRegister) -> u64 {
        if lr.state == State::Invalid {
            return 0;
        }
        match self {
            Self::V3 => {
                let mut value = LR::State.val(lr.state.bits())
                    + LR::Group::SET
                    + LR::Priority.val(u64::from(lr.priority))
                    + LR::vINTID.val(u64::from(lr.intid));
                if lr.hardware {
                    // pINTID is 13 bits; INTIDs handed over are below 1020.
                    value += LR::HW::SET + LR::pINTID.val(u64::from(lr.intid) & 0x1fff);
                }
                if lr.eoi_maintenance {
                    return value.value | V3_EOI;
                }
                value.value
            }
            Self::V2 => {
                let mut value =
                    (lr.state.bits() << 28) | (u64::from(lr.priority >> 3) << 23) | u64::from(lr.intid & 0x3ff);
                if lr.hardware {
                    value |= (1 << 31) | (u64::from(lr.intid & 0x3ff) << 10);
                } else if lr.eoi_maintenance {
                    value |= V2_EOI;
                }
                value
            }
        }
    }

    pub fn decode(self, raw: u64) -> ListRegister {
        match self {
            Self::V3 => ListRegister {
                intid: LR::vINTID.read(raw) as u32,
                hardware: LR::HW.is_set(raw),
                state: State::from_bits(LR::State.read(raw)),
                priority: LR::Priority.read(raw) as u8,
                eoi_maintenance: !LR::HW.is_set(raw) && raw & V3_EOI != 0,
            },
            Self::V2 => ListRegister {
                intid: (raw & 0x3ff) as u32,
                hardware: raw & (1 << 31) != 0,
                state: State::from_bits(raw >> 28),
                priority: (((raw >> 23) & 0x1f) << 3) as u8,
                eoi_maintenance: raw & (1 << 31) == 0 && raw & V2_EOI != 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_hardware_and_virtual_interrupts() {
        let timer = ListRegister::hardware(27);
        assert_eq!(Encoding::V3.encode(timer), 0x70a0_001b_0000_001b);
        assert_eq!((timer.intid(), timer.state(), timer.is_hardware()), (27, State::Pending, true));
        let event = ListRegister::virtual_only(16);
        assert_eq!(Encoding::V3.encode(event), 0x50a0_0000_0000_0010);
        assert!(!event.is_hardware());
        assert_eq!(Encoding::V3.decode(0).state(), State::Invalid);
        let active = Encoding::V3.decode((2 << 62) | (0xa0 << 48) | 16);
        assert_eq!(active.repended().state(), State::PendingActive);
        assert_eq!(Encoding::V3.encode(active.repended()), (3 << 62) | (1 << 60) | (0xa0 << 48) | 16);
        assert_eq!(event.repended(), event);
    }

    #[test]
    fn a_domus_priority_reaches_the_list_register() {
        let lr = ListRegister::virtual_only(27).with_priority(0x48);
        assert_eq!(Encoding::V3.encode(lr), 0x5048_0000_0000_001b);
        assert_eq!(Encoding::V3.decode(Encoding::V3.encode(lr)).priority(), 0x48);
        // GICv2 keeps the top five bits.
        assert_eq!(Encoding::V2.encode(lr) >> 23 & 0x1f, 0x48 >> 3);
        assert_eq!(Encoding::V2.decode(Encoding::V2.encode(lr)).priority(), 0x48);
    }

    #[test]
    fn encodes_gicv2_list_registers() {
        // HW, group 0, pending, priority 0xa0 >> 3 = 0x14, pINTID 27, vINTID 27.
        assert_eq!(Encoding::V2.encode(ListRegister::hardware(27)), 0x9a00_6c1b);
        assert_eq!(Encoding::V2.encode(ListRegister::virtual_only(16)), 0x1a00_0010);
        assert_eq!(Encoding::V2.encode(ListRegister::EMPTY), 0);
        assert_eq!(Encoding::V2.decode(0).state(), State::Invalid);
        let active = Encoding::V2.decode(0x2a00_0003);
        assert_eq!((active.intid(), active.state(), active.is_hardware()), (3, State::Active, false));
        assert_eq!(Encoding::V2.encode(active.repended()), 0x3a00_0003);
    }

    #[test]
    fn eoi_maintenance_is_bit_41_or_19_and_only_without_hw() {
        let level = ListRegister::virtual_only(32).with_priority(0xa0).with_eoi_maintenance();
        assert_eq!(Encoding::V3.encode(level), 0x50a0_0200_0000_0020);
        assert_eq!(Encoding::V2.encode(level), 0x1a08_0020);
        for encoding in [Encoding::V3, Encoding::V2] {
            assert_eq!(encoding.decode(encoding.encode(level)), level);
            let hardware = ListRegister::hardware(40).with_eoi_maintenance();
            assert!(!hardware.asks_eoi_maintenance());
            assert!(!encoding.decode(encoding.encode(hardware)).asks_eoi_maintenance());
        }
        // Ended, waiting for its maintenance: made pending again in place.
        let ended = ListRegister { state: State::Invalid, ..level };
        assert_eq!(ended.repended().state(), State::Pending);
        assert!(ended.repended().asks_eoi_maintenance());
    }

    #[test]
    fn both_encodings_round_trip() {
        for encoding in [Encoding::V3, Encoding::V2] {
            for intid in [0, 15, 16, 31, 32, 1019] {
                for lr in [ListRegister::hardware(intid), ListRegister::virtual_only(intid)] {
                    assert_eq!(encoding.decode(encoding.encode(lr)), lr, "{encoding:?} {lr:?}");
                    let active = ListRegister { state: State::Active, ..lr };
                    assert_eq!(encoding.decode(encoding.encode(active)), active);
                }
            }
        }
    }
}
