//! Which extended regions Dom0 is told about, per `ext-regions=`: the
//! search, none, or one checked range. Pure; the boot path supplies the
//! free memory and what is taken.
//!
//! Every bad value, malformed or refused, advertises none: the fixed range
//! is the operator's override for boards where the search is wrong, so
//! falling back to the search would silently use what they tried to avoid.
//! Linux then maps grants over ballooned RAM of its own, and still boots.

use super::ext_regions::{self, FixedRegionError, Placement, Regions};
use crate::cmdline::ExtRegions;
use crate::dt::devices::{DeviceRange, DeviceRangeKind};
use crate::mm::audit::{Owned, owned};
use crate::mm::range::PhysRange;
use alloc::vec::Vec;
use core::fmt;

/// Everything an extended region must stay clear of, each with a name for
/// error messages. One list for the search and a fixed range alike.
pub struct Taken {
    pub ranges: Vec<(&'static str, PhysRange)>,
}

impl Taken {
    /// Dom0's RAM and grant-table region, reserved memory, every device the
    /// tree names (enabled or not: a disabled one still answers there) and
    /// the hypervisor's own memory. The search, looking only in free
    /// memory, never meets the last two; a fixed range can.
    pub fn new(
        grant_region: PhysRange,
        dom0_ram: &[PhysRange],
        reserved: impl IntoIterator<Item = PhysRange>,
        devices: &[DeviceRange],
        hypervisor: &[Owned],
    ) -> Self {
        let mut ranges = alloc::vec![("the grant-table region", grant_region)];
        ranges.extend(dom0_ram.iter().map(|&bank| ("Dom0 RAM", bank)));
        ranges.extend(reserved.into_iter().map(|range| ("reserved memory", range)));
        ranges.extend(devices.iter().map(|d| {
            let what = match (d.kind, d.enabled) {
                (DeviceRangeKind::Reg, true) => "a host device",
                (DeviceRangeKind::Reg, false) => "a disabled host device",
                (DeviceRangeKind::PciWindow, true) => "a PCI aperture",
                (DeviceRangeKind::PciWindow, false) => "a disabled PCI aperture",
            };
            (what, d.range)
        }));
        ranges.extend(hypervisor.iter().map(|o| (hypervisor_name(o.what), o.range)));
        Self { ranges }
    }
}

/// How a refusal names a piece of the hypervisor's memory.
fn hypervisor_name(what: &str) -> &'static str {
    match what {
        owned::IMAGE => "the hypervisor's image",
        owned::STACKS => "the hypervisor's boot stacks",
        owned::HEAP => "the hypervisor's heap",
        owned::METADATA => "the frame allocator's metadata",
        owned::TABLE => "the hypervisor's stage-2 tables",
        owned::GRANT_FRAME => "the grant-table frames",
        owned::KEPT_DEVICE => "a device the hypervisor keeps",
        _ => "the hypervisor's memory",
    }
}

/// The regions to advertise, and what to tell the operator about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub regions: Regions,
    pub note: Option<Note>,
}

/// One log line about the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// A malformed value: none advertised.
    Malformed(&'static str),
    /// A fixed range that broke a rule: none advertised.
    Refused(FixedRegionError),
    /// A fixed range not wholly in RAM, advertised as given.
    OutsideRam { range: PhysRange, partly: bool },
}

impl Note {
    /// An error, not a warning: the operator's value was not used.
    pub fn is_error(&self) -> bool {
        !matches!(self, Self::OutsideRam { .. })
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NONE: &str = "no extended regions advertised";
        match self {
            Self::Malformed(why) => write!(f, "ext-regions: the given value is malformed: {why}; {NONE}"),
            Self::Refused(why) => write!(f, "ext-regions: the given range is refused: {why}; {NONE}"),
            Self::OutsideRam { range, partly } => write!(
                f,
                "ext-regions: {range} lies {}outside RAM; advertised as given, on the operator's word",
                if *partly { "partly " } else { "" }
            ),
        }
    }
}

/// The regions to advertise for `option`, given the RAM banks, the free
/// memory and what is taken.
pub fn choose(
    option: ExtRegions,
    ram: &[PhysRange],
    free: impl IntoIterator<Item = PhysRange>,
    taken: &Taken,
    ipa_limit: u64,
) -> Choice {
    let none = |note| Choice { regions: Regions::default(), note };
    match option {
        ExtRegions::Disabled => none(None),
        ExtRegions::Malformed { why } => none(Some(Note::Malformed(why))),
        ExtRegions::Auto => {
            let exclude: Vec<PhysRange> = taken.ranges.iter().map(|&(_, r)| r).collect();
            Choice { regions: ext_regions::find(free, &exclude, ipa_limit), note: None }
        }
        ExtRegions::Fixed { start, size } => {
            let free: Vec<PhysRange> = free.into_iter().collect();
            match ext_regions::check_fixed(start, size, ipa_limit, &taken.ranges, ram, &free) {
                Ok(fixed) => Choice {
                    regions: Regions { regions: alloc::vec![fixed.range], dropped: 0 },
                    note: match fixed.placement {
                        Placement::FreeRam => None,
                        Placement::PartlyOutsideRam => Some(Note::OutsideRam { range: fixed.range, partly: true }),
                        Placement::OutsideRam => Some(Note::OutsideRam { range: fixed.range, partly: false }),
                    },
                },
                Err(why) => none(Some(Note::Refused(why))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const LIMIT: u64 = 1 << 44;

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    /// A 2 GiB board (RAM 0x4000_0000->0xc000_0000) as the boot sees it
    /// when regions are chosen: Dom0 at 0x6000_0000, the hypervisor's image,
    /// heap and metadata at the bottom, a UART, a disabled device.
    struct Board {
        ram: [PhysRange; 1],
        free: Vec<PhysRange>,
        taken: Taken,
    }

    fn board() -> Board {
        let device =
            |start: u64, enabled| DeviceRange { range: r(start, start + 0x1000), kind: DeviceRangeKind::Reg, enabled };
        let hypervisor = [
            Owned { range: r(0x4020_0000, 0x4060_0000), what: owned::IMAGE },
            Owned { range: r(0x4040_0000, 0x4060_0000), what: owned::STACKS },
            Owned { range: r(0x4100_0000, 0x4200_0000), what: owned::HEAP },
            Owned { range: r(0x4000_0000, 0x4001_0000), what: owned::METADATA },
            Owned { range: r(0x4300_0000, 0x4300_1000), what: owned::GRANT_FRAME },
        ];
        let taken = Taken::new(
            r(0x4020_0000, 0x4024_0000),
            &[r(0x6000_0000, 0x8000_0000)],
            [r(0x5000_0000, 0x5200_0000)],
            &[device(0x900_0000, true), device(0x1000_0000, false)],
            &hypervisor,
        );
        let free = alloc::vec![
            r(0x4001_0000, 0x4020_0000),
            r(0x4060_0000, 0x4100_0000),
            r(0x4200_0000, 0x4300_0000),
            r(0x4300_1000, 0x5000_0000),
            r(0x5200_0000, 0x6000_0000),
            r(0x8000_0000, 0xc000_0000),
        ];
        Board { ram: [r(0x4000_0000, 0xc000_0000)], free, taken }
    }

    fn choose_on_board(option: ExtRegions) -> Choice {
        let board = board();
        choose(option, &board.ram, board.free.iter().copied(), &board.taken, LIMIT)
    }

    fn fixed(start: u64, size: u64) -> Choice {
        choose_on_board(ExtRegions::Fixed { start, size })
    }

    /// The refusal of a fixed range, as logged; nothing is advertised.
    fn refusal(start: u64, size: u64) -> String {
        let choice = fixed(start, size);
        assert!(choice.regions.regions.is_empty(), "{start:#x}: {choice:?}");
        let note = choice.note.unwrap_or_else(|| panic!("{start:#x}+{size:#x} accepted"));
        assert!(note.is_error());
        note.to_string()
    }

    #[test]
    fn the_search_none_and_a_fixed_range_in_free_ram() {
        let auto = choose_on_board(ExtRegions::Auto);
        let found = vec![r(0x4320_0000, 0x5000_0000), r(0x5200_0000, 0x6000_0000), r(0x8000_0000, 0xc000_0000)];
        assert_eq!(auto.regions.regions, found);
        assert_eq!(auto.note, None);
        assert_eq!(choose_on_board(ExtRegions::Disabled), Choice { regions: Regions::default(), note: None });
        let in_ram = fixed(0x8000_0000, 1 << 30);
        assert_eq!(in_ram.regions.regions, vec![r(0x8000_0000, 0xc000_0000)]);
        assert_eq!(in_ram.note, None, "in free RAM, as the search would find it: nothing to say");
    }

    /// Every rule a fixed range must pass, each named in the log line.
    #[test]
    fn each_fixed_range_rule_refuses_with_its_name() {
        const NONE: &str = "; no extended regions advertised";
        for (start, size, why) in [
            (0x8000_0000, 2 * MIB, "smaller than the 64 MiB minimum"),
            (0x8010_0000, 64 * MIB, "start and size must be multiples of 2 MiB"),
            (0x8000_0000, 65 * MIB, "start and size must be multiples of 2 MiB"),
            (LIMIT - 32 * MIB, 64 * MIB, "ends beyond the 0x100000000000 IPA space"),
            (0x7000_0000, 1 << 30, "overlaps Dom0 RAM 0x60000000->0x80000000"),
            (0x4000_0000, 64 * MIB, "overlaps the frame allocator's metadata 0x40000000->0x40010000"),
            (0x4100_0000, 64 * MIB, "overlaps the hypervisor's heap 0x41000000->0x42000000"),
            (0x4020_0000, 64 * MIB, "overlaps the grant-table region 0x40200000->0x40240000"),
            (0x4040_0000, 64 * MIB, "overlaps the hypervisor's image 0x40200000->0x40600000"),
            (0x4280_0000, 64 * MIB, "overlaps the grant-table frames 0x43000000->0x43001000"),
            (0x4e00_0000, 64 * MIB, "overlaps reserved memory 0x50000000->0x52000000"),
            (0x800_0000, 64 * MIB, "overlaps a host device 0x09000000->0x09001000"),
            (0x1000_0000, 64 * MIB, "overlaps a disabled host device 0x10000000->0x10001000"),
        ] {
            let line = refusal(start, size);
            assert!(line.starts_with("ext-regions: the given range is refused: "), "{line}");
            assert!(line.contains(why) && line.ends_with(NONE), "{start:#x}+{size:#x}: {line}");
        }
    }

    #[test]
    fn a_fixed_range_outside_ram_is_the_operators_word() {
        let outside = fixed(0x1_0000_0000, 1 << 30);
        assert_eq!(outside.regions.regions, vec![r(0x1_0000_0000, 0x1_4000_0000)]);
        let note = outside.note.expect("a warning");
        assert_eq!(note, Note::OutsideRam { range: r(0x1_0000_0000, 0x1_4000_0000), partly: false });
        assert!(!note.is_error());
        assert_eq!(
            note.to_string(),
            "ext-regions: 0x100000000->0x140000000 lies outside RAM; advertised as given, on the operator's word"
        );
        let partly = fixed(0xa000_0000, 1 << 30);
        assert_eq!(partly.note, Some(Note::OutsideRam { range: r(0xa000_0000, 0xe000_0000), partly: true }));
    }

    /// A malformed value ends like a refused range: nothing advertised,
    /// and an error saying why, never the search.
    #[test]
    fn a_malformed_value_advertises_none() {
        let choice = choose_on_board(ExtRegions::Malformed { why: "expected yes, no or <start>,<size>" });
        assert!(choice.regions.regions.is_empty());
        let note = choice.note.unwrap();
        assert!(note.is_error());
        assert_eq!(
            note.to_string(),
            "ext-regions: the given value is malformed: expected yes, no or <start>,<size>; no extended regions advertised"
        );
        let parsed = crate::cmdline::Options::parse("ext-regions=0x80000000").options.ext_regions;
        assert_eq!(choose_on_board(parsed), choice);
    }
}
