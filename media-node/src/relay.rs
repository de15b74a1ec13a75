//! Relay sockets: one UDP socket per allocation, bound in the configured port
//! range and advertised at the public IP, wrapped so that the node counts
//! relayed packets and knows whose allocation it is (for the per-user quota).

use std::any::Any;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::net::UdpSocket;
use turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

use crate::admission::{Admission, Owner};
use crate::udp_socket::{self, UdpOptions};

/// The owner (user and client IP) of the Allocate request being handled on
/// one listener.
///
/// The TURN server handles one listener's packets one at a time, so the
/// front door sets this just before it passes an authenticated Allocate on,
/// and the relay generator takes it when the server asks for a socket.
#[derive(Debug, Default)]
pub(crate) struct PendingOwner(Mutex<Option<Owner>>);

impl PendingOwner {
    pub(crate) fn set(&self, owner: Option<Owner>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = owner;
    }

    /// Not taken: with EVEN-PORT the server binds a throwaway socket first,
    /// then the real one, both for the same request.
    fn peek(&self) -> Option<Owner> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Binds relay sockets in `[min_port, max_port]` on `bind_ip`, advertised as
/// `public_ip`.
pub(crate) struct RelayPorts {
    pub(crate) bind_ip: IpAddr,
    pub(crate) public_ip: IpAddr,
    pub(crate) min_port: u16,
    pub(crate) max_port: u16,
    /// `SO_RCVBUF` and `SO_SNDBUF` for each relay socket; 0: the kernel's.
    pub(crate) buffer_bytes: usize,
    pub(crate) admission: Arc<Admission>,
    pub(crate) pending: Arc<PendingOwner>,
}

impl RelayPorts {
    fn bind(&self, port: u16) -> std::io::Result<UdpSocket> {
        let options = UdpOptions {
            buffer_bytes: self.buffer_bytes,
            reuse_port: false,
        };
        udp_socket::bind(SocketAddr::new(self.bind_ip, port), options)
    }

    fn bind_in_range(&self, requested_port: u16) -> Result<UdpSocket, turn::Error> {
        if requested_port != 0 {
            return Ok(self.bind(requested_port)?);
        }
        let span = u32::from(self.max_port - self.min_port) + 1;
        // Start anywhere, then walk the whole range: a nearly full range
        // still finds its last free port.
        let start = rand_offset(span);
        for i in 0..span {
            let port = self.min_port as u32 + (start + i) % span;
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if let Ok(socket) = self.bind(port) {
                return Ok(socket);
            }
        }
        Err(turn::Error::ErrMaxRetriesExceeded)
    }
}

/// Where in the port range a search starts: random, so allocations spread
/// and a relay port is not guessable from the last one.
fn rand_offset(span: u32) -> u32 {
    rand::random_range(0..span.max(1))
}

#[async_trait]
impl RelayAddressGenerator for RelayPorts {
    fn validate(&self) -> Result<(), turn::Error> {
        if self.min_port == 0 || self.max_port < self.min_port {
            return Err(turn::Error::ErrMaxPortLessThanMinPort);
        }
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let owner = self.pending.peek();
        if use_ipv4 != self.bind_ip.is_ipv4() {
            return Err(turn::Error::ErrInvalidRequestedFamilyValue);
        }
        let socket = self.bind_in_range(requested_port)?;
        let port = socket.local_addr()?.port();
        self.admission.acquire(owner.as_ref());
        let conn = RelayConn {
            socket,
            started: AtomicBool::new(false),
            lease: Lease {
                owner,
                admission: Arc::clone(&self.admission),
                released: AtomicBool::new(false),
            },
        };
        tracing::debug!(relay_port = port, owner = ?conn.lease.owner, "relay socket bound");
        Ok((Arc::new(conn), SocketAddr::new(self.public_ip, port)))
    }
}

/// One allocation's hold on the node's counters, given back once.
struct Lease {
    owner: Option<Owner>,
    admission: Arc<Admission>,
    released: AtomicBool,
}

impl Lease {
    fn release(&self) {
        if !self.released.swap(true, Ordering::SeqCst) {
            self.admission.release(self.owner.as_ref());
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release();
    }
}

/// An allocation's relay socket.
struct RelayConn {
    socket: UdpSocket,
    /// Set when the server starts reading: a real allocation, not the
    /// EVEN-PORT probe, which is bound and dropped unread.
    started: AtomicBool,
    lease: Lease,
}

#[async_trait]
impl Conn for RelayConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.socket.recv(buf).await?)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        if !self.started.swap(true, Ordering::Relaxed) {
            self.lease
                .admission
                .metrics
                .allocations_total
                .fetch_add(1, Ordering::Relaxed);
        }
        let (n, from) = self.socket.recv_from(buf).await?;
        self.lease.admission.metrics.peer_in(n);
        Ok((n, from))
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        Ok(self.socket.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        let n = self.socket.send_to(buf, target).await?;
        self.lease.admission.metrics.peer_out(n);
        Ok(n)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        // The allocation is over; the socket itself closes when the server's
        // relay task lets go of it.
        self.lease.release();
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::admission::Policy;
    use crate::metrics::Metrics;
    use crate::PeerFilter;
    use tincan_turn_credentials::TurnSecret;

    fn ports(buffer_bytes: usize) -> RelayPorts {
        let policy = Policy {
            secret: TurnSecret::new("relay-test-secret-of-at-least-32-bytes"),
            realm: "tincan".into(),
            max_per_user: 0,
            max_per_ip: 0,
            max_lifetime_secs: 3600,
            peers: PeerFilter::default(),
            nonce_ttl_secs: 600,
        };
        RelayPorts {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            public_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            min_port: 1024,
            max_port: 65535,
            buffer_bytes,
            admission: Arc::new(Admission::new(policy, Arc::new(Metrics::default()))),
            pending: Arc::new(PendingOwner::default()),
        }
    }

    fn buffers(conn: &Arc<dyn Conn + Send + Sync>) -> (usize, usize) {
        let relay = conn
            .as_any()
            .downcast_ref::<RelayConn>()
            .expect("a relay socket");
        udp_socket::buffer_sizes(&relay.socket).expect("buffer sizes")
    }

    #[tokio::test]
    async fn relay_sockets_get_the_configured_buffers() {
        let asked = 100_000;
        let (conn, addr) = ports(asked).allocate_conn(true, 0).await.expect("bound");
        assert!(addr.port() >= 1024);
        let (receive, send) = buffers(&conn);
        assert!(receive >= asked && send >= asked, "{receive} {send}");
    }

    #[tokio::test]
    async fn zero_leaves_relay_sockets_at_the_kernel_default() {
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let default = socket2::SockRef::from(&plain)
            .recv_buffer_size()
            .expect("SO_RCVBUF");
        let (conn, _) = ports(0).allocate_conn(true, 0).await.expect("bound");
        assert_eq!(buffers(&conn).0, default);
    }
}
