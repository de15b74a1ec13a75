//! The local gateway builds the JSON event a Lambda receives
//! (`WsEvent::to_apigw_json`). Whatever the connection's query string, body,
//! route key and context extras hold, the event decodes as the runtime's
//! `ApiGatewayWebsocketProxyRequest` with those values in place, as API
//! Gateway would send them; so a real Lambda under `cargo lambda watch`
//! never fails to decode what the emulator forwards.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;
use tincan_local::WsEvent;

/// A fixed, small budget, and no failure files written.
fn budget(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn text(max: usize) -> BoxedStrategy<String> {
    proptest::collection::vec(any::<char>(), 0..=max)
        .prop_map(String::from_iter)
        .boxed()
}

/// What `HeaderValue::to_str` lets through: the gateway reads `Host` and
/// `User-Agent` that way.
fn header_text() -> BoxedStrategy<String> {
    "[ -~\t]{0,64}".boxed()
}

/// Milliseconds since the epoch, as far as API Gateway's `i64` fields go.
fn millis() -> impl Strategy<Value = u64> {
    0..=i64::MAX as u64
}

fn ws_event() -> impl Strategy<Value = WsEvent> {
    (
        "[A-Za-z0-9=_-]{1,24}",
        millis(),
        millis(),
        "[0-9a-f.:]{1,39}",
        header_text(),
        proptest::collection::vec(
            (prop_oneof![Just("token".to_owned()), text(12)], text(48)),
            0..5,
        ),
        "[a-z0-9_-]{0,16}",
        header_text(),
    )
        .prop_map(
            |(
                connection_id,
                connected_at_ms,
                now_ms,
                source_ip,
                user_agent,
                query,
                stage,
                domain_name,
            )| {
                WsEvent {
                    connection_id,
                    connected_at_ms,
                    now_ms,
                    source_ip,
                    user_agent,
                    query,
                    stage,
                    domain_name,
                }
            },
        )
}

fn route_key() -> BoxedStrategy<String> {
    prop_oneof![
        proptest::sample::select(vec![
            "$connect",
            "$disconnect",
            "$default",
            "join",
            "signal"
        ])
        .prop_map(str::to_owned),
        text(16),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(budget(512))]

    #[test]
    fn any_event_decodes_with_its_values_in_place(
        event in ws_event(),
        route in route_key(),
        body in proptest::option::of(text(256)),
        close in proptest::option::of((any::<u16>(), text(32))),
    ) {
        let mut extra: Vec<(&str, Value)> = Vec::new();
        if let Some(body) = &body {
            extra.push(("body", Value::from(body.as_str())));
        }
        if let Some((code, reason)) = &close {
            extra.push(("context.disconnectStatusCode", Value::from(*code)));
            extra.push(("context.disconnectReason", Value::from(reason.as_str())));
        }
        let json = event.to_apigw_json(&route, &extra);
        let decoded: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json.clone())
            .map_err(|e| TestCaseError::fail(format!("{e}: {json}")))?;
        let context = &decoded.request_context;
        prop_assert_eq!(context.route_key.as_deref(), Some(route.as_str()));
        prop_assert_eq!(context.connection_id.as_deref(), Some(event.connection_id.as_str()));
        prop_assert_eq!(context.stage.as_deref(), Some(event.stage.as_str()));
        prop_assert_eq!(context.domain_name.as_deref(), Some(event.domain_name.as_str()));
        prop_assert_eq!(context.request_time_epoch, event.now_ms as i64);
        prop_assert_eq!(context.connected_at, event.connected_at_ms as i64);
        prop_assert_eq!(decoded.body, body);
        let expected_type = match route.as_str() {
            "$connect" => "CONNECT",
            "$disconnect" => "DISCONNECT",
            _ => "MESSAGE",
        };
        prop_assert_eq!(context.event_type.as_deref(), Some(expected_type));
        if route == "$connect" {
            // One value per name, the last one given, as API Gateway's
            // `queryStringParameters` holds it.
            for (name, _) in &event.query {
                let last = event.query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
                prop_assert_eq!(decoded.query_string_parameters.first(name), last);
            }
        }
    }
}
