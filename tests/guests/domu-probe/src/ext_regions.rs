//! The DomU probe's extended-region check (bootarg
//! `expect-ext=<start>-<end>,...` in hex, or `expect-ext=none`): entries
//! 1..N of its `/hypervisor` node's `reg` (two address and two size cells
//! each, after the grant table) must be exactly those ranges, in order.

use core::fmt;

/// Reads the 64-bit big-endian number at `at` of `reg`.
fn cell64(reg: &[u8], at: usize) -> Option<u64> {
    let bytes = reg.get(at..at + 8)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x").unwrap_or(text), 16).ok()
}

/// Checks `reg` (the whole property) against the `expect-ext=` bootarg;
/// nothing if the bootarg is absent.
pub fn check(reg: &[u8], bootargs: &str, check: &mut dyn FnMut(bool, fmt::Arguments<'_>)) {
    let Some(expected) = bootargs.split(' ').find_map(|t| t.strip_prefix("expect-ext=")) else { return };
    let entries = reg.len() / 16;
    let mut ok = reg.len().is_multiple_of(16) && entries >= 1;
    let mut index = 1;
    let wanted = expected.split(',').filter(|w| *w != "none");
    for want in wanted {
        let range = want.split_once('-').and_then(|(s, e)| Some((hex(s)?, hex(e)?)));
        let got = cell64(reg, index * 16).zip(cell64(reg, index * 16 + 8)).map(|(s, z)| (s, s.wrapping_add(z)));
        let same = range.is_some() && range == got;
        check(same, format_args!("/hypervisor extended region {}: {got:x?} (expected {want})", index - 1));
        ok &= same;
        index += 1;
    }
    check(
        ok && entries == index,
        format_args!(
            "/hypervisor reg: the grant table and {} extended region(s), no more ({entries} entries)",
            index - 1
        ),
    );
}
