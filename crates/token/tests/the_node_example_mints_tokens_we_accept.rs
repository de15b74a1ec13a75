//! The Node example in `examples/join-token/` (Node's own `node:crypto`,
//! no packages) mints join tokens the Rust verifier accepts, with the
//! claims it was asked for: the token format is what `docs/embedding.md`
//! says, not what our own helper happens to produce.

use std::path::PathBuf;
use std::process::Command;

use tincan_token::join::{mint, ApiKeys, JoinClaims, JoinGrants, JoinTokenError};

const KEY_ID: &str = "node-app";
const SECRET: &str = "node-example-secret-node-example-secret";
const NOW: u64 = 1_800_000_000;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/join-token/mint-join-token.mjs")
}

/// `mintJoinToken(options)` in Node, with `options` as a JS object literal.
fn node_mint(options: &str) -> String {
    let script = format!(
        "import {{ mintJoinToken }} from {path:?};\n\
         console.log(mintJoinToken({{ keyId: {KEY_ID:?}, secret: {SECRET:?}, now: {NOW}, {options} }}));",
        path = example().canonicalize().unwrap().to_str().unwrap(),
    );
    let out = Command::new("node")
        .args(["--input-type=module", "-e", &script])
        .output()
        .expect("node runs (tests/setup.sh installs it)");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn keys() -> ApiKeys {
    ApiKeys::parse(&format!("{KEY_ID}:{SECRET}")).unwrap()
}

#[test]
fn a_speaker_token_from_node_is_accepted() {
    let token = node_mint("room: 'standup', sub: 'user-42', name: 'Zoë 🎧', speak: true");
    let who = keys().verify(&token, NOW + 10).unwrap();
    assert_eq!(who.user_id, "app:node-app:user-42");
    assert_eq!(who.display_name, "Zoë 🎧");
    assert_eq!(who.room, "standup");
    assert_eq!(who.grants, JoinGrants { speak: true });
    // The same claims, byte for byte, as the Rust helper mints.
    let claims = JoinClaims::new(
        "standup",
        "user-42",
        "Zoë 🎧",
        JoinGrants { speak: true },
        NOW,
        300,
    );
    let rust = mint(KEY_ID, SECRET.as_bytes(), &claims).unwrap();
    assert_eq!(token.split('.').nth(1), rust.split('.').nth(1));
}

#[test]
fn a_listen_only_token_from_node_is_accepted_and_expires() {
    let token = node_mint(
        "room: 'town-hall', sub: 'viewer-7', name: 'Grace', speak: false, ttlSeconds: 60",
    );
    let who = keys().verify(&token, NOW).unwrap();
    assert!(!who.grants.speak);
    assert_eq!(
        keys().verify(&token, NOW + 60),
        Err(JoinTokenError::Expired)
    );
}

#[test]
fn the_command_line_mints_a_listen_only_token() {
    let out = Command::new("node")
        .arg(example())
        .args(["lobby", "u-1", "Ada", "--listen-only", "--ttl", "120"])
        .env("TINCAN_API_KEY_ID", KEY_ID)
        .env("TINCAN_API_KEY_SECRET", SECRET)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    // Minted against the wall clock: verify just inside its life.
    let claims = token.trim().split('.').nth(1).unwrap().to_owned();
    let iat = claims_iat(&claims);
    let who = keys().verify(token.trim(), iat).unwrap();
    assert_eq!(who.room, "lobby");
    assert!(!who.grants.speak);
}

#[test]
fn node_refuses_a_lifetime_over_the_cap() {
    let script = format!(
        "import {{ mintJoinToken }} from {path:?};\n\
         try {{ mintJoinToken({{ keyId: 'k', secret: 's', room: 'r', sub: 'u', name: 'n', speak: true, ttlSeconds: 601 }}); process.exit(1); }}\n\
         catch {{ process.exit(0); }}",
        path = example().canonicalize().unwrap().to_str().unwrap(),
    );
    let status = Command::new("node")
        .args(["--input-type=module", "-e", &script])
        .status()
        .expect("node runs");
    assert!(status.success());
}

fn claims_iat(payload_b64: &str) -> u64 {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload_b64)
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    value["iat"].as_u64().unwrap()
}
