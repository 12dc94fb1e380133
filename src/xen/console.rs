//! `HYPERVISOR_console_io` (`public/xen.h`): the hardware domain's console
//! goes to the hypervisor's UART, each line prefixed `(d0) `, and input
//! typed there comes back through CONSOLEIO_read, announced by VIRQ_CONSOLE.

use super::Board;
use super::errno::*;
use super::{Call, Outcome};

pub const CONSOLEIO_WRITE: u32 = 0;
pub const CONSOLEIO_READ: u32 = 1;

/// Bytes written per trap; the rest continues after the guest had a turn.
const WRITE_PER_TRAP: u32 = 1024;
/// Bytes read per call at most (the guest asks again).
const READ_PER_CALL: u32 = 512;

/// A domain's console output state: whether its output so far ended a
/// line. Held while a chunk is written, so vCPUs writing at once get one
/// prefix per line.
pub struct Console {
    at_line_start: spin::Mutex<bool>,
}

impl Console {
    pub fn new() -> Self {
        Self { at_line_start: spin::Mutex::new(true) }
    }

    /// Writes `bytes` to the board's console, `prefix` before each line.
    fn write(&self, board: &dyn Board, prefix: &[u8], bytes: &[u8]) {
        let mut at_line_start = self.at_line_start.lock();
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if *at_line_start {
                board.console_write(prefix);
            }
            board.console_write(line);
            *at_line_start = line.ends_with(b"\n");
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

/// `HYPERVISOR_console_io(cmd, count, buffer)`.
pub fn console_io(call: &mut Call<'_>, args: [u64; 5]) -> Outcome {
    let (cmd, count, buffer) = (args[0] as u32, args[1] as u32, args[2]);
    match cmd {
        CONSOLEIO_WRITE => {
            let chunk = count.min(WRITE_PER_TRAP);
            let mut buf = [0u8; WRITE_PER_TRAP as usize];
            let bytes = &mut buf[..chunk as usize];
            if call.memory.read(buffer, bytes).is_err() {
                return Outcome::from(EFAULT);
            }
            let mut prefix = arrayvec::ArrayString::<12>::new();
            let _ = core::fmt::write(&mut prefix, format_args!("(d{}) ", call.domain.id));
            call.domain.xen.console.write(call.board, prefix.as_bytes(), bytes);
            if chunk < count {
                let mut again = args;
                again[1] = u64::from(count - chunk);
                again[2] = buffer.wrapping_add(u64::from(chunk));
                return Outcome::Continue(again);
            }
            Outcome::Return(0)
        }
        // The UART's input is Dom0's (hvc0): a DomU may not take it.
        CONSOLEIO_READ if call.domain.id != 0 => Outcome::from(EPERM),
        CONSOLEIO_READ => {
            if (count as i32) < 0 {
                return Outcome::from(E2BIG);
            }
            let mut buf = [0u8; READ_PER_CALL as usize];
            let bytes = &mut buf[..count.min(READ_PER_CALL) as usize];
            // Check the buffer before taking input out of the ring, so a bad
            // pointer loses nothing.
            if call.memory.write(buffer, bytes).is_err() {
                return Outcome::from(EFAULT);
            }
            let got = call.board.console_read(bytes);
            if call.memory.write(buffer, &bytes[..got]).is_err() {
                return Outcome::from(EFAULT);
            }
            Outcome::Return(got as i64)
        }
        _ => Outcome::from(ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::xen::nr;
    use crate::xen::testing::{Machine, RAM, args};

    #[test]
    fn every_line_gets_the_prefix_once() {
        let m = Machine::new(1);
        let console = Console::new();
        for part in [&b"one\ntwo\npar"[..], b"", b"tial\r\nx"] {
            console.write(&m.board, b"(d0) ", part);
        }
        assert_eq!(m.board.console.lock().unwrap().as_slice(), b"(d0) one\n(d0) two\n(d0) partial\r\n(d0) x");
    }

    #[test]
    fn writes_continue_in_chunks_and_reads_drain_input() {
        let m = Machine::new(1);
        let text: Vec<u8> = (0..3000).map(|i| if i % 100 == 99 { b'\n' } else { b'a' + (i % 26) as u8 }).collect();
        m.board.put(RAM.start, &text);
        let (outcome, traps) = m.call_counting(0, nr::CONSOLE_IO, args(&[u64::from(CONSOLEIO_WRITE), 3000, RAM.start]));
        assert_eq!((outcome, traps), (Outcome::Return(0), 3));
        let out = m.board.console.lock().unwrap().clone();
        assert_eq!(out.len(), 3000 + 30 * 5);
        assert!(
            out.starts_with(b"(d0) abc")
                && out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).all(|l| l.starts_with(b"(d0) "))
        );
        assert_eq!(m.call(nr::CONSOLE_IO, args(&[u64::from(CONSOLEIO_WRITE), 10, RAM.end - 4])), -EFAULT);
        assert_eq!(m.call(nr::CONSOLE_IO, args(&[u64::from(CONSOLEIO_WRITE), 0, 0])), 0);
        // Input.
        m.board.input.lock().unwrap().extend(b"ls\r");
        assert_eq!(m.call(nr::CONSOLE_IO, args(&[u64::from(CONSOLEIO_READ), 2, RAM.end - 1])), -EFAULT);
        assert_eq!(m.board.input.lock().unwrap().len(), 3, "nothing lost to a bad buffer");
        assert_eq!(m.call(nr::CONSOLE_IO, args(&[u64::from(CONSOLEIO_READ), 2, RAM.start])), 2);
        assert_eq!(m.board.get(RAM.start, 2), b"ls");
        assert_eq!(m.call(nr::CONSOLE_IO, args(&[u64::from(CONSOLEIO_READ), 100, RAM.start])), 1);
        assert_eq!(m.call(nr::CONSOLE_IO, args(&[u64::from(CONSOLEIO_READ), 100, RAM.start])), 0);
        assert_eq!(m.call(nr::CONSOLE_IO, args(&[u64::from(CONSOLEIO_READ), 0x8000_0000, RAM.start])), -E2BIG);
        assert_eq!(m.call(nr::CONSOLE_IO, args(&[2, 0, RAM.start])), -ENOSYS);
    }
}
