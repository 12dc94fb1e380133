//! The Arm PL011 UART: transmit, and receive by interrupt.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_bitfields! [u32,
    /// Flag register.
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// Busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) [],
    ],
    /// Interrupt mask set/clear, and interrupt clear.
    INT [
        /// Receive timeout: bytes sit in the FIFO below its trigger level.
        RT OFFSET(6) NUMBITS(1) [],
        /// Receive FIFO at its trigger level.
        RX OFFSET(4) NUMBITS(1) [],
    ],
    /// Control register.
    CR [
        RXE OFFSET(9) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        UARTEN OFFSET(0) NUMBITS(1) [],
    ],
];

register_structs! {
    pub Registers {
        (0x000 => dr: ReadWrite<u32>),
        (0x004 => _reserved0),
        (0x018 => fr: ReadOnly<u32, FR::Register>),
        (0x01c => _reserved1),
        (0x030 => cr: ReadWrite<u32, CR::Register>),
        (0x034 => _reserved2),
        (0x038 => imsc: ReadWrite<u32, INT::Register>),
        (0x03c => _reserved3),
        (0x044 => icr: ReadWrite<u32, INT::Register>),
        (0x048 => _reserved4),
        (0x1000 => @END),
    }
}

pub struct Pl011 {
    registers: &'static Registers,
}

// SAFETY: the registers are MMIO; callers serialise access through the
// console lock, and the PL011 tolerates accesses from any CPU.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must be the physical (identity-mapped) address of a PL011's
    /// 4 KiB register block that nothing else drives.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: the caller vouches for the address; the block is MMIO that
        // stays mapped for the hypervisor's lifetime.
        let registers = unsafe { &*(base as *const Registers) };
        Self { registers }
    }

    /// Turns the UART on for transmit and receive, keeping the firmware's
    /// baud rate and line settings (QEMU ignores them; real boards set them).
    pub fn enable(&self) {
        self.registers.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    /// Asks for an interrupt whenever received bytes wait.
    pub fn enable_receive_interrupt(&self) {
        self.registers.imsc.write(INT::RX::SET + INT::RT::SET);
    }

    /// Clears the receive interrupts. Done before the bytes are read, not
    /// after: a byte arriving between the last read and a later clear would
    /// wait with its interrupt cleared until another byte came.
    pub fn acknowledge_receive(&self) {
        self.registers.icr.write(INT::RX::SET + INT::RT::SET);
    }

    /// The next received byte, if one waits.
    pub fn read_byte(&self) -> Option<u8> {
        if self.registers.fr.is_set(FR::RXFE) {
            return None;
        }
        Some(self.registers.dr.get() as u8)
    }

    pub fn write_byte(&self, byte: u8) {
        while self.registers.fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.registers.dr.set(u32::from(byte));
    }

    /// Waits until everything written has left the UART.
    pub fn flush(&self) {
        while self.registers.fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }
}

impl Pl011 {
    /// Writes `bytes`, a carriage return before each new line.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
