//! The core decides what a frame over its socket's budget gets: the store
//! keeps the budget, [`MessageRate::take`] judges each frame from it and
//! `now`, and [`Core::admit`] turns the verdict into effects that every
//! gateway applies alike: nothing, a `rate-limited` error with its
//! retry-after, or a close (1008).

use tincan_signaling::{
    CloseReason, Core, Effect, ErrorCode, Limits, MessageRate, Outgoing, RateState, RateVerdict,
    ServerMessage,
};

const T0: u64 = 1_900_000_000_000;

#[test]
fn the_41st_message_of_a_burst_is_rate_limited_and_the_81st_closes_the_socket() {
    let core = Core::new(Limits::default());
    let rate = core.limits().msg_rate;
    assert_eq!(
        rate,
        MessageRate {
            per_sec: 20,
            burst: 40
        }
    );
    let mut state = RateState::default();
    let mut effects = Vec::new();
    for _ in 0..81 {
        let (verdict, next) = rate.take(state, T0);
        state = next;
        effects.push(core.admit("c1", verdict));
    }
    assert!(effects[..40].iter().all(Vec::is_empty), "the burst passes");
    match effects[40].as_slice() {
        [Effect::Push(Outgoing::Send {
            to,
            msg:
                ServerMessage::Error {
                    code: ErrorCode::RateLimited,
                    retry_after_ms: Some(ms),
                    ..
                },
        })] => {
            assert_eq!(to, "c1");
            assert_eq!(*ms, 50);
        }
        other => panic!("the 41st: {other:?}"),
    }
    let wire = match &effects[40][0] {
        Effect::Push(Outgoing::Send { msg, .. }) => msg.to_json(),
        _ => unreachable!(),
    };
    let wire: serde_json::Value = serde_json::from_str(&wire).unwrap();
    assert_eq!(wire["code"], "rate-limited");
    assert_eq!(wire["retryAfterMs"], 50);
    assert_eq!(
        effects[80],
        [Effect::Close {
            connection_id: "c1".into(),
            reason: CloseReason::RateExceeded
        }]
    );
    assert_eq!(CloseReason::RateExceeded.code(), 1008);
}

#[test]
fn a_passing_verdict_adds_nothing() {
    let core = Core::default();
    assert!(core.admit("c1", RateVerdict::Pass).is_empty());
}
