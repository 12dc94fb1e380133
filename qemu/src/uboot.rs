//! Booting as a board does: Debian's U-Boot (`u-boot-qemu`) as QEMU's
//! firmware (`-bios`, at EL2 with `virtualization=on`) finds `boot.scr` on
//! the FAT partition of a virtio disk through its distro boot, and the
//! script loads the hypervisor, Dom0's kernel and initramfs from there,
//! writes Xen's boot-module nodes and command lines into U-Boot's device
//! tree and `booti`s the hypervisor: ImageBuilder's shape, so the same
//! script boots Xen 4.17 or ours (`docs/u-boot.md` puts it on an SD card).
//! The disk is built without root: a partition table written here, the
//! FAT file system by `mformat` and `mcopy` (`mtools`), the script by
//! `mkimage` (`u-boot-tools`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's U-Boot for QEMU's `virt` board (package `u-boot-qemu`).
pub const U_BOOT: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
/// Where the script loads the hypervisor: U-Boot's `kernel_addr_r`, a
/// 2 MiB boundary clear of its tree (0x4000_0000) and of the script
/// itself (`scriptaddr`, 0x4020_0000). Ours runs there, Xen moves itself.
pub const HYPERVISOR_ADDR: u64 = 0x4040_0000;
/// Where the FAT partition starts on the disk (1 MiB, as partitioning
/// tools align it).
const PARTITION_OFFSET: u64 = 1 << 20;

/// One file on the disk, by its name there.
struct Load<'a> {
    name: &'static str,
    file: &'a Path,
}

/// The script (`boot.cmd`, before `mkimage`): load the files from the
/// partition the script came from (`${devtype} ${devnum}:${distro_bootpart}`,
/// set by distro boot on any board), add Xen's boot-protocol properties and
/// module nodes to U-Boot's tree at `${fdt_addr}`, boot the hypervisor.
/// Modules are `(name, addr, size, kernel?)`; they carry Xen's legacy
/// compatibles, as ImageBuilder writes them.
pub fn script(hypervisor: &str, modules: &[(&str, u64, u64, bool)], xen_bootargs: &str, dom0_bootargs: &str) -> String {
    let mut s = String::new();
    let load = |s: &mut String, name: &str, addr: u64| {
        let _ = writeln!(s, "load ${{devtype}} ${{devnum}}:${{distro_bootpart}} {addr:#x} {name}");
    };
    load(&mut s, hypervisor, HYPERVISOR_ADDR);
    for &(name, addr, _, _) in modules {
        load(&mut s, name, addr);
    }
    s.push_str("fdt addr ${fdt_addr}\nfdt resize 1024\n");
    s.push_str("fdt set /chosen \\#address-cells <0x2>\nfdt set /chosen \\#size-cells <0x2>\n");
    let _ = writeln!(s, "fdt set /chosen xen,xen-bootargs \"{xen_bootargs}\"");
    let _ = writeln!(s, "fdt set /chosen xen,dom0-bootargs \"{dom0_bootargs}\"");
    for &(_, addr, size, kernel) in modules {
        let node = format!("/chosen/module@{addr:x}");
        let kind = if kernel { "xen,linux-zimage" } else { "xen,linux-initrd" };
        let _ = writeln!(s, "fdt mknode /chosen module@{addr:x}");
        let _ = writeln!(s, "fdt set {node} compatible \"{kind}\" \"xen,multiboot-module\" \"multiboot,module\"");
        let _ = writeln!(
            s,
            "fdt set {node} reg <{:#x} {:#x} {:#x} {:#x}>",
            addr >> 32,
            addr & 0xffff_ffff,
            size >> 32,
            size & 0xffff_ffff
        );
    }
    let _ = writeln!(s, "booti {HYPERVISOR_ADDR:#x} - ${{fdt_addr}}");
    s
}

fn run(command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("run {command:?} (run qemu/setup first): {e}"));
    assert!(out.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A master boot record with one bootable FAT partition (type 0x0c, FAT32
/// with LBA; U-Boot reads FAT12/16/32 whatever the type says) from
/// `PARTITION_OFFSET` for `sectors` 512-byte sectors.
fn master_boot_record(sectors: u64) -> [u8; 512] {
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[0] = 0x80; // bootable: distro boot scans bootable partitions first
    entry[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]); // CHS: use LBA
    entry[4] = 0x0c;
    entry[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&((PARTITION_OFFSET / 512) as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    mbr
}

/// Writes the disk at `disk`: the partition table, a FAT file system with
/// `files` and `boot.scr` made from `script`.
fn write_disk(disk: &Path, files: &[Load<'_>], script: &str) {
    let scratch = disk.with_extension("d");
    std::fs::create_dir_all(&scratch).expect("make the disk's scratch directory");
    let cmd = scratch.join("boot.cmd");
    let scr = scratch.join("boot.scr");
    std::fs::write(&cmd, script).expect("write boot.cmd");
    run(Command::new("mkimage")
        .args(["-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-n", "boot", "-d"])
        .arg(&cmd)
        .arg(&scr));
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f.file).map_or(0, |m| m.len())).sum();
    // Room for the files, the script and FAT's own structures, whole MiB.
    let partition = (bytes + (16 << 20)).next_multiple_of(1 << 20);
    let image = std::fs::File::create(disk).expect("create the disk");
    image.set_len(PARTITION_OFFSET + partition).expect("size the disk");
    drop(image);
    {
        use std::io::Write as _;
        let mut image = std::fs::OpenOptions::new().write(true).open(disk).expect("open the disk");
        image.write_all(&master_boot_record(partition / 512)).expect("write the partition table");
    }
    let target = format!("{}@@{PARTITION_OFFSET}", disk.display());
    let sectors = (partition / 512).to_string();
    let hidden = (PARTITION_OFFSET / 512).to_string();
    run(Command::new("mformat")
        .args(["-i", &target, "-T", &sectors, "-h", "64", "-s", "32", "-H", &hidden, "-v", "BOOT", "::"]));
    run(Command::new("mcopy").args(["-i", &target]).arg(&scr).arg("::boot.scr"));
    for f in files {
        run(Command::new("mcopy").args(["-i", &target]).arg(f.file).arg(format!("::{}", f.name)));
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// A Dom0 boot module as the script loads it.
pub struct BootModule<'a> {
    pub file: &'a Path,
    pub addr: u64,
    pub kernel: bool,
    /// Dom0's command line, on the kernel.
    pub bootargs: Option<&'a str>,
}

/// The disk that boots Dom0 from `modules` (Dom0's command line from the
/// kernel's bootargs) under `hypervisor`, whose own command line is
/// `xen_bootargs`, from U-Boot; written at `disk`.
pub fn disk_for(hypervisor: &Path, modules: &[BootModule<'_>], xen_bootargs: &str, disk: &Path) -> PathBuf {
    let mut files = vec![Load { name: "hv", file: hypervisor }];
    let mut listed = Vec::new();
    let mut dom0_bootargs = "";
    for m in modules {
        let name = if m.kernel { "kernel" } else { "initrd" };
        let size = std::fs::metadata(m.file).map_or(0, |meta| meta.len());
        files.push(Load { name, file: m.file });
        listed.push((name, m.addr, size, m.kernel));
        if m.kernel {
            dom0_bootargs = m.bootargs.unwrap_or_default();
        }
    }
    let text = script("hv", &listed, xen_bootargs, dom0_bootargs);
    write_disk(disk, &files, &text);
    disk.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_imagebuilders_shape() {
        let s = script(
            "hv",
            &[("kernel", 0x4200_0000, 0x1234, true), ("initrd", 0x1_4900_0000, 0x10, false)],
            "loglvl=all",
            "console=hvc0",
        );
        assert!(s.starts_with("load ${devtype} ${devnum}:${distro_bootpart} 0x40400000 hv\n"), "{s}");
        assert!(s.contains("fdt set /chosen/module@42000000 compatible \"xen,linux-zimage\" \"xen,multiboot-module\" \"multiboot,module\"\n"), "{s}");
        assert!(s.contains("fdt set /chosen/module@42000000 reg <0x0 0x42000000 0x0 0x1234>\n"), "{s}");
        assert!(s.contains("fdt set /chosen/module@149000000 reg <0x1 0x49000000 0x0 0x10>\n"), "{s}");
        assert!(s.contains("fdt set /chosen xen,dom0-bootargs \"console=hvc0\"\n"), "{s}");
        assert!(s.ends_with("booti 0x40400000 - ${fdt_addr}\n"), "{s}");
    }

    #[test]
    fn the_partition_table_has_one_bootable_fat_partition() {
        let mbr = master_boot_record(4096);
        assert_eq!(&mbr[510..], &[0x55, 0xaa]);
        assert_eq!(mbr[446], 0x80);
        assert_eq!(u32::from_le_bytes(mbr[454..458].try_into().unwrap()), 2048);
        assert_eq!(u32::from_le_bytes(mbr[458..462].try_into().unwrap()), 4096);
    }
}
