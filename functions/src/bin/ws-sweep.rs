//! The `ws-sweep` Lambda: run on a schedule (an EventBridge rule), it ends
//! the participants that are gone for good in rooms nobody reads again and
//! closes their visits in call history.

use lambda_runtime::{run, service_fn, LambdaEvent};
use tincan_functions::{handle_sweep, init_tracing, Deps, HistorySettings};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings: HistorySettings = tincan_settings::from_env_or_exit("ws-sweep");
    init_tracing(&settings.ws.log);
    let deps = Deps::for_sweep(settings).await?;
    run(service_fn(|event: LambdaEvent<_>| {
        handle_sweep(&deps, event)
    }))
    .await
}
