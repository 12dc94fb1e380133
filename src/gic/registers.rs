//! GICv3 register offsets (Arm IHI 0069, chapter 12) the hypervisor uses or
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
