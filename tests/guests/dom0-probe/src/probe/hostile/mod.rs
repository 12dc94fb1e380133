//! `probe=hostile`: Dom0 as an adversary. Category by category, every
//! hypercall and sub-op the hypervisor implements gets bad arguments, and
//! Dom0 touches memory, GIC registers, system registers and firmware calls
//! it has no business with. Each case states the one answer it expects (an
//! errno as Xen defines it, a grant status, an injected abort, a value
//! read); after each category `xen_version` must still answer. Failures
//! print as `probe: FAIL: hostile: ...`, and each category ends with
//! `probe: hostile: <category>: N cases, N ok`.

mod access;
mod calls;
mod firmware;
mod gic;
mod grants;
mod mmu;
mod physmap;

use super::Report;
use super::abi::{self, Page};
use core::fmt;
use core::ptr::addr_of_mut;

/// What the tree tells Dom0 about the machine.
pub struct Board<'a> {
    /// Dom0's RAM banks.
    pub ram: &'a [(u64, u64)],
    /// `/hypervisor` reg[0]: the grant-table region, inside the IPA range
    /// of the hypervisor's own image.
    pub grant_region: (u64, u64),
    /// The extended regions: free, unmapped IPA space.
    pub regions: &'a [(u64, u64)],
    pub gicd: u64,
    /// The redistributor region as the tree gives it (room for more
    /// redistributors than the board has).
    pub gicr: (u64, u64),
    /// A passed-through device's registers (virtio-mmio).
    pub device: u64,
    /// The vCPUs' MPIDRs from `/cpus`, unused slots `u64::MAX`.
    pub mpidrs: [u64; 8],
}

impl Board<'_> {
    fn in_ram(&self, address: u64) -> bool {
        self.ram.iter().any(|&(s, e)| (s..e).contains(&address))
    }

    /// The end of a RAM bank with no RAM after it: a struct placed just
    /// below it runs into unmapped space.
    fn ram_end(&self) -> u64 {
        self.ram.iter().map(|&(_, e)| e).find(|&e| !self.in_ram(e)).expect("RAM ends somewhere")
    }

    /// An IPA nothing is mapped at: the first extended region, if any.
    fn unmapped(&self) -> u64 {
        self.regions.first().map_or(abi::NOTHING, |&(s, _)| s)
    }

    /// The hypervisor's image just past the grant region.
    fn image_past_grants(&self) -> u64 {
        self.grant_region.1
    }

    fn vcpus(&self) -> u32 {
        self.mpidrs.iter().filter(|&&m| m != u64::MAX).count() as u32
    }
}

/// Pages of the probe's own RAM the cases hand to the hypervisor.
static mut SHARED_INFO: Page = Page([0; 512]);
static mut VCPU_INFO: Page = Page([0; 512]);
static mut GRANTED: Page = Page([0; 512]);
static mut SCRATCH: Page = Page([0; 512]);

fn shared_info_page() -> u64 {
    addr_of_mut!(SHARED_INFO) as u64
}

fn vcpu_info_page() -> u64 {
    addr_of_mut!(VCPU_INFO) as u64
}

/// A page granted to ourselves, whose contents the cases recognise.
fn granted_page() -> u64 {
    addr_of_mut!(GRANTED) as u64
}

/// A page the cases balloon out and back, or hand out as a buffer.
fn scratch_page() -> u64 {
    addr_of_mut!(SCRATCH) as u64
}

#[path = "../../../../common/hostile_tally.rs"]
mod tally;

/// The run's tally: the probe's report, categories and cases.
pub type Hostile<'r> = tally::Tally<'r, Report>;

impl tally::Reporter for Report {
    fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) {
        Report::check(self, ok, what);
    }
    fn say(&mut self, what: fmt::Arguments<'_>) {
        Report::say(self, what);
    }
}

/// A category's cases.
type Cases = fn(&mut Hostile<'_>, &Board<'_>);

/// The categories in the order they run: each leaves what the next rely
/// on (shared_info and grant frames placed by add_to_physmap); the last
/// spends the stage-2 table budget, so nothing that maps pages may follow.
const CATEGORIES: [(&str, Cases); 14] = [
    ("memory outside Dom0", access::run),
    ("unknown calls and sub-ops", calls::unknown),
    ("bad pointers", calls::bad_pointers),
    ("add_to_physmap", physmap::run),
    ("wrong domain ids", calls::wrong_domains),
    ("out-of-range numbers", calls::out_of_range),
    ("huge counts", calls::huge_counts),
    ("malformed arguments", calls::malformed),
    ("double registrations", calls::double_registrations),
    ("grant maps and unmaps", grants::run),
    ("GIC registers", gic::run),
    ("SGI system registers", gic::sgi_registers),
    ("PSCI", firmware::run),
    ("stage-2 table budget", grants::table_budget),
];

/// Runs every category against the hypervisor.
pub fn run(report: &mut Report, board: &Board<'_>) {
    // The answers expected are this hypervisor's. Xen 4.17 differs in
    // hundreds of them (it maps shared_info and grant frames anywhere,
    // starts vCPUs anywhere, implements sub-ops this one does not...).
    if !abi::hypervisor_is_ours() {
        report.say(format_args!("hostile: not run: the answers expected are this hypervisor's"));
        return;
    }
    report.say(format_args!("hostile: against this hypervisor"));
    let mut h = Hostile::new(report, abi::version);
    for (name, cases) in CATEGORIES {
        h.category(name, |h| cases(h, board));
    }
    h.finish();
}
