//! Tiny Dom0 stand-ins, a few instructions each behind an arm64 Image
//! header, for boots that test how the hypervisor enters and treats its
//! guest. They report through semihosting exit codes. (Richer checks run in
//! guests written in Rust; these need no build step.)

use crate::shim::movz;

/// Exit codes the stand-ins use: none is one the hypervisor stops with
/// (`src/fatal.rs`, 0 to 20), so a test tells the guest's verdict from
/// the hypervisor's.
pub const REACHED: u32 = 0x50;
pub const NO_ABORT: u32 = 0x51;
pub const BAD_DTB_POINTER: u32 = 0x53;
pub const ABORTED: u32 = 42;

const SYS_EXIT: u16 = 0x18;
const HLT_SEMIHOSTING: u32 = 0xd45e_0000;

fn b(from: usize, to: usize) -> u32 {
    0x1400_0000 | ((((to as i64 - from as i64) / 4) as u32) & 0x03ff_ffff)
}
fn b_ne(from: usize, to: usize) -> u32 {
    0x5400_0001 | (((((to as i64 - from as i64) / 4) as u32) & 0x7_ffff) << 5)
}
fn adr(rd: u32, from: usize, to: usize) -> u32 {
    let offset = (to as i64 - from as i64) as u32;
    0x1000_0000 | ((offset & 3) << 29) | (((offset >> 2) & 0x7_ffff) << 5) | rd
}
fn movz32(rd: u32, imm: u16) -> u32 {
    0x5280_0000 | (u32::from(imm) << 5) | rd
}
fn movk32_hi(rd: u32, imm: u16) -> u32 {
    0x72a0_0000 | (u32::from(imm) << 5) | rd
}
/// `LDR Wt, [Xn]`.
fn ldr32(rt: u32, rn: u32) -> u32 {
    0xb940_0000 | (rn << 5) | rt
}
/// `LDR Xt, [Xn]`.
fn ldr64(rt: u32, rn: u32) -> u32 {
    0xf940_0000 | (rn << 5) | rt
}
/// `CMP Wn, Wm`.
fn cmp32(rn: u32, rm: u32) -> u32 {
    0x6b00_001f | (rm << 16) | (rn << 5)
}
const MSR_VBAR_EL1_X2: u32 = 0xd518_c002;
const ISB: u32 = 0xd503_3fdf;

/// A program being laid out: words at byte offsets in the image.
struct Image {
    bytes: Vec<u8>,
}

impl Image {
    fn new(size: usize) -> Self {
        let mut bytes = vec![0u8; size];
        // arm64 Image header: branch over it, image_size, LE/4K, magic.
        bytes[0..4].copy_from_slice(&b(0, 0x40).to_le_bytes());
        bytes[0x10..0x18].copy_from_slice(&(size as u64).to_le_bytes());
        bytes[0x18..0x20].copy_from_slice(&2u64.to_le_bytes());
        bytes[0x38..0x3c].copy_from_slice(b"ARM\x64");
        Self { bytes }
    }
    fn put(&mut self, at: usize, words: &[u32]) {
        for (i, w) in words.iter().enumerate() {
            self.bytes[at + 4 * i..at + 4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
    }
    fn quads(&mut self, at: usize, quads: &[u64]) {
        for (i, q) in quads.iter().enumerate() {
            self.bytes[at + 8 * i..at + 8 * i + 8].copy_from_slice(&q.to_le_bytes());
        }
    }
    /// Semihosting SYS_EXIT with `code` at `at`, its parameter block at `block`.
    fn exit(&mut self, at: usize, block: usize, code: u32) {
        self.put(at, &[movz(0, SYS_EXIT, 0), adr(1, at + 4, block), HLT_SEMIHOSTING, b(at + 12, at + 12)]);
        self.quads(block, &[0x20026, u64::from(code)]);
    }
}

/// Checks that x0 points at a device tree (its magic), then exits with
/// `REACHED`; with `BAD_DTB_POINTER` otherwise.
pub fn reach_and_exit() -> Vec<u8> {
    let mut image = Image::new(0x1000);
    let fail = 0x80;
    image.put(0x40, &[ldr32(5, 0), movz32(6, 0x0dd0), movk32_hi(6, 0xedfe), cmp32(5, 6), b_ne(0x50, fail)]);
    image.exit(0x54, 0x100, REACHED);
    image.exit(fail, 0x110, BAD_DTB_POINTER);
    image.bytes
}

/// Installs a vector table, then reads `addr` (64 KiB aligned, below
/// 4 GiB): exits `ABORTED` from its synchronous-exception vector, or
/// `NO_ABORT` if the read completed.
pub fn read_and_expect_abort(addr: u64) -> Vec<u8> {
    assert!(addr.is_multiple_of(0x1_0000) && addr < 1 << 32);
    let mut image = Image::new(0x1000);
    let vectors = 0x800;
    image.put(0x40, &[adr(2, 0x40, vectors), MSR_VBAR_EL1_X2, ISB, movz(4, (addr >> 16) as u16, 16), ldr64(3, 4)]);
    image.exit(0x54, 0x100, NO_ABORT);
    // Current EL with SP_ELx, synchronous.
    image.exit(vectors + 0x200, 0x120, ABORTED);
    image.bytes
}

/// Calls `function` through `SMC #0` (x0 = function id) and loops: for
/// PSCI SYSTEM_OFF, the hypervisor ends the machine.
pub fn smc_and_hang(function: u32) -> Vec<u8> {
    let mut image = Image::new(0x1000);
    image.put(
        0x40,
        &[movz(0, (function & 0xffff) as u16, 0), 0xf2a0_0000 | ((function >> 16) << 5), 0xd400_0003, b(0x4c, 0x4c)],
    );
    image.bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        // As GNU as encodes them.
        assert_eq!(b(0, 0x40), 0x1400_0010);
        assert_eq!(b(0x10, 0x10), 0x1400_0000);
        assert_eq!(b_ne(0x50, 0x80), 0x5400_0181);
        assert_eq!(adr(1, 0x44, 0x50), 0x1000_0061);
        assert_eq!(ldr32(5, 0), 0xb940_0005);
        assert_eq!(ldr64(3, 4), 0xf940_0083);
        assert_eq!(movz32(6, 0x0dd0), 0x5281_ba06);
        assert_eq!(movk32_hi(6, 0xedfe), 0x72bd_bfc6);
        assert_eq!(cmp32(5, 6), 0x6b06_00bf);
        let image = reach_and_exit();
        assert_eq!(&image[0x38..0x3c], b"ARM\x64");
    }
}
