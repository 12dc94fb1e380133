//! A five-instruction boot shim that enters the hypervisor the way a boot
//! loader would (x0 = device tree, x1..x3 = 0) but with a device tree QEMU
//! has not touched. QEMU's own `-kernel` path always rewrites `/memory`, so
//! a tree without one (or a truncated one) can only arrive this way.

/// `MOVZ Xd, #imm16, LSL #shift`.
pub fn movz(rd: u32, imm16: u16, shift: u32) -> u32 {
    assert!(rd < 31 && shift.is_multiple_of(16) && shift < 64);
    0xd280_0000 | ((shift / 16) << 21) | (u32::from(imm16) << 5) | rd
}

/// `MOVK Xd, #imm16, LSL #shift`.
pub fn movk(rd: u32, imm16: u16, shift: u32) -> u32 {
    assert!(rd < 31 && shift.is_multiple_of(16) && shift < 64);
    0xf280_0000 | ((shift / 16) << 21) | (u32::from(imm16) << 5) | rd
}

/// `BR Xn`.
pub fn br(rn: u32) -> u32 {
    0xd61f_0000 | (rn << 5)
}

/// Code that jumps to `entry` with x0 = `dtb` (both below 4 GiB, 64 KiB aligned).
pub fn code(entry: u64, dtb: u64) -> Vec<u8> {
    assert!(entry.is_multiple_of(0x1_0000) && entry < 1 << 32 && dtb.is_multiple_of(0x1_0000) && dtb < 1 << 32);
    let words = [
        movz(0, (dtb >> 16) as u16, 16),
        movz(1, 0, 0),
        movz(2, 0, 0),
        movz(3, 0, 0),
        movz(4, (entry >> 16) as u16, 16),
        br(4),
    ];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Code that jumps to `entry`, any address, leaving x0..x3 as they were:
/// given to QEMU as the `-kernel` (a raw binary, no Image header, so QEMU
/// loads it at RAM base + 512 KiB and enters it with x0 = its tree), it
/// hands QEMU's boot to an image loaded elsewhere with `-device loader`.
pub fn jump_to(entry: u64) -> Vec<u8> {
    let part = |i: u32| (entry >> (16 * i)) as u16;
    let words = [movz(4, part(0), 0), movk(4, part(1), 16), movk(4, part(2), 32), movk(4, part(3), 48), br(4)];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_assembler() {
        // As GNU as encodes `mov x0, #0x48000000`, `mov x1, #0`, `br x4`.
        assert_eq!(movz(0, 0x4800, 16), 0xd2a9_0000);
        assert_eq!(movz(1, 0, 0), 0xd280_0001);
        assert_eq!(movz(4, 0x4020, 16), 0xd2a8_0404);
        assert_eq!(br(4), 0xd61f_0080);
        assert_eq!(code(0x4020_0000, 0x4800_0000).len(), 24);
        // `movk x4, #0x1, lsl #32`.
        assert_eq!(movk(4, 1, 32), 0xf2c0_0024);
        assert_eq!(jump_to(0x1_0020_0000).len(), 20);
    }
}
