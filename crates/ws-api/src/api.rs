//! The three WebSocket events, applied.

use std::collections::VecDeque;
use std::sync::Arc;

use tincan_signaling::{
    ClientMessage, Core, Effect, ErrorCode, Limits, ProtocolError, RoomView, ServerMessage,
};
use tincan_store::{
    room_view, ConnectionRecord, ConnectionStore, JoinOutcome, Push, PushError, StoreError,
};
use tincan_token::{TokenError, TokenKeys};
use tracing::{debug, info, warn};

use crate::call_log::CallLog;
use crate::ice::IceServerSource;

/// Most gone connections cleaned up while handling one event; the rest are
/// left to their TTL (and to the next push that finds them gone).
const MAX_GONE_CLEANUPS: usize = 16;

/// What the handlers need, all behind traits.
#[derive(Clone)]
pub struct WsApiConfig {
    /// Message and room limits.
    pub limits: Limits,
    /// Verifies access tokens at connect.
    pub tokens: TokenKeys,
    /// Live connections and rooms.
    pub store: Arc<dyn ConnectionStore>,
    /// Delivers messages to connections.
    pub push: Arc<dyn Push>,
    /// `iceServers` for `joined`.
    pub ice: Arc<dyn IceServerSource>,
    /// Call history, if kept.
    pub calls: Option<Arc<dyn CallLog>>,
}

/// Why a `$connect` was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// No token, or not a valid, unexpired access token: answer 401.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The connection could not be recorded: answer 503.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The WebSocket API's handlers.
#[derive(Clone)]
pub struct WsApi {
    core: Core,
    config: WsApiConfig,
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
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// `$connect`: checks the access token and records the connection.
    pub async fn connect(
        &self,
        connection_id: &str,
        token: Option<&str>,
        now_ms: u64,
    ) -> Result<(), ConnectError> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(ConnectError::Unauthorized("missing token"))?;
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
        let record = ConnectionRecord::new(connection_id, claims.sub, claims.name, now_ms);
        self.config.store.put(&record).await?;
        info!(connection_id, user_id = %record.user_id, "connected");
        Ok(())
    }

    /// `$disconnect`: the connection leaves its room and is forgotten.
    pub async fn disconnect(&self, connection_id: &str, now_ms: u64) {
        let mut gone = VecDeque::from([connection_id.to_owned()]);
        self.clean_up_gone(&mut gone, now_ms).await;
        info!(connection_id, "disconnected");
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

    async fn handle_message(
        &self,
        connection_id: &str,
        text: &str,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> Result<(), ProtocolError> {
        let now_secs = now_ms / 1000;
        let msg = self.core.parse(text)?;
        let store = &self.config.store;
        let Some(record) = store
            .get(connection_id, now_secs)
            .await
            .map_err(store_error)?
        else {
            // Not (or no longer) a known connection: nothing to act for.
            warn!(connection_id, "message from unknown connection");
            let _ = self.config.push.close(connection_id).await;
            return Ok(());
        };
        let sender = record.sender();
        let mut rooms = Vec::new();
        for room in self.core.rooms_needed(&sender, &msg) {
            let members = store
                .room_members(room, now_secs)
                .await
                .map_err(store_error)?;
            rooms.push(room_view(room, &members));
        }
        let ice = match &msg {
            ClientMessage::Join { room } => {
                self.config
                    .ice
                    .ice_servers(&record.user_id, room, now_secs)
                    .await
            }
            _ => Vec::new(),
        };
        let effects = self.core.handle(&sender, msg, &rooms, &ice, now_ms);
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => self.send(&to, &msg, gone).await,
                Effect::PutMember {
                    peer_id,
                    room,
                    room_max,
                    at_ms,
                } => {
                    match store
                        .join_room(&peer_id, &room, room_max, now_secs)
                        .await
                        .map_err(store_error)?
                    {
                        JoinOutcome::Joined => {}
                        JoinOutcome::RoomFull => {
                            return Err(ProtocolError::new(
                                ErrorCode::RoomFull,
                                format!("room `{room}` is full ({room_max} peers)"),
                            ))
                        }
                        JoinOutcome::UnknownConnection => return Ok(()),
                    }
                    let mut joined = record.clone();
                    joined.room = Some(room.clone());
                    self.log_joined(&joined, &room, at_ms).await;
                    // Read the room after our write, so a peer that joined at
                    // the same moment is not missed.
                    let members = store
                        .room_members(&room, now_secs)
                        .await
                        .map_err(store_error)?;
                    let view = room_view(&room, &members);
                    for effect in self.core.announce_join(&joined.sender(), &view, &ice) {
                        if let Effect::Send { to, msg } = effect {
                            self.send(&to, &msg, gone).await;
                        }
                    }
                }
                Effect::RemoveMember {
                    peer_id,
                    room,
                    at_ms,
                } => {
                    store
                        .leave_room(&peer_id, &room)
                        .await
                        .map_err(store_error)?;
                    self.log_left(&record, &room, at_ms).await;
                }
                Effect::RecordMediaPath {
                    peer_id: _,
                    room,
                    path,
                } => {
                    if let Some(calls) = &self.config.calls {
                        if let Err(err) = calls.media_path(&record, &room, path).await {
                            warn!(error = %err, "call history not written");
                        }
                    }
                }
                Effect::SetMuted { peer_id, muted } => {
                    store
                        .set_muted(&peer_id, muted)
                        .await
                        .map_err(store_error)?;
                }
            }
        }
        Ok(())
    }

    /// Removes each gone connection and tells its room, following any further
    /// connections found gone while doing so, up to a bound.
    async fn clean_up_gone(&self, gone: &mut VecDeque<String>, now_ms: u64) {
        let store = &self.config.store;
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
            let record = match store.remove(&id).await {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(err) => {
                    warn!(connection_id = %id, error = %err, "could not remove connection");
                    continue;
                }
            };
            let Some(room) = record.room.clone() else {
                continue;
            };
            self.log_left(&record, &room, now_ms).await;
            let members = match store.room_members(&room, now_ms / 1000).await {
                Ok(members) => members,
                Err(err) => {
                    warn!(room = %room, error = %err, "could not tell room of a departure");
                    continue;
                }
            };
            let view: RoomView = room_view(&room, &members);
            for effect in self.core.disconnect(&record.sender(), Some(&view), now_ms) {
                if let Effect::Send { to, msg } = effect {
                    self.send(&to, &msg, gone).await;
                }
            }
        }
    }

    async fn send(&self, to: &str, msg: &ServerMessage, gone: &mut VecDeque<String>) {
        match self.config.push.send(to, &msg.to_json()).await {
            Ok(()) => {}
            Err(PushError::Gone(_)) => {
                debug!(connection_id = to, "push found connection gone");
                if !gone.iter().any(|g| g == to) {
                    gone.push_back(to.to_owned());
                }
            }
            Err(err) => warn!(connection_id = to, error = %err, "push failed"),
        }
    }

    async fn reply_error(&self, to: &str, err: &ProtocolError, gone: &mut VecDeque<String>) {
        debug!(connection_id = to, code = %err.code, "refused message");
        self.send(to, &err.to_message(), gone).await;
    }

    async fn log_joined(&self, record: &ConnectionRecord, room: &str, at_ms: u64) {
        if let Some(calls) = &self.config.calls {
            if let Err(err) = calls.joined(record, room, at_ms).await {
                warn!(error = %err, "call history not written");
            }
        }
    }

    async fn log_left(&self, record: &ConnectionRecord, room: &str, at_ms: u64) {
        if let Some(calls) = &self.config.calls {
            if let Err(err) = calls.left(record, room, at_ms).await {
                warn!(error = %err, "call history not written");
            }
        }
    }
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
