//! Building a boot-time DomU on the board: its RAM from the frame
//! allocator (any frames; the DomU is not 1:1) mapped at Xen's guest
//! addresses, its kernel, initrd and device tree copied in, its own VMID
//! and stage 2 (RAM only: no host device is given to a DomU), its vCPUs
//! placed on the physical CPUs the partition gave it, its emulated GIC
//! (of the host's version, `gic::emulated`) and, with `vpl011`, its
//! emulated UART (`console::vpl011`) as its MMIO regions. [`start`]
//! starts it once the GIC is up.

use super::layout;
use crate::arch::cpu;
use crate::dom0::layout::{ImageHeader, place};
use crate::domain::vcpu::{Placement, Power};
use crate::domain::{Domain, DomainId, VMIDS};
use crate::dt::domu::GicNode;
use crate::dt::host::{DomU, Enhanced, Gic as HostGic, GicVersion};
use crate::gic::emulated::{EmulatedGic, Version};
use crate::mm::FRAMES;
use crate::mm::frames::{FRAME_SIZE, MAX_ORDER, order_size};
use crate::mm::range::{GuestRange, Pa, PhysRange};
use crate::mm::stage2::{Geometry, Kind, Stage2Map, page_tables_for};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Grant-table frames a DomU may have: Xen's default `gnttab_max_frames`.
const GRANT_FRAMES: u64 = 64;

/// A DomU built and ready to start.
pub struct Built {
    pub domain: &'static Domain,
    /// Its kernel's entry and its device tree, as IPAs.
    pub entry: u64,
    pub dtb: u64,
}

/// Where a DomU's RAM is: runs of guest addresses and the frames behind them.
struct Backing {
    pieces: Vec<(GuestRange, Pa)>,
}

impl Backing {
    /// Copies `bytes` to guest address `ipa` and cleans them to memory
    /// (the DomU starts with its caches off). The range must be its RAM.
    fn copy(&self, ipa: u64, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let at = ipa + done as u64;
            let (range, pa) =
                self.pieces.iter().find(|(r, _)| r.contains(at)).expect("the layout put it in the DomU's RAM");
            let len = ((range.end - at) as usize).min(bytes.len() - done);
            let dst = pa.0 + (at - range.start);
            // SAFETY: `dst..dst + len` is a frame run just taken from the
            // allocator for this DomU alone, identity mapped at EL2; the
            // DomU does not run yet.
            unsafe { crate::arch::copy::copy_large(dst as *mut u8, bytes[done..].as_ptr(), len) };
            crate::arch::barrier::dcache_clean(dst, len as u64);
            done += len;
        }
    }
}

/// Borrows a boot module's bytes.
///
/// # Safety
/// `range` must be RAM the memory plan keeps back until the copy is done.
unsafe fn module_bytes(range: PhysRange) -> &'static [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { core::slice::from_raw_parts(range.start as *const u8, range.size() as usize) }
}

/// Takes `bytes` of frames, largest blocks first, and lays them over the
/// guest banks in order (a block may straddle two banks). Zeroed: a DomU
/// must not see what the frames held before (the boot modules, say).
fn allocate(banks: &[GuestRange]) -> Result<(Backing, Vec<(u64, usize)>), String> {
    let total: u64 = banks.iter().map(|b| b.size()).sum();
    let mut guard = FRAMES.lock();
    let frames = guard.as_mut().expect("memory is up");
    let mut blocks: Vec<(u64, usize)> = Vec::new();
    let mut remaining = total;
    while remaining > 0 {
        let floor = (63 - (remaining / FRAME_SIZE).leading_zeros() as usize).min(MAX_ORDER);
        let block = frames
            .largest_free_order()
            .map(|largest| floor.min(largest))
            .and_then(|order| Some((frames.alloc(order)?, order)));
        let Some((pa, order)) = block else {
            for &(pa, order) in &blocks {
                frames.free(pa, order).expect("a block we took is ours to return");
            }
            return Err(format!("{} MiB of RAM not available ({} MiB short)", total >> 20, remaining >> 20));
        };
        blocks.push((pa, order));
        remaining -= order_size(order);
    }
    drop(guard);
    let mut pieces = Vec::new();
    let mut bank = 0;
    let mut at = banks[0].start;
    for &(pa, order) in &blocks {
        let mut from = pa;
        let end = pa + order_size(order);
        while from < end {
            if at == banks[bank].end {
                bank += 1;
                at = banks[bank].start;
            }
            let len = (end - from).min(banks[bank].end - at);
            pieces.push((GuestRange::new(at, at + len), Pa(from)));
            // SAFETY: frames just taken from the allocator for this DomU
            // alone, identity mapped at EL2.
            unsafe { core::ptr::write_bytes(from as *mut u8, 0, len as usize) };
            crate::arch::barrier::dcache_clean(from, len);
            from += len;
            at += len;
        }
    }
    Ok((Backing { pieces }, blocks))
}

fn give_back(blocks: &[(u64, usize)]) {
    if let Some(frames) = FRAMES.lock().as_mut() {
        for &(pa, order) in blocks {
            frames.free(pa, order).expect("a block we took is ours to return");
        }
    }
}

/// The GIC a DomU sees on a host with `host` (its version decides):
/// the emulated state, the tree's node, and on GICv2 where the host's
/// virtual CPU interface is mapped as its CPU interface. `None` without a
/// host GIC, or a GICv2 without a virtual CPU interface of 8 KiB.
struct DomUGic {
    emulated: EmulatedGic,
    node: GicNode,
    /// GICv2: (the guest's GICC range, the host's GICV frame).
    cpu_interface: Option<(GuestRange, Pa)>,
}

fn domu_gic(host: Option<&HostGic>, vcpu_mpidrs: &[u64]) -> Option<DomUGic> {
    let host = host?;
    match host.version {
        GicVersion::V3 => Some(DomUGic {
            emulated: EmulatedGic::new(Version::V3, vcpu_mpidrs),
            node: GicNode::V3 { gicd: layout::GICV3_GICD, gicr: layout::gicr(vcpu_mpidrs.len()) },
            cpu_interface: None,
        }),
        GicVersion::V2 => {
            let gicv = host.virtual_cpu_interface.filter(|v| v.size() >= layout::GICV2_GICC.size())?;
            Some(DomUGic {
                emulated: EmulatedGic::new(Version::V2, vcpu_mpidrs),
                node: GicNode::V2 { gicd: layout::GICV2_GICD, gicc: layout::GICV2_GICC },
                cpu_interface: Some((layout::GICV2_GICC, Pa(gicv.start))),
            })
        }
    }
}

/// Whether `bytes` of RAM in 4 KiB stage-2 pages leave the heap, where
/// the tables are, room enough: at most a quarter of what is free (so
/// the next DomUs' tables and the run time's still fit); if not, blocks,
/// with a warning.
fn ram_in_pages_fits(d: u16, bytes: u64) -> bool {
    let (used, total) = crate::mm::heap::usage();
    let tables = page_tables_for(bytes) as u64 * FRAME_SIZE;
    let free = total.saturating_sub(used) as u64;
    let fits = tables <= free / 4;
    if !fits {
        log::warn!(
            "d{d}: stage 2: {} MiB of RAM in pages would take {} KiB of tables, over a quarter of the free heap ({} KiB); blocks used",
            bytes >> 20,
            tables >> 10,
            free >> 10
        );
    }
    fits
}

/// Builds DomU `id` from its node, its vCPU n on physical CPU `cpus[n]`,
/// with an emulated GIC of `host_gic`'s version; with `xen,enhanced`, its
/// `/hypervisor` node lists extended regions unless `ext_regions` is false
/// (`ext-regions=no`, which Xen 4.17 applies to DomUs too).
/// An error is one line for the log; nothing of it is left allocated.
/// `cpu_compatible` is the host's first CPU's `compatible`, which its vCPUs get.
/// `stage2_blocks`: its RAM in the largest stage-2 blocks that fit, or in
/// 4 KiB pages (`stage2-blocks=no`, as for Dom0: what QEMU's TCG likes).
pub fn build(
    domu: &DomU<'_>,
    id: u16,
    cpus: &[usize],
    host_gic: Option<&HostGic>,
    cpu_compatible: Option<&[u8]>,
    ext_regions: bool,
    stage2_blocks: bool,
) -> Result<Built, String> {
    let d = id;
    let banks = layout::ram_banks(domu.memory).ok_or("memory is more than Xen's guest layout holds")?;
    // SAFETY: the host tree checked the modules lie in RAM, and the memory
    // plan keeps them back until every DomU is built.
    let kernel = unsafe { module_bytes(domu.kernel) };
    // SAFETY: as for the kernel.
    let initrd = domu.ramdisk.map(|r| unsafe { module_bytes(r) });
    let header = ImageHeader::parse(kernel).map_err(|e| e.to_string())?;
    let placed =
        place(banks[0], &header, kernel.len() as u64, initrd.map(|i| i.len() as u64)).map_err(|e| e.to_string())?;

    let mut stage2 = Stage2Map::new(Geometry::for_ipa_bits(cpu::pa_bits()));
    if let Some(last) = banks.last()
        && last.end > stage2.geometry().limit()
    {
        return Err(format!("its RAM ends at IPA {:#x}, past this CPU's {}-bit IPA space", last.end, cpu::pa_bits()));
    }
    let free_before_build = FRAMES.lock().as_ref().map_or(0, |f| f.free_frames());
    let vcpu_mpidrs: Vec<u64> = (0..cpus.len()).map(|n| Placement::for_vcpu(n).mpidr).collect();
    let gic = domu_gic(host_gic, &vcpu_mpidrs);
    let (backing, blocks) = allocate(&banks)?;
    let in_pages = !stage2_blocks && ram_in_pages_fits(d, domu.memory);
    let ram = backing.pieces.iter().map(|&(ipa, pa)| (ipa, pa, Kind::Ram));
    // A GICv2's virtual CPU interface, where the DomU's tree says its CPU interface is.
    let gicc = gic.as_ref().and_then(|g| g.cpu_interface).map(|(ipa, pa)| (ipa, pa, Kind::Device));
    for (ipa, pa, kind) in ram.chain(gicc) {
        let mapped = match in_pages {
            true => stage2.map_pages_at(ipa, pa, kind),
            false => stage2.map_at(ipa, pa, kind),
        };
        if let Err(e) = mapped {
            give_back(&blocks);
            return Err(format!("stage 2: {e}"));
        }
    }
    let Some(vmid) = VMIDS.lock().allocate() else {
        give_back(&blocks);
        return Err("no VMID left".into());
    };
    backing.copy(placed.entry, kernel);
    if let (Some(bytes), Some(range)) = (initrd, placed.initrd) {
        backing.copy(range.start, bytes);
    }

    let grant_region =
        GuestRange::new(layout::GRANT_TABLE.start, layout::GRANT_TABLE.start + GRANT_FRAMES * FRAME_SIZE);
    let tables = stage2.tables();
    let enhanced = domu.enhanced != Enhanced::Disabled;
    let extended = match enhanced && ext_regions {
        true => layout::extended_regions(&banks, cpus.len(), stage2.geometry().limit()).regions,
        false => Vec::new(),
    };
    let mut domain = Domain::new(DomainId(id), vmid, banks.clone(), stage2, cpus.len(), grant_region);
    domain.place_vcpus(|n| Placement { cpu: cpus[n], mpidr: vcpu_mpidrs[n] });
    let ram_frames: u64 = blocks.iter().map(|&(_, order)| order_size(order) / FRAME_SIZE).sum();
    domain.blocks = blocks;
    domain.free_before_build = free_before_build;
    domain.event_intid = layout::EVTCHN_PPI;
    let gic_node_is_v2 = gic.as_ref().is_some_and(|g| g.cpu_interface.is_some());
    let (gic_node, gic_line) = match gic {
        Some(DomUGic { emulated, node, .. }) => {
            let line = describe_gic(&emulated, node);
            domain.emulated_gic = Some(spin::Mutex::new(emulated));
            (node, line)
        }
        // Its tree still names Xen's GICv3 frames; nothing answers there.
        None => (
            GicNode::V3 { gicd: layout::GICV3_GICD, gicr: layout::gicr(cpus.len()) },
            "no GIC on the host: no interrupts".into(),
        ),
    };
    let spec = crate::dt::domu::DomUTree {
        ram: &banks,
        vcpu_mpidrs: &vcpu_mpidrs,
        cpu_compatible,
        bootargs: domu.bootargs,
        initrd: placed.initrd,
        gic: gic_node,
        timer_intids: [layout::TIMER_PHYS_S_PPI, layout::TIMER_PHYS_NS_PPI, layout::TIMER_VIRT_PPI],
        hypervisor: enhanced.then_some(crate::dt::domu::Hypervisor {
            grant_table: layout::GRANT_TABLE,
            extended_regions: &extended,
            event_intid: layout::EVTCHN_PPI,
        }),
        uart: domu.vpl011.then_some((layout::PL011, layout::VPL011_SPI)),
    };
    let dtb = crate::dt::domu::build(&spec);
    // The layout's slot is 2 MiB; Xen's DomU trees stay under 4 KiB.
    assert!(dtb.len() as u64 <= placed.dtb.size(), "a DomU tree of {} bytes", dtb.len());
    backing.copy(placed.dtb.start, &dtb);
    let domain = domain.into_static();
    let mut regions = match &domain.emulated_gic {
        Some(emulated) => {
            crate::arch::vgic::domu_mmio_regions(&emulated.lock(), layout::GICV3_GICD.start, layout::GICV3_GICR0_BASE)
        }
        None => crate::domain::mmio::MmioRegions::new(),
    };
    if domu.vpl011 {
        let uart = crate::console::guest_uart::create(domain, layout::VPL011_SPI);
        if regions.add(layout::PL011, alloc::boxed::Box::new(uart)).is_err() {
            log::error!("d{d}: the vPL011 at {} overlaps another emulated device", layout::PL011);
        }
    }
    domain.mmio.call_once(|| regions);
    crate::domain::register(domain);

    let on: Vec<String> = cpus.iter().map(|&c| format!("{c} ({:#x})", cpu::mpidr_of(c).unwrap_or(0))).collect();
    log::info!(
        "d{d}: DomU from {}: {} MiB, {} vCPU(s) on CPU {}, xen,enhanced {:?}",
        domu.path,
        domu.memory >> 20,
        cpus.len(),
        on.join(", "),
        domu.enhanced
    );
    for (i, bank) in banks.iter().enumerate() {
        log::info!("d{d}: BANK[{i}] IPA {bank} ({} MiB)", bank.size() >> 20);
    }
    for (ipa, pa) in &backing.pieces {
        log::info!("d{d}: RAM IPA {ipa} at PA {}", PhysRange::new(pa.0, pa.0 + ipa.size()));
    }
    log::info!(
        "d{d}: kernel IPA {} (entry {:#x}), device tree at IPA {:#x} ({} bytes)",
        placed.kernel,
        placed.entry,
        placed.dtb.start,
        dtb.len()
    );
    if let Some(range) = placed.initrd {
        log::info!("d{d}: initrd IPA {range}");
    }
    if enhanced && !ext_regions {
        log::info!("d{d}: extended regions support is disabled");
    }
    for (i, region) in extended.iter().enumerate() {
        log::info!("d{d}: extended region {i}: {region}");
    }
    let gicv = if gic_node_is_v2 { " and the host's GICv2 virtual CPU interface" } else { " only" };
    let granule = if in_pages { " (RAM in 4 KiB pages, stage2-blocks=no)" } else { "" };
    log::info!("d{d}: VMID {}, stage 2 {tables} table pages{granule}: its RAM{gicv}, no host devices", vmid.0);
    log::info!("d{d}: {gic_line}");
    log::info!("d{d}: {ram_frames} frames taken; free frames {free_before_build} before it was built");
    if domu.vpl011 {
        log::info!(
            "d{d}: vPL011 (SBSA UART) at IPA {}, SPI {}: output in `(d{d}) ` lines; type CTRL-a three times on the console to give it the input",
            layout::PL011,
            layout::VPL011_SPI
        );
    }
    Ok(Built { domain, entry: placed.entry, dtb: placed.dtb.start })
}

/// The log line saying what GIC a DomU sees.
fn describe_gic(emulated: &EmulatedGic, node: GicNode) -> String {
    let spis = crate::gic::emulated::SPI_COUNT;
    match node {
        GicNode::V3 { gicd, gicr } => format!(
            "emulated GICv3: GICD {:#x}, GICR {:#x} ({} vCPU(s)), {spis} SPIs",
            gicd.start,
            gicr.start,
            emulated.vcpus()
        ),
        GicNode::V2 { gicd, gicc } => format!(
            "emulated GICv2: GICD {:#x} ({} vCPU(s)), {spis} SPIs; GICC {:#x} is the host's virtual CPU interface",
            gicd.start,
            emulated.vcpus(),
            gicc.start
        ),
    }
}

/// Starts the DomU's vCPU 0 on its physical CPU through the firmware (as
/// Dom0's CPU_ON does); it enters its kernel with x0 = its tree's IPA.
pub fn start(built: &Built) {
    let d = built.domain.id.0;
    let vcpu = &built.domain.vcpus[0];
    // vCPU 0 is made on; a DomU's is started like a secondary.
    vcpu.set_power(Power::Off);
    if vcpu.begin_start(built.entry, built.dtb).is_err() {
        return log::error!("d{d}: vCPU 0 could not be started");
    }
    if let Some(target) = cpu::per_cpu(vcpu.placement.cpu) {
        target.set_vcpu(vcpu);
    }
    match cpu::power_on(vcpu.placement.cpu) {
        Ok(mpidr) => log::info!(
            "d{d}: vCPU 0 starting on CPU {mpidr:#x} at IPA {:#x}, device tree at IPA {:#x}",
            built.entry,
            built.dtb
        ),
        Err(e) => {
            vcpu.set_power(Power::Off);
            log::error!("d{d}: firmware CPU_ON of CPU {} failed: {e:?}; the DomU does not run", vcpu.placement.cpu);
        }
    }
}
