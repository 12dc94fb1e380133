//! The ioctls of Linux's `/dev/xen/gntalloc`, `/dev/xen/gntdev`,
//! `/dev/xen/privcmd` and `/dev/xen/evtchn`, as `include/uapi/xen/gntalloc.h`,
//! `gntdev.h`, `privcmd.h` and `evtchn.h` define them.

/// `_IOC(_IOC_NONE, kind, nr, size)` in the generic encoding arm64 uses:
/// number in bits 0..8, type in 8..16, size in 16..30, direction (none) 0.
const fn ioc(kind: u8, nr: u32, size: usize) -> u32 {
    ((size as u32) << 16) | ((kind as u32) << 8) | nr
}

const fn ioc_none(nr: u32, size: usize) -> u32 {
    ioc(b'G', nr, size)
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

/// `struct ioctl_gntdev_map_grant_ref` with `N` references: the request
/// number encodes the size with one (`refs[1]`), the kernel reads `count`.
#[repr(C)]
pub struct MapGrantRefs<const N: usize> {
    pub count: u32,
    pub pad: u32,
    /// Out: the offset to pass to mmap().
    pub index: u64,
    pub refs: [GrantRef; N],
}

/// `struct privcmd_mmapbatch_v2 { unsigned int num; domid_t dom; __u64
/// addr; const xen_pfn_t *arr; int *err; }`: map `num` frames of domain
/// `dom` at `addr` (a privcmd mapping of exactly that many pages); one
/// error per frame in `err`.
#[repr(C)]
pub struct MmapBatchV2 {
    pub num: u32,
    pub dom: u16,
    pub addr: u64,
    pub arr: *const u64,
    pub err: *mut i32,
}

/// `struct ioctl_evtchn_bind_interdomain { unsigned int remote_domain, remote_port; }`;
/// the ioctl returns the local port.
#[repr(C)]
pub struct BindInterdomain {
    pub remote_domain: u32,
    pub remote_port: u32,
}

/// `struct ioctl_evtchn_bind_unbound_port { unsigned int remote_domain; }`;
/// the ioctl returns the local port.
#[repr(C)]
pub struct BindUnboundPort {
    pub remote_domain: u32,
}

/// `struct ioctl_evtchn_notify` and `struct ioctl_evtchn_unbind`: a local port.
#[repr(C)]
pub struct Port {
    pub port: u32,
}

pub const IOCTL_PRIVCMD_MMAPBATCH_V2: u32 = ioc(b'P', 4, size_of::<MmapBatchV2>());
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u32 = ioc(b'E', 1, size_of::<BindInterdomain>());
pub const IOCTL_EVTCHN_BIND_UNBOUND_PORT: u32 = ioc(b'E', 2, size_of::<BindUnboundPort>());
pub const IOCTL_EVTCHN_UNBIND: u32 = ioc(b'E', 3, size_of::<Port>());
pub const IOCTL_EVTCHN_NOTIFY: u32 = ioc(b'E', 4, size_of::<Port>());

const _: () = assert!(IOCTL_PRIVCMD_MMAPBATCH_V2 == 0x0020_5004);
const _: () = assert!(IOCTL_EVTCHN_BIND_INTERDOMAIN == 0x0008_4501);
const _: () = assert!(IOCTL_EVTCHN_BIND_UNBOUND_PORT == 0x0004_4502);
const _: () = assert!(IOCTL_EVTCHN_UNBIND == 0x0004_4503);
const _: () = assert!(IOCTL_EVTCHN_NOTIFY == 0x0004_4504);
