//! A media node with the SFU on loopback and a tiny HTTP front for browser
//! interop checks: `POST /join/{room}/{peer}` with an SDP offer as the body
//! answers with the node's SDP answer (minting the control token the
//! signaling side would). Prints its address; runs until killed.
//!
//! `cargo run -p tincan-media-node --example sfu_interop`

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use tincan_media_node::{ControlSecret, MediaNodeConfig, PeerFilter, SfuConfig, TurnSecret};
use tincan_sfu_control::{JoinRequest, SfuControlClient};

const SECRET: &str = "interop-secret-of-at-least-32-bytes!!";
const CONTROL_SECRET: &str = "interop-control-secret-of-at-least-32-bytes";

#[derive(Clone)]
struct Front {
    control: String,
    client: SfuControlClient,
}

async fn join(
    State(front): State<Front>,
    Path((room, peer)): Path<(String, String)>,
    offer: String,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let cors = [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let request = JoinRequest {
        offer,
        muted: false,
    };
    match front
        .client
        .join(&front.control, &room, &peer, &request, now)
        .await
    {
        Ok(reply) => (StatusCode::OK, cors, reply.answer),
        Err(err) => (StatusCode::BAD_GATEWAY, cors, err.to_string()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let control_secret = ControlSecret::new(CONTROL_SECRET)?;
    let mut config = MediaNodeConfig::new(TurnSecret::new(SECRET))
        .with_listen("127.0.0.1:0".parse()?)
        .with_peers(PeerFilter::default().allow_loopback());
    config.sfu = Some(SfuConfig::loopback(control_secret.clone()));
    let node = tincan_media_node::start(config).await?;
    let control = node
        .sfu_control_addr()
        .ok_or_else(|| anyhow::anyhow!("no SFU"))?;
    let front = Front {
        control: format!("http://{control}"),
        client: SfuControlClient::new(control_secret)?,
    };
    let app = Router::new()
        .route(
            "/",
            axum::routing::get(|| async {
                axum::response::Html("<!doctype html><title>sfu</title>")
            }),
        )
        .route("/join/{room}/{peer}", post(join))
        .with_state(front);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    println!("FRONT http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
