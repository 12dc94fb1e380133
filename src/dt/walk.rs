//! A depth-first walk of a device tree that gives each node its full path
//! and turns its `reg` entries into CPU physical addresses through the
//! `ranges` of its ancestors.

use super::DtError;
use super::props::{cells, number, str_of, u32_of};
use crate::mm::range::PhysRange;
use arrayvec::{ArrayString, ArrayVec};
use dtoolkit::fdt::{Fdt, FdtNode, FdtProperty};
use dtoolkit::{Node, Property};

/// Deepest nesting we follow; real trees stay under 10.
pub const MAX_DEPTH: usize = 16;
/// Longest node path we keep.
pub const MAX_PATH: usize = 128;
/// Most `ranges` windows a bus may have.
pub const MAX_WINDOWS: usize = 16;
/// Most cells an address or size may have (PCI uses 3).
pub const MAX_CELLS: u32 = 4;

pub type Path = ArrayString<MAX_PATH>;

/// One `ranges` window resolved to CPU addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    child: u64,
    cpu: u64,
    size: u64,
}

/// How the `reg` addresses of a node's children map to CPU addresses.
/// (Inline windows, not boxed: the tree is read before the heap exists.)
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
enum AddressMap {
    /// The root's address space, or one reached through empty `ranges`.
    Identity,
    Windows(ArrayVec<Window, MAX_WINDOWS>),
    /// No `ranges`: child addresses are not CPU addresses (CPUs, I2C, ...).
    None,
}

/// The address space a node's `reg` lives in: its parent's cells and map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bus {
    pub address_cells: u32,
    pub size_cells: u32,
    map: AddressMap,
}

/// Why a `reg` entry has no CPU address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegProblem {
    /// The value is not a whole number of (address, size) entries.
    BadLength,
    /// An address or size does not fit in 64 bits.
    TooWide,
    /// The bus has no `ranges`, or no window covers the entry.
    NotTranslatable,
    /// address + size wraps past 2^64.
    Wraps,
}

impl RegProblem {
    pub fn describe(self) -> &'static str {
        match self {
            Self::BadLength => "length is not a whole number of entries",
            Self::TooWide => "address or size wider than 64 bits",
            Self::NotTranslatable => "address is not translatable to a CPU address",
            Self::Wraps => "range wraps past the end of the address space",
        }
    }
}

impl Bus {
    pub fn root(address_cells: u32, size_cells: u32) -> Self {
        Self { address_cells, size_cells, map: AddressMap::Identity }
    }

    fn translate(&self, addr: u64, size: u64) -> Result<PhysRange, RegProblem> {
        let cpu = match &self.map {
            AddressMap::Identity => addr,
            AddressMap::None => return Err(RegProblem::NotTranslatable),
            AddressMap::Windows(windows) => windows
                .iter()
                .find(|w| addr >= w.child && addr.wrapping_sub(w.child) < w.size)
                .filter(|w| size <= w.size - (addr - w.child))
                .map(|w| w.cpu + (addr - w.child))
                .ok_or(RegProblem::NotTranslatable)?,
        };
        PhysRange::from_start_size(cpu, size).ok_or(RegProblem::Wraps)
    }

    /// Decodes a `reg` value into CPU ranges, one result per entry.
    pub fn regs<'v>(&'v self, value: &'v [u8]) -> impl Iterator<Item = Result<PhysRange, RegProblem>> + 'v {
        let entry = (self.address_cells + self.size_cells) as usize * 4;
        let bad_length = entry == 0 || !value.len().is_multiple_of(entry);
        let chunks = if bad_length { [].chunks(1) } else { value.chunks(entry) };
        let first_error = bad_length.then_some(Err(RegProblem::BadLength));
        first_error.into_iter().chain(chunks.map(move |chunk| {
            let mut words = [0u32; 2 * MAX_CELLS as usize];
            let n = chunk.len() / 4;
            for (slot, cell) in words.iter_mut().zip(cells(chunk)) {
                *slot = cell;
            }
            let (addr, size) = words[..n].split_at(self.address_cells as usize);
            let addr = number(addr).ok_or(RegProblem::TooWide)?;
            let size = number(size).ok_or(RegProblem::TooWide)?;
            self.translate(addr, size)
        }))
    }

    /// The bus a node creates for its children, from its `#address-cells`,
    /// `#size-cells` and `ranges`.
    fn child_bus(&self, props: &NodeProps<'_>, path: &str) -> Result<Bus, DtError> {
        let cell_count = |prop: Option<FdtProperty<'_>>, name: &'static str, default: u32| -> Result<u32, DtError> {
            match prop {
                None => Ok(default),
                Some(p) => match u32_of(&p) {
                    Some(n) if n <= MAX_CELLS => Ok(n),
                    _ => Err(DtError::BadCells { node: path_of(path), property: name }),
                },
            }
        };
        // Defaults from the Devicetree Specification.
        let address_cells = cell_count(props.address_cells, "#address-cells", 2)?;
        let size_cells = cell_count(props.size_cells, "#size-cells", 1)?;
        let map = match props.ranges {
            None => AddressMap::None,
            Some(p) if p.value().is_empty() => self.map.clone(),
            Some(p) => self.windows(p.value(), address_cells, size_cells),
        };
        Ok(Bus { address_cells, size_cells, map })
    }

    /// The entries of a `ranges` value of a node on this bus whose children
    /// have `child_cells` address and `size_cells` size cells, decoded as
    /// (child address, parent address, size); a number wider than 64 bits
    /// is `None`. Nothing for a malformed value.
    fn ranges_entries<'v>(
        &'v self,
        value: &'v [u8],
        child_cells: u32,
        size_cells: u32,
    ) -> impl Iterator<Item = (Option<u64>, Option<u64>, Option<u64>)> + 'v {
        let entry = (child_cells + self.address_cells + size_cells) as usize * 4;
        let usable = child_cells.max(size_cells) <= MAX_CELLS && entry != 0 && value.len().is_multiple_of(entry);
        let chunks = if usable { value.chunks(entry) } else { [].chunks(1) };
        chunks.map(move |chunk| {
            let mut words = [0u32; 3 * MAX_CELLS as usize];
            for (slot, cell) in words.iter_mut().zip(cells(chunk)) {
                *slot = cell;
            }
            let (child, rest) = words[..chunk.len() / 4].split_at(child_cells as usize);
            let (parent, size) = rest.split_at(self.address_cells as usize);
            (number(child), number(parent), number(size))
        })
    }

    /// The CPU side of each `ranges` entry (see `ranges_entries`), through
    /// this bus's own translation, whatever the child addresses are: PCI
    /// host bridges' apertures.
    pub fn ranges_cpu_side<'v>(
        &'v self,
        value: &'v [u8],
        child_cells: u32,
        size_cells: u32,
    ) -> impl Iterator<Item = PhysRange> + 'v {
        self.ranges_entries(value, child_cells, size_cells)
            .filter_map(|(_, parent, size)| self.translate(parent?, size?).ok())
    }

    /// Resolves a non-empty `ranges` value. Entries we cannot use (PCI's
    /// three-cell child addresses, untranslatable parents) are left out, so
    /// addresses behind them report `NotTranslatable`.
    fn windows(&self, value: &[u8], child_cells: u32, size_cells: u32) -> AddressMap {
        if self.map == AddressMap::None {
            return AddressMap::None;
        }
        let mut windows = ArrayVec::new();
        for (child, parent, size) in self.ranges_entries(value, child_cells, size_cells) {
            let (Some(child), Some(parent), Some(size)) = (child, parent, size) else { continue };
            if let Ok(cpu) = self.translate(parent, size) {
                let _ = windows.try_push(Window { child, cpu: cpu.start, size });
            }
        }
        AddressMap::Windows(windows)
    }
}

/// The `'static` spelling of a cells property name, for errors.
pub fn cells_name(name: &str) -> &'static str {
    if name == "#address-cells" { "#address-cells" } else { "#size-cells" }
}

/// A node path for messages, cut at `MAX_PATH` on a character boundary.
pub fn path_of(s: &str) -> Path {
    let mut p = Path::new();
    let cut = s.len().min(p.capacity());
    let cut = (0..=cut).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    p.push_str(&s[..cut]);
    p
}

/// The properties the walk and its visitors read on (nearly) every node,
/// found in one pass: a lookup by name scans all of a node's properties,
/// and half a dozen lookups per node were most of the boot's tree reading.
#[derive(Default, Clone, Copy)]
pub struct NodeProps<'a> {
    pub status: Option<FdtProperty<'a>>,
    pub device_type: Option<FdtProperty<'a>>,
    pub compatible: Option<FdtProperty<'a>>,
    pub reg: Option<FdtProperty<'a>>,
    pub ranges: Option<FdtProperty<'a>>,
    pub address_cells: Option<FdtProperty<'a>>,
    pub size_cells: Option<FdtProperty<'a>>,
    pub interrupts: Option<FdtProperty<'a>>,
    pub interrupt_controller: bool,
}

impl<'a> NodeProps<'a> {
    pub fn of(node: &FdtNode<'a>) -> Self {
        let mut props = Self::default();
        for p in node.properties() {
            let slot = match p.name() {
                "status" => &mut props.status,
                "device_type" => &mut props.device_type,
                "compatible" => &mut props.compatible,
                "reg" => &mut props.reg,
                "ranges" => &mut props.ranges,
                "#address-cells" => &mut props.address_cells,
                "#size-cells" => &mut props.size_cells,
                "interrupts" => &mut props.interrupts,
                "interrupt-controller" => {
                    props.interrupt_controller = true;
                    continue;
                }
                _ => continue,
            };
            // As a lookup by name would: the first of duplicates wins.
            slot.get_or_insert(p);
        }
        props
    }

    /// `status` says the node is not in use ("okay", "ok" or none is).
    pub fn is_disabled(&self) -> bool {
        self.status.as_ref().and_then(str_of).is_some_and(|s| s != "okay" && s != "ok")
    }

    pub fn device_type_is(&self, kind: &str) -> bool {
        self.device_type.as_ref().and_then(str_of) == Some(kind)
    }
}

/// What the walk hands to its visitor for each node.
pub struct Visit<'a, 'w> {
    pub node: FdtNode<'a>,
    pub props: &'w NodeProps<'a>,
    pub path: &'w str,
    pub depth: usize,
    /// The address space of this node's `reg`.
    pub bus: &'w Bus,
}

/// Whether the walk should enter a node's children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Descend {
    Yes,
    No,
    /// Enter them, but a malformed part of this subtree (bad cells, too
    /// deep, a path too long, a visitor's error) ends the subtree's walk
    /// instead of failing the whole walk: for nodes read only to be careful,
    /// like disabled ones, which must not stop a boot that ignores them.
    BestEffort,
}

/// Visits every node depth-first, parents before children.
pub fn walk<'a>(
    fdt: &Fdt<'a>,
    visit: &mut dyn FnMut(&Visit<'a, '_>) -> Result<Descend, DtError>,
) -> Result<(), DtError> {
    let root = fdt.root();
    // The root's own `reg` (rare) is in a one-cell space by convention.
    let root_parent = Bus::root(1, 1);
    let mut path = Path::new();
    walk_node(root, &root_parent, &mut path, 0, visit)
}

fn walk_node<'a>(
    node: FdtNode<'a>,
    bus: &Bus,
    path: &mut Path,
    depth: usize,
    visit: &mut dyn FnMut(&Visit<'a, '_>) -> Result<Descend, DtError>,
) -> Result<(), DtError> {
    if depth > MAX_DEPTH {
        return Err(DtError::TooDeep { node: *path });
    }
    let parent_len = path.len();
    let pushed = if depth == 0 {
        path.try_push('/').is_ok()
    } else {
        (parent_len == 1 || path.try_push('/').is_ok()) && path.try_push_str(node.name()).is_ok()
    };
    let walked = if pushed {
        visit_and_descend(node, bus, path, depth, visit)
    } else {
        Err(DtError::PathTooLong { node: *path })
    };
    // Back to the parent's path whatever happened, so that a subtree given
    // up on (`Descend::BestEffort`) leaves its siblings' paths right.
    path.truncate(parent_len);
    walked
}

fn visit_and_descend<'a>(
    node: FdtNode<'a>,
    bus: &Bus,
    path: &mut Path,
    depth: usize,
    visit: &mut dyn FnMut(&Visit<'a, '_>) -> Result<Descend, DtError>,
) -> Result<(), DtError> {
    let props = NodeProps::of(&node);
    let descend = visit(&Visit { node, props: &props, path, depth, bus })?;
    if descend == Descend::No {
        return Ok(());
    }
    let best_effort = descend == Descend::BestEffort;
    let mut child_bus = match bus.child_bus(&props, path) {
        Ok(child_bus) => child_bus,
        Err(_) if best_effort => return Ok(()),
        Err(e) => return Err(e),
    };
    if depth == 0 {
        // The root's children are in the CPU's address space.
        child_bus.map = AddressMap::Identity;
    }
    for child in node.children() {
        match walk_node(child, &child_bus, path, depth + 1, visit) {
            Err(_) if best_effort => break,
            walked => walked?,
        }
    }
    Ok(())
}
