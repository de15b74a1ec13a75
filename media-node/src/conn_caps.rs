//! Caps on open TCP connections, in all and per client address, shared by
//! every TCP listener of the node (TURN over TCP and TLS, the SFU control
//! API) and of the local stack, so one address cannot hold every slot.
//!
//! [`ConnCaps::admit`] takes a slot for a new connection or refuses it; the
//! [`ConnSlot`] gives the slot back when dropped, so a slot lives exactly as
//! long as whatever owns it (the stream, the connection's task).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Open-connection counts, in all and per client address.
#[derive(Debug)]
pub struct ConnCaps {
    open: Mutex<Counts>,
    max: usize,
    max_per_ip: usize,
}

#[derive(Debug, Default)]
struct Counts {
    all: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection's place in its [`ConnCaps`], given back on drop.
#[derive(Debug)]
pub struct ConnSlot {
    caps: Arc<ConnCaps>,
    ip: IpAddr,
}

impl ConnCaps {
    /// At most `max` connections open at once (at least 1), and at most
    /// `max_per_ip` from one address (0: no per-address cap).
    pub fn new(max: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(Counts::default()),
            max: max.max(1),
            max_per_ip,
        })
    }

    /// A slot for a connection from `ip`, or `None` when the listener or
    /// that address is at its cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if open.all >= self.max || (self.max_per_ip > 0 && from_ip >= self.max_per_ip) {
            return None;
        }
        open.all += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Some(ConnSlot {
            caps: Arc::clone(self),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).all
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self
            .caps
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.all = open.all.saturating_sub(1);
        if let Some(count) = open.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn one_address_cannot_take_every_slot() {
        let caps = ConnCaps::new(4, 2);
        let a: Vec<_> = (0..2)
            .map(|_| caps.admit(A).expect("under the caps"))
            .collect();
        assert!(caps.admit(A).is_none(), "A is at its cap");
        let b: Vec<_> = (0..2)
            .map(|_| caps.admit(B).expect("B has its own"))
            .collect();
        assert_eq!(caps.open(), 4);
        drop(b);
        assert!(caps.admit(A).is_none(), "still at A's cap");
        drop(a);
        assert_eq!(caps.open(), 0);
        assert!(caps.admit(A).is_some());
    }

    #[test]
    fn the_total_cap_holds_across_addresses_and_zero_means_no_per_address_cap() {
        let caps = ConnCaps::new(3, 0);
        let held: Vec<_> = (0..3)
            .map(|_| caps.admit(A).expect("no per-address cap"))
            .collect();
        assert!(caps.admit(B).is_none(), "the listener is full");
        drop(held);
        assert!(caps.admit(B).is_some());
    }
}
