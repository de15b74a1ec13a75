//! 300 TURN-over-TCP clients that connect and say nothing (or half a
//! header): each is closed within 12 s of connecting (issue 10). Its own
//! test binary, so that no other test competes for the CPU during the
//! wall-clock bound.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tcp_connections_are_closed_within_12_seconds() {
    let node = start_node_with(|c| c.max_tcp_connections_per_ip = 0).await;
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
                tokio::time::timeout_at(connected + Duration::from_secs(12), stream.read(&mut buf))
                    .await;
            matches!(closed, Ok(Ok(0)) | Ok(Err(_)))
        });
    }
    let mut closed = 0;
    while let Some(done) = tasks.join_next().await {
        closed += u32::from(done.expect("task"));
    }
    assert_eq!(closed, 300, "connections left open 12 s after connecting");
    assert_eq!(node.metrics().tcp_timeouts, 300);
    node.shutdown().await.expect("shutdown");
}
