//! Reading property values: big-endian cells, numbers of one or two cells,
//! string lists. Every reader checks lengths; nothing here can panic on a
//! hostile tree.

use dtoolkit::Property;
use dtoolkit::fdt::FdtProperty;

/// The 32-bit cells of a value; a trailing partial cell is ignored (callers
/// check the length first where it matters).
pub fn cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// A number of `count` cells. More than two cells are accepted when the high
/// ones are zero; otherwise `None`.
pub fn number(cells: &[u32]) -> Option<u64> {
    let (high, low) = cells.split_at(cells.len().saturating_sub(2));
    if high.iter().any(|&c| c != 0) {
        return None;
    }
    Some(low.iter().fold(0u64, |acc, &c| (acc << 32) | u64::from(c)))
}

/// The raw value, borrowed from the blob rather than from the property.
pub fn bytes<'a>(prop: &FdtProperty<'a>) -> &'a [u8] {
    prop.value_as::<&'a [u8]>().unwrap_or(&[])
}

/// A one-cell property.
pub fn u32_of(prop: &FdtProperty<'_>) -> Option<u32> {
    match prop.value() {
        &[a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d])),
        _ => None,
    }
}

/// A NUL-terminated string property (the first string of a list).
pub fn str_of<'a>(prop: &FdtProperty<'a>) -> Option<&'a str> {
    let value = bytes(prop);
    let end = value.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&value[..end]).ok()
}

/// The strings of a string-list property; stops at the first bad one.
pub fn strings<'a>(prop: &FdtProperty<'a>) -> impl Iterator<Item = &'a str> + 'a {
    let value = bytes(prop);
    value.split(|&b| b == 0).take(value.iter().filter(|&&b| b == 0).count()).map_while(|s| core::str::from_utf8(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number(&[]), Some(0));
        assert_eq!(number(&[5]), Some(5));
        assert_eq!(number(&[1, 2]), Some(0x1_0000_0002));
        assert_eq!(number(&[0, 1, 2]), Some(0x1_0000_0002));
        assert_eq!(number(&[3, 1, 2]), None);
        let v = [0u8, 0, 0, 1, 0, 0, 0, 2, 9];
        assert_eq!(cells(&v).collect::<Vec<_>>(), vec![1, 2]);
    }
}
