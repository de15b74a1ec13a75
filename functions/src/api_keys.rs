//! The API keys of embedding apps, for `$connect` only: `ws-connect` is the
//! one function that checks join tokens, so it is the only one that reads
//! the keys (`TINCAN_API_KEYS`) and the only one the templates give them to.

use tincan_token::join::ApiKeys;

use crate::config::ConfigError;

/// `TINCAN_API_KEYS`: `id:secret` pairs, comma-separated; unset or empty,
/// none (every join token is refused). A malformed list is refused naming
/// the variable alone, never a secret.
pub(crate) fn api_keys_from_env() -> Result<ApiKeys, ConfigError> {
    ApiKeys::parse(&std::env::var("TINCAN_API_KEYS").unwrap_or_default())
        .map_err(|_| ConfigError::Invalid("TINCAN_API_KEYS"))
}
