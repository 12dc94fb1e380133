use super::*;
use crate::mm::range::{Ipa, Pa};
use crate::mm::stage2::{Geometry, Stage2Map, Tlb};
use proptest::prelude::*;

const MIB: u64 = 1 << 20;
const RAM_BASE: u64 = 0x6000_0000;
const SECOND_BANK: u64 = 0x1_0000_0000;
const WINDOW: GuestRange = GuestRange::new(0x4020_0000, 0x4024_0000);
/// The image's frames: the same addresses as the window's IPAs, as on the board.
const IMAGE: PhysRange = PhysRange::new(0x4020_0000, 0x4060_0000);
const HEAP: PhysRange = PhysRange::new(0x4100_0000, 0x4200_0000);
const GRANT_FRAMES: u64 = 0x4300_0000;
/// Unmapped IPA space for grant mappings, like an extended region.
const SCRATCH: u64 = 0x8000_0000;
const DEVICE_BASE: u64 = 0x900_0000;

struct NoTlb;

impl Tlb for NoTlb {
    fn invalidate_ipa(&self, _: Ipa) {}
    fn publish(&self) {}
}

fn page(at: u64) -> PhysRange {
    PhysRange::new(at, at + PAGE)
}

fn ipa_page(at: u64) -> GuestRange {
    GuestRange::new(at, at + PAGE)
}

/// A guest's stage 2 as the hypervisor leaves it after some traffic, and
/// what the audit is told about it.
struct Scene {
    s2: Stage2Map,
    /// Its RAM, 1:1.
    ram: Vec<PhysRange>,
    devices: Vec<PhysRange>,
    grant_frames: Vec<PhysRange>,
    /// Ballooned-out pages: back in the allocator (free), or on their way.
    free: Vec<PhysRange>,
    in_flight: Vec<u64>,
    /// Pages of RAM mapped elsewhere through a grant.
    granted: Vec<u64>,
    shared_mapped: u64,
}

#[derive(Debug, Clone)]
struct Traffic {
    first_bank_pages: u64,
    second_bank_pages: u64,
    device_sizes: Vec<u64>,
    ballooned: Vec<u64>,
    grants: Vec<(u64, bool)>,
    shared_slots: Vec<u64>,
}

fn traffic() -> impl Strategy<Value = Traffic> {
    (
        1u64..2048,
        0u64..1024,
        proptest::collection::vec(1u64..0x3000, 0..4),
        proptest::collection::vec(0u64..4096, 0..24),
        proptest::collection::vec((0u64..4096, any::<bool>()), 0..12),
        proptest::collection::vec(0u64..64, 0..8),
    )
        .prop_map(|(first_bank_pages, second_bank_pages, device_sizes, ballooned, grants, shared_slots)| Traffic {
            first_bank_pages,
            second_bank_pages,
            device_sizes,
            ballooned,
            grants,
            shared_slots,
        })
}

impl Scene {
    fn new(t: &Traffic) -> Self {
        let mut ram = vec![PhysRange::new(RAM_BASE, RAM_BASE + t.first_bank_pages * PAGE)];
        if t.second_bank_pages > 0 {
            ram.push(PhysRange::new(SECOND_BANK, SECOND_BANK + t.second_bank_pages * PAGE));
        }
        let devices: Vec<PhysRange> = t
            .device_sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let start = DEVICE_BASE + i as u64 * MIB + 0x10;
                PhysRange::new(start, start + size)
            })
            .collect();
        let mut s2 = Stage2Map::new(Geometry::for_ipa_bits(44));
        ram.iter().for_each(|&bank| s2.map(bank, Kind::Ram).unwrap());
        devices.iter().for_each(|&d| s2.map(d, Kind::Device).unwrap());
        let ram_page = |n: u64| {
            let pages: Vec<u64> = ram.iter().flat_map(|b| (b.start..b.end).step_by(PAGE as usize)).collect();
            pages[(n % pages.len() as u64) as usize]
        };
        let mut scene = Scene {
            s2,
            grant_frames: (0..64).map(|i| page(GRANT_FRAMES + i * PAGE)).collect(),
            free: Vec::new(),
            in_flight: Vec::new(),
            granted: Vec::new(),
            shared_mapped: 0,
            ram: ram.clone(),
            devices,
        };
        for (i, &n) in t.ballooned.iter().enumerate() {
            let at = ram_page(n);
            if scene.s2.unmap_page(Ipa(at), &NoTlb).is_ok() {
                if i % 4 == 3 { scene.in_flight.push(at) } else { scene.free.push(page(at)) }
            }
        }
        for (slot, &(n, writable)) in t.grants.iter().enumerate() {
            let frame = ram_page(n);
            if scene.s2.translate(Ipa(frame)).is_some() {
                let at = SCRATCH + slot as u64 * PAGE;
                scene.s2.map_page(Ipa(at), Pa(frame), Kind::Granted { writable }, &NoTlb).unwrap();
                scene.granted.push(frame);
            }
        }
        for &slot in &t.shared_slots {
            let frame = scene.grant_frames[slot as usize].start;
            if scene.s2.map_page(Ipa(WINDOW.start + slot * PAGE), Pa(frame), Kind::Ram, &NoTlb).is_ok() {
                scene.shared_mapped += 1;
            }
        }
        scene
    }

    /// The hypervisor's memory, most specific first.
    fn owned(&self) -> Vec<Owned> {
        let mut list: Vec<Owned> =
            self.s2.table_pages().map(|t| Owned { range: page(t), what: owned::TABLE }).collect();
        list.extend(self.grant_frames.iter().map(|&range| Owned { range, what: owned::GRANT_FRAME }));
        list.push(Owned { range: IMAGE, what: owned::IMAGE });
        list.push(Owned { range: HEAP, what: owned::HEAP });
        list.extend(self.free.iter().map(|&range| Owned { range, what: owned::FREE }));
        list
    }

    fn audit(&self) -> Result<Summary, Violation> {
        let allowed = Allowed {
            ram: &self.ram.iter().map(|&bank| GuestRange::identity_of(bank)).collect::<Vec<_>>(),
            devices: &self.devices,
            remapped_devices: &[],
            shared_frames: &self.grant_frames,
            shared_window: WINDOW,
            direct_mapped: true,
            foreign: &[],
        };
        audit(&self.s2.leaves(), &allowed, &self.owned())
    }

    /// A page of the first bank still mapped 1:1 (the first from `n` on).
    /// A page of the first bank still mapped 1:1, from the `n`th on; none
    /// when the traffic ballooned the whole bank out (a one-page bank can be).
    fn mapped_ram_page(&self, n: u64) -> Option<u64> {
        let bank = self.ram[0];
        let pages = bank.size() / PAGE;
        (0..pages)
            .map(|i| bank.start + (n.wrapping_add(i) % pages) * PAGE)
            .find(|&p| self.s2.translate(Ipa(p)).is_some_and(|l| l.pa == Pa(p)))
    }

    /// Maps `pa` at an unused IPA (in the scratch space past the grants, or
    /// in the window when `in_window`), as `kind`: the leak under test.
    fn leak(&mut self, pa: u64, kind: Kind, in_window: bool) -> u64 {
        let at = if in_window {
            (0..64).map(|i| WINDOW.start + i * PAGE).find(|&a| self.s2.translate(Ipa(a)).is_none()).unwrap()
        } else {
            SCRATCH + 0x100_0000
        };
        self.s2.map_page(Ipa(at), Pa(pa), kind, &NoTlb).unwrap();
        at
    }
}

proptest! {
    /// After any traffic the hypervisor itself would make, the audit passes
    /// and counts every byte where it belongs.
    #[test]
    fn legitimate_traffic_passes_with_exact_figures(t in traffic()) {
        let scene = Scene::new(&t);
        let summary = scene.audit().unwrap();
        let ram: u64 = scene.ram.iter().map(|b| b.size()).sum();
        let holes = (scene.free.len() + scene.in_flight.len()) as u64 * PAGE;
        prop_assert_eq!(summary.ram_bytes, ram - holes);
        let devices: u64 = scene.devices.iter().map(|d| d.expand_to_alignment(PAGE).unwrap().size()).sum();
        prop_assert_eq!(summary.device_bytes, devices);
        prop_assert_eq!(summary.granted_bytes, scene.granted.len() as u64 * PAGE);
        prop_assert_eq!(summary.shared_bytes, scene.shared_mapped * PAGE);
        let tables = summary.owned.iter().find(|(what, _)| *what == owned::TABLE).unwrap().1;
        prop_assert_eq!(tables, scene.s2.tables() as u64 * PAGE);
    }

    /// One leak of each kind on top of that traffic is caught, and named.
    #[test]
    fn every_leak_is_caught_and_named(t in traffic(), leak in 0u8..13, pick in any::<u64>(), writable in any::<bool>()) {
        let mut scene = Scene::new(&t);
        let granted = Kind::Granted { writable };
        let tables: Vec<u64> = scene.s2.table_pages().collect();
        let table = tables[(pick % tables.len() as u64) as usize];
        let grant_frame = GRANT_FRAMES + (pick % 64) * PAGE;
        let (at, expected) = match leak {
            0 => (scene.leak(table, Kind::Ram, false), Err(owned::TABLE)),
            1 => (scene.leak(table, granted, false), Err(owned::TABLE)),
            2 => (scene.leak(table, Kind::Ram, true), Err(owned::TABLE)),
            3 => (scene.leak(grant_frame, Kind::Ram, false), Err(owned::GRANT_FRAME)),
            4 => (scene.leak(grant_frame, granted, true), Err(owned::GRANT_FRAME)),
            5 => (scene.leak(HEAP.start + (pick % 4096) * PAGE, Kind::Ram, pick % 2 == 0), Err(owned::HEAP)),
            6 => (scene.leak(IMAGE.start + (pick % 1024) * PAGE, granted, false), Err(owned::IMAGE)),
            7 => match scene.free.first() {
                Some(f) => {
                    let f = f.start;
                    (scene.leak(f, if pick % 2 == 0 { Kind::Ram } else { granted }, false), Err(owned::FREE))
                }
                None => return Ok(()),
            },
            8 => match scene.in_flight.first() {
                Some(&f) => (scene.leak(f, granted, false), Ok(Violation::GrantOfAbsentFrame as fn(Extent) -> Violation)),
                None => return Ok(()),
            },
            9 => match scene.mapped_ram_page(pick) {
                Some(frame) => (scene.leak(frame, Kind::Ram, false), Ok(Violation::NotOneToOne as fn(Extent) -> Violation)),
                None => return Ok(()),
            },
            10 => match scene.mapped_ram_page(pick) {
                Some(frame) => {
                    (scene.leak(frame, granted, true), Ok(Violation::GrantInSharedWindow as fn(Extent) -> Violation))
                }
                None => return Ok(()),
            },
            11 => {
                // Nobody's memory: at its own address as RAM, or granted.
                let frame = 0x7000_0000 + (pick % 16) * PAGE;
                let at = if pick % 2 == 0 {
                    scene.s2.map_page(Ipa(frame), Pa(frame), Kind::Ram, &NoTlb).unwrap();
                    frame
                } else {
                    scene.leak(frame, granted, false)
                };
                (at, Ok(Violation::NotGuestRam as fn(Extent) -> Violation))
            }
            _ => {
                let at = DEVICE_BASE + 0x80_0000;
                scene.s2.map(page(at), Kind::Device).unwrap();
                (at, Ok(Violation::UnknownDevice as fn(Extent) -> Violation))
            }
        };
        let found = scene.audit().unwrap_err();
        match (found, expected) {
            (Violation::HypervisorMemory { mapping, owned }, Err(what)) => {
                prop_assert_eq!(owned.what, what);
                prop_assert!(mapping.ipa.contains(at), "{} at {:#x}", found, at);
            }
            (found, Ok(violation)) => {
                let mapping = match found {
                    Violation::HypervisorMemory { mapping, .. } => mapping,
                    Violation::NotOneToOne(m)
                    | Violation::NotGuestRam(m)
                    | Violation::UnknownDevice(m)
                    | Violation::GrantOfAbsentFrame(m)
                    | Violation::GrantInSharedWindow(m) => m,
                };
                prop_assert_eq!(found, violation(mapping), "leak {}", leak);
                prop_assert!(mapping.ipa.contains(at));
            }
            (found, expected) => prop_assert!(false, "leak {}: found {}, expected {:?}", leak, found, expected.err()),
        }
    }
}

#[test]
fn a_device_seen_elsewhere_is_not_one_to_one() {
    let mut scene = Scene::new(&Traffic {
        first_bank_pages: 16,
        second_bank_pages: 0,
        device_sizes: vec![0x100],
        ballooned: vec![],
        grants: vec![],
        shared_slots: vec![],
    });
    let at = scene.leak(DEVICE_BASE, Kind::Device, false);
    let extent = Extent { ipa: ipa_page(at), pa: Pa(DEVICE_BASE), kind: Kind::Device, granule: PAGE };
    assert_eq!(scene.audit(), Err(Violation::NotOneToOne(extent)));
}

#[test]
fn sizes_read_exactly() {
    let shown = |bytes: u64| Size(bytes).to_string();
    assert_eq!(shown(0), "0 KiB");
    assert_eq!(shown(4096), "4 KiB");
    assert_eq!(shown(16 * MIB), "16 MiB");
    assert_eq!(shown((513 << 30) + 112 * MIB + 156 * 1024), "513 GiB + 112 MiB + 156 KiB");
    assert_eq!(shown((1 << 30) + 4096), "1 GiB + 4 KiB");
}

#[test]
fn the_report_reads_as_a_sentence() {
    let scene = Scene::new(&Traffic {
        first_bank_pages: 512,
        second_bank_pages: 0,
        device_sizes: vec![0x100],
        ballooned: vec![3],
        grants: vec![(7, true)],
        shared_slots: vec![0, 1],
    });
    let summary = scene.audit().unwrap();
    let tables = scene.s2.tables() * 4;
    assert_eq!(
        summary.to_string(),
        format!(
            "{} mappings: RAM 1 MiB + 1020 KiB, devices 4 KiB, granted 4 KiB, shared 8 KiB; none reaches the \
             hypervisor's other memory: stage-2 tables {tables} KiB, grant-table frames 256 KiB, image 4 MiB, \
             heap 16 MiB, free memory 4 KiB",
            summary.mappings
        )
    );
    let violation = Violation::HypervisorMemory {
        mapping: Extent { ipa: ipa_page(SCRATCH), pa: Pa(HEAP.start), kind: Kind::Ram, granule: PAGE },
        owned: Owned { range: HEAP, what: owned::HEAP },
    };
    assert_eq!(
        violation.to_string(),
        "IPA 0x80000000->0x80001000 -> 0x41000000 (Ram) reaches the hypervisor's heap at 0x41000000->0x42000000"
    );
}
