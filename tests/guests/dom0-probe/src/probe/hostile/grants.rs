//! Grant mapping with bad references, entries and targets: refs never
//! granted, beyond the table, granted read-only or to another domain,
//! naming frames that are not Dom0's RAM; targets that are not free IPA
//! space; flags Arm guests may not use; more maps of an entry than Xen
//! pins, more than the maptrack holds, and mappings scattered until the
//! stage-2 table budget runs out. Unmaps of handles never issued, with the
//! wrong address, twice.

use super::super::{read_faults, set_word, word, write_faults};
use super::physmap::remove_from_physmap;
use super::{Board, Hostile, granted_page, scratch_page};
use crate::probe::abi::*;
use core::ptr::addr_of_mut;

/// GTF_* of a grant entry.
const PERMIT_ACCESS: u64 = 1;
const READONLY: u64 = 1 << 2;
const READING: u64 = 1 << 3;
const WRITING: u64 = 1 << 4;
/// Grant-table frames the physmap category mapped: refs below this exist.
const FRAMES_MAPPED: u32 = 2;
const REFS: u32 = FRAMES_MAPPED * 512;
/// Maps of one entry of one kind Xen allows at once.
const PIN_LIMIT: usize = 127;
/// Mapping handles a domain may hold here at once.
const MAX_MAPTRACK: usize = 16384;

/// A grant entry of ours at `gref` (frame 0 of the table sits at the
/// start of the grant region, frame 1 after it).
struct Table {
    region: u64,
}

impl Table {
    fn entry(&self, gref: u32) -> u64 {
        self.region + u64::from(gref) * 8
    }

    fn grant(&self, gref: u32, flags: u64, domid: u16, frame: u64) {
        set_word(self.entry(gref), flags | u64::from(domid) << 16 | frame << 32);
    }

    fn flags(&self, gref: u32) -> u64 {
        word(self.entry(gref)) & 0xffff
    }
}

fn status(m: &MapGrantRef) -> i64 {
    m.status.into()
}

pub fn run(h: &mut Hostile<'_>, board: &Board<'_>) {
    let table = Table { region: board.grant_region.0 };
    let granted = granted_page();
    set_word(granted, 0x6772_616e_7465_6421);
    let target = |i: u64| board.unmapped() + i * 0x1000;
    let host = gntmap::HOST_MAP;

    // References that name nothing usable.
    let good = 10;
    table.grant(good, PERMIT_ACCESS, 0, granted >> 12);
    for (what, gref, expected) in [
        ("a ref never granted", 11, gntst::GENERAL_ERROR),
        ("the first ref beyond the table", REFS, gntst::BAD_GNTREF),
        ("ref 0x10000", 0x1_0000, gntst::BAD_GNTREF),
        ("ref u32::MAX", u32::MAX, gntst::BAD_GNTREF),
    ] {
        h.expect(status(&map_grant(target(0), host, gref, 0)), expected.into(), format_args!("map of {what}"));
    }
    for (what, flags, domid, frame) in [
        ("an entry granted to domain 5", PERMIT_ACCESS, 5, granted >> 12),
        ("a transitive entry", 2, 0, granted >> 12),
        ("an entry accepting a transfer", 3, 0, granted >> 12),
    ] {
        table.grant(12, flags, domid, frame);
        h.expect(
            status(&map_grant(target(0), host, 12, 0)),
            gntst::GENERAL_ERROR.into(),
            format_args!("map of {what}"),
        );
    }
    // Entries naming frames that are not Dom0's RAM: refused, and the
    // entry released again.
    for (what, frame) in [
        ("the hypervisor's image", board.image_past_grants() >> 12),
        ("a device", board.device >> 12),
        ("an extended region", board.unmapped() >> 12),
        ("the grant table itself", board.grant_region.0 >> 12),
        ("frame 2^32 - 1", u64::from(u32::MAX)),
    ] {
        table.grant(12, PERMIT_ACCESS, 0, frame);
        let m = map_grant(target(0), host, 12, 0);
        h.expect(status(&m), gntst::BAD_PAGE.into(), format_args!("map of a grant of {what}"));
        h.expect(table.flags(12) as i64, 1, format_args!("the grant of {what} is released"));
    }
    h.aborts(read_faults(target(0)), format_args!("nothing was mapped at {:#x}", target(0)));

    // Flags an Arm guest may not use.
    for (what, flags, expected) in [
        ("no map flags", 0, gntst::BAD_GNTREF),
        ("a device map", gntmap::DEVICE_MAP | host, gntst::GENERAL_ERROR),
        ("an application map", gntmap::APPLICATION_MAP | host, gntst::GENERAL_ERROR),
        ("a PTE to fill", gntmap::CONTAINS_PTE | host, gntst::GENERAL_ERROR),
    ] {
        h.expect(status(&map_grant(target(0), flags, good, 0)), expected.into(), format_args!("map with {what}"));
    }
    h.expect(
        status(&map_grant(target(0), host, good, DOMID_SELF)),
        gntst::BAD_DOMAIN.into(),
        format_args!("map from DOMID_SELF"),
    );

    // Read-only grants: a writable map is refused, a read-only one works
    // and a store through it aborts.
    table.grant(13, PERMIT_ACCESS | READONLY, 0, granted >> 12);
    h.expect(
        status(&map_grant(target(0), host, 13, 0)),
        gntst::GENERAL_ERROR.into(),
        format_args!("writable map of a read-only grant"),
    );
    h.expect(
        table.flags(13) as i64,
        (PERMIT_ACCESS | READONLY) as i64,
        format_args!("the read-only grant is untouched"),
    );
    let ro = map_grant(target(0), host | gntmap::READONLY, 13, 0);
    h.expect(status(&ro), 0, format_args!("read-only map of a read-only grant"));
    h.expect(table.flags(13) as i64, (PERMIT_ACCESS | READONLY | READING) as i64, format_args!("it is being read"));
    h.case(word(target(0)) == word(granted), format_args!("the read-only map reads the granted page"));
    h.aborts(write_faults(target(0), 0), format_args!("a store through the read-only map"));
    h.case(word(granted) == 0x6772_616e_7465_6421, format_args!("the granted page is unchanged"));

    // Targets that are not free IPA space (Xen would replace whatever is
    // there; here the target must be page aligned, unmapped, outside the
    // grant region).
    for (what, address) in [
        ("a misaligned address", target(1) + 8),
        ("the grant region", board.grant_region.0 + 0x1000),
        ("Dom0's mapped RAM", scratch_page()),
        ("a device", board.device),
        ("a page already grant-mapped", target(0)),
        ("beyond the IPA space", NOTHING),
        ("the top page of the address space", !0xfff),
    ] {
        let m = map_grant(address, host, good, 0);
        h.expect(status(&m), gntst::BAD_VIRT_ADDR.into(), format_args!("map at {what} ({address:#x})"));
    }
    h.expect(table.flags(good) as i64, 1, format_args!("the failed maps released the entry"));
    h.no_abort(read_faults(scratch_page()), format_args!("Dom0's RAM page is still its own"));
    // Grant mappings and the frames behind them stay while mapped.
    h.expect(
        remove_from_physmap(DOMID_SELF, target(0) >> 12),
        EINVAL,
        format_args!("remove_from_physmap of a grant map"),
    );
    h.expect(reservation(1, target(0) >> 12), 0, format_args!("decrease_reservation of a grant map"));
    h.expect(reservation(1, granted >> 12), 0, format_args!("decrease_reservation of the frame mapped"));
    // A hypercall's buffer must be Dom0's RAM: not a grant-table frame.
    let rc = hypercall(XEN_VERSION, [1, board.grant_region.0, 0, 0, 0]);
    h.expect(rc, EFAULT, format_args!("a hypercall buffer in a grant-table frame"));

    // Unmaps of things never mapped, or not as mapped.
    for (what, handle) in [("a handle never issued", 9999), ("handle u32::MAX", u32::MAX)] {
        h.expect(unmap_grant(target(0), 0, handle).into(), gntst::BAD_HANDLE.into(), format_args!("unmap of {what}"));
    }
    h.expect(
        unmap_grant(target(5), 0, ro.handle).into(),
        gntst::GENERAL_ERROR.into(),
        format_args!("unmap at another address"),
    );
    h.expect(
        unmap_grant(target(0), granted + 0x1000, ro.handle).into(),
        gntst::BAD_DEV_ADDR.into(),
        format_args!("unmap naming another frame"),
    );
    h.no_abort(read_faults(target(0)), format_args!("the mapping survived the bad unmaps"));
    h.expect(unmap_grant(target(0), granted, ro.handle).into(), 0, format_args!("unmap as mapped"));
    h.expect(
        table.flags(13) as i64,
        (PERMIT_ACCESS | READONLY) as i64,
        format_args!("the read-only grant is released"),
    );
    h.expect(unmap_grant(target(0), 0, ro.handle).into(), gntst::BAD_HANDLE.into(), format_args!("unmap again"));
    h.aborts(read_faults(target(0)), format_args!("the target is unmapped again"));

    pin_limit(h, &table, good, target);
    maptrack_limit(h, &table, board);
}

/// Each entry maps at most 127 times writable and 127 read-only at once.
fn pin_limit(h: &mut Hostile<'_>, table: &Table, gref: u32, target: impl Fn(u64) -> u64) {
    let mut handles = [0u32; 2 * PIN_LIMIT];
    for (i, handle) in handles.iter_mut().enumerate() {
        let flags = gntmap::HOST_MAP | if i < PIN_LIMIT { 0 } else { gntmap::READONLY };
        let m = map_grant(target(i as u64), flags, gref, 0);
        *handle = m.handle;
        if m.status != 0 {
            h.expect(status(&m), 0, format_args!("map {i} of one entry"));
        }
    }
    let beyond = 2 * PIN_LIMIT as u64;
    h.expect(
        status(&map_grant(target(beyond), gntmap::HOST_MAP, gref, 0)),
        gntst::GENERAL_ERROR.into(),
        format_args!("a 128th writable map of one entry"),
    );
    h.expect(
        status(&map_grant(target(beyond), gntmap::HOST_MAP | gntmap::READONLY, gref, 0)),
        gntst::GENERAL_ERROR.into(),
        format_args!("a 128th read-only map of one entry"),
    );
    h.expect(
        table.flags(gref) as i64,
        (PERMIT_ACCESS | READING | WRITING) as i64,
        format_args!("the entry is read and written"),
    );
    let failed =
        handles.iter().enumerate().filter(|&(i, &handle)| unmap_grant(target(i as u64), 0, handle) != 0).count();
    h.expect(failed as i64, 0, format_args!("unmaps of the 254 maps that failed"));
    h.expect(table.flags(gref) as i64, PERMIT_ACCESS as i64, format_args!("the entry is released"));
}

static mut MAP_OPS: [MapGrantRef; MAX_MAPTRACK + 1] =
    [MapGrantRef { host_addr: 0, flags: 0, gref: 0, dom: 0, status: 0, handle: 0, dev_bus_addr: 0 }; MAX_MAPTRACK + 1];
static mut UNMAP_OPS: [UnmapGrantRef; MAX_MAPTRACK] =
    [UnmapGrantRef { host_addr: 0, dev_bus_addr: 0, handle: 0, status: 0 }; MAX_MAPTRACK];

/// One batch of 16385 maps: the last finds the maptrack full. One batch
/// unmaps them all.
fn maptrack_limit(h: &mut Hostile<'_>, table: &Table, board: &Board<'_>) {
    let refs = (MAX_MAPTRACK / PIN_LIMIT + 1) as u32;
    for gref in 100..100 + refs {
        table.grant(gref, PERMIT_ACCESS, 0, granted_page() >> 12);
    }
    // Past the first 256 pages of the region, which the cases above used.
    let base = board.unmapped() + (1 << 20);
    let maps = addr_of_mut!(MAP_OPS) as *mut MapGrantRef;
    for i in 0..=MAX_MAPTRACK {
        let op = MapGrantRef {
            host_addr: base + i as u64 * 0x1000,
            flags: gntmap::HOST_MAP,
            gref: 100 + (i / PIN_LIMIT) as u32,
            status: 0x7777,
            ..Default::default()
        };
        // SAFETY: index within the static array.
        unsafe { maps.add(i).write_volatile(op) };
    }
    let rc = hypercall(GRANT_TABLE_OP, [0, maps as u64, (MAX_MAPTRACK + 1) as u64, 0, 0]);
    h.expect(rc, 0, format_args!("a batch of {} maps", MAX_MAPTRACK + 1));
    // SAFETY: the array, as the hypervisor left it.
    let result = |i: usize| unsafe { maps.add(i).read_volatile() };
    let mapped = (0..MAX_MAPTRACK).filter(|&i| result(i).status == 0).count();
    h.expect(mapped as i64, MAX_MAPTRACK as i64, format_args!("maps done before the maptrack is full"));
    h.expect(status(&result(MAX_MAPTRACK)), gntst::NO_SPACE.into(), format_args!("the map beyond the maptrack"));

    let unmaps = addr_of_mut!(UNMAP_OPS) as *mut UnmapGrantRef;
    for i in 0..MAX_MAPTRACK {
        let m = result(i);
        let op = UnmapGrantRef { host_addr: m.host_addr, handle: m.handle, status: 0x7777, ..Default::default() };
        // SAFETY: index within the static array.
        unsafe { unmaps.add(i).write_volatile(op) };
    }
    let rc = hypercall(GRANT_TABLE_OP, [1, unmaps as u64, MAX_MAPTRACK as u64, 0, 0]);
    h.expect(rc, 0, format_args!("a batch of {MAX_MAPTRACK} unmaps"));
    // SAFETY: as above.
    let unmapped = (0..MAX_MAPTRACK).filter(|&i| unsafe { unmaps.add(i).read_volatile() }.status == 0).count();
    h.expect(unmapped as i64, MAX_MAPTRACK as i64, format_args!("unmaps done"));
    let busy = (100..100 + refs).filter(|&gref| table.flags(gref) != PERMIT_ACCESS).count();
    h.expect(busy as i64, 0, format_args!("entries still marked in use"));
}

/// Grant maps 1 GiB apart, each needing new stage-2 tables, until the
/// domain's table budget is spent: then -13 (no space) rather than the
/// hypervisor's heap running dry. Tables are not given back, so this
/// comes last.
pub fn table_budget(h: &mut Hostile<'_>, board: &Board<'_>) {
    const GIB: u64 = 1 << 30;
    const FAR: u64 = 4 << 40;
    const ATTEMPTS: usize = 1100;
    let table = Table { region: board.grant_region.0 };
    let refs = (ATTEMPTS / PIN_LIMIT + 1) as u32;
    for gref in 400..400 + refs {
        table.grant(gref, PERMIT_ACCESS, 0, granted_page() >> 12);
    }
    let mut handles = [0u32; ATTEMPTS];
    let mut mapped = 0;
    let last = loop {
        let m = map_grant(FAR + mapped as u64 * GIB, gntmap::HOST_MAP, 400 + (mapped / PIN_LIMIT) as u32, 0);
        if m.status != 0 || mapped + 1 == ATTEMPTS {
            break m.status;
        }
        handles[mapped] = m.handle;
        mapped += 1;
    };
    h.expect(last.into(), gntst::NO_SPACE.into(), format_args!("map {mapped}, 1 GiB apart from the others"));
    h.case(mapped > 100, format_args!("{mapped} scattered maps before the budget ran out"));
    // A map 1 GiB away needs two tables; the budget counts exactly, so a
    // table may be left: spend it 2 MiB beside the first map, which needs one.
    const BESIDE: usize = 4;
    let mut beside = [0u32; BESIDE];
    let gref = 400 + (mapped / PIN_LIMIT) as u32;
    let mut spent = 0;
    let last = loop {
        let m = map_grant(FAR + (spent as u64 + 1) * (2 << 20), gntmap::HOST_MAP, gref, 0);
        if m.status != 0 || spent == BESIDE {
            break m.status;
        }
        beside[spent] = m.handle;
        spent += 1;
    };
    h.expect(last.into(), gntst::NO_SPACE.into(), format_args!("map {spent} beside the first, in its 1 GiB"));
    let failed = (0..mapped).filter(|&i| unmap_grant(FAR + i as u64 * GIB, 0, handles[i]) != 0).count()
        + (0..spent).filter(|&i| unmap_grant(FAR + (i as u64 + 1) * (2 << 20), 0, beside[i]) != 0).count();
    h.expect(failed as i64, 0, format_args!("unmaps of the scattered maps that failed"));
    // Splitting a block of RAM needs tables too: ballooning now does nothing.
    let in_a_block = (board.ram_end() - (1 << 20)) >> 12;
    h.expect(reservation(1, in_a_block), 0, format_args!("decrease_reservation inside a 2 MiB block"));
    h.no_abort(read_faults(in_a_block << 12), format_args!("the page stays mapped"));
}
