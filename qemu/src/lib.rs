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
pub mod interactive;
pub mod linux;
pub mod linux_domu;
pub mod machine;
pub mod shim;
pub mod uboot;

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

/// This test process's scratch files (trees, shims, logs):
/// `target/qemu/run-<pid>`, made on first use after removing those of
/// processes that have exited, so repeated runs leave nothing behind.
pub fn run_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = work_dir();
        let me = std::process::id();
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix("run-")).and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid.filter(|&pid| pid != me && !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
                eprintln!("harness: removed the scratch files of finished test process {pid}");
            }
        }
        let dir = base.join(format!("run-{me}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        dir
    })
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
