//! Calls that name another domain's own state: refused as Xen 4.17's XSM
//! refuses a domain without the toolstack's powers over the target
//! (-EPERM, or the op's permission-denied status), with -ESRCH (or
//! bad-domain) when no such domain exists. What the hostile DomU meets.
//! Dom0 gets the same answers about a DomU, where Xen lets its control
//! domain act (a deliberate difference: no domain here has a toolstack's
//! powers over another's memory map, reservations or power; what Dom0
//! does need, foreign and grant maps and a DomU's event channels, it has).

use super::errno::*;
use super::testing::{DOMU, DOMU_RAM, Machine, args, le};
use super::{DOMID_SELF, nr};

const NO_DOMAIN: u16 = 0x7000;
/// A page of each domain's RAM for arguments.
fn arg_of(domid: u16) -> u64 {
    if domid == 0 { super::testing::RAM.start + 0x3000 } else { DOMU_RAM.start + 0x3000 }
}

fn call_with(m: &Machine, domid: u16, number: u64, cmd: u64, bytes: &[u8]) -> (i64, Vec<u8>) {
    let at = arg_of(domid);
    m.put_in(domid, at, bytes);
    let rc = m.call_as(domid, number, args(&[cmd, at, 1]));
    (rc, m.get_in(domid, at, bytes.len()))
}

#[test]
fn naming_another_domains_state_is_eperm_and_an_unknown_one_esrch() {
    let m = Machine::with_domu(1);
    for (caller, other) in [(DOMU, 0u16), (0, DOMU)] {
        for (target, expected) in [(other, -EPERM), (NO_DOMAIN, -ESRCH)] {
            let domid = |at| (at, u64::from(target), 2);
            // add_to_physmap and remove_from_physmap into its stage 2.
            let xatp = le(&[domid(0), (4, 2, 4), (8, 0x40000, 8), (16, 0x50000, 8)], 24);
            assert_eq!(call_with(&m, caller, nr::MEMORY_OP, 7, &xatp).0, expected, "d{caller} add_to_physmap");
            let xrfp = le(&[domid(0), (8, 0x50000, 8)], 16);
            assert_eq!(call_with(&m, caller, nr::MEMORY_OP, 15, &xrfp).0, expected, "d{caller} remove");
            // Its event channels: a port made in its table, a port's status
            // (Dom0 may, as Xen's XSM_TARGET lets the privileged domain:
            // `events/tests.rs`).
            if caller != 0 {
                let alloc = le(&[domid(0), (2, u64::from(DOMID_SELF), 2)], 8);
                assert_eq!(call_with(&m, caller, nr::EVENT_CHANNEL_OP, 6, &alloc).0, expected, "d{caller} alloc");
                let status = le(&[domid(0), (4, 1, 4)], 24);
                assert_eq!(call_with(&m, caller, nr::EVENT_CHANNEL_OP, 5, &status).0, expected, "d{caller} status");
            }
            // Its grant table's size: a status, the call itself succeeds.
            let (rc, q) = call_with(&m, caller, nr::GRANT_TABLE_OP, 6, &le(&[domid(0)], 16));
            let want = if expected == -EPERM { -8 } else { -2 };
            assert_eq!((rc, i16::from_le_bytes([q[12], q[13]])), (0, want), "d{caller} query_size");
            // Shutting it down (a DomU naming itself too, as in Xen).
            let shutdown = le(&[domid(0)], 8);
            assert_eq!(call_with(&m, caller, nr::SCHED_OP, 4, &shutdown).0, expected, "d{caller} remote_shutdown");
        }
    }
    let itself = le(&[(0, u64::from(DOMU), 2)], 8);
    assert_eq!(call_with(&m, DOMU, nr::SCHED_OP, 4, &itself).0, -EPERM, "a DomU naming itself");
}

#[test]
fn the_platform_is_dom0s() {
    let m = Machine::with_domu(1);
    // XENPF_settime64, the interface version right; a wrong one is -EACCES
    // first, as in Xen.
    for (version, expected) in [(0x0300_0001u64, -EPERM), (1, -EACCES)] {
        let at = arg_of(DOMU);
        m.put_in(DOMU, at, &le(&[(0, 62, 4), (4, version, 4)], 136));
        assert_eq!(m.call_as(DOMU, nr::PLATFORM_OP, args(&[at])), expected);
    }
    let at = arg_of(0);
    m.put_in(0, at, &le(&[(0, 62, 4), (4, 0x0300_0001, 4)], 136));
    assert_eq!(m.call_as(0, nr::PLATFORM_OP, args(&[at])), 0);
}
