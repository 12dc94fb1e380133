//! What gnttest reads from Linux, decoded: device-tree `reg` cells,
//! `/proc/iomem` lines and `/proc/self/pagemap` entries. Pure functions, so
//! the host tests them.

use core::fmt;

/// A physical range, `start` included, `end` excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn contains(&self, other: Range) -> bool {
        self.start <= other.start && other.end <= self.end && other.start < other.end
    }

    pub fn contains_address(&self, address: u64) -> bool {
        self.start <= address && address < self.end
    }
}

/// As the hypervisor logs its ranges, so tests compare the text.
impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}->{:#010x}", self.start, self.end)
    }
}

/// A big-endian number of `cells` 32-bit cells, the device tree's encoding.
fn be_cells(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > 8 || !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
}

/// A one-cell property such as `#address-cells`.
pub fn cell(bytes: &[u8]) -> Option<u32> {
    if bytes.len() != 4 {
        return None;
    }
    be_cells(bytes).map(|n| n as u32)
}

/// The `(address, size)` entries of a `reg` property, as ranges; `None` if
/// its length is not a whole number of entries or a range overflows.
pub fn reg_entries(bytes: &[u8], address_cells: u32, size_cells: u32) -> Option<impl Iterator<Item = Range> + '_> {
    let (address_len, size_len) = (4 * address_cells as usize, 4 * size_cells as usize);
    let entry_len = address_len + size_len;
    if entry_len == 0 || address_len > 8 || size_len > 8 || !bytes.len().is_multiple_of(entry_len) {
        return None;
    }
    let entries = bytes.chunks_exact(entry_len).map(move |entry| {
        let start = be_cells(&entry[..address_len])?;
        let size = be_cells(&entry[address_len..])?;
        Some(Range { start, end: start.checked_add(size)? })
    });
    if entries.clone().any(|r| r.is_none()) {
        return None;
    }
    Some(entries.flatten())
}

/// A `/proc/iomem` line, `  start-end : name` with `end` inclusive, as the
/// range and the name.
pub fn iomem_line(line: &str) -> Option<(Range, &str)> {
    let (span, name) = line.trim_start().split_once(" : ")?;
    let (start, last) = span.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let last = u64::from_str_radix(last, 16).ok()?;
    Some((Range { start, end: last.checked_add(1)? }, name.trim_end()))
}

/// The page frame number in a `/proc/self/pagemap` entry, if the page is
/// present (bit 63) and the frame is shown (bits 0..55 read as zero for
/// anyone without CAP_SYS_ADMIN).
pub fn pagemap_frame(entry: u64) -> Option<u64> {
    let present = entry >> 63 == 1;
    let frame = entry & ((1 << 55) - 1);
    (present && frame != 0).then_some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reg_with_two_cells_each() {
        let bytes = [
            0, 0, 0, 0, 0x38, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, //
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0,
        ];
        let entries: Vec<Range> = reg_entries(&bytes, 2, 2).unwrap().collect();
        assert_eq!(
            entries,
            vec![Range { start: 0x3800_0000, end: 0x3880_0000 }, Range { start: 0x1_0000_0000, end: 0x1_4000_0000 }]
        );
        assert_eq!(entries[1].to_string(), "0x100000000->0x140000000");
        assert_eq!(entries[0].to_string(), "0x38000000->0x38800000");
    }

    #[test]
    fn reg_with_one_cell_each_and_bad_lengths() {
        let entries: Vec<Range> = reg_entries(&[0x10, 0, 0, 0, 0, 0, 0x10, 0], 1, 1).unwrap().collect();
        assert_eq!(entries, vec![Range { start: 0x1000_0000, end: 0x1000_1000 }]);
        assert!(reg_entries(&[0; 12], 2, 2).is_none());
        assert!(reg_entries(&[0; 12], 3, 0).is_none());
        assert!(reg_entries(&[0xff; 16], 2, 2).is_none(), "overflowing range");
        assert_eq!(reg_entries(&[], 2, 2).unwrap().count(), 0);
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&[0, 0, 0, 2]), Some(2));
        assert_eq!(cell(&[0, 0, 2]), None);
    }

    #[test]
    fn iomem_lines() {
        assert_eq!(
            iomem_line("  42000000-49ffffff : Xen scratch"),
            Some((Range { start: 0x4200_0000, end: 0x4a00_0000 }, "Xen scratch"))
        );
        assert_eq!(
            iomem_line("60000000-7fffffff : System RAM"),
            Some((Range { start: 0x6000_0000, end: 0x8000_0000 }, "System RAM"))
        );
        assert_eq!(iomem_line("00000000-00000000 : Xen scratch").map(|(r, _)| r.end), Some(1));
        assert_eq!(iomem_line("garbage"), None);
        assert_eq!(iomem_line("zz-10 : x"), None);
    }

    #[test]
    fn pagemap_entries() {
        assert_eq!(pagemap_frame((1 << 63) | 0x42000), Some(0x42000));
        assert_eq!(pagemap_frame((1 << 63) | (1 << 55) | 0x42000), Some(0x42000), "soft-dirty bit");
        assert_eq!(pagemap_frame(0x42000), None, "not present");
        assert_eq!(pagemap_frame(1 << 63), None, "frame hidden");
    }

    #[test]
    fn containment() {
        let region = Range { start: 0x4200_0000, end: 0x6000_0000 };
        assert!(region.contains(Range { start: 0x4800_0000, end: 0x5000_0000 }));
        assert!(region.contains(region));
        assert!(!region.contains(Range { start: 0x5800_0000, end: 0x6800_0000 }));
        assert!(region.contains_address(0x5fff_ffff));
        assert!(!region.contains_address(0x6000_0000));
    }
}
