//! The serving DomU's mailbox: the one page through which the bare-metal
//! DomU (`domu-probe`'s `serve.rs`) and its Dom0 peers (gnttest's
//! `peer.rs`, the benchmark Dom0's `domu.rs`) find each other. One copy of
//! the protocol, included by each (`#[path]`): word indices, magic values,
//! and the data each side checks of the other.

// Each includer uses its side of the protocol only.
#![allow(dead_code)]

/// The mailbox page, at a fixed guest address of the DomU's (inside its
/// RAM for any DomU of 32 MiB or more).
pub const MAILBOX: u64 = 0x4100_0000;

/// `word::MAGIC` once the DomU has published: "xenpeer1".
pub const MAGIC: u64 = u64::from_le_bytes(*b"xenpeer1");
/// `word::SHUTDOWN` when Dom0 asks the DomU to end: "shutdown".
pub const SHUTDOWN_ASKED: u64 = u64::from_le_bytes(*b"shutdown");

/// The mailbox's 64-bit words.
pub mod word {
    pub const MAGIC: u64 = 0;
    /// Bumped in every turn of the serving loop.
    pub const COUNTER: u64 = 1;
    pub const PORT: u64 = 2;
    pub const GRANTS: u64 = 3;
    /// `GRANTS` references from here.
    pub const REFS: u64 = 4;
    pub const PATTERN_GFN: u64 = 8;
    pub const PATTERN_PAGES: u64 = 9;
    pub const CHECKS: u64 = 10;
    pub const FAILURES: u64 = 11;
    pub const ANSWERED: u64 = 12;
    pub const GRANTED_GFN: u64 = 13;
    /// Dom0 writes `SHUTDOWN_ASKED` here before its last event.
    pub const SHUTDOWN: u64 = 14;
    /// Bytes of text at `TEXT`.
    pub const TEXT_LEN: u64 = 15;
    /// Dom0 writes a new number here, then sends an event: one event back.
    pub const PING: u64 = 16;
    /// The pings answered.
    pub const PINGS_ANSWERED: u64 = 17;
    /// The DomU's report, from byte 1024 to the end of the page.
    pub const TEXT: u64 = 128;
}

/// Granted page 0's words: Dom0's request, then the DomU's reply.
pub mod request {
    /// Dom0 writes a new number for each request (after the rest).
    pub const SEQ: u64 = 0;
    pub const COMMAND: u64 = 1;
    pub const PAYLOAD: u64 = 8;
    pub const PAYLOAD_WORDS: u64 = 64;
    /// The DomU's answer: the request's number, then the reply (written before it).
    pub const REPLY_SEQ: u64 = 256;
    pub const REPLY: u64 = 264;
    /// The one command: reply with each payload word transformed.
    pub const ECHO: u64 = 1;
}

/// The pattern Dom0 expects in the pattern pages: word `w` of gfn `gfn`.
pub fn pattern(gfn: u64, w: u64) -> u64 {
    (gfn << 20 | w).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x7365_7276_6500_0000
}

/// The reply to payload word `value` of request `seq`.
pub fn reply(seq: u64, value: u64) -> u64 {
    !value ^ seq.rotate_left(32)
}
