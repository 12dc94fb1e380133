//! The structs of Xen's public headers (`xen/include/public/`) that the
//! hypercalls read and write in guest memory, as arm64 lays them out:
//! `#[repr(C)]` with every hole a named `_pad` field, so that zerocopy can
//! read and write them whole ([`super::wire`]). Native byte order: the
//! hypervisor and its guests are little-endian, as are the hosts the tests
//! run on. Each layout is checked against the header in the tests below.
//! Field names are the headers'; guest handles are their 8-byte addresses.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

macro_rules! public_struct {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty),*
        }
    };
}

// sched.h

public_struct!(
    /// `struct sched_shutdown`.
    SchedShutdown { reason: u32 }
);
public_struct!(
    /// `struct sched_remote_shutdown`.
    SchedRemoteShutdown { domain_id: u16, _pad: u16, reason: u32 }
);

// grant_table.h

public_struct!(
    /// `struct gnttab_map_grant_ref`.
    GnttabMapGrantRef { host_addr: u64, flags: u32, r#ref: u32, dom: u16, status: i16, handle: u32, dev_bus_addr: u64 }
);
public_struct!(
    /// `struct gnttab_unmap_grant_ref`.
    GnttabUnmapGrantRef { host_addr: u64, dev_bus_addr: u64, handle: u32, status: i16, _pad: u16 }
);
public_struct!(
    /// `struct gnttab_query_size`.
    GnttabQuerySize { dom: u16, _pad: u16, nr_frames: u32, max_nr_frames: u32, status: i16, _pad2: u16 }
);
public_struct!(
    /// `struct gnttab_set_version`.
    GnttabSetVersion { version: u32 }
);
public_struct!(
    /// `struct gnttab_get_version`.
    GnttabGetVersion { dom: u16, pad: u16, version: u32 }
);

// memory.h

public_struct!(
    /// `struct xen_memory_reservation`.
    XenMemoryReservation { extent_start: u64, nr_extents: u64, extent_order: u32, mem_flags: u32, domid: u16, _pad: [u16; 3] }
);
public_struct!(
    /// `struct xen_add_to_physmap`.
    XenAddToPhysmap { domid: u16, size: u16, space: u32, idx: u64, gpfn: u64 }
);
public_struct!(
    /// `struct xen_add_to_physmap_batch` (`u.foreign_domid` as `foreign_domid`).
    XenAddToPhysmapBatch { domid: u16, space: u16, size: u16, foreign_domid: u16, idxs: u64, gpfns: u64, errs: u64 }
);
public_struct!(
    /// `struct xen_remove_from_physmap`.
    XenRemoveFromPhysmap { domid: u16, _pad: [u16; 3], gpfn: u64 }
);

// vcpu.h

public_struct!(
    /// `struct vcpu_register_vcpu_info`.
    VcpuRegisterVcpuInfo { mfn: u64, offset: u32, rsvd: u32 }
);
public_struct!(
    /// `struct vcpu_register_runstate_memory_area`: the area's guest virtual
    /// address (`addr.p`).
    VcpuRegisterRunstateMemoryArea { addr: u64 }
);

// event_channel.h

public_struct!(
    /// `struct evtchn_alloc_unbound`.
    EvtchnAllocUnbound { dom: u16, remote_dom: u16, port: u32 }
);
public_struct!(
    /// `struct evtchn_bind_interdomain`.
    EvtchnBindInterdomain { remote_dom: u16, _pad: u16, remote_port: u32, local_port: u32 }
);
public_struct!(
    /// `struct evtchn_bind_virq`.
    EvtchnBindVirq { virq: u32, vcpu: u32, port: u32 }
);
public_struct!(
    /// `struct evtchn_bind_pirq`.
    EvtchnBindPirq { pirq: u32, flags: u32, port: u32 }
);
public_struct!(
    /// `struct evtchn_bind_ipi`.
    EvtchnBindIpi { vcpu: u32, port: u32 }
);
public_struct!(
    /// `evtchn_close`, `evtchn_send`, `evtchn_unmask`: one port.
    EvtchnPort { port: u32 }
);
public_struct!(
    /// `struct evtchn_status`. The union `u` as its largest member,
    /// `interdomain { domid_t dom; evtchn_port_t port; }`: `unbound.dom` is
    /// `u_dom`, and `virq` (a u32) lies over `u_dom` and `_u_pad`.
    EvtchnStatus { dom: u16, _pad: u16, port: u32, status: u32, vcpu: u32, u_dom: u16, _u_pad: u16, u_port: u32 }
);
public_struct!(
    /// `struct evtchn_bind_vcpu`.
    EvtchnBindVcpu { port: u32, vcpu: u32 }
);
public_struct!(
    /// `struct evtchn_reset`; also `xen_memory_domain` (memory.h): one domid.
    Domid { dom: u16 }
);

// hvm/params.h, hvm/hvm_op.h

public_struct!(
    /// `struct xen_hvm_param`.
    XenHvmParam { domid: u16, _pad: u16, index: u32, value: u64 }
);

// platform.h

public_struct!(
    /// `struct xen_platform_op`: the command's arguments in a 128-byte union.
    XenPlatformOp { cmd: u32, interface_version: u32, u: [u8; 128] }
);
public_struct!(
    /// `struct xenpf_settime64`, a member of [`XenPlatformOp::u`].
    XenpfSettime64 { secs: u64, nsecs: u32, mbz: u32, system_time: u64 }
);

// version.h

public_struct!(
    /// `struct xen_feature_info`.
    XenFeatureInfo { submap_idx: u32, submap: u32 }
);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    /// Sizes and field offsets on arm64, from the public headers of Xen
    /// (`xen/include/public/`: sched.h, grant_table.h, memory.h, vcpu.h,
    /// event_channel.h, hvm/params.h, platform.h, version.h), where
    /// `domid_t` is a u16, `xen_pfn_t`, `xen_ulong_t` and guest handles
    /// 8 bytes, `evtchn_port_t`, `grant_ref_t` and `grant_handle_t` u32.
    #[test]
    fn layouts_match_the_public_headers() {
        macro_rules! layout {
            ($t:ty, $size:expr, $($field:ident @ $at:expr),*) => {
                assert_eq!(size_of::<$t>(), $size, "size of {}", stringify!($t));
                $(assert_eq!(offset_of!($t, $field), $at, "{}.{}", stringify!($t), stringify!($field));)*
            };
        }
        layout!(SchedShutdown, 4, reason @ 0);
        layout!(SchedRemoteShutdown, 8, domain_id @ 0, reason @ 4);
        layout!(GnttabMapGrantRef, 32, host_addr @ 0, flags @ 8, r#ref @ 12, dom @ 16, status @ 18, handle @ 20, dev_bus_addr @ 24);
        layout!(GnttabUnmapGrantRef, 24, host_addr @ 0, dev_bus_addr @ 8, handle @ 16, status @ 20);
        layout!(GnttabQuerySize, 16, dom @ 0, nr_frames @ 4, max_nr_frames @ 8, status @ 12);
        layout!(GnttabSetVersion, 4, version @ 0);
        layout!(GnttabGetVersion, 8, dom @ 0, pad @ 2, version @ 4);
        layout!(XenMemoryReservation, 32, extent_start @ 0, nr_extents @ 8, extent_order @ 16, mem_flags @ 20, domid @ 24);
        layout!(XenAddToPhysmap, 24, domid @ 0, size @ 2, space @ 4, idx @ 8, gpfn @ 16);
        layout!(XenAddToPhysmapBatch, 32, domid @ 0, space @ 2, size @ 4, foreign_domid @ 6, idxs @ 8, gpfns @ 16, errs @ 24);
        layout!(XenRemoveFromPhysmap, 16, domid @ 0, gpfn @ 8);
        layout!(VcpuRegisterVcpuInfo, 16, mfn @ 0, offset @ 8, rsvd @ 12);
        layout!(VcpuRegisterRunstateMemoryArea, 8, addr @ 0);
        layout!(EvtchnAllocUnbound, 8, dom @ 0, remote_dom @ 2, port @ 4);
        layout!(EvtchnBindInterdomain, 12, remote_dom @ 0, remote_port @ 4, local_port @ 8);
        layout!(EvtchnBindVirq, 12, virq @ 0, vcpu @ 4, port @ 8);
        layout!(EvtchnBindPirq, 12, pirq @ 0, flags @ 4, port @ 8);
        layout!(EvtchnBindIpi, 8, vcpu @ 0, port @ 4);
        layout!(EvtchnPort, 4, port @ 0);
        layout!(EvtchnStatus, 24, dom @ 0, port @ 4, status @ 8, vcpu @ 12, u_dom @ 16, u_port @ 20);
        layout!(EvtchnBindVcpu, 8, port @ 0, vcpu @ 4);
        layout!(Domid, 2, dom @ 0);
        layout!(XenHvmParam, 16, domid @ 0, index @ 4, value @ 8);
        layout!(XenPlatformOp, 136, cmd @ 0, interface_version @ 4, u @ 8);
        layout!(XenpfSettime64, 24, secs @ 0, nsecs @ 8, mbz @ 12, system_time @ 16);
        layout!(XenFeatureInfo, 8, submap_idx @ 0, submap @ 4);
    }
}
