//! The front door's decisions, and bounded random ("fuzz-style") checks of
//! everything it parses itself: STUN headers, attributes, nonces and
//! REST-API usernames.

use rand::{Rng, SeedableRng};
use stun::agent::TransactionId;
use stun::message::Setter;
use stun::textattrs::TextAttribute;

use super::*;

const SECRET: &str = "a fuzz secret of thirty-two bytes!";
const CRATE_NONCE: &str = "crate-nonce";

fn client() -> SocketAddr {
    "198.51.100.7:40000".parse().expect("address")
}

fn policy() -> Policy {
    Policy {
        secret: TurnSecret::new(SECRET),
        realm: "tincan".into(),
        max_per_user: 2,
        max_per_ip: 3,
        max_lifetime_secs: 3600,
        peers: PeerFilter::default(),
        nonce_ttl_secs: 600,
    }
}

fn admission_with(policy: Policy) -> Admission {
    let adm = Admission::new(policy, Arc::new(Metrics::default()));
    adm.learn_crate_nonce(CRATE_NONCE.into());
    adm
}

fn admission() -> Admission {
    admission_with(policy())
}

/// A request of `method` with credentials, `nonce` and `extra` attributes.
fn request(
    method: stun::message::Method,
    username: &str,
    password: &str,
    nonce: &str,
    extra: Vec<Box<dyn Setter>>,
) -> Vec<u8> {
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(TransactionId::new()),
        Box::new(MessageType::new(method, CLASS_REQUEST)),
    ];
    setters.extend(extra);
    setters.extend::<[Box<dyn Setter>; 4]>([
        Box::new(TextAttribute::new(ATTR_USERNAME, username.into())),
        Box::new(TextAttribute::new(ATTR_REALM, "tincan".into())),
        Box::new(TextAttribute::new(ATTR_NONCE, nonce.into())),
        Box::new(MessageIntegrity::new_long_term_integrity(
            username.into(),
            "tincan".into(),
            password.into(),
        )),
    ]);
    let mut m = Message::new();
    m.build(&setters).expect("valid message");
    m.raw
}

fn allocate(adm: &Admission, username: &str, password: &str, now: u64) -> Vec<u8> {
    let nonce = adm.nonces.issue(client(), now);
    request(METHOD_ALLOCATE, username, password, &nonce, Vec::new())
}

fn decode(raw: &[u8]) -> Message {
    let mut m = Message::new();
    m.raw = raw.to_vec();
    m.decode().expect("decodes");
    m
}

fn code_of(verdict: &Verdict) -> Option<u16> {
    let Verdict::Reply(raw) = verdict else {
        return None;
    };
    let m = decode(raw);
    let mut err = ErrorCodeAttribute::default();
    err.get_from(&m).ok()?;
    Some(err.code.0)
}

fn owner_of(verdict: &Verdict) -> Option<&str> {
    match verdict {
        Verdict::Forward {
            owner: Some(owner), ..
        } => Some(owner.user.as_str()),
        _ => None,
    }
}

#[test]
fn good_bad_and_expired_credentials() {
    let adm = admission();
    let cred = TurnSecret::new(SECRET).mint("u1", 1000, 60);
    let verdict = adm.inspect(
        &allocate(&adm, &cred.username, &cred.password, 1000),
        client(),
        1000,
    );
    assert_eq!(owner_of(&verdict), Some("u1"));
    assert_eq!(
        code_of(&adm.inspect(&allocate(&adm, &cred.username, "x", 1000), client(), 1000)),
        Some(401)
    );
    assert_eq!(
        code_of(&adm.inspect(
            &allocate(&adm, &cred.username, &cred.password, 1060),
            client(),
            1060
        )),
        Some(401)
    );
    let snap = adm.metrics.snapshot();
    assert_eq!(
        (snap.auth_failures_bad_integrity, snap.auth_failures_expired),
        (1, 1)
    );
    adm.set_draining();
    assert_eq!(
        code_of(&adm.inspect(
            &allocate(&adm, &cred.username, &cred.password, 1000),
            client(),
            1000
        )),
        Some(403)
    );
}

#[test]
fn unauthenticated_requests_get_a_stateless_nonce_and_store_nothing() {
    let adm = admission();
    let mut bare = Message::new();
    bare.build(&[
        Box::new(TransactionId::new()),
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
    ])
    .expect("valid message");
    let verdict = adm.inspect(&bare.raw, client(), 1000);
    assert_eq!(code_of(&verdict), Some(401));
    let Verdict::Reply(raw) = verdict else {
        unreachable!()
    };
    let reply = decode(&raw);
    let nonce = TextAttribute::get_from_as(&reply, ATTR_NONCE).expect("a nonce");
    let realm = TextAttribute::get_from_as(&reply, ATTR_REALM).expect("a realm");
    assert_eq!(realm.text, "tincan");
    assert!(adm.nonces.check(&nonce.text, client(), 1000));
    assert_eq!(adm.metrics.snapshot().nonce_challenges, 1);
    assert_eq!(adm.crate_nonce().as_deref(), Some(CRATE_NONCE));

    // That nonce works; a stale, foreign or made-up one gets 438 and a new
    // one.
    let cred = TurnSecret::new(SECRET).mint("u1", 1000, 6000);
    let with = |nonce: &str| {
        request(
            METHOD_ALLOCATE,
            &cred.username,
            &cred.password,
            nonce,
            Vec::new(),
        )
    };
    assert_eq!(
        owner_of(&adm.inspect(&with(&nonce.text), client(), 1000)),
        Some("u1")
    );
    assert_eq!(
        code_of(&adm.inspect(&with(&nonce.text), client(), 1600)),
        Some(438)
    );
    let elsewhere: SocketAddr = "198.51.100.8:40000".parse().expect("address");
    assert_eq!(
        code_of(&adm.inspect(&with(&nonce.text), elsewhere, 1000)),
        Some(438)
    );
    assert_eq!(
        code_of(&adm.inspect(&with("made-up"), client(), 1000)),
        Some(438)
    );
    // Credentials without a nonce: 400.
    let mut no_nonce = Message::new();
    no_nonce
        .build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_REFRESH, CLASS_REQUEST)),
            Box::new(TextAttribute::new(ATTR_USERNAME, cred.username.clone())),
            Box::new(MessageIntegrity::new_short_term_integrity("x".into())),
        ])
        .expect("valid message");
    assert_eq!(
        code_of(&adm.inspect(&no_nonce.raw, client(), 1000)),
        Some(400)
    );
}

#[test]
fn forwarded_requests_carry_the_crate_nonce_and_verify_under_the_key() {
    let adm = admission();
    let cred = TurnSecret::new(SECRET).mint("u1", 1000, 6000);
    let nonce = adm.nonces.issue(client(), 1000);
    let req = request(
        METHOD_REFRESH,
        &cred.username,
        &cred.password,
        &nonce,
        vec![Box::new(turn::proto::lifetime::Lifetime(
            std::time::Duration::from_secs(7200),
        ))],
    );
    let Verdict::Forward {
        packet,
        username,
        owner,
    } = adm.inspect(&req, client(), 1000)
    else {
        panic!("forwarded");
    };
    assert_eq!((username.as_str(), owner), (cred.username.as_str(), None));
    let mut m = decode(&packet);
    let forwarded_nonce = TextAttribute::get_from_as(&m, ATTR_NONCE).expect("nonce");
    assert_eq!(forwarded_nonce.text, CRATE_NONCE);
    let lifetime = m.get(ATTR_LIFETIME).expect("lifetime");
    assert_eq!(lifetime, 3599u32.to_be_bytes());
    MessageIntegrity(adm.key_unchecked(&cred.username, "tincan"))
        .check(&mut m)
        .expect("re-signed under the user's key");

    // Before the crate's nonce is known, nothing is forwarded.
    let fresh = Admission::new(policy(), Arc::new(Metrics::default()));
    let req = request(
        METHOD_REFRESH,
        &cred.username,
        &cred.password,
        &fresh.nonces.issue(client(), 1000),
        Vec::new(),
    );
    assert_eq!(fresh.inspect(&req, client(), 1000), Verdict::Drop);
}

fn peer(ip: &str) -> Box<dyn Setter> {
    Box::new(PeerAddress {
        ip: ip.parse().expect("ip"),
        port: 9,
    })
}

#[test]
fn permissions_to_denied_peers_get_403() {
    let adm = admission();
    let cred = TurnSecret::new(SECRET).mint("u1", 1000, 6000);
    let nonce = adm.nonces.issue(client(), 1000);
    let ask = |method, peers: Vec<Box<dyn Setter>>| {
        adm.inspect(
            &request(method, &cred.username, &cred.password, &nonce, peers),
            client(),
            1000,
        )
    };
    for denied in [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "192.168.1.1",
        "::1",
    ] {
        assert_eq!(
            code_of(&ask(METHOD_CREATE_PERMISSION, vec![peer(denied)])),
            Some(403),
            "{denied}"
        );
        assert_eq!(
            code_of(&ask(METHOD_CHANNEL_BIND, vec![peer(denied)])),
            Some(403),
            "{denied}"
        );
    }
    // One denied address among several denies the request.
    assert_eq!(
        code_of(&ask(
            METHOD_CREATE_PERMISSION,
            vec![peer("203.0.113.5"), peer("10.0.0.1")]
        )),
        Some(403)
    );
    assert!(matches!(
        ask(METHOD_CREATE_PERMISSION, vec![peer("203.0.113.5")]),
        Verdict::Forward { .. }
    ));
    assert_eq!(adm.metrics.snapshot().peer_denials, 11);

    // Send indications to a denied peer are dropped, others pass.
    let send = |ip: &str| {
        let mut m = Message::new();
        m.build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            peer(ip),
        ])
        .expect("valid message");
        adm.inspect(&m.raw, client(), 1000)
    };
    assert_eq!(send("169.254.169.254"), Verdict::Drop);
    assert_eq!(send("203.0.113.5"), Verdict::Pass);
}

#[test]
fn quotas_per_user_and_per_address() {
    let adm = admission();
    let secret = TurnSecret::new(SECRET);
    let alice = secret.mint("alice", 1000, 6000);
    let bob = secret.mint("bob", 1000, 6000);
    let try_alloc = |cred: &tincan_turn_credentials::TurnCredential| {
        adm.inspect(
            &allocate(&adm, &cred.username, &cred.password, 1000),
            client(),
            1000,
        )
    };
    let hold = |verdict: Verdict| match verdict {
        Verdict::Forward { owner, .. } => adm.acquire(owner.as_ref()),
        other => panic!("not forwarded: {other:?}"),
    };
    hold(try_alloc(&alice));
    hold(try_alloc(&alice));
    assert_eq!(code_of(&try_alloc(&alice)), Some(486), "per user");
    hold(try_alloc(&bob));
    // Three from this address now: the next user from it is refused too.
    let carol = secret.mint("carol", 1000, 6000);
    assert_eq!(code_of(&try_alloc(&carol)), Some(486), "per address");
    let snap = adm.metrics.snapshot();
    assert_eq!((snap.quota_rejections, snap.ip_quota_rejections), (1, 1));
    adm.release(Some(&Owner {
        user: "bob".into(),
        ip: client().ip(),
    }));
    assert_eq!(owner_of(&try_alloc(&carol)), Some("carol"));
}

#[test]
fn random_bytes_never_panic_nor_allocate() {
    let adm = admission();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for _ in 0..20_000 {
        let len = rng.random_range(0..200);
        let mut p: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if p.len() >= 8 && rng.random_bool(0.5) {
            // Look like STUN, to get past the first checks.
            p[0] &= 0x3f;
            p[4..8].copy_from_slice(&MAGIC_COOKIE);
        }
        let verdict = adm.inspect(&p, client(), 1);
        assert!(owner_of(&verdict).is_none(), "{p:?}");
    }
}

#[test]
fn mutated_allocates_never_panic_and_only_exact_ones_pass() {
    let adm = admission();
    let cred = TurnSecret::new(SECRET).mint("victim", 1000, 60);
    let valid = allocate(&adm, &cred.username, &cred.password, 1000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    for _ in 0..20_000 {
        let mut p = valid.clone();
        match rng.random_range(0..3) {
            0 => {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..p.len());
                    p[at] = rng.random();
                }
            }
            1 => p.truncate(rng.random_range(0..p.len())),
            _ => {
                let at = rng.random_range(20..p.len());
                p.insert(at, rng.random());
            }
        }
        if let Some(user) = owner_of(&adm.inspect(&p, client(), 1000)) {
            // Only a mutation outside the integrity-protected part (the
            // transaction id is covered too) may still pass.
            assert_eq!(user, "victim");
        }
    }
}

#[test]
fn random_usernames_never_panic() {
    let adm = admission();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let alphabet: Vec<char> = "0123456789:abc\u{0}\u{e9}\u{1F600}-".chars().collect();
    for _ in 0..20_000 {
        let len = rng.random_range(0..40);
        let name: String = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        match adm.key_for(&name, "tincan", 5) {
            Ok(key) => {
                assert_eq!(key.len(), 16);
                let (expiry, _) = parse_username(&name).expect("accepted names parse");
                assert!(expiry > 5);
            }
            Err(AuthFailure::Malformed) => assert!(parse_username(&name).is_err()),
            Err(_) => {}
        }
    }
}

#[test]
fn random_nonces_never_panic_nor_pass() {
    let adm = admission();
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let good = adm.nonces.issue(client(), 1000);
    for _ in 0..20_000 {
        let mut n: Vec<u8> = good.clone().into_bytes();
        let at = rng.random_range(0..n.len());
        n[at] = rng.random_range(0x20..0x7f);
        let text = String::from_utf8_lossy(&n);
        if text != good {
            assert!(!adm.nonces.check(&text, client(), 1000), "{text}");
        }
    }
}
