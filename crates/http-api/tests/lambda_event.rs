//! The router behind `lambda_http`, as the `http-api` Lambda runs it: API
//! Gateway HTTP API (payload v2) events in, the same replies out.

mod common;

use common::*;
use serde_json::{json, Value};
use tower::ServiceExt;

fn event(method: &str, path: &str, body: Option<Value>, bearer: Option<&str>) -> String {
    event_from(method, path, body, bearer, "127.0.0.1")
}

fn event_from(
    method: &str,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
    source_ip: &str,
) -> String {
    let mut headers = json!({
        "content-type": "application/json",
        "host": "api.example.test",
        "x-forwarded-proto": "https"
    });
    if let Some(t) = bearer {
        headers["authorization"] = json!(format!("Bearer {t}"));
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "isBase64Encoded": false,
        "body": body.map(|b| b.to_string()),
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "test"
            },
            "requestId": "r1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000u64
        }
    })
    .to_string()
}

async fn call(app: &axum::Router, event: &str) -> (u16, Value) {
    let req = lambda_http::request::from_str(event).expect("a valid v2 event");
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn http_api_v2_events_reach_the_handlers() {
    let (app, _state, _dir) = embedded_app();
    let body =
        json!({"username": "lambda", "password": "correct horse battery", "displayName": "λ"});
    let (status, reply) = call(&app, &event("POST", "/auth/register", Some(body), None)).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["user"]["displayName"], "λ");

    let body = json!({"username": "lambda", "password": "correct horse battery"});
    let (status, reply) = call(&app, &event("POST", "/auth/login", Some(body), None)).await;
    assert_eq!(status, 200);
    let token = reply["accessToken"].as_str().unwrap().to_owned();

    let (status, reply) = call(&app, &event("GET", "/me", None, Some(&token))).await;
    assert_eq!(
        (status, reply["user"]["username"].clone()),
        (200, json!("lambda"))
    );
    let (status, reply) = call(&app, &event("GET", "/me", None, None)).await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
}

/// The per-address limits see API Gateway's `sourceIp`, through the same
/// router the Lambda runs.
#[tokio::test]
async fn the_lambda_router_limits_by_source_ip() {
    use tincan_accounts::{AccountOptions, AuthLimits, PasswordParams, Quota};
    let (stores, _dir) = embedded_stores();
    let state = state_with(
        stores,
        AccountOptions {
            password: PasswordParams::insecure_fast(),
            limits: AuthLimits {
                registrations_per_addr: Quota::new(1, 3600),
                ..AuthLimits::default()
            },
            ..AccountOptions::default()
        },
    );
    let app = tincan_http_api::lambda::router(state, None);
    let body = |name: &str| {
        Some(json!({"username": name, "password": "correct horse battery", "displayName": name}))
    };
    let from_a = |name: &str| event_from("POST", "/auth/register", body(name), None, "203.0.113.5");
    assert_eq!(call(&app, &from_a("first")).await.0, 201);
    let (status, reply) = call(&app, &from_a("second")).await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (429, json!("rate-limited"))
    );
    let from_b = event_from(
        "POST",
        "/auth/register",
        body("second"),
        None,
        "203.0.113.6",
    );
    assert_eq!(call(&app, &from_b).await.0, 201);
}
