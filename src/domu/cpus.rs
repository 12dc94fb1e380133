//! Static partitioning: each DomU vCPU gets a physical CPU of its own,
//! Dom0 the CPUs no DomU claims (or `dom0_max_vcpus` of them). The boot
//! CPU is always Dom0's (it enters Dom0); DomUs take CPUs from the top, so
//! Dom0's vCPU n stays on CPU n. A placement, not a schedule: each vCPU
//! records the CPU it runs on, which a scheduler could later change.

use alloc::vec::Vec;
use core::fmt;

/// Why a DomU gets no CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotEnoughCpus {
    pub wanted: u32,
    pub free: usize,
}

impl fmt::Display for NotEnoughCpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "asks for {} CPUs but only {} are left (each DomU vCPU needs a physical CPU of its own, and Dom0 keeps the boot CPU)",
            self.wanted, self.free
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Dom0's CPUs by vCPU id (physical CPU indices, the boot CPU 0).
    pub dom0: Vec<usize>,
    /// Each DomU's CPUs by vCPU id, in the order asked.
    pub domus: Vec<Result<Vec<usize>, NotEnoughCpus>>,
    /// CPUs nobody runs on (`dom0_max_vcpus` below what was free).
    pub idle: Vec<usize>,
}

/// Shares `cpus` physical CPUs between Dom0 and DomUs wanting
/// `domu_vcpus` vCPUs each.
pub fn partition(cpus: usize, domu_vcpus: &[u32], dom0_max_vcpus: Option<u32>) -> Partition {
    let cpus = cpus.max(1);
    // Free CPUs above the boot CPU, highest first.
    let mut free: Vec<usize> = (1..cpus).rev().collect();
    let domus = domu_vcpus
        .iter()
        .map(|&wanted| {
            if wanted as usize > free.len() {
                return Err(NotEnoughCpus { wanted, free: free.len() });
            }
            let mut taken: Vec<usize> = free.drain(..wanted as usize).collect();
            taken.sort_unstable();
            Ok(taken)
        })
        .collect();
    free.reverse();
    let mut dom0 = alloc::vec![0];
    dom0.append(&mut free);
    let keep = dom0_max_vcpus.map_or(dom0.len(), |n| (n as usize).clamp(1, dom0.len()));
    let idle = dom0.split_off(keep);
    Partition { dom0, domus, idle }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn without_domus_dom0_gets_every_cpu() {
        assert_eq!(partition(4, &[], None), Partition { dom0: vec![0, 1, 2, 3], domus: vec![], idle: vec![] });
        assert_eq!(partition(0, &[], None).dom0, vec![0]);
    }

    #[test]
    fn domus_take_cpus_from_the_top() {
        let p = partition(2, &[1], None);
        assert_eq!((p.dom0, p.domus), (vec![0], vec![Ok(vec![1])]));
        let p = partition(8, &[2, 1, 3], None);
        assert_eq!(p.domus, vec![Ok(vec![6, 7]), Ok(vec![5]), Ok(vec![2, 3, 4])]);
        assert_eq!(p.dom0, vec![0, 1]);
    }

    #[test]
    fn too_many_cpus_is_that_domus_error_only() {
        let p = partition(4, &[4, 2, 2], None);
        assert_eq!(
            p.domus,
            vec![Err(NotEnoughCpus { wanted: 4, free: 3 }), Ok(vec![2, 3]), Err(NotEnoughCpus { wanted: 2, free: 1 })]
        );
        assert_eq!(p.dom0, vec![0, 1]);
        // The boot CPU is never given away.
        assert_eq!(partition(1, &[1], None).domus, vec![Err(NotEnoughCpus { wanted: 1, free: 0 })]);
    }

    #[test]
    fn dom0_max_vcpus_caps_dom0() {
        let p = partition(4, &[1], Some(1));
        assert_eq!((p.dom0, p.idle), (vec![0], vec![1, 2]));
        assert_eq!(partition(4, &[1], Some(9)).dom0, vec![0, 1, 2]);
        assert_eq!(partition(4, &[], Some(0)).dom0, vec![0]);
    }
}
