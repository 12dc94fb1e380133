//! Console input for Dom0: bytes typed on the hypervisor's UART wait in a
//! ring until Dom0 reads them with CONSOLEIO_read; VIRQ_CONSOLE announces
//! them. Bytes arrive in the UART's interrupt, on whichever CPU takes it,
//! while vCPUs read in hypercalls. EL2 runs with interrupts masked, so a
//! spin lock is never taken twice on one CPU.

/// A bounded FIFO of bytes.
pub struct ByteRing<const N: usize> {
    bytes: [u8; N],
    start: usize,
    len: usize,
}

impl<const N: usize> ByteRing<N> {
    pub const fn new() -> Self {
        Self { bytes: [0; N], start: 0, len: 0 }
    }

    /// Adds `byte`; false if the ring is full (the byte is dropped).
    pub fn push(&mut self, byte: u8) -> bool {
        if self.len == N {
            return false;
        }
        self.bytes[(self.start + self.len) % N] = byte;
        self.len += 1;
        true
    }

    /// Takes the oldest byte, if any.
    pub fn pop(&mut self) -> Option<u8> {
        let mut one = [0u8];
        (self.take(&mut one) == 1).then_some(one[0])
    }

    /// How many bytes wait.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `buf` with the oldest bytes; how many it took.
    pub fn take(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.len);
        for slot in &mut buf[..n] {
            *slot = self.bytes[self.start];
            self.start = (self.start + 1) % N;
        }
        self.len -= n;
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
static INPUT: spin::Mutex<ByteRing<1024>> = spin::Mutex::new(ByteRing::new());

/// Bytes typed on the console, for Dom0, from the UART's interrupt; how
/// many were queued (the caller announces them with one VIRQ_CONSOLE).
#[cfg(target_os = "none")]
pub fn received(bytes: &[u8]) -> usize {
    let mut input = INPUT.lock();
    bytes.iter().filter(|&&b| input.push(b)).count()
}

/// Input for CONSOLEIO_read.
#[cfg(target_os = "none")]
pub fn take(buf: &mut [u8]) -> usize {
    INPUT.lock().take(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_until_full_then_drops() {
        let mut ring = ByteRing::<8>::new();
        assert_eq!(ring.take(&mut [0; 4]), 0);
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
        let mut ring = ByteRing::<4>::new();
        for round in 0..10_000u32 {
            assert!(ring.push(round as u8));
            assert!(ring.push((round >> 8) as u8));
            let mut two = [0u8; 2];
            assert_eq!(ring.take(&mut two), 2);
            assert_eq!(two, [round as u8, (round >> 8) as u8]);
        }
    }
}
