//! A DomU's emulated UART, as Xen 4.17's `vpl011` gives one (its
//! `xen/arch/arm/vpl011.c` with the backend in Xen): the SBSA generic UART
//! subset of an Arm PL011 that Linux's `sbsa-uart` driver (`amba-pl011.c`)
//! drives. Pure and host-tested; `console::guest_uart` puts it behind the
//! domain's MMIO regions, prints what it sends and feeds it typed input.
//!
//! What the guest sees:
//!
//! - DR: a write sends its low byte, at once (nothing is ever queued, so
//!   FR.TXFE always reads 1 and TXFF and BUSY 0); a read takes the oldest
//!   received byte (0 when there is none, as in Xen).
//! - RSR/ECR reads 0 (no line errors); a write clears nothing.
//! - FR: TXFE, RXFE (nothing received waits), RXFF (a FIFO's worth waits).
//! - IMSC (read and write), RIS and MIS (read only), ICR (write only).
//! - The interrupts Linux uses, as Xen raises them: RX when the receive
//!   FIFO reaches its half-way trigger level ([`FIFO_TRIGGER`]) and RT
//!   whenever a byte waits (no time is emulated, so "timeout" is at once),
//!   both cleared by reading the FIFO below their level or by ICR; TX each
//!   time a byte was sent (the transmit FIFO drained), cleared by ICR.
//!   The interrupt line is `(RIS & IMSC) != 0`, level-triggered.
//! - The PL011's peripheral and PrimeCell ID registers (0xfe0..0x1000),
//!   which Xen leaves at zero: a driver that checks them (`arm,pl011`
//!   through the AMBA bus) finds a PL011 r1p4.
//! - Anything else (the baud and line control a PL011 has and the SBSA
//!   UART has not, unaligned offsets, 64-bit accesses) reads as zero and
//!   ignores writes. No offset, width or value makes it panic.
//!
//! Received bytes wait in a ring larger than the 32-byte FIFO the guest
//! is shown ([`INPUT_CAPACITY`]): a paste into a slow guest is not cut at
//! 32 bytes as under Xen. The guest still sees a FIFO of [`FIFO_SIZE`]
//! (RXFF and the RX trigger level count at most that many).

use super::input::ByteRing;
use arrayvec::ArrayVec;

/// The FIFO depth the guest sees: Xen's SBSA_UART_FIFO_SIZE.
pub const FIFO_SIZE: usize = 32;
/// The receive interrupt's trigger level: half the FIFO, the PL011's
/// default that Xen assumes too.
pub const FIFO_TRIGGER: usize = FIFO_SIZE / 2;
/// Bytes received and not read that are kept; more are dropped.
pub const INPUT_CAPACITY: usize = 1024;

/// Register offsets (Arm DDI 0183, 3.2; the SBSA UART keeps these).
pub mod reg {
    pub const DR: u64 = 0x000;
    pub const RSR_ECR: u64 = 0x004;
    pub const FR: u64 = 0x018;
    pub const IMSC: u64 = 0x038;
    pub const RIS: u64 = 0x03c;
    pub const MIS: u64 = 0x040;
    pub const ICR: u64 = 0x044;
    /// UARTPeriphID0..3, then UARTPCellID0..3, a byte each in a word.
    pub const PERIPH_ID0: u64 = 0xfe0;
}

/// FR bits.
pub mod fr {
    pub const BUSY: u32 = 1 << 3;
    pub const RXFE: u32 = 1 << 4;
    pub const TXFF: u32 = 1 << 5;
    pub const RXFF: u32 = 1 << 6;
    pub const TXFE: u32 = 1 << 7;
}

/// Interrupt bits, the same in IMSC, RIS, MIS and ICR.
pub mod int {
    pub const RX: u32 = 1 << 4;
    pub const TX: u32 = 1 << 5;
    pub const RT: u32 = 1 << 6;
    /// The eleven interrupts a PL011 has (modem, RX, TX, RT, errors).
    pub const ALL: u32 = 0x7ff;
}

/// PeriphID0..3 (part 0x011, Arm, revision 4) and PCellID0..3.
const ID_BYTES: [u32; 8] = [0x11, 0x10, 0x44, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// One emulated SBSA UART.
pub struct Vpl011 {
    input: ByteRing<INPUT_CAPACITY>,
    imsc: u32,
    ris: u32,
    /// Bytes dropped because the input ring was full.
    dropped: u64,
}

impl Default for Vpl011 {
    fn default() -> Self {
        Self::new()
    }
}

/// The mask of an access of `width` bytes.
fn width_mask(width: u8) -> u32 {
    match width {
        1 => 0xff,
        2 => 0xffff,
        _ => u32::MAX,
    }
}

impl Vpl011 {
    /// A UART as at reset: nothing received, every interrupt masked.
    pub const fn new() -> Self {
        Self { input: ByteRing::new(), imsc: 0, ris: 0, dropped: 0 }
    }

    /// The bytes the guest's FIFO holds as it sees it (at most [`FIFO_SIZE`]).
    fn fifo_level(&self) -> usize {
        self.input.len().min(FIFO_SIZE)
    }

    /// A byte typed for this guest; false if the input ring is full (the
    /// byte is dropped, and counted).
    pub fn receive(&mut self, byte: u8) -> bool {
        if !self.input.push(byte) {
            self.dropped += 1;
            return false;
        }
        self.ris |= int::RT;
        if self.fifo_level() >= FIFO_TRIGGER {
            self.ris |= int::RX;
        }
        true
    }

    /// Bytes dropped so far because the guest did not read fast enough.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes received and not yet read.
    pub fn waiting(&self) -> usize {
        self.input.len()
    }

    /// The interrupt line: high while an unmasked interrupt is raised.
    pub fn interrupt_line(&self) -> bool {
        self.ris & self.imsc != 0
    }

    pub fn raw_interrupts(&self) -> u32 {
        self.ris
    }

    fn flags(&self) -> u32 {
        let mut flags = fr::TXFE;
        if self.input.is_empty() {
            flags |= fr::RXFE;
        }
        if self.fifo_level() == FIFO_SIZE {
            flags |= fr::RXFF;
        }
        flags
    }

    /// The register an access of `width` bytes at `offset` reaches: every
    /// register is a 32-bit word, read or written whole or in its low
    /// byte or half (Xen's `vpl011_reg32_check_access`).
    fn register(offset: u64, width: u8) -> Option<u64> {
        (matches!(width, 1 | 2 | 4) && offset.is_multiple_of(4) && offset < 0x1000).then_some(offset)
    }

    /// A load of `width` bytes at `offset`: the value.
    pub fn read(&mut self, offset: u64, width: u8) -> u64 {
        let Some(register) = Self::register(offset, width) else { return 0 };
        let value = match register {
            reg::DR => self.take_received().map_or(0, u32::from),
            reg::FR => self.flags(),
            reg::IMSC => self.imsc,
            reg::RIS => self.ris,
            reg::MIS => self.ris & self.imsc,
            o if o >= reg::PERIPH_ID0 => ID_BYTES[((o - reg::PERIPH_ID0) / 4) as usize],
            _ => 0,
        };
        u64::from(value & width_mask(width))
    }

    /// The oldest received byte, and the receive interrupts it settles.
    fn take_received(&mut self) -> Option<u8> {
        let byte = self.input.pop()?;
        if self.input.is_empty() {
            self.ris &= !int::RT;
        }
        if self.fifo_level() < FIFO_TRIGGER {
            self.ris &= !int::RX;
        }
        Some(byte)
    }

    /// A store of the low `width` bytes of `value` at `offset`: the byte
    /// sent, if it was one.
    pub fn write(&mut self, offset: u64, width: u8, value: u64) -> Option<u8> {
        let register = Self::register(offset, width)?;
        let mask = width_mask(width);
        let value = value as u32 & mask;
        match register {
            reg::DR => {
                self.ris |= int::TX;
                return Some(value as u8);
            }
            reg::IMSC => self.imsc = ((self.imsc & !mask) | value) & int::ALL,
            reg::ICR => self.ris &= !value,
            _ => {}
        }
        None
    }
}

/// A guest's output as whole lines, each with the domain's prefix: a
/// line is printed when it ends, or when [`LINE_MAX`] bytes of it wait
/// (then it is cut, as Xen cuts at its 128-byte buffer), so lines of
/// different domains never mix mid-line. The domain that has the console
/// input is printed byte by byte instead, as Xen does: a shell's prompt
/// and the echo of what is typed appear at once.
pub struct OutputLines {
    prefix: ArrayVec<u8, 12>,
    waiting: ArrayVec<u8, LINE_MAX>,
    /// Whether the last byte printed ended a line (the next gets the prefix).
    at_line_start: bool,
}

/// The longest line kept back: Xen's SBSA_UART_OUT_BUF_SIZE less the
/// new line and terminator it adds.
pub const LINE_MAX: usize = 126;

impl OutputLines {
    /// Output prefixed `(d<id>) `, as console_io's of a DomU.
    pub fn new(domain: u16) -> Self {
        let mut prefix = arrayvec::ArrayString::<12>::new();
        let _ = core::fmt::write(&mut prefix, format_args!("(d{domain}) "));
        let mut bytes = ArrayVec::new();
        bytes.extend(prefix.bytes());
        Self { prefix: bytes, waiting: ArrayVec::new(), at_line_start: true }
    }

    /// Takes `byte`; calls `print` with what is to be printed now, in one
    /// piece (the caller prints each piece in one go on the console).
    /// `immediate`: the domain has the console input.
    pub fn push(&mut self, byte: u8, immediate: bool, print: &mut dyn FnMut(&[u8])) {
        self.waiting.push(byte);
        if byte == b'\n' || immediate {
            self.flush(false, print);
        } else if self.waiting.is_full() {
            self.flush(true, print);
        }
    }

    /// Prints what waits, prefixed if it starts a line; `cut` ends the
    /// line there (it was too long to keep back).
    fn flush(&mut self, cut: bool, print: &mut dyn FnMut(&[u8])) {
        let mut piece = ArrayVec::<u8, { LINE_MAX + 13 }>::new();
        if self.at_line_start {
            piece.extend(self.prefix.iter().copied());
        }
        piece.extend(self.waiting.drain(..));
        if cut {
            piece.push(b'\n');
        }
        self.at_line_start = piece.last() == Some(&b'\n');
        print(&piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read32(uart: &mut Vpl011, offset: u64) -> u32 {
        uart.read(offset, 4) as u32
    }

    #[test]
    fn reset_state_is_what_linux_expects() {
        let mut uart = Vpl011::new();
        assert_eq!(read32(&mut uart, reg::FR), fr::TXFE | fr::RXFE);
        assert_eq!(read32(&mut uart, reg::RIS), 0);
        assert_eq!(read32(&mut uart, reg::MIS), 0);
        assert_eq!(read32(&mut uart, reg::IMSC), 0);
        assert_eq!(read32(&mut uart, reg::DR), 0, "an empty FIFO reads 0");
        assert!(!uart.interrupt_line());
        let ids: Vec<u32> = (0..8).map(|i| read32(&mut uart, reg::PERIPH_ID0 + i * 4)).collect();
        assert_eq!(ids, [0x11, 0x10, 0x44, 0, 0x0d, 0xf0, 0x05, 0xb1]);
    }

    #[test]
    fn a_written_byte_is_sent_and_raises_tx() {
        let mut uart = Vpl011::new();
        assert_eq!(uart.write(reg::DR, 4, 0x1_41), Some(b'A'));
        assert_eq!(uart.write(reg::DR, 1, u64::from(b'B')), Some(b'B'));
        assert_eq!(read32(&mut uart, reg::RIS), int::TX);
        assert!(!uart.interrupt_line(), "masked");
        uart.write(reg::IMSC, 4, u64::from(int::TX));
        assert!(uart.interrupt_line());
        assert_eq!(read32(&mut uart, reg::MIS), int::TX);
        // Linux's handler leaves TX out of its ICR write and masks it when done.
        uart.write(reg::IMSC, 4, 0);
        assert!(!uart.interrupt_line());
        uart.write(reg::ICR, 4, u64::from(int::TX));
        assert_eq!(read32(&mut uart, reg::RIS), 0);
        assert_eq!(read32(&mut uart, reg::FR) & (fr::TXFF | fr::BUSY), 0, "never full, never busy");
    }

    #[test]
    fn receive_levels_and_clears() {
        let mut uart = Vpl011::new();
        uart.write(reg::IMSC, 4, u64::from(int::RX | int::RT));
        assert!(uart.receive(b'x'));
        assert_eq!(read32(&mut uart, reg::MIS), int::RT, "a byte waits: receive timeout at once");
        assert_eq!(read32(&mut uart, reg::FR) & fr::RXFE, 0);
        for b in 1..FIFO_TRIGGER as u8 {
            uart.receive(b);
        }
        assert_eq!(read32(&mut uart, reg::MIS), int::RT | int::RX, "half full: RX");
        assert_eq!(read32(&mut uart, reg::DR), u32::from(b'x'));
        assert_eq!(read32(&mut uart, reg::MIS), int::RT, "below the trigger level again");
        for b in 1..FIFO_TRIGGER as u8 {
            assert_eq!(read32(&mut uart, reg::DR), u32::from(b));
        }
        assert_eq!(read32(&mut uart, reg::MIS), 0);
        assert_eq!(read32(&mut uart, reg::FR), fr::TXFE | fr::RXFE);
        // ICR clears a raised interrupt while bytes still wait; the next byte raises it again.
        uart.receive(1);
        uart.write(reg::ICR, 4, u64::from(int::ALL));
        assert!(!uart.interrupt_line());
        uart.receive(2);
        assert!(uart.interrupt_line());
    }

    #[test]
    fn the_fifo_shows_full_at_32_and_keeps_more() {
        let mut uart = Vpl011::new();
        for b in 0..FIFO_SIZE as u8 - 1 {
            uart.receive(b);
        }
        assert_eq!(read32(&mut uart, reg::FR) & fr::RXFF, 0);
        uart.receive(31);
        assert_ne!(read32(&mut uart, reg::FR) & fr::RXFF, 0);
        for b in 32..(INPUT_CAPACITY as u32) {
            assert!(uart.receive(b as u8));
        }
        assert!(!uart.receive(0), "the ring is full");
        assert_eq!(uart.dropped(), 1);
        for b in 0..INPUT_CAPACITY as u32 {
            assert_eq!(read32(&mut uart, reg::DR), b & 0xff);
        }
        assert_eq!(read32(&mut uart, reg::FR), fr::TXFE | fr::RXFE);
    }

    #[test]
    fn partial_widths_and_unknown_offsets() {
        let mut uart = Vpl011::new();
        uart.write(reg::IMSC, 4, 0xffff_ffff);
        assert_eq!(read32(&mut uart, reg::IMSC), int::ALL, "only the PL011's bits");
        uart.write(reg::IMSC, 1, 0);
        assert_eq!(read32(&mut uart, reg::IMSC), int::ALL & !0xff, "a byte write changes the low byte only");
        assert_eq!(uart.read(reg::IMSC, 1), 0);
        assert_eq!(uart.read(reg::IMSC, 2), 0x700);
        // 64-bit, unaligned, past the page, the PL011's baud registers: zero, ignored.
        uart.receive(b'q');
        for (offset, width) in [(reg::DR, 8), (reg::DR + 1, 1), (reg::FR + 2, 2), (0x24, 4), (0x30, 4), (0x1000, 4)] {
            assert_eq!(uart.read(offset, width), 0, "{offset:#x}/{width}");
            assert_eq!(uart.write(offset, width, u64::MAX), None);
        }
        assert_eq!(uart.waiting(), 1, "none of those took the byte");
        assert_eq!(uart.read(reg::ICR, 4), 0, "write-only");
        assert_eq!(uart.read(reg::RSR_ECR, 4), 0);
    }

    #[test]
    fn output_lines_are_whole_and_prefixed() {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut lines = OutputLines::new(3);
        for &b in b"one\ntw" {
            lines.push(b, false, &mut |p| out.push(p.to_vec()));
        }
        assert_eq!(out, [b"(d3) one\n".to_vec()], "the partial line waits");
        lines.push(b'o', true, &mut |p| out.push(p.to_vec()));
        assert_eq!(out[1], b"(d3) two", "with the input, at once");
        lines.push(b'!', true, &mut |p| out.push(p.to_vec()));
        lines.push(b'\n', false, &mut |p| out.push(p.to_vec()));
        assert_eq!(&out[2..], [b"!".to_vec(), b"\n".to_vec()], "no prefix mid-line");
        out.clear();
        for _ in 0..LINE_MAX + 3 {
            lines.push(b'x', false, &mut |p| out.push(p.to_vec()));
        }
        assert_eq!(out.len(), 1, "cut once");
        assert_eq!(out[0].len(), 5 + LINE_MAX + 1);
        assert!(out[0].starts_with(b"(d3) xxx") && out[0].ends_with(b"x\n"));
        lines.push(b'\n', false, &mut |p| out.push(p.to_vec()));
        assert_eq!(out[1], b"(d3) xxx\n");
    }

    #[derive(Debug, Clone)]
    enum Step {
        Type(Vec<u8>),
        Read(u64, u8),
        Write(u64, u8, u64),
    }

    fn offsets() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(reg::DR),
            Just(reg::FR),
            Just(reg::IMSC),
            Just(reg::RIS),
            Just(reg::MIS),
            Just(reg::ICR),
            Just(reg::RSR_ECR),
            0u64..0x1100,
        ]
    }

    fn steps() -> impl Strategy<Value = Step> {
        let width = prop_oneof![Just(1u8), Just(2), Just(4), Just(8), 0u8..16];
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80).prop_map(Step::Type),
            (offsets(), width.clone()).prop_map(|(o, w)| Step::Read(o, w)),
            (offsets(), width, any::<u64>()).prop_map(|(o, w, v)| Step::Write(o, w, v)),
        ]
    }

    proptest! {
        /// Whatever the guest does, every byte received is read once, in
        /// order, or is still waiting; FR and the line agree with the state.
        #[test]
        fn never_loses_or_duplicates_input(steps in proptest::collection::vec(steps(), 0..200)) {
            let mut uart = Vpl011::new();
            let mut typed = Vec::new();
            let mut read = Vec::new();
            for step in steps {
                match step {
                    Step::Type(bytes) => {
                        for b in bytes {
                            if uart.receive(b) {
                                typed.push(b);
                            }
                        }
                    }
                    Step::Read(offset, width) => {
                        let waiting = uart.waiting();
                        let value = uart.read(offset, width);
                        if uart.waiting() < waiting {
                            prop_assert_eq!(offset, reg::DR);
                            read.push(value as u8);
                        }
                    }
                    Step::Write(offset, width, value) => {
                        let sent = uart.write(offset, width, value);
                        prop_assert_eq!(sent.is_some(), offset == reg::DR && matches!(width, 1 | 2 | 4));
                    }
                }
                prop_assert_eq!(uart.interrupt_line(), uart.ris & uart.imsc != 0);
                let flags = uart.read(reg::FR, 4) as u32;
                prop_assert_eq!(flags & fr::RXFE != 0, uart.waiting() == 0);
                prop_assert_eq!(flags & fr::TXFE, fr::TXFE);
                if uart.waiting() == 0 {
                    prop_assert_eq!(uart.ris & (int::RT | int::RX), 0, "nothing waits: no receive interrupt");
                }
            }
            // Drain: what is left comes out after what was read.
            while uart.waiting() > 0 {
                read.push(uart.read(reg::DR, 4) as u8);
            }
            prop_assert_eq!(read, typed);
        }
    }
}
