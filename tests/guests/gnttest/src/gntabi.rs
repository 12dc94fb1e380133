//! The ioctls of Linux's `/dev/xen/gntalloc` and `/dev/xen/gntdev`, as
//! `include/uapi/xen/gntalloc.h` and `gntdev.h` define them, for one page.

/// `_IOC(_IOC_NONE, 'G', nr, size)` in the generic encoding arm64 uses:
/// number in bits 0..8, type in 8..16, size in 16..30, direction (none) 0.
const fn ioc_none(nr: u32, size: usize) -> u32 {
    ((size as u32) << 16) | ((b'G' as u32) << 8) | nr
}

pub const GNTALLOC_FLAG_WRITABLE: u16 = 1;

/// `struct ioctl_gntalloc_alloc_gref` with `count` 1.
#[repr(C)]
#[derive(Default)]
pub struct AllocGref {
    pub domid: u16,
    pub flags: u16,
    pub count: u32,
    /// Out: the offset to pass to mmap().
    pub index: u64,
    /// Out: the grant reference.
    pub gref_id: u32,
}

/// `struct ioctl_gntalloc_dealloc_gref`.
#[repr(C)]
pub struct DeallocGref {
    pub index: u64,
    pub count: u32,
}

/// `struct ioctl_gntdev_grant_ref`.
#[repr(C)]
pub struct GrantRef {
    pub domid: u32,
    pub gref: u32,
}

/// `struct ioctl_gntdev_map_grant_ref` with `count` 1.
#[repr(C)]
pub struct MapGrantRef {
    pub count: u32,
    pub pad: u32,
    /// Out: the offset to pass to mmap().
    pub index: u64,
    pub refs: [GrantRef; 1],
}

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
pub struct UnmapGrantRef {
    pub index: u64,
    pub count: u32,
    pub pad: u32,
}

pub const IOCTL_GNTALLOC_ALLOC_GREF: u32 = ioc_none(5, size_of::<AllocGref>());
pub const IOCTL_GNTALLOC_DEALLOC_GREF: u32 = ioc_none(6, size_of::<DeallocGref>());
pub const IOCTL_GNTDEV_MAP_GRANT_REF: u32 = ioc_none(0, size_of::<MapGrantRef>());
pub const IOCTL_GNTDEV_UNMAP_GRANT_REF: u32 = ioc_none(1, size_of::<UnmapGrantRef>());

// The sizes C gives these structures on arm64 (trailing padding included),
// which the request numbers encode.
const _: () = assert!(IOCTL_GNTALLOC_ALLOC_GREF == 0x0018_4705);
const _: () = assert!(IOCTL_GNTALLOC_DEALLOC_GREF == 0x0010_4706);
const _: () = assert!(IOCTL_GNTDEV_MAP_GRANT_REF == 0x0018_4700);
const _: () = assert!(IOCTL_GNTDEV_UNMAP_GRANT_REF == 0x0010_4701);
