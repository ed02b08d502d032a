//! The contract of [`UserRepository`]: users, password hashes, permission sets
//! and the permission catalogue.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use chat_domain::{PermissionName, StoreError, UserRepository, Username};

use crate::fixtures::{T0, create_users, fake_hash, name, new_user};

fn perm(raw: &str) -> PermissionName {
    PermissionName::parse(raw).unwrap()
}

/// A created user reads back exactly, with its hash, and is counted.
pub async fn a_created_user_reads_back_with_its_hash_and_permissions<S: UserRepository>(
    store: Arc<S>,
) {
    let mut alice = new_user("alice");
    alice.permissions = [PermissionName::create_room(), PermissionName::moderate()].into();
    let created = store.create_user(alice.clone()).await.unwrap();
    assert_eq!(created.name, alice.name);
    assert_eq!(created.permissions, alice.permissions);
    assert_eq!(created.created_at, T0);
    assert_eq!(
        store.user(&alice.name).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.password_hash(&alice.name).await.unwrap(),
        Some(alice.password_hash)
    );
    assert_eq!(store.users().await.unwrap(), vec![created]);
    assert_eq!(store.count_users().await.unwrap(), 1);
}

/// A second user of the same name is a `Conflict` and changes nothing.
pub async fn a_taken_username_is_a_conflict_and_changes_nothing<S: UserRepository>(store: Arc<S>) {
    let first = store.create_user(new_user("alice")).await.unwrap();
    let mut again = new_user("alice");
    again.password_hash = fake_hash("another");
    again.permissions = [PermissionName::admin()].into();
    assert!(matches!(
        store.create_user(again).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.user(&first.name).await.unwrap(), Some(first.clone()));
    assert_eq!(
        store.password_hash(&first.name).await.unwrap(),
        Some(fake_hash("alice"))
    );
    assert_eq!(store.count_users().await.unwrap(), 1);
}

/// An unknown user reads as absent everywhere; an empty store has no users.
pub async fn an_unknown_user_reads_as_none<S: UserRepository>(store: Arc<S>) {
    let nobody = name("nobody");
    assert_eq!(store.user(&nobody).await.unwrap(), None);
    assert_eq!(store.password_hash(&nobody).await.unwrap(), None);
    assert_eq!(store.users().await.unwrap(), vec![]);
    assert_eq!(store.count_users().await.unwrap(), 0);
}

/// `users` lists everyone sorted by name, Unicode names included.
pub async fn users_are_listed_sorted_by_name<S: UserRepository>(store: Arc<S>) {
    let names = ["carol", "小明", "alice", "Bob", "zoë", "bob"];
    create_users(store.as_ref(), &names).await;
    let listed: Vec<Username> = store
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    let mut expected: Vec<Username> = names.iter().map(|n| name(n)).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(store.count_users().await.unwrap(), 6);
}

/// Unicode usernames are stored and found exactly as given.
pub async fn unicode_usernames_round_trip<S: UserRepository>(store: Arc<S>) {
    create_users(store.as_ref(), &["小明", "名字.测试_1", "Łukasz"]).await;
    for raw in ["小明", "名字.测试_1", "Łukasz"] {
        let user = store.user(&name(raw)).await.unwrap().unwrap();
        assert_eq!(user.name.as_str(), raw);
        assert_eq!(
            store.password_hash(&name(raw)).await.unwrap(),
            Some(fake_hash(raw))
        );
    }
    assert_eq!(store.user(&name("小红")).await.unwrap(), None);
}

/// `set_password_hash` replaces the hash; for a missing user it is `NotFound`.
pub async fn set_password_hash_replaces_the_hash<S: UserRepository>(store: Arc<S>) {
    create_users(store.as_ref(), &["alice", "bob"]).await;
    store
        .set_password_hash(&name("alice"), fake_hash("new"))
        .await
        .unwrap();
    assert_eq!(
        store.password_hash(&name("alice")).await.unwrap(),
        Some(fake_hash("new"))
    );
    assert_eq!(
        store.password_hash(&name("bob")).await.unwrap(),
        Some(fake_hash("bob"))
    );
    assert!(matches!(
        store
            .set_password_hash(&name("nobody"), fake_hash("x"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.user(&name("nobody")).await.unwrap(), None);
}

/// `set_permissions` replaces the whole set and returns the updated user;
/// for a missing user it is `NotFound`.
pub async fn set_permissions_replaces_the_set<S: UserRepository>(store: Arc<S>) {
    let mut alice = new_user("alice");
    alice.permissions = [PermissionName::moderate()].into();
    store.create_user(alice).await.unwrap();
    store.define_permission(&perm("upload")).await.unwrap();
    let wanted: BTreeSet<_> = [PermissionName::admin(), perm("upload")].into();
    let updated = store
        .set_permissions(&name("alice"), &wanted)
        .await
        .unwrap();
    assert_eq!(updated.permissions, wanted);
    assert_eq!(updated.created_at, T0);
    assert_eq!(
        store.user(&name("alice")).await.unwrap(),
        Some(updated.clone())
    );
    let none = store
        .set_permissions(&name("alice"), &BTreeSet::new())
        .await
        .unwrap();
    assert!(none.permissions.is_empty());
    assert!(
        store
            .user(&name("alice"))
            .await
            .unwrap()
            .unwrap()
            .permissions
            .is_empty()
    );
    assert!(matches!(
        store.set_permissions(&name("nobody"), &wanted).await,
        Err(StoreError::NotFound)
    ));
}

/// `delete_user` removes the user (others stay); a missing one is `NotFound`.
pub async fn a_deleted_user_is_gone_and_a_missing_one_is_not_found<S: UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice", "bob"]).await;
    store.delete_user(&name("alice")).await.unwrap();
    assert_eq!(store.user(&name("alice")).await.unwrap(), None);
    assert_eq!(store.password_hash(&name("alice")).await.unwrap(), None);
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert!(store.user(&name("bob")).await.unwrap().is_some());
    assert!(matches!(
        store.delete_user(&name("alice")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_user(&name("nobody")).await,
        Err(StoreError::NotFound)
    ));
}

/// The name of a deleted user can be taken again, by a new account.
pub async fn a_deleted_name_can_be_taken_again<S: UserRepository>(store: Arc<S>) {
    create_users(store.as_ref(), &["alice"]).await;
    store.delete_user(&name("alice")).await.unwrap();
    let mut again = new_user("alice");
    again.password_hash = fake_hash("second");
    store.create_user(again).await.unwrap();
    assert_eq!(
        store.password_hash(&name("alice")).await.unwrap(),
        Some(fake_hash("second"))
    );
}

/// The catalogue always holds the three built-ins, sorted, even when empty.
pub async fn the_builtin_permissions_are_always_defined<S: UserRepository>(store: Arc<S>) {
    let mut builtins = PermissionName::builtins().to_vec();
    builtins.sort();
    assert_eq!(store.permissions().await.unwrap(), builtins);
    for p in PermissionName::builtins() {
        assert!(matches!(
            store.define_permission(&p).await,
            Err(StoreError::Conflict)
        ));
    }
    assert_eq!(store.permissions().await.unwrap(), builtins);
}

/// A defined permission is listed, sorted among the built-ins; defining it
/// twice is a `Conflict`.
pub async fn a_defined_permission_is_listed_and_a_repeat_is_a_conflict<S: UserRepository>(
    store: Arc<S>,
) {
    store.define_permission(&perm("upload")).await.unwrap();
    store.define_permission(&perm("b-team")).await.unwrap();
    assert!(matches!(
        store.define_permission(&perm("upload")).await,
        Err(StoreError::Conflict)
    ));
    let mut expected = PermissionName::builtins().to_vec();
    expected.extend([perm("upload"), perm("b-team")]);
    expected.sort();
    assert_eq!(store.permissions().await.unwrap(), expected);
}
