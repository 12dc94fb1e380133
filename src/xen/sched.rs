//! `HYPERVISOR_sched_op` (`public/sched.h`): yielding and blocking return
//! at once (each vCPU has its own CPU), and a shutdown says why in its
//! [`Outcome::Shutdown`]: the caller (the router) stops the machine for the
//! hardware domain, as Xen does.

use super::errno::*;
use super::public::{SchedRemoteShutdown, SchedShutdown};
use super::wire;
use super::{Call, Errno, Outcome};

pub mod op {
    pub const YIELD: u32 = 0;
    pub const BLOCK: u32 = 1;
    pub const SHUTDOWN: u32 = 2;
    pub const REMOTE_SHUTDOWN: u32 = 4;
    pub const SHUTDOWN_CODE: u32 = 5;
}

/// Why the domain shut down (SHUTDOWN_*; Xen keeps the low byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    PowerOff,
    Reboot,
    Suspend,
    Crash,
    Watchdog,
    SoftReset,
    Unknown(u8),
}

impl Reason {
    pub fn from_code(code: u32) -> Self {
        match code as u8 {
            0 => Reason::PowerOff,
            1 => Reason::Reboot,
            2 => Reason::Suspend,
            3 => Reason::Crash,
            4 => Reason::Watchdog,
            5 => Reason::SoftReset,
            other => Reason::Unknown(other),
        }
    }
}

/// As Xen 4.17 answers it: the domain is named by its id only
/// (DOMID_SELF names nobody: -ESRCH), and only the control domain may
/// shut a domain down this way: Dom0 itself; a DomU, even naming itself,
/// gets -EPERM. Dom0 naming a DomU is refused too (-EPERM), where Xen's
/// toolstack would shut it down: no domain is offered that power here.
fn remote_shutdown(call: &Call<'_>, b: SchedRemoteShutdown) -> Result<Outcome, Errno> {
    let (domid, reason) = (b.domain_id, b.reason);
    if domid == super::DOMID_SELF {
        return Err(ESRCH);
    }
    let target = call.find_domain(domid)?;
    if target.id == 0 && call.domain.id == 0 { Ok(Outcome::Shutdown(Reason::from_code(reason))) } else { Err(EPERM) }
}

pub fn sched_op(call: &mut Call<'_>, cmd: u32, arg: u64) -> Outcome {
    let result = match cmd {
        op::YIELD | op::BLOCK => Ok(Outcome::Return(0)),
        // struct sched_shutdown { unsigned int reason; }
        op::SHUTDOWN => {
            wire::read::<SchedShutdown>(call.memory, arg).map(|b| Outcome::Shutdown(Reason::from_code(b.reason)))
        }
        // struct sched_remote_shutdown { domid_t domain_id; unsigned int reason; }
        op::REMOTE_SHUTDOWN => {
            wire::read::<SchedRemoteShutdown>(call.memory, arg).and_then(|b| remote_shutdown(call, b))
        }
        // The code is for a later suspend, which a hardware domain cannot do.
        op::SHUTDOWN_CODE => wire::read::<SchedShutdown>(call.memory, arg).map(|_| Outcome::Return(0)),
        _ => Err(ENOSYS),
    };
    result.unwrap_or_else(Outcome::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::testing::{Machine, RAM, args};
    use crate::xen::{DOMID_SELF, nr};

    #[test]
    fn shutdown_reasons_and_other_commands() {
        let m = Machine::new(1);
        let at = RAM.start + 0x200;
        for (code, reason) in [
            (0, Reason::PowerOff),
            (1, Reason::Reboot),
            (3, Reason::Crash),
            (0x104, Reason::Watchdog),
            (9, Reason::Unknown(9)),
        ] {
            m.board.put(at, &(code as u32).to_le_bytes());
            assert_eq!(m.trap(0, nr::SCHED_OP, args(&[u64::from(op::SHUTDOWN), at])), Outcome::Shutdown(reason));
        }
        assert_eq!(m.trap(0, nr::SCHED_OP, args(&[u64::from(op::SHUTDOWN), RAM.end - 2])), Outcome::Return(-EFAULT));
        // remote_shutdown names a domain by id only: DOMID_SELF is nobody.
        m.board.put(at, &[DOMID_SELF.to_le_bytes().as_slice(), &[0, 0], &3u32.to_le_bytes()].concat());
        assert_eq!(m.trap(0, nr::SCHED_OP, args(&[u64::from(op::REMOTE_SHUTDOWN), at])), Outcome::Return(-ESRCH));
        m.board.put(at, &[0, 0]);
        assert_eq!(
            m.trap(0, nr::SCHED_OP, args(&[u64::from(op::REMOTE_SHUTDOWN), at])),
            Outcome::Shutdown(Reason::Crash)
        );
        m.board.put(at, &[1, 0]);
        assert_eq!(m.trap(0, nr::SCHED_OP, args(&[u64::from(op::REMOTE_SHUTDOWN), at])), Outcome::Return(-ESRCH));
        assert_eq!(m.call(nr::SCHED_OP, args(&[u64::from(op::YIELD)])), 0);
        assert_eq!(m.call(nr::SCHED_OP, args(&[u64::from(op::BLOCK)])), 0);
        assert_eq!(m.call(nr::SCHED_OP, args(&[u64::from(op::SHUTDOWN_CODE), at])), 0);
        assert_eq!(m.call(nr::SCHED_OP, args(&[3, at])), -ENOSYS);
        assert_eq!(m.call(nr::SCHED_OP, args(&[u64::MAX, at])), -ENOSYS);
    }
}
