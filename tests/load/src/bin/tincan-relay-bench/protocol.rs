//! One small adapter per signaling server: how a client connects, joins its
//! room, wraps a signal for the wire, and recognises one coming back.
//!
//! - `tincan`: our protocol (`/ws?token=`, `join`, `signal {to, data}`).
//! - `socketio`: engine.io v4 framing over a plain WebSocket (`0{..}` open,
//!   `40` connect, `42["event",data]`, ping `2` / pong `3`) talking to
//!   `tests/bench/relays/socketio-relay.mjs`.
//! - `peerjs`: the PeerJS server's WebSocket (`/peerjs?key=&id=&token=`,
//!   `{type, dst, payload}` relayed with `src`; `HEARTBEAT`s keep it open).
//! - `ws`: the bare relay `tests/bench/relays/ws-relay.mjs` (`{to, data}`
//!   relayed as `{from, data}`).
//!
//! Outside Tincan the ids are chosen by the client (`p<index>`), so a ring
//! over a room is known before anyone connects.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    Tincan,
    Socketio,
    Peerjs,
    Ws,
}

/// What one text frame from the server means to a client.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    /// A relayed signal: the sender's phase and send time (ns on the run's clock).
    Signal {
        phase: usize,
        sent_ns: u64,
    },
    /// Tincan's `joined`: the client's own id and those already in the room.
    Joined {
        me: String,
        peers: Vec<String>,
    },
    /// Tincan's `peer-joined`.
    PeerJoined(String),
    /// The server's greeting (engine.io open, PeerJS `OPEN`, the bare relay's `open`),
    /// or socket.io's namespace connect and `joined` event.
    Ready,
    /// The server asked for an answer (engine.io ping): send this frame back.
    Reply(&'static str),
    Other,
}

impl Protocol {
    /// The WebSocket URL for client `id` under `base` (`ws://HOST:PORT`).
    pub(crate) fn url(self, base: &str, id: &str, token: &str) -> String {
        match self {
            Protocol::Tincan => format!("{base}/ws?token={token}"),
            Protocol::Socketio => {
                format!("{base}/socket.io/?EIO=4&transport=websocket&peer={id}")
            }
            Protocol::Peerjs => format!("{base}/peerjs?key=peerjs&id={id}&token={token}"),
            Protocol::Ws => format!("{base}/?id={id}"),
        }
    }

    /// Frames a client sends, in order, once the socket is open: each as
    /// `(n, frame)`, sent after the `n`th `Ready` arrived.
    pub(crate) fn join_frames(self, room: &str) -> Vec<(usize, String)> {
        match self {
            Protocol::Tincan => {
                vec![(
                    0,
                    serde_json::json!({"action": "join", "room": room}).to_string(),
                )]
            }
            // Open, then namespace connect; then the join, answered by `joined`.
            Protocol::Socketio => vec![
                (1, "40".to_owned()),
                (2, format!(r#"42["join",{}]"#, Value::from(room))),
            ],
            Protocol::Peerjs | Protocol::Ws => Vec::new(),
        }
    }

    /// How many `Ready`s complete the handshake.
    pub(crate) fn readies(self) -> usize {
        match self {
            Protocol::Tincan => 0,
            Protocol::Socketio => 3,
            Protocol::Peerjs | Protocol::Ws => 1,
        }
    }

    /// A frame a client sends now and then to stay connected, if the server wants one.
    pub(crate) fn heartbeat(self) -> Option<&'static str> {
        match self {
            Protocol::Peerjs => Some(r#"{"type":"HEARTBEAT"}"#),
            _ => None,
        }
    }

    /// The signal frame carrying `data` (a JSON object's text) to `to`.
    pub(crate) fn signal(self, to: &str, data: &str) -> String {
        let to = Value::from(to);
        match self {
            Protocol::Tincan => format!(r#"{{"action":"signal","to":{to},"data":{data}}}"#),
            Protocol::Socketio => format!(r#"42["signal",{{"to":{to},"data":{data}}}]"#),
            Protocol::Peerjs => format!(r#"{{"type":"CANDIDATE","dst":{to},"payload":{data}}}"#),
            Protocol::Ws => format!(r#"{{"to":{to},"data":{data}}}"#),
        }
    }

    pub(crate) fn parse(self, text: &str) -> Incoming {
        match self {
            Protocol::Socketio => parse_engine_io(text),
            _ => {
                let Ok(v) = serde_json::from_str::<Value>(text) else {
                    return Incoming::Other;
                };
                match self {
                    Protocol::Tincan => parse_tincan(&v),
                    Protocol::Peerjs => match v["type"].as_str() {
                        Some("OPEN") => Incoming::Ready,
                        Some("CANDIDATE") => signal(&v["payload"]),
                        _ => Incoming::Other,
                    },
                    _ => match v["type"].as_str() {
                        Some("open") => Incoming::Ready,
                        _ => signal(&v["data"]),
                    },
                }
            }
        }
    }
}

fn parse_tincan(v: &Value) -> Incoming {
    let id = |p: &Value| p["peerId"].as_str().unwrap_or_default().to_owned();
    match v["type"].as_str() {
        Some("signal") => signal(&v["data"]),
        Some("joined") => Incoming::Joined {
            me: id(&v["self"]),
            peers: v["peers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(id)
                .collect(),
        },
        Some("peer-joined") => Incoming::PeerJoined(id(&v["peer"])),
        _ => Incoming::Other,
    }
}

fn parse_engine_io(text: &str) -> Incoming {
    if text == "2" {
        return Incoming::Reply("3");
    }
    if text.starts_with('0') || text.starts_with("40") {
        return Incoming::Ready;
    }
    let Some(body) = text.strip_prefix("42") else {
        return Incoming::Other;
    };
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return Incoming::Other;
    };
    match v[0].as_str() {
        Some("signal") => signal(&v[1]["data"]),
        Some("joined") => Incoming::Ready,
        _ => Incoming::Other,
    }
}

fn signal(data: &Value) -> Incoming {
    match (data["ph"].as_u64(), data["t"].as_u64()) {
        (Some(phase), Some(sent_ns)) => Incoming::Signal {
            phase: phase as usize,
            sent_ns,
        },
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = r#"{"ph":1,"seq":0,"t":42,"pad":"x"}"#;

    #[test]
    fn every_protocol_reads_back_the_signal_its_server_relays() {
        // What each server makes of the client's frame, written by hand.
        let relayed = [
            (
                Protocol::Tincan,
                format!(r#"{{"type":"signal","from":"a","data":{DATA}}}"#),
            ),
            (
                Protocol::Socketio,
                format!(r#"42["signal",{{"from":"a","data":{DATA}}}]"#),
            ),
            (
                Protocol::Peerjs,
                format!(r#"{{"type":"CANDIDATE","src":"a","dst":"b","payload":{DATA}}}"#),
            ),
            (Protocol::Ws, format!(r#"{{"from":"a","data":{DATA}}}"#)),
        ];
        for (p, frame) in relayed {
            assert_eq!(
                p.parse(&frame),
                Incoming::Signal {
                    phase: 1,
                    sent_ns: 42
                },
                "{p:?}"
            );
            // The frame the client sends is valid JSON after any framing prefix.
            let sent = p.signal("b", DATA);
            let body = sent.strip_prefix("42").unwrap_or(&sent);
            assert!(serde_json::from_str::<Value>(body).is_ok(), "{p:?}: {sent}");
        }
    }

    #[test]
    fn engine_io_handshake_and_ping() {
        let p = Protocol::Socketio;
        assert_eq!(
            p.parse(r#"0{"sid":"x","pingInterval":25000}"#),
            Incoming::Ready
        );
        assert_eq!(p.parse(r#"40{"sid":"y"}"#), Incoming::Ready);
        assert_eq!(p.parse(r#"42["joined","room"]"#), Incoming::Ready);
        assert_eq!(p.parse("2"), Incoming::Reply("3"));
        assert_eq!(p.parse(r#"42["other",1]"#), Incoming::Other);
    }

    #[test]
    fn tincan_join_answers() {
        let p = Protocol::Tincan;
        let joined =
            r#"{"type":"joined","room":"r","self":{"peerId":"me"},"peers":[{"peerId":"a"}]}"#;
        assert_eq!(
            p.parse(joined),
            Incoming::Joined {
                me: "me".into(),
                peers: vec!["a".into()]
            }
        );
        assert_eq!(
            p.parse(r#"{"type":"peer-joined","peer":{"peerId":"b"}}"#),
            Incoming::PeerJoined("b".into())
        );
        assert_eq!(p.parse("not json"), Incoming::Other);
    }
}
