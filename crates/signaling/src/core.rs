//! Room rules: a parsed message plus the state the caller loaded, in; effects
//! out.

use crate::error::{ErrorCode, ProtocolError};
use crate::message::{ClientMessage, IceServer, MediaPath, Peer, ServerMessage};

/// Limits the core enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest client frame accepted, in bytes (`TINCAN_MAX_MESSAGE`).
    pub max_message_bytes: usize,
    /// Most peers one room holds (`TINCAN_ROOM_MAX`).
    pub room_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024,
            room_max: 8,
        }
    }
}

/// The sender of a frame, as stored at connect/join time — never as claimed in
/// the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The sender as peers see it.
    pub peer: Peer,
    /// The room the sender is in, if any.
    pub room: Option<String>,
}

/// The members of one room, as the caller loaded them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    /// The room id.
    pub room: String,
    /// Everyone in the room, the sender included if it is a member.
    pub members: Vec<Peer>,
}

impl RoomView {
    fn others<'a>(&'a self, me: &'a str) -> impl Iterator<Item = &'a Peer> + 'a {
        self.members.iter().filter(move |p| p.peer_id != me)
    }

    fn contains(&self, peer_id: &str) -> bool {
        self.members.iter().any(|p| p.peer_id == peer_id)
    }
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Deliver `msg` to connection `to`.
    Send {
        /// Receiving connection id.
        to: String,
        /// The message.
        msg: ServerMessage,
    },
    /// Make `peer_id` a member of `room`, only if the room then holds at most
    /// `room_max` peers. The store must check this atomically. If it refuses,
    /// the caller answers `room-full`; if it accepts, the caller reads the
    /// room again and applies [`Core::announce_join`].
    PutMember {
        /// The joining connection.
        peer_id: String,
        /// The room.
        room: String,
        /// The capacity to enforce.
        room_max: usize,
        /// When the peer joined, milliseconds since the epoch.
        at_ms: u64,
    },
    /// Take `peer_id` out of `room`.
    RemoveMember {
        /// The leaving connection.
        peer_id: String,
        /// The room it leaves.
        room: String,
        /// When the peer left, milliseconds since the epoch.
        at_ms: u64,
    },
    /// Note in the call history how the sender's media goes.
    RecordMediaPath {
        /// The connection.
        peer_id: String,
        /// Its room.
        room: String,
        /// The path.
        path: MediaPath,
    },
    /// Store the sender's mute state.
    SetMuted {
        /// The connection.
        peer_id: String,
        /// Muted or not.
        muted: bool,
    },
}

/// The signaling rules, configured with [`Limits`].
#[derive(Debug, Clone, Default)]
pub struct Core {
    limits: Limits,
}

impl Core {
    /// A core enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Parses a client text frame, refusing it if over the size limit.
    pub fn parse(&self, text: &str) -> Result<ClientMessage, ProtocolError> {
        if text.len() > self.limits.max_message_bytes {
            return Err(ProtocolError::new(
                ErrorCode::TooLarge,
                format!(
                    "message is {} bytes; the limit is {}",
                    text.len(),
                    self.limits.max_message_bytes
                ),
            ));
        }
        ClientMessage::from_json(text)
    }

    /// The rooms whose members [`Core::handle`] needs for `msg`: the room
    /// being joined, and the sender's current room.
    pub fn rooms_needed<'a>(&self, sender: &'a Sender, msg: &'a ClientMessage) -> Vec<&'a str> {
        let mut rooms = Vec::with_capacity(2);
        if let ClientMessage::Join { room } = msg {
            rooms.push(room.as_str());
        }
        if let Some(current) = sender.room.as_deref() {
            if !rooms.contains(&current) {
                rooms.push(current);
            }
        }
        rooms
    }

    /// The effects of `msg` from `sender` at `now_ms`. `rooms` holds a view of
    /// each room named by [`Core::rooms_needed`]; `ice_servers` are handed
    /// to a peer that joins.
    pub fn handle(
        &self,
        sender: &Sender,
        msg: ClientMessage,
        rooms: &[RoomView],
        ice_servers: &[IceServer],
        now_ms: u64,
    ) -> Vec<Effect> {
        let me = sender.peer.peer_id.as_str();
        let view = |room: &str| {
            rooms
                .iter()
                .find(|v| v.room == room)
                .cloned()
                .unwrap_or_else(|| RoomView {
                    room: room.to_owned(),
                    members: Vec::new(),
                })
        };
        match msg {
            ClientMessage::Ping => vec![send(me, ServerMessage::Pong)],
            ClientMessage::Join { room } => {
                let target = view(&room);
                if sender.room.as_deref() == Some(room.as_str()) && target.contains(me) {
                    // Joining the room you are in: say where you are again.
                    return vec![self.joined(sender, &target, ice_servers)];
                }
                let others = target.others(me).count();
                if others >= self.limits.room_max {
                    // Refused before anything moves: the sender stays where it was.
                    return vec![send(
                        me,
                        ServerMessage::Error {
                            code: ErrorCode::RoomFull,
                            message: format!(
                                "room `{room}` is full ({} peers)",
                                self.limits.room_max
                            ),
                        },
                    )];
                }
                let mut effects = match sender.room.as_deref() {
                    Some(current) => self.leave(sender, &view(current), now_ms),
                    None => Vec::new(),
                };
                effects.push(Effect::PutMember {
                    peer_id: me.to_owned(),
                    room,
                    room_max: self.limits.room_max,
                    at_ms: now_ms,
                });
                effects
            }
            ClientMessage::Leave => match sender.room.as_deref() {
                Some(current) => self.leave(sender, &view(current), now_ms),
                // Leaving when in no room is already done.
                None => Vec::new(),
            },
            ClientMessage::Signal { to, data } => {
                let reachable = sender
                    .room
                    .as_deref()
                    .map(view)
                    .is_some_and(|v| to != me && v.contains(&to));
                if reachable {
                    vec![send(
                        &to,
                        ServerMessage::Signal {
                            from: me.to_owned(),
                            data,
                        },
                    )]
                } else {
                    vec![send(
                        me,
                        ServerMessage::Error {
                            code: ErrorCode::NotInRoom,
                            message: "that peer is not in your room".to_owned(),
                        },
                    )]
                }
            }
            ClientMessage::Media { path } => match sender.room.as_deref() {
                Some(room) => vec![Effect::RecordMediaPath {
                    peer_id: me.to_owned(),
                    room: room.to_owned(),
                    path,
                }],
                None => vec![send(
                    me,
                    ServerMessage::Error {
                        code: ErrorCode::NotInRoom,
                        message: "join a room first".to_owned(),
                    },
                )],
            },
            ClientMessage::Mute { muted } => {
                let mut effects = vec![Effect::SetMuted {
                    peer_id: me.to_owned(),
                    muted,
                }];
                if let Some(current) = sender.room.as_deref() {
                    for other in view(current).others(me) {
                        effects.push(send(
                            &other.peer_id,
                            ServerMessage::PeerMuted {
                                peer_id: me.to_owned(),
                                muted,
                            },
                        ));
                    }
                }
                effects
            }
        }
    }

    /// The effects of `sender`'s connection closing: it leaves its room.
    pub fn disconnect(&self, sender: &Sender, room: Option<&RoomView>, now_ms: u64) -> Vec<Effect> {
        match (sender.room.as_deref(), room) {
            (Some(current), Some(view)) if view.room == current => self.leave(sender, view, now_ms),
            (Some(current), _) => self.leave(
                sender,
                &RoomView {
                    room: current.to_owned(),
                    members: Vec::new(),
                },
                now_ms,
            ),
            (None, _) => Vec::new(),
        }
    }

    /// The announcements after a [`Effect::PutMember`] succeeded: `joined` to
    /// the sender and `peer-joined` to everyone else. `room` is the room as
    /// read *after* the write, so two peers joining at once still learn of
    /// each other (the later writer sees the earlier one and tells it).
    pub fn announce_join(
        &self,
        sender: &Sender,
        room: &RoomView,
        ice_servers: &[IceServer],
    ) -> Vec<Effect> {
        let me = sender.peer.peer_id.as_str();
        let mut effects = vec![self.joined(sender, room, ice_servers)];
        for other in room.others(me) {
            effects.push(send(
                &other.peer_id,
                ServerMessage::PeerJoined {
                    peer: sender.peer.clone(),
                },
            ));
        }
        effects
    }

    fn joined(&self, sender: &Sender, target: &RoomView, ice_servers: &[IceServer]) -> Effect {
        send(
            &sender.peer.peer_id,
            ServerMessage::Joined {
                room: target.room.clone(),
                self_peer: sender.peer.clone(),
                peers: target.others(&sender.peer.peer_id).cloned().collect(),
                ice_servers: ice_servers.to_vec(),
            },
        )
    }

    fn leave(&self, sender: &Sender, current: &RoomView, now_ms: u64) -> Vec<Effect> {
        let me = sender.peer.peer_id.as_str();
        let mut effects = vec![Effect::RemoveMember {
            peer_id: me.to_owned(),
            room: current.room.clone(),
            at_ms: now_ms,
        }];
        for other in current.others(me) {
            effects.push(send(
                &other.peer_id,
                ServerMessage::PeerLeft {
                    peer_id: me.to_owned(),
                },
            ));
        }
        effects
    }
}

fn send(to: &str, msg: ServerMessage) -> Effect {
    Effect::Send {
        to: to.to_owned(),
        msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str) -> Peer {
        Peer {
            peer_id: id.into(),
            user_id: format!("user-{id}"),
            display_name: format!("Name {id}"),
            muted: false,
        }
    }

    fn sender(id: &str, room: Option<&str>) -> Sender {
        Sender {
            peer: peer(id),
            room: room.map(str::to_owned),
        }
    }

    #[test]
    fn oversize_frame_is_too_large_before_parsing() {
        let core = Core::new(Limits {
            max_message_bytes: 10,
            room_max: 2,
        });
        let err = core.parse(r#"{"action":"ping"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooLarge);
    }

    #[test]
    fn rooms_needed_names_target_and_current() {
        let core = Core::default();
        let s = sender("a", Some("old"));
        let join = ClientMessage::Join { room: "new".into() };
        assert_eq!(core.rooms_needed(&s, &join), vec!["new", "old"]);
        assert_eq!(core.rooms_needed(&s, &ClientMessage::Ping), vec!["old"]);
        let same = ClientMessage::Join { room: "old".into() };
        assert_eq!(core.rooms_needed(&s, &same), vec!["old"]);
    }

    #[test]
    fn full_room_refuses_without_writing() {
        let core = Core::new(Limits {
            max_message_bytes: 1024,
            room_max: 1,
        });
        let rooms = [RoomView {
            room: "r".into(),
            members: vec![peer("b")],
        }];
        let effects = core.handle(
            &sender("a", None),
            ClientMessage::Join { room: "r".into() },
            &rooms,
            &[],
            0,
        );
        assert!(matches!(
            effects.as_slice(),
            [Effect::Send { to, msg: ServerMessage::Error { code: ErrorCode::RoomFull, .. } }] if to == "a"
        ));
    }

    #[test]
    fn rejoining_the_same_room_only_repeats_joined() {
        let core = Core::default();
        let rooms = [RoomView {
            room: "r".into(),
            members: vec![peer("a"), peer("b")],
        }];
        let effects = core.handle(
            &sender("a", Some("r")),
            ClientMessage::Join { room: "r".into() },
            &rooms,
            &[],
            0,
        );
        assert_eq!(effects.len(), 1);
        assert!(
            matches!(&effects[0], Effect::Send { to, msg: ServerMessage::Joined { peers, .. } } if to == "a" && peers.len() == 1)
        );
    }

    #[test]
    fn signal_to_self_or_outside_room_is_refused() {
        let core = Core::default();
        let rooms = [RoomView {
            room: "r".into(),
            members: vec![peer("a"), peer("b")],
        }];
        for to in ["a", "zzz"] {
            let effects = core.handle(
                &sender("a", Some("r")),
                ClientMessage::Signal {
                    to: to.into(),
                    data: serde_json::json!(1),
                },
                &rooms,
                &[],
                0,
            );
            assert!(matches!(
                effects.as_slice(),
                [Effect::Send {
                    msg: ServerMessage::Error {
                        code: ErrorCode::NotInRoom,
                        ..
                    },
                    ..
                }]
            ));
        }
    }

    #[test]
    fn disconnect_outside_a_room_does_nothing() {
        assert!(Core::default()
            .disconnect(&sender("a", None), None, 0)
            .is_empty());
    }
}
