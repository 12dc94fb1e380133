//! A guest domain: what the hypervisor knows about one guest. Dom0 is the
//! only one built today, but nothing below assumes it is the only one.

use crate::mm::range::PhysRange;
use crate::mm::stage2::Stage2Map;
use alloc::vec::Vec;
use spin::Mutex;

/// Xen's domain id; Dom0 is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainId(pub u16);

pub struct Domain {
    pub id: DomainId,
    /// The VMID tagging its stage-2 TLB entries.
    pub vmid: u16,
    /// Its RAM, in guest-physical addresses (== physical for Dom0).
    pub ram: Vec<PhysRange>,
    /// Its stage-2 tables, changed at runtime under this lock.
    pub stage2: Mutex<Stage2Map>,
}

impl Domain {
    /// Whether `range` lies wholly in this domain's RAM.
    pub fn owns_ram(&self, range: &PhysRange) -> bool {
        self.ram.iter().any(|r| r.contains_range(range))
    }
}
