//! `HYPERVISOR_platform_op` (`public/platform.h`): Dom0 setting the wall
//! clock, which the hypervisor passes on in shared_info. (`physdev_op`,
//! which Xen on Arm does not implement either, falls to dispatch's ENOSYS.)

use super::Call;
use super::Errno;
use super::errno::*;
use super::public::{XenPlatformOp, XenpfSettime64};
use super::wire;
use zerocopy::FromBytes;

pub const XENPF_INTERFACE_VERSION: u32 = 0x0300_0001;
pub const XENPF_SETTIME64: u32 = 62;

pub fn platform_op(call: &mut Call<'_>, arg: u64) -> Result<i64, Errno> {
    (|| {
        let b = wire::read::<XenPlatformOp>(call.memory, arg)?;
        if b.interface_version != XENPF_INTERFACE_VERSION {
            return Err(EACCES);
        }
        // The platform is the hardware domain's.
        if call.domain.id != 0 {
            return Err(EPERM);
        }
        match b.cmd {
            // struct xenpf_settime64 { u64 secs; u32 nsecs, mbz; u64 system_time; }
            XENPF_SETTIME64 => {
                let (settime, _) = XenpfSettime64::read_from_prefix(&b.u).expect("the union holds it");
                if settime.mbz != 0 {
                    return Err(EINVAL);
                }
                let (sec, nsec) = wallclock_base(settime.secs, settime.nsecs, settime.system_time);
                call.domain.xen.shared.set_wallclock(call.board, sec, nsec);
                Ok(0)
            }
            _ => Err(ENOSYS),
        }
    })()
}

/// The wall clock at system time 0, given that it read `secs`.`nsecs` at
/// `system_time` (ns): Xen's `do_settime`, in its modular arithmetic.
pub fn wallclock_base(secs: u64, nsecs: u32, system_time: u64) -> (u64, u32) {
    let x = secs.wrapping_mul(1_000_000_000).wrapping_add(u64::from(nsecs)).wrapping_sub(system_time);
    (x / 1_000_000_000, (x % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::events::tests::{SHARED, with_shared_info};
    use crate::xen::nr;
    use crate::xen::shared::layout;
    use crate::xen::testing::{Machine, RAM, args};

    fn settime(m: &Machine, version: u32, secs: u64, nsecs: u32, mbz: u32, system_time: u64) -> i64 {
        let at = RAM.start + 0x400;
        let mut b = [0u8; 136];
        b[..4].copy_from_slice(&XENPF_SETTIME64.to_le_bytes());
        b[4..8].copy_from_slice(&version.to_le_bytes());
        b[8..16].copy_from_slice(&secs.to_le_bytes());
        b[16..20].copy_from_slice(&nsecs.to_le_bytes());
        b[20..24].copy_from_slice(&mbz.to_le_bytes());
        b[24..32].copy_from_slice(&system_time.to_le_bytes());
        m.board.put(at, &b);
        m.call(nr::PLATFORM_OP, args(&[at]))
    }

    #[test]
    fn settime64_reaches_shared_info() {
        let m = with_shared_info(1);
        assert_eq!(settime(&m, XENPF_INTERFACE_VERSION, 1_700_000_000, 250, 0, 2_000_000_500), 0);
        let word = |off| crate::xen::shared::load_u32(&m.board, SHARED + off);
        assert_eq!(word(layout::WC_SEC), 1_699_999_997);
        assert_eq!(word(layout::WC_NSEC), 999_999_750);
        assert_eq!(word(layout::WC_VERSION), 2, "even: stable");
        assert_eq!(settime(&m, XENPF_INTERFACE_VERSION, 1 << 33, 0, 0, 0), 0);
        assert_eq!((word(layout::WC_SEC_HI), word(layout::WC_SEC), word(layout::WC_VERSION)), (2, 0, 4));
        assert_eq!(settime(&m, XENPF_INTERFACE_VERSION, 1, 0, 1, 0), -EINVAL);
        assert_eq!(settime(&m, 0x0300_0000, 1, 0, 0, 0), -EACCES);
        assert_eq!(m.call(nr::PLATFORM_OP, args(&[RAM.end - 100])), -EFAULT);
        assert_eq!(wallclock_base(0, 0, u64::MAX), (0, 1), "Xen's wrapping arithmetic, no panic");
        assert_eq!(m.call(nr::PHYSDEV_OP, args(&[25, 0])), -ENOSYS);
    }
}
