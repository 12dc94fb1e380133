//! The hypervisor's command line, in Xen's syntax: space-separated
//! `name=value` tokens, `-` and `_` interchangeable in names, booleans as
//! `yes|no|true|false|on|off|enable|disable|1|0` (a bare `name` means yes,
//! `no-name` means no), sizes with `K|M|G|T` suffixes. Unknown options and
//! bad values are reported, never fatal: the default stays in force, but
//! for `ext-regions=`, whose bad values advertise no extended regions (see
//! [`ExtRegions::Malformed`]).

use arrayvec::ArrayVec;
use core::fmt;

/// Xen's default Dom0 memory on Arm.
pub const DEFAULT_DOM0_MEM: u64 = 512 << 20;

/// How much the hypervisor logs (Xen's `loglvl=` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    None,
    Error,
    Warning,
    Info,
    Debug,
    All,
}

/// What `ext-regions=` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtRegions {
    /// Find them in free memory (the default).
    Auto,
    /// Advertise none: only the grant-table region.
    Disabled,
    /// Advertise exactly this range, once checked
    /// ([`crate::dom0::ext_regions::check_fixed`]). Start and size are
    /// addresses, so a bare number is bytes (unlike `dom0_mem`).
    Fixed { start: u64, size: u64 },
    /// A value that is none of the above: like a refused range, it
    /// advertises none. The option overrides the search on boards where
    /// the search is wrong, so falling back to it would use what the
    /// operator tried to avoid.
    Malformed { why: &'static str },
}

/// The options the hypervisor understands, with their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub loglvl: LogLevel,
    pub dom0_mem: u64,
    pub ext_regions: ExtRegions,
    /// `stage2-blocks=no`: Dom0's RAM in 4 KiB stage-2 pages rather than
    /// the largest blocks that fit. Blocks are right on hardware; pages
    /// suit QEMU's TCG, which flushes its whole TLB on any single-page
    /// flush that falls inside a block (README, Benchmarks).
    pub stage2_blocks: bool,
    /// `dom0_max_vcpus=N` (Xen's): Dom0's vCPUs, at most the CPUs no DomU
    /// claims; `None` gives it all of those.
    pub dom0_max_vcpus: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            loglvl: LogLevel::Info,
            dom0_mem: DEFAULT_DOM0_MEM,
            ext_regions: ExtRegions::Auto,
            stage2_blocks: true,
            dom0_max_vcpus: None,
        }
    }
}

/// Something on the command line that was not taken as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diagnostic<'a> {
    pub token: &'a str,
    pub problem: Problem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    UnknownOption,
    BadValue(&'static str),
    /// Understood, but part of it has no effect here.
    Ignored(&'static str),
}

impl fmt::Display for Diagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Problem::UnknownOption => write!(f, "unknown option '{}' ignored", self.token),
            Problem::BadValue(why) => write!(f, "'{}': {why}; default kept", self.token),
            Problem::Ignored(why) => write!(f, "'{}': {why}", self.token),
        }
    }
}

/// At most this many diagnostics are kept; [`Parsed::dropped`] counts the rest.
pub const MAX_DIAGNOSTICS: usize = 16;

pub struct Parsed<'a> {
    pub options: Options,
    pub diagnostics: ArrayVec<Diagnostic<'a>, MAX_DIAGNOSTICS>,
    pub dropped: usize,
}

impl<'a> Parsed<'a> {
    fn report(&mut self, token: &'a str, problem: Problem) {
        if self.diagnostics.try_push(Diagnostic { token, problem }).is_err() {
            self.dropped += 1;
        }
    }
}

/// One `name[=value]` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// The whole token as written.
    pub text: &'a str,
    pub name: &'a str,
    pub value: Option<&'a str>,
}

/// Splits a command line into tokens. Double quotes group spaces into a
/// value (`name="a b"`) and are stripped from around it.
pub fn tokens(cmdline: &str) -> impl Iterator<Item = Token<'_>> {
    let mut rest = cmdline;
    core::iter::from_fn(move || {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if rest.is_empty() {
            return None;
        }
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                !quoted && c.is_ascii_whitespace()
            })
            .map_or(rest.len(), |(i, _)| i);
        let text = &rest[..end];
        rest = &rest[end..];
        let (name, value) = match text.split_once('=') {
            Some((name, value)) => {
                let value = value.strip_prefix('"').map_or(value, |v| v.strip_suffix('"').unwrap_or(v));
                (name, Some(value))
            }
            None => (text, None),
        };
        Some(Token { text, name, value })
    })
}

/// Option names compare with `-` and `_` as the same character.
pub fn name_eq(a: &str, b: &str) -> bool {
    let norm = |c: u8| if c == b'-' { b'_' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "yes" | "true" | "on" | "enable" | "1" => Some(true),
        "no" | "false" | "off" | "disable" | "0" => Some(false),
        _ => None,
    }
}

/// A number in decimal or `0x` hexadecimal.
pub fn parse_number(value: &str) -> Option<u64> {
    match value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u64::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None => value.parse().ok(),
    }
}

/// A number with an optional `B|K|M|G|T` suffix (either case); without one it
/// counts units of `1 << default_shift` bytes (Xen reads a bare size as KiB).
/// As in Xen, the number is read first, so `0x1b` is hexadecimal 0x1b.
pub fn parse_size(value: &str, default_shift: u32) -> Option<u64> {
    let hex = value.starts_with("0x") || value.starts_with("0X");
    let digits_from = if hex { 2 } else { 0 };
    let digits_end = value[digits_from..]
        .find(|c: char| if hex { !c.is_ascii_hexdigit() } else { !c.is_ascii_digit() })
        .map_or(value.len(), |i| i + digits_from);
    let shift = match &value[digits_end..] {
        "" => default_shift,
        "b" | "B" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        _ => return None,
    };
    let number = parse_number(&value[..digits_end])?;
    let scaled = number.checked_shl(shift)?;
    (scaled >> shift == number).then_some(scaled)
}

fn parse_loglvl(value: &str) -> Option<LogLevel> {
    // Xen allows `<level>/<rate-limited level>`; we have no rate limiting.
    let level = value.split_once('/').map_or(value, |(l, _)| l);
    Some(match level {
        "none" => LogLevel::None,
        "error" => LogLevel::Error,
        "warning" => LogLevel::Warning,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "all" => LogLevel::All,
        _ => return None,
    })
}

fn parse_ext_regions(value: Option<&str>) -> Result<ExtRegions, &'static str> {
    let Some(value) = value else { return Ok(ExtRegions::Auto) };
    if let Some(on) = parse_bool(value) {
        return Ok(if on { ExtRegions::Auto } else { ExtRegions::Disabled });
    }
    let (start, size) = value.split_once(',').ok_or("expected yes, no or <start>,<size>")?;
    // Bare numbers are bytes. Whether the range is usable (zero, too
    // small, wrapping, ...) is the range check's question, at Dom0 build.
    let start = parse_size(start, 0).ok_or("bad start address")?;
    let size = parse_size(size, 0).ok_or("bad size")?;
    Ok(ExtRegions::Fixed { start, size })
}

/// `dom0_mem=<size>`; Xen's x86 forms `min:`/`max:` are accepted and ignored.
fn parse_dom0_mem(value: &str) -> Result<(Option<u64>, bool), &'static str> {
    let mut amount = None;
    let mut ignored = false;
    for part in value.split(',') {
        if part.starts_with("min:") || part.starts_with("max:") {
            ignored = true;
            continue;
        }
        let size = parse_size(part, 10).ok_or("bad size")?;
        if size == 0 {
            return Err("size is zero");
        }
        amount = Some(size);
    }
    Ok((amount, ignored))
}

impl Options {
    /// Parses the hypervisor's command line. Later tokens override earlier ones.
    pub fn parse(cmdline: &str) -> Parsed<'_> {
        let mut parsed = Parsed { options: Options::default(), diagnostics: ArrayVec::new(), dropped: 0 };
        for token in tokens(cmdline) {
            let (name, negated) = match token.name.strip_prefix("no-").or_else(|| token.name.strip_prefix("no_")) {
                Some(name) if token.value.is_none() => (name, true),
                _ => (token.name, false),
            };
            let opts = &mut parsed.options;
            if name_eq(name, "loglvl") && !negated {
                match token.value.and_then(parse_loglvl) {
                    Some(level) => opts.loglvl = level,
                    None => parsed.report(token.text, Problem::BadValue("expected none|error|warning|info|debug|all")),
                }
            } else if name_eq(name, "dom0_mem") && !negated {
                match token.value.map(parse_dom0_mem) {
                    Some(Ok((amount, ignored))) => {
                        if let Some(amount) = amount {
                            opts.dom0_mem = amount;
                        }
                        if ignored {
                            parsed.report(token.text, Problem::Ignored("min:/max: have no effect on Arm"));
                        }
                    }
                    Some(Err(why)) => parsed.report(token.text, Problem::BadValue(why)),
                    None => parsed.report(token.text, Problem::BadValue("expected a size")),
                }
            } else if name_eq(name, "ext_regions") {
                // A malformed value is applied, not reported here: Dom0's
                // build logs it as an error, where it advertises none.
                opts.ext_regions = match (negated, parse_ext_regions(token.value)) {
                    (true, _) => ExtRegions::Disabled,
                    (false, Ok(regions)) => regions,
                    (false, Err(why)) => ExtRegions::Malformed { why },
                };
            } else if name_eq(name, "dom0_max_vcpus") && !negated {
                // Xen's x86 range form `min-max` is not Arm's.
                match token.value.and_then(parse_number) {
                    Some(n @ 1..=0xffff) => opts.dom0_max_vcpus = Some(n as u32),
                    _ => parsed.report(token.text, Problem::BadValue("expected a number of vCPUs, at least 1")),
                }
            } else if name_eq(name, "stage2_blocks") {
                match token.value.map_or(Some(true), parse_bool) {
                    Some(on) => opts.stage2_blocks = on != negated,
                    None => parsed.report(token.text, Problem::BadValue("expected yes or no")),
                }
            } else {
                parsed.report(token.text, Problem::UnknownOption);
            }
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opts(cmdline: &str) -> Options {
        Options::parse(cmdline).options
    }

    #[test]
    fn defaults() {
        assert_eq!(opts(""), Options::default());
        assert_eq!(opts("   \t "), Options::default());
        assert_eq!(Options::default().dom0_mem, 512 << 20);
    }

    #[test]
    fn tokens_split_on_spaces_and_honour_quotes() {
        let t: Vec<_> = tokens(r#" a=1  b c="x y" d= "#).collect();
        assert_eq!(t.len(), 4);
        assert_eq!((t[0].name, t[0].value), ("a", Some("1")));
        assert_eq!((t[1].name, t[1].value), ("b", None));
        assert_eq!((t[2].name, t[2].value), ("c", Some("x y")));
        assert_eq!((t[3].name, t[3].value), ("d", Some("")));
        // An unterminated quote runs to the end and never panics.
        let t: Vec<_> = tokens(r#"a="x y"#).collect();
        assert_eq!(t[0].value, Some("x y"));
    }

    #[test]
    fn dom0_max_vcpus() {
        assert_eq!(opts("").dom0_max_vcpus, None);
        assert_eq!(opts("dom0_max_vcpus=1").dom0_max_vcpus, Some(1));
        assert_eq!(opts("dom0-max-vcpus=0x3").dom0_max_vcpus, Some(3));
        for bad in ["dom0_max_vcpus=0", "dom0_max_vcpus=1-2", "dom0_max_vcpus", "no-dom0_max_vcpus"] {
            let parsed = Options::parse(bad);
            assert_eq!(parsed.options.dom0_max_vcpus, None, "{bad}");
            assert_eq!(parsed.diagnostics.len(), 1, "{bad}");
        }
    }

    #[test]
    fn stage2_blocks_spellings() {
        for (line, want) in [
            ("", true),
            ("stage2-blocks=no", false),
            ("stage2_blocks=off", false),
            ("no-stage2-blocks", false),
            ("stage2-blocks", true),
            ("stage2-blocks=no stage2-blocks=1", true),
            ("stage2-blocks=maybe", true),
        ] {
            assert_eq!(opts(line).stage2_blocks, want, "{line}");
        }
        assert_eq!(Options::parse("stage2-blocks=maybe").diagnostics.len(), 1);
    }

    #[test]
    fn ext_regions_spellings() {
        for (line, want) in [
            ("ext-regions=no", ExtRegions::Disabled),
            ("ext_regions=no", ExtRegions::Disabled),
            ("ext_regions=off", ExtRegions::Disabled),
            ("no-ext-regions", ExtRegions::Disabled),
            ("ext-regions=no ext-regions=yes", ExtRegions::Auto),
            ("ext-regions", ExtRegions::Auto),
            ("ext_regions=1", ExtRegions::Auto),
            ("ext-regions=0x80000000,1G", ExtRegions::Fixed { start: 0x8000_0000, size: 1 << 30 }),
            ("ext-regions=2147483648,0x200000", ExtRegions::Fixed { start: 0x8000_0000, size: 0x20_0000 }),
            ("ext-regions=2G,512m", ExtRegions::Fixed { start: 1 << 31, size: 512 << 20 }),
            // Addresses, so bare numbers are bytes (dom0_mem's are KiB).
            ("ext-regions=4294967296,67108864", ExtRegions::Fixed { start: 1 << 32, size: 64 << 20 }),
            // Shape and place are the range check's to refuse, not the parser's.
            ("ext-regions=0x1000,0", ExtRegions::Fixed { start: 0x1000, size: 0 }),
            ("ext-regions=0xffffffffffffffff,2", ExtRegions::Fixed { start: u64::MAX, size: 2 }),
        ] {
            assert_eq!(opts(line).ext_regions, want, "{line}");
        }
    }

    /// A malformed `ext-regions=` value is no reason to search: it is kept,
    /// with why, for Dom0's build to refuse (and log); later tokens still
    /// override it.
    #[test]
    fn malformed_ext_regions_are_kept_with_the_reason() {
        for (line, why) in [
            ("ext-regions=maybe", "expected yes, no or <start>,<size>"),
            ("ext-regions=0x80000000", "expected yes, no or <start>,<size>"),
            ("ext-regions=", "expected yes, no or <start>,<size>"),
            ("ext-regions=0x1000,", "bad size"),
            ("ext-regions=,4K", "bad start address"),
            ("ext-regions=0x,1", "bad start address"),
            ("ext-regions=1,99999999999T", "bad size"),
            ("ext-regions=no ext-regions=2G", "expected yes, no or <start>,<size>"),
        ] {
            let parsed = Options::parse(line);
            assert_eq!(parsed.options.ext_regions, ExtRegions::Malformed { why }, "{line}");
            assert!(parsed.diagnostics.is_empty(), "{line}: reported once, at Dom0's build");
        }
        assert_eq!(opts("ext-regions=2G ext-regions=no").ext_regions, ExtRegions::Disabled);
    }

    #[test]
    fn dom0_mem_follows_xen_units() {
        assert_eq!(opts("dom0_mem=1G").dom0_mem, 1 << 30);
        assert_eq!(opts("dom0-mem=768M").dom0_mem, 768 << 20);
        // Xen reads a bare size as KiB.
        assert_eq!(opts("dom0_mem=524288").dom0_mem, 512 << 20);
        let parsed = Options::parse("dom0_mem=max:1G,256M");
        assert_eq!(parsed.options.dom0_mem, 256 << 20);
        assert!(matches!(parsed.diagnostics[0].problem, Problem::Ignored(_)));
        for bad in ["dom0_mem=", "dom0_mem", "dom0_mem=lots", "dom0_mem=0", "dom0_mem=99999999999999999999"] {
            let parsed = Options::parse(bad);
            assert_eq!(parsed.options.dom0_mem, DEFAULT_DOM0_MEM, "{bad}");
            assert_eq!(parsed.diagnostics.len(), 1, "{bad}");
        }
    }

    #[test]
    fn loglvl_and_unknown_options() {
        assert_eq!(opts("loglvl=all").loglvl, LogLevel::All);
        assert_eq!(opts("loglvl=debug/warning").loglvl, LogLevel::Debug);
        let parsed = Options::parse("console=dtuart sync_console loglvl=loud");
        assert_eq!(parsed.options.loglvl, LogLevel::Info);
        let problems: Vec<_> = parsed.diagnostics.iter().map(|d| d.problem).collect();
        assert_eq!(problems[..2], [Problem::UnknownOption, Problem::UnknownOption]);
        assert!(matches!(problems[2], Problem::BadValue(_)));
        assert_eq!(parsed.diagnostics[0].to_string(), "unknown option 'console=dtuart' ignored");
    }

    #[test]
    fn diagnostics_are_bounded() {
        let line = "x ".repeat(100);
        let parsed = Options::parse(&line);
        assert_eq!(parsed.diagnostics.len(), MAX_DIAGNOSTICS);
        assert_eq!(parsed.dropped, 100 - MAX_DIAGNOSTICS);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4K", 0), Some(4096));
        assert_eq!(parse_size("4k", 0), Some(4096));
        assert_eq!(parse_size("2T", 0), Some(2 << 40));
        assert_eq!(parse_size("0x10M", 0), Some(16 << 20));
        assert_eq!(parse_size("12b", 10), Some(12));
        assert_eq!(parse_size("0x1b", 10), Some(0x1b << 10));
        assert_eq!(parse_size("0x1bM", 0), Some(0x1b << 20));
        assert_eq!(parse_size("12KB", 0), None);
        assert_eq!(parse_size("12", 10), Some(12 << 10));
        assert_eq!(parse_size("M", 0), None);
        assert_eq!(parse_size("", 0), None);
        assert_eq!(parse_size("-1", 0), None);
        assert_eq!(parse_size("16777216T", 0), None); // 2^64: overflows
        assert_eq!(parse_size("16777215T", 0), Some(16777215 << 40));
    }

    proptest! {
        #[test]
        fn never_panics_and_diagnoses_or_applies_each_token(line in "[ -~\t]{0,200}") {
            let parsed = Options::parse(&line);
            prop_assert!(parsed.diagnostics.len() + parsed.dropped <= tokens(&line).count());
        }

        #[test]
        fn sizes_round_trip(n in 0u64..(1 << 20), unit in 0usize..4) {
            let (suffix, shift) = [("K", 10), ("M", 20), ("G", 30), ("", 0)][unit];
            prop_assert_eq!(parse_size(&format!("{n}{suffix}"), 0), Some(n << shift));
            prop_assert_eq!(parse_size(&format!("{n:#x}{suffix}"), 0), Some(n << shift));
        }

        #[test]
        fn dash_and_underscore_are_interchangeable(mask in any::<u8>()) {
            let name: String = "ext_regions"
                .chars()
                .enumerate()
                .map(|(i, c)| if c == '_' && mask & (1 << (i % 8)) != 0 { '-' } else { c })
                .collect();
            prop_assert_eq!(opts(&format!("{name}=no")).ext_regions, ExtRegions::Disabled);
        }
    }
}
