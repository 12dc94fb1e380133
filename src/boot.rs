//! The boot CPU's path from `boot/head.S` to a running system: read the
//! device tree, bring up the console, plan and seed memory, start the heap,
//! turn the MMU on, report.

use crate::arch::mmu::{El2Map, Kind};
use crate::arch::{cpu, semihosting};
use crate::boot_phases::{self as phases, phase_done};
use crate::cmdline::Options;
use crate::console;
use crate::dt::DtError;
use crate::dt::host::{HostTree, ReservationKind};
use crate::fatal;
use crate::fatal::Stop;
use crate::mm::frames::{FrameAllocator, order_for, order_size};
use crate::mm::heap;
use crate::mm::plan::{Keep, MemoryPlan, PlanError};
use crate::mm::range::PhysRange;
use crate::mm::{FRAMES, release};

/// The largest device tree we accept, as Xen.
const MAX_DTB_SIZE: u64 = 2 << 20;
/// The hypervisor heap: page tables and bookkeeping.
const HEAP_SIZE: u64 = 16 << 20;

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __image_end: u8;
    /// What `boot/head.S` added to every address it relocated: the image's
    /// runtime address minus its link address (wrapping, so negative below).
    static image_load_offset: u64;
}

fn symbol_address(symbol: &u8) -> u64 {
    symbol as *const u8 as u64
}

/// The load offset `boot/head.S` applied (see `image_load_offset`).
fn load_offset() -> u64 {
    // SAFETY: written once by `boot/head.S` before any Rust code ran.
    unsafe { core::ptr::read_volatile(&raw const image_load_offset) }
}

/// The image as loaded: `[__image_start, __image_end)`, BSS included.
/// Symbols are addressed PC-relatively, so this is where the image runs,
/// wherever a loader put it (and RAM is identity mapped).
fn image_range() -> PhysRange {
    // SAFETY: linker-defined symbols; only their addresses are taken.
    unsafe { PhysRange::new(symbol_address(&__image_start), symbol_address(&__image_end)) }
}

fn text_range() -> PhysRange {
    // SAFETY: as above.
    unsafe { PhysRange::new(symbol_address(&__image_start), symbol_address(&__text_end)) }
}

/// Borrows the device tree blob at `addr` after checking its header.
#[allow(clippy::result_large_err)] // see `dt`: errors carry their node inline
fn device_tree_blob(addr: u64) -> Result<&'static [u8], DtError> {
    if addr == 0 || !addr.is_multiple_of(8) {
        return Err(DtError::NoBlob { addr });
    }
    // SAFETY: x0 points at the blob per the boot protocol; we read its
    // 8-byte header (magic, totalsize) first, and the rest only when the
    // magic matches and the size is sane. The memory plan keeps the blob
    // back from the allocator until `start_from_boot_tree` has copied it,
    // and the borrow is not used after that.
    let header = unsafe { core::ptr::read_volatile(addr as *const [u8; 8]) };
    if header[..4] != [0xd0, 0x0d, 0xfe, 0xed] {
        return Err(DtError::NoBlob { addr });
    }
    let size = u64::from(u32::from_be_bytes([header[4], header[5], header[6], header[7]]));
    if size > MAX_DTB_SIZE {
        return Err(DtError::TooLarge { size, limit: MAX_DTB_SIZE });
    }
    // SAFETY: as above; size checked.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, size as usize) })
}

fn stop_for(error: &DtError) -> Stop {
    match error {
        DtError::NoBlob { .. } | DtError::TooLarge { .. } | DtError::Blob(_) => Stop::BadDeviceTree,
        DtError::NoMemory => Stop::NoRam,
        _ => Stop::BadDeviceTreeContent,
    }
}

/// Entered from `boot/head.S` on the boot CPU at EL2, MMU off, on its stack.
#[unsafe(no_mangle)]
extern "C" fn primary_main(dtb_addr: u64) -> ! {
    let entry_ticks = phases::start();
    cpu::init_this_cpu(0);
    semihosting::probe();
    console::init_logging();

    let (blob, options, plan, heap) = start_from_boot_tree(dtb_addr);
    phase_done("boot tree copied to the heap");
    // Everything from the boot tree is now owned or in the heap copy: its
    // frames can go back to the allocator.
    release(&plan, "host device tree", |k| *k == Keep::DeviceTree);
    phase_done("boot tree's frames freed");
    let tree = HostTree::parse(blob).unwrap_or_else(|e| fatal!(stop_for(&e), "{e}"));
    phase_done("host tree parsed from the heap copy");

    cpu::set_topology(tree.cpus.iter().map(|c| c.mpidr));
    log::info!("Boot CPU {:#x} ready; {} CPUs in the device tree", cpu::this_mpidr(), tree.cpus.len());
    if tree.module(crate::dt::host::ModuleKind::Kernel).is_none() {
        fatal!(Stop::NoDom0Kernel, "no Dom0 kernel: /chosen has no multiboot,kernel module");
    }
    let hypervisor_memory = {
        use crate::mm::audit::{Owned, owned};
        [
            Owned { range: cpu::boot_stacks(), what: owned::STACKS },
            Owned { range: image_range(), what: owned::IMAGE },
            Owned { range: heap, what: owned::HEAP },
            Owned { range: plan.metadata, what: owned::METADATA },
        ]
    };
    let domu_vcpus: alloc::vec::Vec<u32> = tree.domus.iter().map(|d| d.cpus).collect();
    let cpus = crate::domu::cpus::partition(tree.cpus.len(), &domu_vcpus, options.dom0_max_vcpus);
    if !tree.domus.is_empty() || options.dom0_max_vcpus.is_some() {
        log::info!("d0: CPUs {:?} (of {}); idle: {:?}", cpus.dom0, tree.cpus.len().max(1), cpus.idle);
    }
    let mut domus = alloc::vec::Vec::new();
    let build_domus = || {
        let ext_regions = options.ext_regions != crate::cmdline::ExtRegions::Disabled;
        domus = build_domus(&tree, &cpus.domus, ext_regions, options.stage2_blocks);
        release(&plan, "DomU boot modules, copied", |k| matches!(k, Keep::DomUModule(_)));
    };
    let board_for = |domain| crate::router::xen_board::Hardware { domain };
    let (dom0, pc, dtb) = crate::dom0::build::build(
        &tree,
        blob,
        &options,
        &plan,
        &hypervisor_memory,
        grant_region(),
        &cpus.dom0,
        build_domus,
        board_for,
    );
    log::info!("d0: stage 2: {} table pages (at Dom0 entry)", dom0.stage2.lock_holding_no_xen_lock().tables());
    let boot_vcpu = &dom0.vcpus[0];
    cpu::this_cpu().set_vcpu(boot_vcpu);
    start_interrupts(&tree, dom0);
    phase_done("interrupts started");
    for domu in &domus {
        crate::domu::build::start(domu);
    }
    let free = FRAMES.lock().as_ref().map_or(0, |f| f.free_frames());
    let (heap_used, heap_total) = heap::usage();
    log::info!("Free frames at Dom0 entry: {free}; heap {} KiB used of {} KiB", heap_used >> 10, heap_total >> 10);
    log::info!("d0: entering at {pc:#x} (EL1h, MMU off) with its device tree at {dtb:#x}");
    log_boot_time(entry_ticks);
    crate::arch::guest::enter_el1(&crate::arch::guest::Entry::new(boot_vcpu, pc, dtb))
}

/// Builds each DomU the host tree names on the CPUs the partition gave it,
/// numbered 1, 2, ... in tree order as Xen numbers dom0less DomUs; one
/// that cannot be built is left out with a one-line error.
fn build_domus(
    tree: &HostTree<'_>,
    cpus: &[Result<alloc::vec::Vec<usize>, crate::domu::cpus::NotEnoughCpus>],
    ext_regions: bool,
    stage2_blocks: bool,
) -> alloc::vec::Vec<crate::domu::build::Built> {
    let mut built = alloc::vec::Vec::new();
    for (domu, cpus) in tree.domus.iter().zip(cpus) {
        let id = built.len() as u16 + 1;
        let result = match cpus {
            Ok(cpus) => crate::domu::build::build(
                domu,
                id,
                cpus,
                tree.gic.as_ref(),
                tree.cpus.first().and_then(|c| c.compatible),
                ext_regions,
                stage2_blocks,
            ),
            Err(e) => Err(alloc::format!("{e}")),
        };
        match result {
            Ok(domu) => {
                // As for Dom0: every grant-table frame it may use is taken
                // now, so the hypercalls never need one and the memory
                // counted free at Dom0's entry stays free while it runs.
                let board = crate::router::xen_board::Hardware { domain: domu.domain };
                if let Err(e) = domu.domain.xen.grants.lock().reserve_frames(&board) {
                    log::error!("d{id}: no frames for the grant table ({e}); grants will not work");
                }
                built.push(domu)
            }
            Err(e) => log::error!("{}: DomU not built: {e}", domu.path),
        }
    }
    built
}

/// The boot's length in counter ticks, from `primary_main`'s start to just
/// before the ERET into Dom0 (for the benchmark, `cargo bench-qemu`).
fn log_boot_time(entry_ticks: u64) {
    use aarch64_cpu::registers::CNTFRQ_EL0;
    use tock_registers::interfaces::Readable;
    let ticks = phases::counter_ticks() - entry_ticks;
    let hz = CNTFRQ_EL0.get();
    log::info!("boot: {ticks} counter ticks from entry to Dom0 ({hz} Hz; entered at tick {entry_ticks})");
}

/// Takes the GIC over, makes its distributor and redistributors `dom0`'s
/// emulated regions, and starts the boot CPU's virtual interface; the
/// console's interrupt becomes the hypervisor's (for Dom0's console input).
/// Without a usable GICv3, Dom0 runs without interrupts, and says so.
fn start_interrupts(tree: &HostTree<'_>, dom0: &'static crate::domain::Domain) {
    use crate::arch::{gic, vgic};
    let Some(tree_gic) = &tree.gic else {
        log::error!("GIC: none in the device tree; Dom0 gets no interrupts");
        return;
    };
    let uart = tree.console.as_ref().and_then(|c| c.intid);
    let mut owned = crate::gic::IntidSet::new();
    owned.extend(uart);
    let dom0_cpus = crate::gic::partition::Dom0Cpus::new(dom0.vcpus.iter().map(|v| v.placement.mpidr));
    let gic = match gic::init(tree_gic, owned, tree.cpus.len(), tree.virtual_timer_intid, dom0_cpus) {
        Ok(gic) => gic,
        Err(e) => {
            log::error!("GIC: {e}; Dom0 gets no interrupts");
            return;
        }
    };
    dom0.mmio.call_once(|| vgic::mmio_regions(gic));
    let boot = cpu::this_mpidr();
    vgic::init_this_cpu();
    if let Some(intid) = uart {
        gic.enable_spi(intid, boot);
        console::enable_input();
        console::announce_input();
    }
    let owned: alloc::vec::Vec<u32> = gic.filter.owned().iter().collect();
    match &gic.v2 {
        None => log::info!(
            "GICv3: Dom0 drives the distributor and redistributors through a filter; the hypervisor keeps INTIDs {owned:?}"
        ),
        Some(v2) => log::info!(
            "GICv2: Dom0 drives the distributor through a filter, its CPU interface at {} is the virtual one at {}; the hypervisor keeps INTIDs {owned:?}",
            v2.cpu,
            v2.virtual_cpu
        ),
    }
}

/// Reads the boot tree at `dtb_addr`, brings up the console, parses the
/// command line, plans and starts memory, and copies the tree to the heap
/// (like Xen's relocate_fdt). The boot tree itself is not used after this
/// returns: what comes back is owned or borrows the heap copy, so its frames
/// can be freed. Returns the copy, the options, the plan and the heap.
fn start_from_boot_tree(dtb_addr: u64) -> (&'static [u8], Options, MemoryPlan, PhysRange) {
    let boot_blob = device_tree_blob(dtb_addr).unwrap_or_else(|e| fatal!(stop_for(&e), "{e}"));
    let tree = HostTree::parse(boot_blob).unwrap_or_else(|e| fatal!(stop_for(&e), "{e}"));
    if let Some(uart) = &tree.console {
        // SAFETY: the device tree names this PL011 as the console; nothing
        // else drives it (Dom0 will not get it).
        unsafe { console::use_uart(uart.mmio.start) };
    }
    log::info!("AArch64 hypervisor {} (Xen 4.17 ABI), booting", env!("CARGO_PKG_VERSION"));
    let (image, offset) = (image_range(), load_offset());
    let (sign, magnitude) = if offset as i64 >= 0 { ('+', offset) } else { ('-', offset.wrapping_neg()) };
    log::info!("Image at {image} (linked at {:#x}, offset {sign}{magnitude:#x})", image.start.wrapping_sub(offset));

    let parsed = Options::parse(tree.xen_cmdline.map_or("", |c| c.text));
    console::set_level(parsed.options.loglvl);
    phase_done("boot tree parsed");
    report_tree(&tree, boot_blob, dtb_addr);
    for d in &parsed.diagnostics {
        log::warn!("command line: {d}");
    }
    if parsed.dropped > 0 {
        log::warn!("command line: {} more problems not shown", parsed.dropped);
    }

    let dtb = PhysRange::new(dtb_addr, dtb_addr + boot_blob.len() as u64);
    let plan = MemoryPlan::new(&tree, image_range(), dtb).unwrap_or_else(|e| {
        let stop = match e {
            PlanError::NoFreeRam { .. } => Stop::NoFreeRam,
            PlanError::TooManyRanges => Stop::BadDeviceTreeContent,
            _ => Stop::BadBootModule,
        };
        fatal!(stop, "{e}")
    });
    report_plan(&plan);
    phase_done("memory planned");
    let heap = start_memory(&plan, &tree);
    phase_done("frame allocator, heap and MMU up");
    let copy: &'static [u8] = alloc::vec::Vec::leak(crate::dt::blob::trimmed_copy(boot_blob));
    (copy, parsed.options, plan, heap)
}

/// The grant-table region (extended region 0): like Xen, the IPA range of
/// the hypervisor's own image, which can never be Dom0 RAM; 64 frames
/// (what GNTTABOP_query_size reports) or the whole image if smaller.
pub fn grant_region() -> PhysRange {
    const GRANT_FRAMES: u64 = 64;
    let image = image_range();
    PhysRange::new(image.start, (image.start + GRANT_FRAMES * 4096).min(image.end))
}

/// The frame allocator, the heap and the MMU, in that order: the heap comes
/// from the allocator, and the page tables from the heap.
/// Returns the heap's range.
fn start_memory(plan: &MemoryPlan, tree: &HostTree<'_>) -> PhysRange {
    crate::arch::barrier::dcache_invalidate(plan.metadata.start, plan.metadata.size());
    // SAFETY: the plan keeps the metadata range back from everything else,
    // and it lies in RAM; it is used only as the allocator's storage.
    let storage = unsafe { core::slice::from_raw_parts_mut(plan.metadata.start as *mut u64, plan.metadata_words) };
    let mut frames = FrameAllocator::new(&plan.ram, storage)
        .unwrap_or_else(|e| fatal!(Stop::BadDeviceTreeContent, "frame allocator: {e}"));
    for range in plan.free.iter() {
        if let Err(e) = frames.free_range(range) {
            fatal!(Stop::BadDeviceTreeContent, "frame allocator: {e}");
        }
    }

    let heap_order = order_for(HEAP_SIZE).expect("heap size fits one block");
    let heap_start = frames
        .alloc(heap_order)
        .unwrap_or_else(|| fatal!(Stop::OutOfMemory, "no {} MiB block for the hypervisor heap", HEAP_SIZE >> 20));
    let heap_range = PhysRange::new(heap_start, heap_start + order_size(heap_order));
    crate::arch::barrier::dcache_invalidate(heap_range.start, heap_range.size());
    // SAFETY: the block was just taken from the allocator for this alone.
    unsafe { heap::init(heap_range) };
    log::info!("Heap: {heap_range} ({} MiB)", heap_range.size() >> 20);

    let mut map = El2Map::new();
    let mut mapped = |range: PhysRange, kind: Kind| {
        map.map(range, kind).unwrap_or_else(|e| fatal!(Stop::OutOfMemory, "EL2 page tables: cannot map {}", e.0));
    };
    for bank in plan.ram.iter() {
        mapped(bank, Kind::Ram);
    }
    mapped(text_range(), Kind::Text);
    if let Some(uart) = &tree.console {
        mapped(uart.mmio, Kind::Device);
    }
    if let Some(gic) = &tree.gic {
        for r in gic.driven() {
            mapped(r, Kind::Device);
        }
    }
    map.activate();
    log::info!("EL2 MMU on: RAM and the hypervisor's devices identity mapped");

    report_free_lists(&frames);
    *FRAMES.lock() = Some(frames);
    heap_range
}

fn report_tree(tree: &HostTree<'_>, blob: &[u8], dtb_addr: u64) {
    log::info!("Device tree at {dtb_addr:#x} ({} bytes)", blob.len());
    if let Some(model) = tree.model {
        log::info!("Machine: {model}");
    }
    match tree.xen_cmdline {
        Some(c) => log::info!("Command line: \"{}\" (from {})", c.text, c.source.property()),
        None => log::info!("Command line: none"),
    }
    match tree.dom0_cmdline {
        Some(c) => log::info!("Dom0 command line: \"{}\" (from {})", c.text, c.source.property()),
        None => log::info!("Dom0 command line: none"),
    }
    for (i, bank) in tree.banks.iter().enumerate() {
        log::info!("RAM bank {i}: {bank} ({} MiB)", bank.size() >> 20);
    }
    for r in &tree.reserved {
        match r.kind {
            ReservationKind::MemReserve => log::info!("Reserved: {} (/memreserve/)", r.range),
            ReservationKind::ReservedMemory { name, no_map } => {
                log::info!("Reserved: {} (/reserved-memory/{name}{})", r.range, if no_map { ", no-map" } else { "" })
            }
        }
    }
    for m in &tree.modules {
        log::info!("Module: {} {} ({} bytes)", m.kind.name(), m.range, m.range.size());
    }
    if let Some(gic) = &tree.gic {
        log::info!("GIC {:?} at {}: distributor {}", gic.version, gic.path, gic.distributor);
    }
    if let Some(uart) = &tree.console {
        log::info!("Console: PL011 {} at {}", uart.path, uart.mmio);
    }
    for w in &tree.warnings {
        log::warn!("device tree: {w}");
    }
    for e in &tree.domu_errors {
        log::error!("{e}");
    }
    if tree.dropped_warnings > 0 {
        log::warn!("device tree: {} more warnings not shown", tree.dropped_warnings);
    }
}

fn report_plan(plan: &MemoryPlan) {
    for (range, why) in &plan.kept {
        log::info!("Kept back: {range} ({why})");
    }
    log::info!("Memory: {} MiB RAM, {} MiB to the frame allocator", plan.ram.total() >> 20, plan.free.total() >> 20);
}

fn report_free_lists(frames: &FrameAllocator<'_>) {
    let counts = frames.free_block_counts();
    log::info!("Free memory: {} MiB in {} blocks", frames.free_bytes() >> 20, counts.iter().sum::<u64>());
    for (order, &count) in counts.iter().enumerate() {
        if count > 0 {
            log::info!(
                "  order {order:2}: {count:5} x {:>9} KiB = {} KiB",
                order_size(order) >> 10,
                (count * order_size(order)) >> 10
            );
        }
    }
    for (order, start) in frames.free_blocks() {
        log::debug!("  free block: order {order:2} {}", PhysRange::new(start, start + order_size(order)));
    }
}

/// Entered from `boot/head.S` when the boot loader started us at EL1 or
/// EL3: say so on the console if the tree names one, then park.
#[unsafe(no_mangle)]
extern "C" fn wrong_exception_level(dtb_addr: u64, el: u64) -> ! {
    if let Ok(tree) = device_tree_blob(dtb_addr).and_then(HostTree::parse)
        && let Some(uart) = &tree.console
    {
        // SAFETY: as in primary_main.
        unsafe { console::use_uart(uart.mmio.start) };
        crate::println!(
            "(HV) FATAL: entered at EL{el}, but the hypervisor needs EL2 \
                 (QEMU: -machine virt,virtualization=on). Halted."
        );
    }
    loop {
        aarch64_cpu::asm::wfe();
    }
}
