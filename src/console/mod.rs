//! The hypervisor's console: the PL011 named by `/chosen/stdout-path`, or
//! semihosting before (or without) one. Logging goes through the `log`
//! crate, one line per record, prefixed `(HV)` like Xen's `(XEN)`. What
//! is typed on it goes where Xen's Ctrl-A switch says ([`input_switch`]):
//! Dom0's console ring ([`input`]) or a DomU's emulated UART ([`vpl011`],
//! on the board [`guest_uart`]), whose output comes back here.

pub mod guest_uart;
pub mod input;
pub mod input_switch;
pub mod pl011;
pub mod vpl011;

use crate::arch::semihosting;
use crate::cmdline::LogLevel;
use core::fmt::{self, Write};
use input_switch::{Focus, InputSwitch, Typed};
use pl011::Pl011;
use spin::Mutex;

static UART: Mutex<Option<Pl011>> = Mutex::new(None);

/// Starts logging to the UART at `base` from now on.
///
/// # Safety
/// `base` must be a PL011 register block, identity mapped, driven by nothing else.
pub unsafe fn use_uart(base: u64) {
    // SAFETY: forwarded from the caller.
    let uart = unsafe { Pl011::new(base as usize) };
    uart.enable();
    *UART.lock() = Some(uart);
}

/// Where output goes when there is no UART.
struct Fallback;

impl Write for Fallback {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        semihosting::write(s);
        Ok(())
    }
}

fn print_to(out: &mut Option<Pl011>, args: fmt::Arguments<'_>) {
    let _ = match out {
        Some(uart) => uart.write_fmt(args),
        None => Fallback.write_fmt(args),
    };
}

pub fn print(args: fmt::Arguments<'_>) {
    print_to(&mut UART.lock(), args);
}

/// Prints even if the console lock is held, as when a crash interrupted a
/// print: a garbled line beats a silent hang.
pub fn print_emergency(args: fmt::Arguments<'_>) {
    for _ in 0..1_000_000 {
        if let Some(mut guard) = UART.try_lock() {
            print_to(&mut guard, args);
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the holder is this CPU, interrupted, or one that will not
    // finish; either way we only write bytes to the UART.
    unsafe { UART.force_unlock() };
    print_to(&mut UART.lock(), args);
}

/// Stops using the UART (it faulted): later output goes to semihosting.
pub fn abandon_uart() {
    // SAFETY: only called on the crash path, where the lock holder (if any)
    // was interrupted by the fault and will not resume.
    unsafe { UART.force_unlock() };
    *UART.lock() = None;
}

/// Turns on the UART's receive interrupt: typed bytes go to Dom0's console.
pub fn enable_input() {
    if let Some(uart) = UART.lock().as_ref() {
        uart.enable_receive_interrupt();
    }
}

/// The UART's interrupt: takes the received bytes to whoever has the
/// console input ([`route_input`]); how many were queued for Dom0. More
/// than fit here keep the interrupt asserted, and it comes back.
pub fn interrupt() -> usize {
    let mut bytes = arrayvec::ArrayVec::<u8, 64>::new();
    if let Some(uart) = UART.lock().as_ref() {
        uart.acknowledge_receive();
        while !bytes.is_full() {
            match uart.read_byte() {
                Some(b) => bytes.push(b),
                None => break,
            }
        }
    }
    route_input(&bytes)
}

/// Where typed input goes: Dom0, a DomU's vPL011 or nowhere (the
/// hypervisor), switched by Ctrl-A three times ([`input_switch`]).
static SWITCH: Mutex<InputSwitch> = Mutex::new(InputSwitch::new());

/// Says where console input goes, as Xen does at the end of its boot.
pub fn announce_input() {
    let focus = SWITCH.lock().focus();
    log_switch(focus);
}

fn log_switch(focus: Focus) {
    let mut line = alloc::string::String::new();
    let _ = input_switch::announce(focus, &mut line);
    log::info!("{line}");
}

/// Hands typed `bytes` to whoever has the input, through the switch; how
/// many were queued for Dom0 (the caller announces them with VIRQ_CONSOLE).
fn route_input(bytes: &[u8]) -> usize {
    let takers = guest_uart::input_takers();
    let mut switch = SWITCH.lock();
    let mut for_dom0 = 0;
    let mut undelivered = 0;
    for &byte in bytes {
        match switch.typed(byte, &takers) {
            Typed::Held => {}
            Typed::Switched(focus) => {
                guest_uart::set_input_domain(match focus {
                    Focus::Domain(id) => Some(id),
                    Focus::Hypervisor => None,
                });
                log_switch(focus);
            }
            Typed::Deliver(typed) => match switch.focus() {
                // Xen's debug keys are not here: the bytes go nowhere.
                Focus::Hypervisor => {}
                Focus::Domain(0) => for_dom0 += input::received(&typed),
                Focus::Domain(id) => match guest_uart::of_domain(id) {
                    Some(uart) => undelivered += uart.receive(&typed),
                    None => undelivered += typed.len(),
                },
            },
        }
    }
    if undelivered > 0 {
        match switch.focus() {
            Focus::Domain(id) if guest_uart::of_domain(id).is_none() => {
                log::warn!(
                    "d{id} takes no input any more: {undelivered} byte(s) dropped (type 'CTRL-a' three times to switch input)"
                )
            }
            Focus::Domain(id) => log::warn!("d{id}: vPL011 input full: {undelivered} byte(s) dropped"),
            Focus::Hypervisor => {}
        }
    }
    for_dom0
}

/// A guest's console output, as it comes (new lines get a carriage return,
/// as in log lines).
pub fn write_bytes(bytes: &[u8]) {
    let mut uart = UART.lock();
    match uart.as_mut() {
        Some(uart) => uart.write_bytes(bytes),
        None => bytes.utf8_chunks().for_each(|chunk| {
            semihosting::write(chunk.valid());
            if !chunk.invalid().is_empty() {
                semihosting::write("?");
            }
        }),
    }
}

/// Waits until the UART has sent everything (before powering off).
pub fn flush() {
    if let Some(uart) = UART.lock().as_ref() {
        uart.flush();
    }
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let tag = match record.level() {
            log::Level::Error => "ERROR: ",
            log::Level::Warn => "WARNING: ",
            _ => "",
        };
        print(format_args!("(HV) {tag}{}\n", record.args()));
    }

    fn flush(&self) {
        flush();
    }
}

static LOGGER: Logger = Logger;

/// Installs the logger at the default level.
pub fn init_logging() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

pub fn set_level(level: LogLevel) {
    log::set_max_level(match level {
        LogLevel::None => log::LevelFilter::Off,
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warning => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::All => log::LevelFilter::Trace,
    });
}

#[macro_export]
macro_rules! println_emergency {
    ($($arg:tt)*) => { $crate::console::print_emergency(format_args!("{}\n", format_args!($($arg)*))) };
}
