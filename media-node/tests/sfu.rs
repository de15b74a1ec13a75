//! The SFU end to end on loopback: synthetic participants (webrtc-rs `rtc`
//! core) join through the control API, publish Opus-like RTP with audio
//! levels, and check what they hear against what `active-speakers` says.

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use support::sfu_client::{offer, red_primary, Options, Participant, OPUS_PT, RED_PT};
use support::{control_secret, now, start_node_with, LOCALHOST};
use tincan_media_node::MediaNode;
use tincan_sfu_control::{
    mint, ControlSecret, JoinRequest, RequestTarget, SfuClientError, SfuControlClient,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn sfu_node(room_max: usize) -> (MediaNode, SocketAddr) {
    let node = start_node_with(|config| {
        if let Some(sfu) = config.sfu.as_mut() {
            sfu.room_max = room_max;
        }
    })
    .await;
    let control = node.sfu_control_addr().expect("the SFU runs");
    (node, control)
}

/// One raw HTTP/1.1 request: the status and the body.
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    raw_from(LOCALHOST, addr, method, path, token, body).await
}

/// [`raw`], from the local address `from` (any of 127/8 on Linux).
async fn raw_from(
    from: IpAddr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: node\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut reply))
        .await
        .expect("reply in time")
        .unwrap();
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

fn code_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A token for one request, signed with `secret`, issued at `at`.
fn token_with(secret: &ControlSecret, method: &str, path: &str, body: &str, at: u64) -> String {
    let target = RequestTarget {
        method,
        path,
        body: body.as_bytes(),
    };
    mint(secret, &target, at)
}

/// A token for one request, as the signaling side mints it now.
fn token_for(method: &str, path: &str, body: &str) -> String {
    token_with(&control_secret(), method, path, body, now())
}

fn join_body(offer: String, muted: bool) -> String {
    serde_json::to_string(&JoinRequest { offer, muted }).unwrap()
}

#[tokio::test]
async fn control_requests_without_a_good_token_are_refused() {
    let (_node, control) = sfu_node(100).await;
    let path = "/sfu/v1/rooms/r1/peers/p1";
    let mute = "/sfu/v1/rooms/r1/peers/p1/mute";
    let body = r#"{"muted": true}"#;

    let (status, reply) = raw(control, "POST", mute, None, body).await;
    assert_eq!((status, code_of(&reply).as_str()), (401, "unauthorized"));

    let other_secret = ControlSecret::new("another-secret-of-at-least-32-bytes!").unwrap();
    let forged = token_with(&other_secret, "POST", mute, body, now());
    let (status, reply) = raw(control, "POST", mute, Some(&forged), body).await;
    assert_eq!((status, code_of(&reply).as_str()), (401, "unauthorized"));

    // The TURN secret no longer signs control tokens.
    let turn_keyed = ControlSecret::new(support::SECRET).unwrap();
    let old_key = token_with(&turn_keyed, "POST", mute, body, now());
    let (status, reply) = raw(control, "POST", mute, Some(&old_key), body).await;
    assert_eq!((status, code_of(&reply).as_str()), (401, "unauthorized"));

    let (status, _) = raw(control, "POST", mute, Some("not.a.jwt"), body).await;
    assert_eq!(status, 401);

    // The right token works; leaving an unknown peer is fine.
    let good = token_for("DELETE", path, "");
    assert_eq!(raw(control, "DELETE", path, Some(&good), "").await.0, 204);
    let good = token_for("POST", mute, body);
    assert_eq!(raw(control, "POST", mute, Some(&good), body).await.0, 204);
    // A bad body is a 400, an oversized one a 413; the messages are fixed
    // texts, never a parser's.
    let good = token_for("POST", mute, "{");
    let (status, reply) = raw(control, "POST", mute, Some(&good), "{").await;
    assert_eq!((status, code_of(&reply).as_str()), (400, "invalid-request"));
    assert!(
        reply.contains("the body is not the expected JSON"),
        "{reply}"
    );
    let big = format!(r#"{{"offer": "{}"}}"#, "x".repeat(70 * 1024));
    let good = token_for("PUT", path, &big);
    let (status, reply) = raw(control, "PUT", path, Some(&good), &big).await;
    assert_eq!((status, code_of(&reply).as_str()), (413, "too-large"));
}

#[tokio::test]
async fn expired_and_future_tokens_are_refused() {
    let (_node, control) = sfu_node(100).await;
    let path = "/sfu/v1/rooms/r1/peers/p1";
    for at in [now() - 60, now() + 60] {
        let token = token_with(&control_secret(), "DELETE", path, "", at);
        let (status, reply) = raw(control, "DELETE", path, Some(&token), "").await;
        assert_eq!((status, code_of(&reply).as_str()), (401, "unauthorized"));
        assert!(reply.contains("expired"), "{reply}");
    }
}

/// The attack the token's binding closes: a token sniffed from a real join,
/// sent again, or with another offer and mute state, or as a mute or a leave
/// of that participant, or for another peer.
#[tokio::test]
async fn a_captured_token_is_good_for_its_one_request_only() {
    let (node, control) = sfu_node(100).await;
    let path = "/sfu/v1/rooms/r1/peers/p1";
    let join = join_body(browser_offer().await, false);
    let token = token_for("PUT", path, &join);
    let (status, reply) = raw(control, "PUT", path, Some(&token), &join).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("answer"), "{reply}");

    let (status, reply) = raw(control, "PUT", path, Some(&token), &join).await;
    assert_eq!((status, code_of(&reply).as_str()), (401, "replayed"));

    let forged = join_body(browser_offer().await, true);
    let (status, reply) = raw(control, "PUT", path, Some(&token), &forged).await;
    assert_eq!((status, code_of(&reply).as_str()), (403, "forbidden"));
    let mute = "/sfu/v1/rooms/r1/peers/p1/mute";
    let (status, reply) = raw(control, "POST", mute, Some(&token), r#"{"muted":true}"#).await;
    assert_eq!((status, code_of(&reply).as_str()), (403, "forbidden"));
    let (status, reply) = raw(control, "DELETE", path, Some(&token), "").await;
    assert_eq!((status, code_of(&reply).as_str()), (403, "forbidden"));
    let other_peer = "/sfu/v1/rooms/r1/peers/p2";
    let (status, reply) = raw(control, "PUT", other_peer, Some(&token), &join).await;
    assert_eq!((status, code_of(&reply).as_str()), (403, "forbidden"));

    // A mute token replayed with the other value, and twice.
    let mute_token = token_for("POST", mute, r#"{"muted":true}"#);
    let (status, _) = raw(
        control,
        "POST",
        mute,
        Some(&mute_token),
        r#"{"muted":false}"#,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = raw(
        control,
        "POST",
        mute,
        Some(&mute_token),
        r#"{"muted":true}"#,
    )
    .await;
    assert_eq!(status, 204);
    let (status, reply) = raw(
        control,
        "POST",
        mute,
        Some(&mute_token),
        r#"{"muted":true}"#,
    )
    .await;
    assert_eq!((status, code_of(&reply).as_str()), (401, "replayed"));

    // The participant's connection was never replaced nor removed.
    assert_eq!(node.metrics().sfu_participants, 1);
}

/// One address holding open connections takes its own share of the
/// listener, not every place: a join from another address still gets in.
#[tokio::test]
async fn idle_connections_from_one_address_do_not_stop_a_join_from_another() {
    let (node, control) = sfu_node(100).await;
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(tokio::net::TcpStream::connect(control).await.unwrap());
    }
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let path = "/sfu/v1/rooms/r1/peers/p1";
    let join = join_body(browser_offer().await, false);
    let token = token_for("PUT", path, &join);
    let (status, reply) = raw_from(other, control, "PUT", path, Some(&token), &join).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(node.metrics().sfu_participants, 1);
    // The idle address's connections past its share were closed at accept.
    let mut closed = 0;
    for stream in &mut idle {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        64 - tincan_media_node::sfu::DEFAULT_CONTROL_CONNECTIONS_PER_IP
    );
}

async fn join_offer(
    client: &SfuControlClient,
    control: SocketAddr,
    room: &str,
    peer: &str,
    offer: String,
) -> Result<String, SfuClientError> {
    client
        .join(
            &format!("http://{control}"),
            room,
            peer,
            &JoinRequest {
                offer,
                muted: false,
            },
            now(),
        )
        .await
        .map(|r| r.answer)
}

async fn browser_offer() -> String {
    let (pc, _socket, _) = offer(3).await.unwrap();
    pc.local_description().unwrap().sdp
}

#[tokio::test]
async fn bad_sdp_is_refused_and_a_full_room_is_409() {
    let (_node, control) = sfu_node(2).await;
    let client = SfuControlClient::new(control_secret()).unwrap();

    for bad in ["garbage".to_owned(), String::new(), "v=0\r\n".to_owned()] {
        let err = join_offer(&client, control, "room", "a", bad)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SfuClientError::Refused { status: 400, code, .. } if code == "bad-sdp"),
            "{err:?}"
        );
    }

    let answer = join_offer(&client, control, "room", "a", browser_offer().await)
        .await
        .unwrap();
    assert!(answer.contains("m=audio"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    join_offer(&client, control, "room", "b", browser_offer().await)
        .await
        .unwrap();
    // A rejoin replaces, it does not count twice.
    join_offer(&client, control, "room", "b", browser_offer().await)
        .await
        .unwrap();
    let err = join_offer(&client, control, "room", "c", browser_offer().await)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SfuClientError::Refused { status: 409, code, .. } if code == "room-full"),
        "{err:?}"
    );
    // Offers with more or fewer receive m-lines than the node has slots
    // are answered too (the extra m-lines stay silent).
    for slots in [1, 5] {
        let (pc, _socket, _) = offer(slots).await.unwrap();
        let answer = join_offer(
            &client,
            control,
            "shapes",
            &format!("s{slots}"),
            pc.local_description().unwrap().sdp,
        )
        .await
        .unwrap();
        assert_eq!(answer.matches("m=audio").count(), slots + 1, "{answer}");
    }
    // Other rooms are not affected; a leave makes room.
    join_offer(&client, control, "other", "c", browser_offer().await)
        .await
        .unwrap();
    client
        .leave(&format!("http://{control}"), "room", "a", now())
        .await
        .unwrap();
    join_offer(&client, control, "room", "c", browser_offer().await)
        .await
        .unwrap();
}

/// Waits up to `limit` for `check`.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// The peers in a participant's latest `active-speakers` event.
fn heard(p: &Participant) -> BTreeSet<String> {
    p.snapshot(|r| {
        r.speakers
            .last()
            .map(|(_, e)| {
                e.slots
                    .iter()
                    .flatten()
                    .map(|s| s.peer_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    })
}

fn set(peers: &[&str]) -> BTreeSet<String> {
    peers.iter().map(|p| (*p).to_owned()).collect()
}

/// The packets a participant received at least `window` after its latest
/// `active-speakers` event.
fn packets_after_event(p: &Participant, window: Duration) -> usize {
    p.snapshot(|r| {
        let Some((at, _)) = r.speakers.last() else {
            return 0;
        };
        r.slots
            .values()
            .flatten()
            .filter(|(arrived, ..)| *arrived >= *at + window)
            .count()
    })
}

/// Every slot's packets of the last `window` come from the publisher the
/// latest event puts there; nobody hears itself; returns the number of
/// packets checked.
fn slots_agree_with_events(p: &Participant, ids: &[(&str, u8)], window: Duration) -> usize {
    p.snapshot(|r| {
        let Some((at, event)) = r.speakers.last() else {
            return 0;
        };
        let mut checked = 0;
        for (slot, packets) in &r.slots {
            for (arrived, id, _, _) in packets {
                assert_ne!(*id, p.id, "{} hears itself", p.peer);
                if *arrived < *at + window {
                    continue;
                }
                let expected = event.slots.get(*slot).cloned().flatten().map(|s| {
                    ids.iter()
                        .find(|(peer, _)| *peer == s.peer_id)
                        .map(|(_, id)| *id)
                        .unwrap()
                });
                assert_eq!(
                    Some(*id),
                    expected,
                    "{}: slot {slot} carries {id} but the event says {expected:?}",
                    p.peer
                );
                checked += 1;
            }
        }
        checked
    })
}

#[tokio::test]
async fn loudest_publishers_own_the_slots_and_events_match_the_media() {
    let (node, control) = sfu_node(100).await;
    let names = [("p1", 1u8), ("p2", 2), ("p3", 3), ("p4", 4), ("p5", 5)];
    let mut ps = Vec::new();
    for (peer, id) in names {
        let muted = peer == "p5";
        ps.push(
            Participant::join(control, &control_secret(), "big-room", peer, id, 3, muted)
                .await
                .unwrap(),
        );
    }
    // Someone loud in another room, on the same node.
    let outsider = Participant::join(control, &control_secret(), "other-room", "q1", 9, 3, false)
        .await
        .unwrap();
    outsider.speak(Some(1));
    assert!(
        eventually(Duration::from_secs(15), || ps
            .iter()
            .chain([&outsider])
            .all(|p| p.snapshot(|r| r.connected)))
        .await,
        "every participant connects"
    );
    // Levels in -dBov: p1 loudest; p5 loudest of all but muted.
    for (p, level) in ps.iter().zip([10u8, 20, 30, 45, 3]) {
        p.speak(Some(level));
    }
    let expect = |me: &str| -> BTreeSet<String> {
        let top: Vec<&str> = ["p1", "p2", "p3", "p4"]
            .into_iter()
            .filter(|p| *p != me)
            .take(3)
            .collect();
        set(&top)
    };
    assert!(
        eventually(Duration::from_secs(10), || ps
            .iter()
            .all(|p| heard(p) == expect(&p.peer)))
        .await,
        "slots: {:?}",
        ps.iter()
            .map(|p| (p.peer.clone(), heard(p)))
            .collect::<Vec<_>>()
    );
    // Wait (bounded) for media to flow on the settled assignment, then
    // compare.
    let window = Duration::from_millis(200);
    assert!(
        eventually(Duration::from_secs(10), || ps
            .iter()
            .all(|p| packets_after_event(p, window) >= 20))
        .await,
        "media on the settled slots: {:?}",
        ps.iter()
            .map(|p| (p.peer.clone(), packets_after_event(p, window)))
            .collect::<Vec<_>>()
    );
    for p in &ps {
        let checked = slots_agree_with_events(p, &names, Duration::from_millis(200));
        assert!(checked > 0, "{} received media on its slots", p.peer);
    }
    // The muted participant was never announced to anyone.
    for p in &ps {
        p.snapshot(|r| {
            for (_, e) in &r.speakers {
                assert!(e
                    .slots
                    .iter()
                    .flatten()
                    .all(|s| s.peer_id != "p5" && s.peer_id != p.peer));
            }
        });
    }

    // p1 stops. A pause must not cut a speaker off, so it keeps its slots
    // where nobody else needs them; p5, who did not hear p4, gets p4 in
    // p1's slot within about a second (well within 3 s).
    let stopped = Instant::now();
    ps[0].speak(None);
    assert!(
        eventually(Duration::from_secs(4), || heard(&ps[4])
            == set(&["p2", "p3", "p4"]))
        .await,
        "p4 took p1's slot at p5: {:?}",
        heard(&ps[4])
    );
    let released = stopped.elapsed();
    assert!(released < Duration::from_secs(3), "{released:?}");
    assert_eq!(heard(&ps[1]), set(&["p1", "p3", "p4"]), "p1 kept its slot");

    // Muting through the API takes p2 out at once.
    SfuControlClient::new(control_secret())
        .unwrap()
        .mute(&format!("http://{control}"), "big-room", "p2", true, now())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || ps
            .iter()
            .all(|p| !heard(p).contains("p2")))
        .await
    );

    // Whoever speaks in a slot, its stream is one: sequence numbers step by
    // one (loopback loses nothing) and timestamps move forward, across every
    // change of speaker above.
    for p in &ps {
        p.snapshot(|r| {
            for (slot, packets) in &r.slots {
                for pair in packets.windows(2) {
                    let ((_, _, seq_a, ts_a), (_, _, seq_b, ts_b)) = (pair[0], pair[1]);
                    assert_eq!(seq_b, seq_a.wrapping_add(1), "{} slot {slot}", p.peer);
                    let step = ts_b.wrapping_sub(ts_a);
                    assert!(
                        step > 0 && step < 48_000 * 5,
                        "{} slot {slot}: {step}",
                        p.peer
                    );
                }
            }
        });
    }
    // p5 heard p1 and then p4 on the same slot.
    let switched = ps[4].snapshot(|r| {
        r.slots.values().any(|packets| {
            let ids: BTreeSet<u8> = packets.iter().map(|(_, id, _, _)| *id).collect();
            ids.contains(&1) && ids.contains(&4)
        })
    });
    assert!(switched, "a slot changed speaker");

    // Rooms are apart: the outsider heard nobody, and nobody heard it
    // (the exact sets above).
    outsider.snapshot(|r| {
        assert!(r.slots.values().all(Vec::is_empty), "{:?}", r.slots.keys());
        assert!(r
            .speakers
            .iter()
            .all(|(_, e)| e.slots.iter().all(Option::is_none)));
    });

    // Garbage on the media port, and STUN for a ufrag nobody has, harm
    // nobody.
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let media = node.sfu_udp_addr().unwrap();
    let before = ps[1].snapshot(|r| r.slots.values().map(Vec::len).sum::<usize>());
    for i in 0..500u32 {
        let mut datagram = vec![0u8; 20 + (i as usize % 200)];
        datagram[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        datagram[..4].copy_from_slice(&i.to_be_bytes());
        junk.send_to(&datagram, media).await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || ps[1].snapshot(|r| r
            .slots
            .values()
            .map(Vec::len)
            .sum::<usize>())
            > before + 50)
        .await,
        "media keeps flowing"
    );

    let metrics = node.metrics();
    assert_eq!(metrics.sfu_participants, 6);
    assert_eq!(metrics.sfu_rooms, 2);
    assert!(metrics.sfu_packets_forwarded > 0);
    assert!(
        metrics.sfu_packets_muted > 0,
        "the muted publisher's packets"
    );
    let text = metrics.to_prometheus();
    assert!(text.contains("tincan_sfu_participants 6\n"), "{text}");
    // Only group calls, no TURN allocation: still a busy node, in the
    // figure the heartbeat reports and the one the fleet scales on.
    assert_eq!(metrics.allocations, 0);
    assert_eq!(metrics.load(), 6);
    assert!(text.contains("tincan_node_load 6\n"), "{text}");
    let load = tincan_media_node::heartbeat::instant_load(&metrics);
    assert_eq!((load.sessions(), load.score()), (6, 6));

    // A participant that leaves is removed and frees its slots.
    SfuControlClient::new(control_secret())
        .unwrap()
        .leave(&format!("http://{control}"), "big-room", "p3", now())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || ps
            .iter()
            .all(|p| !heard(p).contains("p3")))
        .await
    );
    assert_eq!(node.metrics().sfu_participants, 5);
}

#[tokio::test]
async fn a_draining_node_takes_no_new_participants() {
    let (node, control) = sfu_node(100).await;
    let client = SfuControlClient::new(control_secret()).unwrap();
    join_offer(&client, control, "room", "a", browser_offer().await)
        .await
        .unwrap();
    node.drain();
    let err = join_offer(&client, control, "room", "b", browser_offer().await)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SfuClientError::Refused { status: 503, code, .. } if code == "draining"),
        "{err:?}"
    );
    assert!(
        !node.drained(Duration::from_millis(300)).await,
        "a participant is left"
    );
    client
        .leave(&format!("http://{control}"), "room", "a", now())
        .await
        .unwrap();
    assert!(node.drained(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn the_control_listener_caps_connections_and_cuts_silent_ones() {
    let node = start_node_with(|config| {
        if let Some(sfu) = config.sfu.as_mut() {
            sfu.max_control_requests = 2;
            sfu.control_header_timeout = Duration::from_secs(1);
        }
    })
    .await;
    let control = node.sfu_control_addr().unwrap();
    // Two silent connections hold both places...
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(control).await.unwrap());
    }
    // ...so a third is closed at once, without a reply (the listener
    // accepts in the order the connections were made, so no wait is
    // needed for the first two to be counted).
    let mut third = tokio::net::TcpStream::connect(control).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("closed, not left hanging")
        .unwrap_or(0);
    assert_eq!(n, 0, "the third connection gets no reply");
    // The silent ones are cut after the head timeout, freeing their places.
    for stream in &mut silent {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a silent connection is closed");
        // hyper may answer 408 before closing; either way it ends.
        if let Ok(n) = read {
            if n > 0 {
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
                    .await
                    .expect("then closed");
            }
        }
    }
    let mut served = false;
    for _ in 0..50 {
        let path = "/sfu/v1/rooms/r/peers/p";
        let token = token_for("DELETE", path, "");
        if raw(control, "DELETE", path, Some(&token), "").await.0 == 204 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "served again once places are free");
}

#[tokio::test]
async fn red_goes_to_receivers_that_negotiated_it_and_plain_opus_to_the_others() {
    let (_node, control) = sfu_node(100).await;
    let red = Options {
        red: true,
        ..Options::default()
    };
    let join = |peer: &'static str, id: u8, options: Options| async move {
        Participant::join_with(
            control,
            &control_secret(),
            "red-room",
            peer,
            id,
            3,
            false,
            options,
        )
        .await
        .unwrap()
    };
    let ann = join("ann", 1, red).await;
    let ben = join("ben", 2, red).await;
    let cat = join("cat", 3, Options::default()).await;
    assert!(
        eventually(Duration::from_secs(15), || [&ann, &ben, &cat]
            .iter()
            .all(|p| p.snapshot(|r| r.connected)))
        .await
    );
    // Ann publishes RED, Cat plain Opus.
    ann.speak(Some(10));
    cat.speak(Some(20));
    let from = |p: &Participant, id: u8| -> Vec<(u8, bytes::Bytes)> {
        p.snapshot(|r| {
            r.slots
                .iter()
                .flat_map(|(slot, packets)| {
                    packets
                        .iter()
                        .zip(&r.payloads[slot])
                        .filter(|((_, who, _, _), _)| *who == id)
                        .map(|(_, payload)| payload.clone())
                        .collect::<Vec<_>>()
                })
                .collect()
        })
    };
    assert!(
        eventually(Duration::from_secs(10), || from(&ben, 1).len() >= 25
            && from(&cat, 1).len() >= 25
            && from(&ben, 3).len() >= 25)
        .await,
        "ben and cat hear ann, ben hears cat"
    );
    // Ben negotiated RED: Ann's frames come in RED the node builds, after
    // the slot's previous frame (all but the first packet).
    let ben_from_ann = from(&ben, 1);
    for (i, (pt, payload)) in ben_from_ann.iter().enumerate() {
        assert_eq!(*pt, RED_PT);
        assert_eq!(payload[0] & 0x80 != 0, i > 0, "a redundant block first");
        let primary = red_primary(payload).unwrap();
        assert_eq!((primary.len(), primary[0]), (60, 1));
    }
    // Cat did not: only the primary, as Opus.
    for (pt, payload) in from(&cat, 1) {
        assert_eq!(pt, OPUS_PT);
        assert_eq!((payload.len(), payload[0]), (60, 1));
    }
    // Plain Opus reaches a RED receiver in RED too, with the same
    // redundancy: on a clean link, one earlier frame.
    let ben_from_cat = from(&ben, 3);
    for (i, (pt, payload)) in ben_from_cat.iter().enumerate() {
        assert_eq!(*pt, RED_PT);
        assert_eq!(red_blocks(payload), usize::from(i > 0) + 1);
        let primary = red_primary(payload).unwrap();
        assert_eq!((primary.len(), primary[0]), (60, 3));
    }
}

/// The number of blocks in a RED payload (headers with the F bit, then
/// the primary's).
fn red_blocks(payload: &[u8]) -> usize {
    let mut at = 0;
    let mut blocks = 1;
    while payload[at] & 0x80 != 0 {
        blocks += 1;
        at += 4;
    }
    blocks
}

#[tokio::test]
async fn a_subscriber_reporting_loss_gets_more_redundancy() {
    let (_node, control) = sfu_node(100).await;
    let red = Options {
        red: true,
        ..Options::default()
    };
    let speaker = Participant::join_with(
        control,
        &control_secret(),
        "lossy-room",
        "ann",
        1,
        3,
        false,
        red,
    )
    .await
    .unwrap();
    // Ben's downlink loses one packet in five; Cat's none.
    let lossy = Participant::join_with(
        control,
        &control_secret(),
        "lossy-room",
        "ben",
        2,
        3,
        false,
        Options {
            drop_received_every: Some(5),
            ..red
        },
    )
    .await
    .unwrap();
    let clean = Participant::join_with(
        control,
        &control_secret(),
        "lossy-room",
        "cat",
        3,
        3,
        false,
        red,
    )
    .await
    .unwrap();
    speaker.speak(Some(10));
    let blocks_of_last = |p: &Participant| {
        p.snapshot(|r| {
            r.payloads
                .values()
                .filter_map(|packets| packets.last())
                .map(|(_, payload)| red_blocks(payload))
                .max()
        })
    };
    // Ben reports 20 % loss: its slot soon carries the most earlier frames
    // the node sends (5), each packet still ending with its own frame.
    assert!(
        eventually(Duration::from_secs(15), || blocks_of_last(&lossy)
            == Some(6))
        .await,
        "ben's slot carries five earlier frames: {:?}",
        blocks_of_last(&lossy)
    );
    let (primary_id, primary_len) = lossy.snapshot(|r| {
        let (_, payload) = r.payloads.values().flatten().last().unwrap().clone();
        let primary = red_primary(&payload).unwrap().to_vec();
        (primary[0], primary.len())
    });
    assert_eq!((primary_id, primary_len), (1, 60));
    // Cat, on a clean link, still gets one.
    assert_eq!(blocks_of_last(&clean), Some(2));
}

#[tokio::test]
async fn receiver_reports_carry_the_loss_the_node_sees_on_each_uplink() {
    let (_node, control) = sfu_node(100).await;
    // Ann's uplink loses one packet in five; Ben's none.
    let lossy = Participant::join_with(
        control,
        &control_secret(),
        "rr-room",
        "ann",
        1,
        3,
        false,
        Options {
            skip_every: Some(5),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let clean = Participant::join(control, &control_secret(), "rr-room", "ben", 2, 3, false)
        .await
        .unwrap();
    lossy.speak(Some(10));
    clean.speak(Some(10));
    // Reports come every second; wait for three past the first.
    assert!(
        eventually(Duration::from_secs(20), || lossy
            .snapshot(|r| r.reports.len() >= 4)
            && clean.snapshot(|r| r.reports.len() >= 4))
        .await,
        "receiver reports reach both publishers"
    );
    let (lossy_reports, clean_reports) = (
        lossy.snapshot(|r| r.reports.clone()),
        clean.snapshot(|r| r.reports.clone()),
    );
    // One in five: 20 %, 51/256; a report covers about 50 packets, so
    // allow a few either way. The first may start mid-stream.
    for (fraction, _) in &lossy_reports[1..] {
        assert!((40..=64).contains(fraction), "{lossy_reports:?}");
    }
    let (_, total) = lossy_reports.last().unwrap();
    assert!(*total >= 20, "{lossy_reports:?}");
    assert!(
        clean_reports.iter().all(|r| *r == (0, 0)),
        "{clean_reports:?}"
    );
}

#[tokio::test]
async fn a_publisher_that_offers_twcc_gets_transport_wide_feedback() {
    let (_node, control) = sfu_node(100).await;
    let twcc = Options {
        twcc: true,
        ..Options::default()
    };
    let ann = Participant::join_with(
        control,
        &control_secret(),
        "cc-room",
        "ann",
        1,
        3,
        false,
        twcc,
    )
    .await
    .unwrap();
    let plain = Participant::join(control, &control_secret(), "cc-room", "ben", 2, 3, false)
        .await
        .unwrap();
    ann.speak(Some(10));
    plain.speak(Some(10));
    // 50 packets a second; feedback covers them as they arrive.
    assert!(
        eventually(Duration::from_secs(15), || ann
            .snapshot(|r| r.twcc_covered >= 50))
        .await,
        "feedback: {:?}",
        ann.snapshot(|r| (r.twcc_feedback, r.twcc_covered))
    );
    // Without the extension there is nothing to report on.
    assert_eq!(plain.snapshot(|r| r.twcc_feedback), 0);
}
