//! [`Push`] through the API Gateway Management API (`@connections`).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, SdkError};
use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;

use crate::push::{Push, PushError};

/// Pushes with `PostToConnection` and closes with `DeleteConnection`.
///
/// A 410 (`GoneException`, or any 410 answer) is [`PushError::Gone`]; every
/// other failure is [`PushError::Failed`].
#[derive(Debug, Clone)]
pub struct ApiGatewayPush {
    client: Client,
}

impl ApiGatewayPush {
    /// A sink for the WebSocket API whose callback URL is `endpoint_url`,
    /// stage included: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`
    /// in AWS (the Lambda builds it from the event's `domainName` and
    /// `stage`), or e.g. `http://127.0.0.1:8080/local` for the local stack.
    /// Region, credentials, timeouts and retries come from `sdk`.
    pub fn new(endpoint_url: &str, sdk: &SdkConfig) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint_url.trim_end_matches('/'))
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }
}

#[async_trait]
impl Push for ApiGatewayPush {
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), PushError> {
        self.client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(text.as_bytes()))
            .send()
            .await
            .map(drop)
            .map_err(|err| {
                let gone = matches!(
                    err.as_service_error(),
                    Some(PostToConnectionError::GoneException(_))
                );
                push_error("PostToConnection", connection_id, gone, err)
            })
    }

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        self.client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
            .map(drop)
            .map_err(|err| {
                let gone = matches!(
                    err.as_service_error(),
                    Some(DeleteConnectionError::GoneException(_))
                );
                push_error("DeleteConnection", connection_id, gone, err)
            })
    }
}

fn push_error<E>(
    operation: &str,
    connection_id: &str,
    gone_exception: bool,
    err: SdkError<E, aws_sdk_apigatewaymanagement::config::http::HttpResponse>,
) -> PushError
where
    E: std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    if gone_exception || status == Some(410) {
        return PushError::Gone(connection_id.to_owned());
    }
    PushError::Failed(format!("{operation}: {}", DisplayErrorContext(&err)))
}

#[cfg(test)]
mod tests {
    //! Against a one-shot HTTP responder on loopback: enough to see the path
    //! the SDK calls (stage kept) and how each answer is mapped.

    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_apigatewaymanagement::config::Credentials;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Answers one request with `status`/`error_type`; returns the request
    /// head and the push's endpoint URL (with a stage path).
    async fn responder(
        status: u16,
        error_type: Option<&'static str>,
    ) -> (tokio::task::JoinHandle<String>, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/prod", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and whatever body fits; our bodies are tiny.
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let read = socket.read(&mut buf).await.unwrap();
                assert!(read > 0, "client closed early");
                request.extend_from_slice(&buf[..read]);
            }
            let header = error_type
                .map(|t| format!("x-amzn-ErrorType: {t}\r\n"))
                .unwrap_or_default();
            let body = if status >= 400 {
                r#"{"message":"nope"}"#
            } else {
                ""
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\n{header}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.unwrap();
            let head = String::from_utf8_lossy(&request).into_owned();
            head.lines().next().unwrap_or_default().to_owned()
        });
        (task, url)
    }

    fn sdk() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(tincan_aws::https_client())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_credential_provider())
            .build()
    }

    fn aws_credential_provider() -> aws_sdk_apigatewaymanagement::config::SharedCredentialsProvider
    {
        aws_sdk_apigatewaymanagement::config::SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "test",
        ))
    }

    async fn run(
        status: u16,
        error_type: Option<&'static str>,
        close: bool,
    ) -> (String, Result<(), PushError>) {
        let (server, url) = responder(status, error_type).await;
        let push = ApiGatewayPush::new(&url, &sdk());
        let result = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            if close {
                push.close("abc=").await
            } else {
                push.send("abc=", r#"{"type":"pong"}"#).await
            }
        })
        .await
        .expect("push answered in time");
        (server.await.unwrap(), result)
    }

    #[tokio::test]
    async fn send_posts_to_the_stage_path() {
        let (line, result) = run(200, None, false).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(
            line.starts_with("POST /prod/@connections/abc%3D "),
            "{line}"
        );
    }

    #[tokio::test]
    async fn close_deletes_the_connection() {
        let (line, result) = run(204, None, true).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(
            line.starts_with("DELETE /prod/@connections/abc%3D "),
            "{line}"
        );
    }

    #[tokio::test]
    async fn gone_exception_is_gone() {
        let (_, result) = run(410, Some("GoneException"), false).await;
        assert!(matches!(result, Err(PushError::Gone(id)) if id == "abc="));
        let (_, result) = run(410, Some("GoneException"), true).await;
        assert!(matches!(result, Err(PushError::Gone(id)) if id == "abc="));
    }

    #[tokio::test]
    async fn a_bare_410_is_gone_too() {
        let (_, result) = run(410, None, false).await;
        assert!(matches!(result, Err(PushError::Gone(_))), "{result:?}");
    }

    #[tokio::test]
    async fn forbidden_is_failed_not_gone() {
        let (_, result) = run(403, Some("ForbiddenException"), false).await;
        assert!(matches!(result, Err(PushError::Failed(_))), "{result:?}");
    }
}
