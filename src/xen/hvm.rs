//! `HYPERVISOR_hvm_op` (`public/hvm/hvm_op.h`, `params.h`): the parameters
//! a guest may read. A domain built by the hypervisor alone has no
//! toolstack, so no xenstore or PV console: they read 0, as from Xen for a
//! Dom0, which makes Linux start a local xenstore (xenbus_probe.c).

use super::Call;
use super::Errno;
use super::errno::*;
use super::public::XenHvmParam;
use super::wire;

pub const HVMOP_SET_PARAM: u64 = 0;
pub const HVMOP_GET_PARAM: u64 = 1;

pub mod param {
    pub const CALLBACK_IRQ: u32 = 0;
    pub const STORE_PFN: u32 = 1;
    pub const STORE_EVTCHN: u32 = 2;
    pub const CONSOLE_PFN: u32 = 17;
    pub const CONSOLE_EVTCHN: u32 = 18;
    pub const MONITOR_RING_PFN: u32 = 28;
}

/// `HYPERVISOR_hvm_op(op, arg)` with `struct xen_hvm_param { domid_t domid;
/// uint32_t index; uint64_t value; }`, checked as Xen on Arm does.
pub fn hvm_op(call: &mut Call<'_>, op: u64, arg: u64) -> Result<i64, Errno> {
    use param::*;
    if op != HVMOP_SET_PARAM && op != HVMOP_GET_PARAM {
        return Err(ENOSYS);
    }
    (|| {
        let mut b = wire::read::<XenHvmParam>(call.memory, arg)?;
        super::own_domain(call, b.domid)?;
        let index = b.index;
        let guest_visible = matches!(index, CALLBACK_IRQ | STORE_PFN | STORE_EVTCHN | CONSOLE_PFN | CONSOLE_EVTCHN);
        if op == HVMOP_SET_PARAM {
            // These belong to the toolstack; a domain may not set its own.
            return Err(if guest_visible || index == MONITOR_RING_PFN { EPERM } else { EINVAL });
        }
        if !guest_visible {
            return Err(if index == MONITOR_RING_PFN { EPERM } else { EINVAL });
        }
        b.value = 0;
        wire::write(call.memory, arg, &b).map(|()| 0)
    })()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::testing::{Machine, RAM, args};
    use crate::xen::{DOMID_SELF, nr};

    fn param(m: &Machine, op: u64, domid: u16, index: u32) -> (i64, u64) {
        let at = RAM.start + 0x100;
        let mut b = [0xffu8; 16];
        b[..2].copy_from_slice(&domid.to_le_bytes());
        b[4..8].copy_from_slice(&index.to_le_bytes());
        m.board.put(at, &b);
        let rc = m.call(nr::HVM_OP, args(&[op, at]));
        (rc, u64::from_le_bytes(m.board.get(at + 8, 8).try_into().unwrap()))
    }

    #[test]
    fn no_xenstore_reads_zero_and_nothing_is_settable() {
        let m = Machine::new(1);
        assert_eq!(param(&m, HVMOP_GET_PARAM, DOMID_SELF, param::STORE_EVTCHN), (0, 0));
        assert_eq!(param(&m, HVMOP_GET_PARAM, 0, param::STORE_PFN), (0, 0));
        assert_eq!(param(&m, HVMOP_GET_PARAM, DOMID_SELF, param::CONSOLE_EVTCHN), (0, 0));
        assert_eq!(param(&m, HVMOP_GET_PARAM, DOMID_SELF, param::MONITOR_RING_PFN).0, -EPERM);
        assert_eq!(param(&m, HVMOP_GET_PARAM, DOMID_SELF, 3).0, -EINVAL);
        assert_eq!(param(&m, HVMOP_GET_PARAM, DOMID_SELF, u32::MAX).0, -EINVAL);
        assert_eq!(param(&m, HVMOP_GET_PARAM, 2, param::STORE_PFN).0, -ESRCH);
        assert_eq!(param(&m, HVMOP_SET_PARAM, DOMID_SELF, param::STORE_PFN).0, -EPERM);
        assert_eq!(param(&m, HVMOP_SET_PARAM, DOMID_SELF, 39).0, -EINVAL);
        assert_eq!(m.call(nr::HVM_OP, args(&[HVMOP_GET_PARAM, RAM.end - 8])), -EFAULT);
        assert_eq!(m.call(nr::HVM_OP, args(&[7, 0])), -ENOSYS);
    }
}
