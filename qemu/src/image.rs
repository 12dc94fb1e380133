//! Building the hypervisor's raw arm64 Image.

use crate::{work_dir, workspace_root};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

pub const TARGET: &str = "aarch64-unknown-none-softfloat";

/// Builds a package of the workspace for the board and returns its ELF.
/// A separate target directory keeps this clear of the outer `cargo test`.
pub fn build_elf(package: &str, bin: &str) -> PathBuf {
    let target_dir = work_dir().join("build");
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(["build", "--release", "--target", TARGET, "-p", package, "--bin", bin, "--target-dir"])
        .arg(&target_dir)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building {package} for {TARGET} failed");
    target_dir.join(TARGET).join("release").join(bin)
}

/// `rust-objcopy` from the toolchain's `llvm-tools` component.
fn objcopy() -> PathBuf {
    let sysroot =
        Command::new("rustc").args(["--print", "sysroot"]).current_dir(workspace_root()).output().expect("run rustc");
    let sysroot = String::from_utf8(sysroot.stdout).expect("utf-8 sysroot");
    let host = Command::new("rustc").arg("-vV").output().expect("run rustc");
    let host = String::from_utf8(host.stdout).expect("utf-8");
    let host = host.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names the host");
    PathBuf::from(sysroot.trim()).join("lib/rustlib").join(host).join("bin/rust-objcopy")
}

/// Turns an ELF into the raw image QEMU's `-kernel` and boot loaders load.
pub fn raw_image(elf: &Path, out: &Path) {
    let status = Command::new(objcopy()).args(["-O", "binary"]).arg(elf).arg(out).status().expect("run rust-objcopy");
    assert!(status.success(), "objcopy of {} failed", elf.display());
}

/// The raw image of a workspace binary, built once per process.
fn built_once(package: &'static str) -> &'static Path {
    static IMAGES: Mutex<BTreeMap<&'static str, &'static Path>> = Mutex::new(BTreeMap::new());
    let mut images = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    images.entry(package).or_insert_with(|| {
        let elf = build_elf(package, package);
        let out = work_dir().join(format!("{package}.bin"));
        raw_image(&elf, &out);
        Box::leak(out.into_boxed_path())
    })
}

/// The hypervisor image.
pub fn hypervisor() -> &'static Path {
    built_once("hypervisor")
}

/// The bare-metal test guest `tests/guests/dom0-probe`.
pub fn dom0_probe() -> &'static Path {
    built_once("dom0-probe")
}

/// The bare-metal test guest `tests/guests/domu-probe`, booted as a dom0less DomU.
pub fn domu_probe() -> &'static Path {
    built_once("domu-probe")
}

/// The benchmark guest `tests/guests/bench`.
pub fn dom0_bench() -> &'static Path {
    built_once("dom0-bench")
}

/// The Linux program `tests/guests/gnttest` (an ELF), built once per process.
pub fn gnttest() -> &'static Path {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| build_elf("gnttest", "gnttest"))
}

/// Debian bookworm's Xen 4.17 hypervisor for arm64 (an Image).
pub fn xen_4_17() -> PathBuf {
    crate::debian::fetch(&crate::debian::XEN_4_17).join("boot/xen-4.17-arm64")
}
