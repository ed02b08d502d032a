//! The CLI use cases over the in-memory store: what they change and the one
//! line each prints or refuses with.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chat_admin::cli;
use chat_domain::{
    Actor, BotCorpus, PasswordHasher, PermissionName, Ports, ServiceConfig, Services, SystemClock,
    Username,
};
use chat_memory::MemoryStore;

fn services() -> (Services, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let services = Services::new(
        &Ports::single(store.clone(), Arc::new(SystemClock)),
        ServiceConfig {
            hasher: PasswordHasher::with_params(1024, 1, 1),
            ..ServiceConfig::default()
        },
    );
    (services, store)
}

#[tokio::test]
async fn users_are_added_granted_revoked_listed_and_deleted() {
    let (s, _) = services();
    let a = &s.accounts;
    let line = cli::add_user(a, "小明", "xiaoming-pw", &["create_room".into()])
        .await
        .unwrap();
    assert_eq!(line, "created user 小明 (permissions: create_room)");

    let err = cli::add_user(a, "小明", "another-pw", &[])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "that username is taken");
    let err = cli::add_user(a, "bad name", "another-pw", &[])
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("username:"), "{err}");
    let err = cli::add_user(a, "dave", "short", &[]).await.unwrap_err();
    assert!(err.to_string().starts_with("password:"), "{err}");
    let err = cli::add_user(a, "dave", "long-enough", &["nope".into()])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no such permission: nope");

    assert_eq!(
        cli::grant(a, "小明", "moderate").await.unwrap(),
        "小明 now has: create_room, moderate"
    );
    assert_eq!(
        cli::revoke(a, "小明", "create_room").await.unwrap(),
        "小明 now has: moderate"
    );
    assert!(cli::grant(a, "nobody", "moderate").await.is_err());

    let list = cli::list_users(a).await.unwrap();
    assert_eq!(list.lines().count(), 1);
    assert!(
        list.starts_with("小明  ") && list.ends_with("  moderate"),
        "{list}"
    );

    cli::set_password(a, "小明", "new-password").await.unwrap();
    assert!(a.login("小明", "new-password").await.is_ok());
    assert!(a.login("小明", "xiaoming-pw").await.is_err());
    assert_eq!(
        cli::set_password(a, "nobody", "new-password")
            .await
            .unwrap_err()
            .to_string(),
        "no such user"
    );

    assert_eq!(
        cli::delete_user(a, "小明").await.unwrap(),
        "deleted user 小明"
    );
    assert!(
        a.user(&Actor::System, &Username::parse("小明").unwrap())
            .await
            .is_err()
    );
    assert!(cli::delete_user(a, "小明").await.is_err());
    assert_eq!(cli::list_users(a).await.unwrap(), "no users");
}

#[tokio::test]
async fn permissions_are_defined_and_listed() {
    let (s, _) = services();
    let a = &s.accounts;
    assert_eq!(
        cli::define_permission(a, "vip").await.unwrap(),
        "defined permission vip"
    );
    assert!(cli::define_permission(a, "vip").await.is_err());
    let list = cli::list_permissions(a).await.unwrap();
    assert!(list.lines().any(|l| l == "vip"), "{list}");
    cli::add_user(a, "eve", "eve-password", &["vip".into()])
        .await
        .unwrap();
    let eve = a
        .user(&Actor::System, &Username::parse("eve").unwrap())
        .await
        .unwrap();
    assert!(eve.has(&PermissionName::parse("vip").unwrap()));
}

#[tokio::test]
async fn a_corpus_file_is_trained_once() {
    let (_, store) = services();
    let text = "Q: 你好\nQ: hello\nA: 嘎嘎\n\nQ: who are you\nA: 小黄鸭\n";
    let line = cli::train_bot(store.as_ref(), "duck.txt", text)
        .await
        .unwrap();
    assert_eq!(
        line,
        "read 3 question/answer pairs from duck.txt: 3 new, 3 in the corpus"
    );
    let again = cli::train_bot(store.as_ref(), "duck.txt", text)
        .await
        .unwrap();
    assert!(again.contains(": 0 new, 3 in the corpus"), "{again}");
    assert_eq!(store.pairs().await.unwrap().len(), 3);
    let err = cli::train_bot(store.as_ref(), "bad.txt", "Q: lonely\n")
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("bad.txt: corpus:"), "{err}");
}
