//! Where typed console input goes, switched as Xen switches it
//! (`xen/drivers/char/console.c`, `serial_rx` and `switch_serial_input`):
//! Ctrl-A typed three times in a row moves the input on, from the
//! hypervisor to Dom0, to each DomU with a vPL011 in id order, and back to
//! the hypervisor. Those three Ctrl-As are eaten; fewer than three, then
//! another byte, pass through as typed (the Ctrl-As first), so a shell
//! still gets a single Ctrl-A (beginning of line). Dom0 has the input from
//! the boot on, as under Xen.
//!
//! Xen 4.17 cycles through every boot domain, and for one without a
//! vPL011 prints "Cannot send chars" for each byte; here such a domain,
//! or one that has ended, is skipped (as later Xen skips domains that are
//! gone). With no DomU with a vPL011 the input goes between the
//! hypervisor and Dom0, as under Xen without DomUs. Pure: the caller
//! says which domains can take input and delivers the bytes.

use arrayvec::ArrayVec;

/// The byte that switches: Ctrl-A, Xen's default `conswitch=a`.
pub const SWITCH_BYTE: u8 = 0x01;
/// How many in a row switch.
const SWITCH_COUNT: u8 = 3;

/// Who gets typed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Focus {
    /// The hypervisor (Xen's debug keys; here nothing: the bytes are dropped).
    Hypervisor,
    /// A domain by id: Dom0's console ring, or a DomU's vPL011.
    Domain(u16),
}

/// What a typed byte did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// These bytes go to the focus (up to two held-back Ctrl-As, then the byte).
    Deliver(ArrayVec<u8, 3>),
    /// Nothing yet: a Ctrl-A is held back.
    Held,
    /// The input moved to this focus.
    Switched(Focus),
}

pub struct InputSwitch {
    focus: Focus,
    /// Ctrl-As typed in a row and held back.
    held: u8,
}

impl Default for InputSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl InputSwitch {
    /// Input to Dom0, as Xen leaves it at the end of its boot.
    pub const fn new() -> Self {
        Self { focus: Focus::Domain(0), held: 0 }
    }

    pub fn focus(&self) -> Focus {
        self.focus
    }

    /// Takes a typed byte. `domus` are the DomUs that can take input now
    /// (any order); the switch skips the others.
    pub fn typed(&mut self, byte: u8, domus: &[u16]) -> Typed {
        if byte == SWITCH_BYTE {
            self.held += 1;
            if self.held < SWITCH_COUNT {
                return Typed::Held;
            }
            self.held = 0;
            self.focus = next(self.focus, domus);
            return Typed::Switched(self.focus);
        }
        let mut bytes = ArrayVec::new();
        for _ in 0..core::mem::take(&mut self.held) {
            bytes.push(SWITCH_BYTE);
        }
        bytes.push(byte);
        Typed::Deliver(bytes)
    }
}

/// The focus after `current`: the hypervisor, Dom0, then the DomUs of
/// `domus` by id, then the hypervisor again.
fn next(current: Focus, domus: &[u16]) -> Focus {
    let after = |id: u16| domus.iter().copied().filter(|&d| d > id && d != 0).min();
    match current {
        Focus::Hypervisor => Focus::Domain(0),
        Focus::Domain(id) => after(id).map_or(Focus::Hypervisor, Focus::Domain),
    }
}

/// The log line of a switch, in Xen's words.
pub fn announce(focus: Focus, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
    match focus {
        Focus::Hypervisor => write!(out, "*** Serial input to the hypervisor (it takes no keys: input is dropped)")?,
        Focus::Domain(id) => write!(out, "*** Serial input to DOM{id}")?,
    }
    write!(out, " (type 'CTRL-a' three times to switch input)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(bytes: &[u8]) -> Typed {
        Typed::Deliver(bytes.iter().copied().collect())
    }

    #[test]
    fn three_ctrl_a_cycle_through_the_domains_with_a_uart() {
        let mut switch = InputSwitch::new();
        assert_eq!(switch.focus(), Focus::Domain(0), "Dom0 from the boot, as Xen");
        let domus = [3, 1];
        let mut seen = Vec::new();
        for _ in 0..4 {
            assert_eq!(switch.typed(SWITCH_BYTE, &domus), Typed::Held);
            assert_eq!(switch.typed(SWITCH_BYTE, &domus), Typed::Held);
            match switch.typed(SWITCH_BYTE, &domus) {
                Typed::Switched(f) => seen.push(f),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, [Focus::Domain(1), Focus::Domain(3), Focus::Hypervisor, Focus::Domain(0)]);
    }

    #[test]
    fn fewer_than_three_pass_through_before_the_next_byte() {
        let mut switch = InputSwitch::new();
        assert_eq!(switch.typed(b'a', &[]), deliver(b"a"));
        assert_eq!(switch.typed(SWITCH_BYTE, &[]), Typed::Held);
        assert_eq!(switch.typed(b'b', &[]), deliver(&[SWITCH_BYTE, b'b']));
        switch.typed(SWITCH_BYTE, &[]);
        switch.typed(SWITCH_BYTE, &[]);
        assert_eq!(switch.typed(b'c', &[]), deliver(&[SWITCH_BYTE, SWITCH_BYTE, b'c']));
        assert_eq!(switch.focus(), Focus::Domain(0));
        // Six in a row switch twice and pass nothing.
        for _ in 0..5 {
            switch.typed(SWITCH_BYTE, &[]);
        }
        assert_eq!(switch.typed(SWITCH_BYTE, &[]), Typed::Switched(Focus::Domain(0)));
    }

    #[test]
    fn without_domus_input_goes_between_the_hypervisor_and_dom0() {
        assert_eq!(next(Focus::Domain(0), &[]), Focus::Hypervisor);
        assert_eq!(next(Focus::Hypervisor, &[]), Focus::Domain(0));
        // A DomU that went away while it had the input: on to the next one.
        assert_eq!(next(Focus::Domain(2), &[1, 3]), Focus::Domain(3));
        assert_eq!(next(Focus::Domain(2), &[1]), Focus::Hypervisor);
        assert_eq!(next(Focus::Domain(0), &[0, 5]), Focus::Domain(5), "Dom0 is not a DomU");
    }

    #[test]
    fn announcements_are_xens() {
        let mut line = String::new();
        announce(Focus::Domain(1), &mut line).unwrap();
        assert_eq!(line, "*** Serial input to DOM1 (type 'CTRL-a' three times to switch input)");
        line.clear();
        announce(Focus::Hypervisor, &mut line).unwrap();
        assert!(line.starts_with("*** Serial input to the hypervisor"));
    }
}
