//! The page finds its API through `/settings.json` wherever it is served;
//! tincan-local derives that file from the address the browser used, sends
//! the page's security headers, and answers CORS preflights: with the
//! origin when it is in `TINCAN_CORS_ORIGINS`, without it otherwise (never
//! a 405).

mod common;

use common::start;
use reqwest::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN};
use reqwest::Method;
use serde_json::{json, Value};
use tincan_local::{parse_cors_origins, CONTENT_SECURITY_POLICY, SETTINGS_PATH};

async fn preflight(url: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, url)
        .header(ORIGIN, origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn settings_name_the_address_the_browser_used() {
    let s = start(|_| {}).await;
    let res = reqwest::get(s.http(SETTINGS_PATH)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let here = s.stack.addr;
    assert_eq!(
        body,
        json!({"httpApiUrl": format!("http://{here}"), "webSocketUrl": format!("ws://{here}/ws")})
    );
    // Reached under another name (a proxy, localhost): that name.
    let res = reqwest::Client::new()
        .get(s.http(SETTINGS_PATH))
        .header("host", "calls.example.test:8443")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["webSocketUrl"], "ws://calls.example.test:8443/ws");
    s.stack.stop().await;
}

#[tokio::test]
async fn the_page_comes_with_its_security_headers() {
    let s = start(|_| {}).await;
    for path in ["/", "/app.js", SETTINGS_PATH] {
        let res = reqwest::get(s.http(path)).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert_eq!(
            h["content-security-policy"], CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
    }
    s.stack.stop().await;
}

/// By default the web app is the copy built into the binary: the same
/// bytes as the repository's `web/`, with their types, an `ETag` that
/// answers 304, and 404 for what is not part of the app.
#[tokio::test]
async fn the_built_in_web_app_is_the_repositorys() {
    let s = start(|c| c.web_dir = None).await;
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let http = reqwest::Client::new();
    for (path, file, kind) in [
        ("/", "index.html", "text/html"),
        ("/app.js", "app.js", "javascript"),
        ("/style.css", "style.css", "text/css"),
        ("/app/participants.js", "app/participants.js", "javascript"),
        ("/tincan/session.js", "tincan/session.js", "javascript"),
        ("/tincan-client.js", "tincan-client.js", "javascript"),
    ] {
        let res = http.get(s.http(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.contains(kind), "{path}: {content_type}");
        let etag = res.headers()["etag"].clone();
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            std::fs::read(web.join(file)).unwrap(),
            "{path}"
        );
        let again = http
            .get(s.http(path))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    for path in [
        "/nope.js",
        "/package.json",
        "/screenshots/call.png",
        "/../Cargo.toml",
    ] {
        let res = http.get(s.http(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    s.stack.stop().await;
}

#[tokio::test]
async fn by_default_no_other_origin_is_allowed_and_preflights_are_answered() {
    let s = start(|_| {}).await;
    let res = preflight(&s.http("/auth/login"), "http://elsewhere.test").await;
    assert!(res.status().is_success(), "preflight got {}", res.status());
    assert!(res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    s.stack.stop().await;
}

#[tokio::test]
async fn a_listed_origin_may_call_the_api_and_no_other() {
    let allowed = "http://127.0.0.1:5173";
    let s = start(|c| c.cors = parse_cors_origins(allowed).unwrap()).await;
    let res = preflight(&s.http("/auth/register"), allowed).await;
    assert!(res.status().is_success());
    assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], allowed);
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");

    // The actual request carries the header too.
    let res = reqwest::Client::new()
        .post(s.http("/auth/login"))
        .header(ORIGIN, allowed)
        .json(&json!({"username": "nobody", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], allowed);
    // So that a page there can read how long a 429 asks it to wait.
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");

    let res = preflight(&s.http("/auth/register"), "http://127.0.0.1:5174").await;
    assert!(res.status().is_success());
    assert!(res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    s.stack.stop().await;
}
