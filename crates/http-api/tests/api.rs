//! The HTTP API through axum `oneshot`, on the embedded store.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::*;
use serde_json::json;
use tincan_accounts::{CallRecord, MediaPath};
use tincan_token::TokenKeys;
use tincan_turn_credentials::TurnSecret;

const PW: &str = "correct horse battery";

#[tokio::test]
async fn register_then_login_and_me() {
    let (app, _state, _dir) = embedded_app();
    let r = register(&app, "Ada_L", PW, "Ada Lovelace").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let user = r.json["user"].clone();
    assert_eq!(user["username"], "Ada_L");
    assert_eq!(user["displayName"], "Ada Lovelace");
    assert!(user["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        user.as_object().unwrap().len(),
        3,
        "no hash or extras: {user}"
    );

    let r = register(&app, "ada_l", "another password", "Imposter").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "username-taken")
    );

    let r = login(&app, "ADA_L", PW).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["user"], user);
    assert_eq!(r.json["expiresIn"], 900);
    let access = r.json["accessToken"].as_str().unwrap().to_owned();
    assert!(r.json["refreshToken"].as_str().is_some());

    let r = send(&app, get("/me", Some(&access))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["user"], user);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let (app, _state, _dir) = embedded_app();
    register(&app, "grace", PW, "Grace").await;
    let wrong = login(&app, "grace", "not the password").await;
    let unknown = login(&app, "nobody", PW).await;
    let malformed_name = login(&app, "no such user!", PW).await;
    for r in [&wrong, &unknown, &malformed_name] {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "invalid-credentials")
        );
    }
    assert_eq!(wrong.json, unknown.json);
    assert_eq!(wrong.json, malformed_name.json);
}

#[tokio::test]
async fn bad_input_is_400_and_stores_nothing() {
    let (app, _state, _dir) = embedded_app();
    let long_pw = "p".repeat(1000);
    let cases = vec![
        json!({"username": "ada", "password": PW}),
        json!({"username": "ada", "displayName": "Ada"}),
        json!({"username": "ada", "password": PW, "displayName": 5}),
        json!({"username": null, "password": PW, "displayName": "Ada"}),
        json!({"username": "ada", "password": "short", "displayName": "Ada"}),
        json!({"username": "ada", "password": long_pw, "displayName": "Ada"}),
        json!({"username": "аda", "password": PW, "displayName": "Cyrillic a"}),
        json!({"username": "ad a", "password": PW, "displayName": "Ada"}),
        json!({"username": "a".repeat(33), "password": PW, "displayName": "Ada"}),
        json!({"username": "ada", "password": PW, "displayName": ""}),
        json!({"username": "ada", "password": PW, "displayName": " \u{200D} "}),
        json!({"username": "ada", "password": PW, "displayName": "evil\u{202E}gpj.exe"}),
        json!({"username": "ada", "password": PW, "displayName": "zero\u{200B}width"}),
        json!({"username": "ada", "password": PW, "displayName": "new\nline"}),
        json!({"username": "ada", "password": PW, "displayName": "x".repeat(65)}),
        json!([1, 2, 3]),
    ];
    for body in cases {
        let r = post(&app, "/auth/register", body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "invalid-request"),
            "{body}"
        );
        let message = r.json["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty());
        assert!(!message.contains(&"p".repeat(100)), "password echoed");
    }
    let raw = [
        ("not json at all".to_owned(), "application/json"),
        ("{\"username\": \"ada\",".to_owned(), "application/json"),
        (
            json!({"username": "ada", "password": PW, "displayName": "A"}).to_string(),
            "text/plain",
        ),
        (
            format!(
                "{{\"username\":\"ada\",\"password\":\"{}\",\"displayName\":\"A\"}}",
                "x".repeat(20_000)
            ),
            "application/json",
        ),
        ("\u{FEFF}{}".to_owned(), "application/json"),
    ];
    for (body, ct) in raw {
        let r = send(
            &app,
            raw_req(Method::POST, "/auth/register", body, ct, None),
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "invalid-request")
        );
    }
    // Absurdly long password at login: 400, not an argon2 run over it.
    let r = login(&app, "ada", &"x".repeat(5000)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid-request")
    );

    // Nothing was stored: "ada" is still free.
    let r = login(&app, "ada", PW).await;
    assert_eq!(r.code(), "invalid-credentials");
    let r = register(&app, "ada", PW, "  Ada  ").await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json["user"]["displayName"], "Ada");
    // Display names in any script and with emoji are fine.
    for (name, display) in [
        ("bruce", "李小龍"),
        ("zoe", "Zoë 👩\u{200D}💻"),
        ("athena", "Ἀθηνᾶ"),
    ] {
        assert_eq!(
            register(&app, name, PW, display).await.status,
            StatusCode::CREATED
        );
    }
}

#[tokio::test]
async fn refresh_rotates_and_logout_revokes() {
    let (app, _state, _dir) = embedded_app();
    register(&app, "linus", PW, "Linus").await;
    let first = login(&app, "linus", PW).await.json;
    let rt1 = first["refreshToken"].as_str().unwrap();

    let second = post(&app, "/auth/refresh", json!({"refreshToken": rt1})).await;
    assert_eq!(second.status, StatusCode::OK);
    let rt2 = second.json["refreshToken"].as_str().unwrap();
    assert_ne!(rt1, rt2);
    assert!(second.json["accessToken"].as_str().is_some());
    assert_eq!(second.json["user"]["username"], "linus");

    // The old token is refused, and its reuse kills the new one too.
    let reuse = post(&app, "/auth/refresh", json!({"refreshToken": rt1})).await;
    assert_eq!(
        (reuse.status, reuse.code()),
        (StatusCode::UNAUTHORIZED, "invalid-credentials")
    );
    let after = post(&app, "/auth/refresh", json!({"refreshToken": rt2})).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);

    // Logout: 204, then the token is dead; logging out again is still 204.
    let fresh = login(&app, "linus", PW).await.json;
    let rt = fresh["refreshToken"].as_str().unwrap();
    let r = post(&app, "/auth/logout", json!({"refreshToken": rt})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        post(&app, "/auth/logout", json!({"refreshToken": rt}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = post(&app, "/auth/refresh", json!({"refreshToken": rt})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = post(&app, "/auth/refresh", json!({"refreshToken": "garbage"})).await;
    assert_eq!(r.code(), "invalid-credentials");
    let r = post(&app, "/auth/logout", json!({})).await;
    assert_eq!(r.code(), "invalid-request");
}

#[tokio::test]
async fn bearer_routes_refuse_bad_tokens() {
    let (app, _state, _dir) = embedded_app();
    let id = register(&app, "kim", PW, "Kim").await.json["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pair = login(&app, "kim", PW).await.json;
    let refresh = pair["refreshToken"].as_str().unwrap();
    let access = pair["accessToken"].as_str().unwrap();
    let keys = TokenKeys::new(JWT_SECRET, 900).unwrap();
    let expired = keys.issue(&id, "Kim", 1_000);
    let foreign = TokenKeys::new(b"some-other-secret-some-other-secret!", 900)
        .unwrap()
        .issue(&id, "Kim", now());
    let mut tampered = access.to_owned();
    tampered.push('x');
    for path in ["/me", "/me/preferences", "/me/calls", "/turn-credentials"] {
        for bad in [
            None,
            Some("nonsense"),
            Some(refresh),
            Some(expired.as_str()),
            Some(foreign.as_str()),
            Some(tampered.as_str()),
        ] {
            let r = send(&app, get(path, bad)).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{path} {bad:?}"
            );
            assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
        }
        let req = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, format!("Basic {access}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::UNAUTHORIZED);
    }
    // A valid token for a user that does not exist.
    let ghost = keys.issue("no-such-id", "Ghost", now());
    assert_eq!(
        send(&app, get("/me", Some(&ghost))).await.code(),
        "unauthorized"
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn access_token(app: &axum::Router, user: &str) -> (String, String) {
    let r = register(app, user, PW, user).await;
    let id = r.json["user"]["id"].as_str().unwrap().to_owned();
    let token = login(app, user, PW).await.json["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, token)
}

#[tokio::test]
async fn preferences_default_and_update() {
    let (app, _state, _dir) = embedded_app();
    let (_, token) = access_token(&app, "prefs").await;
    let r = send(&app, get("/me/preferences", Some(&token))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["echoCancellation"], true);
    assert_eq!(r.json["noiseSuppression"], true);
    assert_eq!(r.json["autoGainControl"], true);

    let put =
        |body: serde_json::Value| json_req(Method::PUT, "/me/preferences", &body, Some(&token));
    let r = send(
        &app,
        put(json!({"autoGainControl": false, "inputDeviceId": "mic-1"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["autoGainControl"], false);
    assert_eq!(r.json["echoCancellation"], true);
    let r = send(&app, get("/me/preferences", Some(&token))).await;
    assert_eq!(
        (
            r.json["autoGainControl"].clone(),
            r.json["inputDeviceId"].clone()
        ),
        (json!(false), json!("mic-1"))
    );

    for bad in [
        json!({"volume": 11}),
        json!({"echoCancellation": "yes"}),
        json!({"inputDeviceId": "x".repeat(300)}),
    ] {
        let r = send(&app, put(bad.clone())).await;
        assert_eq!(r.code(), "invalid-request", "{bad}");
    }
    let r = send(&app, get("/me/preferences", Some(&token))).await;
    assert_eq!(
        r.json["inputDeviceId"], "mic-1",
        "bad updates changed nothing"
    );
}

#[tokio::test]
async fn call_history_newest_first() {
    let (app, state, _dir) = embedded_app();
    let (id, token) = access_token(&app, "caller").await;
    let calls = state.accounts.stores().calls.clone();
    for (i, room) in ["a", "b", "c"].iter().enumerate() {
        let rec = CallRecord {
            id: format!("call-{i}"),
            user_id: id.clone(),
            room: (*room).to_owned(),
            peer_id: format!("peer-{i}"),
            started_at: 1_000 * (i as u64 + 1),
            ended_at: None,
            media_path: None,
        };
        calls.start_call(&rec).await.unwrap();
    }
    assert!(calls
        .end_call("peer-0", "a", 1_500, Some(MediaPath::Direct))
        .await
        .unwrap());
    let r = send(&app, get("/me/calls", Some(&token))).await;
    assert_eq!(r.status, StatusCode::OK);
    let rooms: Vec<_> = r.json["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["room"].clone())
        .collect();
    assert_eq!(rooms, [json!("c"), json!("b"), json!("a")]);
    let last = &r.json["calls"][2];
    assert_eq!(
        (last["endedAt"].clone(), last["mediaPath"].clone()),
        (json!(1_500), json!("direct"))
    );
    assert_eq!(last["peerId"], "peer-0");
    let r = send(&app, get("/me/calls?limit=1", Some(&token))).await;
    assert_eq!(r.json["calls"].as_array().unwrap().len(), 1);
    for bad in ["0", "201", "x", "-1"] {
        let r = send(&app, get(&format!("/me/calls?limit={bad}"), Some(&token))).await;
        assert_eq!(r.code(), "invalid-request");
    }
    // Someone else sees none of it.
    let (_, other) = access_token(&app, "other").await;
    let r = send(&app, get("/me/calls", Some(&other))).await;
    assert_eq!(r.json["calls"], json!([]));
}

#[tokio::test]
async fn turn_credentials_verify_with_the_shared_secret() {
    let (app, _state, _dir) = embedded_app();
    let (id, token) = access_token(&app, "relay").await;
    let r = send(&app, get("/turn-credentials", Some(&token))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["ttl"], 600);
    let servers = r.json["iceServers"].as_array().unwrap();
    let turn = servers.iter().find(|s| s["username"].is_string()).unwrap();
    assert!(turn["urls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u == "turn:127.0.0.1:3478?transport=udp"));
    let username = turn["username"].as_str().unwrap();
    let password = turn["credential"].as_str().unwrap();
    let who = TurnSecret::new(TURN_SECRET)
        .verify(username, password, now())
        .unwrap();
    assert_eq!(who, id);
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let (app, _state, _dir) = embedded_app();
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/auth/login")
        .header(header::ORIGIN, "http://localhost:5173")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .body(Body::empty())
        .unwrap();
    let r = send(&app, req).await;
    assert!(r.status.is_success(), "{}", r.status);
    assert_eq!(r.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}
