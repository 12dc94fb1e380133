//! Where Dom0's kernel, device tree and initrd go in its RAM, per Linux's
//! arm64 boot protocol (`Documentation/arch/arm64/booting.rst`): the Image
//! at a 2 MiB aligned base plus its `text_offset`, `image_size` bytes
//! claimed (BSS included); the tree 8-byte aligned and at most 2 MiB; the
//! initrd anywhere in RAM. Like Xen, everything goes in bank 0. The same
//! rules place a DomU's, in its own guest-physical space.

use crate::mm::range::{PhysRange, Range, align_up};
use core::fmt;

const MIB: u64 = 1 << 20;
/// The arm64 boot protocol's limit for the device tree.
pub const MAX_DTB_SIZE: u64 = 2 * MIB;

/// The fields of the 64-byte arm64 Image header we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub text_offset: u64,
    /// Memory the kernel claims from its load address, BSS included.
    pub image_size: u64,
    pub big_endian: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelError {
    TooShort(usize),
    BadMagic,
    BigEndian,
    /// Pre-3.17 kernels with image_size 0 are not supported.
    NoImageSize,
    /// text_offset not below 2 MiB or not 4 KiB aligned.
    BadTextOffset(u64),
    /// The first bank, `[start, end)`, in the domain's own address space.
    DoesNotFit {
        needed: u64,
        bank: (u64, u64),
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "the kernel module is {n} bytes, too short for an arm64 Image header"),
            Self::BadMagic => write!(f, "the kernel module is not an arm64 Image (no ARM\\x64 magic at offset 0x38)"),
            Self::BigEndian => write!(f, "the kernel is big-endian; only little-endian Dom0s are supported"),
            Self::NoImageSize => write!(f, "the kernel's Image header has image_size 0 (a kernel older than 3.17)"),
            Self::BadTextOffset(o) => write!(f, "the kernel's text_offset {o:#x} is unusable"),
            Self::DoesNotFit { needed, bank } => {
                let bank = PhysRange::new(bank.0, bank.1);
                write!(
                    f,
                    "kernel, device tree and initrd need {} MiB; the domain's first bank {bank} is smaller",
                    needed.div_ceil(MIB)
                )
            }
        }
    }
}

impl ImageHeader {
    pub fn parse(image: &[u8]) -> Result<Self, KernelError> {
        if image.len() < 64 {
            return Err(KernelError::TooShort(image.len()));
        }
        let u64_at = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().expect("8 bytes"));
        if &image[0x38..0x3c] != b"ARM\x64" {
            return Err(KernelError::BadMagic);
        }
        let header = Self { text_offset: u64_at(0x08), image_size: u64_at(0x10), big_endian: u64_at(0x18) & 1 != 0 };
        if header.big_endian {
            return Err(KernelError::BigEndian);
        }
        if header.image_size == 0 {
            return Err(KernelError::NoImageSize);
        }
        if header.text_offset >= 2 * MIB || !header.text_offset.is_multiple_of(4096) {
            return Err(KernelError::BadTextOffset(header.text_offset));
        }
        Ok(header)
    }
}

/// Where everything goes, in the domain's address space `S` (host for
/// the 1:1 Dom0, guest for a DomU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout<S = crate::mm::range::Host> {
    /// The kernel's claim: load address to load address + image_size.
    pub kernel: Range<S>,
    /// The entry point (the load address).
    pub entry: u64,
    /// A 2 MiB slot for the tree.
    pub dtb: Range<S>,
    pub initrd: Option<Range<S>>,
}

/// Places the kernel at the start of `bank`, then the tree on the next
/// 2 MiB boundary, then the initrd on the next page.
pub fn place<S: Copy>(
    bank: Range<S>,
    header: &ImageHeader,
    kernel_len: u64,
    initrd_len: Option<u64>,
) -> Result<Layout<S>, KernelError> {
    let overflow = || KernelError::DoesNotFit { needed: u64::MAX, bank: (bank.start, bank.end) };
    let base = align_up(bank.start, 2 * MIB).ok_or_else(overflow)?;
    let entry = base + header.text_offset;
    let claim = header.image_size.max(kernel_len);
    let kernel = Range::from_start_size(entry, claim).ok_or_else(overflow)?;
    let dtb_start = align_up(kernel.end, 2 * MIB).ok_or_else(overflow)?;
    let dtb = Range::from_start_size(dtb_start, MAX_DTB_SIZE).ok_or_else(overflow)?;
    let initrd = match initrd_len {
        Some(len) => Some(Range::from_start_size(dtb.end, len).ok_or_else(overflow)?),
        None => None,
    };
    let end = initrd.map_or(dtb.end, |r| r.end);
    if end > bank.end {
        return Err(KernelError::DoesNotFit { needed: end - base, bank: (bank.start, bank.end) });
    }
    Ok(Layout { kernel, entry, dtb, initrd })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[0x08..0x10].copy_from_slice(&text_offset.to_le_bytes());
        h[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        h
    }

    #[test]
    fn headers() {
        assert_eq!(
            ImageHeader::parse(&image(0, 0x200_0000, 0xa)),
            Ok(ImageHeader { text_offset: 0, image_size: 0x200_0000, big_endian: false })
        );
        assert_eq!(ImageHeader::parse(&[0; 10]), Err(KernelError::TooShort(10)));
        assert_eq!(ImageHeader::parse(&[0; 64]), Err(KernelError::BadMagic));
        assert_eq!(ImageHeader::parse(&image(0, 0x1000, 1)), Err(KernelError::BigEndian));
        assert_eq!(ImageHeader::parse(&image(0, 0, 0)), Err(KernelError::NoImageSize));
        assert_eq!(ImageHeader::parse(&image(0x20_0000, 0x1000, 0)), Err(KernelError::BadTextOffset(0x20_0000)));
        assert_eq!(ImageHeader::parse(&image(0x801, 0x1000, 0)), Err(KernelError::BadTextOffset(0x801)));
    }

    #[test]
    fn placement_follows_the_boot_protocol() {
        let bank = PhysRange::new(0x6000_0000, 0x8000_0000);
        let header = ImageHeader { text_offset: 0x8_0000, image_size: 40 * MIB, big_endian: false };
        let l = place(bank, &header, 30 * MIB, Some(5 * MIB + 3)).unwrap();
        assert_eq!(l.entry, 0x6008_0000);
        assert_eq!(l.kernel, PhysRange::new(0x6008_0000, 0x6008_0000 + 40 * MIB));
        assert_eq!(l.dtb.start % (2 * MIB), 0);
        assert!(l.dtb.start >= l.kernel.end);
        let initrd = l.initrd.unwrap();
        assert_eq!(initrd.start, l.dtb.end);
        assert_eq!(initrd.size(), 5 * MIB + 3);
        assert!(bank.contains_range(&initrd));
    }

    #[test]
    fn too_small_a_bank_is_an_error() {
        let bank = PhysRange::new(0x6000_0000, 0x6000_0000 + 16 * MIB);
        let header = ImageHeader { text_offset: 0, image_size: 20 * MIB, big_endian: false };
        assert!(matches!(place(bank, &header, 1, None), Err(KernelError::DoesNotFit { .. })));
        let header = ImageHeader { text_offset: 0, image_size: u64::MAX - 10, big_endian: false };
        assert!(place(bank, &header, 1, None).is_err());
    }
}
