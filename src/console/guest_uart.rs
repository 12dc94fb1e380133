//! The DomUs' vPL011s on the board: each the pure [`Vpl011`] behind a
//! lock, an MMIO device in its domain's regions (at Xen's GUEST_PL011_BASE),
//! its output printed on the hypervisor's console in whole `(d1) ` lines,
//! its interrupt line driving its SPI in the domain's emulated GIC, and its
//! input what the console's switch sends it ([`super::route_input`]).

use super::vpl011::{OutputLines, Vpl011};
use crate::domain::Domain;
use crate::domain::mmio::{MmioDevice, Refused};
use crate::domain::vcpu::Vcpu;
use alloc::sync::Arc;
use alloc::vec::Vec;
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Mutex;

/// The most DomUs with a vPL011 the input switch cycles through.
pub const MAX_UARTS: usize = 64;

pub struct GuestUart {
    domain: &'static Domain,
    /// The SPI its interrupt line drives (Xen's GUEST_VPL011_SPI).
    intid: u32,
    state: Mutex<State>,
}

struct State {
    uart: Vpl011,
    output: OutputLines,
    /// The line as last given to the GIC.
    line: bool,
}

/// Every DomU's vPL011, in the order they were built (by id).
static UARTS: Mutex<Vec<Arc<GuestUart>>> = Mutex::new(Vec::new());

/// The domain whose output is printed at once, byte by byte: the one with
/// the console input ([`NO_DOMAIN`] while the hypervisor has it).
static INPUT_DOMAIN: AtomicU32 = AtomicU32::new(0);
pub const NO_DOMAIN: u32 = u32::MAX;

/// Says which domain now has the console input.
pub fn set_input_domain(id: Option<u16>) {
    INPUT_DOMAIN.store(id.map_or(NO_DOMAIN, u32::from), Ordering::Release);
}

/// Makes `domain`'s vPL011, driving SPI `intid`: the device for its MMIO
/// regions, kept here too for its input.
pub fn create(domain: &'static Domain, intid: u32) -> Arc<GuestUart> {
    let uart = Arc::new(GuestUart {
        domain,
        intid,
        state: Mutex::new(State { uart: Vpl011::new(), output: OutputLines::new(domain.id.0), line: false }),
    });
    UARTS.lock().push(uart.clone());
    uart
}

/// The DomUs that can take console input now: those with a vPL011 that
/// have not ended.
pub fn input_takers() -> ArrayVec<u16, MAX_UARTS> {
    UARTS.lock().iter().filter(|u| !u.domain.has_ended()).map(|u| u.domain.id.0).take(MAX_UARTS).collect()
}

/// DomU `id`'s vPL011, if it has one and has not ended.
pub fn of_domain(id: u16) -> Option<Arc<GuestUart>> {
    UARTS.lock().iter().find(|u| u.domain.id.0 == id && !u.domain.has_ended()).cloned()
}

impl GuestUart {
    /// Bytes typed for this domain: into its receive FIFO, its interrupt
    /// raised as its mask allows. How many were dropped (its ring full).
    pub fn receive(&self, bytes: &[u8]) -> usize {
        let mut state = self.state.lock();
        let dropped = bytes.iter().filter(|&&b| !state.uart.receive(b)).count();
        self.update_line(&mut state);
        dropped
    }

    /// Gives the GIC the interrupt line if it changed. Called with the
    /// state locked, so two CPUs' updates reach the GIC in their order.
    fn update_line(&self, state: &mut State) {
        let line = state.uart.interrupt_line();
        if line != state.line {
            state.line = line;
            crate::arch::vgic::set_line(self.domain, self.intid, line);
        }
    }
}

impl MmioDevice for GuestUart {
    fn read(&self, _: &Vcpu, offset: u64, width: u8) -> Result<u64, Refused> {
        let mut state = self.state.lock();
        let value = state.uart.read(offset, width);
        self.update_line(&mut state);
        Ok(value)
    }

    fn write(&self, _: &Vcpu, offset: u64, width: u8, value: u64) -> Result<(), Refused> {
        let mut state = self.state.lock();
        if let Some(byte) = state.uart.write(offset, width, value) {
            let has_input = INPUT_DOMAIN.load(Ordering::Acquire) == u32::from(self.domain.id.0);
            state.output.push(byte, has_input, &mut |piece| super::write_bytes(piece));
        }
        self.update_line(&mut state);
        Ok(())
    }
}
