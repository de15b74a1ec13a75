//! A user may hold `TINCAN_MAX_SOCKETS_PER_USER` sockets (default 8, for
//! several tabs); one more is refused with 429 and a Retry-After, other
//! users are unaffected, and a closed socket frees its place.

mod common;

use std::time::Duration;

use common::start;
use tokio_tungstenite::tungstenite::Error as WsError;

#[tokio::test]
async fn the_ninth_socket_of_a_user_is_refused_with_429() {
    let s = start(|_| {}).await;
    let mut tabs = Vec::new();
    for _ in 0..8 {
        tabs.push(s.client("ada").await);
    }
    match tokio_tungstenite::connect_async(s.ws_url("ada")).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), 429);
            assert!(resp.headers().contains_key("retry-after"));
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "rate-limited");
        }
        other => panic!("expected 429, got {other:?}"),
    }
    // Someone else is not affected.
    let _bob = s.client("bob").await;
    // Closing a tab frees its place.
    let mut tab = tabs.pop().unwrap();
    tab.close(None).await.unwrap();
    drop(tab);
    let mut admitted = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(s.ws_url("ada"))
            .await
            .is_ok()
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "a closed socket frees its place");
    s.stack.stop().await;
}
