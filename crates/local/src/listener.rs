//! The TCP side of every listener of the local stack: a connection whose
//! request head (or WebSocket handshake) is not complete within the header
//! timeout is closed, and connections are capped per client address and in
//! all, so a crowd of silent or slow clients cannot starve the others or run
//! the process out of file descriptors.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tincan_media_node::conn_caps::{ConnCaps, ConnSlot};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;
use tracing::{debug, info, warn};

use crate::config::ListenerLimits;

/// How long a stopping listener waits for its connections to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A TCP stream that holds its connection slot for as long as it lives,
/// also after it was upgraded to a WebSocket.
#[derive(Debug)]
struct SlottedStream {
    tcp: TcpStream,
    _slot: ConnSlot,
}

impl AsyncRead for SlottedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SlottedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// The most connections this process can hold open: `configured`, but
/// never so many that the open-file limit leaves no descriptor for the
/// stores, the media node and the next accept.
pub(crate) fn connection_budget(configured: usize) -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(u64::MAX);
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    let reserve = (soft / 8).max(64);
    configured.min(soft.saturating_sub(reserve)).max(1)
}

/// A listener being served; stop it with [`Listener::stop`].
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Stops accepting, asks open connections to finish, and waits for
    /// them a little while.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// Serves `app` on `listener` with `limits`; `name` goes into the logs.
/// A `max_conns` shared between listeners is the caller's to split.
pub(crate) fn serve(
    name: &'static str,
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
) -> io::Result<Listener> {
    let addr = listener.local_addr()?;
    let budget = connection_budget(limits.max_conns);
    let caps = ConnCaps::new(budget, limits.max_conns_per_ip);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(name, listener, app, limits, caps, stop_rx));
    info!(
        listener = name,
        %addr,
        max_conns = budget,
        max_conns_per_ip = limits.max_conns_per_ip,
        header_timeout_ms = limits.header_timeout.as_millis() as u64,
        "listening"
    );
    Ok(Listener { addr, stop, task })
}

async fn accept_loop(
    name: &'static str,
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    caps: Arc<ConnCaps>,
    mut stop: watch::Receiver<bool>,
) {
    let mut shed = 0u64;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut last_shed_log = tokio::time::Instant::now() - Duration::from_secs(60);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                // Out of descriptors or memory: wait for some to come back
                // rather than spin.
                if last_shed_log.elapsed() > Duration::from_secs(10) {
                    warn!(listener = name, error = %err, "accept failed");
                    last_shed_log = tokio::time::Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = caps.admit(peer.ip()) else {
            shed += 1;
            if last_shed_log.elapsed() > Duration::from_secs(10) {
                warn!(listener = name, %peer, shed, "connection cap reached; shedding connections");
                last_shed_log = tokio::time::Instant::now();
            }
            drop(tcp);
            continue;
        };
        // Signaling frames are small and latency-bound: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let io = TokioIo::new(SlottedStream { tcp, _slot: slot });
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = builder.serve_connection(io, service).with_upgrades();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        debug!(listener = name, %peer, error = %err, "connection ended");
                    }
                    return;
                }
                _ = stop.wait_for(|stopped| *stopped) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    debug!(listener = name, "no longer accepting");
}
