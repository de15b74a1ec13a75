//! Whatever text a client sends, `Core::parse` answers without panicking:
//! a message, or a refusal with a stable code that says which rule it broke.
//! Frames over the limit are `too-large` before any parsing; valid frames of
//! every action round-trip; mutated valid frames are classified exactly as
//! the protocol says (not an object or no string `action`: `bad-request`;
//! an action we do not know: `unknown-action`).

mod strategy;

use proptest::prelude::*;
use serde_json::Value;
use strategy::{any_json, any_text, apply_edit, budget, edit, mutate, mutation, valid_message};
use tincan_signaling::{ClientMessage, Core, ErrorCode, Limits, ProtocolError, ServerMessage};

const ACTIONS: [&str; 7] = ["join", "leave", "signal", "mute", "ping", "media", "resume"];

/// What the protocol says about a frame, from its JSON alone.
#[derive(Debug, PartialEq)]
enum Expected {
    /// `bad-request`, whatever the fields.
    BadRequest,
    /// `unknown-action`.
    UnknownAction,
    /// A known action: a message, or `bad-request` for its fields.
    KnownAction,
}

fn expected(value: &Value) -> Expected {
    match value.as_object().map(|o| o.get("action")) {
        Some(Some(Value::String(action))) if ACTIONS.contains(&action.as_str()) => {
            Expected::KnownAction
        }
        Some(Some(Value::String(_))) => Expected::UnknownAction,
        _ => Expected::BadRequest,
    }
}

/// A refusal a client can act on: a parse-time code, a message, and an
/// `error` frame that carries both. The message echoes at most a bounded
/// multiple of the frame (serde's errors quote offending strings, escaped).
fn assert_stable_refusal(text: &str, err: &ProtocolError) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(
            err.code,
            ErrorCode::BadRequest | ErrorCode::UnknownAction | ErrorCode::TooLarge
        ),
        "parse refused with {:?}",
        err.code
    );
    prop_assert!(!err.message.is_empty());
    prop_assert!(
        err.message.len() <= 6 * text.len() + 256,
        "a {}-byte frame got a {}-byte message",
        text.len(),
        err.message.len()
    );
    let frame: Value = serde_json::from_str(&err.to_message().to_json())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&frame["type"], "error");
    prop_assert_eq!(&frame["code"], err.code.as_str());
    Ok(())
}

/// Parses `text` and checks the answer against what its JSON says.
fn check(core: &Core, text: &str) -> Result<(), TestCaseError> {
    let parsed = core.parse(text);
    let json = serde_json::from_str::<Value>(text).ok();
    match (&parsed, json.as_ref().map(expected)) {
        (Err(err), _) => {
            assert_stable_refusal(text, err)?;
            match json.as_ref().map(expected) {
                None => prop_assert_eq!(err.code, ErrorCode::BadRequest, "not JSON"),
                Some(Expected::KnownAction) => prop_assert_eq!(err.code, ErrorCode::BadRequest),
                Some(Expected::UnknownAction) => {
                    prop_assert_eq!(err.code, ErrorCode::UnknownAction)
                }
                Some(Expected::BadRequest) => prop_assert_eq!(err.code, ErrorCode::BadRequest),
            }
        }
        (Ok(msg), Some(Expected::KnownAction)) => {
            // What we accepted means the same when sent again.
            let again =
                serde_json::to_string(msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&core.parse(&again), &parsed);
        }
        (Ok(msg), other) => prop_assert!(false, "accepted {msg:?} from {other:?}: {text:?}"),
    }
    Ok(())
}

fn framed(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

proptest! {
    #![proptest_config(budget(1024))]

    #[test]
    fn any_string_gets_a_message_or_a_stable_code(text in any_text(256)) {
        check(&Core::default(), &text)?;
    }

    #[test]
    fn json_shaped_text_gets_a_message_or_a_stable_code(
        text in r#"[{}\[\]":,\\ a-z0-9.-]{0,96}"#,
    ) {
        check(&Core::default(), &text)?;
    }
}

proptest! {
    #![proptest_config(budget(512))]

    #[test]
    fn any_json_value_gets_the_code_its_shape_calls_for(value in any_json()) {
        check(&Core::default(), &framed(&value))?;
    }

    #[test]
    fn valid_frames_of_every_action_round_trip(msg in valid_message()) {
        let text = serde_json::to_string(&msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Core::default().parse(&text), Ok(msg));
    }

    #[test]
    fn mutated_valid_frames_get_the_code_their_shape_calls_for(
        msg in valid_message(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut value = serde_json::to_value(&msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for m in mutations {
            mutate(&mut value, m);
        }
        check(&Core::default(), &framed(&value))?;
    }

    #[test]
    fn edited_valid_frames_get_a_message_or_a_stable_code(
        msg in valid_message(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let mut text = serde_json::to_string(&msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for e in edits {
            text = apply_edit(&text, e);
        }
        check(&Core::default(), &text)?;
    }

    #[test]
    fn frames_over_the_limit_are_too_large_and_at_the_limit_are_read(
        msg in valid_message(),
        limit in 16usize..4096,
        over in 1usize..64,
    ) {
        let core = Core::new(Limits { max_message_bytes: limit, ..Limits::default() });
        let text = serde_json::to_string(&msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Whitespace after the object keeps it the same message.
        let pad = |len: usize| format!("{text}{}", " ".repeat(len.saturating_sub(text.len())));
        let too_big = pad(limit.max(text.len()) + over);
        let err = core.parse(&too_big).expect_err("over the limit");
        prop_assert_eq!(err.code, ErrorCode::TooLarge);
        assert_stable_refusal(&too_big, &err)?;
        if text.len() <= limit {
            prop_assert_eq!(core.parse(&pad(limit)), Ok(msg));
        }
    }
}

proptest! {
    #![proptest_config(budget(64))]

    /// The default 16 KiB cap: the most `parse` ever reads, whatever the frame.
    #[test]
    fn the_default_cap_is_16_kib(msg in valid_message(), over in 1usize..4096) {
        let core = Core::default();
        prop_assert_eq!(core.limits().max_message_bytes, 16 * 1024);
        let text = serde_json::to_string(&msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assume!(text.len() <= 16 * 1024);
        let at_cap = format!("{text}{}", " ".repeat(16 * 1024 - text.len()));
        prop_assert_eq!(core.parse(&at_cap), Ok(msg));
        let over_cap = format!("{at_cap}{}", " ".repeat(over));
        prop_assert_eq!(core.parse(&over_cap).map_err(|e| e.code), Err(ErrorCode::TooLarge));
    }

    /// A frame at the cap that is one long string gets an answer whose size
    /// is bounded by the frame's, whatever it quotes back.
    #[test]
    fn refusals_of_frames_at_the_cap_stay_bounded(
        filler in proptest::sample::select(vec!['a', '\u{85}', '\u{200b}', '\u{7f}', 'é']),
        field in proptest::sample::select(vec!["muted", "path", "room", "action"]),
    ) {
        let core = Core::default();
        let head = format!(r#"{{"action":"mute","{field}":""#);
        let mut body = String::new();
        while head.len() + body.len() + filler.len_utf8() + 2 <= 16 * 1024 {
            body.push(filler);
        }
        let text = format!("{head}{body}\"}}");
        prop_assert!(text.len() <= 16 * 1024);
        match core.parse(&text) {
            Ok(ClientMessage::Mute { .. }) => {}
            Ok(other) => prop_assert!(false, "accepted {other:?}"),
            Err(err) => assert_stable_refusal(&text, &err)?,
        }
    }
}

proptest! {
    #![proptest_config(budget(64))]

    /// Nesting as deep as the cap allows is refused by serde_json's
    /// recursion limit, never by overflowing the stack (which would abort
    /// the whole Lambda or gateway, not just this frame).
    #[test]
    fn deeply_nested_frames_are_answered_without_overflow(
        depth in 1usize..8000,
        open in proptest::sample::select(vec![("[", "]"), ("{\"a\":", "}")]),
        action in proptest::sample::select(vec!["signal", "join", "dance"]),
    ) {
        let (open, close) = open;
        let data = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let text = format!(r#"{{"action":"{action}","to":"p","data":{data}}}"#);
        prop_assume!(text.len() <= 16 * 1024);
        check(&Core::default(), &text)?;
        if depth > 200 {
            prop_assert_eq!(Core::default().parse(&text).map_err(|e| e.code), Err(ErrorCode::BadRequest));
        }
    }
}

/// `ServerMessage::Error` is what every refusal becomes; it names the code.
#[test]
fn every_code_has_a_kebab_wire_form() {
    for code in strategy::ALL_CODES {
        let wire = code.as_str();
        assert!(wire.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
        let frame = ServerMessage::Error {
            code,
            message: String::new(),
            retry_after_ms: None,
        }
        .to_json();
        let back: ServerMessage = serde_json::from_str(&frame).unwrap();
        assert_eq!(
            back,
            ServerMessage::Error {
                code,
                message: String::new(),
                retry_after_ms: None,
            }
        );
    }
}

/// Found by the property above: serde's refusal quoted the offending string
/// whole, with Rust escapes, so a 16 KiB frame of U+0085 in `muted` got a
/// 57 KB `error` frame (3.5x), larger than API Gateway's 32 KB frame. Now a
/// refusal quotes a short excerpt.
#[test]
fn refusals_quote_at_most_a_short_excerpt() {
    let text = format!(r#"{{"action":"mute","muted":"{}"}}"#, "\u{85}".repeat(8000));
    let err = Core::default().parse(&text).unwrap_err();
    assert!(err.to_message().to_json().len() <= 1024);
}

/// A number too long for u64 means the same after a round trip (serde_json
/// parses it to the nearest f64 only with `float_roundtrip`; without it,
/// proptest once found one that came back 1 ulp off).
#[test]
fn long_numbers_in_relayed_data_survive_a_round_trip() {
    let core = Core::default();
    for digits in [
        "10032424648936379400100324246489363794",
        "1003242464893637940000000000",
        "10010032424648936379400",
        "0.10032424648936379400100324246489363794",
    ] {
        let text = format!(r#"{{"action":"signal","to":"x","data":{{"n":{digits}}}}}"#);
        let parsed = core.parse(&text).expect("a signal");
        let again = serde_json::to_string(&parsed).unwrap();
        assert_eq!(core.parse(&again), Ok(parsed), "{digits}");
    }
}
