//! Hypercall access to a guest's memory by guest virtual address: each page
//! is translated through the guest's stage 1 with `AT S1E1R/W` (to an IPA),
//! then through the domain's own stage-2 map (to a frame), and must be the
//! guest's RAM ([`ram_frame`](crate::xen::DomainView::ram_frame)), else the
//! call fails with EFAULT. The stage-2 step reads the map, not the MMU, so
//! it holds for a domain that is not 1:1.

use crate::domain::Domain;
use crate::mm::range::{Ipa, Pa};
use crate::mm::stage2::Stage2Map;
use crate::xen::{Errno, GuestMemory, errno::EFAULT};
use aarch64_cpu::registers::PAR_EL1;
use arrayvec::ArrayVec;
use core::arch::asm;
use tock_registers::interfaces::{Readable, Writeable};

/// The memory of the domain whose hypercall is being served.
pub struct GuestRam<'a> {
    pub domain: &'a Domain,
}

/// Translates `va` through the guest's stage 1 as it would for a read or
/// write; `None` if the walk fails: unmapped, no permission, or a stage-2
/// fault on the walk's own reads of the guest's tables (PAR_EL1.F with
/// PAR_EL1.S set).
fn stage1(va: u64, write: bool) -> Option<Ipa> {
    // AT reports through PAR_EL1, which is the guest's: keep its value.
    let saved = PAR_EL1.get();
    // SAFETY: address translation instructions only update PAR_EL1.
    unsafe {
        if write {
            asm!("at s1e1w, {}", "isb", in(reg) va, options(nostack, preserves_flags));
        } else {
            asm!("at s1e1r, {}", "isb", in(reg) va, options(nostack, preserves_flags));
        }
    }
    let par = PAR_EL1.get();
    PAR_EL1.set(saved);
    if par & 1 != 0 {
        return None;
    }
    Some(Ipa((par & 0x0000_ffff_ffff_f000) | (va & 0xfff)))
}

/// Largest buffer a hypercall may pass: 64 KiB, over at most 17 pages.
const MAX_BUFFER: usize = 64 * 1024;
const MAX_PAGES: usize = MAX_BUFFER / 4096 + 1;

impl GuestRam<'_> {
    /// Translates `[gva, gva + len)` once, page by page, into physical
    /// pieces `(pa, length)` that all lie in the domain's RAM; `stage2` is
    /// its locked map. Copies then use exactly these addresses: translating
    /// again would let a guest change its page tables in between (on
    /// another vCPU) and redirect the copy to memory that was never checked.
    fn pieces(
        &self,
        stage2: &Stage2Map,
        gva: u64,
        len: usize,
        write: bool,
    ) -> Result<ArrayVec<(Pa, usize), MAX_PAGES>, Errno> {
        if len > MAX_BUFFER {
            return Err(EFAULT);
        }
        gva.checked_add(len as u64).ok_or(EFAULT)?;
        let mut pieces = ArrayVec::new();
        let mut done = 0;
        while done < len {
            let va = gva + done as u64;
            let chunk = ((4096 - (va & 0xfff)) as usize).min(len - done);
            let ipa = stage1(va, write).ok_or(EFAULT)?;
            let pa = self.domain.view().ram_frame(stage2, ipa, write).ok_or(EFAULT)?;
            pieces.push((pa, chunk));
            done += chunk;
        }
        Ok(pieces)
    }
}

impl GuestMemory for GuestRam<'_> {
    // The copies hold the domain's stage-2 lock from translation to the
    // last byte: no other vCPU can balloon a page out (and its frame be
    // reused) in between.
    fn write(&mut self, gva: u64, bytes: &[u8]) -> Result<(), Errno> {
        let stage2 = self.domain.stage2.lock_holding_no_xen_lock();
        let mut at = 0;
        for (pa, len) in self.pieces(&stage2, gva, bytes.len(), true)? {
            // SAFETY: `pa..pa + len` is the domain's RAM (checked), mapped 1:1 at EL2.
            unsafe { core::ptr::copy_nonoverlapping(bytes[at..].as_ptr(), pa.0 as *mut u8, len) };
            at += len;
        }
        Ok(())
    }

    fn read(&mut self, gva: u64, bytes: &mut [u8]) -> Result<(), Errno> {
        let stage2 = self.domain.stage2.lock_holding_no_xen_lock();
        let mut at = 0;
        for (pa, len) in self.pieces(&stage2, gva, bytes.len(), false)? {
            // SAFETY: as above.
            unsafe { core::ptr::copy_nonoverlapping(pa.0 as *const u8, bytes[at..].as_mut_ptr(), len) };
            at += len;
        }
        Ok(())
    }

    fn translate(&mut self, gva: u64, write: bool) -> Result<(Ipa, Pa), Errno> {
        let stage2 = self.domain.stage2.lock_holding_no_xen_lock();
        let ipa = stage1(gva, write).ok_or(EFAULT)?;
        let pa = self.domain.view().ram_frame(&stage2, ipa, write).ok_or(EFAULT)?;
        Ok((ipa, pa))
    }
}
