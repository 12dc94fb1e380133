//! Which extended regions Dom0 is told about, per `ext-regions=`: the
//! search, none, or one checked range. Pure; the boot path supplies the
//! free memory and what is taken.

use super::ext_regions::{self, FixedRegionError, Regions};
use crate::cmdline::ExtRegions;
use crate::mm::range::PhysRange;
use alloc::vec::Vec;

/// Everything an extended region must stay clear of, each with a name for
/// error messages.
pub struct Taken {
    pub ranges: Vec<(&'static str, PhysRange)>,
}

/// The regions to advertise, and a refusal to log if a fixed range was bad.
pub fn choose(
    option: ExtRegions,
    free: impl IntoIterator<Item = PhysRange>,
    taken: &Taken,
    ipa_limit: u64,
) -> (Regions, Option<FixedRegionError>) {
    match option {
        ExtRegions::Disabled => (Regions::default(), None),
        ExtRegions::Auto => {
            let exclude: Vec<PhysRange> = taken.ranges.iter().map(|&(_, r)| r).collect();
            (ext_regions::find(free, &exclude, ipa_limit), None)
        }
        ExtRegions::Fixed { start, size } => match ext_regions::check_fixed(start, size, ipa_limit, &taken.ranges) {
            Ok(range) => (Regions { regions: alloc::vec![range], dropped: 0 }, None),
            // A bad range advertises nothing: the user asked for exactly
            // that range, so guessing another would surprise more.
            Err(e) => (Regions::default(), Some(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_option() {
        let taken = Taken { ranges: alloc::vec![("Dom0 RAM", PhysRange::new(0x6000_0000, 0x8000_0000))] };
        let free = [PhysRange::new(0x4000_0000, 0x6000_0000), PhysRange::new(0x8000_0000, 0xc000_0000)];
        let limit = 1 << 44;
        let (auto, e) = choose(ExtRegions::Auto, free, &taken, limit);
        assert_eq!(auto.regions, free.to_vec());
        assert!(e.is_none());
        let (none, _) = choose(ExtRegions::Disabled, free, &taken, limit);
        assert!(none.regions.is_empty());
        let (fixed, e) = choose(ExtRegions::Fixed { start: 0x1_0000_0000, size: 1 << 30 }, free, &taken, limit);
        assert_eq!(fixed.regions, vec![PhysRange::new(0x1_0000_0000, 0x1_4000_0000)]);
        assert!(e.is_none());
        let (bad, e) = choose(ExtRegions::Fixed { start: 0x7000_0000, size: 1 << 30 }, free, &taken, limit);
        assert!(bad.regions.is_empty());
        assert!(matches!(e, Some(FixedRegionError::Overlaps { what: "Dom0 RAM", .. })));
    }
}
