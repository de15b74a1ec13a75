//! The `ws-default` Lambda: API Gateway WebSocket `$default` route.

use lambda_runtime::{run, service_fn, LambdaEvent};
use tincan_functions::{handle_default, init_tracing, Deps};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let deps = Deps::for_default().await?;
    run(service_fn(|event: LambdaEvent<_>| {
        handle_default(&deps, event)
    }))
    .await
}
