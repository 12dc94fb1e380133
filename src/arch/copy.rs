//! Copying tens of MiB at boot (Dom0's kernel and initrd) quickly.
//!
//! Why not `core::ptr::copy_nonoverlapping` alone: on this target the
//! compiler's `memcpy` (compiler_builtins; no FP/SIMD, which is the
//! guest's) moves 8 bytes per loop of four instructions. Pairs of general
//! registers (LDP/STP) move 64 bytes in ten, which makes a 40 MB kernel
//! copy about three times cheaper (`cargo bench-qemu --only phases`).

use core::arch::asm;

/// Bytes moved per loop.
const CHUNK: usize = 64;

/// Copies `len` bytes from `src` to `dst`: the ends with `memcpy`, the
/// 64-byte-aligned middle of the destination with LDP/STP.
///
/// # Safety
/// `src` must be readable and `dst` writable for `len` bytes, the two must
/// not overlap, and both must be Normal memory (LDP/STP may be unaligned).
pub unsafe fn copy_large(dst: *mut u8, src: *const u8, len: usize) {
    let head = dst.align_offset(CHUNK).min(len);
    let middle = (len - head) & !(CHUNK - 1);
    let tail = len - head - middle;
    // SAFETY: the three parts lie within `[0, len)` of both buffers, which
    // the caller vouches for.
    unsafe {
        core::ptr::copy_nonoverlapping(src, dst, head);
        if middle > 0 {
            asm!(
                "1:",
                "ldp {a}, {b}, [{src}, #16]",
                "ldp {c}, {d}, [{src}, #32]",
                "ldp {e}, {f}, [{src}, #48]",
                "ldp {g}, {h}, [{src}], #64",
                "stp {a}, {b}, [{dst}, #16]",
                "stp {c}, {d}, [{dst}, #32]",
                "stp {e}, {f}, [{dst}, #48]",
                "stp {g}, {h}, [{dst}], #64",
                "subs {n}, {n}, #64",
                "b.ne 1b",
                src = inout(reg) src.add(head) => _,
                dst = inout(reg) dst.add(head) => _,
                n = inout(reg) middle => _,
                a = out(reg) _, b = out(reg) _, c = out(reg) _, d = out(reg) _,
                e = out(reg) _, f = out(reg) _, g = out(reg) _, h = out(reg) _,
                options(nostack),
            );
        }
        core::ptr::copy_nonoverlapping(src.add(head + middle), dst.add(head + middle), tail);
    }
}
