//! `cargo bench-host region_search`: how the extended-region search
//! (`dom0::ext_regions::find`) grows with the number of free blocks (10^3 to
//! 10^6) and of excluded device ranges (10^2 to 10^4). The search sorts and
//! merges both lists, then walks them together, so its time should grow as
//! N log N with N = blocks + devices: the table prints the time per call,
//! that time divided by N log2 N (flat if it does), and each row's growth
//! against the previous one beside the growth N log N predicts.
//!
//! The inputs imitate a fragmented buddy allocator: blocks of 4 KiB to
//! 1 GiB, aligned to their size, sometimes touching; devices of 4 KiB to
//! 16 MiB scattered over the same span. The blocks go in twice: ascending,
//! as the boot passes them (`FrameAllocator::free_ranges` walks the bitmaps
//! in address order), and grouped by size, as free lists hold them (the
//! search's sort then has real work). proptest's deterministic generator,
//! seeded per size, makes every run search the same inputs.

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

/// The same inputs in every run: a generator seeded with `what` and `n`.
fn rng(what: u8, n: usize) -> TestRng {
    let mut seed = [what; 16];
    seed[8..].copy_from_slice(&(n as u64).to_le_bytes());
    TestRng::from_seed(RngAlgorithm::XorShift, &seed)
}

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

/// One row's figure: the time and its growth over the previous row's.
struct Cell {
    ns: f64,
    n: usize,
}

impl Cell {
    /// `time  ns/NlogN  growth  predicted` for this cell after `previous`.
    fn show(&self, previous: Option<&Cell>) -> String {
        let (growth, predicted) = match previous {
            Some(p) => (format!("{:.2}", self.ns / p.ns), format!("{:.2}", n_log_n(self.n) / n_log_n(p.n))),
            None => ("-".into(), "-".into()),
        };
        let time = format!("{:.1} us", self.ns / 1e3);
        format!("{time:>11} {:>7.2} {growth:>6} {predicted:>6}", self.ns / n_log_n(self.n))
    }
}

fn main() {
    let block_counts = [1_000, 10_000, 100_000, 1_000_000];
    let device_counts = [100, 1_000, 10_000];
    println!("dom0::ext_regions::find, median time per call; N = free blocks + devices;");
    println!("ns/NlgN = time / (N log2 N); growth = time over the row above; NlgN = what N log N predicts");
    println!(
        "{:>8} {:>7} | {:^33} | {:^33} | regions",
        "", "", "blocks ascending (as at boot)", "blocks grouped by size"
    );
    println!(
        "{:>8} {:>7} | {:>11} {:>7} {:>6} {:>6} | {:>11} {:>7} {:>6} {:>6} |",
        "blocks", "devices", "time", "ns/NlgN", "growth", "NlgN", "time", "ns/NlgN", "growth", "NlgN"
    );
    // Ascending times by device count, then block count.
    let mut ascending: Vec<Vec<f64>> = vec![Vec::new(); device_counts.len()];
    for (d, &m) in device_counts.iter().enumerate() {
        let mut previous: Option<[Cell; 2]> = None;
        for &n in &block_counts {
            let (by_size, end) = free_blocks(&mut rng(1, n), n);
            let mut sorted = by_size.clone();
            sorted.sort_unstable();
            let exclude = devices(&mut rng(2, n + m), m, end);
            let (t_sorted, regions) = time_search(&sorted, &exclude);
            let (t_by_size, _) = time_search(&by_size, &exclude);
            let cells = [t_sorted, t_by_size].map(|t| Cell { ns: t.as_nanos() as f64, n: n + m });
            let [a, b] = &cells;
            println!(
                "{n:>8} {m:>7} | {} | {} | {regions}",
                a.show(previous.as_ref().map(|p| &p[0])),
                b.show(previous.as_ref().map(|p| &p[1]))
            );
            ascending[d].push(a.ns);
            previous = Some(cells);
        }
    }
    println!();
    println!("Growth with the devices alone (the same blocks, ascending), against N log N:");
    for (b, &n) in block_counts.iter().enumerate() {
        let cells: Vec<String> = device_counts
            .windows(2)
            .enumerate()
            .map(|(d, w)| {
                let measured = ascending[d + 1][b] / ascending[d][b];
                let predicted = n_log_n(n + w[1]) / n_log_n(n + w[0]);
                format!("{} -> {} devices: {measured:.2} (N log N {predicted:.2})", w[0], w[1])
            })
            .collect();
        println!("{n:>8} blocks: {}", cells.join("; "));
    }
}
