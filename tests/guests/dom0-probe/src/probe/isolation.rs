//! `probe=attack-domu`: Dom0 reaches for the interrupts of a DomU running
//! beside it on a CPU of its own (`tests/domu.rs`), while that DomU checks
//! its timer and SGIs. Dom0 must see only its own CPUs' redistributors
//! (the walk Linux makes ends, with Last, after them; the next frame, the
//! DomU's CPU's, aborts), cannot route an SPI to the DomU's CPU (the
//! route reads back as one of Dom0's CPUs), and its SGIs to that CPU, by
//! list or broadcast, go nowhere (the hypervisor's debug log says if one
//! arrived there). It attacks in rounds until the DomU has ended (its
//! grant table answers "no such domain"), at most a minute.

use super::interrupts::{
    GICD_IROUTER, GICR_SGI_FRAME, GICR_STRIDE, GICR_TYPER, GICR_WAKER, read32, read64, write32, write64,
};
use super::{Report, abi, faults};
use core::arch::asm;

const GICR_TYPER_LAST: u64 = 1 << 4;
const IGROUPR0: u64 = 0x0080;
const ISENABLER0: u64 = 0x0100;
const ICENABLER0: u64 = 0x0180;
const IPRIORITYR: u64 = 0x0400;
/// An SPI nobody uses on QEMU's virt.
const SPI: u64 = 40;
const GRANT_TABLE_OP: u64 = 20;
const GNTTABOP_QUERY_SIZE: u64 = 6;
const GNTST_PERMISSION_DENIED: i16 = -8;

/// An MPIDR as GICR_TYPER's affinity field has it.
fn typer_affinity(mpidr: u64) -> u64 {
    (((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff)
}

/// Writes ICC_SGI1R_EL1.
fn send_sgi(value: u64) {
    // SAFETY: a trapped system-register write.
    unsafe { asm!("msr icc_sgi1r_el1, {v}", "isb", v = in(reg) value, options(nostack)) };
}

/// Whether domain 1 still exists: Dom0 asking for its grant-table size
/// is refused while it does, and told it does not afterwards.
fn domu_alive() -> bool {
    let mut query = [1u64, 0];
    abi::hypercall(GRANT_TABLE_OP, [GNTTABOP_QUERY_SIZE, query.as_mut_ptr() as u64, 1, 0, 0]);
    // SAFETY: our own buffer, which the hypervisor wrote.
    let status = unsafe { core::ptr::read_volatile(&query[1]) } >> 32;
    status as i16 == GNTST_PERMISSION_DENIED
}

fn counter() -> u64 {
    let ticks: u64;
    // SAFETY: reads a register.
    unsafe { asm!("isb", "mrs {t}, cntvct_el0", t = out(reg) ticks, options(nostack)) };
    ticks
}

fn frequency() -> u64 {
    let hz: u64;
    // SAFETY: reads a register.
    unsafe { asm!("mrs {f}, cntfrq_el0", f = out(reg) hz, options(nostack)) };
    hz.max(1)
}

/// The attack; `mpidrs` are Dom0's CPUs from its tree (unused slots
/// `u64::MAX`), `gicr` the tree's redistributor region.
pub fn attack(r: &mut Report, gicd: u64, gicr: (u64, u64), mpidrs: &[u64]) {
    let ours: &[u64] = &mpidrs[..mpidrs.iter().position(|&m| m == u64::MAX).unwrap_or(mpidrs.len())];
    // A CPU that is not Dom0's (the DomU's, on QEMU's virt).
    let Some(other) = (0u64..16).find(|a| !ours.contains(a)) else {
        return r.check(false, format_args!("attack-domu: a CPU that is not Dom0's"));
    };

    // The walk Linux makes: only Dom0's redistributors, then Last.
    let mut frame = gicr.0;
    let mut seen = 0usize;
    let mut foreign = 0usize;
    while frame + GICR_STRIDE <= gicr.1 {
        let typer = read64(frame + GICR_TYPER);
        seen += 1;
        foreign += usize::from(!ours.iter().any(|&m| typer_affinity(m) == typer >> 32));
        frame += GICR_STRIDE;
        if typer & GICR_TYPER_LAST != 0 {
            break;
        }
    }
    r.check(
        seen == ours.len() && foreign == 0,
        format_args!(
            "attack-domu: the redistributor walk sees {seen} frame(s), Dom0's {} ({foreign} other)",
            ours.len()
        ),
    );

    // The frame after Dom0's: on QEMU's virt, where frames follow the
    // CPUs, the DomU's CPU's (which Dom0 must not see).
    let target = gicr.0 + ours.len() as u64 * GICR_STRIDE;
    let start = counter();
    let (mut rounds, mut aborted, mut rd_accesses, mut routes_kept) = (0u64, 0u64, 0u64, 0u64);
    while domu_alive() && counter() - start < 60 * frequency() {
        // The DomU's CPU's redistributor: disable its timer, the kick SGI
        // and the maintenance PPI, drop its priorities, put it to sleep.
        // Now and then only: each abort is a log line.
        if rounds % 64 == 0 {
            let sgi = target + GICR_SGI_FRAME;
            for (address, value) in [
                (sgi + ICENABLER0, !0b110u32),
                // SGIs 1 and 2 on (in group 1), so those sent below would be taken there.
                (sgi + IGROUPR0, 0b110),
                (sgi + ISENABLER0, 0b110),
                (sgi + IPRIORITYR + 24, 0xffff_ffff),
                (target + GICR_WAKER, 0b10),
            ] {
                rd_accesses += 1;
                aborted += u64::from(faults(|| write32(address, value)).is_some());
            }
        }
        // Route an SPI to the DomU's CPU, by affinity and 1-of-N, whole
        // and by halves: it must read back as one of Dom0's CPUs.
        let irouter = gicd + GICD_IROUTER + SPI * 8;
        for (value, half) in [(other, false), (1 << 31, false), (other, true)] {
            if half {
                write32(irouter, value as u32);
            } else {
                write64(irouter, value);
            }
            let routed = read64(irouter);
            routes_kept += u64::from(routed & (1 << 31) == 0 && ours.contains(&routed));
        }
        let _ = read32(irouter);
        // SGIs 1 and 2 at the DomU's CPU, by list and to all others.
        send_sgi((1 << 24) | (1 << other));
        send_sgi((2 << 24) | (1 << 40));
        rounds += 1;
    }
    let ms = (counter() - start) * 1000 / frequency();
    r.check(!domu_alive(), format_args!("attack-domu: the DomU ended after {ms} ms of {rounds} attack rounds"));
    r.check(
        rd_accesses > 0 && aborted == rd_accesses,
        format_args!("attack-domu: {aborted} of {rd_accesses} writes to the DomU CPU's redistributor aborted"),
    );
    r.check(
        routes_kept == rounds * 3,
        format_args!("attack-domu: {routes_kept} of {} routes to CPU {other:#x} stayed on Dom0's", rounds * 3),
    );
}
