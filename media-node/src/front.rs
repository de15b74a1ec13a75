//! The listener the TURN server reads from: a UDP socket or the TCP
//! multiplexer, behind the [`Admission`] front door.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use webrtc_util::Conn;

use crate::admission::{Admission, Verdict};
use crate::relay::PendingUser;

pub(crate) struct FrontConn {
    pub(crate) inner: Arc<dyn Conn + Send + Sync>,
    pub(crate) admission: Arc<Admission>,
    pub(crate) pending: Arc<PendingUser>,
    /// Set at shutdown, so that a read error ends the server's read loop
    /// instead of being retried.
    pub(crate) closing: Arc<AtomicBool>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
            let (n, from) = match self.inner.recv_from(buf).await {
                Ok(v) => v,
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
            self.admission.metrics.client_in(n);
            let packet = buf.get(..n).unwrap_or_default();
            match self.admission.inspect(packet, unix_now()) {
                Verdict::Pass => return Ok((n, from)),
                Verdict::PassAllocate { user } => {
                    self.pending.set(Some(user));
                    return Ok((n, from));
                }
                Verdict::Rewrite { packet, user } => {
                    if let Some(slot) = buf.get_mut(..packet.len()) {
                        slot.copy_from_slice(&packet);
                        if user.is_some() {
                            self.pending.set(user);
                        }
                        return Ok((packet.len(), from));
                    }
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
        let n = self.inner.send_to(buf, target).await?;
        self.admission.metrics.client_out(n);
        Ok(n)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
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
