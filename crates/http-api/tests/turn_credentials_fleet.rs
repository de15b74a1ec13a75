//! `GET /turn-credentials` with a media-node fleet: the caller's room's
//! node, else the least-loaded live node, else `TINCAN_TURN_URL`.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use tincan_fleet::{
    FleetIceServers, InMemoryMediaNodeStore, MediaNodeInfo, MediaNodeStore, NodeLoad, NodeState,
};
use tincan_http_api::router_with_fleet;
use tincan_turn_credentials::TurnSecret;

fn node(id: &str, addr: &str, allocations: u64) -> MediaNodeInfo {
    MediaNodeInfo {
        id: id.to_owned(),
        region: "local".to_owned(),
        turn_addr: addr.to_owned(),
        turns_addr: None,
        udp: true,
        tcp: true,
        relay_port_min: 50_000,
        relay_port_max: 50_100,
        load: NodeLoad {
            allocations,
            bandwidth_bps: 0,
            cpu_percent: 1.0,
            ..NodeLoad::default()
        },
        state: NodeState::Active,
        sfu_control: None,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `host:port` the reply's TURN URLs name, after checking the credential.
fn turn_host(reply: &Reply, user_id: &str) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    let servers = reply.json["iceServers"].as_array().unwrap();
    let turn = servers.iter().find(|s| s["username"].is_string()).unwrap();
    let who = TurnSecret::new(TURN_SECRET)
        .verify(
            turn["username"].as_str().unwrap(),
            turn["credential"].as_str().unwrap(),
            now(),
        )
        .unwrap()
        .to_owned();
    assert_eq!(who, user_id);
    let url = turn["urls"][0].as_str().unwrap();
    url.trim_start_matches("turn:")
        .split('?')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn turn_credentials_follow_the_fleet() {
    let (stores, _dir) = embedded_stores();
    let state = state(stores, tincan_accounts::PasswordParams::insecure_fast());
    let registry: Arc<dyn MediaNodeStore> = Arc::new(InMemoryMediaNodeStore::new());
    let fleet = FleetIceServers::new(Arc::clone(&registry), TurnSecret::new(TURN_SECRET), 600)
        .with_fallback("fallback.example.test:3478");
    let app = router_with_fleet(state.clone(), Some(fleet.clone()));
    let id = register(&app, "relay", "correct horse battery", "R")
        .await
        .json["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = login(&app, "relay", "correct horse battery").await.json["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let creds = |q: &str| get(&format!("/turn-credentials{q}"), Some(&token));

    // No node alive: the configured TURN URL, not nothing.
    let r = send(&app, creds("")).await;
    assert_eq!(turn_host(&r, &id), "fallback.example.test:3478");
    assert_eq!(r.json["ttl"], 600);
    let r = send(&app, creds("?room=standup")).await;
    assert_eq!(turn_host(&r, &id), "fallback.example.test:3478");

    // Two nodes: the least-loaded one.
    let t = now();
    registry
        .heartbeat(node("a", "10.0.0.1:3478", 5), t, 60)
        .await
        .unwrap();
    registry
        .heartbeat(node("b", "10.0.0.2:3478", 1), t, 60)
        .await
        .unwrap();
    assert_eq!(
        turn_host(&send(&app, creds("")).await, &id),
        "10.0.0.2:3478"
    );

    // A room placed on b by a join; b then gets busier than a: the room's
    // callers still get b, everyone else a.
    use tincan_media_routing::IceServerSource as _;
    assert!(!fleet.ice_servers(&id, "standup", t).await.is_empty());
    registry
        .heartbeat(node("b", "10.0.0.2:3478", 50), t, 60)
        .await
        .unwrap();
    assert_eq!(
        turn_host(&send(&app, creds("?room=standup")).await, &id),
        "10.0.0.2:3478"
    );
    assert_eq!(
        turn_host(&send(&app, creds("")).await, &id),
        "10.0.0.1:3478"
    );
    assert_eq!(
        turn_host(&send(&app, creds("?room=other")).await, &id),
        "10.0.0.1:3478"
    );

    for bad in [
        "?room=",
        "?room=no%20spaces",
        &format!("?room={}", "x".repeat(65)),
    ] {
        let r = send(&app, creds(bad)).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "invalid-request"),
            "{bad}"
        );
    }
    // Without a fleet, the static URL as before.
    let plain = tincan_http_api::router(state);
    assert_eq!(
        turn_host(&send(&plain, creds("?room=standup")).await, &id),
        "127.0.0.1:3478"
    );
}
