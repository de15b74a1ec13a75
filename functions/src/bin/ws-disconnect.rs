//! The `ws-disconnect` Lambda: API Gateway WebSocket `$disconnect` route.

use lambda_runtime::{run, service_fn, LambdaEvent};
use tincan_functions::{handle_disconnect, init_tracing, Deps};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let deps = Deps::for_disconnect().await?;
    run(service_fn(|event: LambdaEvent<_>| {
        handle_disconnect(&deps, event)
    }))
    .await
}
