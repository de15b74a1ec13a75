//! 300 TURN-over-TCP clients that connect and say nothing (or half a
//! header): each is closed by the server once the first-message timeout
//! has passed, and not before (issue 10). The timeout is shortened to 2 s;
//! the wait allows a generous margin past it, because the server's clock
//! for a connection starts when it accepts it, which lags the client's
//! connect on a loaded machine.
//!
//! CI saw 6 to 21 of the 300 never closed: with tokio's listen backlog of
//! 128, a loaded machine's kernel dropped their handshakes' last ACK, so
//! the server never had them (see `tcp_listener`).

mod support;

use std::time::Duration;

use support::*;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tcp_connections_are_closed_after_the_first_message_timeout() {
    const FIRST_MESSAGE: Duration = Duration::from_secs(2);
    let node = start_node_with(|c| {
        c.max_tcp_connections_per_ip = 0;
        c.tcp_first_message_secs = FIRST_MESSAGE.as_secs();
    })
    .await;
    let server = node.tcp_addr().expect("TCP on");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(server).await.expect("connect");
            let connected = tokio::time::Instant::now();
            if i % 2 == 0 {
                // Half a STUN header, then nothing.
                use tokio::io::AsyncWriteExt as _;
                let _ = stream.write_all(&[0, 1]).await;
            }
            let mut buf = [0u8; 64];
            let closed =
                tokio::time::timeout_at(connected + FIRST_MESSAGE * 15, stream.read(&mut buf))
                    .await;
            let waited = connected.elapsed();
            assert!(
                waited >= FIRST_MESSAGE / 2,
                "closed after {waited:?}, before the first-message timeout"
            );
            matches!(closed, Ok(Ok(0)) | Ok(Err(_)))
        });
    }
    let mut closed = 0;
    while let Some(done) = tasks.join_next().await {
        closed += u32::from(done.expect("task"));
    }
    assert_eq!(closed, 300, "connections left open 30 s after connecting");
    assert_eq!(node.metrics().tcp_timeouts, 300);
    node.shutdown().await.expect("shutdown");
}
