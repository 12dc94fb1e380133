//! Building Dom0 at boot: its RAM, its kernel and initrd in place, the
//! boot modules freed, its stage 2 (audited), the extended regions and its
//! device tree. The policies live in the pure modules beside this one; this
//! file puts them together on the board.

use crate::arch::cpu;
use crate::boot_phases::phase_done;
use crate::cmdline::Options;
use crate::domain::vcpu::Placement;
use crate::domain::{Domain, DomainId};
use crate::dt::host::HostTree;
use crate::fatal;
use crate::fatal::Stop;
use crate::mm::FRAMES;
use crate::mm::audit::{Owned, owned};
use crate::mm::plan::{Keep, MemoryPlan};
use crate::mm::range::{GuestRange, PhysRange};
use crate::mm::release;
use alloc::vec::Vec;

/// Reads `range` of RAM as bytes.
///
/// # Safety
/// `range` must be RAM mapped at EL2 that nothing writes while the slice lives.
unsafe fn ram_bytes(range: PhysRange) -> &'static [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { core::slice::from_raw_parts(range.start as *const u8, range.size() as usize) }
}

/// Copies `bytes` into Dom0 RAM at `at` and cleans them to memory, which
/// Dom0 reads with its caches off.
fn copy_into_dom0(at: u64, bytes: &[u8]) {
    // SAFETY: `at` lies in a Dom0 bank the caller checked holds `bytes`;
    // Dom0 does not run yet, and nothing of the hypervisor's lives there.
    unsafe { crate::arch::copy::copy_large(at as *mut u8, bytes.as_ptr(), bytes.len()) };
    crate::arch::barrier::dcache_clean(at, bytes.len() as u64);
}

/// Builds Dom0: RAM, kernel and initrd in place, the boot modules freed,
/// the extended regions, its device tree, its stage 2.
/// Dom0's vCPU n runs on physical CPU `cpus[n]`. `before_regions` runs
/// once Dom0's memory is taken and before the extended regions are found
/// in what is left free: the DomUs take theirs there, so no region can
/// cover a DomU's frames. `board_for` gives the Xen layer's board for the
/// built domain (its grant-table frames are taken through it); the caller,
/// above this layer, knows the machine's.
/// Returns Dom0, its entry point and the address of its device tree.
#[allow(clippy::too_many_arguments)]
pub fn build<B: crate::xen::Board>(
    tree: &HostTree<'_>,
    blob: &'static [u8],
    options: &Options,
    plan: &MemoryPlan,
    hypervisor_memory: &[Owned],
    grant_region: PhysRange,
    cpus: &[usize],
    before_regions: impl FnOnce(),
    board_for: impl Fn(&'static Domain) -> B,
) -> (&'static Domain, u64, u64) {
    use crate::dom0::{layout, memory, regions};
    use crate::dt::host::ModuleKind;
    let banks = {
        let mut guard = FRAMES.lock();
        let frames = guard.as_mut().expect("memory is up");
        memory::allocate(frames, options.dom0_mem).unwrap_or_else(|e| fatal!(Stop::Dom0MemoryUnavailable, "{e}"))
    };
    for (i, bank) in banks.iter().enumerate() {
        log::info!("d0: BANK[{i}] {bank} ({} MiB)", bank.size() >> 20);
    }
    phase_done("Dom0 RAM allocated");

    let kernel_module = tree.module(ModuleKind::Kernel).expect("checked at boot");
    // SAFETY: the plan checked that modules lie in RAM; they are kept back
    // from the allocator until released below, after the copies.
    let kernel = unsafe { ram_bytes(kernel_module.range) };
    let initrd = tree.module(ModuleKind::Ramdisk).map(|m| {
        // SAFETY: as for the kernel.
        unsafe { ram_bytes(m.range) }
    });
    let header = layout::ImageHeader::parse(kernel).unwrap_or_else(|e| fatal!(Stop::BadDom0Kernel, "{e}"));
    let place = layout::place(banks[0], &header, kernel.len() as u64, initrd.map(|i| i.len() as u64))
        .unwrap_or_else(|e| fatal!(Stop::Dom0MemoryUnavailable, "{e}"));
    copy_into_dom0(place.entry, kernel);
    log::info!("d0: kernel {} (entry {:#x}, text_offset {:#x})", place.kernel, place.entry, header.text_offset);
    phase_done("kernel copied");
    if let (Some(bytes), Some(range)) = (initrd, place.initrd) {
        copy_into_dom0(range.start, bytes);
        log::info!("d0: initrd {range}");
    }
    release(plan, "boot modules, copied into Dom0", |k| matches!(k, Keep::Module(_)));
    phase_done("initrd copied, modules freed");

    let fdt = dtoolkit::fdt::Fdt::new(blob).unwrap_or_else(|e| fatal!(Stop::BadDeviceTree, "{e}"));
    let devices = crate::dt::devices::device_ranges(&fdt).unwrap_or_else(|e| fatal!(Stop::BadDeviceTreeContent, "{e}"));
    let grant = grant_region;
    let ipa_bits = cpu::pa_bits();
    phase_done("host devices read");
    let kept = kept_devices(tree);
    // Disabled devices are not Dom0's; they only keep extended regions off.
    let (held, passed): (Vec<PhysRange>, Vec<PhysRange>) =
        devices.iter().filter(|d| d.enabled).map(|d| d.range).partition(|d| kept.iter().any(|k| k.overlaps(d)));
    for range in held {
        log::info!("d0: {range} kept by the hypervisor");
    }
    let stage2 = build_stage2(&banks, &passed, ipa_bits, !options.stage2_blocks);
    phase_done("stage 2 built");
    // One vCPU per CPU it was given: vCPU n sees its CPU's MPIDR.
    let vcpus = cpus.len().max(1);
    let vmid = crate::domain::VMIDS.lock().allocate().expect("Dom0 is the first domain, so VMIDs are free");
    // Dom0 is 1:1: it sees its banks, and the grant region chosen in the
    // host's map, at their own addresses.
    let ram = banks.iter().map(|&bank| GuestRange::identity_of(bank)).collect();
    let mut dom0 = Domain::new(DomainId(0), vmid, ram, stage2, vcpus, GuestRange::identity_of(grant));
    let cpu_of = |n: usize| cpus.get(n).copied().unwrap_or(n);
    dom0.place_vcpus(|n| {
        cpu::mpidr_of(cpu_of(n)).map_or(Placement::for_vcpu(n), |mpidr| Placement { cpu: cpu_of(n), mpidr })
    });
    let dom0 = dom0.into_static();
    if let Err(e) = dom0.xen.grants.lock().reserve_frames(&board_for(dom0)) {
        log::error!("d0: no frames for the grant table ({e}); grants will not work");
    }
    let mut hypervisor = hypervisor_memory.to_vec();
    hypervisor.extend(kept.iter().map(|&range| Owned { range, what: owned::KEPT_DEVICE }));
    crate::dom0::audit::at_build(dom0, crate::dom0::audit::Baseline { devices: passed, hypervisor });
    crate::domain::set_dom0(dom0);
    phase_done("stage 2 audited, grant frames reserved");
    before_regions();
    // The hypervisor's memory as the audit knows it, and the grant-table
    // frames just taken: a fixed range must miss them all.
    let mut own_memory = hypervisor_memory.to_vec();
    let page = |pa: u64| PhysRange::new(pa, pa + crate::mm::frames::FRAME_SIZE);
    let grant_frames: Vec<PhysRange> = dom0.xen.grants.lock().frame_addresses().map(page).collect();
    own_memory.extend(grant_frames.into_iter().map(|range| Owned { range, what: owned::GRANT_FRAME }));
    let reserved = tree.reserved.iter().map(|r| r.range);
    let taken = regions::Taken::new(grant, &banks, reserved, &devices, &own_memory);
    let ram: Vec<PhysRange> = tree.ram.iter().collect();
    let choice = {
        let guard = FRAMES.lock();
        let frames = guard.as_ref().expect("memory is up");
        regions::choose(options.ext_regions, &ram, frames.free_ranges(), &taken, 1 << ipa_bits)
    };
    match choice.note {
        Some(note) if note.is_error() => log::error!("{note}"),
        Some(note) => log::warn!("{note}"),
        None => {}
    }
    let found = choice.regions;
    log::info!("d0: grant table region {grant}");
    for (i, region) in found.regions.iter().enumerate() {
        log::info!("d0: extended region {i}: {region}");
    }
    if found.dropped > 0 {
        log::warn!(
            "d0: {} smaller extended regions left out (limit {})",
            found.dropped,
            crate::dom0::ext_regions::MAX_REGIONS
        );
    }
    let usable: u64 = found.regions.iter().map(|r| r.shrink_to_alignment(128 << 20).size()).sum();
    log::info!(
        "d0: {} extended regions, {} MiB ({} MiB in 128 MiB-aligned sections Linux can use)",
        found.regions.len(),
        found.total() >> 20,
        usable >> 20
    );

    phase_done("extended regions found");
    let dom0_mpidrs: Vec<u64> = dom0.vcpus.iter().map(|v| v.placement.mpidr).collect();
    let hidden: alloc::vec::Vec<&str> = tree.console.iter().map(|c| c.path.as_str()).collect();
    let spec = crate::dt::dom0::Dom0Tree {
        banks: &banks,
        bootargs: tree.dom0_cmdline.map(|c| c.text),
        initrd: place.initrd,
        grant_region: grant,
        extended_regions: &found.regions,
        event_ppi: crate::xen::events::EVENT_PPI,
        hidden: &hidden,
        gic: tree.gic.as_ref().map_or("", |g| g.path.as_str()),
        cpus: (dom0_mpidrs.len() < tree.cpus.len()).then_some(dom0_mpidrs.as_slice()),
    };
    let dom0_dtb = crate::dt::dom0::build(&fdt, &spec).unwrap_or_else(|e| fatal!(Stop::BadDeviceTreeContent, "{e}"));
    if dom0_dtb.len() as u64 > place.dtb.size() {
        fatal!(
            Stop::BadDeviceTreeContent,
            "Dom0's device tree is {} bytes, over the 2 MiB the boot protocol allows",
            dom0_dtb.len()
        );
    }
    copy_into_dom0(place.dtb.start, &dom0_dtb);
    log::info!("d0: device tree at {:#x} ({} bytes)", place.dtb.start, dom0_dtb.len());
    phase_done("Dom0 device tree made");
    (dom0, place.entry, place.dtb.start)
}

/// The host devices the hypervisor keeps: its console, and the GIC
/// distributor and redistributors, which it emulates.
fn kept_devices(tree: &HostTree<'_>) -> Vec<PhysRange> {
    let mut kept: Vec<PhysRange> = tree.console.iter().map(|c| c.mmio).collect();
    if let Some(gic) = &tree.gic {
        kept.push(gic.distributor);
        kept.extend(gic.redistributors.iter().copied());
    }
    kept
}

/// Dom0's stage 2: its RAM (in 4 KiB pages if `ram_in_pages` and the
/// tables fit the boot limit, else in blocks) and the host devices passed
/// through, as far as the table limit allows.
fn build_stage2(
    banks: &[PhysRange],
    devices: &[PhysRange],
    ipa_bits: u32,
    ram_in_pages: bool,
) -> crate::mm::stage2::Stage2Map {
    use crate::mm::stage2::{Geometry, Kind, MapError, Stage2Map, page_tables_for};
    let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(ipa_bits));
    let ram: u64 = banks.iter().map(PhysRange::size).sum();
    let mut in_pages = ram_in_pages;
    for &bank in banks {
        let mut mapped = if in_pages { s2.map_pages(bank, Kind::Ram) } else { s2.map(bank, Kind::Ram) };
        if in_pages && matches!(mapped, Err(MapError::TooManyTables(_))) {
            log::warn!(
                "d0: stage 2: {} MiB of RAM in pages would take {} table pages, over the limit; blocks used",
                ram >> 20,
                page_tables_for(ram)
            );
            in_pages = false;
            mapped = s2.map(bank, Kind::Ram);
        }
        if let Err(e) = mapped {
            fatal!(Stop::Dom0MemoryUnavailable, "d0: stage 2: cannot map Dom0's RAM: {e}");
        }
    }
    if in_pages {
        log::info!("d0: stage 2: RAM in 4 KiB pages (stage2-blocks=no), {} table pages", s2.tables());
    }
    // Past the table limit, one line says how much was left out.
    let (mut passed, mut over_limit) = (0usize, 0usize);
    for &device in devices {
        match s2.map(device, Kind::Device) {
            Ok(()) => passed += 1,
            Err(e) => {
                let table_limit = matches!(e, MapError::TooManyTables(_));
                if !table_limit || over_limit == 0 {
                    log::warn!("d0: stage 2: cannot map a device: {e}; Dom0 will not see it");
                }
                over_limit += usize::from(table_limit);
            }
        }
    }
    if over_limit > 1 {
        log::warn!("d0: stage 2: {} more ranges not mapped (table limit)", over_limit - 1);
    }
    let geometry = s2.geometry();
    log::info!(
        "P2M: {}-bit IPA, root at level {}, {passed} device ranges passed through",
        geometry.ipa_bits,
        geometry.root_level
    );
    s2
}
