//! `HYPERVISOR_xen_version` (`public/version.h`).

use super::Errno;
use super::errno::ENOSYS;
use super::public::XenFeatureInfo;
use super::{GuestMemory, wire};

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

/// A DomU's: neither the hardware domain nor 1:1.
pub fn domu_features(submap: u32) -> u32 {
    use feature::*;
    match submap {
        0 => [WRITABLE_PAGE_TABLES, AUTO_TRANSLATED_PHYSMAP, ARM_SMCCC_SUPPORTED]
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

/// For domain `domain_id` (its features depend on whether it is Dom0).
pub fn xen_version(domain_id: u16, cmd: u64, arg: u64, memory: &mut dyn GuestMemory) -> Result<i64, Errno> {
    let written = match cmd {
        XENVER_VERSION => return Ok(i64::from((MAJOR << 16) | MINOR)),
        XENVER_PAGESIZE => return Ok(4096),
        XENVER_EXTRAVERSION => wire::write(memory, arg, &padded::<16>(".0-rust")),
        XENVER_CAPABILITIES => wire::write(memory, arg, &padded::<1024>("xen-3.0-aarch64 ")),
        XENVER_CHANGESET => wire::write(memory, arg, &padded::<64>(env!("CARGO_PKG_VERSION"))),
        // struct xen_feature_info { uint32_t submap_idx; uint32_t submap; }
        XENVER_GET_FEATURES => wire::read::<XenFeatureInfo>(memory, arg).and_then(|mut info| {
            info.submap = if domain_id == 0 { dom0_features(info.submap_idx) } else { domu_features(info.submap_idx) };
            wire::write(memory, arg, &info)
        }),
        _ => return Err(ENOSYS),
    };
    written.map(|()| 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::errno::EFAULT;
    use crate::xen::nr;
    use crate::xen::testing::{Machine, RAM, args};

    #[test]
    fn version_and_features() {
        let m = Machine::new(1);
        assert_eq!(m.call(nr::XEN_VERSION, args(&[XENVER_VERSION])), 0x4_0011);
        let at = RAM.start + 0x1000;
        m.board.put(at, &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(m.call(nr::XEN_VERSION, args(&[XENVER_GET_FEATURES, at])), 0);
        let bits = u32::from_le_bytes(m.board.get(at + 4, 4).try_into().unwrap());
        assert_eq!(bits, (1 << 0) | (1 << 2) | (1 << 11) | (1 << 14) | (1 << 17));
        assert_eq!(bits & (1 << 16), 0, "never not_direct_mapped with direct_mapped");
        m.board.put(at, &1u32.to_le_bytes());
        assert_eq!(m.call(nr::XEN_VERSION, args(&[XENVER_GET_FEATURES, at])), 0);
        assert_eq!(m.board.get(at + 4, 4), [0, 0, 0, 0]);
    }

    #[test]
    fn strings_are_nul_padded_and_bad_pointers_fault() {
        let m = Machine::new(1);
        let at = RAM.start + 0x1000;
        m.board.put(at, &[0xee; 2048]);
        assert_eq!(m.call(nr::XEN_VERSION, args(&[XENVER_CAPABILITIES, at])), 0);
        let text = m.board.get(at, 1024);
        assert!(text.starts_with(b"xen-3.0-aarch64 \0"));
        assert!(text[16..].iter().all(|&b| b == 0));
        assert_eq!(m.call(nr::XEN_VERSION, args(&[XENVER_CAPABILITIES, RAM.end - 512])), -EFAULT, "crosses the end");
        assert_eq!(m.call(nr::XEN_VERSION, args(&[XENVER_EXTRAVERSION, 0])), -EFAULT);
        assert_eq!(m.call(nr::XEN_VERSION, args(&[XENVER_GET_FEATURES, u64::MAX - 3])), -EFAULT);
        assert_eq!(m.call(nr::XEN_VERSION, args(&[99, at])), -ENOSYS);
        assert_eq!(m.call(12345, args(&[])), -ENOSYS);
    }
}
