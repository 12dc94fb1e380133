//! Linux for a Dom0: Debian's arm64 kernels (the raw Image and the Xen
//! device modules, decompressed) and a static busybox, fetched pinned
//! (`debian.rs`) and prepared once per process, the files cached under
//! `qemu/cache/linux/`.

use crate::debian::{self, Newest, Pin};
use crate::{workspace_root, write_atomically};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The Debian kernels Dom0 runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DebianKernel {
    /// trixie's 6.12: CONFIG_XEN_UNPOPULATED_ALLOC, so grant mappings use
    /// the extended regions; modules are `.ko.xz`.
    Trixie6_12,
    /// bookworm's 6.1: no ZONE_DEVICE, so grant mappings always use
    /// ballooned pages of Dom0's RAM; modules are plain `.ko`.
    Bookworm6_1,
}

impl DebianKernel {
    const fn pin(self) -> Pin {
        match self {
            DebianKernel::Trixie6_12 => Pin {
                suite: "trixie",
                package: "linux-image-6.12.107+deb13-arm64",
                version: "6.12.107-1",
                sha256: "20c92f3f97dd466e0400a6fcb792bde85af842fbb5e8b471370065e3de9d9fc9",
                newest: Newest::DependencyOf("linux-image-arm64"),
            },
            DebianKernel::Bookworm6_1 => Pin {
                suite: "bookworm",
                package: "linux-image-6.1.0-50-arm64",
                version: "6.1.176-1",
                sha256: "914f75b57a8e165d85fb910c3e2dcc7000a05a9fea3f42f90b26e8dd590d5f06",
                newest: Newest::DependencyOf("linux-image-arm64"),
            },
        }
    }
}

/// bookworm's busybox, statically linked.
const BUSYBOX: Pin = Pin {
    suite: "bookworm",
    package: "busybox-static",
    version: "1:1.35.0-4+deb12u1+b1",
    sha256: "732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5",
    newest: Newest::SamePackage,
};

/// The Xen device drivers gnttest and Dom0's tools use, in load order. In
/// both kernels all four are modules (CONFIG_XEN_DEV_EVTCHN, _PRIVCMD,
/// _GNTDEV, _GRANT_DEV_ALLOC =m); one built in needs no loading.
pub const XEN_MODULES: [&str; 4] = ["xen-evtchn", "xen-privcmd", "xen-gntdev", "xen-gntalloc"];

/// A kernel ready to boot.
#[derive(Debug)]
pub struct Kernel {
    /// As `uname -r` says, e.g. `6.12.107+deb13-arm64`.
    pub release: String,
    /// The raw arm64 Image.
    pub image: PathBuf,
    /// The `XEN_MODULES` that are modules, uncompressed, in load order.
    pub modules: Vec<PathBuf>,
}

/// The kernel `which`, fetched and prepared once per process.
pub fn debian_kernel(which: DebianKernel) -> &'static Kernel {
    static KERNELS: Mutex<BTreeMap<DebianKernel, &'static Kernel>> = Mutex::new(BTreeMap::new());
    let mut kernels = KERNELS.lock().unwrap_or_else(|e| e.into_inner());
    kernels.entry(which).or_insert_with(|| Box::leak(Box::new(prepare(&debian::fetch(&which.pin())))))
}

/// The static busybox binary, fetched once per process.
pub fn busybox() -> &'static Path {
    static BUSYBOX_PATH: OnceLock<PathBuf> = OnceLock::new();
    BUSYBOX_PATH.get_or_init(|| {
        let path = debian::fetch(&BUSYBOX).join("bin/busybox");
        assert!(path.is_file(), "busybox-static has no {}", path.display());
        path
    })
}

/// Finds the Image and the modules in an unpacked kernel package,
/// decompressing the modules into the cache.
fn prepare(unpacked: &Path) -> Kernel {
    let boot = std::fs::read_dir(unpacked.join("boot")).expect("the kernel package has /boot");
    let image = boot
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .expect("the kernel package has /boot/vmlinuz-*");
    let release = image.file_name().unwrap().to_string_lossy()["vmlinuz-".len()..].to_string();
    check_raw_image(&image);
    // trixie moved /lib to /usr/lib.
    let modules_dir = ["usr/lib/modules", "lib/modules"]
        .iter()
        .map(|dir| unpacked.join(dir).join(&release))
        .find(|dir| dir.is_dir())
        .expect("the kernel package has lib/modules/RELEASE");
    let built_in_list = std::fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default();
    let cache = workspace_root().join("qemu/cache/linux").join(&release);
    std::fs::create_dir_all(&cache).expect("create qemu/cache/linux");
    let mut kernel = Kernel { release, image, modules: Vec::new() };
    for name in XEN_MODULES {
        let in_tree = modules_dir.join("kernel/drivers/xen").join(format!("{name}.ko"));
        let compressed = in_tree.with_extension("ko.xz");
        if in_tree.is_file() {
            kernel.modules.push(in_tree);
        } else if compressed.is_file() {
            kernel.modules.push(decompress_xz(&compressed, &cache.join(format!("{name}.ko"))));
        } else if !built_in_list.lines().any(|l| l == format!("kernel/drivers/xen/{name}.ko")) {
            panic!("{name} is neither a module nor built into {}", kernel.release);
        }
    }
    kernel
}

/// The arm64 boot protocol's image: "ARM\x64" at offset 56. (Debian ships
/// it uncompressed, signed for EFI; a compressed one would need unpacking.)
fn check_raw_image(image: &Path) {
    use std::io::Read;
    let mut head = [0u8; 64];
    std::fs::File::open(image).and_then(|mut f| f.read_exact(&mut head)).expect("read the kernel image's header");
    assert!(&head[56..60] == b"ARM\x64", "{} is not a raw arm64 Image", image.display());
}

/// Decompresses an `.xz` file (busybox's insmod hands the file as it is to
/// init_module, so modules go in uncompressed); kept if already done.
fn decompress_xz(from: &Path, to: &Path) -> PathBuf {
    if !to.is_file() {
        let mut input = std::io::BufReader::new(std::fs::File::open(from).expect("open a module"));
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut input, &mut out).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        assert!(out.starts_with(b"\x7fELF"), "{} does not hold an ELF module", from.display());
        write_atomically(to, &out);
    }
    to.to_path_buf()
}
