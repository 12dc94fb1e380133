//! The boot-time memory plan: which RAM the frame allocator may hand out,
//! what is kept back and why, and where the allocator's own metadata goes.
//! Pure, so every rule is tested on the host.

use super::frames::{FRAME_SIZE, FrameAllocator};
use super::range::{PhysRange, RangeSet};
use crate::dt::host::{HostTree, MAX_BANKS, ModuleKind, ReservationKind};
use crate::dt::walk::{Path, path_of};
use arrayvec::ArrayVec;
use core::fmt;

pub const MAX_KEPT: usize = 96;

/// Why a range of RAM is not free at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    HypervisorImage,
    DeviceTree,
    Module(ModuleKind),
    /// A DomU's kernel or ramdisk, until its builder has copied it.
    DomUModule(ModuleKind),
    MemReserve,
    /// Owned, not borrowed: the plan outlives the boot tree it came from.
    ReservedMemory(Path),
    FrameAllocatorMetadata,
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HypervisorImage => f.write_str("hypervisor image"),
            Self::DeviceTree => f.write_str("host device tree"),
            Self::Module(kind) => write!(f, "boot module ({})", kind.name()),
            Self::DomUModule(kind) => write!(f, "DomU boot module ({})", kind.name()),
            Self::MemReserve => f.write_str("/memreserve/"),
            Self::ReservedMemory(name) => write!(f, "/reserved-memory/{name}"),
            Self::FrameAllocatorMetadata => f.write_str("frame allocator metadata"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A boot module lies (partly) outside RAM.
    ModuleOutsideRam {
        kind: ModuleKind,
        range: PhysRange,
    },
    /// A boot module overlaps the hypervisor image or the device tree.
    ModuleOverlaps {
        kind: ModuleKind,
        range: PhysRange,
        other: &'static str,
    },
    /// Two boot modules overlap.
    ModulesOverlap {
        range: PhysRange,
        other: PhysRange,
    },
    /// The hypervisor image is not in RAM.
    ImageOutsideRam(PhysRange),
    /// Nothing is left for the allocator (or its metadata) once everything
    /// kept back is taken out.
    NoFreeRam {
        ram: u64,
        kept: u64,
    },
    TooManyRanges,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ModuleOutsideRam { kind, range } => {
                write!(f, "{} module {range} is not inside RAM", kind.name())
            }
            Self::ModuleOverlaps { kind, range, other } => {
                write!(f, "{} module {range} overlaps the {other}", kind.name())
            }
            Self::ModulesOverlap { range, other } => write!(f, "boot modules {range} and {other} overlap"),
            Self::ImageOutsideRam(r) => write!(f, "the hypervisor image {r} is not inside RAM"),
            Self::NoFreeRam { ram, kept } => write!(
                f,
                "no RAM left to manage: {} MiB of RAM, {} MiB kept back (reservations, image, modules)",
                ram >> 20,
                kept >> 20
            ),
            Self::TooManyRanges => write!(f, "too many reserved ranges to track"),
        }
    }
}

/// The outcome: RAM, what is kept back, and what the allocator gets.
#[derive(Debug, Clone)]
pub struct MemoryPlan {
    pub ram: RangeSet<MAX_BANKS>,
    pub kept: ArrayVec<(PhysRange, Keep), MAX_KEPT>,
    /// Where the frame allocator's bitmaps live (inside RAM, kept back).
    pub metadata: PhysRange,
    pub metadata_words: usize,
    /// Frame-aligned ranges to seed the allocator with.
    pub free: RangeSet<MAX_KEPT>,
}

impl MemoryPlan {
    /// Plans memory for `tree`, with the hypervisor image at `image` and the
    /// blob itself at `dtb`.
    pub fn new(tree: &HostTree<'_>, image: PhysRange, dtb: PhysRange) -> Result<Self, PlanError> {
        let ram = tree.ram.clone();
        if !ram.contains_range(&image) {
            return Err(PlanError::ImageOutsideRam(image));
        }
        let mut kept: ArrayVec<(PhysRange, Keep), MAX_KEPT> = ArrayVec::new();
        let mut keep = |range: PhysRange, why: Keep| kept.try_push((range, why)).map_err(|_| PlanError::TooManyRanges);
        keep(image, Keep::HypervisorImage)?;
        keep(dtb, Keep::DeviceTree)?;
        for (i, module) in tree.modules.iter().enumerate() {
            let (kind, range) = (module.kind, module.range);
            if !ram.contains_range(&range) {
                return Err(PlanError::ModuleOutsideRam { kind, range });
            }
            for (other_range, other) in [(image, "hypervisor image"), (dtb, "host device tree")] {
                if range.overlaps(&other_range) {
                    return Err(PlanError::ModuleOverlaps { kind, range, other });
                }
            }
            if let Some(other) = tree.modules[..i].iter().find(|m| m.range.overlaps(&range)) {
                return Err(PlanError::ModulesOverlap { range, other: other.range });
            }
            keep(range, Keep::Module(kind))?;
        }
        // The host tree dropped DomUs whose modules lie outside RAM or
        // overlap another module.
        for (kind, range) in tree.domus.iter().flat_map(|d| d.modules()) {
            for (other_range, other) in [(image, "hypervisor image"), (dtb, "host device tree")] {
                if range.overlaps(&other_range) {
                    return Err(PlanError::ModuleOverlaps { kind, range, other });
                }
            }
            keep(range, Keep::DomUModule(kind))?;
        }
        for r in &tree.reserved {
            let why = match r.kind {
                ReservationKind::MemReserve => Keep::MemReserve,
                ReservationKind::ReservedMemory { name, .. } => Keep::ReservedMemory(path_of(name)),
            };
            keep(r.range, why)?;
        }

        // Free: RAM in whole frames minus everything kept (rounded out to
        // whole frames).
        let mut free = RangeSet::<MAX_KEPT>::new();
        for bank in ram.iter() {
            free.insert(bank.shrink_to_alignment(FRAME_SIZE)).map_err(|_| PlanError::TooManyRanges)?;
        }
        for (range, _) in &kept {
            let whole = range.expand_to_alignment(FRAME_SIZE).unwrap_or(PhysRange::new(range.start, u64::MAX));
            free.remove(whole).map_err(|_| PlanError::TooManyRanges)?;
        }

        // The metadata goes in the lowest free space that holds it.
        let metadata_words = FrameAllocator::storage_words(&ram);
        let metadata_bytes = (metadata_words as u64 * 8).next_multiple_of(FRAME_SIZE);
        let kept_bytes = ram.total() - free.total();
        let metadata = free
            .find_space(metadata_bytes, FRAME_SIZE)
            .ok_or(PlanError::NoFreeRam { ram: ram.total(), kept: kept_bytes })?;
        free.remove(metadata).map_err(|_| PlanError::TooManyRanges)?;
        kept.try_push((metadata, Keep::FrameAllocatorMetadata)).map_err(|_| PlanError::TooManyRanges)?;
        if free.is_empty() {
            return Err(PlanError::NoFreeRam { ram: ram.total(), kept: ram.total() });
        }
        Ok(Self { ram, kept, metadata, metadata_words, free })
    }
}

impl MemoryPlan {
    /// The whole frames of everything kept back as `what` that nothing else
    /// kept back touches: what can go to the allocator once `what` is no
    /// longer needed (the host tree once copied, modules once loaded).
    pub fn releasable(&self, what: impl Fn(&Keep) -> bool) -> RangeSet<MAX_KEPT> {
        let mut out = RangeSet::new();
        for (range, _) in self.kept.iter().filter(|(_, k)| what(k)) {
            if let Some(frames) = range.expand_to_alignment(FRAME_SIZE) {
                let _ = out.insert(frames);
            }
        }
        for (range, _) in self.kept.iter().filter(|(_, k)| !what(k)) {
            let whole = range.expand_to_alignment(FRAME_SIZE).unwrap_or(PhysRange::new(range.start, u64::MAX));
            let _ = out.remove(whole);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::testing::*;

    const GIB: u64 = 1 << 30;
    const IMAGE: PhysRange = PhysRange::new(0x4020_0000, 0x4040_0000);
    const DTB: PhysRange = PhysRange::new(0x4800_0000, 0x4810_0000);

    fn tree_with_modules(modules: &[(u64, u64)]) -> Vec<u8> {
        let mut t = virt(&[(0x4000_0000, GIB)]);
        for (i, &(start, size)) in modules.iter().enumerate() {
            let kind = if i == 0 { "multiboot,kernel" } else { "multiboot,ramdisk" };
            t = t.edit_child("chosen", |c| {
                c.cells("#address-cells", &[2]).cells("#size-cells", &[2]).child(
                    node(&format!("module@{start:x}"))
                        .strs("compatible", &[kind, "multiboot,module"])
                        .reg64(&[(start, size)]),
                )
            });
        }
        blob(&t, &[(0x4f00_0000, 0x1234)])
    }

    #[test]
    fn free_is_ram_minus_everything_kept() {
        let b = tree_with_modules(&[(0x4200_0000, 0x80_0800), (0x4a00_0000, 0x10_0000)]);
        let t = HostTree::parse(&b).unwrap();
        let plan = MemoryPlan::new(&t, IMAGE, DTB).unwrap();
        for (range, why) in &plan.kept {
            assert!(!plan.free.overlaps(range), "{why} at {range} is free");
        }
        for r in plan.free.iter() {
            assert_eq!(r.start % FRAME_SIZE, 0);
            assert_eq!(r.end % FRAME_SIZE, 0);
            assert!(plan.ram.contains_range(&r));
        }
        // The memreserve entry is rounded out to its frame.
        assert!(!plan.free.contains(0x4f00_1000));
        assert!(plan.free.contains(0x4f00_2000));
        // The kernel's partial last frame is kept.
        assert!(!plan.free.contains(0x4280_0000));
        assert!(plan.free.contains(0x4280_1000));
        // Metadata sits in the lowest free space: below the image.
        assert_eq!(plan.metadata.start, 0x4000_0000);
        assert!(plan.metadata.size() >= plan.metadata_words as u64 * 8);
        let kept: u64 = plan.ram.total() - plan.free.total();
        assert!(kept < 0x200_0000 + 0x100_0000 + 0x90_0000 + 0x10_0000, "kept {kept:#x}");
    }

    #[test]
    fn bad_modules_are_refused() {
        type Case = (&'static [(u64, u64)], fn(&PlanError) -> bool);
        let cases: [Case; 4] = [
            (&[(0x3000_0000, 0x1000)], |e| matches!(e, PlanError::ModuleOutsideRam { .. })),
            (&[(0x7fff_f000, 0x2000)], |e| matches!(e, PlanError::ModuleOutsideRam { .. })),
            (&[(0x4030_0000, 0x1000)], |e| matches!(e, PlanError::ModuleOverlaps { other: "hypervisor image", .. })),
            (&[(0x4200_0000, 0x2000), (0x4200_1000, 0x1000)], |e| matches!(e, PlanError::ModulesOverlap { .. })),
        ];
        for (modules, check) in cases {
            let b = tree_with_modules(modules);
            let t = HostTree::parse(&b).unwrap();
            let err = MemoryPlan::new(&t, IMAGE, DTB).unwrap_err();
            assert!(check(&err), "{modules:x?}: {err}");
        }
    }

    #[test]
    fn reserved_memory_covering_all_ram_leaves_nothing() {
        let t = virt(&[(0x4000_0000, GIB)]).child(
            node("reserved-memory")
                .cells("#address-cells", &[2])
                .cells("#size-cells", &[2])
                .flag("ranges")
                .child(node("all@40000000").reg64(&[(0x4000_0000, GIB)])),
        );
        let b = blob(&t, &[]);
        let tree = HostTree::parse(&b).unwrap();
        let err = MemoryPlan::new(&tree, IMAGE, DTB).unwrap_err();
        assert!(matches!(err, PlanError::NoFreeRam { .. }), "{err}");
        assert!(err.to_string().starts_with("no RAM left to manage: 1024 MiB of RAM"));
    }

    #[test]
    fn releasing_the_tree_spares_what_shares_its_frames() {
        // A /memreserve/ entry over the tree's last frame, as U-Boot makes.
        let t = virt(&[(0x4000_0000, GIB)]);
        let b = blob(&t, &[(0x480f_f800, 0x100)]);
        let tree = HostTree::parse(&b).unwrap();
        let plan = MemoryPlan::new(&tree, IMAGE, DTB).unwrap();
        let free = plan.releasable(|k| *k == Keep::DeviceTree);
        assert_eq!(free.iter().collect::<Vec<_>>(), vec![PhysRange::new(0x4800_0000, 0x480f_f000)]);
        assert!(!free.overlaps(&plan.metadata));
    }

    #[test]
    fn image_must_be_in_ram() {
        let b = tree_with_modules(&[]);
        let t = HostTree::parse(&b).unwrap();
        assert!(matches!(MemoryPlan::new(&t, PhysRange::new(0x1000, 0x2000), DTB), Err(PlanError::ImageOutsideRam(_))));
    }

    #[test]
    fn seeding_an_allocator_from_the_plan() {
        let b = tree_with_modules(&[(0x4200_0000, 0x80_0000)]);
        let t = HostTree::parse(&b).unwrap();
        let plan = MemoryPlan::new(&t, IMAGE, DTB).unwrap();
        let mut storage = vec![0u64; plan.metadata_words];
        let mut alloc = FrameAllocator::new(&plan.ram, &mut storage).unwrap();
        for r in plan.free.iter() {
            alloc.free_range(r).unwrap();
        }
        assert_eq!(alloc.free_bytes(), plan.free.total());
        assert_eq!(alloc.free_ranges().collect::<Vec<_>>(), plan.free.iter().collect::<Vec<_>>());
    }
}
