//! The `ws-disconnect` Lambda: API Gateway WebSocket `$disconnect` route.

use lambda_runtime::{run, service_fn, LambdaEvent};
use tincan_functions::{handle_disconnect, init_tracing, Deps, HistorySettings};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings: HistorySettings = tincan_settings::from_env_or_exit("ws-disconnect");
    init_tracing(&settings.ws.log);
    let deps = Deps::for_disconnect(settings).await?;
    run(service_fn(|event: LambdaEvent<_>| {
        handle_disconnect(&deps, event)
    }))
    .await
}
