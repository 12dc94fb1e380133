//! The Xen hypercall ABI, the part a Linux Dom0 uses (`xen/include/public/`).
//! Argument decoding, the per-domain state machines and results are pure and
//! host-tested, over what a [`Call`] is given: the calling domain as a
//! [`DomainView`] (its id, RAM, stage 2 and Xen state, lent by its owner),
//! guest memory by virtual address ([`GuestMemory`]) and everything else the
//! calls need from the machine ([`Board`]: physical words, frames, TLBs, the
//! event interrupt, the clock, the console). Nothing here calls up into the
//! layers that use it: a shutdown is an [`Outcome`] for the caller to act on.

pub mod console;
pub mod domain;
pub mod events;
pub mod grant;
pub mod hvm;
pub mod lifetime;
pub mod memory;
pub mod platform;
pub mod public;
pub mod sched;
pub mod shared;
pub mod vcpu;
pub mod version;
pub mod wire;

#[cfg(test)]
mod privilege_tests;
#[cfg(test)]
pub(crate) mod testing;

use crate::mm::stage2::Tlb;
use core::sync::atomic::AtomicU64;
pub use domain::{DomainView, Stage2Lock, lock_two};

/// A Xen errno (`public/errno.h`): the error of every call, positive
/// inside the hypervisor; negated once, where it becomes x0 (`-errno`, or
/// [`Errno::to_x0`]). Grant status codes (`grant::status`) are another thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(u16);

impl Errno {
    /// The value a guest sees in x0 (or in a per-entry error array).
    pub const fn to_x0(self) -> i64 {
        -(self.0 as i64)
    }
}

/// `-EINVAL` is x0's value, as in C.
impl core::ops::Neg for Errno {
    type Output = i64;
    fn neg(self) -> i64 {
        self.to_x0()
    }
}

/// Shown as the guest would see it (`-12`), as logs always did.
impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.to_x0())
    }
}

/// Xen's errno values.
pub mod errno {
    use super::Errno;
    pub const EPERM: Errno = Errno(1);
    pub const ENOENT: Errno = Errno(2);
    pub const ESRCH: Errno = Errno(3);
    pub const ENXIO: Errno = Errno(6);
    pub const E2BIG: Errno = Errno(7);
    pub const ENOMEM: Errno = Errno(12);
    pub const EACCES: Errno = Errno(13);
    pub const EFAULT: Errno = Errno(14);
    pub const EBUSY: Errno = Errno(16);
    pub const EEXIST: Errno = Errno(17);
    pub const EINVAL: Errno = Errno(22);
    pub const ENOSPC: Errno = Errno(28);
    pub const EDOM: Errno = Errno(33);
    pub const ENOSYS: Errno = Errno(38);
    pub const EILSEQ: Errno = Errno(84);
    pub const EOPNOTSUPP: Errno = Errno(95);
}

/// Hypercall numbers (x16).
pub mod nr {
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
}

/// "The calling domain" wherever a domid is asked for.
pub const DOMID_SELF: u16 = 0x7ff0;

/// A guest's memory as a hypercall sees it: guest virtual addresses,
/// translated through the guest's own page tables and its stage 2, landing
/// in the guest's RAM. Every access can fail with `EFAULT`. Called with no
/// Xen lock held: the board's takes the domain's stage-2 lock.
pub trait GuestMemory {
    fn write(&mut self, gva: u64, bytes: &[u8]) -> Result<(), Errno>;
    fn read(&mut self, gva: u64, bytes: &mut [u8]) -> Result<(), Errno>;
    /// The guest-physical and the physical address behind `gva` (for areas
    /// the hypervisor keeps updating, like the runstate), if it is the
    /// guest's RAM.
    fn translate(&mut self, gva: u64, write: bool) -> Result<(crate::mm::range::Ipa, crate::mm::range::Pa), Errno>;
}

/// What the hypercalls need from the machine. On the board this is the
/// real hardware (`board.rs`); host tests provide a model.
pub trait Board: Tlb + Sync {
    /// The 8-byte word of RAM at physical address `pa` (8-byte aligned),
    /// for atomic access to memory shared with a guest. Callers pass only
    /// RAM they checked: a guest's pinned frames or the hypervisor's own.
    fn word(&self, pa: u64) -> &AtomicU64;
    /// A frame of the hypervisor's, not zeroed.
    fn alloc_frame(&self) -> Option<u64>;
    fn free_frame(&self, pa: u64);
    /// Takes exactly the frame at `pa` if it is free (ballooning a 1:1
    /// guest back in).
    fn claim_frame(&self, pa: u64) -> bool;
    /// Makes the event-channel interrupt pending on vCPU `vcpu`.
    fn raise_event(&self, vcpu: usize);
    /// Xen's system time: nanoseconds of the counter.
    fn now_ns(&self) -> u64;
    /// Output from the guest's console.
    fn console_write(&self, bytes: &[u8]);
    /// Console input waiting for the guest: fills `buf`, returns the count.
    fn console_read(&self, buf: &mut [u8]) -> usize;
}

/// The machine's domains, as the calls between them reach one another:
/// implemented by the router on the board (Dom0 and the boot-time DomUs),
/// by the model machine in host tests.
pub trait Domains: Sync {
    /// The domain whose id is `domid` (never DOMID_SELF), if there is one:
    /// alive, or ended but not yet released (see [`lifetime`]; the calls
    /// check which). Never one being released: [`Domains::release`] makes
    /// it unfindable before any of its frames goes back.
    fn find(&self, domid: u16) -> Option<DomainView<'_>>;
    /// Gives back everything of domain `domid`, which has ended and whose
    /// frames no other domain maps any more ([`lifetime::kill`], or the
    /// unmap of its last frame elsewhere, said so): its RAM, its stage 2
    /// and VMID, and through [`lifetime::release_state`] what the Xen layer
    /// took for it, in this order: unfindable first, then its stage 2
    /// (after its VMID's TLB entries), then the Xen layer's state, then its
    /// RAM. Called once per domain, holding none of the Xen locks.
    fn release(&self, domid: u16);
    /// Makes the event-channel interrupt pending on vCPU `vcpu` of domain
    /// `domid` (an event sent from another domain).
    fn raise_event(&self, domid: u16, vcpu: usize);
}

/// One hypercall in progress: who makes it, and what it may touch.
pub struct Call<'a> {
    pub domain: DomainView<'a>,
    /// The calling vCPU's index in the domain.
    pub vcpu: usize,
    pub memory: &'a mut dyn GuestMemory,
    pub board: &'a dyn Board,
    /// The other domains, for the calls that name one.
    pub domains: &'a dyn Domains,
}

/// What the trap handler does when a hypercall returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Put this in x0 and return to the guest.
    Return(i64),
    /// Work remains: set x0..x4 to these and run the HVC again, so a long
    /// call gives the guest (and its interrupts) a turn in between, as
    /// Xen's hypercall continuations do.
    Continue([u64; 5]),
    /// The domain asked to stop the machine.
    Shutdown(sched::Reason),
}

impl From<i64> for Outcome {
    fn from(value: i64) -> Self {
        Outcome::Return(value)
    }
}

/// The dispatch edge: an error becomes its negated errno in x0.
impl From<Errno> for Outcome {
    fn from(error: Errno) -> Self {
        Outcome::Return(error.to_x0())
    }
}

impl From<Result<i64, Errno>> for Outcome {
    fn from(result: Result<i64, Errno>) -> Self {
        result.map_or_else(Outcome::from, Outcome::Return)
    }
}

/// The per-domain state behind the hypercalls.
pub struct DomainState {
    pub vcpus: alloc::vec::Vec<vcpu::Vcpu>,
    pub shared: shared::SharedInfo,
    pub events: events::EventChannels,
    pub grants: spin::Mutex<grant::GrantTable>,
    pub vm_assist: AtomicU64,
    /// RAM pages ballooned out.
    pub ballooned: AtomicU64,
    pub console: console::Console,
    /// Alive, ending or released, and the references other domains hold
    /// on its frames.
    pub life: lifetime::Life,
}

impl DomainState {
    /// State for `vcpus` vCPUs, grant-table frames to be mapped in
    /// `grant_region` (its size sets the table's maximum).
    pub fn new(vcpus: usize, grant_region: crate::mm::range::GuestRange) -> Self {
        Self {
            vcpus: (0..vcpus).map(vcpu::Vcpu::new).collect(),
            shared: shared::SharedInfo::new(),
            events: events::EventChannels::new(vcpus),
            grants: spin::Mutex::new(grant::GrantTable::new(grant_region)),
            vm_assist: AtomicU64::new(0),
            ballooned: AtomicU64::new(0),
            console: console::Console::new(),
            life: lifetime::Life::new(),
        }
    }
}

/// Runs hypercall `number` with arguments `args` (x0..x4).
pub fn dispatch(call: &mut Call<'_>, number: u64, args: [u64; 5]) -> Outcome {
    match number {
        nr::XEN_VERSION => version::xen_version(call.domain.id, args[0], args[1], call.memory).into(),
        nr::MEMORY_OP => memory::memory_op(call, args),
        nr::VCPU_OP => vcpu::vcpu_op(call, args[0] as u32, args[1] as u32, args[2]).into(),
        nr::VM_ASSIST => vcpu::vm_assist(call, args[0] as u32, args[1] as u32).into(),
        nr::EVENT_CHANNEL_OP => events::event_channel_op(call, args[0] as u32, args[1]).into(),
        nr::GRANT_TABLE_OP => grant::grant_table_op(call, args),
        nr::HVM_OP => hvm::hvm_op(call, args[0], args[1]).into(),
        nr::CONSOLE_IO => console::console_io(call, args),
        nr::SCHED_OP => sched::sched_op(call, args[0] as u32, args[1]),
        nr::PLATFORM_OP => platform::platform_op(call, args[0]).into(),
        _ => errno::ENOSYS.into(),
    }
}

impl<'a> Call<'a> {
    /// The domain `domid` names: the caller for DOMID_SELF or its own id,
    /// else the machine's domain of that id; -ESRCH if there is none, or
    /// if it has ended (new calls cannot reach a dying domain).
    pub fn find_domain(&self, domid: u16) -> Result<DomainView<'a>, Errno> {
        if domid == DOMID_SELF || domid == self.domain.id {
            Ok(self.domain)
        } else {
            self.domains.find(domid).filter(|d| d.xen.life.is_alive()).ok_or(errno::ESRCH)
        }
    }
}

/// Whether `domid` names the caller (DOMID_SELF or its own id).
pub fn is_self(call: &Call<'_>, domid: u16) -> bool {
    domid == DOMID_SELF || domid == call.domain.id
}

/// The caller's own domain: the domid check of every call that acts on a
/// domain's own state. Another domain that exists is -EPERM (Xen's XSM
/// answer to a caller without the toolstack's powers over it, which no
/// domain has here), one that does not -ESRCH.
pub fn own_domain(call: &Call<'_>, domid: u16) -> Result<(), Errno> {
    match call.find_domain(domid) {
        Ok(domain) if domain.id == call.domain.id => Ok(()),
        Ok(_) => Err(errno::EPERM),
        Err(e) => Err(e),
    }
}
