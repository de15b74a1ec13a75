//! The HTTP client of every AWS SDK client: reqwest (HTTP/1.1, rustls on
//! ring, the system's roots; `SSL_CERT_FILE` and `SSL_CERT_DIR` are
//! honoured) behind the SDK's `HttpClient` trait.
//!
//! Why not the SDK's own client (`aws-smithy-http-client`): it always
//! builds hyper with HTTP/2, which DynamoDB and the Management API do not
//! speak, and that alone is about 0.5 MB of every Lambda binary (the `h2`
//! crate and hyper's HTTP/2 half). reqwest, which the workspace uses
//! already, without its `http2` feature, is the HTTP/1.1 client the SDK
//! clients actually use, with a connection pool per set of timeouts.
//!
//! The SDK owns retries, signing and the operation timeouts; this client
//! only sends, and tells the SDK what kind of failure a failed send was
//! (timeout, I/O: retried as transient; anything else: not).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_dynamodb::config::{HttpClient, RuntimeComponents, SharedHttpClient};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;

/// Idle pooled connections are closed after this long (the SDK client's
/// own default).
const POOL_IDLE: Duration = Duration::from_secs(90);

/// The timeouts a connector was built for.
type TimeoutsKey = (Option<Duration>, Option<Duration>);

/// One reqwest client (and pool) per set of connector timeouts asked for.
#[derive(Debug, Default)]
struct ReqwestHttpClient {
    connectors: Mutex<HashMap<TimeoutsKey, SharedHttpConnector>>,
}

/// The HTTPS client for the AWS SDK clients (see the module docs). Clients
/// made from one `SdkConfig` share it, and with it their connection pools.
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(Connector::new(key)))
            .clone()
    }
}

/// Sends the SDK's requests on one reqwest client.
#[derive(Debug, Clone)]
struct Connector {
    /// Why the client could not be built (no TLS roots, say): every request
    /// then fails with that error instead of the process panicking.
    client: Result<reqwest::Client, Arc<str>>,
}

impl Connector {
    fn new((connect, read): TimeoutsKey) -> Self {
        let mut builder = reqwest::Client::builder()
            .pool_idle_timeout(POOL_IDLE)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(connect) = connect {
            builder = builder.connect_timeout(connect);
        }
        if let Some(read) = read {
            builder = builder.read_timeout(read);
        }
        Self {
            client: builder.build().map_err(|err| err.to_string().into()),
        }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        match &self.client {
            Ok(client) => HttpConnectorFuture::new(send(client.clone(), request)),
            Err(reason) => HttpConnectorFuture::ready(Err(ConnectorError::other(
                format!("HTTP client: {reason}").into(),
                None,
            ))),
        }
    }
}

async fn send(
    client: reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    // DynamoDB's and the Management API's requests are small JSON bodies,
    // always in memory.
    let body = body
        .bytes()
        .ok_or_else(|| ConnectorError::user("streaming request bodies are not supported".into()))?
        .to_vec();
    let request = http::Request::from_parts(parts, body);
    let request =
        reqwest::Request::try_from(request).map_err(|e| ConnectorError::user(e.into()))?;
    let response = client.execute(request).await.map_err(connector_error)?;
    let mut head = http::Response::builder().status(response.status());
    if let Some(headers) = head.headers_mut() {
        *headers = response.headers().clone();
    }
    let body = response.bytes().await.map_err(connector_error)?;
    let response = head
        .body(SdkBody::from(body))
        .map_err(|e| ConnectorError::other(e.into(), None))?;
    HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
}

/// What kind of failure a failed send was, for the SDK's retry policy.
fn connector_error(err: reqwest::Error) -> ConnectorError {
    if err.is_timeout() {
        ConnectorError::timeout(err.into())
    } else if err.is_connect() || err.is_request() || err.is_body() {
        ConnectorError::io(err.into())
    } else {
        ConnectorError::other(err.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    fn get(url: &str) -> HttpRequest {
        HttpRequest::get(url).expect("a request")
    }

    #[tokio::test]
    async fn a_response_comes_back_with_its_status_headers_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let reply =
                "HTTP/1.1 400 Bad Request\r\nx-amzn-requestid: r1\r\ncontent-length: 2\r\n\r\n{}";
            socket.write_all(reply.as_bytes()).await.unwrap();
        });
        let response = Connector::new((None, None))
            .call(get(&format!("http://{addr}/")))
            .await
            .expect("a response");
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(response.headers().get("x-amzn-requestid"), Some("r1"));
        assert_eq!(response.body().bytes(), Some(&b"{}"[..]));
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_which_the_sdk_retries() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = Connector::new((Some(Duration::from_secs(1)), None))
            .call(get(&format!("http://127.0.0.1:{port}/")))
            .await
            .expect_err("nothing listens");
        assert!(err.is_io(), "{err:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move { listener.accept().await });
        let err = Connector::new((None, Some(Duration::from_millis(200))))
            .call(get(&format!("http://{addr}/")))
            .await
            .expect_err("no answer");
        assert!(err.is_timeout(), "{err:?}");
        held.abort();
    }
}
