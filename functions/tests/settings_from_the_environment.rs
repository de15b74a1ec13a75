//! The Lambda binaries read their settings from the environment alone:
//! `--help` lists every variable (and no secret's value), a bad value stops
//! the binary before it does anything else, with an error naming the
//! variable and a non-zero exit, and no other argument is taken.

use std::process::{Command, Output};

const SECRET: &str = "settings-test-secret-settings-test-secret";

/// Runs `bin` with only `env` in its environment.
fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_variable_and_no_secret() {
    let out = run(
        env!("CARGO_BIN_EXE_ws-connect"),
        &["--help"],
        &[("TINCAN_JWT_SECRET", SECRET), ("TINCAN_API_KEYS", SECRET)],
    );
    assert!(out.status.success(), "{out:?}");
    let help = text(&out.stdout);
    for var in [
        "TINCAN_JWT_SECRET",
        "TINCAN_API_KEYS",
        "TINCAN_CONNECTIONS_TABLE",
        "TINCAN_MAX_MESSAGE",
        "DYNAMODB_ENDPOINT",
        "RUST_LOG",
    ] {
        assert!(help.contains(var), "{var} missing from:\n{help}");
    }
    assert!(help.contains("[default: tincan-connections]"), "{help}");
    assert!(!help.contains(SECRET), "a secret in --help:\n{help}");
}

#[test]
fn a_bad_value_stops_the_function_naming_its_variable() {
    let out = run(
        env!("CARGO_BIN_EXE_ws-default"),
        &[],
        &[
            ("TINCAN_JWT_SECRET", SECRET),
            ("TINCAN_MAX_MESSAGE", "lots"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("'lots'") && err.contains("TINCAN_MAX_MESSAGE"),
        "{err}"
    );

    let out = run(
        env!("CARGO_BIN_EXE_http-api"),
        &[],
        &[("TINCAN_TURN_SECRET", SECRET)],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("TINCAN_JWT_SECRET"), "{err}");
    assert!(!err.contains(SECRET), "a secret in an error: {err}");
}

#[test]
fn a_short_secret_is_refused_by_name_alone() {
    let out = run(
        env!("CARGO_BIN_EXE_ws-sweep"),
        &[],
        &[("TINCAN_JWT_SECRET", "short-jwt-secret")],
    );
    assert!(!out.status.success(), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("TINCAN_JWT_SECRET"), "{err}");
    assert!(
        !err.contains("short-jwt-secret"),
        "a secret in an error: {err}"
    );
}

#[test]
fn no_argument_but_help_is_taken() {
    let out = run(
        env!("CARGO_BIN_EXE_ws-disconnect"),
        &["--max-message=10"],
        &[("TINCAN_JWT_SECRET", SECRET)],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("from the environment"), "{err}");
}
