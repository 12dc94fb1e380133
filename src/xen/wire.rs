//! The public structs as the guest lays them out: little-endian fields at
//! fixed offsets (arm64). Calls copy a struct into a byte array, read and
//! write fields here, and copy it back.

use super::GuestMemory;
use super::errno::EFAULT;
use super::Errno;

pub fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

pub fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

pub fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Reads an `N`-byte struct at `gva`; `EFAULT` if it is not there.
pub fn read<const N: usize>(memory: &mut dyn GuestMemory, gva: u64) -> Result<[u8; N], Errno> {
    let mut bytes = [0u8; N];
    memory.read(gva, &mut bytes).map_err(|_| EFAULT)?;
    Ok(bytes)
}

/// Writes a struct back; `EFAULT` if it cannot.
pub fn write(memory: &mut dyn GuestMemory, gva: u64, bytes: &[u8]) -> Result<(), Errno> {
    memory.write(gva, bytes).map_err(|_| EFAULT)
}

/// The address of element `index` of an array of `size`-byte elements at
/// `base`; `None` if that wraps.
pub fn element(base: u64, index: u64, size: u64) -> Option<u64> {
    index.checked_mul(size).and_then(|offset| base.checked_add(offset))
}
