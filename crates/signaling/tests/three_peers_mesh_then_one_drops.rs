//! Three fake peers driven through the core on a virtual clock, with a tiny
//! in-test room table standing in for the store: they form a mesh, negotiate,
//! one mutes, one drops without saying goodbye, and a fourth finds the room
//! as it really is.

use std::collections::BTreeMap;

use serde_json::json;
use tincan_signaling::{Core, Effect, Limits, Peer, RoomView, Sender, ServerMessage};

/// The peers and their rooms, plus every message each peer received.
#[derive(Default)]
struct World {
    core: Core,
    peers: BTreeMap<String, (Peer, Option<String>)>,
    inbox: BTreeMap<String, Vec<ServerMessage>>,
    now_ms: u64,
}

impl World {
    fn connect(&mut self, id: &str) {
        let peer = Peer {
            peer_id: id.into(),
            user_id: format!("user-{id}"),
            display_name: id.to_uppercase(),
            muted: false,
        };
        self.peers.insert(id.into(), (peer, None));
    }

    fn view(&self, room: &str) -> RoomView {
        RoomView {
            room: room.into(),
            members: self
                .peers
                .values()
                .filter(|(_, r)| r.as_deref() == Some(room))
                .map(|(p, _)| p.clone())
                .collect(),
        }
    }

    fn sender(&self, id: &str) -> Sender {
        let (peer, room) = &self.peers[id];
        Sender {
            peer: peer.clone(),
            room: room.clone(),
        }
    }

    fn apply(&mut self, sender_id: &str, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => self.inbox.entry(to).or_default().push(msg),
                Effect::PutMember { peer_id, room, .. } => {
                    self.peers.get_mut(&peer_id).unwrap().1 = Some(room.clone());
                    let view = self.view(&room);
                    let sender = self.sender(sender_id);
                    let announce = self.core.announce_join(&sender, &view, &[]);
                    self.apply(sender_id, announce);
                }
                Effect::RemoveMember { peer_id, .. } => {
                    self.peers.get_mut(&peer_id).unwrap().1 = None;
                }
                Effect::RecordMediaPath { .. } => {}
                Effect::SetMuted { peer_id, muted } => {
                    self.peers.get_mut(&peer_id).unwrap().0.muted = muted;
                }
            }
        }
    }

    fn frame(&mut self, id: &str, text: &str) {
        self.now_ms += 10;
        let sender = self.sender(id);
        let effects = match self.core.parse(text) {
            Ok(msg) => {
                let rooms: Vec<RoomView> = self
                    .core
                    .rooms_needed(&sender, &msg)
                    .into_iter()
                    .map(|r| self.view(r))
                    .collect();
                self.core.handle(&sender, msg, &rooms, &[], self.now_ms)
            }
            Err(err) => vec![Effect::Send {
                to: id.into(),
                msg: err.to_message(),
            }],
        };
        self.apply(id, effects);
    }

    fn drop_connection(&mut self, id: &str) {
        self.now_ms += 10;
        let sender = self.sender(id);
        let view = sender.room.as_deref().map(|r| self.view(r));
        let effects = self.core.disconnect(&sender, view.as_ref(), self.now_ms);
        self.apply(id, effects);
        self.peers.remove(id);
    }

    fn take(&mut self, id: &str) -> Vec<ServerMessage> {
        self.inbox.remove(id).unwrap_or_default()
    }
}

fn join(room: &str) -> String {
    json!({"action": "join", "room": room}).to_string()
}

#[test]
fn three_peers_mesh_then_one_drops() {
    let mut w = World {
        core: Core::new(Limits {
            max_message_bytes: 4096,
            room_max: 4,
        }),
        ..World::default()
    };
    for id in ["a", "b", "c", "d"] {
        w.connect(id);
    }
    for id in ["a", "b", "c"] {
        w.frame(id, &join("mesh"));
    }
    // Each newcomer saw everyone already there; everyone there saw it arrive.
    let peers_of = |msgs: &[ServerMessage]| -> Vec<String> {
        msgs.iter()
            .find_map(|m| match m {
                ServerMessage::Joined { peers, .. } => {
                    Some(peers.iter().map(|p| p.peer_id.clone()).collect())
                }
                _ => None,
            })
            .unwrap()
    };
    let a = w.take("a");
    let b = w.take("b");
    let c = w.take("c");
    assert_eq!(peers_of(&a), Vec::<String>::new());
    assert_eq!(peers_of(&b), ["a"]);
    assert_eq!(peers_of(&c), ["a", "b"]);
    let joined_count = |msgs: &[ServerMessage]| {
        msgs.iter()
            .filter(|m| matches!(m, ServerMessage::PeerJoined { .. }))
            .count()
    };
    assert_eq!(joined_count(&a), 2);
    assert_eq!(joined_count(&b), 1);
    assert_eq!(joined_count(&c), 0);

    // Offers and answers across the mesh reach only their addressee.
    for (from, to) in [("c", "a"), ("c", "b"), ("b", "a")] {
        let frame =
            json!({"action": "signal", "to": to, "data": {"sdp": format!("offer {from}->{to}")}});
        w.frame(from, &frame.to_string());
    }
    let a = w.take("a");
    assert_eq!(a.len(), 2);
    assert!(a.iter().all(|m| matches!(m, ServerMessage::Signal { .. })));
    assert_eq!(w.take("b").len(), 1);
    assert!(w.take("c").is_empty());

    // b mutes: a and c hear it, b's stored state changes.
    w.frame("b", r#"{"action":"mute","muted":true}"#);
    assert!(matches!(
        &w.take("a")[..],
        [ServerMessage::PeerMuted { muted: true, .. }]
    ));
    assert!(matches!(
        &w.take("c")[..],
        [ServerMessage::PeerMuted { muted: true, .. }]
    ));
    assert!(w.peers["b"].0.muted);

    // c's connection drops mid-call: a and b are told.
    w.drop_connection("c");
    for id in ["a", "b"] {
        assert_eq!(
            w.take(id),
            [ServerMessage::PeerLeft {
                peer_id: "c".into()
            }]
        );
    }

    // d arrives and finds a and b, with b still muted.
    w.frame("d", &join("mesh"));
    let d = w.take("d");
    let ServerMessage::Joined { peers, .. } = &d[0] else {
        panic!("{d:?}");
    };
    assert_eq!(peers.len(), 2);
    assert!(peers.iter().any(|p| p.peer_id == "b" && p.muted));
    for id in ["a", "b"] {
        assert!(
            matches!(&w.take(id)[..], [ServerMessage::PeerJoined { peer }] if peer.peer_id == "d")
        );
    }

    // A parse failure is answered to its sender only.
    w.frame("d", "{");
    assert!(matches!(&w.take("d")[..], [ServerMessage::Error { .. }]));
    assert!(w.take("a").is_empty());
}
