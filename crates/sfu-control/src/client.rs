//! The signaling side's client of a node's control API.

use std::time::Duration;

use crate::{
    codes, mute_path, peer_path, ControlSecret, ErrorBody, JoinReply, JoinRequest, MuteRequest,
    RequestTarget,
};
use reqwest::Method;

/// Time to connect to a node.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for a whole request, reply included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuClientError {
    /// The node could not be reached, timed out, or answered something that
    /// is not the API (tell the client `sfu-unavailable`).
    #[error("SFU node unreachable: {0}")]
    Unreachable(String),
    /// The node refused with an error body (tell the client `code`).
    #[error("SFU node refused ({status}): {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// A room or peer id the API does not take, or a bad node URL.
    #[error("invalid SFU control request: {0}")]
    InvalidRequest(String),
}

impl SfuClientError {
    /// The error code to give the browser: the node's for a refusal about
    /// the call (`room-full`, `draining`, `bad-sdp`, ...), `sfu-unavailable`
    /// otherwise, a refused control token included (a matter between the
    /// signaling side and the node, not the browser's).
    pub fn client_code(&self) -> &str {
        match self {
            SfuClientError::Refused { status, code, .. } if *status != 401 && *status != 403 => {
                code
            }
            _ => codes::SFU_UNAVAILABLE,
        }
    }
}

/// Calls nodes' control APIs, minting a token for each request (its
/// method, path and body, used once). One client serves
/// every node (the node's base URL, e.g. `http://10.0.0.5:7881`, is passed
/// per call; `MediaNodeInfo::sfu_control` in the fleet registry).
#[derive(Clone)]
pub struct SfuControlClient {
    http: reqwest::Client,
    secret: ControlSecret,
}

impl std::fmt::Debug for SfuControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SfuControlClient").finish_non_exhaustive()
    }
}

impl SfuControlClient {
    /// A client with [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_TIMEOUT`].
    pub fn new(secret: ControlSecret) -> Result<Self, SfuClientError> {
        Self::with_timeouts(secret, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT)
    }

    pub fn with_timeouts(
        secret: ControlSecret,
        connect: Duration,
        overall: Duration,
    ) -> Result<Self, SfuClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .timeout(overall)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SfuClientError::InvalidRequest(e.to_string()))?;
        Ok(Self { http, secret })
    }

    /// Joins (or rejoins) `peer` to `room` on the node at `base`; the
    /// node's SDP answer.
    pub async fn join(
        &self,
        base: &str,
        room: &str,
        peer: &str,
        request: &JoinRequest,
        now: u64,
    ) -> Result<JoinReply, SfuClientError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| SfuClientError::InvalidRequest(e.to_string()))?;
        let reply = self
            .call(
                Method::PUT,
                base,
                room,
                peer,
                peer_path(room, peer),
                Some(body),
                now,
            )
            .await?;
        serde_json::from_slice(&reply)
            .map_err(|e| SfuClientError::Unreachable(format!("bad join reply: {e}")))
    }

    /// Tells the node `peer` is (un)muted.
    pub async fn mute(
        &self,
        base: &str,
        room: &str,
        peer: &str,
        muted: bool,
        now: u64,
    ) -> Result<(), SfuClientError> {
        let body = serde_json::to_vec(&MuteRequest { muted })
            .map_err(|e| SfuClientError::InvalidRequest(e.to_string()))?;
        self.call(
            Method::POST,
            base,
            room,
            peer,
            mute_path(room, peer),
            Some(body),
            now,
        )
        .await
        .map(drop)
    }

    /// Removes `peer` from `room` on the node (fine if it is not there).
    pub async fn leave(
        &self,
        base: &str,
        room: &str,
        peer: &str,
        now: u64,
    ) -> Result<(), SfuClientError> {
        self.call(
            Method::DELETE,
            base,
            room,
            peer,
            peer_path(room, peer),
            None,
            now,
        )
        .await
        .map(drop)
    }

    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        method: Method,
        base: &str,
        room: &str,
        peer: &str,
        path: String,
        body: Option<Vec<u8>>,
        now: u64,
    ) -> Result<Vec<u8>, SfuClientError> {
        if !crate::valid_room_id(room) || !crate::valid_peer_id(peer) {
            return Err(SfuClientError::InvalidRequest(
                "room or peer id not allowed".to_owned(),
            ));
        }
        let url = reqwest::Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
            .map_err(|e| SfuClientError::InvalidRequest(e.to_string()))?;
        // The path as the node will see it (a base URL may carry a prefix).
        let target = RequestTarget {
            method: method.as_str(),
            path: url.path(),
            body: body.as_deref().unwrap_or_default(),
        };
        let token = crate::mint(&self.secret, &target, now);
        let mut request = self.http.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_builder() {
                SfuClientError::InvalidRequest(e.to_string())
            } else {
                SfuClientError::Unreachable(e.to_string())
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SfuClientError::Unreachable(e.to_string()))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(SfuClientError::Refused {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            }),
            // Not our API (a proxy's error page, a 502...).
            Err(_) => Err(SfuClientError::Unreachable(format!(
                "node answered {status} without an API error"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;
    use axum::routing::put;
    use axum::{Json, Router};

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn secret() -> ControlSecret {
        ControlSecret::new("0123456789abcdef0123456789abcdef").unwrap()
    }

    fn join_request() -> JoinRequest {
        JoinRequest {
            offer: "v=0".into(),
            muted: false,
        }
    }

    #[tokio::test]
    async fn join_sends_a_token_for_the_path_and_reads_the_answer() {
        let app = Router::new().route(
            "/sfu/v1/rooms/{room}/peers/{peer}",
            put(|headers: HeaderMap, body: axum::body::Bytes| async move {
                let token = headers["authorization"]
                    .to_str()
                    .unwrap()
                    .strip_prefix("Bearer ")
                    .unwrap()
                    .to_owned();
                let target = RequestTarget {
                    method: "PUT",
                    path: "/sfu/v1/rooms/r1/peers/p1",
                    body: &body,
                };
                crate::verify_request(&secret(), &token, &target, 1_000).unwrap();
                let req: JoinRequest = serde_json::from_slice(&body).unwrap();
                Json(JoinReply {
                    answer: format!("answer to {}", req.offer),
                })
            }),
        );
        let base = serve(app).await;
        let client = SfuControlClient::new(secret()).unwrap();
        let reply = client
            .join(&base, "r1", "p1", &join_request(), 1_000)
            .await
            .unwrap();
        assert_eq!(reply.answer, "answer to v=0");
    }

    #[tokio::test]
    async fn refusal_carries_the_node_code() {
        let app = Router::new().route(
            "/sfu/v1/rooms/{room}/peers/{peer}",
            put(|| async {
                (
                    axum::http::StatusCode::CONFLICT,
                    Json(ErrorBody::new(codes::ROOM_FULL, "the room is full")),
                )
            }),
        );
        let base = serve(app).await;
        let client = SfuControlClient::new(secret()).unwrap();
        let err = client
            .join(&base, "r1", "p1", &join_request(), 1_000)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SfuClientError::Refused { status: 409, code, .. } if code == "room-full"),
            "{err:?}"
        );
        assert_eq!(err.client_code(), "room-full");
    }

    #[test]
    fn a_refused_token_is_unavailable_to_the_browser() {
        let refused = |status: u16, code: &str| SfuClientError::Refused {
            status,
            code: code.to_owned(),
            message: String::new(),
        };
        assert_eq!(
            refused(401, codes::UNAUTHORIZED).client_code(),
            codes::SFU_UNAVAILABLE
        );
        assert_eq!(
            refused(401, codes::REPLAYED).client_code(),
            codes::SFU_UNAVAILABLE
        );
        assert_eq!(
            refused(403, codes::FORBIDDEN).client_code(),
            codes::SFU_UNAVAILABLE
        );
        assert_eq!(refused(503, codes::DRAINING).client_code(), codes::DRAINING);
    }

    #[tokio::test]
    async fn unreachable_node_and_non_api_replies_are_unavailable() {
        // A port nobody listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = SfuControlClient::new(secret()).unwrap();
        let err = client
            .leave(&format!("http://{addr}"), "r1", "p1", 1_000)
            .await
            .unwrap_err();
        assert!(matches!(err, SfuClientError::Unreachable(_)), "{err:?}");
        assert_eq!(err.client_code(), codes::SFU_UNAVAILABLE);

        let base = serve(Router::new()).await;
        let err = client
            .mute(&base, "r1", "p1", true, 1_000)
            .await
            .unwrap_err();
        assert!(matches!(err, SfuClientError::Unreachable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn bad_ids_are_refused_before_any_request() {
        let client = SfuControlClient::new(secret()).unwrap();
        let err = client
            .leave("http://127.0.0.1:1", "../x", "p", 1_000)
            .await
            .unwrap_err();
        assert!(matches!(err, SfuClientError::InvalidRequest(_)), "{err:?}");
    }
}
