//! Debian arm64 packages pinned by version and hash, fetched through
//! `qemu/fetch-debian` (which has apt check each package against the signed
//! archive index). Debian drops superseded versions at point releases, so a
//! pinned version that is gone falls back to the newest one, with a warning.

use crate::workspace_root;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One package at one version.
#[derive(Debug)]
pub struct Pin {
    pub suite: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// Of the pinned version's `.deb`.
    pub sha256: &'static str,
    pub newest: Newest,
}

/// Where the newest version is found once the pinned one is gone.
#[derive(Debug)]
pub enum Newest {
    /// The package's own newest version.
    SamePackage,
    /// The package this meta-package depends on: a kernel's package name
    /// carries its ABI number, which changes between versions.
    DependencyOf(&'static str),
}

/// Debian bookworm's Xen 4.17 hypervisor.
pub const XEN_4_17: Pin = Pin {
    suite: "bookworm",
    package: "xen-hypervisor-4.17-arm64",
    version: "4.17.5+72-g01140da4e8-1",
    sha256: "ae97d9bb37f765ae1a37628894ad5156d0957ca7e39e7df86221ecb46502a1a8",
    newest: Newest::SamePackage,
};

/// Runs `qemu/fetch-debian` with `args`: its output lines, or its error.
fn fetch_debian(suite: &str, args: &[&str]) -> Result<Vec<String>, String> {
    // One apt at a time: fetches share their suite's private state.
    static APT: Mutex<()> = Mutex::new(());
    let _apt = APT.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(workspace_root().join("qemu/fetch-debian"))
        .arg(suite)
        .args(args)
        .output()
        .expect("run qemu/fetch-debian");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8(out.stdout).expect("fetch-debian prints paths").lines().map(String::from).collect())
}

/// The `.deb` that `qemu/fetch-debian` unpacked into `unpacked`
/// (`apt-SUITE/unpacked/NAME` comes from `apt-SUITE/archives/NAME.deb`).
fn deb_of(unpacked: &Path) -> PathBuf {
    let name = unpacked.file_name().expect("an unpacked package's directory").to_string_lossy();
    let root = unpacked.parent().and_then(Path::parent).expect("apt-SUITE/unpacked/NAME");
    root.join("archives").join(format!("{name}.deb"))
}

fn sha256(file: &Path) -> String {
    let out = Command::new("sha256sum").arg(file).output().expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", file.display());
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// Fetches `pin` (or the newest version, if Debian has dropped it) and
/// returns the directory its files are unpacked in.
pub fn fetch(pin: &Pin) -> PathBuf {
    let pinned = format!("{}={}", pin.package, pin.version);
    match fetch_debian(pin.suite, &[&pinned]) {
        Ok(lines) => {
            let dir = PathBuf::from(&lines[0]);
            let deb = deb_of(&dir);
            let hash = sha256(&deb);
            assert_eq!(hash, pin.sha256, "{} is not the pinned package: remove it to fetch it again", deb.display());
            dir
        }
        Err(why) => {
            let package = match pin.newest {
                Newest::SamePackage => pin.package.to_string(),
                Newest::DependencyOf(meta) => {
                    let depends =
                        fetch_debian(pin.suite, &["--depends", meta]).unwrap_or_else(|e| panic!("{meta}: {e}"));
                    depends.into_iter().next().unwrap_or_else(|| panic!("{meta} depends on nothing in {}", pin.suite))
                }
            };
            let why = why.lines().next().unwrap_or_default();
            eprintln!("qemu-harness: {pinned} is not in Debian {} ({why}); using the newest {package}", pin.suite);
            let lines = fetch_debian(pin.suite, &[&package]).unwrap_or_else(|e| panic!("fetching {package}: {e}"));
            PathBuf::from(&lines[0])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deb_beside_an_unpacked_package() {
        let dir = Path::new("/c/apt-bookworm/unpacked/busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64");
        assert_eq!(deb_of(dir), Path::new("/c/apt-bookworm/archives/busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb"));
    }
}
