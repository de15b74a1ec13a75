//! The Management API can close and write to any socket: on AWS it needs
//! IAM, here it listens only on its own (loopback) listener. The public
//! listener knows nothing of it.

mod common;

use common::{join, recv, start};
use serde_json::json;

#[tokio::test]
async fn connections_paths_on_the_public_port_are_404_and_work_on_the_management_port() {
    let s = start(|_| {}).await;
    assert_ne!(s.stack.addr.port(), s.stack.management_addr.port());
    let http = reqwest::Client::new();
    let mut a = s.client("ada").await;
    join(&mut a, "mgmt-private").await;
    // The connection id, from the gateway (a peer id is not a connection id).
    let id = s.stack.sockets.ids().pop().expect("one socket open");

    for prefix in ["", "/local", "/prod"] {
        let url = s.http(&format!("{prefix}/@connections/{id}"));
        let post = http.post(&url).body(r#"{"type":"pong"}"#).send().await;
        assert_eq!(post.unwrap().status(), 404, "POST {url}");
        assert_eq!(
            http.get(&url).send().await.unwrap().status(),
            404,
            "GET {url}"
        );
        let delete = http.delete(&url).send().await.unwrap();
        assert_eq!(delete.status(), 404, "DELETE {url}");
    }
    // The socket is untouched by all that.
    common::send(&mut a, json!({"action": "ping"})).await;
    assert_eq!(recv(&mut a).await["type"], "pong");

    // The same paths on the management listener reach it.
    let url = s.management(&format!("/local/@connections/{id}"));
    let post = http.post(&url).body(r#"{"type":"hello"}"#).send().await;
    assert_eq!(post.unwrap().status(), 200);
    assert_eq!(recv(&mut a).await, json!({"type": "hello"}));
    // And the public routes are not served there.
    let health = http.get(s.management("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 404);
    s.stack.stop().await;
}
