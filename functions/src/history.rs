//! Call history for `$disconnect` and `$default`: who was in which room,
//! and how long, written to MongoDB. `$connect` never comes here, so its
//! binary links no MongoDB driver.

use std::sync::Arc;

use tincan_accounts::config::MongoSettings;
use tincan_accounts::MongoStore;
use tincan_ws_api::{AccountsCallLog, CallLog};
use tracing::warn;

/// The call log when `MONGODB_URI` is set, `None` when it is not. Start-up
/// never waits on MongoDB (the client selects a server in the background);
/// a URI that cannot be parsed leaves the function without call history,
/// and says so.
pub(crate) async fn call_log(settings: &MongoSettings) -> Option<Arc<dyn CallLog>> {
    let mongo = settings.config()?;
    match MongoStore::connect(&mongo).await {
        // As the call store alone: the users', sessions' and preferences'
        // code is never instantiated in these binaries.
        Ok(store) => Some(Arc::new(AccountsCallLog::new(Arc::new(store)))),
        Err(err) => {
            warn!(error = %err, "no call history: MongoDB unavailable");
            None
        }
    }
}
