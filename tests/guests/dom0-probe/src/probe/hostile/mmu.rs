//! A stage-1 translation for the cases that need one. With the MMU off
//! every data access is to Device memory, where a misaligned access takes
//! an alignment fault at EL1 before the hypervisor could see it (QEMU 9
//! checks this), and a guest virtual address is always its IPA. With these
//! tables on, the low 4 GiB are mapped 1:1 as Normal non-cacheable memory
//! (misaligned accesses reach stage 2), the same 4 GiB again read-only
//! above them, and beyond that nothing: virtual addresses the hypervisor
//! must translate through the guest's own tables and refuse.

use core::arch::asm;
use core::ptr::addr_of_mut;

const GIB: u64 = 1 << 30;
/// Where the read-only alias of the low 4 GiB starts: the end of what the
/// tables map 1:1.
pub const READ_ONLY: u64 = 4 * GIB;
/// A virtual address the tables do not map.
pub const UNMAPPED_VA: u64 = 8 * GIB;

/// Level-1 table of 1 GiB blocks: T0SZ 25, a 39-bit space.
#[repr(C, align(4096))]
struct Level1([u64; 512]);

static mut LEVEL1: Level1 = Level1([0; 512]);

/// The read-only alias of `ipa` (below 4 GiB).
pub fn read_only(ipa: u64) -> u64 {
    READ_ONLY + ipa
}

/// Runs `f` with the tables on, and turns the MMU off again.
pub fn with_normal_memory<T>(f: impl FnOnce() -> T) -> T {
    const VALID_BLOCK: u64 = 0b01;
    const ACCESS_FLAG: u64 = 1 << 10;
    const READ_ONLY_AP: u64 = 1 << 7;
    const ATTR_NORMAL_NC: u64 = 0 << 2;
    let table = addr_of_mut!(LEVEL1) as *mut u64;
    for block in 0..8 {
        let ipa = (block % 4) * GIB;
        let ap = if block >= 4 { READ_ONLY_AP } else { 0 };
        // SAFETY: our own table, not in use while the MMU is off.
        unsafe { table.add(block as usize).write_volatile(ipa | ACCESS_FLAG | ap | ATTR_NORMAL_NC | VALID_BLOCK) };
    }
    const MAIR_NORMAL_NC: u64 = 0x44;
    const TCR: u64 = 25 | (1 << 23) | (2 << 32); // T0SZ 25, no TTBR1 walks, 40-bit IPA
    // SAFETY: identity maps every address the probe uses (its code, stack,
    // data and the devices) as before; only memory attributes change.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {table}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "mrs {tmp}, sctlr_el1",
            "orr {tmp}, {tmp}, #1",
            "msr sctlr_el1, {tmp}",
            "isb",
            mair = in(reg) MAIR_NORMAL_NC,
            tcr = in(reg) TCR,
            table = in(reg) table as u64,
            tmp = out(reg) _,
            options(nostack),
        )
    };
    let result = f();
    // SAFETY: back to the flat, untranslated view the rest of the probe uses.
    unsafe {
        asm!(
            "mrs {tmp}, sctlr_el1",
            "bic {tmp}, {tmp}, #1",
            "msr sctlr_el1, {tmp}",
            "isb",
            tmp = out(reg) _,
            options(nostack),
        )
    };
    result
}
