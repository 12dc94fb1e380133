//! How often Dom0 left for the hypervisor, and why: counted per vCPU on
//! every exit, logged at shutdown. Where a guest's time under the
//! hypervisor goes (a Linux boot makes hundreds of GIC accesses, each a trap).

pub use crate::domain::vcpu::Exit;

/// Counts an exit of the vCPU running on this CPU.
pub fn count(exit: Exit) {
    if let Some(vcpu) = super::cpu::this_cpu().vcpu() {
        vcpu.exits.count(exit);
    }
}

/// One line for `domain`: the total over its vCPUs and each kind that occurred.
pub fn log(domain: &crate::domain::Domain) {
    let counts: [u64; Exit::KINDS] = core::array::from_fn(|i| domain.vcpus.iter().map(|v| v.exits.get(i)).sum());
    let mut line = arrayvec::ArrayString::<256>::new();
    for (name, n) in Exit::NAMES.iter().zip(counts).filter(|&(_, n)| n > 0) {
        let _ = core::fmt::write(&mut line, format_args!(", {n} {name}"));
    }
    log::info!("d{}: {} exits to the hypervisor{line}", domain.id.0, counts.iter().sum::<u64>());
}
