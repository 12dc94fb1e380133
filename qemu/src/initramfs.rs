//! A Linux Dom0's initramfs: busybox, the kernel's Xen modules, gnttest and
//! an `/init` script, as an uncompressed `newc` archive made without root.

use crate::cpio::Archive;
use crate::linux::{Kernel, busybox};
use crate::{image, work_dir, write_atomically};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

/// What every `/init` does first: busybox's applets as links, the kernel's
/// file systems, and the Xen modules loaded. `insmod` lines follow.
const SETUP: &str = "#!/bin/sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
";

/// The `/init` that sets up (see `SETUP`), loads `kernel`'s Xen modules,
/// then runs `body` (shell).
pub fn init_script(kernel: &Kernel, body: &str) -> String {
    let mut script = SETUP.to_string();
    for module in &kernel.modules {
        let name = module.file_name().expect("a module file").to_string_lossy();
        script.push_str(&format!("insmod /lib/modules/{name} || echo \"init: insmod {name} failed\"\n"));
    }
    script + body
}

/// Dom0's initramfs for `kernel` with `init` (a whole script, see
/// `init_script`) as `/init`. Its file is named by its content, so equal
/// requests share one, written once.
pub fn dom0_initramfs(kernel: &Kernel, init: &str) -> PathBuf {
    let read = |path: &std::path::Path| std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut archive = Archive::new();
    for dir in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"] {
        archive.directory(dir, 0o755);
    }
    archive.file("bin/busybox", 0o755, &read(busybox())).symlink("bin/sh", "busybox");
    for module in &kernel.modules {
        let name = module.file_name().expect("a module file").to_string_lossy();
        archive.file(&format!("lib/modules/{name}"), 0o644, &read(module));
    }
    archive.file("bin/gnttest", 0o755, &read(image::gnttest()));
    archive.file("init", 0o755, init.as_bytes());
    let bytes = archive.finish();

    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    let path = work_dir().join(format!("initramfs-{:016x}.cpio", hasher.finish()));
    if !path.exists() {
        write_atomically(&path, &bytes);
    }
    path
}
