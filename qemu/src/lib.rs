//! Everything that runs QEMU for the project: building the hypervisor image,
//! making boot device trees, and booting with a time limit while capturing
//! the console. Used by the integration tests and by `cargo boot`.

pub mod bench;
pub mod cpio;
pub mod debian;
pub mod dtb;
pub mod guest;
pub mod image;
pub mod initramfs;
pub mod linux;
pub mod machine;
pub mod shim;

pub use machine::{Machine, Outcome};

use std::path::PathBuf;

/// The workspace root (the hypervisor's own directory).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("qemu/ has a parent").to_path_buf()
}

/// Where the harness keeps what it builds and generates.
pub fn work_dir() -> PathBuf {
    let dir = workspace_root().join("target").join("qemu");
    std::fs::create_dir_all(&dir).expect("create target/qemu");
    dir
}

/// Writes `bytes` to `path` whole: first under a name of its own, then
/// renamed, so no other test thread or process ever reads it half written.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let partial = path.with_extension(format!("partial-{}-{n}", std::process::id()));
    std::fs::write(&partial, bytes).unwrap_or_else(|e| panic!("write {}: {e}", partial.display()));
    std::fs::rename(&partial, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}
