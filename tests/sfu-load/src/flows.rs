//! How one synthetic participant joins each system: Tincan's SFU over the
//! signaling, a Janus VideoRoom (publisher + one subscriber to the
//! speakers), a Janus AudioBridge (one send-receive stream into the mix).

use crate::janus::{self, Session};
use crate::peer::{self, Peer, Publisher};
use crate::stats::{Receiver, Window};
use crate::tincan::{self, Signaling};
use anyhow::{anyhow, Context as _, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::rtp_transceiver::RTCRtpTransceiverDirection;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Louder than any silent participant; each further speaker a bit quieter,
/// so the ranking is stable (RFC 6464: -dBov, 0 loudest, 127 silence).
const LOUDEST_LEVEL: u8 = 20;
const SILENCE: u8 = 127;

/// Who speaks when: the first `speakers` participants (shifted by
/// `speakers` every `rotate` when set); the last `muted` never do.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub(crate) participants: usize,
    pub(crate) speakers: usize,
    pub(crate) muted: usize,
    pub(crate) rotate: Option<Duration>,
    pub(crate) start: Instant,
}

impl Schedule {
    pub(crate) fn is_muted(&self, i: usize) -> bool {
        i + self.muted >= self.participants
    }

    /// The speakers at the start, in rank order.
    pub(crate) fn initial_speakers(&self) -> Vec<usize> {
        (0..self.speakers.min(self.participants)).collect()
    }

    /// Participant `i`'s audio level at `now`.
    pub(crate) fn level(&self, i: usize, now: Instant) -> u8 {
        if self.is_muted(i) || self.participants == 0 {
            return SILENCE;
        }
        let shift = match self.rotate {
            Some(every) if !every.is_zero() => {
                let turns = now.duration_since(self.start).as_millis() / every.as_millis();
                (turns as usize * self.speakers) % self.participants
            }
            _ => 0,
        };
        let rank = (i + self.participants - shift) % self.participants;
        if rank < self.speakers {
            LOUDEST_LEVEL + 4 * rank as u8
        } else {
            SILENCE
        }
    }
}

/// What every participant shares.
pub(crate) struct Shared {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
    pub(crate) room: String,
    pub(crate) bind_ip: IpAddr,
    pub(crate) packet_size: usize,
    pub(crate) schedule: Schedule,
    pub(crate) window: Arc<Window>,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) sent: Arc<AtomicU64>,
    /// Tincan peer id -> participant index, for `active-speakers`.
    pub(crate) peer_ids: Mutex<HashMap<String, u32>>,
}

impl Shared {
    /// Participant `i`'s receive counters, knowing who is muted.
    fn receiver(&self, i: usize, slots: usize) -> Arc<Mutex<Receiver>> {
        let s = &self.schedule;
        let muted_from = s.participants.saturating_sub(s.muted) as u32;
        Arc::new(Mutex::new(
            Receiver::new(i as u32, slots).muted_from(muted_from),
        ))
    }
}

/// A participant that is in: what must stay alive, and its counters.
pub(crate) struct Live {
    pub(crate) index: usize,
    pub(crate) peers: Vec<Peer>,
    pub(crate) receiver: Arc<Mutex<Receiver>>,
    pub(crate) janus: Option<(Session, u64)>,
    pub(crate) signaling: Option<mpsc::UnboundedSender<Value>>,
}

impl Live {
    pub(crate) async fn leave(self) {
        if let Some(signaling) = &self.signaling {
            let _ = signaling.send(json!({"action": "leave"}));
        }
        for peer in &self.peers {
            peer.close().await;
        }
        if let Some((session, _)) = &self.janus {
            session.destroy().await;
        }
    }
}

fn ssrc_of(i: usize) -> u32 {
    0x5a00_0000 | i as u32
}

fn start_publishing(
    shared: &Arc<Shared>,
    i: usize,
    track: Arc<webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP>,
) {
    let schedule = shared.schedule.clone();
    let publisher = Publisher {
        track,
        me: i as u32,
        ssrc: ssrc_of(i),
        size: shared.packet_size,
        sent: Arc::clone(&shared.sent),
        window: Arc::clone(&shared.window),
        stop: shared.stop.clone(),
    };
    Peer::publish(publisher, move || schedule.level(i, Instant::now()));
}

/// A Tincan participant in its room, not yet on the SFU.
pub(crate) struct InRoom {
    index: usize,
    signaling: Signaling,
    /// The slot count once the room is in SFU mode.
    slots: Option<usize>,
}

impl InRoom {
    pub(crate) fn index(&self) -> usize {
        self.index
    }
}

/// Tincan, first half: sign in, open the signaling socket, join.
pub(crate) async fn tincan_join(shared: Arc<Shared>, i: usize) -> Result<InRoom> {
    let username = format!("sfuload{}x{i}", shared.room);
    let token = tincan::sign_in(&shared.http, &shared.url, &username).await?;
    let signaling = Signaling::connect(&shared.url, &token).await?;
    signaling.send(json!({"action": "join", "room": shared.room}))?;
    let mut signaling = signaling;
    let joined = signaling.expect(&["joined"]).await?;
    let me = joined["self"]["peerId"]
        .as_str()
        .ok_or_else(|| anyhow!("no self.peerId in joined"))?
        .to_owned();
    if let Ok(mut ids) = shared.peer_ids.lock() {
        ids.insert(me, i as u32);
    }
    if shared.schedule.is_muted(i) {
        signaling.send(json!({"action": "mute", "muted": true}))?;
    }
    Ok(InRoom {
        index: i,
        slots: tincan::sfu_slots(&joined),
        signaling,
    })
}

/// Tincan, second half (once everyone has joined, so the room has moved to
/// the SFU): the offer laid out in docs/sfu.md, `sfu-offer`, `sfu-answer`.
pub(crate) async fn tincan_connect(shared: Arc<Shared>, joined: InRoom) -> Result<Live> {
    let InRoom {
        index: i,
        mut signaling,
        slots,
    } = joined;
    let slots = match slots {
        Some(slots) => slots,
        None => {
            let moved = signaling.expect(&["room-mode"]).await?;
            tincan::sfu_slots(&moved).ok_or_else(|| anyhow!("room-mode without sfu: {moved}"))?
        }
    };

    let mut peer = Peer::new(shared.bind_ip, vec![]).await?;
    let track = peer
        .add_sender(ssrc_of(i), RTCRtpTransceiverDirection::Sendonly)
        .await?;
    peer.add_receivers(slots).await?;
    let channel = peer.data_channel("tincan").await?;
    let offer = peer.offer().await?;
    let mids = peer::audio_mids(&offer, "recvonly");
    let receiver = shared.receiver(i, slots);
    peer.count_tracks(
        mids.into_iter()
            .enumerate()
            .map(|(s, mid)| (mid, s))
            .collect(),
        Arc::clone(&receiver),
        Arc::clone(&shared.window),
    );
    let mut answer = None;
    for attempt in 0..3 {
        signaling.send(json!({"action": "sfu-offer", "sdp": offer}))?;
        match signaling.expect(&["sfu-answer"]).await {
            Ok(reply) => {
                answer = Some(reply);
                break;
            }
            Err(e) if attempt < 2 => {
                tracing::warn!(participant = i, "sfu-offer: {e:#}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
    let answer = answer.ok_or_else(|| anyhow!("no sfu-answer"))?;
    let sdp = answer["sdp"]
        .as_str()
        .ok_or_else(|| anyhow!("sfu-answer without sdp"))?;
    peer.apply_answer(sdp.to_owned()).await?;
    peer.connected(CONNECT_TIMEOUT).await?;
    follow_speakers(channel, Arc::clone(&shared), Arc::clone(&receiver));
    start_publishing(&shared, i, track);
    Ok(Live {
        index: i,
        peers: vec![peer],
        receiver,
        janus: None,
        signaling: Some(signaling.drain()),
    })
}

/// Applies every `active-speakers` event of the node's data channel to the
/// receiver's slot assignments.
fn follow_speakers(
    channel: Arc<dyn DataChannel>,
    shared: Arc<Shared>,
    receiver: Arc<Mutex<Receiver>>,
) {
    tokio::spawn(async move {
        while let Some(event) = channel.poll().await {
            let DataChannelEvent::OnMessage(msg) = event else {
                if matches!(event, DataChannelEvent::OnClose) {
                    break;
                }
                continue;
            };
            let Ok(v) = serde_json::from_slice::<Value>(&msg.data) else {
                continue;
            };
            if v["type"] != "active-speakers" {
                continue;
            }
            tracing::debug!(event = %v, "from the node");
            let now = crate::payload::now_us();
            let Some(slots) = v["slots"].as_array() else {
                continue;
            };
            let ids = shared
                .peer_ids
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default();
            if let Ok(mut r) = receiver.lock() {
                r.speaker_events += 1;
                for (s, entry) in slots.iter().enumerate() {
                    let slot = entry["slot"].as_u64().map(|x| x as usize).unwrap_or(s);
                    let who = entry["peerId"]
                        .as_str()
                        .map(|p| ids.get(p).copied().unwrap_or(u32::MAX));
                    r.assign(slot, who, now);
                }
            }
        }
    });
}

/// Janus VideoRoom, first half: join as a publisher of one audio stream.
/// Returns the participant and its feed id.
pub(crate) async fn videoroom_publish(
    shared: Arc<Shared>,
    i: usize,
    room: u64,
    slots: usize,
) -> Result<(Live, u64)> {
    let session = Session::create(shared.http.clone(), &shared.url).await?;
    let handle = session.attach("janus.plugin.videoroom").await?;
    let peer = Peer::new(shared.bind_ip, vec![]).await?;
    let track = peer
        .add_sender(ssrc_of(i), RTCRtpTransceiverDirection::Sendonly)
        .await?;
    let offer = peer.offer().await?;
    tracing::debug!(participant = i, %offer, "videoroom publisher offer");
    let event = session
        .message(
            handle,
            json!({"request": "joinandconfigure", "room": room, "ptype": "publisher",
                   "display": format!("p{i}"), "audio": true, "video": false}),
            Some(janus::jsep("offer", offer)),
        )
        .await
        .context("videoroom joinandconfigure")?;
    tracing::debug!(participant = i, answer = %event["jsep"]["sdp"], "videoroom publisher answer");
    let feed = event["plugindata"]["data"]["id"]
        .as_u64()
        .ok_or_else(|| anyhow!("no publisher id in {event}"))?;
    peer.apply_answer(janus::sdp_of(&event)?).await?;
    peer.connected(CONNECT_TIMEOUT).await?;
    start_publishing(&shared, i, track);
    let live = Live {
        index: i,
        peers: vec![peer],
        receiver: shared.receiver(i, slots),
        janus: Some((session, handle)),
        signaling: None,
    };
    Ok((live, feed))
}

/// Janus VideoRoom, second half: one subscriber connection receiving
/// `feeds` (feed id, participant index), which Janus offers.
pub(crate) async fn videoroom_subscribe(
    shared: Arc<Shared>,
    live: &mut Live,
    room: u64,
    feeds: &[(u64, usize)],
) -> Result<()> {
    if feeds.is_empty() {
        return Ok(());
    }
    let (session, _) = live
        .janus
        .as_ref()
        .ok_or_else(|| anyhow!("no Janus session"))?;
    let handle = session.attach("janus.plugin.videoroom").await?;
    let streams: Vec<Value> = feeds
        .iter()
        .map(|(feed, _)| json!({"feed": feed}))
        .collect();
    let event = session
        .message(
            handle,
            json!({"request": "join", "room": room, "ptype": "subscriber", "streams": streams}),
            None,
        )
        .await
        .context("videoroom subscribe")?;
    let offer = janus::sdp_of(&event)?;
    // mid -> slot, and what each slot carries, from Janus's stream list.
    let by_feed: HashMap<u64, usize> = feeds.iter().copied().collect();
    let mut slots = HashMap::new();
    if let Some(list) = event["plugindata"]["data"]["streams"].as_array() {
        for stream in list.iter().filter(|s| s["type"] == "audio") {
            let (Some(mid), Some(feed)) = (stream["mid"].as_str(), stream["feed_id"].as_u64())
            else {
                continue;
            };
            let slot = slots.len();
            slots.insert(mid.to_owned(), slot);
            if let Ok(mut r) = live.receiver.lock() {
                r.assign(slot, by_feed.get(&feed).map(|&p| p as u32), 0);
            }
        }
    }
    let mut peer = Peer::new(shared.bind_ip, vec![]).await?;
    peer.count_tracks(
        slots,
        Arc::clone(&live.receiver),
        Arc::clone(&shared.window),
    );
    let answer = peer.answer(offer).await?;
    session
        .message(
            handle,
            json!({"request": "start", "room": room}),
            Some(janus::jsep("answer", answer)),
        )
        .await
        .context("videoroom start")?;
    peer.connected(CONNECT_TIMEOUT).await?;
    live.peers.push(peer);
    Ok(())
}

/// Janus AudioBridge: one send-receive stream; the mix comes back.
pub(crate) async fn audiobridge(shared: Arc<Shared>, i: usize, room: u64) -> Result<Live> {
    let session = Session::create(shared.http.clone(), &shared.url).await?;
    let handle = session.attach("janus.plugin.audiobridge").await?;
    let mut peer = Peer::new(shared.bind_ip, vec![]).await?;
    let track = peer
        .add_sender(ssrc_of(i), RTCRtpTransceiverDirection::Sendrecv)
        .await?;
    let offer = peer.offer().await?;
    let mids = peer::audio_mids(&offer, "sendrecv");
    let receiver = shared.receiver(i, 1);
    peer.count_tracks(
        mids.into_iter().map(|mid| (mid, 0)).collect(),
        Arc::clone(&receiver),
        Arc::clone(&shared.window),
    );
    let event = session
        .message(
            handle,
            json!({"request": "join", "room": room, "display": format!("p{i}"),
                   "muted": shared.schedule.is_muted(i)}),
            Some(janus::jsep("offer", offer)),
        )
        .await
        .context("audiobridge join")?;
    peer.apply_answer(janus::sdp_of(&event)?).await?;
    peer.connected(CONNECT_TIMEOUT).await?;
    start_publishing(&shared, i, track);
    Ok(Live {
        index: i,
        peers: vec![peer],
        receiver,
        janus: Some((session, handle)),
        signaling: None,
    })
}

/// No server: participant `i` sends straight to participant `i + 1` (one
/// connection each way, on loopback), so the same tool measures the floor
/// its own stacks add; a server's added latency is its figure less this.
pub(crate) async fn direct(shared: Arc<Shared>, i: usize) -> Result<Live> {
    let n = shared.schedule.participants;
    let sender = Peer::new(shared.bind_ip, vec![]).await?;
    let track = sender
        .add_sender(ssrc_of(i), RTCRtpTransceiverDirection::Sendonly)
        .await?;
    let mut receiver_peer = Peer::new(shared.bind_ip, vec![]).await?;
    let offer = sender.offer().await?;
    let receiver = Arc::new(Mutex::new(Receiver::new(((i + 1) % n) as u32, 1)));
    if let Ok(mut r) = receiver.lock() {
        r.assign(0, Some(i as u32), 0);
    }
    let answer = receiver_peer.answer(offer).await?;
    let mids = peer::audio_mids(&answer, "recvonly");
    receiver_peer.count_tracks(
        mids.into_iter().map(|mid| (mid, 0)).collect(),
        Arc::clone(&receiver),
        Arc::clone(&shared.window),
    );
    sender.apply_answer(answer).await?;
    sender.connected(CONNECT_TIMEOUT).await?;
    start_publishing(&shared, i, track);
    Ok(Live {
        index: i,
        peers: vec![sender, receiver_peer],
        receiver,
        janus: None,
        signaling: None,
    })
}
