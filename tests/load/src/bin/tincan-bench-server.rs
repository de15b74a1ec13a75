//! `tincan-bench-server`: the local stack as its own process, for the
//! side-by-side relay benchmark (`tests/bench/report`).
//!
//! The same `LocalStack` as `tincan-local`, read from the same environment,
//! with two differences a load run needs: `$connect` accepts tokens of users
//! that were never registered (the load client mints them with
//! `TINCAN_JWT_SECRET`), and the listeners bind port 0 unless `TINCAN_ADDR` /
//! `TINCAN_MANAGEMENT_ADDR` say otherwise. It prints `listening ws://ADDR` on
//! its first line, then serves until SIGTERM or Ctrl-C.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use tincan_local::{LocalConfig, LocalStack};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = LocalConfig::from_env()?;
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    if std::env::var_os("TINCAN_ADDR").is_none() {
        config.addr = any;
    }
    if std::env::var_os("TINCAN_MANAGEMENT_ADDR").is_none() {
        config.management_addr = any;
    }
    config.jwt_secret = Some(
        std::env::var("TINCAN_JWT_SECRET")
            .context("TINCAN_JWT_SECRET is needed (the load client signs with it)")?
            .into(),
    );
    config.users_must_exist = false;
    let stack = LocalStack::start(config).await?;
    let mut out = std::io::stdout();
    writeln!(out, "listening ws://{}", stack.addr)?;
    out.flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    stack.stop().await;
    Ok(())
}
