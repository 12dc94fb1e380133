//! `ending=spinning-vcpu`: the domain ends while another of its vCPUs
//! spins with every interrupt masked and none enabled, as a hung or
//! hostile guest's may. vCPU 1 is started with PSCI CPU_ON at a loop that
//! never traps; once AFFINITY_INFO says it is on, vCPU 0 powers the domain
//! off, once Dom0 listens for its end (as `hostile=1` waits). The
//! hypervisor must still stop vCPU 1 and release the domain (the test
//! reads its log).

use super::{Report, psci, shutdown};
use core::arch::global_asm;

global_asm!(
    r#"
.section .text
.balign 4
.global domu_probe_spin_masked
domu_probe_spin_masked:
    msr     daifset, #0xf
1:  b       1b
"#
);

unsafe extern "C" {
    fn domu_probe_spin_masked();
}

const CPU_ON: u64 = 0xc400_0003;
const AFFINITY_INFO: u64 = 0xc400_0004;
const AFFINITY_ON: i64 = 0;

pub fn run(r: &mut Report) -> ! {
    let listening = super::hostile::wait_for_dom0();
    r.check(listening.is_some(), format_args!("Dom0 listens for this domain's end ({listening:?})"));
    let entry = domu_probe_spin_masked as *const () as u64;
    let rc = psci(CPU_ON, [1, entry, 0]);
    r.check(rc == 0, format_args!("CPU_ON of vCPU 1 at {entry:#x} ({rc})"));
    let on = (0..1_000_000).any(|_| psci(AFFINITY_INFO, [1, 0, 0]) == AFFINITY_ON);
    r.check(on, format_args!("vCPU 1 runs, spinning with every interrupt masked"));
    shutdown(r)
}
