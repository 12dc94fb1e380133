//! Arm semihosting: how tests get text and an exit code out of QEMU
//! (`-semihosting-config enable=on`). Probed once at boot: without a
//! debugger or QEMU's support, `HLT #0xf000` is an undefined instruction,
//! which the exception handler skips, and semihosting stays off.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

const SYS_WRITE0: u64 = 0x04;
const SYS_ERRNO: u64 = 0x13;
const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// The HLT #0xf000 instruction, as the exception handler sees it.
pub const HLT_SEMIHOSTING: u32 = 0xd45e_0000;

static AVAILABLE: AtomicBool = AtomicBool::new(false);
static PROBING: AtomicBool = AtomicBool::new(false);

fn call(op: u64, arg: u64) -> u64 {
    let result;
    // SAFETY: a semihosting call reads only the memory `arg` points at,
    // which callers keep alive; if semihosting is absent the instruction
    // traps and the handler skips it (see `skip_failed_probe`).
    unsafe {
        asm!("hlt #0xf000", inout("x0") op => result, in("x1") arg, options(nostack));
    }
    result
}

/// Finds out whether semihosting answers. Call once, with the exception
/// vectors installed.
pub fn probe() {
    AVAILABLE.store(true, Ordering::SeqCst);
    PROBING.store(true, Ordering::SeqCst);
    call(SYS_ERRNO, 0);
    PROBING.store(false, Ordering::SeqCst);
}

/// Called by the exception handler for an undefined instruction: if it is
/// the probe's HLT, semihosting is absent and the instruction is skipped.
pub fn skip_failed_probe(instruction: u32) -> bool {
    if PROBING.load(Ordering::SeqCst) && instruction == HLT_SEMIHOSTING {
        AVAILABLE.store(false, Ordering::SeqCst);
        return true;
    }
    false
}

pub fn available() -> bool {
    AVAILABLE.load(Ordering::Relaxed)
}

/// Writes text to the debugger's console (QEMU: its stderr or chardev).
pub fn write(text: &str) {
    if !available() {
        return;
    }
    let mut buf = [0u8; 128];
    for chunk in text.as_bytes().chunks(buf.len() - 1) {
        buf[..chunk.len()].copy_from_slice(chunk);
        buf[chunk.len()] = 0;
        call(SYS_WRITE0, buf.as_ptr() as u64);
    }
}

/// Ends the session with `code` as QEMU's exit status. Returns only when
/// semihosting is absent.
pub fn exit(code: u32) {
    if available() {
        let block = [ADP_STOPPED_APPLICATION_EXIT, u64::from(code)];
        call(SYS_EXIT, block.as_ptr() as u64);
    }
}
