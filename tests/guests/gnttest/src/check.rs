//! The checks, in order; the first failure ends the run with its reason.

use crate::gntabi::*;
use crate::parse::{self, Range};
use crate::sys::{self, Errno, File, Mapping, O_RDONLY, O_RDWR, PAGE_SIZE, Text, say};
use core::ffi::CStr;
use core::fmt::Write;

const ROUNDS: usize = 1000;
/// Room for the grant-table region and 128 extended regions (the most the
/// hypervisor advertises), and for Linux's Xen scratch ranges.
const MAX_RANGES: usize = 129;

/// Why the run failed, as text.
pub struct Failure(pub Text<384>);

macro_rules! fail {
    ($($arg:tt)*) => {{
        let mut why = $crate::sys::Text::new();
        let _ = write!(why, $($arg)*);
        return Err($crate::check::Failure(why))
    }};
}
pub(crate) use fail;

/// Adds what was being done to a system call's error.
pub trait Context<T> {
    fn doing(self, what: &str) -> Result<T, Failure>;
}

impl<T> Context<T> for Result<T, Errno> {
    fn doing(self, what: &str) -> Result<T, Failure> {
        match self {
            Ok(v) => Ok(v),
            Err(e) => fail!("{what}: {e}"),
        }
    }
}

pub fn main(ballooned: bool) -> i32 {
    match run(ballooned) {
        Ok(()) => {
            say(format_args!("ok"));
            0
        }
        Err(Failure(why)) => {
            say(format_args!("FAIL {}", why.as_str()));
            1
        }
    }
}

fn run(ballooned: bool) -> Result<(), Failure> {
    let gntalloc = File::open(c"/dev/xen/gntalloc", O_RDWR).doing("open /dev/xen/gntalloc")?;
    let mut alloc = AllocGref { domid: 0, flags: GNTALLOC_FLAG_WRITABLE, count: 1, ..AllocGref::default() };
    gntalloc.ioctl(IOCTL_GNTALLOC_ALLOC_GREF, &mut alloc).doing("IOCTL_GNTALLOC_ALLOC_GREF")?;
    let gref = alloc.gref_id;
    say(format_args!("gntalloc granted ref {gref} to domain 0, writable (mmap offset {:#x})", alloc.index));
    let granted = gntalloc.map_shared(1, alloc.index).doing("mmap of the gntalloc page")?;
    for word in 0..granted.words() {
        granted.write(word, pattern(word));
    }
    say(format_args!("wrote a pattern through gntalloc at {:#x}", granted.addr()));

    let gntdev = File::open(c"/dev/xen/gntdev", O_RDWR).doing("open /dev/xen/gntdev")?;
    let mapped = map_grant(&gntdev, gref)?;
    say(format_args!("gntdev mapped ref {gref} of domain 0 at {:#x}", mapped.addr()));
    for word in 0..mapped.words() {
        if mapped.read(word) != pattern(word) {
            fail!("gntdev word {word} reads {:#x}, gntalloc wrote {:#x}", mapped.read(word), pattern(word));
        }
        mapped.write(word, !pattern(word));
    }
    say(format_args!("the pattern is visible through gntdev"));
    for word in 0..granted.words() {
        if granted.read(word) != !pattern(word) {
            fail!("gntalloc word {word} reads {:#x}, gntdev wrote {:#x}", granted.read(word), !pattern(word));
        }
    }
    say(format_args!("a write through gntdev is visible through gntalloc"));

    let physical = physical_address(mapped.addr())?;
    say(format_args!("the gntdev page is at physical address {physical:#x}"));
    let regions = hypervisor_regions()?;
    let scratch = xen_scratch()?;
    if ballooned {
        say(format_args!("ballooned: the mapping works; where Linux put it is not checked"));
    } else {
        check_in_regions(physical, &regions.as_slice()[1..], scratch.as_slice())?;
    }
    unmap_grant(&gntdev, mapped)?;

    // Each round reads one word of what gntdev wrote above and leaves the
    // round's number in word 0.
    for round in 0..ROUNDS {
        let mapping = map_grant(&gntdev, gref)?;
        let word = 1 + round % (mapping.words() - 1);
        if mapping.read(word) != !pattern(word) {
            fail!("round {round}: word {word} of the mapping reads {:#x}, not the granted page's", mapping.read(word));
        }
        mapping.write(0, round as u64);
        unmap_grant(&gntdev, mapping)?;
    }
    if granted.read(0) != (ROUNDS - 1) as u64 {
        fail!("after {ROUNDS} rounds the granted page's first word is {:#x}", granted.read(0));
    }
    say(format_args!("{ROUNDS} rounds of map, mmap, touch, munmap, unmap"));

    granted.unmap().doing("munmap of the gntalloc page")?;
    let mut dealloc = DeallocGref { index: alloc.index, count: 1 };
    gntalloc.ioctl(IOCTL_GNTALLOC_DEALLOC_GREF, &mut dealloc).doing("IOCTL_GNTALLOC_DEALLOC_GREF")?;
    Ok(())
}

/// Distinct in every word and unlike a zeroed or freshly scrubbed page.
fn pattern(word: usize) -> u64 {
    0x676e_7474_6573_7400 ^ (word as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A grant mapped through gntdev: the mapping and gntdev's offset for it.
struct GrantMapping {
    mapping: Mapping,
    index: u64,
}

impl core::ops::Deref for GrantMapping {
    type Target = Mapping;
    fn deref(&self) -> &Mapping {
        &self.mapping
    }
}

fn map_grant(gntdev: &File, gref: u32) -> Result<GrantMapping, Failure> {
    let mut map = MapGrantRef { count: 1, pad: 0, index: 0, refs: [GrantRef { domid: 0, gref }] };
    gntdev.ioctl(IOCTL_GNTDEV_MAP_GRANT_REF, &mut map).doing("IOCTL_GNTDEV_MAP_GRANT_REF")?;
    let mapping = gntdev.map_shared(1, map.index).doing("mmap of the gntdev grant")?;
    Ok(GrantMapping { mapping, index: map.index })
}

/// munmap first: gntdev refuses to unmap a grant that is still mapped.
fn unmap_grant(gntdev: &File, grant: GrantMapping) -> Result<(), Failure> {
    grant.mapping.unmap().doing("munmap of the gntdev mapping")?;
    let mut unmap = UnmapGrantRef { index: grant.index, count: 1, pad: 0 };
    gntdev.ioctl(IOCTL_GNTDEV_UNMAP_GRANT_REF, &mut unmap).doing("IOCTL_GNTDEV_UNMAP_GRANT_REF")?;
    Ok(())
}

/// The physical address behind `virtual_address`, from its pagemap entry.
pub fn physical_address(virtual_address: usize) -> Result<u64, Failure> {
    let pagemap = File::open(c"/proc/self/pagemap", O_RDONLY).doing("open /proc/self/pagemap")?;
    let mut entry = [0u8; 8];
    let offset = (virtual_address / PAGE_SIZE * entry.len()) as u64;
    if pagemap.read_at(&mut entry, offset).doing("read /proc/self/pagemap")? != entry.len() {
        fail!("short read of /proc/self/pagemap");
    }
    match parse::pagemap_frame(u64::from_le_bytes(entry)) {
        Some(frame) => Ok(frame * PAGE_SIZE as u64 + (virtual_address % PAGE_SIZE) as u64),
        None => fail!("pagemap shows no frame for {virtual_address:#x} (entry {:#x})", u64::from_le_bytes(entry)),
    }
}

/// A few ranges, in a fixed array (there is no allocator).
pub struct Ranges {
    items: [Range; MAX_RANGES],
    len: usize,
}

impl Ranges {
    pub fn new() -> Self {
        Self { items: [Range { start: 0, end: 0 }; MAX_RANGES], len: 0 }
    }

    pub fn push(&mut self, range: Range) -> Result<(), Failure> {
        if self.len == MAX_RANGES {
            fail!("more than {MAX_RANGES} ranges");
        }
        self.items[self.len] = range;
        self.len += 1;
        Ok(())
    }

    pub fn as_slice(&self) -> &[Range] {
        &self.items[..self.len]
    }
}

fn read_cell(path: &CStr) -> Result<u32, Failure> {
    let mut buf = [0u8; 8];
    let bytes = sys::read_file(path, &mut buf).doing(path.to_str().unwrap_or("a cell property"))?;
    match parse::cell(bytes) {
        Some(cells) => Ok(cells),
        None => fail!("{path:?} is not one cell"),
    }
}

/// The `/hypervisor` node's `reg`: the grant-table region, then the
/// extended regions.
pub fn hypervisor_regions() -> Result<Ranges, Failure> {
    let address_cells = read_cell(c"/proc/device-tree/#address-cells")?;
    let size_cells = read_cell(c"/proc/device-tree/#size-cells")?;
    // One byte more than the most expected, to tell a longer reg.
    let mut buf = [0u8; 16 * MAX_RANGES + 1];
    let reg =
        sys::read_file(c"/proc/device-tree/hypervisor/reg", &mut buf).doing("read /proc/device-tree/hypervisor/reg")?;
    let Some(entries) = parse::reg_entries(reg, address_cells, size_cells) else {
        fail!("/hypervisor reg of {} bytes does not divide into <{address_cells} {size_cells}> entries", reg.len());
    };
    let mut ranges = Ranges::new();
    for (i, range) in entries.enumerate() {
        match i {
            0 => say(format_args!("grant table region {range}")),
            _ => say(format_args!("extended region {}: {range}", i - 1)),
        }
        ranges.push(range)?;
    }
    if ranges.len == 0 {
        fail!("/hypervisor has an empty reg: no grant-table region");
    }
    Ok(ranges)
}

/// The `Xen scratch` ranges in `/proc/iomem`: what Linux took from the
/// extended regions for its unpopulated pages.
pub fn xen_scratch() -> Result<Ranges, Failure> {
    let mut buf = [0u8; 64 * 1024];
    let iomem = sys::read_file(c"/proc/iomem", &mut buf).doing("read /proc/iomem")?;
    let Ok(iomem) = core::str::from_utf8(iomem) else { fail!("/proc/iomem is not UTF-8") };
    let mut scratch = Ranges::new();
    for (range, _) in iomem.lines().filter_map(parse::iomem_line).filter(|(_, name)| *name == "Xen scratch") {
        say(format_args!("Xen scratch {range}"));
        scratch.push(range)?;
    }
    if scratch.len == 0 {
        say(format_args!("no Xen scratch in /proc/iomem"));
    }
    Ok(scratch)
}

/// The gntdev page and every `Xen scratch` range lie in an extended region.
fn check_in_regions(physical: u64, extended: &[Range], scratch: &[Range]) -> Result<(), Failure> {
    if extended.is_empty() {
        fail!("no extended regions advertised (pass --ballooned when there are none)");
    }
    if !extended.iter().any(|r| r.contains_address(physical)) {
        fail!("the gntdev page {physical:#x} is in no extended region");
    }
    if scratch.is_empty() {
        fail!("Linux has no Xen scratch range, though extended regions are advertised");
    }
    if let Some(stray) = scratch.iter().find(|s| !extended.iter().any(|r| r.contains(**s))) {
        fail!("Xen scratch {stray} is in no extended region");
    }
    say(format_args!("the gntdev page and the Xen scratch ranges lie in extended regions"));
    Ok(())
}
