//! Console input for Dom0: bytes typed on the hypervisor's UART wait in a
//! ring until Dom0 reads them with CONSOLEIO_read, and each one raises
//! VIRQ_CONSOLE. Bytes arrive in interrupt context on whichever CPU takes
//! the UART's interrupt, while vCPUs read: the ring is a lock-free bounded
//! queue (sequence number per slot), safe for any number of producers and
//! consumers without ever spinning on a lock.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

struct Slot {
    /// `position` when free for the producer of that position,
    /// `position + 1` once holding its byte.
    sequence: AtomicUsize,
    byte: AtomicU8,
}

pub struct ByteRing<const N: usize> {
    slots: [Slot; N],
    head: AtomicUsize,
    tail: AtomicUsize,
}

impl<const N: usize> ByteRing<N> {
    pub const fn new() -> Self {
        assert!(N.is_power_of_two());
        let mut slots = [const { Slot { sequence: AtomicUsize::new(0), byte: AtomicU8::new(0) } }; N];
        let mut i = 0;
        while i < N {
            slots[i] = Slot { sequence: AtomicUsize::new(i), byte: AtomicU8::new(0) };
            i += 1;
        }
        Self { slots, head: AtomicUsize::new(0), tail: AtomicUsize::new(0) }
    }

    /// Adds `byte`; false if the ring is full (the byte is dropped).
    pub fn push(&self, byte: u8) -> bool {
        let mut position = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[position % N];
            let sequence = slot.sequence.load(Ordering::Acquire);
            match sequence.wrapping_sub(position) as isize {
                0 => match self.tail.compare_exchange_weak(
                    position,
                    position.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        slot.byte.store(byte, Ordering::Relaxed);
                        slot.sequence.store(position.wrapping_add(1), Ordering::Release);
                        return true;
                    }
                    Err(now) => position = now,
                },
                d if d < 0 => return false,
                _ => position = self.tail.load(Ordering::Relaxed),
            }
        }
    }

    /// Takes the oldest byte, if any.
    pub fn pop(&self) -> Option<u8> {
        let mut position = self.head.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[position % N];
            let sequence = slot.sequence.load(Ordering::Acquire);
            match sequence.wrapping_sub(position.wrapping_add(1)) as isize {
                0 => match self.head.compare_exchange_weak(
                    position,
                    position.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let byte = slot.byte.load(Ordering::Relaxed);
                        slot.sequence.store(position.wrapping_add(N), Ordering::Release);
                        return Some(byte);
                    }
                    Err(now) => position = now,
                },
                d if d < 0 => return None,
                _ => position = self.head.load(Ordering::Relaxed),
            }
        }
    }

    /// Fills `buf` from the ring; how many bytes it took.
    pub fn take(&self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match self.pop() {
                Some(b) => buf[n] = b,
                None => break,
            }
            n += 1;
        }
        n
    }
}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes Dom0 has not read yet; more are dropped, as Xen does.
#[cfg(target_os = "none")]
static INPUT: ByteRing<1024> = ByteRing::new();

/// One byte typed on the console, for Dom0. Called from the UART's
/// interrupt handler, on any CPU.
#[cfg(target_os = "none")]
pub fn received(byte: u8) {
    if !INPUT.push(byte) {
        return;
    }
    if let Some(dom0) = crate::domain::dom0() {
        crate::xen::events::raise_virq(&dom0.xen, &crate::xen::board::Hardware, crate::xen::events::virq::CONSOLE);
    }
}

/// Input for CONSOLEIO_read.
#[cfg(target_os = "none")]
pub fn take(buf: &mut [u8]) -> usize {
    INPUT.take(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_until_full_then_drops() {
        let ring = ByteRing::<8>::new();
        assert_eq!(ring.pop(), None);
        for b in 0..8 {
            assert!(ring.push(b));
        }
        assert!(!ring.push(99), "full");
        let mut buf = [0u8; 5];
        assert_eq!(ring.take(&mut buf), 5);
        assert_eq!(buf, [0, 1, 2, 3, 4]);
        assert!(ring.push(8));
        let mut rest = [0u8; 16];
        assert_eq!(ring.take(&mut rest), 4);
        assert_eq!(&rest[..4], &[5, 6, 7, 8]);
        assert_eq!(ring.take(&mut rest), 0);
    }

    #[test]
    fn wraps_around_many_times() {
        let ring = ByteRing::<4>::new();
        for round in 0..10_000u32 {
            assert!(ring.push(round as u8));
            assert!(ring.push((round >> 8) as u8));
            assert_eq!(ring.pop(), Some(round as u8));
            assert_eq!(ring.pop(), Some((round >> 8) as u8));
        }
    }

    const PER_PRODUCER: usize = 64 * 300;

    /// Three producers (interrupts on several CPUs) and `consumers` threads
    /// (vCPUs reading) sharing a small ring; what each consumer saw.
    fn run(consumers: usize) -> Vec<Vec<u8>> {
        use std::sync::atomic::AtomicUsize;
        let ring = Arc::new(ByteRing::<64>::new());
        // Consumers stop when every byte is taken, not after a while idle:
        // on a loaded machine a producer may sleep for any time.
        let taken = Arc::new(AtomicUsize::new(0));
        // Set once every producer is done: a lost byte then fails the
        // count below instead of hanging the test.
        let produced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let producers: Vec<_> = (0..3u8)
            .map(|p| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        // Producer in the top 2 bits, a counter below.
                        while !ring.push((p << 6) | (i % 64) as u8) {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..consumers)
            .map(|_| {
                let (ring, taken, produced) = (ring.clone(), taken.clone(), produced.clone());
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while taken.load(Ordering::Relaxed) < 3 * PER_PRODUCER {
                        // Read before popping: empty after everything was
                        // produced means nothing more will come.
                        let done = produced.load(Ordering::Acquire);
                        match ring.pop() {
                            Some(b) => {
                                seen.push(b);
                                taken.fetch_add(1, Ordering::Relaxed);
                            }
                            None if done => break,
                            None => std::thread::yield_now(),
                        }
                    }
                    seen
                })
            })
            .collect();
        producers.into_iter().for_each(|p| p.join().unwrap());
        produced.store(true, Ordering::Release);
        consumers.into_iter().map(|c| c.join().unwrap()).collect()
    }

    #[test]
    fn one_consumer_sees_each_producer_in_order() {
        let seen = run(1).remove(0);
        for p in 0..3u8 {
            let mine: Vec<u8> = seen.iter().filter(|&&b| b >> 6 == p).map(|b| b & 63).collect();
            assert_eq!(mine.len(), PER_PRODUCER);
            assert!(mine.iter().enumerate().all(|(i, &b)| b as usize == i % 64), "producer {p} out of order");
        }
    }

    #[test]
    fn concurrent_consumers_lose_and_duplicate_nothing() {
        let mut counts = [0usize; 256];
        for seen in run(2) {
            seen.iter().for_each(|&b| counts[b as usize] += 1);
        }
        for (byte, &count) in counts.iter().enumerate() {
            assert_eq!(count, if byte >> 6 < 3 { PER_PRODUCER / 64 } else { 0 }, "byte {byte:#x}");
        }
    }
}
