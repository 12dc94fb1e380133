//! Output through QEMU's semihosting: text a line at a time, the figures in
//! one machine-readable format, and the exit code.

use super::ops::{Timed, frequency};
use core::arch::asm;
use core::fmt::{self, Write};

/// SYS_WRITE0 and SYS_EXIT.
const WRITE0: u64 = 0x04;
const EXIT: u64 = 0x18;
/// ADP_Stopped_ApplicationExit: the exit code follows.
const APPLICATION_EXIT: u64 = 0x20026;

fn semihosting(op: u64, arg: u64) {
    // SAFETY: QEMU's semihosting reads only what `arg` points at.
    unsafe { asm!("hlt #0xf000", inout("x0") op => _, in("x1") arg, options(nostack)) };
}

/// Ends the run: QEMU exits with `code`.
pub fn exit(code: u64) -> ! {
    let block = [APPLICATION_EXIT, code];
    loop {
        semihosting(EXIT, block.as_ptr() as u64);
    }
}

/// A figure, or why there is none.
pub type Figure = Result<Timed, &'static str>;

/// Lines of text, each handed to SYS_WRITE0 as it ends.
pub struct Out {
    line: [u8; 200],
    len: usize,
}

impl Out {
    pub fn new() -> Self {
        Self { line: [0; 200], len: 0 }
    }

    pub fn line(&mut self, text: fmt::Arguments<'_>) {
        let _ = writeln!(self, "{text}");
    }

    /// `bench: NAME X.Y ns/op (iterations N, ticks T, F Hz)` or
    /// `bench: NAME n/a (why)`.
    pub fn figure(&mut self, name: &str, figure: Figure) {
        match figure {
            Ok(t) => {
                let hz = frequency();
                // Tenths of a nanosecond per operation, rounded.
                let tenths = (u128::from(t.ticks) * 10_000_000_000 + u128::from(hz) * u128::from(t.iterations) / 2)
                    / (u128::from(hz) * u128::from(t.iterations)).max(1);
                self.line(format_args!(
                    "bench: {name} {}.{} ns/op (iterations {}, ticks {}, {hz} Hz)",
                    tenths / 10,
                    tenths % 10,
                    t.iterations,
                    t.ticks
                ));
            }
            Err(why) => self.line(format_args!("bench: {name} n/a ({why})")),
        }
    }

    fn flush(&mut self) {
        self.line[self.len] = 0;
        semihosting(WRITE0, self.line.as_ptr() as u64);
        self.len = 0;
    }
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            self.line[self.len] = b;
            self.len += 1;
            if b == b'\n' || self.len == self.line.len() - 1 {
                self.flush();
            }
        }
        Ok(())
    }
}
