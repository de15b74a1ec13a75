//! A client that closes its socket on purpose, with 1000 or with a close
//! frame that has no code, has left: the others hear `peer-left` at once
//! (within 2 s here; the resume grace is 30 s), with no `leave` sent. A
//! socket that drops without a close frame keeps its participant for the
//! grace.

mod common;

use std::time::Duration;

use common::{join, recv};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// The next `peer-left` `a` hears within 2 s, if any.
async fn peer_left_within_2s(a: &mut common::Client) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let msg = recv(a).await;
            if msg["type"] == "peer-left" {
                return msg["peerId"].as_str().unwrap_or_default().to_owned();
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn a_goodbye_leaves_at_once_and_a_drop_keeps_the_grace() {
    let s = common::start(|_| {}).await;
    let mut ada = s.client("ada").await;
    join(&mut ada, "bye").await;

    // 1000, no `leave` first.
    let mut bob = s.client("bob").await;
    let bob_id = join(&mut bob, "bye").await["self"]["peerId"].clone();
    bob.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
    .await
    .unwrap();
    assert_eq!(
        peer_left_within_2s(&mut ada).await.as_deref(),
        bob_id.as_str()
    );

    // A close frame with no code.
    let mut cy = s.client("cy").await;
    let cy_id = join(&mut cy, "bye").await["self"]["peerId"].clone();
    cy.close(None).await.unwrap();
    assert_eq!(
        peer_left_within_2s(&mut ada).await.as_deref(),
        cy_id.as_str()
    );

    // Dropped without a close frame: still in the room, resumable.
    let mut di = s.client("di").await;
    join(&mut di, "bye").await;
    drop(di);
    assert_eq!(peer_left_within_2s(&mut ada).await, None);
}
