//! Loads, stores and instruction fetches where Dom0 has nothing: the
//! hypervisor's image (the grant region lies in its IPA range), its heap
//! and its allocator's metadata, free memory, the extended regions, beyond
//! the IPA space. Every access must abort, and no store may change the
//! hypervisor: the sanity call after the category and the free-frame count
//! at shutdown show it did not.

use super::super::{faults, fetch_faults, read_faults, write_faults};
use super::{Board, Hostile, mmu};
use core::arch::asm;

/// One load and one store every 64 KiB: 16 for each MiB of the heap.
const STRIDE: u64 = 64 << 10;
const GIB: u64 = 1 << 30;
/// What the stores would leave behind if one ever landed.
const POISON: u64 = 0xdead_beef_dead_beef;

/// The 1 GiB-aligned span from the lowest to the highest address the tree
/// names in RAM's neighbourhood: Dom0's banks, the grant region, the
/// extended regions. The hypervisor's own memory lies inside it.
fn span(board: &Board<'_>) -> (u64, u64) {
    let ranges = board.ram.iter().chain(board.regions).chain(core::iter::once(&board.grant_region));
    let start = ranges.clone().map(|&(s, _)| s).min().unwrap_or(0) & !(GIB - 1);
    let end = ranges.map(|&(_, e)| e).max().unwrap_or(0).next_multiple_of(GIB);
    (start, end)
}

pub fn run(h: &mut Hostile<'_>, board: &Board<'_>) {
    let (start, end) = span(board);
    h.report.say(format_args!("hostile: sweeping {start:#x}->{end:#x} every {STRIDE:#x}, Dom0 RAM left out"));
    for page in (start..end).step_by(STRIDE as usize).filter(|&a| !board.in_ram(a)) {
        // A different offset in each page, 8-byte aligned.
        let address = page + ((page >> 16) & 0xff8);
        h.aborts(read_faults(address), format_args!("a load from {address:#x}"));
        h.aborts(write_faults(address, POISON), format_args!("a store to {address:#x}"));
    }

    let named = [
        ("the hypervisor's image (the grant region)", board.grant_region.0),
        ("the hypervisor's image past the grant region", board.image_past_grants()),
        ("an extended region", board.unmapped()),
    ];
    for (what, address) in named {
        h.aborts(read_faults(address), format_args!("a load from {what} at {address:#x}"));
        h.aborts(write_faults(address, POISON), format_args!("a store to {what} at {address:#x}"));
        h.aborts(fetch_faults(address & !3), format_args!("an instruction fetch from {what} at {address:#x}"));
    }

    // With Normal memory, accesses that are misaligned, pairs, or that
    // cross from Dom0's last page into unmapped space, and DC ZVA.
    let crossing = board.ram_end() - 4;
    let image = board.image_past_grants();
    mmu::with_normal_memory(|| {
        h.aborts(read_faults(crossing), format_args!("a load crossing from RAM into nothing at {crossing:#x}"));
        h.aborts(
            write_faults(crossing, POISON),
            format_args!("a store crossing from RAM into nothing at {crossing:#x}"),
        );
        // SAFETY: the access aborts; the handler skips it.
        let pair = faults(|| unsafe {
            asm!("ldp {a}, {b}, [{at}]", at = in(reg) crossing - 4, a = out(reg) _, b = out(reg) _, options(nostack))
        });
        h.aborts(pair, format_args!("a load pair crossing from RAM into nothing at {:#x}", crossing - 4));
        // The tables map only the low 4 GiB 1:1: an image loaded above
        // (the hypervisor runs wherever it is put) gets the cases above.
        if image >= mmu::READ_ONLY {
            return;
        }
        // SAFETY: the access aborts; the handler skips it.
        let pair = faults(|| unsafe {
            asm!("stp {v}, {v}, [{at}]", at = in(reg) image + 8, v = in(reg) POISON, options(nostack))
        });
        h.aborts(pair, format_args!("a store pair into the hypervisor's image at {:#x}", image + 8));
        // SAFETY: the access aborts; the handler skips it.
        let zero = faults(|| unsafe { asm!("dc zva, {at}", at = in(reg) image, options(nostack)) });
        h.aborts(zero, format_args!("DC ZVA on the hypervisor's image at {image:#x}"));
        h.aborts(read_faults(image + 3), format_args!("a misaligned load from the hypervisor's image"));
    });
}
