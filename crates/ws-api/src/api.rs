//! The three WebSocket events, applied.

mod apply;

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine as _;
use futures_util::stream::{self, StreamExt as _};
use tincan_signaling::{
    Core, ErrorCode, Fresh, Grants, Limits, MessageRate, Outgoing, Peer, ProtocolError, RoomView,
    Seat, ServerMessage, SocketEnd,
};
use tincan_store::{
    ConnectionRecord, ConnectionStore, Departure, KeepOutcome, Push, PushError, StoreError,
    Stranded,
};
use tincan_token::join::{is_app_user, is_join_token, ApiKeys, JoinTokenError};
use tincan_token::{TokenError, TokenKeys};
use tracing::{debug, info, warn};

use crate::call_log::CallLog;
use crate::outbound::{Outbound, PushObserver, Pushed};
use crate::sfu::SfuGateway;
use crate::users::{UserDirectory, UserLookupError};
use tincan_media_routing::IceServerSource;

/// Most gone connections cleaned up while handling one event; the rest are
/// left to their TTL (and to the next push that finds them gone).
const MAX_GONE_CLEANUPS: usize = 16;

/// Most pushes of one event in flight at once (a room's announcements fan
/// out to its members concurrently).
const MAX_CONCURRENT_PUSHES: usize = 16;

/// How long kept signals outlive the grace, for a resume at its last moment.
const KEPT_SLACK_SECS: u64 = 60;

/// Most new connections one signal follows its participant to (each found
/// gone in turn) before it is dropped.
const MAX_FOLLOWS: usize = 3;

/// What the handlers need, all behind traits.
#[derive(Clone)]
pub struct WsApiConfig {
    /// Message and room limits.
    pub limits: Limits,
    /// Verifies access tokens at connect.
    pub tokens: TokenKeys,
    /// Verifies join tokens at connect (`TINCAN_API_KEYS`); none: every
    /// join token is refused.
    pub api_keys: ApiKeys,
    /// Live connections and rooms.
    pub store: Arc<dyn ConnectionStore>,
    /// Delivers messages to connections.
    pub push: Arc<dyn Push>,
    /// `iceServers` for `joined`.
    pub ice: Arc<dyn IceServerSource>,
    /// The SFU of each room's media node, for rooms past the mesh size.
    pub sfu: Arc<dyn SfuGateway>,
    /// Call history, if kept.
    pub calls: Option<Arc<dyn CallLog>>,
    /// Checks at connect that the token's user still exists, if set.
    pub users: Option<Arc<dyn UserDirectory>>,
}

/// Why a `$connect` was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// No token, or not a valid, unexpired access or join token: answer 401.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The connection could not be recorded: answer 503.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Whether the user exists could not be told: answer 503.
    #[error(transparent)]
    UserLookup(#[from] UserLookupError),
    /// The user has `TINCAN_MAX_SOCKETS_PER_USER` live sockets already:
    /// answer 429 `rate-limited`.
    #[error("at most {0} sockets per user")]
    TooManySockets(usize),
}

/// The WebSocket API's handlers.
#[derive(Clone)]
pub struct WsApi {
    core: Core,
    config: WsApiConfig,
    observer: Option<Arc<dyn PushObserver>>,
}

impl std::fmt::Debug for WsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsApi")
            .field("limits", &self.config.limits)
            .finish_non_exhaustive()
    }
}

impl WsApi {
    /// Handlers over `config`.
    pub fn new(config: WsApiConfig) -> Self {
        Self {
            core: Core::new(config.limits),
            config,
            observer: None,
        }
    }

    /// These handlers, telling `observer` of every push they make.
    pub fn with_push_observer(mut self, observer: Arc<dyn PushObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// `$connect`: checks the token (an access token, or a join token when
    /// its header names an API key) and records the connection.
    pub async fn connect(
        &self,
        connection_id: &str,
        token: Option<&str>,
        now_ms: u64,
    ) -> Result<(), ConnectError> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(ConnectError::Unauthorized("missing token"))?;
        let record = if is_join_token(token) {
            self.join_token_record(connection_id, token, now_ms)?
        } else {
            self.access_token_record(connection_id, token, now_ms)
                .await?
        };
        let max = self.config.limits.max_sockets_per_user;
        match self.config.store.put(&record, max).await {
            Ok(()) => {}
            // A store that keeps deleted-user markers refuses in the write.
            Err(StoreError::UserDeleted(_)) => {
                return Err(ConnectError::Unauthorized("no such user"))
            }
            // And revoked-session markers, likewise.
            Err(StoreError::SessionRevoked(_)) => {
                return Err(ConnectError::Unauthorized("session revoked"))
            }
            Err(StoreError::TooManyConnections { max, .. }) => {
                info!(connection_id, user_id = %record.user_id, max, "socket refused: too many sockets for this user");
                return Err(ConnectError::TooManySockets(max));
            }
            Err(err) => return Err(err.into()),
        }
        info!(connection_id, user_id = %record.user_id, "connected");
        Ok(())
    }

    /// The record of a connection opened with a join token: an app's
    /// participant, namespaced by API key, limited to the token's room and
    /// grants. It is no Tincan account, so no user directory is asked.
    fn join_token_record(
        &self,
        connection_id: &str,
        token: &str,
        now_ms: u64,
    ) -> Result<ConnectionRecord, ConnectError> {
        let who = self
            .config
            .api_keys
            .verify(token, now_ms / 1000)
            .map_err(|e| {
                let why = match e {
                    JoinTokenError::Expired => "join token expired",
                    JoinTokenError::TooLong => "join token lives too long",
                    JoinTokenError::UnknownKey => "join token of an unknown API key",
                    _ => "invalid join token",
                };
                debug!(connection_id, why, "join token refused");
                ConnectError::Unauthorized(why)
            })?;
        let grants = Grants {
            room: Some(who.room),
            listen_only: !who.grants.speak,
        };
        Ok(
            ConnectionRecord::new(connection_id, who.user_id, who.display_name, now_ms)
                .with_grants(grants),
        )
    }

    /// The record of a connection opened with an access token, after
    /// checking that its user and session still stand (when a directory is
    /// configured).
    async fn access_token_record(
        &self,
        connection_id: &str,
        token: &str,
        now_ms: u64,
    ) -> Result<ConnectionRecord, ConnectError> {
        let claims = self
            .config
            .tokens
            .verify(token, now_ms / 1000)
            .map_err(|e| {
                ConnectError::Unauthorized(match e {
                    TokenError::Expired => "token expired",
                    _ => "invalid token",
                })
            })?;
        if let Some(users) = &self.config.users {
            if !users.exists(&claims.sub).await? {
                return Err(ConnectError::Unauthorized("no such user"));
            }
            if let Some(sid) = &claims.sid {
                if !users.session_in_force(&claims.sub, sid, now_ms).await? {
                    return Err(ConnectError::Unauthorized("session revoked"));
                }
            }
        }
        Ok(
            ConnectionRecord::new(connection_id, claims.sub, claims.name, now_ms)
                .with_session(claims.sid),
        )
    }

    /// `$disconnect`: the connection is forgotten. After a drop its
    /// participant, if any, is detached and may be resumed within the grace;
    /// after a goodbye (the client closed with 1000) it leaves at once and
    /// the room is told, as after `leave`.
    pub async fn disconnect(&self, connection_id: &str, end: SocketEnd, now_ms: u64) {
        let mut gone = VecDeque::new();
        match end {
            SocketEnd::Dropped => gone.push_back(connection_id.to_owned()),
            SocketEnd::Goodbye => self.say_goodbye(connection_id, now_ms, &mut gone).await,
        }
        self.clean_up_gone(&mut gone, now_ms).await;
        info!(connection_id, ?end, "disconnected");
    }

    /// Removes a connection whose client said goodbye: its participant is
    /// detached with a grace that has already run out, then ended at once.
    /// A failure between the two writes leaves an expired participant,
    /// which the next read of its room or the sweep ends.
    async fn say_goodbye(&self, connection_id: &str, now_ms: u64, gone: &mut VecDeque<String>) {
        let until = self.core.resume_deadline_after(SocketEnd::Goodbye, now_ms);
        let record = match self.config.store.remove(connection_id, until, now_ms).await {
            Ok(record) => record,
            Err(err) => {
                warn!(connection_id, error = %err, "could not remove connection");
                return;
            }
        };
        if let Some(seat) = record.and_then(|r| r.seat) {
            if let Err(err) = self.expire(&seat, until, Some(now_ms), now_ms, gone).await {
                warn!(connection_id, error = %err, "could not end a participant that said goodbye");
            }
        }
    }

    /// `$default`: one client text frame.
    pub async fn message(&self, connection_id: &str, text: &str, now_ms: u64) {
        let mut gone = VecDeque::new();
        if let Err(err) = self
            .handle_message(connection_id, text, now_ms, &mut gone)
            .await
        {
            self.reply_error(connection_id, &err, &mut gone).await;
        }
        self.clean_up_gone(&mut gone, now_ms).await;
    }

    /// Closes every socket of `user_id` (its account was deleted): each
    /// participant leaves at once, with no resume grace, and its room is
    /// told.
    pub async fn disconnect_user(&self, user_id: &str, now_ms: u64) -> Result<usize, StoreError> {
        let store = &self.config.store;
        let connections = store.connections_of(user_id, now_ms / 1000).await?;
        let mut gone = VecDeque::new();
        for record in &connections {
            if let Some(seat) = &record.seat {
                if let Some(departure) = store.leave(&record.connection_id, seat, now_ms).await? {
                    self.depart(&departure, now_ms, now_ms, &mut gone).await;
                }
            }
            store.remove(&record.connection_id, now_ms, now_ms).await?;
            let _ = self.config.push.close(&record.connection_id).await;
        }
        self.clean_up_gone(&mut gone, now_ms).await;
        info!(
            user_id,
            sockets = connections.len(),
            "closed a deleted user's sockets"
        );
        Ok(connections.len())
    }

    /// Ends every participant that is gone for good, and tells its room:
    /// each detached one whose grace ran out, and each still attached to a
    /// connection that is not live (its socket ended without a
    /// `$disconnect`: API Gateway does not promise one). Rooms are also
    /// reaped of the first kind lazily whenever they are read for a
    /// message; this sweep is for rooms where nobody speaks, and the only
    /// place the second kind ends. Each visit is closed in call history at
    /// the time its participant was last seen.
    pub async fn sweep(&self, now_ms: u64) -> Swept {
        let store = &self.config.store;
        let mut swept = Swept::default();
        let mut gone = VecDeque::new();
        match store.expired_members(now_ms).await {
            Ok(expired) => {
                for (seat, until) in expired {
                    match self.expire(&seat, until, None, now_ms, &mut gone).await {
                        Ok(true) => swept.expired += 1,
                        Ok(false) => {}
                        Err(err) => warn!(error = %err, "could not end an expired participant"),
                    }
                }
            }
            Err(err) => warn!(error = %err, "could not list expired participants"),
        }
        match store.stranded_members(now_ms).await {
            Ok(stranded) => swept.stranded = self.end_stranded(stranded, now_ms, &mut gone).await,
            Err(err) => warn!(error = %err, "could not list stranded participants"),
        }
        self.clean_up_gone(&mut gone, now_ms).await;
        if swept.expired + swept.stranded > 0 {
            info!(
                expired = swept.expired,
                stranded = swept.stranded,
                "sweep ended participants that were gone"
            );
        }
        swept
    }

    /// Takes every stranded participant out of its room and forgets its
    /// connection, then tells the rooms: all the writes first, so a
    /// `peer-left` pushed to another stranded participant's dead connection
    /// (410) does not detach it for a grace it will never use.
    async fn end_stranded(
        &self,
        stranded: Vec<Stranded>,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> usize {
        let store = &self.config.store;
        let mut departures = Vec::new();
        for s in &stranded {
            match store.leave(&s.connection_id, &s.seat, now_ms).await {
                Ok(Some(departure)) => {
                    let seen = last_seen(s, self.config.limits.msg_rate, now_ms);
                    info!(peer_id = %s.seat.peer_id, room = %s.seat.room, connection_id = %s.connection_id, seen_ms = seen, "connection ended without a $disconnect; participant left");
                    departures.push((departure, seen));
                }
                Ok(None) => {}
                Err(err) => warn!(error = %err, "could not end a stranded participant"),
            }
            // Nothing is attached to it any more: this only drops the record
            // (and its place among its user's sockets).
            if let Err(err) = store.remove(&s.connection_id, now_ms, now_ms).await {
                warn!(connection_id = %s.connection_id, error = %err, "could not forget a dead connection");
            }
        }
        for (departure, seen) in &departures {
            self.depart(departure, *seen, now_ms, gone).await;
        }
        departures.len()
    }

    async fn handle_message(
        &self,
        connection_id: &str,
        text: &str,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> Result<(), ProtocolError> {
        // Every frame takes from its socket's budget, whatever it holds;
        // the read of the sender's connection comes with it.
        let rate = self.config.limits.msg_rate;
        let Some((record, verdict)) = self
            .config
            .store
            .take_message(connection_id, rate, now_ms)
            .await
            .map_err(store_error)?
        else {
            // Not (or no longer) a known connection: nothing to act for.
            warn!(connection_id, "message from unknown connection");
            let _ = self.config.push.close(connection_id).await;
            return Ok(());
        };
        let sender = record.into_sender();
        let refusal = self.core.admit(connection_id, verdict);
        if !refusal.is_empty() {
            for effect in refusal {
                self.apply(&sender, None, effect, now_ms, gone).await?;
            }
            return Ok(());
        }
        let msg = self.core.parse(text)?;
        let view = match self.core.room_needed(&sender, &msg) {
            Some(room) => Some(self.reaped_room(&room, now_ms, gone).await?),
            None => None,
        };
        // Random ids are drawn only for a join or resume.
        let fresh = || Fresh {
            peer_id: random_id(12),
            resume_secret: random_id(24),
        };
        let effects = self.core.handle(&sender, msg, view.as_ref(), fresh, now_ms);
        for effect in effects {
            self.apply(&sender, view.as_ref(), effect, now_ms, gone)
                .await?;
        }
        Ok(())
    }

    /// `room` as stored, after ending the participants whose grace ran out.
    async fn reaped_room(
        &self,
        room: &str,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> Result<RoomView, ProtocolError> {
        let mut view = self.config.store.room(room).await.map_err(store_error)?;
        for (seat, until) in view.expired(now_ms) {
            // Gone already or not, it is not in the room any more.
            self.expire(&seat, until, None, now_ms, gone).await?;
            view.members.retain(|m| m.peer.peer_id != seat.peer_id);
        }
        Ok(view)
    }

    /// Ends participant `seat` if it is still detached with deadline
    /// `until`; whether it did.
    /// Ends participant `seat` if it is still detached until `until`; its
    /// visit closes at `left_at`, or, for a drop whose grace ran out, when
    /// its socket dropped.
    async fn expire(
        &self,
        seat: &Seat,
        until: u64,
        left_at: Option<u64>,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> Result<bool, ProtocolError> {
        let departure = self
            .config
            .store
            .expire(seat, until, now_ms)
            .await
            .map_err(store_error)?;
        let Some(departure) = departure else {
            return Ok(false);
        };
        info!(peer_id = %seat.peer_id, room = %seat.room, "resume grace over; participant left");
        // Its visit ends when it was last seen: the drop, a grace before
        // the deadline, not the deadline.
        let dropped_at = left_at
            .unwrap_or_else(|| self.core.dropped_at(until))
            .max(departure.member.joined_at_ms)
            .min(now_ms);
        self.depart(&departure, dropped_at, now_ms, gone).await;
        Ok(true)
    }

    /// Call history and `peer-left` for a participant that left.
    async fn depart(
        &self,
        departure: &Departure,
        at_ms: u64,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) {
        self.log_left(&departure.member.peer, &departure.remaining.room, at_ms)
            .await;
        self.sfu_leave(departure, now_ms).await;
        let messages = self
            .core
            .announce_leave(&departure.member.peer.peer_id, &departure.remaining);
        self.deliver_all(messages, &departure.remaining.room, now_ms, gone)
            .await;
    }

    /// Ends a departed participant's SFU connection, if it had one.
    async fn sfu_leave(&self, departure: &Departure, now_ms: u64) {
        if !departure.member.sfu {
            return;
        }
        let (room, peer_id) = (&departure.remaining.room, &departure.member.peer.peer_id);
        if let Err(err) = self.config.sfu.leave(room, peer_id, now_ms / 1000).await {
            // The node also ends connections whose ICE fails.
            warn!(%room, %peer_id, error = %err, "SFU leave not applied");
        }
    }

    /// Pushes messages: those for different recipients
    /// concurrently (at most [`MAX_CONCURRENT_PUSHES`] at once), those for
    /// one recipient one after another, in order.
    async fn deliver_all(
        &self,
        messages: Vec<Outgoing>,
        room: &str,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) {
        if messages.len() <= 1 {
            for message in messages {
                self.emit(message, room, now_ms, gone).await;
            }
            return;
        }
        let mut queues: Vec<(String, Vec<Outgoing>)> = Vec::new();
        for message in messages {
            match queues.iter_mut().find(|(r, _)| r == message.recipient()) {
                Some((_, queue)) => queue.push(message),
                None => queues.push((message.recipient().to_owned(), vec![message])),
            }
        }
        let found_gone: Vec<VecDeque<String>> = stream::iter(queues)
            .map(|(_, queue)| async move {
                let mut found = VecDeque::new();
                for message in queue {
                    self.emit(message, room, now_ms, &mut found).await;
                }
                found
            })
            .buffer_unordered(MAX_CONCURRENT_PUSHES)
            .collect()
            .await;
        for id in found_gone.into_iter().flatten() {
            if !gone.contains(&id) {
                gone.push_back(id);
            }
        }
    }

    /// Pushes one message: `Send` to a connection, or `Deliver` to a
    /// participant of `room`.
    async fn emit(&self, message: Outgoing, room: &str, now_ms: u64, gone: &mut VecDeque<String>) {
        match message {
            Outgoing::Send { to, msg } => self.send(&to, &msg, gone).await,
            Outgoing::Deliver {
                peer_id,
                connection_id,
                msg,
            } => {
                self.deliver(&peer_id, connection_id.as_deref(), &msg, room, now_ms, gone)
                    .await
            }
        }
    }

    /// Until when (seconds) a signal kept at `now_ms` is worth keeping: the
    /// grace, and slack for a resume at its last moment.
    fn kept_until(&self, now_ms: u64) -> u64 {
        now_ms / 1000 + self.core.limits().resume_grace_secs + KEPT_SLACK_SECS
    }

    /// Delivers `msg` to participant `peer_id` of `room` through
    /// `connection_id`; a signal for a participant that is detached (or whose
    /// connection turns out gone) is kept for its resume.
    async fn deliver(
        &self,
        peer_id: &str,
        connection_id: Option<&str>,
        msg: &ServerMessage,
        room: &str,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) {
        let text = msg.to_json();
        let mut found_gone = None;
        if let Some(to) = connection_id {
            match self.push(to, Outbound::Message(msg), &text, gone).await {
                Pushed::Delivered | Pushed::Failed => return,
                Pushed::Gone => found_gone = Some(to.to_owned()),
            }
        }
        if !matches!(msg, ServerMessage::Signal { .. }) {
            return;
        }
        let seat = Seat {
            peer_id: peer_id.to_owned(),
            room: room.to_owned(),
        };
        self.keep_or_follow(&seat, found_gone, &text, now_ms, gone)
            .await;
    }

    /// Keeps signal `text` for participant `seat` if the store shows it
    /// detached (or attached to `found_gone`), in one store call; if it
    /// resumed since the room was read, pushes it to its new connection
    /// instead. The keep is conditioned on the participant being detached,
    /// so no resume can take the kept signals between our read and our
    /// keep: a resume after the keep flushes it, one before redirects it.
    async fn keep_or_follow(
        &self,
        seat: &Seat,
        mut found_gone: Option<String>,
        text: &str,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) {
        let peer_id = seat.peer_id.as_str();
        let max = self.core.limits().mailbox_max;
        for _ in 0..MAX_FOLLOWS {
            let outcome = self
                .config
                .store
                .keep_if_detached(
                    seat,
                    found_gone.as_deref(),
                    text,
                    max,
                    self.kept_until(now_ms),
                )
                .await;
            match outcome {
                Ok(KeepOutcome::Kept) => return,
                Ok(KeepOutcome::Full) => {
                    warn!(peer_id, "kept-signal box full; signal dropped");
                    return;
                }
                Ok(KeepOutcome::NotInRoom) => {
                    debug!(peer_id, "signal for a participant that left; dropped");
                    return;
                }
                Ok(KeepOutcome::Attached(to)) => {
                    match self.push(&to, Outbound::KeptSignal, text, gone).await {
                        Pushed::Delivered | Pushed::Failed => return,
                        Pushed::Gone => found_gone = Some(to),
                    }
                }
                Err(err) => {
                    warn!(peer_id, error = %err, "could not keep a signal");
                    return;
                }
            }
        }
        warn!(
            peer_id,
            "signal dropped: its participant's connections kept going away"
        );
    }

    /// Delivers every signal kept for participant `seat` to `connection_id`.
    async fn flush_kept(
        &self,
        seat: &Seat,
        connection_id: &str,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) {
        let kept = match self.config.store.take_kept(&seat.peer_id).await {
            Ok(kept) => kept,
            Err(err) => {
                warn!(peer_id = %seat.peer_id, error = %err, "could not take kept signals");
                return;
            }
        };
        let mut rest = kept.into_iter();
        for text in rest.by_ref() {
            if let Pushed::Gone = self
                .push(connection_id, Outbound::KeptSignal, &text, gone)
                .await
            {
                // Cut again mid-flush: keep this and the rest for the next
                // resume, or follow the participant if it resumed already.
                let found_gone = Some(connection_id.to_owned());
                for text in std::iter::once(text).chain(rest.by_ref()) {
                    self.keep_or_follow(seat, found_gone.clone(), &text, now_ms, gone)
                        .await;
                }
                return;
            }
        }
    }

    /// Forgets each gone connection, detaching its participant for the
    /// resume grace. The room is told nothing until the grace runs out.
    async fn clean_up_gone(&self, gone: &mut VecDeque<String>, now_ms: u64) {
        let store = &self.config.store;
        let deadline = self.core.resume_deadline(now_ms);
        let mut cleaned = 0;
        while let Some(id) = gone.pop_front() {
            if cleaned == MAX_GONE_CLEANUPS {
                warn!(
                    remaining = gone.len() + 1,
                    "gone-connection cleanup bound reached"
                );
                break;
            }
            cleaned += 1;
            match store.remove(&id, deadline, now_ms).await {
                Ok(Some(record)) => {
                    if let Some(seat) = record.seat {
                        debug!(connection_id = %id, peer_id = %seat.peer_id, "participant detached");
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    warn!(connection_id = %id, error = %err, "could not remove connection");
                }
            }
        }
    }

    async fn send(&self, to: &str, msg: &ServerMessage, gone: &mut VecDeque<String>) {
        self.push(to, Outbound::Message(msg), &msg.to_json(), gone)
            .await;
    }

    /// Pushes `text` (`message`, serialized) to connection `to`, and tells
    /// the observer; a connection found gone is queued in `gone` for cleanup.
    async fn push(
        &self,
        to: &str,
        message: Outbound<'_>,
        text: &str,
        gone: &mut VecDeque<String>,
    ) -> Pushed {
        let pushed = self.push_text(to, text, gone).await;
        if let Some(observer) = &self.observer {
            observer.pushed(message, pushed);
        }
        pushed
    }

    async fn push_text(&self, to: &str, text: &str, gone: &mut VecDeque<String>) -> Pushed {
        match self.config.push.send(to, text).await {
            Ok(()) => Pushed::Delivered,
            Err(PushError::Gone(_)) => {
                debug!(connection_id = to, "push found connection gone");
                if !gone.iter().any(|g| g == to) {
                    gone.push_back(to.to_owned());
                }
                Pushed::Gone
            }
            Err(err) => {
                warn!(connection_id = to, error = %err, "push failed");
                Pushed::Failed
            }
        }
    }

    async fn reply_error(&self, to: &str, err: &ProtocolError, gone: &mut VecDeque<String>) {
        debug!(connection_id = to, code = %err.code, "refused message");
        self.send(to, &err.to_message(), gone).await;
    }

    /// Call history is kept for Tincan accounts only: an app's participant
    /// has no account to read it from (`GET /me/calls`), so nothing is
    /// written for it.
    fn call_log_for(&self, participant: &Peer) -> Option<&Arc<dyn CallLog>> {
        self.config
            .calls
            .as_ref()
            .filter(|_| !is_app_user(&participant.user_id))
    }

    async fn log_joined(&self, participant: &Peer, room: &str, at_ms: u64) {
        if let Some(calls) = self.call_log_for(participant) {
            if let Err(err) = calls.joined(participant, room, at_ms).await {
                warn!(error = %err, "call history not written");
            }
        }
    }

    async fn log_left(&self, participant: &Peer, room: &str, at_ms: u64) {
        if let Some(calls) = self.call_log_for(participant) {
            if let Err(err) = calls.left(participant, room, at_ms).await {
                warn!(error = %err, "call history not written");
            }
        }
    }
}

/// What one [`WsApi::sweep`] ended (the `ws-sweep` Lambda's reply).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Swept {
    /// Detached participants whose resume grace ran out.
    pub expired: usize,
    /// Participants attached to a connection that ended without a
    /// `$disconnect`.
    pub stranded: usize,
}

/// How long API Gateway keeps a WebSocket open at most.
const MAX_CONNECTION_MS: u64 = 2 * 3600 * 1000;

/// When stranded participant `s` was last seen: its connection's last
/// admitted message (its message budget records it), else when it joined;
/// never after API Gateway's cut of that socket, nor after `now_ms`.
fn last_seen(s: &Stranded, rate: MessageRate, now_ms: u64) -> u64 {
    let Some(record) = &s.record else {
        return s.joined_at_ms.min(now_ms);
    };
    let last_message = rate.last_admitted_ms(record.rate).unwrap_or(0);
    last_message
        .max(s.joined_at_ms)
        .min(record.connected_at_ms.saturating_add(MAX_CONNECTION_MS))
        .min(now_ms)
}

/// A random URL-safe id of `bytes` random bytes.
fn random_id(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn store_error(err: StoreError) -> ProtocolError {
    warn!(error = %err, "store call failed");
    match err {
        StoreError::Unavailable(_) | StoreError::Contention(_) => ProtocolError::new(
            ErrorCode::StoreUnavailable,
            "the server's store is unavailable; try again",
        ),
        _ => ProtocolError::new(ErrorCode::Internal, "internal error"),
    }
}
