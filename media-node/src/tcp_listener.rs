//! TCP listeners with a listen backlog sized for bursts.
//!
//! `tokio::net::TcpListener::bind` listens with the standard library's
//! backlog of 128. When more clients than that connect at once and the
//! accept loop is behind (a busy machine), Linux drops the handshakes'
//! final ACKs: those clients believe they are connected, the server never
//! sees them, and they hang until their own timeout (300 simultaneous TURN
//! TCP connects on a loaded 2-core machine lost 10 this way). So every
//! listener of the node and of the local stack asks for [`BACKLOG`]; Linux
//! caps it at `net.core.somaxconn` (4096 by default since 5.4).

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The listen backlog asked for: connections the kernel completes and
/// queues while the accept loop catches up.
pub const BACKLOG: u32 = 1024;

/// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) and
/// listens with [`BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// 300 clients connect while nobody accepts; then every one of them is
    /// waiting in the queue. With a backlog of 128 the kernel drops the
    /// handshakes past 129: their connects stall (the SYN is dropped) or
    /// their accepts wait for a SYN-ACK retransmission (a second or more).
    #[tokio::test]
    async fn a_burst_of_connects_waits_in_the_backlog() {
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok());
        if somaxconn.is_some_and(|max| max < 300) {
            eprintln!("net.core.somaxconn is {somaxconn:?}: the kernel caps any backlog below 300");
            return;
        }
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut clients = Vec::new();
        for _ in 0..300 {
            let connect = tokio::net::TcpStream::connect(addr);
            let client = tokio::time::timeout(Duration::from_secs(2), connect)
                .await
                .unwrap_or_else(|_| panic!("connect {} stalled", clients.len()))
                .expect("connect");
            clients.push(client);
        }
        for n in 0..clients.len() {
            tokio::time::timeout(Duration::from_millis(500), listener.accept())
                .await
                .unwrap_or_else(|_| panic!("connection {n} was not queued"))
                .expect("accept");
        }
    }
}
