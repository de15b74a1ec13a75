//! The `ws-connect` Lambda: API Gateway WebSocket `$connect` route.

use lambda_runtime::{run, service_fn, LambdaEvent};
use tincan_functions::{handle_connect, init_tracing, ConnectSettings, Deps};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings: ConnectSettings = tincan_settings::from_env_or_exit("ws-connect");
    init_tracing(&settings.ws.log);
    let deps = Deps::for_connect(settings).await?;
    run(service_fn(|event: LambdaEvent<_>| {
        handle_connect(&deps, event)
    }))
    .await
}
