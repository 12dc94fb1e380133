//! The hostile probes' bookkeeping (the Dom0 probe's `probe=hostile`, the
//! DomU probe's `hostile=1`): cases in categories, each case with the one
//! answer it expects. A failed case is reported at once as
//! `hostile: <category>: <what>`; each category ends with its count and a
//! sanity call (`xen_version` must still answer 4.17), the run with its
//! total. One copy, included by both probes (`#[path]`).

// Each includer uses the checks its cases need.
#![allow(dead_code)]

use core::fmt;

/// Where a hostile run reports: the probe's own report.
pub trait Reporter {
    /// A fact, `ok` or not; a failure counts against the probe.
    fn check(&mut self, ok: bool, what: fmt::Arguments<'_>);
    /// A line of information.
    fn say(&mut self, what: fmt::Arguments<'_>);
}

/// `xen_version(XENVER_version)` of Xen 4.17, the sanity call's answer.
const VERSION_4_17: i64 = 0x4_0011;

/// The fault status of the hypervisor's injected abort: a synchronous
/// external abort (a fault the CPU raised at EL1 by itself, say a stage-1
/// address-size fault, would prove nothing about the hypervisor).
const FAULT_STATUS: u64 = 0x3f;
const SYNCHRONOUS_EXTERNAL_ABORT: u64 = 0x10;

/// A run's tally, and the category under way.
pub struct Tally<'r, R: Reporter> {
    pub report: &'r mut R,
    /// The sanity call after each category: `xen_version(XENVER_version)`.
    version: fn() -> i64,
    category: &'static str,
    cases: u32,
    passed: u32,
    total_cases: u32,
    total_passed: u32,
    categories: u32,
}

impl<'r, R: Reporter> Tally<'r, R> {
    pub fn new(report: &'r mut R, version: fn() -> i64) -> Self {
        Self { report, version, category: "", cases: 0, passed: 0, total_cases: 0, total_passed: 0, categories: 0 }
    }

    /// Runs one category of cases, then the sanity call, and reports both.
    pub fn category(&mut self, name: &'static str, cases: impl FnOnce(&mut Self)) {
        self.category = name;
        (self.cases, self.passed) = (0, 0);
        cases(self);
        let (cases, passed) = (self.cases, self.passed);
        self.report.say(format_args!("hostile: {name}: {cases} cases, {passed} ok"));
        let version = (self.version)();
        self.report.check(
            version == VERSION_4_17,
            format_args!("hostile: {name}: xen_version still answers afterwards ({version:#x})"),
        );
        self.total_cases += cases;
        self.total_passed += passed;
        self.categories += 1;
    }

    /// One case: `ok` says whether the hypervisor answered as expected.
    pub fn case(&mut self, ok: bool, what: fmt::Arguments<'_>) {
        self.cases += 1;
        if ok {
            self.passed += 1;
        } else {
            let category = self.category;
            self.report.check(false, format_args!("hostile: {category}: {what}"));
        }
    }

    /// A case whose answer is a number (an errno, a count, a status).
    pub fn expect(&mut self, got: i64, expected: i64, what: fmt::Arguments<'_>) {
        self.case(got == expected, format_args!("{what}: expected {expected}, got {got}"));
    }

    /// A case whose answer is the hypervisor's injected abort.
    pub fn aborts(&mut self, esr: Option<u64>, what: fmt::Arguments<'_>) {
        match esr {
            Some(esr) => self.case(
                esr & FAULT_STATUS == SYNCHRONOUS_EXTERNAL_ABORT,
                format_args!("{what}: expected the hypervisor's external abort, got ESR {esr:#x}"),
            ),
            None => self.case(false, format_args!("{what}: expected an abort, none came")),
        }
    }

    /// A case whose access must be emulated, not aborted.
    pub fn no_abort(&mut self, esr: Option<u64>, what: fmt::Arguments<'_>) {
        self.case(esr.is_none(), format_args!("{what}: expected no abort, got ESR {:#x}", esr.unwrap_or(0)));
    }

    /// Reports the run's total.
    pub fn finish(self) {
        let (cases, passed, categories) = (self.total_cases, self.total_passed, self.categories);
        self.report.say(format_args!("hostile: total: {categories} categories, {cases} cases, {passed} ok"));
    }
}
