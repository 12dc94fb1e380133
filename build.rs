//! Links the bare-metal image with our linker script. Host builds (the pure
//! modules under `cargo test`) link normally.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        // A static position-independent executable: boot/head.S applies its
        // R_AARCH64_RELATIVE relocations for wherever it was loaded. The
        // relocated words also hold their link-time values (so the image
        // also runs unrelocated at its link address), and may lie in
        // read-only sections (the MMU is off while head.S writes them);
        // no RELRO: nothing is made read-only after relocation.
        for arg in ["-pie", "--no-dynamic-linker", "-z", "notext", "-z", "norelro", "--apply-dynamic-relocs"] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
        println!("cargo:rerun-if-changed=linker.ld");
    }
    for asm in ["boot/head.S", "boot/vectors.S"] {
        println!("cargo:rerun-if-changed={asm}");
    }
}
