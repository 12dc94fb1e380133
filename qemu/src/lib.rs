//! Everything that runs QEMU for the project: building the hypervisor image,
//! making boot device trees, and booting with a time limit while capturing
//! the console. Used by the integration tests and by `cargo boot`.

pub mod dtb;
pub mod guest;
pub mod image;
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
