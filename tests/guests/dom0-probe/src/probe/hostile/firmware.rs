//! PSCI and SMCCC with bad arguments, over HVC and over SMC: CPU_ON of
//! CPUs that do not exist or are on, with entry points outside Dom0's RAM;
//! function IDs nobody implements; calls with a non-zero immediate, which
//! are no SMCCC calls at all. A second vCPU is started for real, twice,
//! and turns itself off each time.

use super::super::faults;
use super::{Board, Hostile};
use core::arch::asm;
use core::ptr::{addr_of_mut, write_volatile};

const PSCI_FEATURES: u64 = 0x8400_000a;
const CPU_ON: u64 = 0xc400_0003;
const AFFINITY_INFO: u64 = 0xc400_0004;
const SMCCC_ARCH_FEATURES: u64 = 0x8000_0001;

const NOT_SUPPORTED: i64 = -1;
const INVALID_PARAMETERS: i64 = -2;
const ALREADY_ON: i64 = -4;
const ON_PENDING: i64 = -5;
const INVALID_ADDRESS: i64 = -9;
/// AFFINITY_INFO's answers.
const ON: i64 = 0;
const OFF: i64 = 1;
const PENDING: i64 = 2;

/// The exception class of an undefined instruction.
const EC_UNKNOWN: u64 = 0;

#[derive(Clone, Copy)]
enum Conduit {
    Hvc,
    Smc,
}

fn smccc(conduit: Conduit, function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let result: u64;
    // SAFETY: an SMCCC call to the hypervisor; it writes x0..x3 at most.
    unsafe {
        match conduit {
            Conduit::Hvc => asm!("hvc #0", inout("x0") function => result, inout("x1") a1 => _,
                                 inout("x2") a2 => _, inout("x3") a3 => _, options(nostack)),
            Conduit::Smc => asm!("smc #0", inout("x0") function => result, inout("x1") a1 => _,
                                 inout("x2") a2 => _, inout("x3") a3 => _, options(nostack)),
        }
    }
    result as i64
}

unsafe extern "C" {
    /// `main.rs`: waits for its context word to turn non-zero, then CPU_OFF.
    fn secondary_park();
}

/// The word the parked vCPU waits on.
static mut RELEASE: u64 = 0;

fn set_release(value: u64) {
    // SAFETY: a static the other vCPU only reads (with its MMU off, from
    // memory, as this one writes it).
    unsafe { write_volatile(addr_of_mut!(RELEASE), value) };
}

/// AFFINITY_INFO of `mpidr` until it says off, or `None` after a while.
fn wait_until_off(mpidr: u64) -> Option<i64> {
    for _ in 0..20_000_000 {
        let state = smccc(Conduit::Hvc, AFFINITY_INFO, mpidr, 0, 0);
        if state != ON && state != PENDING {
            return Some(state);
        }
    }
    None
}

pub fn run(h: &mut Hostile<'_>, board: &Board<'_>) {
    let entry = secondary_park as *const () as u64;
    let context = addr_of_mut!(RELEASE) as u64;
    let Some(&second) = board.mpidrs.get(1).filter(|&&m| m != u64::MAX) else {
        h.case(false, format_args!("a second vCPU to start"));
        return;
    };
    let me = board.mpidrs[0];
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        let via = match conduit {
            Conduit::Hvc => "HVC",
            Conduit::Smc => "SMC",
        };
        let absent = board.mpidrs.iter().copied().filter(|&m| m != u64::MAX).max().unwrap_or(0) + 1;
        // Bits outside the affinity fields must be zero (Xen ignores them
        // and would start the vCPU).
        for mpidr in [absent, 0xff, 0x100, 1 << 32, u64::MAX, second | 1 << 40] {
            let rc = smccc(conduit, CPU_ON, mpidr, entry, context);
            h.expect(rc, INVALID_PARAMETERS, format_args!("CPU_ON of MPIDR {mpidr:#x} over {via}"));
        }
        // Entry points outside Dom0's RAM (Xen starts a vCPU anywhere and
        // lets it fault there).
        for (what, pc) in [
            ("the hypervisor's image", board.grant_region.0),
            ("past the grant region", board.image_past_grants()),
            ("an extended region", board.unmapped()),
            ("a device", board.device),
            ("a misaligned address", entry + 2),
            ("just past RAM", board.ram_end()),
            ("address 0", 0),
            ("the last address", !3),
        ] {
            let rc = smccc(conduit, CPU_ON, second, pc, context);
            h.expect(rc, INVALID_ADDRESS, format_args!("CPU_ON with an entry at {what} ({pc:#x}) over {via}"));
        }
        h.expect(
            smccc(conduit, AFFINITY_INFO, second, 1, 0),
            INVALID_PARAMETERS,
            format_args!("AFFINITY_INFO at level 1 over {via}"),
        );
        h.expect(
            smccc(conduit, PSCI_FEATURES, 0xc400_0001, 0, 0),
            NOT_SUPPORTED,
            format_args!("PSCI_FEATURES of CPU_SUSPEND over {via}"),
        );
        h.expect(
            smccc(conduit, SMCCC_ARCH_FEATURES, 0x8000_8000, 0, 0),
            NOT_SUPPORTED,
            format_args!("ARCH_WORKAROUND_1 over {via}"),
        );
        h.expect(
            smccc(conduit, CPU_ON, me, entry, context),
            ALREADY_ON,
            format_args!("CPU_ON of the calling CPU over {via}"),
        );
        h.expect(
            smccc(conduit, AFFINITY_INFO, absent, 0, 0),
            INVALID_PARAMETERS,
            format_args!("AFFINITY_INFO of {absent:#x} over {via}"),
        );
        h.expect(
            smccc(conduit, AFFINITY_INFO, second, 0, 0),
            OFF,
            format_args!("AFFINITY_INFO of the second vCPU over {via}"),
        );
        for function in [0x8400_0001, 0xc400_0005, 0x8400_0007, 0x8400_00ff, 0xc400_00ff, 0xbf00_0000, 0, 0xffff_ffff] {
            let rc = smccc(conduit, function, 0, 0, 0);
            h.expect(rc, NOT_SUPPORTED, format_args!("function {function:#x} over {via}"));
        }
        h.expect(
            smccc(conduit, PSCI_FEATURES, 0x8400_00ff, 0, 0),
            NOT_SUPPORTED,
            format_args!("PSCI_FEATURES of an unknown function over {via}"),
        );
    }

    // A non-zero immediate makes no SMCCC call: an undefined instruction,
    // as Xen does (a Xen hypercall over SMC included).
    for (what, esr) in [
        // The hypervisor injects an undefined instruction for each, which
        // the handler skips; x0 and x16 are declared clobbered.
        // SAFETY: as said above.
        ("HVC #1", faults(|| unsafe { asm!("hvc #1", inout("x0") 0x8400_0000u64 => _, options(nostack)) })),
        // SAFETY: as said above.
        ("SMC #1", faults(|| unsafe { asm!("smc #1", inout("x0") 0x8400_0000u64 => _, options(nostack)) })),
        (
            "a Xen hypercall over SMC",
            // SAFETY: as said above.
            faults(|| unsafe { asm!("smc #0xea1", inout("x0") 0u64 => _, in("x16") 17u64, options(nostack)) }),
        ),
    ] {
        let class = esr.map(|e| e >> 26 & 0x3f);
        h.case(class == Some(EC_UNKNOWN), format_args!("{what}: expected an undefined instruction, got {esr:#x?}"));
    }

    // The second vCPU for real, twice: on, on again, released, off.
    for round in 1..=2 {
        set_release(0);
        let rc = smccc(Conduit::Hvc, CPU_ON, second, entry, context);
        h.expect(rc, 0, format_args!("CPU_ON of the second vCPU, round {round}"));
        let again = smccc(Conduit::Smc, CPU_ON, second, entry, context);
        h.case(again == ALREADY_ON || again == ON_PENDING, format_args!("CPU_ON of it again, round {round}: {again}"));
        let state = smccc(Conduit::Hvc, AFFINITY_INFO, second, 0, 0);
        h.case(
            state == ON || state == PENDING,
            format_args!("AFFINITY_INFO says on or pending, round {round}: {state}"),
        );
        set_release(1);
        let off = wait_until_off(second);
        h.case(off == Some(OFF), format_args!("the second vCPU turned itself off, round {round}: {off:?}"));
    }
}
