//! The contract of [`SessionStore`]: sessions read back until they expire and
//! end one by one, per user, or with their user.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{Session, SessionId, SessionStore, Timestamp, UserRepository};

use crate::fixtures::{T0, at, create_users, name};

fn session(user: &str, expires_at: Timestamp) -> Session {
    Session {
        id: SessionId::generate(),
        user: name(user),
        created_at: T0,
        expires_at,
    }
}

/// A stored session reads back unchanged until its expiry, and not after it.
pub async fn a_session_reads_back_until_it_expires<S: SessionStore + UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice"]).await;
    let s = session("alice", at(3600));
    store.create_session(s.clone()).await.unwrap();
    assert_eq!(store.session(&s.id, T0).await.unwrap(), Some(s.clone()));
    let just_before = s.expires_at.minus(Duration::from_millis(1));
    assert_eq!(
        store.session(&s.id, just_before).await.unwrap(),
        Some(s.clone())
    );
    let after = s.expires_at.plus(Duration::from_millis(1));
    assert_eq!(store.session(&s.id, after).await.unwrap(), None);
    assert_eq!(store.session(&s.id, at(86_400)).await.unwrap(), None);
}

/// A session id that was never stored reads as `None`.
pub async fn an_unknown_session_reads_as_none<S: SessionStore + UserRepository>(store: Arc<S>) {
    create_users(store.as_ref(), &["alice"]).await;
    store
        .create_session(session("alice", at(3600)))
        .await
        .unwrap();
    assert_eq!(
        store.session(&SessionId::generate(), T0).await.unwrap(),
        None
    );
}

/// `delete_session` ends exactly that session; deleting a missing one is fine.
pub async fn deleting_a_session_ends_only_that_one<S: SessionStore + UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice"]).await;
    let (a, b) = (session("alice", at(3600)), session("alice", at(3600)));
    store.create_session(a.clone()).await.unwrap();
    store.create_session(b.clone()).await.unwrap();
    store.delete_session(&a.id).await.unwrap();
    assert_eq!(store.session(&a.id, T0).await.unwrap(), None);
    assert_eq!(store.session(&b.id, T0).await.unwrap(), Some(b));
    store.delete_session(&a.id).await.unwrap();
    store.delete_session(&SessionId::generate()).await.unwrap();
}

/// `delete_user_sessions` ends every session of the user but `keep`, leaves
/// other users alone and counts what it ended.
pub async fn deleting_a_users_sessions_keeps_the_one_asked_for<S: SessionStore + UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice", "bob"]).await;
    let alices: Vec<Session> = (0..3).map(|_| session("alice", at(3600))).collect();
    for s in &alices {
        store.create_session(s.clone()).await.unwrap();
    }
    let bobs = session("bob", at(3600));
    store.create_session(bobs.clone()).await.unwrap();

    let kept = &alices[1];
    assert_eq!(
        store
            .delete_user_sessions(&name("alice"), Some(&kept.id))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.session(&alices[0].id, T0).await.unwrap(), None);
    assert_eq!(store.session(&alices[2].id, T0).await.unwrap(), None);
    assert_eq!(
        store.session(&kept.id, T0).await.unwrap(),
        Some(kept.clone())
    );
    assert_eq!(
        store.session(&bobs.id, T0).await.unwrap(),
        Some(bobs.clone())
    );

    assert_eq!(
        store
            .delete_user_sessions(&name("alice"), None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.session(&kept.id, T0).await.unwrap(), None);
    assert_eq!(
        store
            .delete_user_sessions(&name("alice"), None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.session(&bobs.id, T0).await.unwrap(), Some(bobs));
}

/// Deleting a user ends all their sessions.
pub async fn deleting_a_user_ends_their_sessions<S: SessionStore + UserRepository>(store: Arc<S>) {
    create_users(store.as_ref(), &["alice", "bob"]).await;
    let (a, b) = (session("alice", at(3600)), session("bob", at(3600)));
    store.create_session(a.clone()).await.unwrap();
    store.create_session(b.clone()).await.unwrap();
    store.delete_user(&name("alice")).await.unwrap();
    assert_eq!(store.session(&a.id, T0).await.unwrap(), None);
    assert_eq!(store.session(&b.id, T0).await.unwrap(), Some(b));
}

/// Sessions of users with Unicode names work like any other.
pub async fn sessions_of_unicode_users_round_trip<S: SessionStore + UserRepository>(store: Arc<S>) {
    create_users(store.as_ref(), &["小明"]).await;
    let s = session("小明", at(60));
    store.create_session(s.clone()).await.unwrap();
    assert_eq!(store.session(&s.id, T0).await.unwrap(), Some(s.clone()));
    assert_eq!(
        store
            .delete_user_sessions(&name("小明"), None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.session(&s.id, T0).await.unwrap(), None);
}
