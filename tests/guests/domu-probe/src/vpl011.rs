//! The DomU probe's vPL011 checks (bootarg `check-vpl011=1`): the UART in
//! its tree is Xen's (`arm,sbsa-uart` at GUEST_PL011_BASE, SPI 32 level
//! high, 115200 baud) and `/chosen/stdout-path` names it; a line written
//! through it reaches the console (the test sees it as `(d1) ...`); its TX
//! interrupt comes once a byte went out; then, with RX and RT unmasked,
//! it waits for a line typed on the console (after Ctrl-A three times
//! gave it the input) and reads it through its interrupt, one byte per
//! interrupt: the line stays high while bytes wait, so each EOI must bring
//! the interrupt back (level-triggered delivery). It reports the bytes,
//! then waits until Dom0 listens for its end (as `hostile=1` does).

use crate::interrupts::{self, counter};
use crate::probe::Report;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use dtoolkit::fdt::Fdt;
use dtoolkit::{Node, Property};

/// Xen's GUEST_PL011_BASE and GUEST_VPL011_SPI.
const BASE: u64 = 0x2200_0000;
pub const SPI: u32 = 32;

const DR: u64 = 0x00;
const FR: u64 = 0x18;
const IMSC: u64 = 0x38;
const RIS: u64 = 0x3c;
const MIS: u64 = 0x40;
const ICR: u64 = 0x44;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const FR_TXFE: u32 = 1 << 7;
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;

/// What the interrupt handler saw: bytes received, interrupts by kind.
static RECEIVED: [AtomicU32; 64] = [const { AtomicU32::new(0) }; 64];
static RECEIVED_LEN: AtomicUsize = AtomicUsize::new(0);
static RX_INTERRUPTS: AtomicU32 = AtomicU32::new(0);
static TX_INTERRUPTS: AtomicU32 = AtomicU32::new(0);
static EMPTY_INTERRUPTS: AtomicU32 = AtomicU32::new(0);

fn read(offset: u64) -> u32 {
    // SAFETY: the vPL011's registers, Device memory with the MMU off.
    unsafe { read_volatile((BASE + offset) as *const u32) }
}

fn write(offset: u64, value: u32) {
    // SAFETY: as in `read`.
    unsafe { write_volatile((BASE + offset) as *mut u32, value) }
}

/// Writes `text` through DR, waiting while the FIFO is full as Linux does.
fn send(text: &[u8]) {
    for &b in text {
        while read(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        write(DR, u32::from(b));
    }
}

/// The UART's interrupt, from the probe's IRQ vectors before the EOI: a TX
/// interrupt masks TX (Linux's `pl011_stop_tx` when nothing more is to
/// go); a receive interrupt takes one byte only, leaving the rest (and
/// the line high) for the next interrupt.
pub fn interrupt() {
    let mis = read(MIS);
    if mis & INT_TX != 0 {
        TX_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
        write(IMSC, read(IMSC) & !INT_TX);
    }
    if mis & (INT_RX | INT_RT) != 0 {
        RX_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
        if read(FR) & FR_RXFE == 0 {
            let byte = read(DR);
            let at = RECEIVED_LEN.load(Ordering::Relaxed);
            if let Some(slot) = RECEIVED.get(at) {
                slot.store(byte, Ordering::Relaxed);
                RECEIVED_LEN.store(at + 1, Ordering::Relaxed);
            }
        }
    }
    if mis == 0 {
        EMPTY_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits up to `ms` milliseconds for `done`.
fn wait(ms: u64, done: impl Fn() -> bool) -> bool {
    let (start, hz) = counter();
    while !done() {
        if counter().0 - start > hz / 1000 * ms {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

fn be32s(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

pub fn run(r: &mut Report, fdt: &Fdt<'_>) {
    let root = fdt.root();
    // The node, as Xen's make_vpl011_uart_node writes it.
    let node = root.child("sbsa-uart@22000000");
    let cells = |name: &str| -> [u32; 4] {
        let mut out = [u32::MAX; 4];
        if let Some(p) = node.as_ref().and_then(|n| n.property(name)) {
            for (slot, v) in out.iter_mut().zip(be32s(p.value())) {
                *slot = v;
            }
        }
        out
    };
    let compatible = node.as_ref().and_then(|n| n.property("compatible")).and_then(|p| p.value_as::<&str>().ok());
    let (reg, interrupts, speed) = (cells("reg"), cells("interrupts"), cells("current-speed")[0]);
    r.check(
        compatible == Some("arm,sbsa-uart")
            && reg == [0, BASE as u32, 0, 0x1000]
            && interrupts[..3] == [0, SPI - 32, 0xf04]
            && speed == 115_200,
        format_args!(
            "/sbsa-uart@22000000: {compatible:?}, reg {reg:x?}, interrupts {interrupts:x?}, current-speed {speed}"
        ),
    );
    let stdout = root.child("chosen").and_then(|c| c.property("stdout-path")).and_then(|p| p.value_as::<&str>().ok());
    r.check(stdout == Some("/sbsa-uart@22000000"), format_args!("/chosen/stdout-path is {stdout:?}"));

    let fr = read(FR);
    let id = [0xfe0, 0xfe4, 0xfe8, 0xfec].map(read);
    r.check(
        fr & (FR_TXFE | FR_RXFE) == FR_TXFE | FR_RXFE && id[0] == 0x11 && id[1] == 0x10,
        format_args!("vPL011 FR {fr:#x} (TXFE, RXFE), PeriphID {id:x?}"),
    );

    // Output: one line through DR; the console shows it as `(d1) ...`.
    write(ICR, 0x7ff);
    send(b"domu-probe: this line went through the vPL011\r\n");
    let ris = read(RIS);
    r.check(ris & INT_TX != 0, format_args!("after sending, RIS {ris:#x} has TX (the FIFO drained)"));

    // Interrupts through the emulated GIC.
    interrupts::detect();
    let old_vbar = interrupts::start(&mut |ok, what| r.check(ok, what));
    interrupts::enable_spi(SPI);
    write(IMSC, INT_TX);
    let tx = wait(200, || TX_INTERRUPTS.load(Ordering::Relaxed) > 0);
    // Masked in its handler: the line fell, so no second one comes.
    wait(50, || false);
    let count = TX_INTERRUPTS.load(Ordering::Relaxed);
    r.check(tx && count == 1, format_args!("the TX interrupt arrives once unmasked, once ({count})"));

    // Input: Ctrl-A three times on the console gives this domain the input.
    write(IMSC, INT_RX | INT_RT);
    r.say(format_args!("vpl011: waiting for a typed line"));
    let line_ended = || {
        let len = RECEIVED_LEN.load(Ordering::Relaxed);
        len > 0 && RECEIVED[len - 1].load(Ordering::Relaxed) == u32::from(b'\r')
    };
    let got = wait(60_000, line_ended);
    let len = RECEIVED_LEN.load(Ordering::Relaxed);
    let mut text = [0u8; 64];
    for (slot, byte) in text.iter_mut().zip(&RECEIVED[..len]) {
        *slot = byte.load(Ordering::Relaxed) as u8;
    }
    let text = core::str::from_utf8(&text[..len.saturating_sub(1)]).unwrap_or("(not UTF-8)");
    let (rx, empty) = (RX_INTERRUPTS.load(Ordering::Relaxed), EMPTY_INTERRUPTS.load(Ordering::Relaxed));
    r.check(
        got && rx as usize >= len,
        format_args!("received [{text}] through its interrupt, one byte each: {len} bytes, {rx} RX interrupts, {empty} with nothing raised"),
    );
    let (mis, fr) = (read(MIS), read(FR));
    r.check(mis == 0 && fr & FR_RXFE != 0, format_args!("drained: MIS {mis:#x}, FR {fr:#x}"));
    write(IMSC, 0);
    interrupts::stop(old_vbar);

    // Dom0's probe (`probe=wait-domain-end`) hears of this domain's end
    // only once it listens: wait for its sign before going on to the end.
    let dom0 = crate::probe::hostile::wait_for_dom0();
    r.check(dom0.is_some(), format_args!("Dom0 listens for this domain's end (its port {dom0:?})"));
}
