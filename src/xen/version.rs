//! `HYPERVISOR_xen_version` (`public/version.h`).

use super::GuestMemory;
use super::errno::{EFAULT, ENOSYS};

pub const XENVER_VERSION: u64 = 0;
pub const XENVER_EXTRAVERSION: u64 = 1;
pub const XENVER_CAPABILITIES: u64 = 3;
pub const XENVER_CHANGESET: u64 = 4;
pub const XENVER_GET_FEATURES: u64 = 6;
pub const XENVER_PAGESIZE: u64 = 7;

/// We speak Xen 4.17's ABI.
pub const MAJOR: u32 = 4;
pub const MINOR: u32 = 17;

/// Feature bits (`public/features.h`) for a 1:1 Dom0 on Arm, submap 0.
pub mod feature {
    pub const WRITABLE_PAGE_TABLES: u32 = 0;
    pub const AUTO_TRANSLATED_PHYSMAP: u32 = 2;
    pub const DOM0: u32 = 11;
    pub const ARM_SMCCC_SUPPORTED: u32 = 14;
    pub const DIRECT_MAPPED: u32 = 17;
}

pub fn dom0_features(submap: u32) -> u32 {
    use feature::*;
    match submap {
        0 => [WRITABLE_PAGE_TABLES, AUTO_TRANSLATED_PHYSMAP, DOM0, ARM_SMCCC_SUPPORTED, DIRECT_MAPPED]
            .iter()
            .fold(0, |bits, &b| bits | (1 << b)),
        _ => 0,
    }
}

/// A NUL-padded fixed-size string field, as Xen's `char[N]` types.
fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = text.len().min(N - 1);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

pub fn xen_version(cmd: u64, arg: u64, memory: &mut dyn GuestMemory) -> i64 {
    let result = match cmd {
        XENVER_VERSION => return i64::from((MAJOR << 16) | MINOR),
        XENVER_PAGESIZE => return 4096,
        XENVER_EXTRAVERSION => memory.write(arg, &padded::<16>(".0-rust")),
        XENVER_CAPABILITIES => memory.write(arg, &padded::<1024>("xen-3.0-aarch64 ")),
        XENVER_CHANGESET => memory.write(arg, &padded::<64>(env!("CARGO_PKG_VERSION"))),
        XENVER_GET_FEATURES => {
            // struct xen_feature_info { uint32_t submap_idx; uint32_t submap; }
            let mut info = [0u8; 8];
            if memory.read(arg, &mut info).is_err() {
                return -EFAULT;
            }
            let idx = u32::from_le_bytes([info[0], info[1], info[2], info[3]]);
            info[4..].copy_from_slice(&dom0_features(idx).to_le_bytes());
            memory.write(arg, &info)
        }
        _ => return -ENOSYS,
    };
    match result {
        Ok(()) => 0,
        Err(_) => -EFAULT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::{dispatch, nr};

    /// Guest memory for tests: one window of bytes at `base`, faults elsewhere.
    struct Window {
        base: u64,
        bytes: Vec<u8>,
    }

    impl GuestMemory for Window {
        fn write(&mut self, gva: u64, bytes: &[u8]) -> Result<(), i64> {
            let at = gva.checked_sub(self.base).ok_or(-EFAULT)? as usize;
            let end = at.checked_add(bytes.len()).filter(|&e| e <= self.bytes.len()).ok_or(-EFAULT)?;
            self.bytes[at..end].copy_from_slice(bytes);
            Ok(())
        }
        fn read(&mut self, gva: u64, bytes: &mut [u8]) -> Result<(), i64> {
            let at = gva.checked_sub(self.base).ok_or(-EFAULT)? as usize;
            let end = at.checked_add(bytes.len()).filter(|&e| e <= self.bytes.len()).ok_or(-EFAULT)?;
            bytes.copy_from_slice(&self.bytes[at..end]);
            Ok(())
        }
    }

    fn window() -> Window {
        Window { base: 0x1000, bytes: vec![0xee; 2048] }
    }

    #[test]
    fn version_and_features() {
        let mut m = window();
        assert_eq!(dispatch(nr::XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0], &mut m), 0x4_0011);
        m.bytes[..8].copy_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(xen_version(XENVER_GET_FEATURES, 0x1000, &mut m), 0);
        let bits = u32::from_le_bytes(m.bytes[4..8].try_into().unwrap());
        assert_eq!(bits, (1 << 0) | (1 << 2) | (1 << 11) | (1 << 14) | (1 << 17));
        assert_eq!(bits & (1 << 16), 0, "never not_direct_mapped with direct_mapped");
        m.bytes[..4].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(xen_version(XENVER_GET_FEATURES, 0x1000, &mut m), 0);
        assert_eq!(&m.bytes[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn strings_are_nul_padded_and_bad_pointers_fault() {
        let mut m = window();
        assert_eq!(xen_version(XENVER_CAPABILITIES, 0x1000, &mut m), 0);
        assert!(m.bytes.starts_with(b"xen-3.0-aarch64 \0"));
        assert!(m.bytes[16..1024].iter().all(|&b| b == 0));
        assert_eq!(xen_version(XENVER_CAPABILITIES, 0x1500, &mut m), -EFAULT, "crosses the end");
        assert_eq!(xen_version(XENVER_EXTRAVERSION, 0, &mut m), -EFAULT);
        assert_eq!(xen_version(XENVER_GET_FEATURES, u64::MAX - 3, &mut m), -EFAULT);
        assert_eq!(xen_version(99, 0x1000, &mut m), -ENOSYS);
        assert_eq!(dispatch(12345, [0; 5], &mut m), -ENOSYS);
    }
}
