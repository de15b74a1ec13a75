//! TURN over TLS: coturn's `turnutils_uclient -S` allocates on our node's
//! TLS port (self-signed certificate made at test time) and relays to
//! `turnutils_peer` without loss; a plain TCP client on that port is cut
//! off without harming the node.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::*;
use tincan_media_node::{MediaNode, MediaNodeError, TlsError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: u64 = 2;
const MESSAGES: u64 = 30;

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM
/// into a temporary directory (removed on drop).
struct TestCert {
    dir: tempfile::TempDir,
}

impl TestCert {
    fn new() -> Self {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .expect("self-signed certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).expect("write cert");
        std::fs::write(
            dir.path().join("key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .expect("write key");
        Self { dir }
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
}

async fn start_tls_node(cert: &TestCert) -> MediaNode {
    start_node_with(|c| {
        c.tls_listen = Some(std::net::SocketAddr::new(LOCALHOST, 0));
        c.tls_cert_path = Some(cert.cert());
        c.tls_key_path = Some(cert.key());
    })
    .await
}

/// `turnutils_uclient` over TLS to the node's TLS port, relaying to an echo
/// peer; asserts every message came back.
async fn relay_over_tls_without_loss(node: &MediaNode) {
    let tls_addr = node.tls_addr().expect("TLS is on");
    assert_uclient_relays_without_loss(tls_addr, &["-t", "-S"], CLIENTS, MESSAGES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_relays_over_tls_without_loss() {
    require_coturn_tools();
    let cert = TestCert::new();
    let node = start_tls_node(&cert).await;
    let tls_addr = node.tls_addr().expect("TLS is on");
    assert_ne!(tls_addr.port(), 0);
    assert_eq!(node.tcp_addr(), Some(node.udp_addr()));

    relay_over_tls_without_loss(&node).await;

    let m = node.metrics();
    assert!(m.allocations_total >= CLIENTS, "{m:?}");
    assert!(m.peer_packets_out >= CLIENTS * MESSAGES, "{m:?}");
    assert!(m.peer_packets_in >= CLIENTS * MESSAGES, "{m:?}");
    assert_eq!(m.auth_failures(), 0, "{m:?}");
    // No tls_handshake_failures check: uclient first offers a TLS 1.0
    // ClientHello (no signature_algorithms), which rustls refuses, and
    // then retries with TLS 1.2/1.3.
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_on_the_tls_port_is_cut_off_and_tls_still_works() {
    require_coturn_tools();
    let cert = TestCert::new();
    let node = start_tls_node(&cert).await;
    let tls_addr = node.tls_addr().expect("TLS is on");

    // A STUN Binding request in the clear, as a TURN-over-TCP client would
    // send it: not a TLS ClientHello, so the node must hang up.
    let mut plain = tokio::net::TcpStream::connect(tls_addr)
        .await
        .expect("connect");
    let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    binding.extend_from_slice(&[7u8; 12]);
    plain.write_all(&binding).await.expect("send");
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 512];
        loop {
            match plain.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    // At most a TLS alert record (content type 21), never a STUN reply.
    assert!(
        got.is_empty() || got[0] == 21,
        "answered in the clear: {got:?}"
    );
    assert!(
        closed.is_ok(),
        "plain TCP connection to the TLS port stayed open"
    );
    // The failed handshake is counted once the accept task has seen it,
    // which may be just after the client sees the connection close.
    let counted = tokio::time::timeout(Duration::from_secs(5), async {
        while node.metrics().tls_handshake_failures < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "the failed TLS handshake was not counted: {:?}",
        node.metrics().tls_handshake_failures
    );

    // The node is unharmed: a TLS client still gets an allocation relayed.
    relay_over_tls_without_loss(&node).await;
    assert!(node.metrics().allocations_total >= CLIENTS);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn tls_without_a_usable_certificate_does_not_start() {
    let cert = TestCert::new();
    let missing = cert.dir.path().join("missing.pem");
    let mut config = tincan_media_node::MediaNodeConfig::new(secret())
        .with_listen(std::net::SocketAddr::new(LOCALHOST, 0));
    config.tls_listen = Some(std::net::SocketAddr::new(LOCALHOST, 0));
    config.tls_cert_path = Some(missing);
    config.tls_key_path = Some(cert.key());
    let err = tincan_media_node::start(config.clone())
        .await
        .expect_err("missing certificate file");
    assert!(
        matches!(err, MediaNodeError::Tls(TlsError::Certificate { .. })),
        "{err}"
    );

    // The key file holds no certificate.
    config.tls_cert_path = Some(cert.key());
    let err = tincan_media_node::start(config.clone())
        .await
        .expect_err("no certificate in file");
    assert!(
        matches!(err, MediaNodeError::Tls(TlsError::Certificate { .. })),
        "{err}"
    );

    config.tls_cert_path = None;
    let err = tincan_media_node::start(config)
        .await
        .expect_err("no certificate configured");
    assert!(matches!(err, MediaNodeError::Config(_)), "{err}");
}
