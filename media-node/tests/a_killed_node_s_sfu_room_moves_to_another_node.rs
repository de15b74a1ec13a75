//! A media node dies in the middle of a group call on its SFU: two nodes
//! heartbeat into the fleet registry, a room is placed on one, and two
//! participants hear each other through its SFU. The node is killed (no
//! heartbeat, no deregistration, sockets gone, as in a crash). The clients
//! then do what the browser client does when its SFU connection fails: ask
//! the signaling's SFU locator (the room's placement, [`FleetIceServers`] as
//! [`SfuLocator`]) for the room's node again and reconnect. Once the dead
//! node's record lapses, the room moves to the other node and audio flows
//! again. Prints the recovery time: from the kill to the first packet heard
//! through the other node's SFU. The heartbeat here is 250 ms with a 2 s
//! TTL; with the default `TINCAN_HEARTBEAT_SECS=10` the TTL is 30 s.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::sfu_client::Participant;
use support::{control_secret, now, two_node_fleet, TwoNodeFleet};
use tincan_fleet::FleetIceServers;
use tincan_media_routing::SfuLocator;

const ROOM: &str = "allhands";
/// Whole seconds, at least one more than the heartbeat interval.
const TTL_SECS: u64 = 2;
const LIMIT: Duration = Duration::from_secs(90);

/// The control address in a control URL (`http://ip:port`).
fn control_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("http://ip:port")
}

/// Packets `p` has received so far, on any slot, from publisher `from`.
fn heard_from(p: &Participant, from: u8) -> usize {
    p.snapshot(|r| {
        r.slots
            .values()
            .flatten()
            .filter(|(_, id, _, _)| *id == from)
            .count()
    })
}

/// Joins both participants on the node the locator names for the room,
/// and waits until each hears the other; `None` if that node does not take
/// them (yet) or they do not hear each other within a few seconds.
async fn call_through(fleet: &FleetIceServers) -> Option<(SocketAddr, Participant, Participant)> {
    let url = fleet.control_url(ROOM, now()).await?;
    let control = control_addr(&url);
    let a = Participant::join(control, &control_secret(), ROOM, "ann", 1, 3, false)
        .await
        .ok()?;
    let b = Participant::join(control, &control_secret(), ROOM, "ben", 2, 3, false)
        .await
        .ok()?;
    a.speak(Some(20));
    b.speak(Some(25));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if heard_from(&a, 2) > 5 && heard_from(&b, 1) > 5 {
            return Some((control, a, b));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_sfu_room_moves_to_the_other_node_and_audio_returns() {
    tokio::time::timeout(LIMIT, async {
        let TwoNodeFleet {
            nodes: [a, b],
            mut beats,
            fleet,
            ..
        } = two_node_fleet(TTL_SECS).await;

        // The call runs on the room's node's SFU.
        let (first, ann, ben) = call_through(&fleet).await.expect("a call on the SFU");
        let (dead, alive, dead_index) = if Some(first) == a.sfu_control_addr() {
            (a, b, 0)
        } else {
            assert_eq!(Some(first), b.sfu_control_addr());
            (b, a, 1)
        };

        // The node dies.
        let killed = Instant::now();
        drop(beats[dead_index].take());
        dead.shutdown().await.expect("node stops");
        drop(dead);
        let heard_before = (heard_from(&ann, 2), heard_from(&ben, 1));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            (heard_from(&ann, 2), heard_from(&ben, 1)),
            heard_before,
            "audio still flows through a node that was shut down"
        );
        drop((ann, ben));

        // The clients retry (the browser client backs off 1 s doubling;
        // here every 250 ms) until the room's node takes them again.
        let (second, ann, ben) = loop {
            if let Some(call) = call_through(&fleet).await {
                break call;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(TTL_SECS + 20),
                "no SFU took the room {:?} after the kill",
                killed.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let recovered = killed.elapsed();
        assert_eq!(Some(second), alive.sfu_control_addr());
        assert!(heard_from(&ann, 2) > 0 && heard_from(&ben, 1) > 0);
        eprintln!(
            "media node killed mid-call: the room's SFU call runs on the other node {recovered:?} \
             after the kill (heartbeat 250 ms, TTL {TTL_SECS} s)"
        );
    })
    .await
    .expect("finished in time");
}
