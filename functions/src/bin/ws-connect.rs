//! The `ws-connect` Lambda: API Gateway WebSocket `$connect` route.

use lambda_runtime::{run, service_fn, LambdaEvent};
use tincan_functions::{handle_connect, init_tracing, Deps};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let deps = Deps::for_connect().await?;
    run(service_fn(|event: LambdaEvent<_>| {
        handle_connect(&deps, event)
    }))
    .await
}
