//! Reading and writing the public structs ([`super::public`]) in guest
//! memory: a struct's bytes are copied in through [`GuestMemory`] and read
//! as the struct, changed by field, and written back whole.

use super::Errno;
use super::GuestMemory;
use super::errno::EFAULT;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Reads a `T` at `gva`; `-EFAULT` if it is not there.
pub fn read<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
    memory: &mut dyn GuestMemory,
    gva: u64,
) -> Result<T, Errno> {
    let mut value = T::new_zeroed();
    memory.read(gva, value.as_mut_bytes()).map_err(|_| EFAULT)?;
    Ok(value)
}

/// Writes `value` at `gva`; `-EFAULT` if it cannot.
pub fn write<T: IntoBytes + Immutable + ?Sized>(
    memory: &mut dyn GuestMemory,
    gva: u64,
    value: &T,
) -> Result<(), Errno> {
    memory.write(gva, value.as_bytes()).map_err(|_| EFAULT)
}

/// The address of element `index` of an array of `size`-byte elements at
/// `base`; `None` if that wraps.
pub fn element(base: u64, index: u64, size: u64) -> Option<u64> {
    index.checked_mul(size).and_then(|offset| base.checked_add(offset))
}
