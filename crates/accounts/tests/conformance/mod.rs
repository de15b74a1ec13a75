//! The store conformance suite: every backend must pass all of it. Each case
//! makes its own ids, so the suite can run against a shared database.

use std::sync::Arc;

use tincan_accounts::{
    AuthSession, CallRecord, MediaPath, Preferences, StoreError, StoredUser, Stores, User,
};

fn id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn user(username: &str) -> StoredUser {
    StoredUser {
        user: User {
            id: id(),
            username: username.to_owned(),
            display_name: format!("{username} ✨"),
        },
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
        created_at_ms: 1_700_000_000_000,
    }
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", &id()[..12])
}

/// Runs every case against `stores`.
pub(crate) async fn run(stores: &Stores) {
    users_are_unique_ignoring_case(stores).await;
    duplicate_racers_leave_exactly_one_user(stores).await;
    sessions_expire_rotate_and_revoke(stores).await;
    racing_rotations_have_one_winner(stores).await;
    preferences_round_trip(stores).await;
    calls_start_end_and_list_newest_first(stores).await;
    open_calls_are_listed_and_closed(stores).await;
    passwords_change_by_compare_and_set(stores).await;
    user_sessions_are_revoked_together(stores).await;
    a_user_and_their_data_are_deleted(stores).await;
}

async fn passwords_change_by_compare_and_set(stores: &Stores) {
    let u = user(&unique_name("pw"));
    stores.users.create_user(&u).await.unwrap();
    let id = &u.user.id;
    assert!(!stores
        .users
        .set_password_hash(id, "not-the-hash", "h2")
        .await
        .unwrap());
    assert!(stores
        .users
        .set_password_hash(id, &u.password_hash, "h2")
        .await
        .unwrap());
    assert!(
        !stores
            .users
            .set_password_hash(id, &u.password_hash, "h3")
            .await
            .unwrap(),
        "stale expected hash"
    );
    let now = stores.users.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(now.password_hash, "h2");
    assert_eq!(now.user, u.user);
    let by_name = stores
        .users
        .user_by_username(&u.user.username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_name.password_hash, "h2");
    assert!(!stores
        .users
        .set_password_hash("no-such-user", "h2", "h3")
        .await
        .unwrap());
}

async fn user_sessions_are_revoked_together(stores: &Stores) {
    let s = stores.sessions.as_ref();
    let (uid, other) = (id(), id());
    let far = 4_102_444_800_000;
    let mine: Vec<_> = (0..3).map(|_| session(&uid, "h", far)).collect();
    let theirs = session(&other, "h", far);
    for sess in mine.iter().chain([&theirs]) {
        s.create_session(sess).await.unwrap();
    }
    let now = 10_000;
    let mut revoked = s
        .revoke_user_sessions(&uid, Some(&mine[0].id))
        .await
        .unwrap();
    revoked.sort();
    let mut want = vec![mine[1].id.clone(), mine[2].id.clone()];
    want.sort();
    assert_eq!(revoked, want);
    assert!(!s.session(&mine[0].id, now).await.unwrap().unwrap().revoked);
    assert!(s.session(&mine[1].id, now).await.unwrap().unwrap().revoked);
    assert!(s.session(&mine[2].id, now).await.unwrap().unwrap().revoked);
    assert!(!s.session(&theirs.id, now).await.unwrap().unwrap().revoked);
    assert_eq!(
        s.revoke_user_sessions(&uid, None).await.unwrap(),
        vec![mine[0].id.clone()]
    );
    assert!(s.session(&mine[0].id, now).await.unwrap().unwrap().revoked);
    assert!(s.revoke_user_sessions(&uid, None).await.unwrap().is_empty());
    assert!(!s.session(&theirs.id, now).await.unwrap().unwrap().revoked);
}

async fn a_user_and_their_data_are_deleted(stores: &Stores) {
    let name = unique_name("Del");
    let (gone, stays) = (user(&name), user(&unique_name("Keep")));
    for u in [&gone, &stays] {
        stores.users.create_user(u).await.unwrap();
        stores
            .preferences
            .put_preferences(&u.user.id, &Preferences::default())
            .await
            .unwrap();
    }
    let (open_peer, stays_peer) = (id(), id());
    let closed = call(&gone.user.id, "a", &id(), 1_000);
    let open = call(&gone.user.id, "b", &open_peer, 2_000);
    let theirs = call(&stays.user.id, "b", &stays_peer, 2_000);
    for r in [&closed, &open, &theirs] {
        stores.calls.start_call(r).await.unwrap();
    }
    assert!(stores
        .calls
        .end_call(&closed.peer_id, "a", 1_500, None)
        .await
        .unwrap());

    assert_eq!(
        stores
            .calls
            .delete_calls_for_user(&gone.user.id)
            .await
            .unwrap(),
        2
    );
    stores
        .preferences
        .delete_preferences(&gone.user.id)
        .await
        .unwrap();
    stores
        .preferences
        .delete_preferences(&gone.user.id)
        .await
        .unwrap();
    assert!(stores.users.delete_user(&gone.user.id).await.unwrap());
    assert!(!stores.users.delete_user(&gone.user.id).await.unwrap());

    assert_eq!(stores.users.user_by_id(&gone.user.id).await.unwrap(), None);
    assert_eq!(stores.users.user_by_username(&name).await.unwrap(), None);
    assert_eq!(
        stores.preferences.preferences(&gone.user.id).await.unwrap(),
        None
    );
    assert_eq!(
        stores
            .calls
            .calls_for_user(&gone.user.id, 10)
            .await
            .unwrap(),
        vec![]
    );
    assert!(
        !stores
            .calls
            .end_call(&open_peer, "b", 3_000, None)
            .await
            .unwrap(),
        "the open call went too"
    );
    // The other user keeps everything; the name can be taken again.
    assert_eq!(
        stores
            .calls
            .calls_for_user(&stays.user.id, 10)
            .await
            .unwrap(),
        vec![theirs]
    );
    assert!(stores
        .calls
        .end_call(&stays_peer, "b", 3_000, None)
        .await
        .unwrap());
    assert!(stores
        .preferences
        .preferences(&stays.user.id)
        .await
        .unwrap()
        .is_some());
    assert!(stores
        .users
        .user_by_id(&stays.user.id)
        .await
        .unwrap()
        .is_some());
    stores.users.create_user(&user(&name)).await.unwrap();
}

async fn users_are_unique_ignoring_case(stores: &Stores) {
    let name = unique_name("Ada");
    let ada = user(&name);
    stores.users.create_user(&ada).await.unwrap();
    let found = stores
        .users
        .user_by_username(&name.to_uppercase())
        .await
        .unwrap()
        .expect("found in any case");
    assert_eq!(found, ada);
    assert_eq!(
        stores.users.user_by_id(&ada.user.id).await.unwrap(),
        Some(ada.clone())
    );

    let imposter = user(&name.to_lowercase());
    let err = stores.users.create_user(&imposter).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate), "{err:?}");
    assert_eq!(
        stores.users.user_by_id(&imposter.user.id).await.unwrap(),
        None
    );
    assert_eq!(
        stores
            .users
            .user_by_username(&name)
            .await
            .unwrap()
            .map(|u| u.user.id),
        Some(ada.user.id)
    );
    assert_eq!(
        stores.users.user_by_username("nobody-here").await.unwrap(),
        None
    );
    assert_eq!(stores.users.user_by_id(&id()).await.unwrap(), None);
}

async fn duplicate_racers_leave_exactly_one_user(stores: &Stores) {
    let name = unique_name("race");
    let users = Arc::new(stores.users.clone());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let candidate = if i % 2 == 0 {
            user(&name.to_uppercase())
        } else {
            user(&name)
        };
        let users = users.clone();
        tasks.push(tokio::spawn(
            async move { users.create_user(&candidate).await },
        ));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Duplicate) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1, "exactly one racer wins");
}

fn session(user_id: &str, hash: &str, expires_at_ms: u64) -> AuthSession {
    AuthSession {
        id: id(),
        user_id: user_id.to_owned(),
        token_hash: hash.to_owned(),
        created_at_ms: 1_000,
        expires_at_ms,
        revoked: false,
    }
}

async fn sessions_expire_rotate_and_revoke(stores: &Stores) {
    let s = stores.sessions.as_ref();
    // Expiry far in the past of wall-clock time: a TTL monitor may delete it
    // at any moment, which must look the same as filtering it out.
    let now = 10_000;
    let sess = session("u1", "h1", 20_000);
    s.create_session(&sess).await.unwrap();
    assert_eq!(s.session(&sess.id, now).await.unwrap(), Some(sess.clone()));
    assert_eq!(
        s.session(&sess.id, 20_000).await.unwrap(),
        None,
        "expired at expiry"
    );
    assert_eq!(s.session(&id(), now).await.unwrap(), None);

    assert!(!s
        .rotate_session(&sess.id, "wrong", "h2", 30_000, now)
        .await
        .unwrap());
    assert!(s
        .rotate_session(&sess.id, "h1", "h2", 30_000, now)
        .await
        .unwrap());
    let rotated = s
        .session(&sess.id, 25_000)
        .await
        .unwrap()
        .expect("extended");
    assert_eq!(
        (rotated.token_hash.as_str(), rotated.expires_at_ms),
        ("h2", 30_000)
    );
    assert!(
        !s.rotate_session(&sess.id, "h1", "h3", 40_000, now)
            .await
            .unwrap(),
        "old hash"
    );
    assert!(
        !s.rotate_session(&sess.id, "h2", "h3", 40_000, 30_000)
            .await
            .unwrap(),
        "expired"
    );

    s.revoke_session(&sess.id).await.unwrap();
    let revoked = s
        .session(&sess.id, now)
        .await
        .unwrap()
        .expect("still readable");
    assert!(revoked.revoked);
    assert!(
        !s.rotate_session(&sess.id, "h2", "h3", 40_000, now)
            .await
            .unwrap(),
        "revoked"
    );
    s.revoke_session(&id()).await.unwrap();
}

async fn racing_rotations_have_one_winner(stores: &Stores) {
    let now = 10_000;
    let far = 4_102_444_800_000; // 2100-01-01
    let sess = session("u2", "start", far);
    stores.sessions.create_session(&sess).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let sessions = stores.sessions.clone();
        let sid = sess.id.clone();
        tasks.push(tokio::spawn(async move {
            sessions
                .rotate_session(&sid, "start", &format!("next{i}"), far, now)
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

async fn preferences_round_trip(stores: &Stores) {
    let p = stores.preferences.as_ref();
    let uid = id();
    assert_eq!(p.preferences(&uid).await.unwrap(), None);
    let mut prefs = Preferences {
        echo_cancellation: false,
        input_device_id: Some("mic-🎤".to_owned()),
        ..Preferences::default()
    };
    p.put_preferences(&uid, &prefs).await.unwrap();
    assert_eq!(p.preferences(&uid).await.unwrap(), Some(prefs.clone()));
    prefs.input_device_id = None;
    prefs.start_muted = true;
    p.put_preferences(&uid, &prefs).await.unwrap();
    assert_eq!(p.preferences(&uid).await.unwrap(), Some(prefs));
    assert_eq!(p.preferences(&id()).await.unwrap(), None);
}

fn call(user_id: &str, room: &str, peer: &str, started_at: u64) -> CallRecord {
    CallRecord {
        id: id(),
        user_id: user_id.to_owned(),
        room: room.to_owned(),
        peer_id: peer.to_owned(),
        started_at,
        ended_at: None,
        media_path: None,
    }
}

async fn calls_start_end_and_list_newest_first(stores: &Stores) {
    let c = stores.calls.as_ref();
    let (alice, bob) = (id(), id());
    let (p1, p2, p3) = (id(), id(), id());
    let first = call(&alice, "lobby", &p1, 1_000);
    let second = call(&alice, "standup", &p2, 2_000);
    let third = call(&alice, "lobby", &p3, 3_000);
    let bobs = call(&bob, "lobby", &id(), 1_500);
    for r in [&second, &first, &bobs, &third] {
        c.start_call(r).await.unwrap();
    }

    let listed = c.calls_for_user(&alice, 10).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [&third.id, &second.id, &first.id]);
    assert_eq!(listed[0], third);
    assert_eq!(c.calls_for_user(&alice, 2).await.unwrap().len(), 2);
    assert_eq!(c.calls_for_user(&id(), 10).await.unwrap(), vec![]);

    assert!(c
        .end_call(&p1, "lobby", 1_900, Some(MediaPath::Relayed))
        .await
        .unwrap());
    assert!(
        !c.end_call(&p1, "lobby", 1_950, None).await.unwrap(),
        "already ended"
    );
    assert!(
        !c.end_call(&p2, "lobby", 2_500, None).await.unwrap(),
        "wrong room"
    );
    // The media path can be noted while the call is open, not after.
    assert!(c
        .set_media_path(&p3, "lobby", MediaPath::Direct)
        .await
        .unwrap());
    assert!(!c
        .set_media_path(&p1, "lobby", MediaPath::Direct)
        .await
        .unwrap());
    assert!(!c
        .set_media_path(&p3, "standup", MediaPath::Direct)
        .await
        .unwrap());
    assert!(c.end_call(&p2, "standup", 2_500, None).await.unwrap());

    let listed = c.calls_for_user(&alice, 10).await.unwrap();
    assert_eq!(listed[2].ended_at, Some(1_900));
    assert_eq!(listed[2].media_path, Some(MediaPath::Relayed));
    assert_eq!(listed[1].ended_at, Some(2_500));
    assert_eq!(listed[1].media_path, None);
    assert_eq!(listed[0].ended_at, None, "still in the room");
    assert_eq!(listed[0].media_path, Some(MediaPath::Direct));
    let bob_listed = c.calls_for_user(&bob, 10).await.unwrap();
    assert_eq!(bob_listed, vec![bobs]);
}

async fn open_calls_are_listed_and_closed(stores: &Stores) {
    let c = stores.calls.as_ref();
    let user = id();
    let (p1, p2, p3, p4) = (id(), id(), id(), id());
    let older = call(&user, "lobby", &p1, 10_000);
    let newer = call(&user, "standup", &p2, 20_000);
    let later = call(&user, "lobby", &p3, 30_000);
    let mut ended = call(&user, "lobby", &p4, 5_000);
    ended.ended_at = Some(6_000);
    for r in [&later, &newer, &ended, &older] {
        c.start_call(r).await.unwrap();
    }
    // The suite may share its database: look only at this case's records.
    let mine = |records: Vec<CallRecord>| -> Vec<String> {
        records
            .into_iter()
            .filter(|r| r.user_id == user)
            .map(|r| r.id)
            .collect()
    };
    let open = c.open_calls(30_000, 100_000).await.unwrap();
    assert!(open.iter().all(|r| r.ended_at.is_none()));
    assert!(open.windows(2).all(|w| w[0].started_at <= w[1].started_at));
    assert_eq!(
        mine(open),
        [older.id.clone(), newer.id.clone()],
        "open, started before"
    );
    assert_eq!(c.open_calls(30_000, 0).await.unwrap(), vec![]);

    // Closed at the time given, they are no longer open.
    assert!(c.end_call(&p1, "lobby", 12_345, None).await.unwrap());
    let open = c.open_calls(u64::MAX, 100_000).await.unwrap();
    assert_eq!(mine(open), [newer.id.clone(), later.id.clone()]);
    let listed = c.calls_for_user(&user, 10).await.unwrap();
    let closed = listed.iter().find(|r| r.id == older.id).unwrap();
    assert_eq!(closed.ended_at, Some(12_345));
    assert!(c.end_call(&p2, "standup", 25_000, None).await.unwrap());
    assert!(c.end_call(&p3, "lobby", 31_000, None).await.unwrap());
    assert_eq!(
        mine(c.open_calls(u64::MAX, 100_000).await.unwrap()),
        Vec::<String>::new()
    );
}
