//! Strategies for the protocol's values, shared by the property tests of
//! this crate. Each test file uses some of them.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value};
use tincan_signaling::{ClientMessage, ErrorCode, MediaPath, RoomId, MAX_ID_LEN};

/// A fixed, small budget: `cases` per property, no failure files written
/// (a failing case is printed with its seed; nothing lands in the tree).
pub(crate) fn budget(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Every code a client may see, for the "stable code" checks.
pub(crate) const ALL_CODES: [ErrorCode; 13] = [
    ErrorCode::BadRequest,
    ErrorCode::UnknownAction,
    ErrorCode::TooLarge,
    ErrorCode::NotInRoom,
    ErrorCode::RoomFull,
    ErrorCode::StoreUnavailable,
    ErrorCode::ResumeFailed,
    ErrorCode::RateLimited,
    ErrorCode::NotSfu,
    ErrorCode::SfuUnavailable,
    ErrorCode::JoinTokenRoom,
    ErrorCode::ListenOnly,
    ErrorCode::Internal,
];

/// The protocol's field names, so generated objects often hit real fields.
const KEYS: [&str; 9] = [
    "action", "room", "to", "data", "muted", "path", "peerId", "token", "type",
];

/// The protocol's actions and a few near misses.
const ACTIONS: [&str; 12] = [
    "join", "leave", "signal", "mute", "ping", "media", "resume", "JOIN", "join ", "", "pong",
    "$default",
];

/// Short strings of any characters, control and non-ASCII included.
pub(crate) fn any_text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        proptest::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter),
        proptest::string::string_regex(&format!("[a-zA-Z0-9_.:-]{{0,{max}}}"))
            .expect("a valid regex"),
    ]
    .boxed()
}

/// A key of a generated object: a protocol field or anything.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(&KEYS[..]).prop_map(str::to_owned),
        1 => any_text(8),
    ]
    .boxed()
}

/// A number that survives a JSON round trip exactly (serde_json without
/// `float_roundtrip` may be one ulp off on arbitrary doubles, and NaN and
/// infinities are not JSON).
fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 4.0)),
    ]
    .boxed()
}

/// Any JSON value: at most 4 levels deep, about 64 nodes, 8 per collection.
pub(crate) fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        any_text(24).prop_map(Value::String),
        proptest::sample::select(&ACTIONS[..]).prop_map(|a| Value::String(a.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..8)
                .prop_map(|fields| Value::Object(Map::from_iter(fields))),
        ]
    })
    .boxed()
}

/// A room id the protocol accepts.
pub(crate) fn room_id() -> BoxedStrategy<String> {
    proptest::string::string_regex("[A-Za-z0-9_-]{1,64}")
        .expect("a valid regex")
        .boxed()
}

/// A non-empty string of at most `max_bytes` bytes, of any characters.
pub(crate) fn bounded_text(max_bytes: usize) -> BoxedStrategy<String> {
    // A char is at most 4 bytes.
    proptest::collection::vec(any::<char>(), 1..=max_bytes / 4)
        .prop_map(String::from_iter)
        .boxed()
}

/// Any message a client may validly send.
pub(crate) fn valid_message() -> BoxedStrategy<ClientMessage> {
    prop_oneof![
        room_id().prop_map(|room| ClientMessage::Join {
            room: RoomId::new(room).expect("the regex makes room ids"),
        }),
        Just(ClientMessage::Leave),
        (bounded_text(64), any_json()).prop_map(|(to, data)| ClientMessage::Signal { to, data }),
        any::<bool>().prop_map(|muted| ClientMessage::Mute { muted }),
        Just(ClientMessage::Ping),
        prop_oneof![Just(MediaPath::Direct), Just(MediaPath::Relayed)]
            .prop_map(|path| ClientMessage::Media { path }),
        (bounded_text(MAX_ID_LEN), bounded_text(MAX_ID_LEN * 2))
            .prop_map(|(peer_id, token)| ClientMessage::Resume { peer_id, token }),
    ]
    .boxed()
}

/// One change to a JSON object, as a hostile or buggy client makes it.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// Drop the field with this index (modulo the field count).
    Remove(usize),
    /// Replace the value of the field with this index.
    Replace(usize, Value),
    /// Add or overwrite a field.
    Insert(String, Value),
    /// Wrap the whole object into something else.
    Wrap(Value),
}

pub(crate) fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), any_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        (key(), any_json()).prop_map(|(k, v)| Mutation::Insert(k, v)),
        any_json().prop_map(Mutation::Wrap),
    ]
    .boxed()
}

/// Applies `mutation` to `value`.
pub(crate) fn mutate(value: &mut Value, mutation: Mutation) {
    if let Mutation::Wrap(outer) = mutation {
        *value = match outer {
            Value::Array(mut items) => {
                items.push(value.take());
                Value::Array(items)
            }
            Value::Object(mut fields) => {
                fields.insert("inner".into(), value.take());
                Value::Object(fields)
            }
            other => other,
        };
        return;
    }
    let Some(fields) = value.as_object_mut() else {
        return;
    };
    let nth_key = |fields: &Map<String, Value>, i: usize| {
        (!fields.is_empty()).then(|| fields.keys().nth(i % fields.len()).cloned())
    };
    match mutation {
        Mutation::Remove(i) => {
            if let Some(Some(key)) = nth_key(fields, i) {
                fields.remove(&key);
            }
        }
        Mutation::Replace(i, v) => {
            if let Some(Some(key)) = nth_key(fields, i) {
                fields.insert(key, v);
            }
        }
        Mutation::Insert(k, v) => {
            fields.insert(k, v);
        }
        Mutation::Wrap(_) => {}
    }
}

/// One change to a frame's text, character-wise (frames are UTF-8 text).
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    Truncate(usize),
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    Duplicate(usize, usize),
}

pub(crate) fn edit() -> BoxedStrategy<Edit> {
    let structural = proptest::sample::select(&['{', '}', '[', ']', '"', ',', ':', '\\', ' '][..]);
    let ch = prop_oneof![structural, any::<char>()];
    prop_oneof![
        any::<usize>().prop_map(Edit::Truncate),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (any::<usize>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
    .boxed()
}

/// Applies `edit` to `text`.
pub(crate) fn apply_edit(text: &str, edit: Edit) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match edit {
        Edit::Truncate(i) => chars.truncate(at(i, chars.len() + 1)),
        Edit::Delete(i) => {
            if !chars.is_empty() {
                chars.remove(at(i, chars.len()));
            }
        }
        Edit::Insert(i, c) => chars.insert(at(i, chars.len() + 1), c),
        Edit::Replace(i, c) => {
            if !chars.is_empty() {
                let i = at(i, chars.len());
                chars[i] = c;
            }
        }
        Edit::Duplicate(i, n) => {
            let start = at(i, chars.len() + 1);
            let end = (start + n).min(chars.len());
            let copy: Vec<char> = chars[start..end].to_vec();
            chars.splice(start..start, copy);
        }
    }
    chars.into_iter().collect()
}
