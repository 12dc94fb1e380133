//! Fuzzing of the pure modules on the host, on stable Rust: seeded random
//! and mutated inputs for a set time, every invariant checked on every case.
//! Not coverage-guided (cargo-fuzz needs nightly), so inputs are built from
//! valid trees and command lines and then mutated, which reaches deep code.
//!
//! The suite runs each target for `FUZZ_SECONDS` (default 1) with a fixed
//! seed; for a long run:
//!
//! ```text
//! FUZZ_SECONDS=600 FUZZ_SEED=7 cargo test --release --lib fuzz -- --nocapture --test-threads 1
//! ```

use crate::cmdline::{self, Options};
use crate::dom0::ext_regions;
use crate::dt::host::HostTree;
use crate::dt::testing::{blob, node, sprinkle_nops, virt};
use crate::mm::range::PhysRange;
use std::time::{Duration, Instant};

mod hypercalls;

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

fn budget() -> Duration {
    let seconds = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    Duration::from_secs_f64(seconds)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x9e37_79b9_7f4a_7c15) | 1
}

/// Runs `case` with fresh randomness until the budget is spent; reports the
/// count, or on a failure how far and how long it took to find.
fn run(name: &str, mut case: impl FnMut(&mut Rng)) {
    let mut rng = Rng(seed());
    let start = Instant::now();
    let mut executions = 0u64;
    while executions < 100 || start.elapsed() < budget() {
        if let Err(failure) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&mut rng))) {
            let seconds = start.elapsed().as_secs_f64();
            println!("fuzz {name}: failed at execution {} after {seconds:.3} s, seed {}", executions + 1, seed());
            std::panic::resume_unwind(failure);
        }
        executions += 1;
    }
    println!("fuzz {name}: {executions} executions in {:.1} s, seed {}", start.elapsed().as_secs_f64(), seed());
}

/// Byte-level mutations of a blob: flips, overwrites with interesting
/// values, truncation, duplication of a chunk.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(8) {
        if data.is_empty() {
            data.push(rng.next() as u8);
        }
        let at = rng.below(data.len() as u64) as usize;
        match rng.below(5) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = [0, 0xff, 0x7f, 0x80, 1, 2, 3, 4, 9][rng.below(9) as usize],
            2 => {
                let word = [0u32, 1, 2, 3, 4, 9, 0xffff_ffff, 0x8000_0000][rng.below(8) as usize].to_be_bytes();
                let at = at & !3;
                let end = (at + 4).min(data.len());
                data[at..end].copy_from_slice(&word[..end - at]);
            }
            3 => data.truncate(at),
            _ => {
                let len = rng.below(64).min((data.len() - at) as u64) as usize;
                let chunk = data[at..at + len].to_vec();
                let to = rng.below(data.len() as u64) as usize;
                data.splice(to..to, chunk);
            }
        }
    }
}

/// A random but valid host tree: banks, reserved memory, modules, cells.
fn random_tree(rng: &mut Rng) -> Vec<u8> {
    let banks: Vec<(u64, u64)> = (0..1 + rng.below(4))
        .map(|i| (0x4000_0000 + i * 0x1_0000_0000 + rng.below(16) * 0x10_0000, (1 + rng.below(2048)) * 0x10_0000))
        .collect();
    let mut tree = virt(&banks);
    if rng.chance(2) {
        let start = banks[0].0 + rng.below(banks[0].1 / 0x1000) * 0x1000;
        tree = tree.child(
            node("reserved-memory")
                .cells("#address-cells", &[2])
                .cells("#size-cells", &[2])
                .flag("ranges")
                .child(node("r@0").reg64(&[(start, 0x1000 * (1 + rng.below(1024)))])),
        );
    }
    if rng.chance(2) {
        tree = tree.edit_child("chosen", |c| {
            c.cells("#address-cells", &[2])
                .cells("#size-cells", &[2])
                .str("xen,xen-bootargs", "loglvl=all ext-regions=no")
                .child(
                    node("module@42000000")
                        .strs("compatible", &["multiboot,kernel", "multiboot,module"])
                        .reg64(&[(0x4200_0000, 1 + rng.below(1 << 24))]),
                )
        });
    }
    let nops = rng.below(3) as usize;
    let b = blob(&tree, &[(banks[0].0, 0x1000)]);
    if nops > 0 { sprinkle_nops(&b, nops) } else { b }
}

#[test]
fn fuzz_device_tree_reader() {
    run("device tree reader", |rng| {
        let mut data =
            if rng.chance(8) { (0..rng.below(512)).map(|_| rng.next() as u8).collect() } else { random_tree(rng) };
        if rng.chance(4) || data.len() < 40 {
            mutate(rng, &mut data);
        }
        if let Ok(tree) = HostTree::parse(&data) {
            assert!(!tree.banks.is_empty());
            assert!(tree.banks.iter().all(|b| !b.is_empty() && tree.ram.contains_range(b)));
            assert!(tree.modules.iter().all(|m| !m.range.is_empty()));
        }
    });
}

#[test]
fn fuzz_dom0_tree_generation() {
    run("Dom0 tree generation", |rng| {
        let host = random_tree(rng);
        let fdt = dtoolkit::fdt::Fdt::new(&host).expect("random_tree makes valid trees");
        let banks = [PhysRange::new(0x6000_0000, 0x6000_0000 + (1 + rng.below(64)) * 0x20_0000)];
        let regions: Vec<PhysRange> =
            (0..rng.below(130)).map(|i| PhysRange::new((i + 8) << 32, ((i + 8) << 32) + (64 << 20))).collect();
        let spec = crate::dt::dom0::Dom0Tree {
            banks: &banks,
            bootargs: rng.chance(2).then_some("console=hvc0"),
            initrd: rng.chance(2).then_some(PhysRange::new(0x6100_0000, 0x6100_1000)),
            grant_region: PhysRange::new(0x4020_0000, 0x4024_0000),
            extended_regions: &regions,
            event_ppi: rng.below(16) as u32,
            hidden: &["/pl011@9000000"],
            gic: "/intc@8000000",
            cpus: rng.chance(2).then_some(&[0][..]),
        };
        let out = crate::dt::dom0::build(&fdt, &spec).expect("virt trees have a GIC");
        let tree = HostTree::parse(&out).expect("Dom0's tree is always re-readable");
        assert_eq!(tree.banks.as_slice(), &banks);
        assert!(tree.modules.is_empty());
        let reg = dtoolkit::fdt::Fdt::new(&out).unwrap().find_node("/hypervisor").unwrap();
        use dtoolkit::{Node, Property};
        assert_eq!(reg.property("reg").unwrap().value().len(), 16 * (1 + regions.len()));
    });
}

#[test]
fn fuzz_command_line() {
    const PIECES: [&str; 16] = [
        "ext-regions",
        "ext_regions",
        "=",
        "no",
        "yes",
        "0x",
        "1G",
        ",",
        "dom0_mem",
        "loglvl",
        "all",
        " ",
        "\"",
        "no-",
        "9",
        "\u{e9}",
    ];
    run("command line", |rng| {
        let line: String = (0..rng.below(40)).map(|_| PIECES[rng.below(16) as usize]).collect();
        let parsed = Options::parse(&line);
        assert!(parsed.diagnostics.len() + parsed.dropped <= cmdline::tokens(&line).count());
        if let cmdline::ExtRegions::Malformed { why } = parsed.options.ext_regions {
            assert!(!why.is_empty());
        }
        assert!(parsed.options.dom0_mem > 0);
    });
}

/// Up to `count` ranges of 1 to `longest` MiB, starting below `max` MiB.
fn mib_ranges(rng: &mut Rng, count: u64, max: u64, longest: u64) -> Vec<PhysRange> {
    (0..rng.below(count + 1))
        .map(|_| {
            let start = rng.below(max) << 20;
            PhysRange::new(start, start + ((1 + rng.below(longest)) << 20))
        })
        .collect()
}

/// Free memory past the region cap: 150 to 260 teeth of 60 to 72 MiB (many
/// of one size once rounded, so the tie-break at the cut matters), 1 to 8
/// MiB apart, with a few longer ranges laid over them.
fn comb(rng: &mut Rng) -> Vec<PhysRange> {
    let mut at = 0;
    let mut free: Vec<PhysRange> = (0..150 + rng.below(111))
        .map(|_| {
            at += 1 + rng.below(8);
            let size = 60 + rng.below(13);
            let tooth = PhysRange::new(at << 20, (at + size) << 20);
            at += size;
            tooth
        })
        .collect();
    free.extend(mib_ranges(rng, 4, at, 512));
    free
}

/// The search on small MiB-granular layouts, compared whole (regions and
/// `dropped`) with the reference model: scattered ranges, or a comb past
/// the cap, below a limit that sometimes cuts them.
#[test]
fn fuzz_region_search() {
    use ext_regions::reference;
    run("region search", |rng| {
        let (free, exclude, limit) = if rng.chance(2) {
            let free = mib_ranges(rng, 300, 1 << 14, 1 << 12);
            (free, mib_ranges(rng, 100, 1 << 14, 1 << 12), 1u64 << (32 + rng.below(13)))
        } else {
            let free = comb(rng);
            let limit = if rng.chance(4) { 1u64 << (30 + rng.below(6)) } else { 1 << 40 };
            (free, mib_ranges(rng, 20, 1 << 14, 32), limit)
        };
        let found = ext_regions::find(free.iter().copied(), &exclude, limit);
        assert!(found.regions.len() <= ext_regions::MAX_REGIONS);
        for w in found.regions.windows(2) {
            assert!(w[0].end <= w[1].start);
        }
        for reg in &found.regions {
            assert!(reg.start % ext_regions::REGION_ALIGN == 0 && reg.end % ext_regions::REGION_ALIGN == 0);
            assert!(reg.size() >= ext_regions::MIN_REGION_SIZE && reg.end <= limit);
            assert!(!exclude.iter().any(|e| e.overlaps(reg)));
            assert!(free.iter().any(|f| f.contains(reg.start)) && free.iter().any(|f| f.contains(reg.end - 1)));
        }
        let expected = reference::regions(&free, &exclude, limit, 1 << 20);
        if let Some(diff) = reference::difference(&found, &expected) {
            panic!("{diff} ({} free ranges, {} excluded, limit {limit:#x})", free.len(), exclude.len());
        }
    });
}
