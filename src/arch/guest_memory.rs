//! Hypercall access to a guest's memory by guest virtual address: each page
//! is translated through the guest's stage 1 and stage 2 with `AT S12E1R/W`,
//! and must land in the guest's RAM, else the call fails with EFAULT.

use crate::domain::Domain;
use crate::mm::range::PhysRange;
use crate::xen::{GuestMemory, errno::EFAULT};
use aarch64_cpu::registers::PAR_EL1;
use core::arch::asm;
use tock_registers::interfaces::{Readable, Writeable};

/// The memory of the domain whose hypercall is being served.
pub struct GuestRam<'a> {
    pub domain: &'a Domain,
}

/// Translates `va` as the guest would for a read or write; `None` if the
/// walk fails (unmapped, no permission).
fn translate(va: u64, write: bool) -> Option<u64> {
    // AT reports through PAR_EL1, which is the guest's: keep its value.
    let saved = PAR_EL1.get();
    // SAFETY: address translation instructions only update PAR_EL1.
    unsafe {
        if write {
            asm!("at s12e1w, {}", "isb", in(reg) va, options(nostack, preserves_flags));
        } else {
            asm!("at s12e1r, {}", "isb", in(reg) va, options(nostack, preserves_flags));
        }
    }
    let par = PAR_EL1.get();
    PAR_EL1.set(saved);
    if par & 1 != 0 {
        return None;
    }
    Some((par & 0x0000_ffff_ffff_f000) | (va & 0xfff))
}

impl GuestRam<'_> {
    /// Walks `[gva, gva + len)` page by page: `(pa, offset in the buffer, length)`.
    fn each_page(
        &self,
        gva: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(u64, usize, usize),
    ) -> Result<(), i64> {
        gva.checked_add(len as u64).ok_or(-EFAULT)?;
        // Check every page first: a failing call changes nothing.
        let mut done = 0;
        while done < len {
            let va = gva + done as u64;
            let chunk = ((4096 - (va & 0xfff)) as usize).min(len - done);
            let pa = translate(va, write).ok_or(-EFAULT)?;
            let range = PhysRange::new(pa, pa + chunk as u64);
            if !self.domain.owns_ram(&range) {
                return Err(-EFAULT);
            }
            done += chunk;
        }
        let mut done = 0;
        while done < len {
            let va = gva + done as u64;
            let chunk = ((4096 - (va & 0xfff)) as usize).min(len - done);
            let pa = translate(va, write).ok_or(-EFAULT)?;
            f(pa, done, chunk);
            done += chunk;
        }
        Ok(())
    }
}

impl GuestMemory for GuestRam<'_> {
    fn write(&mut self, gva: u64, bytes: &[u8]) -> Result<(), i64> {
        self.each_page(gva, bytes.len(), true, |pa, at, len| {
            // SAFETY: `pa` is the guest's RAM (checked), mapped at EL2.
            unsafe { core::ptr::copy_nonoverlapping(bytes[at..].as_ptr(), pa as *mut u8, len) };
        })
    }

    fn read(&mut self, gva: u64, bytes: &mut [u8]) -> Result<(), i64> {
        self.each_page(gva, bytes.len(), false, |pa, at, len| {
            // SAFETY: as above.
            unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, bytes[at..].as_mut_ptr(), len) };
        })
    }
}
