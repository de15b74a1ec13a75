//! TURN over TCP (RFC 6062 section 2 / RFC 8656 section 3.1): the webrtc-rs
//! server reads datagrams from a `Conn`, so this multiplexer cuts each TCP
//! stream into STUN messages and ChannelData frames and presents them all as
//! one datagram socket, each frame tagged with the TCP client's address.
//! Replies to that address go back down the same stream. Relaying to peers
//! stays UDP, as the RFC says.
//!
//! With a TLS acceptor the same multiplexer serves TURN over TLS: each
//! connection first completes a TLS handshake (bounded in time), then the
//! decrypted stream is framed exactly as a plain TCP one.

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use webrtc_util::Conn;

use crate::conn_caps::ConnCaps;
use crate::metrics::Metrics;

/// Frames queued towards one TCP client before we drop (it is not reading).
const WRITE_QUEUE: usize = 512;
/// Frames from all TCP clients queued towards the TURN server.
const READ_QUEUE: usize = 4096;

/// Limits on TURN-over-TCP and TURN-over-TLS connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamLimits {
    /// Open connections at most, per listener.
    pub(crate) max_connections: usize,
    /// Open connections from one IP address at most; 0 for no limit.
    pub(crate) max_per_ip: usize,
    /// A connection that has not delivered a complete first STUN message
    /// (TLS handshake included) this long after it was accepted is closed.
    pub(crate) first_message: Duration,
    /// A connection with no frame either way for this long is closed.
    pub(crate) idle: Duration,
}

/// Why a TCP stream was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The first bits are neither STUN (00) nor ChannelData (01).
    #[error("not a STUN message or ChannelData frame")]
    UnknownFrame,
    /// A STUN message length that is not a multiple of 4.
    #[error("STUN message length not a multiple of 4")]
    BadLength,
}

/// The full length on the wire of the frame starting with `header`,
/// including ChannelData padding (always present over TCP).
pub fn frame_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    match header[0] >> 6 {
        0 if len % 4 == 0 => Ok(20 + len),
        0 => Err(FrameError::BadLength),
        1 => Ok(4 + len.div_ceil(4) * 4),
        _ => Err(FrameError::UnknownFrame),
    }
}

type Writers = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

pub(crate) struct TcpMux {
    local: SocketAddr,
    frames: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    writers: Writers,
    metrics: Arc<Metrics>,
}

impl TcpMux {
    /// Starts accepting on `listener`, with a TLS handshake first on each
    /// connection if `tls` is given; the returned task owns every
    /// connection and ends them all when aborted.
    pub(crate) fn start(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        limits: StreamLimits,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Arc<TcpMux>, tokio::task::JoinHandle<()>)> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(READ_QUEUE);
        let writers: Writers = Arc::default();
        let mux = Arc::new(TcpMux {
            local,
            frames: tokio::sync::Mutex::new(rx),
            writers: Arc::clone(&writers),
            metrics: Arc::clone(&metrics),
        });
        let task = tokio::spawn(accept_loop(listener, tls, tx, writers, metrics, limits));
        Ok((mux, task))
    }

    fn writers(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>> {
        self.writers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    frames: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
    metrics: Arc<Metrics>,
    limits: StreamLimits,
) {
    let mut connections = JoinSet::new();
    let caps = ConnCaps::new(limits.max_connections, limits.max_per_ip);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(v) => v,
                    Err(err) => {
                        tracing::warn!(%err, "TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(slot) = caps.admit(peer.ip()) else {
                    metrics.tcp_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, "too many TURN TCP connections, refusing");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let connection = open_connection(
                    stream,
                    peer,
                    tls.clone(),
                    frames.clone(),
                    Arc::clone(&writers),
                    Arc::clone(&metrics),
                    limits,
                );
                connections.spawn(async move {
                    connection.await;
                    drop(slot);
                });
            }
            // Finished connections leave the set (their slots went with them).
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Completes the TLS handshake if there is one, then serves the stream.
async fn open_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    frames: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
    metrics: Arc<Metrics>,
    limits: StreamLimits,
) {
    let opened = Instant::now();
    let Some(tls) = tls else {
        return serve_connection(stream, peer, frames, writers, metrics, limits, opened).await;
    };
    match tokio::time::timeout_at(opened + limits.first_message, tls.accept(stream)).await {
        Ok(Ok(stream)) => {
            serve_connection(stream, peer, frames, writers, metrics, limits, opened).await;
        }
        Ok(Err(err)) => {
            metrics
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, %err, "TURN TLS handshake failed");
        }
        Err(_) => {
            metrics
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            metrics.tcp_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "TURN TLS handshake timed out");
        }
    }
}

/// Why reading frames from a stream stopped.
enum ReadEnd {
    /// The client closed or the read failed.
    Closed,
    /// The stream holds something that is not a TURN frame.
    Bad(FrameError),
}

/// Reads one frame; takes and gives back the reader, so that a read can
/// stay in flight across the idle checks (a cancelled read would lose the
/// bytes it had).
async fn read_frame<R: AsyncRead + Unpin>(
    mut reader: R,
    first: bool,
) -> (R, Result<Vec<u8>, ReadEnd>) {
    let mut header = [0u8; 4];
    if reader.read_exact(&mut header).await.is_err() {
        return (reader, Err(ReadEnd::Closed));
    }
    let len = match frame_len(header) {
        // The first frame must be a STUN message.
        Ok(_) if first && header[0] >> 6 != 0 => {
            return (reader, Err(ReadEnd::Bad(FrameError::UnknownFrame)))
        }
        Ok(len) => len,
        Err(err) => return (reader, Err(ReadEnd::Bad(err))),
    };
    let mut frame = vec![0u8; len];
    frame[..4].copy_from_slice(&header);
    if reader.read_exact(&mut frame[4..]).await.is_err() {
        return (reader, Err(ReadEnd::Closed));
    }
    (reader, Ok(frame))
}

/// Milliseconds from `since` to now.
fn millis_since(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Frames one byte stream (plain TCP or TLS) until either side ends, the
/// first message is late or the connection idles; then tells the server
/// (a zero-length frame from `peer`) so that its allocation ends too.
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    frames: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
    metrics: Arc<Metrics>,
    limits: StreamLimits,
    opened: Instant,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    writers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(peer, tx);
    metrics.tcp_connections.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%peer, "TURN TCP connection open");
    // When a frame last went out, in ms since `opened`.
    let last_out = AtomicU64::new(0);

    let write = async {
        while let Some(frame) = rx.recv().await {
            // Flushing is free on TCP and pushes TLS records out.
            if writer.write_all(&frame).await.is_err() || writer.flush().await.is_err() {
                break;
            }
            last_out.store(millis_since(opened), Ordering::Relaxed);
        }
    };
    let read = async {
        let mut first = true;
        let mut last_in = opened;
        // Reset only when it fires: a frame just moves `last_in`.
        let timer = tokio::time::sleep_until(opened + limits.first_message);
        tokio::pin!(timer);
        let mut reading = Box::pin(read_frame(reader, true));
        loop {
            let outcome = tokio::select! {
                outcome = &mut reading => Some(outcome),
                () = &mut timer => None,
            };
            let Some((reader, result)) = outcome else {
                let out = opened + Duration::from_millis(last_out.load(Ordering::Relaxed));
                let active = last_in.max(out);
                if !first && active + limits.idle > Instant::now() {
                    timer.as_mut().reset(active + limits.idle);
                    continue;
                }
                metrics.tcp_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, first, "closing quiet TURN TCP connection");
                break;
            };
            let frame = match result {
                Ok(frame) => frame,
                Err(ReadEnd::Closed) => break,
                Err(ReadEnd::Bad(err)) => {
                    metrics.malformed_packets.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, %err, "closing TURN TCP connection");
                    break;
                }
            };
            last_in = Instant::now();
            if first {
                first = false;
                timer.as_mut().reset(last_in + limits.idle);
            }
            reading = Box::pin(read_frame(reader, false));
            if frames.send((frame, peer)).await.is_err() {
                break;
            }
        }
    };
    // Either side ending ends the connection.
    tokio::select! {
        () = read => {}
        () = write => {}
    }
    writers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&peer);
    // Close the socket now (the read half went with `read`): the notice
    // below may wait for room in the server's queue, and the client must
    // not wait with it.
    drop(writer);
    metrics.tcp_connections.fetch_sub(1, Ordering::Relaxed);
    // In order after its last frame: the server deallocates for it.
    let _ = frames.send((Vec::new(), peer)).await;
    tracing::debug!(%peer, "TURN TCP connection closed");
}

#[async_trait]
impl Conn for TcpMux {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other("TCP mux cannot connect".into()))
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut frames = self.frames.lock().await;
        loop {
            let Some((frame, from)) = frames.recv().await else {
                return Err(webrtc_util::Error::ErrClosedListener);
            };
            // A zero-length frame is the close of `from`'s connection
            // (see `serve_connection`); it is handed on as such.
            if frame.len() > buf.len() {
                // Larger than the server's read buffer: it could not have
                // taken it from UDP either.
                self.metrics
                    .malformed_packets
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            buf[..frame.len()].copy_from_slice(&frame);
            return Ok((frame.len(), from));
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("TCP mux needs a target".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        let Some(tx) = self.writers().get(&target).cloned() else {
            // The client hung up; like UDP, the packet is lost.
            return Ok(buf.len());
        };
        if tx.try_send(buf.to_vec()).is_err() {
            self.metrics
                .tcp_dropped_frames
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_follow_the_rfc() {
        // STUN binding request, no attributes.
        assert_eq!(frame_len([0x00, 0x01, 0x00, 0x00]), Ok(20));
        assert_eq!(frame_len([0x00, 0x03, 0x00, 0x08]), Ok(28));
        assert_eq!(
            frame_len([0x00, 0x03, 0x00, 0x07]),
            Err(FrameError::BadLength)
        );
        // ChannelData 0x4000 with 5 bytes: padded to 8.
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x05]), Ok(12));
        assert_eq!(frame_len([0x7f, 0xff, 0x00, 0x00]), Ok(4));
        assert_eq!(frame_len([0x80, 0, 0, 0]), Err(FrameError::UnknownFrame));
        assert_eq!(
            frame_len([0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::UnknownFrame)
        );
    }
}
