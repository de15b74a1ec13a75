//! `tincan-local`: the whole of Tincan on one machine. Its settings
//! (`tincan-local --help`, and the README) are flags that also read
//! environment variables.

use tincan_local::{LocalSettings, LocalStack};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: LocalSettings = tincan_settings::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.rust_log)
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = settings.into_config()?;
    let stack = LocalStack::start(config).await?;
    println!("Tincan is running at http://{}/", stack.addr);
    shutdown_signal().await;
    stack.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
