//! The SFU's driver: one task owns the UDP socket, the clock and the
//! command channel, and feeds the IO-free [`SfuCore`] "a datagram arrived",
//! "a command arrived" and "time is now", then applies what comes out:
//! datagrams to send (unless the peer filter denies the address) and the
//! packet counts and gauges of the metrics. Commands from the control API
//! come in on a bounded channel and are answered on a oneshot.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::core::{CoreSettings, JoinError, SfuCore};
use crate::metrics::Metrics;
use crate::PeerFilter;

/// What the control API asks of the engine.
#[derive(Debug)]
pub(crate) enum Command {
    Join {
        room: String,
        peer: String,
        muted: bool,
        offer: String,
        reply: oneshot::Sender<Result<String, JoinError>>,
    },
    Mute {
        room: String,
        peer: String,
        muted: bool,
        reply: oneshot::Sender<()>,
    },
    Leave {
        room: String,
        peer: String,
        reply: oneshot::Sender<()>,
    },
}

/// The engine's fixed settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) slots: usize,
    pub(crate) room_max: usize,
    /// The address put in answers' host candidate.
    pub(crate) advertised: SocketAddr,
    pub(crate) peers: PeerFilter,
}

pub(crate) struct Engine {
    socket: UdpSocket,
    core: SfuCore,
    peers: PeerFilter,
    metrics: Arc<Metrics>,
    draining: Arc<AtomicBool>,
}

impl Engine {
    pub(crate) fn new(
        socket: UdpSocket,
        settings: Settings,
        metrics: Arc<Metrics>,
        draining: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let local = socket.local_addr()?;
        let core = SfuCore::new(
            CoreSettings {
                slots: settings.slots,
                room_max: settings.room_max,
                advertised: settings.advertised,
                local,
            },
            StdRng::from_os_rng(),
            Instant::now(),
        );
        Ok(Self {
            socket,
            core,
            peers: settings.peers,
            metrics,
            draining,
        })
    }

    /// Runs until `commands` closes.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let next = tokio::time::Instant::from_std(self.core.poll_timeout());
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.command(command, Instant::now()),
                    None => break,
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => self.core.datagram(from, &buf[..n], Instant::now()),
                    Err(err) => {
                        // ICMP port unreachable and the like surface here on
                        // some systems; the socket itself is fine.
                        tracing::debug!(error = %err, "SFU socket read");
                    }
                },
                () = tokio::time::sleep_until(next) => {}
            }
            self.core.handle_timeout(Instant::now());
            self.apply();
        }
        self.core.close_all();
        self.apply();
    }

    fn command(&mut self, command: Command, now: Instant) {
        self.core
            .set_draining(self.draining.load(Ordering::Relaxed));
        match command {
            Command::Join {
                room,
                peer,
                muted,
                offer,
                reply,
            } => {
                let result = self.core.join(&room, &peer, muted, offer, now);
                if let Err(err) = &result {
                    tracing::debug!(error = %err, "SFU join refused");
                }
                let _ = reply.send(result);
            }
            Command::Mute {
                room,
                peer,
                muted,
                reply,
            } => {
                self.core.mute(&room, &peer, muted);
                let _ = reply.send(());
            }
            Command::Leave { room, peer, reply } => {
                self.core.leave(&room, &peer);
                let _ = reply.send(());
            }
        }
    }

    /// Sends what the core queued, never blocking (a full socket buffer
    /// drops, as the network would), and updates the metrics.
    fn apply(&mut self) {
        let mut dropped = 0;
        while let Some(out) = self.core.poll_transmit() {
            if self.peers.is_denied(out.to.ip())
                || self.socket.try_send_to(&out.bytes, out.to).is_err()
            {
                dropped += 1;
            }
        }
        let tally = self.core.take_tally();
        let m = &self.metrics;
        if tally.forwarded > 0 {
            m.sfu_forwarded(tally.forwarded);
        }
        if tally.dropped + dropped > 0 {
            m.sfu_dropped(tally.dropped + dropped);
        }
        if tally.muted > 0 {
            m.sfu_muted(tally.muted);
        }
        let gauges = self.core.gauges();
        m.sfu_participants
            .store(gauges.participants, Ordering::Relaxed);
        m.sfu_rooms.store(gauges.rooms, Ordering::Relaxed);
        m.sfu_streams.store(gauges.streams, Ordering::Relaxed);
    }
}
