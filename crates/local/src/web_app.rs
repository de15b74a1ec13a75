//! The web app as `tincan-local` serves it: the files of `web/`, the page's
//! runtime settings at [`SETTINGS_PATH`], the security headers a deployment
//! sends with them, and which other origins may call the HTTP API.
//!
//! The page reads [`SETTINGS_PATH`] at start-up to learn where the HTTP API
//! and the WebSocket are. On AWS the stack writes that file into the app's
//! bucket from its own outputs; here it is derived from the address the
//! browser reached us at (its `Host`), so the same page works unchanged in
//! both places, and from a static server on another origin that serves a
//! settings file naming this one (with that origin in
//! `TINCAN_CORS_ORIGINS`).

use std::net::SocketAddr;
use std::path::Path;

use axum::extract::State;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use tincan_http_api::CorsOrigins;
use tower_http::services::ServeDir;

/// Where the page reads its runtime settings, on every host of the app.
pub const SETTINGS_PATH: &str = "/settings.json";

/// The Content-Security-Policy of the page when the API is on its own
/// origin: only this origin's scripts, styles, network and frames of none.
/// (A deployment with the API elsewhere adds its URLs to `connect-src`, as
/// the templates do.)
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The page's runtime settings, as `web/app/settings.js` reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebSettings {
    /// Base URL of the HTTP API (`POST {httpApiUrl}/auth/login`, ...).
    pub http_api_url: String,
    /// The signaling WebSocket (`?token=` is added by the client).
    pub web_socket_url: String,
}

impl WebSettings {
    /// The settings of a page served at `authority` (`host:port`) over plain
    /// HTTP: the API at its root, the WebSocket at `/ws`.
    pub fn same_origin(authority: &str) -> Self {
        Self {
            http_api_url: format!("http://{authority}"),
            web_socket_url: format!("ws://{authority}/ws"),
        }
    }
}

/// A bad `TINCAN_CORS_ORIGINS`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CorsConfigError {
    /// An entry that is not an origin (`scheme://host[:port]`, no path).
    #[error("TINCAN_CORS_ORIGINS: {0:?} is not an origin like https://app.example.com")]
    NotAnOrigin(String),
}

/// Parses `TINCAN_CORS_ORIGINS` for the local stack: unset, empty or `none`
/// allows no other origin (same-origin only; preflights are still answered,
/// without an `Access-Control-Allow-Origin`), `*` any origin, else a
/// comma-separated list of origins.
pub fn parse_cors_origins(value: &str) -> Result<CorsOrigins, CorsConfigError> {
    match value.trim() {
        "" | "none" => Ok(CorsOrigins::List(Vec::new())),
        "*" => Ok(CorsOrigins::Any),
        list => list
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|origin| {
                let bad = || CorsConfigError::NotAnOrigin(origin.to_owned());
                let uri: Uri = origin.parse().map_err(|_| bad())?;
                let is_origin = matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some()
                    && uri.path() == "/"
                    && uri.query().is_none();
                if !is_origin || origin.ends_with('/') {
                    return Err(bad());
                }
                HeaderValue::from_str(origin).map_err(|_| bad())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(CorsOrigins::List),
    }
}

/// `GET /settings.json`: derived from the `Host` the browser used (so it
/// works whatever name or address reached us), else the listen address.
async fn settings(State(listen): State<SocketAddr>, headers: HeaderMap) -> Response {
    let authority = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.parse::<axum::http::uri::Authority>().is_ok())
        .map(str::to_owned)
        .unwrap_or_else(|| listen.to_string());
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(WebSettings::same_origin(&authority)),
    )
        .into_response()
}

/// Adds the headers a page needs against injection, framing and leaks.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(
        headers,
        HeaderName::from_static("permissions-policy"),
        "camera=(), geolocation=(), microphone=(self)",
    );
    response
}

/// The web app (`web/`: the page, its modules and the client library),
/// built into the binary so `tincan-local` serves it wherever it runs.
#[derive(rust_embed::Embed)]
#[folder = "../../web/"]
#[include = "*.html"]
#[include = "*.css"]
#[include = "*.js"]
#[include = "app/*.js"]
#[include = "tincan/*.js"]
struct WebAssets;

/// One built-in file of the web app (`/` is `index.html`), with its type
/// and an `ETag`; 404 for anything else.
async fn built_in(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(file) = WebAssets::get(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let etag = format!(
        "\"{}\"",
        URL_SAFE_NO_PAD.encode(file.metadata.sha256_hash())
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, file.metadata.mimetype().to_owned()),
            (header::ETAG, etag),
        ],
        file.data,
    )
        .into_response()
}

/// The static site: the settings file and the web app (from `web_dir`, or
/// the copy built into the binary), with the security headers. Merge it
/// last (it carries the fallback).
pub(crate) fn router(web_dir: Option<&Path>, listen: SocketAddr) -> Router {
    let site = Router::new()
        .route(SETTINGS_PATH, get(settings))
        .with_state(listen);
    let site = match web_dir {
        Some(dir) => site.fallback_service(ServeDir::new(dir)),
        None => site.fallback(built_in),
    };
    site.layer(axum::middleware::map_response(security_headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_origins_by_default() {
        for value in ["", "  ", "none"] {
            let Ok(CorsOrigins::List(list)) = parse_cors_origins(value) else {
                panic!("{value:?} should parse to an empty list");
            };
            assert!(list.is_empty());
        }
        assert!(matches!(parse_cors_origins("*"), Ok(CorsOrigins::Any)));
    }

    #[test]
    fn a_list_of_origins() {
        let Ok(CorsOrigins::List(list)) =
            parse_cors_origins("http://127.0.0.1:5000, https://app.example.com")
        else {
            panic!("should parse");
        };
        assert_eq!(list, ["http://127.0.0.1:5000", "https://app.example.com"]);
    }

    #[test]
    fn what_is_not_an_origin_is_refused() {
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://app.example.com",
            "https://",
        ] {
            assert!(
                matches!(parse_cors_origins(bad), Err(CorsConfigError::NotAnOrigin(ref o)) if o == bad),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn settings_name_the_api_and_the_socket() {
        let s = WebSettings::same_origin("127.0.0.1:8080");
        assert_eq!(
            serde_json::to_value(&s).unwrap_or_default(),
            serde_json::json!({
                "httpApiUrl": "http://127.0.0.1:8080",
                "webSocketUrl": "ws://127.0.0.1:8080/ws",
            })
        );
    }
}
