//! `cargo bench-host region_search`: how the extended-region search
//! (`dom0::ext_regions::find`) grows with the number of free blocks (10^3 to
//! 10^6) and of excluded device ranges (10^2 to 10^4). The search sorts and
//! merges both lists, then walks them together, so its time should grow as
//! N log N with N = blocks + devices: the table prints the time per call,
//! that time divided by N log2 N (flat if it does), and each row's growth
//! against the previous one beside the growth N log N predicts.
//!
//! The inputs imitate a fragmented buddy allocator: blocks of 4 KiB to
//! 1 GiB, aligned to their size, sometimes touching, in free-list order
//! (grouped by size, not by address); devices of 4 KiB to 16 MiB scattered
//! over the same span. proptest's deterministic generator makes every run
//! search the same inputs.

use hypervisor::dom0::ext_regions::find;
use hypervisor::mm::range::PhysRange;
use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};
use std::hint::black_box;
use std::time::{Duration, Instant};

const PAGE: u64 = 4096;
/// Free blocks up to order 18 (1 GiB), as the frame allocator keeps them.
const MAX_ORDER: u64 = 18;
/// The IPA space searched: 48 bits hold a million blocks of this mix.
const IPA_LIMIT: u64 = 1 << 48;

/// `n` free blocks starting at 1 GiB, in free-list order, and the end of
/// the span they cover.
fn free_blocks(rng: &mut TestRng, n: usize) -> (Vec<PhysRange>, u64) {
    let mut blocks: Vec<(u64, PhysRange)> = Vec::with_capacity(n);
    let mut cursor: u64 = 1 << 30;
    for _ in 0..n {
        let order = rng.random_range(0..=MAX_ORDER);
        let size = PAGE << order;
        let start = cursor.next_multiple_of(size);
        blocks.push((order, PhysRange::new(start, start + size)));
        // Half the time the next block touches this one (and merges with
        // it in the search); otherwise a gap of up to this block's size.
        let gap = if rng.random_bool(0.5) { 0 } else { rng.random_range(0..=size / PAGE) * PAGE };
        cursor = start + size + gap;
    }
    let end = cursor;
    // Free lists: by order, each in address order.
    blocks.sort_by_key(|&(order, r)| (order, r.start));
    (blocks.into_iter().map(|(_, r)| r).collect(), end)
}

/// `m` device ranges of 4 KiB to 16 MiB anywhere in `[0, end)`, unsorted.
fn devices(rng: &mut TestRng, m: usize, end: u64) -> Vec<PhysRange> {
    (0..m)
        .map(|_| {
            let size = PAGE << rng.random_range(0..13);
            let start = rng.random_range(0..end / PAGE) * PAGE;
            PhysRange::new(start, start + size)
        })
        .collect()
}

/// The median time of one search, over enough calls to fill about a
/// quarter of a second (at least three).
fn time_search(free: &[PhysRange], exclude: &[PhysRange]) -> (Duration, usize) {
    let mut times = Vec::new();
    let budget = Instant::now();
    let mut regions = 0;
    while times.len() < 3 || (budget.elapsed() < Duration::from_millis(250) && times.len() < 1000) {
        let start = Instant::now();
        let found = find(black_box(free.iter().copied()), black_box(exclude), IPA_LIMIT);
        times.push(start.elapsed());
        regions = black_box(found).regions.len();
    }
    times.sort();
    (times[times.len() / 2], regions)
}

fn n_log_n(n: usize) -> f64 {
    n as f64 * (n as f64).log2()
}

fn main() {
    let block_counts = [1_000, 10_000, 100_000, 1_000_000];
    let device_counts = [100, 1_000, 10_000];
    println!("dom0::ext_regions::find, median time per call; N = free blocks + devices");
    println!(
        "{:>10} {:>8} {:>12} {:>16} {:>8} {:>12} {:>8}",
        "blocks", "devices", "time", "ns / N log2 N", "growth", "N log N gr.", "regions"
    );
    let mut rng = TestRng::deterministic_rng(RngAlgorithm::XorShift);
    let mut by_devices: Vec<Vec<f64>> = vec![Vec::new(); device_counts.len()];
    for (d, &m) in device_counts.iter().enumerate() {
        let mut previous: Option<(usize, f64)> = None;
        for &n in &block_counts {
            let (free, end) = free_blocks(&mut rng, n);
            let exclude = devices(&mut rng, m, end);
            let (time, regions) = time_search(&free, &exclude);
            let ns = time.as_nanos() as f64;
            let total = n + m;
            let (growth, predicted) = match previous {
                Some((t, p)) => (format!("{:.2}", ns / p), format!("{:.2}", n_log_n(total) / n_log_n(t))),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{n:>10} {m:>8} {:>12} {:>16.2} {growth:>8} {predicted:>12} {regions:>8}",
                format!("{:.1} us", ns / 1e3),
                ns / n_log_n(total)
            );
            previous = Some((total, ns));
            by_devices[d].push(ns);
        }
    }
    println!();
    println!("Growth with the devices alone (blocks fixed), against N log N:");
    for (b, &n) in block_counts.iter().enumerate() {
        let cells: Vec<String> = device_counts
            .windows(2)
            .enumerate()
            .map(|(d, w)| {
                let measured = by_devices[d + 1][b] / by_devices[d][b];
                let predicted = n_log_n(n + w[1]) / n_log_n(n + w[0]);
                format!("{} -> {} devices: {measured:.2} (N log N {predicted:.2})", w[0], w[1])
            })
            .collect();
        println!("{n:>10} blocks: {}", cells.join("; "));
    }
}
