//! The `ws-default` Lambda: API Gateway WebSocket `$default` route.

use lambda_runtime::{run, service_fn, LambdaEvent};
use tincan_functions::{handle_default, init_tracing, Deps, HistorySettings};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings: HistorySettings = tincan_settings::from_env_or_exit("ws-default");
    init_tracing(&settings.ws.log);
    let deps = Deps::for_default(settings).await?;
    run(service_fn(|event: LambdaEvent<_>| {
        handle_default(&deps, event)
    }))
    .await
}
