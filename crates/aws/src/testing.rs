//! Test support (cargo feature `testing`): a moto server started on loopback
//! for the test that needs it, and SDK configuration pointed at it.
//!
//! From another crate's tests:
//!
//! ```toml
//! [dev-dependencies]
//! tincan-aws = { workspace = true, features = ["testing"] }
//! ```
//!
//! (`tincan_store::testing` is the same module, for crates that use the
//! store anyway.)
//!
//! ```ignore
//! use tincan_aws::testing::{self, MotoServer};
//! use tincan_store::{create_table, DynamoConnectionStore};
//!
//! let (_moto, endpoint) = MotoServer::start().await?; // killed when dropped
//! let client = testing::dynamo_client(&endpoint);
//! let table = testing::unique_table_name("connections");
//! create_table(&client, &table).await?;
//! let store = DynamoConnectionStore::new(client, table);
//! ```
//!
//! Needs moto importable by `python3` (`pip install 'moto[server]'`), or by the
//! interpreter named in `MOTO_PYTHON`. The server listens on `127.0.0.1` only.
//!
//! Why not `moto_server` itself: it serves each request on its own thread,
//! and moto's `TransactWriteItems` is not atomic across threads (it checks
//! conditions and writes one item at a time, and rolls a cancelled
//! transaction back by restoring a snapshot of the whole table, which can
//! undo another request's committed write). Real DynamoDB serializes
//! transactions on the items they touch, so a race test on threaded moto
//! tests moto. We run the same moto application on werkzeug's server with
//! `threaded=False`: one request at a time, each transaction atomic.

use std::io;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::sdk_config::{dummy_credentials, store_timeouts, DEFAULT_REGION};
use crate::sdk_http::https_client;

/// Environment variable naming the Python interpreter that has moto.
pub const MOTO_PYTHON_ENV: &str = "MOTO_PYTHON";

/// `moto_server`'s own start-up, minus its threads: `argv` is host, port.
const LAUNCHER: &str = "\
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app), threaded=False)
";

/// How long moto may take to start answering (it imports a lot of Python,
/// slowly on a machine busy compiling or running other tests).
const STARTUP: Duration = Duration::from_secs(60);

/// A moto server child process on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    /// Starts moto on a free `127.0.0.1` port and waits until it accepts
    /// connections; returns the server and its endpoint URL
    /// (`http://127.0.0.1:PORT`).
    pub async fn start() -> io::Result<(Self, String)> {
        let program = std::env::var(MOTO_PYTHON_ENV).unwrap_or_else(|_| "python3".into());
        let mut last_error = None;
        // The port is free when we look and taken a moment later only if
        // another process races us; try a few.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let child = Command::new(&program)
                .args(["-c", LAUNCHER, "127.0.0.1", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|err| {
                    io::Error::new(
                        err.kind(),
                        format!(
                            "cannot run {program} for moto (pip install 'moto[server]'): {err}"
                        ),
                    )
                })?;
            let mut server = Self {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            match server.wait_ready(port).await {
                Ok(()) => {
                    let endpoint = server.endpoint.clone();
                    return Ok((server, endpoint));
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("moto did not start")))
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn wait_ready(&mut self, port: u16) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "moto exited early ({status}): is moto[server] installed?"
                )));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("moto did not answer on port {port} within {STARTUP:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SDK configuration for an emulator at `endpoint`: dummy credentials,
/// region us-east-1, the stores' timeouts. Nothing is read from the
/// environment or profiles.
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    let (timeouts, retries) = store_timeouts();
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(https_client())
        .region(Region::new(DEFAULT_REGION))
        .credentials_provider(dummy_credentials())
        .endpoint_url(endpoint)
        .timeout_config(timeouts)
        .retry_config(retries)
        .build()
}

/// A DynamoDB client for an emulator at `endpoint` (see [`sdk_config`]).
pub fn dynamo_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    crate::sdk_config::dynamo_client(&sdk_config(endpoint), Some(endpoint))
}

/// A table name no other test run shares: `prefix-<pid>-<nanos>-<n>`.
pub fn unique_table_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
