//! The hypercalls' [`Board`] on the real machine: RAM through the EL2
//! identity map, the frame allocator, TLB maintenance for the running
//! domain's VMID, the vGIC, the generic timer's counter, the UART.

use crate::domain::Domain;
use crate::mm::FRAMES;
use crate::mm::range::{Ipa, PhysRange};
use crate::mm::stage2::Tlb;
use crate::xen::{Board, DomainView, Domains};
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0};
use core::arch::asm;
use core::sync::atomic::AtomicU64;
use tock_registers::interfaces::Readable;

/// The real machine as one domain's hypercalls see it.
pub struct Hardware {
    pub domain: &'static Domain,
}

impl Tlb for Hardware {
    /// Runs on a CPU of the domain whose tables changed (its VMID is in
    /// VTTBR_EL2). A domain whose every vCPU is placed on this CPU has
    /// TLB entries nowhere else (placement is for good, and a VMID is
    /// invalidated everywhere before it is given out again), so a local
    /// invalidation does; otherwise the broadcast ones reach every CPU
    /// running it. The local one spares the other CPUs a round of
    /// maintenance (on QEMU, a stop of every vCPU thread).
    fn invalidate_ipa(&self, ipa: Ipa) {
        let page = ipa.0 >> 12;
        if self.domain.runs_only_on(crate::arch::cpu::current_index()) {
            // SAFETY: barriers and TLB maintenance change no memory.
            unsafe {
                asm!(
                    "dsb ishst",
                    "tlbi ipas2e1, {page}",
                    "dsb nsh",
                    // Stage-1 entries may hold the combined translation.
                    "tlbi vmalle1",
                    "dsb nsh",
                    "isb",
                    page = in(reg) page,
                    options(nostack, preserves_flags),
                )
            };
        } else {
            // SAFETY: barriers and TLB maintenance change no memory.
            unsafe {
                asm!(
                    "dsb ishst",
                    "tlbi ipas2e1is, {page}",
                    "dsb ish",
                    "tlbi vmalle1is",
                    "dsb ish",
                    "isb",
                    page = in(reg) page,
                    options(nostack, preserves_flags),
                )
            };
        }
    }

    fn publish(&self) {
        // SAFETY: barriers only.
        unsafe { asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
    }
}

impl Board for Hardware {
    fn word(&self, pa: u64) -> &AtomicU64 {
        debug_assert_eq!(pa % 8, 0);
        // SAFETY: RAM is identity mapped at EL2 (Normal, inner shareable,
        // as the guest maps it), and callers pass only RAM they checked: a
        // domain's pinned frames or the hypervisor's own. Words another
        // agent writes concurrently are only ever accessed atomically here.
        unsafe { &*(pa as *const AtomicU64) }
    }

    fn alloc_frame(&self) -> Option<u64> {
        FRAMES.lock().as_mut()?.alloc(0)
    }

    fn free_frame(&self, pa: u64) {
        if let Some(Err(e)) = FRAMES.lock().as_mut().map(|f| f.free(pa, 0)) {
            log::error!("frame {pa:#x} could not be freed: {e}");
        }
    }

    fn claim_frame(&self, pa: u64) -> bool {
        let range = PhysRange::new(pa, pa + 4096);
        FRAMES.lock().as_mut().is_some_and(|f| f.allocate_range(range).is_ok())
    }

    /// `vcpu` is a vCPU number of the domain's; the vGIC is told which
    /// vCPU (and so which physical CPU) that is, and raises the domain's
    /// event PPI there (a DomU's through its emulated GIC, which holds it
    /// until the DomU enables it).
    fn raise_event(&self, vcpu: usize) {
        match self.domain.vcpus.get(vcpu) {
            Some(vcpu) => crate::arch::vgic::raise(vcpu, self.domain.event_intid),
            None => log::warn!("d{}: no vCPU {vcpu} to raise an event on", self.domain.id.0),
        }
    }

    fn now_ns(&self) -> u64 {
        counter_to_ns(CNTPCT_EL0.get(), CNTFRQ_EL0.get())
    }

    fn console_write(&self, bytes: &[u8]) {
        crate::console::write_bytes(bytes);
    }

    fn console_read(&self, buf: &mut [u8]) -> usize {
        crate::console::input::take(buf)
    }
}

/// The machine's domains as the Xen calls between them find them: Dom0
/// and the boot-time DomUs (`crate::domain`'s registry).
pub struct MachineDomains;

impl Domains for MachineDomains {
    fn find(&self, domid: u16) -> Option<DomainView<'_>> {
        crate::domain::by_id(domid).map(Domain::view)
    }

    /// An ended DomU no other domain maps anything of any more: its
    /// memory, stage 2 and VMID go back (`domu::teardown`).
    fn release(&self, domid: u16) {
        match crate::domain::by_id(domid) {
            Some(domain) if domid != 0 => crate::domu::teardown::release(domain, &Hardware { domain }, self),
            _ => log::error!("d{domid}: no such DomU to release"),
        }
    }

    /// Every domain's vCPUs get the event PPI through the vGIC (a DomU's
    /// through its emulated GIC; one built without it sees the event only
    /// in its shared_info).
    fn raise_event(&self, domid: u16, vcpu: usize) {
        match crate::domain::by_id(domid) {
            Some(domain) => Hardware { domain }.raise_event(vcpu),
            None => log::warn!("d{domid}: no such domain to raise an event in"),
        }
    }
}

/// Counter ticks at `frequency` Hz in nanoseconds, without overflow.
fn counter_to_ns(ticks: u64, frequency: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(frequency.max(1))) as u64
}
