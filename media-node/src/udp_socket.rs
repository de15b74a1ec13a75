//! UDP sockets for the TURN listener and the relays, with kernel buffers
//! sized for a busy relay.
//!
//! A relay's packets arrive in bursts: one reading task serves a listener
//! shared by every client, and while the runtime runs other tasks the
//! kernel queues what comes in. With Linux's default receive buffer
//! (`net.core.rmem_default`, about 208 KiB, a few hundred small datagrams)
//! that queue is full within milliseconds at tens of thousands of packets
//! per second, and the kernel drops the rest. So the node asks for larger
//! buffers (`SO_RCVBUF`, `SO_SNDBUF`), as coturn does; Linux caps the
//! request at `net.core.rmem_max` / `wmem_max`, so the node reports what it
//! got ([`buffer_sizes`]) and warns when it is short.
//!
//! The listener can also be several sockets on one port
//! (`SO_REUSEPORT`), each with its own reading task: the kernel picks the
//! socket from a hash of the client's address and port, so one client
//! always reaches the same socket (and the same allocation table).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;

/// How to open a UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UdpOptions {
    /// `SO_RCVBUF` and `SO_SNDBUF` to ask for, bytes; 0 keeps the kernel's
    /// defaults.
    pub(crate) buffer_bytes: usize,
    /// Let other sockets bind the same address (`SO_REUSEPORT`).
    pub(crate) reuse_port: bool,
}

/// Binds a non-blocking UDP socket on `addr` with `options`. Synchronous:
/// nothing here waits.
pub(crate) fn bind(addr: SocketAddr, options: UdpOptions) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if options.buffer_bytes > 0 {
        // Set before bind, so the first packets already find room.
        socket.set_recv_buffer_size(options.buffer_bytes)?;
        socket.set_send_buffer_size(options.buffer_bytes)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// The receive and send buffer sizes the kernel gave `socket`, bytes (on
/// Linux twice what was granted: the kernel counts its bookkeeping too).
pub(crate) fn buffer_sizes(socket: &UdpSocket) -> io::Result<(usize, usize)> {
    let socket = SockRef::from(socket);
    Ok((socket.recv_buffer_size()?, socket.send_buffer_size()?))
}

/// Whether the kernel granted less than `asked` for either buffer; true
/// means the host's `net.core.rmem_max` / `wmem_max` is lower than the
/// configured size.
pub(crate) fn capped(granted: (usize, usize), asked: usize) -> bool {
    asked > 0 && (granted.0 < asked || granted.1 < asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[tokio::test]
    async fn a_small_buffer_request_is_granted() {
        // Under every kernel's default maximum (Linux: 208 KiB).
        let asked = 64 * 1024;
        let socket = bind(
            loopback(),
            UdpOptions {
                buffer_bytes: asked,
                reuse_port: false,
            },
        )
        .unwrap();
        let (recv, send) = buffer_sizes(&socket).unwrap();
        assert!(recv >= asked && send >= asked, "{recv} {send}");
        assert!(!capped((recv, send), asked));
    }

    #[tokio::test]
    async fn zero_keeps_the_kernel_default() {
        let plain = std::net::UdpSocket::bind(loopback()).unwrap();
        let default = SockRef::from(&plain).recv_buffer_size().unwrap();
        let socket = bind(
            loopback(),
            UdpOptions {
                buffer_bytes: 0,
                reuse_port: false,
            },
        )
        .unwrap();
        assert_eq!(buffer_sizes(&socket).unwrap().0, default);
    }

    #[tokio::test]
    async fn a_request_over_the_host_maximum_is_reported_as_capped() {
        let asked = 1 << 30;
        let socket = bind(
            loopback(),
            UdpOptions {
                buffer_bytes: asked,
                reuse_port: false,
            },
        )
        .unwrap();
        assert!(capped(buffer_sizes(&socket).unwrap(), asked));
    }

    #[tokio::test]
    async fn reuse_port_shares_one_port_and_both_sockets_receive() {
        let options = UdpOptions {
            buffer_bytes: 0,
            reuse_port: true,
        };
        let first = bind(loopback(), options).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind(addr, options).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        // Without SO_REUSEPORT the port is taken.
        let plain = UdpOptions {
            buffer_bytes: 0,
            reuse_port: false,
        };
        assert!(bind(addr, plain).is_err());

        // Clients on many ports are spread over both sockets; each client
        // sticks to one.
        let mut clients = Vec::new();
        for _ in 0..32 {
            let client = UdpSocket::bind(loopback()).await.unwrap();
            client.send_to(b"x", addr).await.unwrap();
            clients.push(client);
        }
        let mut seen = [0usize; 2];
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        for _ in 0..32 {
            tokio::select! {
                got = first.recv_from(&mut a) => { got.unwrap(); seen[0] += 1 }
                got = second.recv_from(&mut b) => { got.unwrap(); seen[1] += 1 }
            }
        }
        assert_eq!(seen[0] + seen[1], 32);
        assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
    }
}
