//! GIC register offsets (GICv3: Arm IHI 0069, chapter 12; GICv2: IHI 0048B) the hypervisor uses or
//! filters. Distributor (GICD) and the redistributor's SGI frame share the
//! layout of the per-interrupt register families.

/// Each redistributor has an RD frame and an SGI frame of 64 KiB each
/// (GICv4 adds two more, flagged by GICR_TYPER.VLPIS).
pub const FRAME_SIZE: u64 = 0x1_0000;

pub mod gicd {
    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0004;
    /// Set or clear the pending state of the SPI written (non-secure and
    /// secure variants).
    pub const SETSPI_NSR: u64 = 0x0040;
    pub const CLRSPI_NSR: u64 = 0x0048;
    pub const SETSPI_SR: u64 = 0x0050;
    pub const CLRSPI_SR: u64 = 0x0058;
    pub const IROUTER: u64 = 0x6000;
    pub const IROUTER_END: u64 = 0x7fe0;

    /// CTLR: group 1 (non-secure) enable; affinity routing; register write pending.
    pub const CTLR_ENABLE_G1: u32 = 1 << 1;
    pub const CTLR_ARE: u32 = 1 << 4;
    pub const CTLR_RWP: u32 = 1 << 31;
    /// TYPER: LPIs supported.
    pub const TYPER_LPIS: u64 = 1 << 17;
}

/// The GICv2 distributor's own registers (Arm IHI 0048B, 4.1.2); the
/// per-interrupt families are at the same offsets as GICv3's.
pub mod gicd_v2 {
    /// Software-generated interrupts: target list filter 25:24, CPU target
    /// list 23:16, NSATT 15, SGI number 3:0.
    pub const SGIR: u64 = 0x0f00;
    /// SGI pending clear and set: a byte of source CPUs per SGI.
    pub const CPENDSGIR: u64 = 0x0f10;
    pub const SPENDSGIR: u64 = 0x0f20;
    /// CTLR: Enable (EnableGrp1 in a secure GIC's non-secure view).
    pub const CTLR_ENABLE: u32 = 1 << 0;
    pub const SGIR_INTID: u32 = 0xf;
    pub const SGIR_TARGETS_SHIFT: u32 = 16;
    pub const SGIR_FILTER_SHIFT: u32 = 24;
    /// The target list filter: the CPUs in the list (the other values:
    /// all but the writer, the writer only).
    pub const SGIR_FILTER_LIST: u32 = 0;
    pub const SGIR_FILTER_SELF: u32 = 0b10;
}

/// A GICv2 CPU interface: the physical one (GICC) the hypervisor drives
/// at EL2, and its virtual twin (GICV) at the same offsets, which Dom0
/// gets as its CPU interface.
pub mod gicc {
    pub const CTLR: u64 = 0x0000;
    pub const PMR: u64 = 0x0004;
    pub const BPR: u64 = 0x0008;
    pub const IAR: u64 = 0x000c;
    pub const EOIR: u64 = 0x0010;
    /// Deactivation, in the interface's second 4 KiB page.
    pub const DIR: u64 = 0x1000;
    /// The least a CPU interface region must hold: DIR's page too.
    pub const MIN_SIZE: u64 = 0x2000;
    /// CTLR: group 0 and group 1 signalling; split priority drop and
    /// deactivation (EOImodeNS in the non-secure view, bit 9 either way).
    pub const CTLR_ENABLE_GRP0: u32 = 1 << 0;
    pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;
    pub const CTLR_EOI_MODE: u32 = 1 << 9;
}

/// The GICv2 virtual interface control registers (GICH, IHI 0048B, 5.3),
/// banked per CPU.
pub mod gich {
    pub const HCR: u64 = 0x0000;
    pub const VTR: u64 = 0x0004;
    pub const MISR: u64 = 0x0010;
    /// Which list registers were ended with EOI maintenance asked.
    pub const EISR0: u64 = 0x0020;
    pub const EISR1: u64 = 0x0024;
    pub const ELRSR0: u64 = 0x0030;
    pub const ELRSR1: u64 = 0x0034;
    /// GICH_LR0; the others follow, 4 bytes each.
    pub const LR: u64 = 0x0100;
    /// HCR: the virtual interface on; a maintenance interrupt when at most
    /// one list register holds an interrupt (underflow).
    pub const HCR_EN: u32 = 1 << 0;
    pub const HCR_UIE: u32 = 1 << 1;
    /// VTR: list registers, less one.
    pub const VTR_LIST_REGS: u32 = 0x3f;
}

pub mod gicr {
    /// RD frame.
    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0008;
    pub const WAKER: u64 = 0x0014;
    /// Set or clear an LPI's pending state directly.
    pub const SETLPIR: u64 = 0x0040;
    pub const CLRLPIR: u64 = 0x0048;
    /// The LPI tables' addresses (64-bit registers).
    pub const PROPBASER: u64 = 0x0070;
    pub const PENDBASER: u64 = 0x0078;
    pub const CTLR_ENABLE_LPIS: u64 = 1 << 0;
    pub const TYPER_PLPIS: u64 = 1 << 0;
    pub const TYPER_VLPIS: u64 = 1 << 1;
    pub const TYPER_LAST: u64 = 1 << 4;
    pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
    pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
    /// Offset of the SGI frame from the RD frame.
    pub const SGI_FRAME: u64 = super::FRAME_SIZE;
}

/// The per-interrupt register families, at the same offsets in the
/// distributor and in a redistributor's SGI frame.
pub mod family {
    pub const IGROUPR: u64 = 0x0080;
    pub const ISENABLER: u64 = 0x0100;
    pub const ICENABLER: u64 = 0x0180;
    pub const ISPENDR: u64 = 0x0200;
    pub const ICPENDR: u64 = 0x0280;
    pub const ISACTIVER: u64 = 0x0300;
    pub const ICACTIVER: u64 = 0x0380;
    pub const IPRIORITYR: u64 = 0x0400;
    pub const ITARGETSR: u64 = 0x0800;
    pub const ICFGR: u64 = 0x0c00;
    pub const IGRPMODR: u64 = 0x0d00;
    pub const NSACR: u64 = 0x0e00;
}
