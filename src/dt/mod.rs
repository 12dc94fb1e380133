//! Device trees: reading the host's (and, later, writing Dom0's).

// A `DtError` names its node by path, inline: the host tree is first read
// before any heap exists. Results holding one are large, but rare and
// short-lived, so clippy's size lint is off here.
#![allow(clippy::result_large_err)]

pub mod blob;
pub mod devices;
pub mod dom0;
pub mod domu;
pub mod host;
pub mod props;
pub mod walk;

#[cfg(test)]
mod host_tests;
#[cfg(test)]
pub mod testing;

use core::fmt;
use dtoolkit::error::FdtParseError;
use walk::{Path, RegProblem};

/// Why a device tree cannot be used. Every variant names what is wrong and
/// where, so the boot log can say it in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtError {
    /// x0 held no usable pointer.
    NoBlob {
        addr: u64,
    },
    /// The header says the blob is larger than we accept.
    TooLarge {
        size: u64,
        limit: u64,
    },
    /// The blob fails structural validation.
    Blob(FdtParseError),
    /// No `/memory` node with a usable bank.
    NoMemory,
    BadCells {
        node: Path,
        property: &'static str,
    },
    BadReg {
        node: Path,
        problem: RegProblem,
    },
    TooDeep {
        node: Path,
    },
    PathTooLong {
        node: Path,
    },
    TooMany {
        what: &'static str,
        limit: usize,
    },
    BadModule {
        node: Path,
        why: &'static str,
    },
    DuplicateModule {
        node: Path,
        kind: &'static str,
    },
    BadGic {
        node: Path,
        why: &'static str,
    },
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoBlob { addr } => write!(f, "no device tree at x0 = {addr:#x}"),
            Self::TooLarge { size, limit } => {
                write!(f, "device tree claims {size} bytes, more than the {limit} we accept")
            }
            Self::Blob(e) => write!(f, "malformed device tree: {e}"),
            Self::NoMemory => write!(f, "no RAM: the device tree has no usable /memory node"),
            Self::BadCells { node, property } => write!(f, "{node}: unsupported {property}"),
            Self::BadReg { node, problem } => write!(f, "{node}: bad reg: {}", problem.describe()),
            Self::TooDeep { node } => write!(f, "{node}: nodes nested too deeply"),
            Self::PathTooLong { node } => write!(f, "{node}...: node path too long"),
            Self::TooMany { what, limit } => write!(f, "more than {limit} {what}"),
            Self::BadModule { node, why } => write!(f, "{node}: bad boot module: {why}"),
            Self::DuplicateModule { node, kind } => write!(f, "{node}: a second {kind} module"),
            Self::BadGic { node, why } => write!(f, "{node}: bad interrupt controller: {why}"),
        }
    }
}
