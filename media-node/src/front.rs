//! The listener the TURN server reads from: a UDP socket or the TCP
//! multiplexer, behind the [`Admission`] front door.
//!
//! Besides clients' packets, the server reads here the few requests the
//! node makes itself, from the reserved address [`NODE_ADDR`]:
//! - on the UDP listener, probes that make the crate issue (and retire) the
//!   one nonce the front door signs forwarded requests with
//!   ([`keep_crate_nonce`]);
//! - on a stream listener, when a TCP or TLS connection closes, a Refresh
//!   with lifetime 0 on behalf of that connection (from its address), so its
//!   allocation ends with it rather than when its lifetime runs out.

use std::any::Any;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::mpsc;
use webrtc_util::Conn;

use crate::admission::{Admission, Verdict};
use crate::relay::PendingOwner;
use crate::rewrite;

/// The source of the node's own requests to the crate, and where the
/// crate's answers to them are taken. No client has port 0: the front door
/// drops anything claiming to come from it.
pub(crate) const NODE_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// How often the node renews the crate's nonce: just over half the crate's
/// nonce lifetime (3600 s), so the nonce retired at each renewal (the one
/// before the current) has expired and the crate forgets it.
const CRATE_NONCE_RENEWAL: Duration = Duration::from_secs(1850);
/// How long to wait for the crate to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct FrontConn {
    pub(crate) inner: Arc<dyn Conn + Send + Sync>,
    /// The listener's address, which never changes: the crate asks for it
    /// for every ChannelData packet (to find the allocation), and asking
    /// the socket is a system call.
    local: Option<SocketAddr>,
    pub(crate) admission: Arc<Admission>,
    pub(crate) pending: Arc<PendingOwner>,
    /// Set at shutdown, so that a read error ends the server's read loop
    /// instead of being retried.
    pub(crate) closing: Arc<AtomicBool>,
    /// The node's own requests (UDP listener only).
    pub(crate) injected: Option<tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>>,
    /// For a stream listener: the username each connection last
    /// authenticated with, to deallocate for it when it closes.
    pub(crate) sessions: Option<Mutex<HashMap<SocketAddr, String>>>,
}

impl FrontConn {
    pub(crate) fn new(
        inner: Arc<dyn Conn + Send + Sync>,
        admission: Arc<Admission>,
        pending: Arc<PendingOwner>,
        closing: Arc<AtomicBool>,
    ) -> Self {
        Self {
            local: inner.local_addr().ok(),
            inner,
            admission,
            pending,
            closing,
            injected: None,
            sessions: None,
        }
    }

    /// Reads the node's own requests from `rx` too.
    pub(crate) fn with_injected(mut self, rx: mpsc::Receiver<Vec<u8>>) -> Self {
        self.injected = Some(tokio::sync::Mutex::new(rx));
        self
    }

    /// A stream listener: a zero-length read from an address means that
    /// connection closed (see [`crate::tcp`]).
    pub(crate) fn for_streams(mut self) -> Self {
        self.sessions = Some(Mutex::new(HashMap::new()));
        self
    }

    async fn next(&self, buf: &mut [u8]) -> webrtc_util::Result<Incoming> {
        let Some(injected) = &self.injected else {
            return self.inner.recv_from(buf).await.map(Incoming::Net);
        };
        let mut rx = injected.lock().await;
        tokio::select! {
            biased;
            got = self.inner.recv_from(buf) => got.map(Incoming::Net),
            Some(packet) = rx.recv() => Ok(Incoming::Node(packet)),
        }
    }

    /// The Refresh (lifetime 0) ending the allocation of the stream
    /// connection `from`, which has just closed.
    fn closed(
        &self,
        sessions: &Mutex<HashMap<SocketAddr, String>>,
        from: SocketAddr,
    ) -> Option<Vec<u8>> {
        let username = sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&from)?;
        let realm = self.admission.realm();
        let key = self.admission.key_unchecked(&username, realm);
        let nonce = self.admission.crate_nonce()?;
        tracing::debug!(%from, "TURN stream closed: deallocating");
        rewrite::deallocate(&username, realm, &key, &nonce)
    }
}

enum Incoming {
    Net((usize, SocketAddr)),
    Node(Vec<u8>),
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn copy_into(buf: &mut [u8], packet: &[u8]) -> Option<usize> {
    buf.get_mut(..packet.len())?.copy_from_slice(packet);
    Some(packet.len())
}

#[async_trait]
impl Conn for FrontConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        self.inner.recv(buf).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = match self.next(buf).await {
                Ok(Incoming::Net(got)) => got,
                Ok(Incoming::Node(packet)) => {
                    if let Some(n) = copy_into(buf, &packet) {
                        return Ok((n, NODE_ADDR));
                    }
                    continue;
                }
                // A UDP socket can report transient errors (an ICMP error
                // for an earlier send); one bad read must not end the
                // server's read loop, which would stop the node.
                Err(err) if !self.closing.load(Ordering::SeqCst) => {
                    tracing::debug!(%err, "listener read error, continuing");
                    tokio::task::yield_now().await;
                    continue;
                }
                Err(err) => return Err(err),
            };
            if let (Some(sessions), 0) = (&self.sessions, n) {
                if let Some(n) = self.closed(sessions, from).and_then(|p| copy_into(buf, &p)) {
                    return Ok((n, from));
                }
                continue;
            }
            self.admission.metrics.client_in(n);
            let packet = buf.get(..n).unwrap_or_default();
            match self.admission.inspect(packet, from, unix_now()) {
                Verdict::Pass => return Ok((n, from)),
                Verdict::Forward {
                    packet,
                    username,
                    owner,
                } => {
                    let Some(n) = copy_into(buf, &packet) else {
                        continue;
                    };
                    if owner.is_some() {
                        self.pending.set(owner);
                    }
                    if let Some(sessions) = &self.sessions {
                        sessions
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(from, username);
                    }
                    return Ok((n, from));
                }
                Verdict::Reply(reply) => {
                    if let Err(err) = self.send_to(&reply, from).await {
                        tracing::debug!(%err, %from, "could not send refusal");
                    }
                }
                Verdict::Drop => {}
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.inner.send(buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if target == NODE_ADDR {
            // The crate's answer to one of the node's probes.
            if let Some(nonce) = rewrite::nonce_of(buf) {
                self.admission.learn_crate_nonce(nonce);
            }
            return Ok(buf.len());
        }
        let n = self.inner.send_to(buf, target).await?;
        self.admission.metrics.client_out(n);
        Ok(n)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        match self.local {
            Some(addr) => Ok(addr),
            None => self.inner.local_addr(),
        }
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        // Every allocation calls close() on the listener it came in on when
        // it ends; the listener is shared, so only shutdown closes it.
        if self.closing.load(Ordering::SeqCst) {
            return self.inner.close().await;
        }
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

/// Keeps the crate's nonce fresh: learns one now, then renews it every
/// [`CRATE_NONCE_RENEWAL`], retiring the one before. Retries every second
/// while the crate does not answer.
pub(crate) async fn keep_crate_nonce(inject: mpsc::Sender<Vec<u8>>, admission: Arc<Admission>) {
    loop {
        let wait = if renew_crate_nonce(&inject, &admission).await {
            CRATE_NONCE_RENEWAL
        } else {
            if inject.is_closed() {
                return;
            }
            tracing::warn!("the TURN server did not issue a nonce; retrying");
            Duration::from_secs(1)
        };
        tokio::time::sleep(wait).await;
    }
}

/// One renewal; true if the crate's nonce changed.
async fn renew_crate_nonce(inject: &mpsc::Sender<Vec<u8>>, admission: &Admission) -> bool {
    if let Some(old) = admission.previous_crate_nonce() {
        // Expired by now: the crate drops it and answers 438 with a new one.
        if probe(inject, admission, rewrite::stale_probe(&old)).await {
            return true;
        }
    }
    probe(inject, admission, rewrite::nonce_probe()).await
}

async fn probe(inject: &mpsc::Sender<Vec<u8>>, admission: &Admission, packet: Vec<u8>) -> bool {
    let before = admission.crate_nonce();
    let learned = admission.crate_nonce_learned.notified();
    tokio::pin!(learned);
    learned.as_mut().enable();
    if inject.send(packet).await.is_err() {
        return false;
    }
    let _ = tokio::time::timeout(PROBE_TIMEOUT, learned).await;
    admission.crate_nonce() != before
}
