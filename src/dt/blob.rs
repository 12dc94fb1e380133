//! The flattened-tree header: how much of a blob is tree. Boot loaders and
//! QEMU leave room to grow a tree (QEMU's `virt` tree says 1 MiB in
//! `totalsize` for about 8 KiB of content); the hypervisor keeps its copy
//! of the host tree for good, so it keeps only the content.

use alloc::vec::Vec;

/// The header fields used here (all big-endian u32; Devicetree spec 5.2).
const TOTALSIZE: usize = 4;
const OFF_DT_STRUCT: usize = 8;
const OFF_DT_STRINGS: usize = 12;
const OFF_MEM_RSVMAP: usize = 16;
const SIZE_DT_STRINGS: usize = 32;
const SIZE_DT_STRUCT: usize = 36;
const HEADER_SIZE: usize = 40;
/// A `/memreserve/` entry: address and size, 64 bits each.
const RESERVATION_SIZE: usize = 16;

fn field(blob: &[u8], at: usize) -> Option<usize> {
    let bytes = blob.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
}

/// The end of the last of the three blocks (reservations, structure,
/// strings), or `None` if the header does not describe them inside the
/// blob. The reservation block ends after its all-zero entry.
pub fn content_size(blob: &[u8]) -> Option<usize> {
    if blob.len() < HEADER_SIZE {
        return None;
    }
    let end_of = |offset: usize, size: usize| offset.checked_add(size).filter(|&end| end <= blob.len());
    let structure = end_of(field(blob, OFF_DT_STRUCT)?, field(blob, SIZE_DT_STRUCT)?)?;
    let strings = end_of(field(blob, OFF_DT_STRINGS)?, field(blob, SIZE_DT_STRINGS)?)?;
    let mut reservation = field(blob, OFF_MEM_RSVMAP)?;
    loop {
        let entry = blob.get(reservation..reservation.checked_add(RESERVATION_SIZE)?)?;
        reservation += RESERVATION_SIZE;
        if entry.iter().all(|&b| b == 0) {
            break;
        }
    }
    Some(structure.max(strings).max(reservation).max(HEADER_SIZE))
}

/// A copy of the tree without the free space after its content, its
/// `totalsize` saying so; the whole blob if the header is inconsistent
/// (the reader then reports what is wrong with it).
pub fn trimmed_copy(blob: &[u8]) -> Vec<u8> {
    let Some(size) = content_size(blob) else { return blob.to_vec() };
    let mut copy = blob[..size].to_vec();
    copy[TOTALSIZE..TOTALSIZE + 4].copy_from_slice(&(size as u32).to_be_bytes());
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::host::HostTree;
    use crate::dt::testing::{blob, virt};
    use proptest::prelude::*;

    /// A valid tree with `pad` bytes of free space after its content.
    fn padded(pad: usize) -> Vec<u8> {
        let mut tree = blob(&virt(&[(0x4000_0000, 0x8000_0000)]), &[(0x5000_0000, 0x1000)]);
        let size = tree.len() + pad;
        tree.resize(size, 0);
        tree[TOTALSIZE..TOTALSIZE + 4].copy_from_slice(&(size as u32).to_be_bytes());
        tree
    }

    #[test]
    fn free_space_is_dropped_and_the_tree_reads_the_same() {
        let tree = padded(1 << 20);
        let copy = trimmed_copy(&tree);
        assert_eq!(copy.len(), tree.len() - (1 << 20));
        assert_eq!(field(&copy, TOTALSIZE), Some(copy.len()));
        let (a, b) = (HostTree::parse(&tree).unwrap(), HostTree::parse(&copy).unwrap());
        assert_eq!((a.banks, a.reserved.len(), a.cpus.len()), (b.banks, b.reserved.len(), b.cpus.len()));
        // Already tight: unchanged.
        assert_eq!(trimmed_copy(&copy), copy);
    }

    #[test]
    fn inconsistent_headers_are_copied_whole() {
        let tree = padded(64);
        for (at, value) in [(OFF_DT_STRUCT, u32::MAX), (SIZE_DT_STRINGS, 1 << 30), (OFF_MEM_RSVMAP, tree.len() as u32)]
        {
            let mut bad = tree.clone();
            bad[at..at + 4].copy_from_slice(&value.to_be_bytes());
            assert_eq!(content_size(&bad), None, "field at {at}");
            assert_eq!(trimmed_copy(&bad), bad);
        }
        assert_eq!(trimmed_copy(&[1, 2, 3]), vec![1, 2, 3]);
    }

    proptest! {
        /// Any bytes: never a panic, and never longer than the input.
        #[test]
        fn any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Some(size) = content_size(&bytes) {
                prop_assert!(size <= bytes.len());
            }
            prop_assert!(trimmed_copy(&bytes).len() <= bytes.len());
        }
    }
}
