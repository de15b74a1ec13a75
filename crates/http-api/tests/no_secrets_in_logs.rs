//! Every flow runs with TRACE logging captured; no password, password hash,
//! access token or refresh token may appear in the output.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::Method;
use common::*;
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

const PASSWORD: &str = "Sup3r-Secret-Passw0rd";

#[tokio::test(flavor = "current_thread")]
async fn no_password_hash_or_token_in_logs() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (app, state, _dir) = embedded_app();
    let mut secrets = vec![PASSWORD.to_owned()];
    assert_eq!(
        register(&app, "secretive", PASSWORD, "S")
            .await
            .status
            .as_u16(),
        201
    );
    assert_eq!(
        register(&app, "SECRETIVE", PASSWORD, "S")
            .await
            .status
            .as_u16(),
        409
    );
    register(&app, "bad user", PASSWORD, "S").await;
    login(&app, "secretive", "Wrong-Passw0rd-Guess").await;
    secrets.push("Wrong-Passw0rd-Guess".to_owned());
    login(&app, "nobody", PASSWORD).await;

    let pair = login(&app, "secretive", PASSWORD).await.json;
    let access = pair["accessToken"].as_str().unwrap().to_owned();
    let rt1 = pair["refreshToken"].as_str().unwrap().to_owned();
    let next = post(&app, "/auth/refresh", json!({"refreshToken": rt1}))
        .await
        .json;
    let rt2 = next["refreshToken"].as_str().unwrap().to_owned();
    // Reuse (revokes, logs a warning), then logout.
    post(&app, "/auth/refresh", json!({"refreshToken": rt1})).await;
    post(&app, "/auth/logout", json!({"refreshToken": rt2})).await;
    send(&app, get("/me", Some(&access))).await;
    send(&app, get("/me", Some(&format!("{access}x")))).await;
    send(&app, get("/turn-credentials", Some(&access))).await;
    send(
        &app,
        json_req(
            Method::PUT,
            "/me/preferences",
            &json!({"x": PASSWORD}),
            Some(&access),
        ),
    )
    .await;
    secrets.extend([access.clone(), rt1.clone(), rt2.clone()]);
    // The refresh token's secret half on its own, too.
    secrets.extend(
        [rt1, rt2]
            .iter()
            .filter_map(|t| t.split_once('.').map(|(_, s)| s.to_owned())),
    );
    // The JWT signature part.
    secrets.extend(access.rsplit('.').next().map(str::to_owned));

    let hash = state
        .accounts
        .stores()
        .users
        .user_by_username("secretive")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    secrets.push(hash.clone());
    secrets.extend(hash.rsplit('$').next().map(str::to_owned));

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("login"), "logging was captured:\n{logs}");
    assert!(logs.contains("reuse"), "reuse is logged:\n{logs}");
    assert!(!logs.contains("$argon2"), "a hash leaked:\n{logs}");
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "secret {s:?} leaked:\n{logs}");
    }
}
