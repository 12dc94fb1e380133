//! Interrupts waiting for a free list register. A CPU has only a few list
//! registers (4 on Cortex-A57); when they are all in use, further
//! interrupts wait here, in arrival order, until the maintenance interrupt
//! says registers have emptied.

use super::list_register::ListRegister;
use arrayvec::ArrayVec;

/// Enough for every private interrupt plus every SPI a board like QEMU's
/// virt has pending at once; a hardware interrupt cannot be queued twice,
/// since it stays active until Dom0 deactivates it.
pub const CAPACITY: usize = 256;

#[derive(Debug, Default)]
pub struct Overflow {
    waiting: ArrayVec<ListRegister, CAPACITY>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl Overflow {
    pub const fn new() -> Self {
        Self { waiting: ArrayVec::new_const() }
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Queues `lr` unless the same interrupt already waits.
    pub fn push(&mut self, lr: ListRegister) -> Result<(), Full> {
        if self.contains(lr.intid()) {
            return Ok(());
        }
        self.waiting.try_push(lr).map_err(|_| Full)
    }

    pub fn contains(&self, intid: u32) -> bool {
        self.waiting.iter().any(|w| w.intid() == intid)
    }

    /// The oldest waiting interrupt.
    pub fn pop(&mut self) -> Option<ListRegister> {
        (!self.waiting.is_empty()).then(|| self.waiting.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_drops_duplicates() {
        let mut q = Overflow::new();
        for intid in [40, 41, 40, 42] {
            q.push(ListRegister::hardware(intid)).unwrap();
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop().map(|l| l.intid()), Some(40));
        assert_eq!(q.pop().map(|l| l.intid()), Some(41));
        assert_eq!(q.pop().map(|l| l.intid()), Some(42));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn refuses_beyond_capacity() {
        let mut q = Overflow::new();
        for intid in 0..CAPACITY as u32 {
            q.push(ListRegister::hardware(32 + intid)).unwrap();
        }
        assert_eq!(q.push(ListRegister::hardware(2000)), Err(Full));
        assert!(q.contains(32));
    }
}
