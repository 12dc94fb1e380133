//! The Xen hypercall ABI as the probe calls it: numbers, errno values,
//! the structs it passes (arm64 layouts) and small wrappers that make one
//! call each. Shared by the checks of good calls and by the hostile mode.
//! Written from Xen's public headers, not taken from the hypervisor's
//! `src/xen`: the probe checks those numbers, so it states its own.

use core::arch::asm;
use core::ptr::read_volatile;

pub const EPERM: i64 = -1;
pub const ENOENT: i64 = -2;
pub const ESRCH: i64 = -3;
pub const ENXIO: i64 = -6;
pub const E2BIG: i64 = -7;
pub const EACCES: i64 = -13;
pub const EFAULT: i64 = -14;
pub const EBUSY: i64 = -16;
pub const EEXIST: i64 = -17;
pub const EINVAL: i64 = -22;
pub const ENOSPC: i64 = -28;
pub const EDOM: i64 = -33;
pub const ENOSYS: i64 = -38;
pub const EILSEQ: i64 = -84;
pub const EOPNOTSUPP: i64 = -95;

pub const PLATFORM_OP: u64 = 7;
pub const MEMORY_OP: u64 = 12;
pub const XEN_VERSION: u64 = 17;
pub const CONSOLE_IO: u64 = 18;
pub const GRANT_TABLE_OP: u64 = 20;
pub const VM_ASSIST: u64 = 21;
pub const VCPU_OP: u64 = 24;
pub const SCHED_OP: u64 = 29;
pub const EVENT_CHANNEL_OP: u64 = 32;
pub const PHYSDEV_OP: u64 = 33;
pub const HVM_OP: u64 = 34;

pub const DOMID_SELF: u16 = 0x7ff0;
pub const DOMID_XEN: u16 = 0x7ff2;

/// GNTST_* statuses of grant operations.
pub mod gntst {
    pub const GENERAL_ERROR: i16 = -1;
    pub const BAD_DOMAIN: i16 = -2;
    pub const BAD_GNTREF: i16 = -3;
    pub const BAD_HANDLE: i16 = -4;
    pub const BAD_VIRT_ADDR: i16 = -5;
    pub const BAD_DEV_ADDR: i16 = -6;
    pub const BAD_PAGE: i16 = -9;
    pub const NO_SPACE: i16 = -13;
}

/// GNTMAP_* flags of a map request.
pub mod gntmap {
    pub const DEVICE_MAP: u32 = 1 << 0;
    pub const HOST_MAP: u32 = 1 << 1;
    pub const READONLY: u32 = 1 << 2;
    pub const APPLICATION_MAP: u32 = 1 << 3;
    pub const CONTAINS_PTE: u32 = 1 << 4;
}

/// XENMAPSPACE_* of add_to_physmap.
pub mod space {
    pub const SHARED_INFO: u32 = 0;
    pub const GRANT_TABLE: u32 = 1;
    pub const GMFN: u32 = 2;
    pub const GMFN_RANGE: u32 = 3;
    pub const GMFN_FOREIGN: u32 = 4;
    pub const DEV_MMIO: u32 = 5;
}

/// A Xen hypercall: HVC #0xEA1, number in x16, arguments x0..x4, result
/// in x0. A continued call may change x1..x4 too.
pub fn hypercall(number: u64, a: [u64; 5]) -> i64 {
    let result: u64;
    // SAFETY: the hypervisor writes only memory we point it at, and x0..x4.
    unsafe {
        asm!("hvc #0xea1", inout("x0") a[0] => result, inout("x1") a[1] => _, inout("x2") a[2] => _,
             inout("x3") a[3] => _, inout("x4") a[4] => _, in("x16") number, options(nostack))
    };
    result as i64
}

/// A call taking a pointer to `arg` after `leading` arguments.
pub fn with<T>(number: u64, leading: &[u64], arg: &mut T) -> i64 {
    let mut a = [0u64; 5];
    a[..leading.len()].copy_from_slice(leading);
    a[leading.len()] = arg as *mut T as u64;
    hypercall(number, a)
}

/// A grant-table operation on `count` structs at `arg`.
pub fn grant_op<T>(cmd: u64, arg: &mut T, count: u64) -> i64 {
    hypercall(GRANT_TABLE_OP, [cmd, arg as *mut T as u64, count, 0, 0])
}

pub fn read<T: Copy>(value: &T) -> T {
    // SAFETY: a reference; the hypervisor may have written it behind the compiler's back.
    unsafe { read_volatile(value) }
}

/// `xen_version(XENVER_version)`: the call that must always work.
pub fn version() -> i64 {
    hypercall(XEN_VERSION, [0; 5])
}

#[repr(C, align(4096))]
pub struct Page(pub [u64; 512]);

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct AddToPhysmap {
    pub domid: u16,
    pub size: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct AddToPhysmapBatch {
    pub domid: u16,
    pub space: u16,
    pub size: u16,
    pub foreign_domid: u16,
    pub idxs: u64,
    pub gpfns: u64,
    pub errs: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Reservation {
    pub extent_start: u64,
    pub nr_extents: u64,
    pub extent_order: u32,
    pub mem_flags: u32,
    pub domid: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct EventStruct {
    pub words: [u32; 6],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MapGrantRef {
    pub host_addr: u64,
    pub flags: u32,
    pub gref: u32,
    pub dom: u16,
    pub status: i16,
    pub handle: u32,
    pub dev_bus_addr: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct UnmapGrantRef {
    pub host_addr: u64,
    pub dev_bus_addr: u64,
    pub handle: u32,
    pub status: i16,
}

/// add_to_physmap for the calling domain.
pub fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> i64 {
    add_to_physmap_as(DOMID_SELF, space, idx, gpfn)
}

pub fn add_to_physmap_as(domid: u16, space: u32, idx: u64, gpfn: u64) -> i64 {
    let mut a = AddToPhysmap { domid, size: 1, space, idx, gpfn };
    with(MEMORY_OP, &[7], &mut a)
}

/// decrease_reservation (1) or populate_physmap (6) of one page: extents done.
pub fn reservation(op: u64, gfn: u64) -> i64 {
    let mut list = [gfn];
    let mut r =
        Reservation { extent_start: list.as_mut_ptr() as u64, nr_extents: 1, domid: DOMID_SELF, ..Default::default() };
    with(MEMORY_OP, &[op], &mut r)
}

/// An event-channel operation on a struct whose first words are `words`;
/// the result and the struct as the hypervisor left it.
pub fn event(cmd: u64, words: &[u32]) -> (i64, [u32; 6]) {
    let mut e = EventStruct::default();
    e.words[..words.len()].copy_from_slice(words);
    let rc = with(EVENT_CHANNEL_OP, &[cmd], &mut e);
    (rc, read(&e).words)
}

/// alloc_unbound with dom = remote = DOMID_SELF: (result, port).
pub fn alloc_unbound() -> (i64, u32) {
    let (rc, w) = event(6, &[u32::from(DOMID_SELF) | u32::from(DOMID_SELF) << 16]);
    (rc, w[1])
}

pub fn port_op(cmd: u64, port: u32) -> i64 {
    event(cmd, &[port]).0
}

/// One map_grant_ref; a call that failed as a whole reports its errno as
/// the status.
pub fn map_grant(host_addr: u64, flags: u32, gref: u32, dom: u16) -> MapGrantRef {
    let mut m = MapGrantRef { host_addr, flags, gref, dom, status: 0x7777, ..Default::default() };
    let rc = grant_op(0, &mut m, 1);
    let mut result = read(&m);
    if rc != 0 {
        result.status = rc as i16;
    }
    result
}

/// One unmap_grant_ref: its status, or the call's errno.
pub fn unmap_grant(host_addr: u64, dev_bus_addr: u64, handle: u32) -> i16 {
    let mut u = UnmapGrantRef { host_addr, dev_bus_addr, handle, status: 0x7777 };
    let rc = grant_op(1, &mut u, 1);
    if rc != 0 { rc as i16 } else { read(&u).status }
}

/// An address beyond any IPA space: nothing is ever there.
pub const NOTHING: u64 = 0x0000_ffff_ffff_f000;

/// Whether the hypervisor is this project's (its extraversion says so),
/// else Xen 4.17: where the two answer differently, checks expect each
/// its own answer.
pub fn hypervisor_is_ours() -> bool {
    let mut extra = [0u8; 16];
    let _ = hypercall(XEN_VERSION, [1, extra.as_mut_ptr() as u64, 0, 0, 0]);
    extra.starts_with(b".0-rust")
}
