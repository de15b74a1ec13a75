//! `POST /me/password` and `DELETE /me` through the router, and tokens of a
//! user that no longer exists.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;

const PW: &str = "correct horse battery";
const BEARER_ROUTES: [&str; 4] = ["/me", "/me/preferences", "/me/calls", "/turn-credentials"];

async fn sign_up(app: &axum::Router, name: &str) -> (String, String, String) {
    let id = register(app, name, PW, name).await.json["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pair = login(app, name, PW).await.json;
    (
        id,
        pair["accessToken"].as_str().unwrap().to_owned(),
        pair["refreshToken"].as_str().unwrap().to_owned(),
    )
}

fn change(token: &str, current: &str, new: &str) -> axum::http::Request<axum::body::Body> {
    json_req(
        Method::POST,
        "/me/password",
        &json!({"currentPassword": current, "newPassword": new}),
        Some(token),
    )
}

#[tokio::test]
async fn password_change_revokes_the_other_sessions() {
    let (app, _state, _dir) = embedded_app();
    let (_, access, here_refresh) = sign_up(&app, "pat").await;
    let other = login(&app, "pat", PW).await.json;
    let other_refresh = other["refreshToken"].as_str().unwrap();
    let other_access = other["accessToken"].as_str().unwrap();

    let r = send(&app, change(&access, "not it", "brand new password")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid-credentials")
    );
    let r = send(&app, change(&access, PW, "short")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid-request")
    );
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("newPassword"));
    for bad in [json!({"currentPassword": PW}), json!({"newPassword": 5})] {
        let r = send(
            &app,
            json_req(Method::POST, "/me/password", &bad, Some(&access)),
        )
        .await;
        assert_eq!(r.code(), "invalid-request", "{bad}");
    }
    let r = send(&app, change("bogus", PW, "brand new password")).await;
    assert_eq!(r.code(), "unauthorized");

    let r = send(&app, change(&access, PW, "brand new password")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.json);
    assert_eq!(r.json, serde_json::Value::Null);

    // The other session's still-unexpired access token is refused at once
    // on every bearer route; this session's keeps working.
    for path in BEARER_ROUTES {
        let r = send(&app, get(path, Some(other_access))).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{path}"
        );
        let r = send(&app, get(path, Some(&access))).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }

    // This session lives on; the other one is revoked; only the new
    // password logs in.
    let r = post(&app, "/auth/refresh", json!({"refreshToken": here_refresh})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = post(
        &app,
        "/auth/refresh",
        json!({"refreshToken": other_refresh}),
    )
    .await;
    assert_eq!(r.code(), "invalid-credentials");
    assert_eq!(login(&app, "pat", PW).await.code(), "invalid-credentials");
    assert_eq!(
        login(&app, "pat", "brand new password").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn refresh_token_reuse_and_logout_end_the_sessions_access_tokens() {
    let (app, _state, _dir) = embedded_app();
    let (_, access, rt1) = sign_up(&app, "robin").await;
    let (_, bystander, _) = sign_up(&app, "alfred").await;
    let next = post(&app, "/auth/refresh", json!({"refreshToken": rt1})).await;
    assert_eq!(next.status, StatusCode::OK);
    let rotated_access = next.json["accessToken"].as_str().unwrap().to_owned();
    let rt2 = next.json["refreshToken"].as_str().unwrap().to_owned();
    assert_eq!(
        send(&app, get("/me", Some(&rotated_access))).await.status,
        StatusCode::OK
    );

    // A stolen, already rotated refresh token is replayed: the session is
    // revoked, and every access token it issued stops at once.
    let r = post(&app, "/auth/refresh", json!({"refreshToken": rt1})).await;
    assert_eq!(r.code(), "invalid-credentials");
    for token in [&access, &rotated_access] {
        for path in BEARER_ROUTES {
            let r = send(&app, get(path, Some(token))).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{path}"
            );
        }
    }
    let r = post(&app, "/auth/refresh", json!({"refreshToken": rt2})).await;
    assert_eq!(r.code(), "invalid-credentials");
    // Another user's session is untouched.
    assert_eq!(
        send(&app, get("/me", Some(&bystander))).await.status,
        StatusCode::OK
    );

    // Logging in again works; logging out ends that session's access token.
    let fresh = login(&app, "robin", PW).await.json;
    let fresh_access = fresh["accessToken"].as_str().unwrap();
    assert_eq!(
        send(&app, get("/me", Some(fresh_access))).await.status,
        StatusCode::OK
    );
    let r = post(
        &app,
        "/auth/logout",
        json!({"refreshToken": fresh["refreshToken"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&app, get("/me", Some(fresh_access))).await.code(),
        "unauthorized"
    );
}

#[tokio::test]
async fn deleting_me_ends_every_token_and_frees_the_name() {
    let (app, state, _dir) = embedded_app();
    let (id, access, refresh) = sign_up(&app, "leaver").await;
    let (_, other_access, _) = sign_up(&app, "stayer").await;
    let del =
        |body: serde_json::Value, token: &str| json_req(Method::DELETE, "/me", &body, Some(token));

    let r = send(&app, del(json!({"password": "wrong"}), &access)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid-credentials")
    );
    let r = send(&app, del(json!({}), &access)).await;
    assert_eq!(r.code(), "invalid-request");
    assert_eq!(
        send(&app, get("/me", Some(&access))).await.status,
        StatusCode::OK
    );

    let r = send(&app, del(json!({"password": PW}), &access)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.json);

    // The still-unexpired access token is refused on every bearer route.
    for path in BEARER_ROUTES {
        let r = send(&app, get(path, Some(&access))).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{path}"
        );
    }
    let r = send(&app, change(&access, PW, "brand new password")).await;
    assert_eq!(r.code(), "unauthorized");
    let r = send(&app, del(json!({"password": PW}), &access)).await;
    assert_eq!(r.code(), "unauthorized");
    let r = post(&app, "/auth/refresh", json!({"refreshToken": refresh})).await;
    assert_eq!(r.code(), "invalid-credentials");
    assert_eq!(
        login(&app, "leaver", PW).await.code(),
        "invalid-credentials"
    );
    assert!(state
        .accounts
        .stores()
        .users
        .user_by_id(&id)
        .await
        .unwrap()
        .is_none());

    // Someone else is untouched; the name can be registered again.
    assert_eq!(
        send(&app, get("/me", Some(&other_access))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        register(&app, "leaver", PW, "New").await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn cors_allows_delete() {
    let (app, _state, _dir) = embedded_app();
    let req = axum::http::Request::builder()
        .method(Method::OPTIONS)
        .uri("/me")
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "DELETE")
        .body(axum::body::Body::empty())
        .unwrap();
    let r = send(&app, req).await;
    let allowed = r.headers["access-control-allow-methods"].to_str().unwrap();
    assert!(allowed.contains("DELETE"), "{allowed}");
}
