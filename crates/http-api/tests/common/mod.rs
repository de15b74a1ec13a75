//! Shared test helpers: an API over a given store, and one-shot requests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tincan_accounts::{AccountOptions, AccountService, EmbeddedStore, PasswordParams, Stores};
use tincan_http_api::{router, ApiState, CorsOrigins, TurnSettings};
use tincan_token::TokenKeys;
use tincan_turn_credentials::TurnSecret;
use tower::ServiceExt;

pub const JWT_SECRET: &[u8] = b"http-api-test-secret-http-api-test-secret";
pub const TURN_SECRET: &str = "turn-test-secret";

pub fn state(stores: Stores, params: PasswordParams) -> ApiState {
    state_with(
        stores,
        AccountOptions {
            password: params,
            refresh_ttl_secs: 3600,
            ..AccountOptions::default()
        },
    )
}

pub fn state_with(stores: Stores, options: AccountOptions) -> ApiState {
    ApiState {
        accounts: AccountService::with_options(
            stores,
            TokenKeys::new(JWT_SECRET, 900).unwrap(),
            options,
        )
        .unwrap(),
        turn: TurnSettings {
            secret: TurnSecret::new(TURN_SECRET),
            url: "127.0.0.1:3478".to_owned(),
            ttl_secs: 600,
        },
        cors: CorsOrigins::Any,
    }
}

/// A fresh embedded store.
pub fn embedded_stores() -> (Stores, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::from_backend(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
    (stores, dir)
}

/// An API over a fresh embedded store (cheap argon2 parameters).
pub fn embedded_app() -> (Router, ApiState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::from_backend(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
    let state = state(stores, PasswordParams::insecure_fast());
    (router(state.clone()), state, dir)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply {
        status,
        headers,
        json,
    }
}

pub fn json_req(method: Method, path: &str, body: &Value, bearer: Option<&str>) -> Request<Body> {
    raw_req(method, path, body.to_string(), "application/json", bearer)
}

pub fn raw_req(
    method: Method,
    path: &str,
    body: String,
    content_type: &str,
    bearer: Option<&str>,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::from(body)).unwrap()
}

pub fn get(path: &str, bearer: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(Method::GET).uri(path);
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

pub async fn post(app: &Router, path: &str, body: Value) -> Reply {
    send(app, json_req(Method::POST, path, &body, None)).await
}

pub async fn register(app: &Router, username: &str, password: &str, display: &str) -> Reply {
    post(
        app,
        "/auth/register",
        serde_json::json!({"username": username, "password": password, "displayName": display}),
    )
    .await
}

pub async fn login(app: &Router, username: &str, password: &str) -> Reply {
    post(
        app,
        "/auth/login",
        serde_json::json!({"username": username, "password": password}),
    )
    .await
}
