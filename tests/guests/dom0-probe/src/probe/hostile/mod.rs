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
use super::abi::{self, Page, VERSION_4_17};
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

/// The run's tally, and the category under way.
pub struct Hostile<'r> {
    report: &'r mut Report,
    category: &'static str,
    cases: u32,
    passed: u32,
    total_cases: u32,
    total_passed: u32,
    categories: u32,
}

impl Hostile<'_> {
    /// Runs one category of cases, then the sanity call, and reports both.
    fn category(&mut self, name: &'static str, cases: impl FnOnce(&mut Self)) {
        self.category = name;
        (self.cases, self.passed) = (0, 0);
        cases(self);
        let (cases, passed) = (self.cases, self.passed);
        self.report.say(format_args!("hostile: {name}: {cases} cases, {passed} ok"));
        let version = abi::version();
        self.report.check(
            version == VERSION_4_17,
            format_args!("hostile: {name}: xen_version still answers afterwards ({version:#x})"),
        );
        self.total_cases += cases;
        self.total_passed += passed;
        self.categories += 1;
    }

    /// One case: `ok` says whether the hypervisor answered as expected.
    fn case(&mut self, ok: bool, what: fmt::Arguments<'_>) {
        self.cases += 1;
        if ok {
            self.passed += 1;
        } else {
            let category = self.category;
            self.report.check(false, format_args!("hostile: {category}: {what}"));
        }
    }

    /// A case whose answer is a number (an errno, a count, a status).
    fn expect(&mut self, got: i64, expected: i64, what: fmt::Arguments<'_>) {
        self.case(got == expected, format_args!("{what}: expected {expected}, got {got}"));
    }

    /// A case whose answer is an abort injected into Dom0: a synchronous
    /// external abort, which is what the hypervisor injects (a fault the
    /// CPU raised at EL1 by itself, say a stage-1 address-size fault,
    /// would prove nothing about the hypervisor).
    fn aborts(&mut self, esr: Option<u64>, what: fmt::Arguments<'_>) {
        const FAULT_STATUS: u64 = 0x3f;
        const SYNCHRONOUS_EXTERNAL_ABORT: u64 = 0x10;
        match esr {
            Some(esr) => self.case(
                esr & FAULT_STATUS == SYNCHRONOUS_EXTERNAL_ABORT,
                format_args!("{what}: expected the hypervisor's external abort, got ESR {esr:#x}"),
            ),
            None => self.case(false, format_args!("{what}: expected an abort, none came")),
        }
    }

    /// A case whose access must be emulated, not aborted.
    fn no_abort(&mut self, esr: Option<u64>, what: fmt::Arguments<'_>) {
        self.case(esr.is_none(), format_args!("{what}: expected no abort, got ESR {:#x}", esr.unwrap_or(0)));
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
    let mut h = Hostile { report, category: "", cases: 0, passed: 0, total_cases: 0, total_passed: 0, categories: 0 };
    for (name, cases) in CATEGORIES {
        h.category(name, |h| cases(h, board));
    }
    let (cases, passed, categories) = (h.total_cases, h.total_passed, h.categories);
    h.report.say(format_args!("hostile: total: {categories} categories, {cases} cases, {passed} ok"));
}
