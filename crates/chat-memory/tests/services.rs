//! The domain services over `MemoryStore`: the rules users meet, end to end
//! below the transport (login, rooms, moderation, flood control, the bot,
//! direct messages, retention, and the ordered room feed).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{
    AccountError, Actor, Bot, BotCorpus, Coded, CorpusBot, Description, ErrorCode, LoginError,
    ManualClock, MessageText, Password, PasswordHasher, PermissionName, Ports, QaPair, RateLimit,
    RoomError, RoomEvent, RoomEvents, RoomFeed, RoomName, SendError, Sent, Seq, Services,
    UserEvent, Username, Visibility,
};
use chat_memory::MemoryStore;
use chat_testkit::fixtures::{T0, name, room_name, text};
use futures::StreamExt;

const PASSWORD: &str = "correct horse";
const PATIENCE: Duration = Duration::from_secs(20);

struct App {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    services: Services,
}

fn app_with(rate_limit: Option<RateLimit>, retention: Option<Duration>) -> App {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(T0));
    let ports = Ports::single(Arc::clone(&store), clock.clone());
    let bot: Arc<dyn Bot> = Arc::new(CorpusBot::new("小黄鸭", "嘎嘎?", Arc::clone(&ports.corpus)));
    // Cheap argon2 parameters: the tests are about the rules, not the cost.
    let hasher = PasswordHasher::with_params(1024, 1, 1);
    let services = Services::with_bot(&ports, rate_limit, retention, hasher, bot);
    App {
        store,
        clock,
        services,
    }
}

fn app() -> App {
    app_with(Some(RateLimit::DEFAULT), None)
}

impl App {
    async fn user(&self, raw: &str, perms: &[PermissionName]) -> Actor {
        let user = self
            .services
            .accounts
            .create_user(
                &Actor::System,
                name(raw),
                Password::parse(PASSWORD).unwrap(),
                perms.iter().cloned().collect(),
            )
            .await
            .unwrap();
        Actor::User(user)
    }

    async fn creator(&self, raw: &str) -> Actor {
        self.user(raw, &[PermissionName::create_room()]).await
    }

    async fn room(&self, owner: &Actor, raw: &str, visibility: Visibility) -> RoomName {
        let r = room_name(raw);
        self.services
            .rooms
            .create(owner, r.clone(), Description::empty(), visibility)
            .await
            .unwrap();
        r
    }

    async fn send(&self, who: &Actor, room: &RoomName, body: &str) -> Result<Sent, SendError> {
        self.services.chat.send(who, room, text(body), None).await
    }

    async fn store_last_seq(&self, room: &RoomName) -> Seq {
        chat_domain::MessageLog::last_seq(self.store.as_ref(), room)
            .await
            .unwrap()
    }

    async fn stored(&self, who: &Actor, room: &RoomName, body: &str) -> Seq {
        match self.send(who, room, body).await.unwrap() {
            Sent::Stored(a) => a.message.seq,
            Sent::Bot(b) => panic!("a user's message went to the bot: {b:?}"),
        }
    }
}

async fn next_message(feed: &mut RoomFeed) -> Seq {
    loop {
        let item = tokio::time::timeout(PATIENCE, feed.next())
            .await
            .expect("the feed delivers")
            .expect("the feed is live");
        if let RoomEvent::Message(m) = &*item {
            return m.seq;
        }
    }
}

#[tokio::test]
async fn a_user_logs_in_with_the_right_password() {
    let app = app();
    let alice = app.user("alice", &[]).await;
    let (user, session) = app
        .services
        .accounts
        .login("alice", PASSWORD)
        .await
        .unwrap();
    assert_eq!(Some(&user), alice.user());
    let actor = app
        .services
        .accounts
        .actor(Some(&session.id))
        .await
        .unwrap();
    assert_eq!(actor, alice);
    app.services.accounts.logout(&session.id).await.unwrap();
    let actor = app
        .services
        .accounts
        .actor(Some(&session.id))
        .await
        .unwrap();
    assert_eq!(actor, Actor::Guest);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = app();
    app.user("alice", &[]).await;
    let wrong = app
        .services
        .accounts
        .login("alice", "wrong horse")
        .await
        .unwrap_err();
    let unknown = app
        .services
        .accounts
        .login("nobody", PASSWORD)
        .await
        .unwrap_err();
    let malformed = app
        .services
        .accounts
        .login("no body/..", PASSWORD)
        .await
        .unwrap_err();
    for e in [&wrong, &unknown, &malformed] {
        assert!(matches!(e, LoginError::InvalidCredentials), "{e:?}");
        assert_eq!(e.code(), ErrorCode::Unauthenticated);
        assert_eq!(e.to_string(), wrong.to_string());
    }
}

#[tokio::test]
async fn a_session_ends_when_it_expires() {
    let app = app();
    let alice = app.user("alice", &[]).await;
    let (_, session) = app
        .services
        .accounts
        .login("alice", PASSWORD)
        .await
        .unwrap();
    app.clock.advance(Duration::from_secs(29 * 24 * 3600));
    let actor = app.services.accounts.actor(Some(&session.id)).await;
    assert_eq!(actor.unwrap(), alice);
    app.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let actor = app.services.accounts.actor(Some(&session.id)).await;
    assert_eq!(actor.unwrap(), Actor::Guest);
}

#[tokio::test]
async fn a_guest_cannot_create_a_room() {
    let app = app();
    let err = app
        .services
        .rooms
        .create(
            &Actor::Guest,
            room_name("lobby"),
            Description::empty(),
            Visibility::Public,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RoomError::Unauthenticated), "{err:?}");
    assert!(
        app.services
            .rooms
            .list(&Actor::Guest)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_user_without_create_room_is_forbidden_to_create_one() {
    let app = app();
    let bob = app.user("bob", &[PermissionName::moderate()]).await;
    let err = app
        .services
        .rooms
        .create(
            &bob,
            room_name("lobby"),
            Description::empty(),
            Visibility::Public,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RoomError::Forbidden(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Forbidden);
    let alice = app.creator("alice").await;
    app.room(&alice, "lobby", Visibility::Public).await;
    let again = app
        .services
        .rooms
        .create(
            &alice,
            room_name("lobby"),
            Description::empty(),
            Visibility::Public,
        )
        .await
        .unwrap_err();
    assert!(matches!(again, RoomError::NameTaken), "{again:?}");
}

#[tokio::test]
async fn a_private_room_is_not_found_by_outsiders_and_not_listed() {
    let app = app();
    let alice = app.creator("alice").await;
    let bob = app.user("bob", &[]).await;
    let admin = app.user("root", &[PermissionName::admin()]).await;
    let secret = app.room(&alice, "秘密", Visibility::Private).await;
    app.room(&alice, "lobby", Visibility::Public).await;
    app.stored(&alice, &secret, "just us").await;

    for outsider in [&bob, &Actor::Guest] {
        let s = &app.services;
        assert!(matches!(
            s.rooms.get(outsider, &secret).await,
            Err(RoomError::NotFound)
        ));
        assert!(matches!(
            s.rooms.join(outsider, &secret).await,
            Err(RoomError::NotFound)
        ));
        assert!(matches!(
            s.chat.history(outsider, &secret, None, 50).await,
            Err(RoomError::NotFound)
        ));
        assert!(matches!(
            s.chat.subscribe(outsider, &secret, Seq::ZERO).await,
            Err(RoomError::NotFound)
        ));
        assert!(matches!(
            app.send(outsider, &secret, "let me in").await,
            Err(SendError::NotFound)
        ));
        let listed: Vec<RoomName> = s
            .rooms
            .list(outsider)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.room.name)
            .collect();
        assert_eq!(listed, vec![room_name("lobby")]);
    }
    // The error for a hidden room is the one for a missing room.
    let missing = app.services.rooms.get(&bob, &room_name("nowhere")).await;
    assert!(matches!(missing, Err(RoomError::NotFound)));

    let listed = app.services.rooms.list(&alice).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .any(|r| r.room.name == secret && r.last_seq == Seq::new(1))
    );
    assert!(app.services.rooms.get(&admin, &secret).await.is_ok());
    let for_admin = app.services.rooms.list(&admin).await.unwrap();
    assert!(
        for_admin
            .iter()
            .any(|r| r.room.name == secret && r.members == 1),
        "admins see private rooms in the listing too"
    );

    // Once the creator lets bob in, he sees it.
    let bob_name = bob.user().unwrap().name.clone();
    app.services
        .moderation
        .allow(&alice, &secret, &bob_name)
        .await
        .unwrap();
    assert!(app.services.rooms.get(&bob, &secret).await.is_ok());
    assert_eq!(app.services.rooms.list(&bob).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_kicked_user_cannot_rejoin_until_allowed_back() {
    let app = app();
    let alice = app.creator("alice").await;
    let bob = app.user("bob", &[]).await;
    let bob_name = bob.user().unwrap().name.clone();
    let lobby = app.room(&alice, "lobby", Visibility::Public).await;
    assert!(app.services.rooms.join(&bob, &lobby).await.unwrap().member);

    let mut events = app.store.subscribe(&lobby).await.unwrap();
    app.services
        .moderation
        .kick(&alice, &lobby, &bob_name)
        .await
        .unwrap();
    let removed = tokio::time::timeout(PATIENCE, events.next())
        .await
        .unwrap()
        .unwrap();
    let chat_domain::Delivery::Event(removed) = removed else {
        panic!("lagged")
    };
    assert_eq!(
        *removed,
        RoomEvent::Removed {
            user: bob_name.clone()
        }
    );

    assert!(matches!(
        app.services.rooms.join(&bob, &lobby).await,
        Err(RoomError::Forbidden(_))
    ));
    assert!(matches!(
        app.send(&bob, &lobby, "I'm back").await,
        Err(SendError::Forbidden(_))
    ));
    assert!(
        !app.services
            .rooms
            .members(&alice, &lobby)
            .await
            .unwrap()
            .contains(&bob_name)
    );
    // Bob may not undo it himself.
    assert!(matches!(
        app.services.moderation.allow(&bob, &lobby, &bob_name).await,
        Err(RoomError::Forbidden(_))
    ));

    app.services
        .moderation
        .allow(&alice, &lobby, &bob_name)
        .await
        .unwrap();
    assert!(app.services.rooms.join(&bob, &lobby).await.unwrap().member);
    app.stored(&bob, &lobby, "thanks").await;
}

#[tokio::test]
async fn a_mute_refuses_sends_and_ends_by_itself() {
    let app = app();
    let alice = app.creator("alice").await;
    let bob = app.user("bob", &[]).await;
    let bob_name = bob.user().unwrap().name.clone();
    let lobby = app.room(&alice, "lobby", Visibility::Public).await;
    app.stored(&bob, &lobby, "hello").await;

    let mute = app
        .services
        .moderation
        .mute(&alice, &lobby, &bob_name, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(mute.until, Some(T0.plus(Duration::from_secs(60))));
    let err = app.send(&bob, &lobby, "can I talk?").await.unwrap_err();
    match &err {
        SendError::Muted { until, left } => {
            assert_eq!(*until, mute.until);
            assert_eq!(*left, Some(Duration::from_secs(60)));
        }
        other => panic!("expected Muted, got {other:?}"),
    }
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(app.services.chat.typing(&bob, &lobby).await.is_err());
    let last = app.services.chat.last_seq(&alice, &lobby).await.unwrap();

    app.clock.advance(Duration::from_secs(59));
    assert!(matches!(
        app.send(&bob, &lobby, "now?").await,
        Err(SendError::Muted { .. })
    ));
    app.clock.advance(Duration::from_secs(2));
    assert!(app.stored(&bob, &lobby, "free again").await > last);
    assert!(
        app.services
            .moderation
            .mutes(&alice, &lobby)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_twenty_first_message_of_a_burst_is_rate_limited() {
    let app = app();
    let alice = app.creator("alice").await;
    let bob = app.user("bob", &[]).await;
    let lobby = app.room(&alice, "lobby", Visibility::Public).await;
    for i in 0..20 {
        app.stored(&bob, &lobby, &format!("spam {i}")).await;
    }
    let err = app.send(&bob, &lobby, "one too many").await.unwrap_err();
    let SendError::RateLimited { retry_after } = err else {
        panic!("expected RateLimited, got {err:?}");
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(100));
    assert_eq!(
        app.services.chat.last_seq(&alice, &lobby).await.unwrap(),
        Seq::new(20),
        "the refused message was not stored"
    );
    // Someone else in the same room is unaffected.
    app.stored(&alice, &lobby, "not me").await;
    app.clock.advance(retry_after);
    app.stored(&bob, &lobby, "patient now").await;
}

#[tokio::test]
async fn a_guest_gets_a_private_bot_reply_and_nothing_is_stored() {
    let app = app();
    app.store
        .add_pairs(&[QaPair {
            question: "你好".into(),
            answer: "你好呀!我是小黄鸭。".into(),
        }])
        .await
        .unwrap();
    let alice = app.creator("alice").await;
    let lobby = app.room(&alice, "闲聊-1", Visibility::Public).await;
    let mut events = app.store.subscribe(&lobby).await.unwrap();

    let sent = app.send(&Actor::Guest, &lobby, "你好").await.unwrap();
    let Sent::Bot(reply) = sent else {
        panic!("a guest's message was stored: {sent:?}");
    };
    assert_eq!(reply.room, lobby);
    assert_eq!(reply.from, "小黄鸭");
    assert_eq!(reply.text, "你好呀!我是小黄鸭。");
    let Sent::Bot(fallback) = app.send(&Actor::Guest, &lobby, "qwertyuiop").await.unwrap() else {
        panic!("stored");
    };
    assert_eq!(fallback.text, "嘎嘎?");

    assert_eq!(app.store_last_seq(&lobby).await, Seq::ZERO);
    let history = app
        .services
        .chat
        .history(&Actor::Guest, &lobby, None, 50)
        .await
        .unwrap();
    assert!(history.messages.is_empty());
    // Nothing went to the room either: the next event is the next user message.
    app.stored(&alice, &lobby, "hi all").await;
    let first = tokio::time::timeout(PATIENCE, events.next())
        .await
        .unwrap()
        .unwrap();
    let chat_domain::Delivery::Event(first) = first else {
        panic!("lagged")
    };
    let RoomEvent::Message(m) = &*first else {
        panic!("unexpected {first:?}")
    };
    assert_eq!((m.from.as_str(), m.seq), ("alice", Seq::new(1)));
}

#[tokio::test]
async fn a_direct_room_is_made_once_for_both_directions() {
    let app = app();
    let alice = app.user("alice", &[]).await;
    let bob = app.user("小明", &[]).await;
    let carol = app.user("carol", &[]).await;
    let (alice_name, bob_name) = (
        alice.user().unwrap().name.clone(),
        bob.user().unwrap().name.clone(),
    );
    let mut alice_events = app.services.chat.subscribe_user(&alice).await.unwrap();
    let mut bob_events = app.services.chat.subscribe_user(&bob).await.unwrap();

    let first = app
        .services
        .chat
        .direct(&alice, &bob_name, text("hi 小明"), None)
        .await
        .unwrap();
    let reply = app
        .services
        .chat
        .direct(&bob, &alice_name, text("hi alice 👋"), None)
        .await
        .unwrap();
    let dm = RoomName::parse("@alice+小明").unwrap();
    assert_eq!(first.message.room, dm);
    assert_eq!(reply.message.room, dm);
    assert_eq!(
        (first.message.seq, reply.message.seq),
        (Seq::new(1), Seq::new(2))
    );

    // Each user heard about the new room exactly once.
    for (events, who) in [
        (&mut alice_events, &alice_name),
        (&mut bob_events, &bob_name),
    ] {
        app.store
            .publish_user(who, UserEvent::PermissionsChanged)
            .await
            .unwrap();
        let mut seen = Vec::new();
        loop {
            let d = tokio::time::timeout(PATIENCE, events.next())
                .await
                .unwrap()
                .unwrap();
            let chat_domain::Delivery::Event(e) = d else {
                panic!("lagged")
            };
            if *e == UserEvent::PermissionsChanged {
                break;
            }
            seen.push((*e).clone());
        }
        assert_eq!(seen, vec![UserEvent::DirectRoom { room: dm.clone() }]);
    }

    let directs = app.services.rooms.directs(&bob).await.unwrap();
    assert_eq!(directs.len(), 1);
    assert_eq!(
        (&directs[0].with, directs[0].last_seq),
        (&alice_name, Seq::new(2))
    );
    assert!(app.services.rooms.list(&alice).await.unwrap().is_empty());
    assert!(matches!(
        app.services.chat.history(&carol, &dm, None, 10).await,
        Err(RoomError::NotFound)
    ));
    assert!(matches!(
        app.send(&carol, &dm, "hello?").await,
        Err(SendError::NotFound)
    ));
    let nobody = Username::parse("nobody").unwrap();
    assert!(matches!(
        app.services
            .chat
            .direct(&alice, &nobody, text("?"), None)
            .await,
        Err(SendError::NoSuchUser)
    ));
    assert!(matches!(
        app.services
            .chat
            .direct(&alice, &alice_name, text("me"), None)
            .await,
        Err(SendError::Invalid(_))
    ));
}

#[tokio::test]
async fn retention_deletes_old_messages_everywhere_and_resume_says_expired() {
    let app = app_with(None, Some(Duration::from_secs(7 * 24 * 3600)));
    let alice = app.creator("alice").await;
    let bob = app.user("bob", &[]).await;
    let bob_name = bob.user().unwrap().name.clone();
    let lobby = app.room(&alice, "lobby", Visibility::Public).await;
    for i in 0..3 {
        app.stored(&alice, &lobby, &format!("old {i}")).await;
    }
    let dm = app
        .services
        .chat
        .direct(&alice, &bob_name, text("old secret"), None)
        .await
        .unwrap()
        .message
        .room;

    app.clock.advance(Duration::from_secs(8 * 24 * 3600));
    app.stored(&bob, &lobby, "new").await;
    assert_eq!(app.services.retention.sweep().await.unwrap(), 4);
    assert_eq!(app.services.retention.sweep().await.unwrap(), 0);

    let resumed = app
        .services
        .chat
        .resume(&alice, &lobby, Seq::ZERO, 100)
        .await
        .unwrap();
    assert!(resumed.expired);
    let seqs: Vec<Seq> = resumed.page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![Seq::new(4)]);
    let up_to_date = app
        .services
        .chat
        .resume(&alice, &lobby, Seq::new(3), 100)
        .await
        .unwrap();
    assert!(!up_to_date.expired);
    assert_eq!(up_to_date.page.messages.len(), 1);

    let dm_resume = app
        .services
        .chat
        .resume(&bob, &dm, Seq::ZERO, 100)
        .await
        .unwrap();
    assert!(dm_resume.expired);
    assert!(dm_resume.page.messages.is_empty());
    assert_eq!(
        app.services.chat.last_seq(&bob, &dm).await.unwrap(),
        Seq::new(1)
    );
    let next = app
        .services
        .chat
        .direct(&bob, &name("alice"), text("still here"), None)
        .await
        .unwrap();
    assert_eq!(next.message.seq, Seq::new(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_delivers_concurrent_sends_once_each_in_seq_order() {
    const SENDERS: usize = 4;
    const EACH: usize = 50;
    let app = Arc::new(app_with(None, None));
    let alice = app.creator("alice").await;
    let lobby = app.room(&alice, "lobby", Visibility::Public).await;
    let mut feed = app
        .services
        .chat
        .subscribe(&alice, &lobby, Seq::ZERO)
        .await
        .unwrap();
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let who = app.user(&format!("user{i}"), &[]).await;
        let (app, lobby) = (Arc::clone(&app), lobby.clone());
        senders.push(tokio::spawn(async move {
            for j in 0..EACH {
                app.stored(&who, &lobby, &format!("{i}/{j}")).await;
            }
        }));
    }
    let total = (SENDERS * EACH) as u64;
    for expected in 1..=total {
        assert_eq!(next_message(&mut feed).await, Seq::new(expected));
    }
    for s in senders {
        s.await.unwrap();
    }
    assert_eq!(feed.delivered(), Seq::new(total));
}

#[tokio::test]
async fn a_feed_that_lagged_on_the_bus_fills_the_gap_from_the_log() {
    // Far more than the bus buffers for one subscriber.
    const SENT: u64 = 3 * chat_memory::BUS_CAPACITY as u64;
    let app = app_with(None, None);
    let alice = app.creator("alice").await;
    let lobby = app.room(&alice, "lobby", Visibility::Public).await;
    app.stored(&alice, &lobby, "before the feed").await;
    let mut feed = app
        .services
        .chat
        .subscribe(&alice, &lobby, Seq::new(1))
        .await
        .unwrap();
    for i in 0..SENT {
        app.stored(&alice, &lobby, &format!("burst {i}")).await;
    }
    for expected in 2..=SENT + 1 {
        assert_eq!(next_message(&mut feed).await, Seq::new(expected));
    }
    // And it keeps going live afterwards.
    app.stored(&alice, &lobby, "after").await;
    assert_eq!(next_message(&mut feed).await, Seq::new(SENT + 2));
}

#[tokio::test]
async fn an_admin_manages_users_and_a_deleted_user_loses_access() {
    let app = app();
    let root = app.user("root", &[PermissionName::admin()]).await;
    let alice = app.user("alice", &[]).await;
    let (_, session) = app
        .services
        .accounts
        .login("alice", PASSWORD)
        .await
        .unwrap();
    assert!(matches!(
        app.services.accounts.users(&alice).await,
        Err(AccountError::Forbidden(_))
    ));
    let alice_name = alice.user().unwrap().name.clone();
    app.services
        .accounts
        .delete_user(&root, &alice_name)
        .await
        .unwrap();
    assert_eq!(
        app.services
            .accounts
            .actor(Some(&session.id))
            .await
            .unwrap(),
        Actor::Guest
    );
    assert!(matches!(
        app.services.accounts.login("alice", PASSWORD).await,
        Err(LoginError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn unicode_names_and_text_survive_the_services() {
    let app = app();
    let xm = app.creator("小明").await;
    let room = app.room(&xm, "闲聊-1", Visibility::Public).await;
    let body = "你好 👨\u{200d}👩\u{200d}👧 \u{202e}עברית\u{202c} zero\u{200b}width";
    app.stored(&xm, &room, body).await;
    let page = app
        .services
        .chat
        .history(&Actor::Guest, &room, None, 10)
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].text, MessageText::parse(body).unwrap());
    assert_eq!(page.messages[0].from.as_str(), "小明");
    let (user, _) = app.services.accounts.login("小明", PASSWORD).await.unwrap();
    assert_eq!(user.name.as_str(), "小明");
}

#[tokio::test]
async fn the_sixth_failed_login_is_throttled_without_checking_the_password() {
    let app = app();
    app.user("alice", &[]).await;
    for _ in 0..5 {
        let e = app
            .services
            .accounts
            .login("alice", "wrong password")
            .await
            .unwrap_err();
        assert!(matches!(e, LoginError::InvalidCredentials), "{e:?}");
    }
    // Even the right password is refused while throttled: the attempt is not checked.
    let e = app
        .services
        .accounts
        .login("alice", PASSWORD)
        .await
        .unwrap_err();
    let LoginError::Throttled { retry_after } = e else {
        panic!("expected throttling, got {e:?}")
    };
    assert_eq!(e.code(), ErrorCode::RateLimited);
    assert!(retry_after <= chat_domain::services::LOGIN_WINDOW && retry_after > Duration::ZERO);

    // An unknown name is throttled exactly the same way.
    for _ in 0..5 {
        let _ = app.services.accounts.login("nobody", "x").await;
    }
    assert!(matches!(
        app.services.accounts.login("nobody", "x").await,
        Err(LoginError::Throttled { .. })
    ));

    // Other accounts are unaffected, and after the window the right password works.
    app.user("bob", &[]).await;
    assert!(app.services.accounts.login("bob", PASSWORD).await.is_ok());
    app.clock.advance(retry_after);
    assert!(app.services.accounts.login("alice", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn a_successful_login_clears_earlier_failures() {
    let app = app();
    app.user("alice", &[]).await;
    for _ in 0..4 {
        let _ = app.services.accounts.login("alice", "wrong password").await;
    }
    assert!(app.services.accounts.login("alice", PASSWORD).await.is_ok());
    for _ in 0..4 {
        let _ = app.services.accounts.login("alice", "wrong password").await;
    }
    assert!(
        app.services.accounts.login("alice", PASSWORD).await.is_ok(),
        "the count restarted"
    );
}

/// The audit trail as `(actor, action, target, detail)`, oldest first.
async fn trail(app: &App, admin: &Actor) -> Vec<(String, &'static str, String, String)> {
    let mut entries = app.services.accounts.audit(admin, 1000).await.unwrap();
    entries.reverse();
    entries
        .into_iter()
        .map(|e| (e.actor, e.action.as_str(), e.target, e.detail))
        .collect()
}

#[tokio::test]
async fn every_admin_and_moderation_action_is_audited_with_who_what_whom_and_when() {
    let app = app();
    let root = app.user("root", &[PermissionName::admin()]).await;
    let alice = app.creator("小明").await;
    let bob = app.user("bob", &[]).await;
    let bob_name = bob.user().unwrap().name.clone();
    let accounts = &app.services.accounts;
    let moderation = &app.services.moderation;

    let lobby = app.room(&alice, "闲聊-1", Visibility::Public).await;
    let secret = app.room(&alice, "secret", Visibility::Private).await;
    app.clock.advance(Duration::from_secs(10));
    moderation
        .mute(&alice, &lobby, &bob_name, Some(Duration::from_secs(300)))
        .await
        .unwrap();
    moderation.unmute(&alice, &lobby, &bob_name).await.unwrap();
    moderation
        .mute(&alice, &lobby, &bob_name, None)
        .await
        .unwrap();
    moderation.kick(&alice, &lobby, &bob_name).await.unwrap();
    moderation.allow(&alice, &lobby, &bob_name).await.unwrap();
    moderation.allow(&alice, &secret, &bob_name).await.unwrap();
    let helper = PermissionName::parse("helper").unwrap();
    accounts.define_permission(&root, &helper).await.unwrap();
    accounts
        .set_permissions(&root, &bob_name, [helper.clone()].into())
        .await
        .unwrap();
    accounts
        .set_password(&root, &bob_name, Password::parse("new password").unwrap())
        .await
        .unwrap();
    accounts
        .change_own_password(&alice, None, PASSWORD, Password::parse("mine now").unwrap())
        .await
        .unwrap();
    accounts.delete_user(&root, &bob_name).await.unwrap();

    let s = |x: &str| x.to_owned();
    assert_eq!(
        trail(&app, &root).await,
        vec![
            (
                s("system"),
                "user_created",
                s("root"),
                s("permissions: admin")
            ),
            (
                s("system"),
                "user_created",
                s("小明"),
                s("permissions: create_room")
            ),
            (
                s("system"),
                "user_created",
                s("bob"),
                s("permissions: none")
            ),
            (s("小明"), "room_created", s("闲聊-1"), s("public")),
            (s("小明"), "room_created", s("secret"), s("private")),
            (s("小明"), "muted", s("bob"), s("in 闲聊-1, for 5 min")),
            (s("小明"), "unmuted", s("bob"), s("in 闲聊-1")),
            (s("小明"), "muted", s("bob"), s("in 闲聊-1, until lifted")),
            (s("小明"), "kicked", s("bob"), s("from 闲聊-1")),
            (
                s("小明"),
                "member_added",
                s("bob"),
                s("let back into 闲聊-1")
            ),
            (s("小明"), "member_added", s("bob"), s("added to secret")),
            (s("root"), "permission_defined", s("helper"), s("")),
            (s("root"), "permissions_set", s("bob"), s("none → helper")),
            (
                s("root"),
                "password_reset",
                s("bob"),
                s("their sessions ended")
            ),
            (
                s("小明"),
                "password_changed",
                s("小明"),
                s("0 other session(s) ended")
            ),
            (
                s("root"),
                "user_deleted",
                s("bob"),
                s("their sessions ended")
            ),
        ]
    );
    // When: the server clock at the time of each action, newest first.
    let newest = accounts.audit(&root, 1000).await.unwrap();
    assert_eq!(newest[0].at, T0.plus(Duration::from_secs(10)));
    assert_eq!(newest.last().unwrap().at, T0);
    assert_eq!(accounts.audit(&root, 2).await.unwrap().len(), 2);
}

#[tokio::test]
async fn refused_actions_leave_no_trace_and_only_admins_read_the_trail() {
    let app = app();
    let root = app.user("root", &[PermissionName::admin()]).await;
    let alice = app.creator("alice").await;
    let bob = app.user("bob", &[]).await;
    let lobby = app.room(&alice, "lobby", Visibility::Public).await;
    let before = trail(&app, &root).await;

    let alice_name = alice.user().unwrap().name.clone();
    assert!(
        app.services
            .moderation
            .kick(&bob, &lobby, &alice_name)
            .await
            .is_err()
    );
    assert!(
        app.services
            .accounts
            .delete_user(&bob, &alice_name)
            .await
            .is_err()
    );
    assert!(
        app.services
            .accounts
            .change_own_password(&bob, None, "wrong", Password::parse("whatever").unwrap())
            .await
            .is_err()
    );
    assert_eq!(trail(&app, &root).await, before);

    for who in [&Actor::Guest, &bob, &alice] {
        let err = app.services.accounts.audit(who, 10).await.unwrap_err();
        assert!(
            matches!(
                err,
                AccountError::Forbidden(_) | AccountError::Unauthenticated
            ),
            "{who:?}: {err:?}"
        );
    }
    assert!(matches!(
        app.services.accounts.audit(&Actor::Guest, 10).await,
        Err(AccountError::Unauthenticated)
    ));
}

#[tokio::test]
async fn changing_my_password_needs_the_old_one_and_ends_my_other_sessions() {
    let app = app();
    let alice = app.user("alice", &[]).await;
    let accounts = &app.services.accounts;
    let (_, here) = accounts.login("alice", PASSWORD).await.unwrap();
    let (_, elsewhere) = accounts.login("alice", PASSWORD).await.unwrap();

    let wrong = accounts
        .change_own_password(
            &alice,
            Some(&here.id),
            "not it",
            Password::parse("new secret").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(wrong, AccountError::WrongPassword), "{wrong:?}");
    assert_eq!(wrong.code(), ErrorCode::Forbidden);
    assert!(accounts.login("alice", PASSWORD).await.is_ok());

    accounts
        .change_own_password(
            &alice,
            Some(&here.id),
            PASSWORD,
            Password::parse("new secret").unwrap(),
        )
        .await
        .unwrap();
    assert!(matches!(
        accounts.actor(Some(&here.id)).await.unwrap(),
        Actor::User(_)
    ));
    assert_eq!(
        accounts.actor(Some(&elsewhere.id)).await.unwrap(),
        Actor::Guest
    );
    assert!(matches!(
        accounts.login("alice", PASSWORD).await,
        Err(LoginError::InvalidCredentials)
    ));
    assert!(accounts.login("alice", "new secret").await.is_ok());
    assert!(matches!(
        accounts
            .change_own_password(
                &Actor::Guest,
                None,
                PASSWORD,
                Password::parse("x-secret").unwrap()
            )
            .await,
        Err(AccountError::Unauthenticated)
    ));
}

/// An audit store that is down: every write and read fails as unavailable.
struct DownAuditLog;

#[async_trait::async_trait]
impl chat_domain::AuditLog for DownAuditLog {
    async fn record(&self, _: chat_domain::AuditEntry) -> chat_domain::StoreResult<()> {
        Err(chat_domain::StoreError::unavailable("audit store down"))
    }
    async fn recent(&self, _: usize) -> chat_domain::StoreResult<Vec<chat_domain::AuditEntry>> {
        Err(chat_domain::StoreError::unavailable("audit store down"))
    }
}

#[tokio::test]
async fn an_audit_outage_neither_refuses_nor_undoes_the_action() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(T0));
    let mut ports = Ports::single(Arc::clone(&store), clock);
    ports.audit = Arc::new(DownAuditLog);
    let services = Services::with_bot(
        &ports,
        None,
        None,
        PasswordHasher::with_params(1024, 1, 1),
        Arc::new(CorpusBot::new("bot", "?", Arc::clone(&ports.corpus))),
    );
    let root = Actor::User(
        services
            .accounts
            .create_user(
                &Actor::System,
                name("root"),
                Password::parse(PASSWORD).unwrap(),
                [PermissionName::admin()].into(),
            )
            .await
            .unwrap(),
    );
    services
        .accounts
        .create_user(
            &root,
            name("alice"),
            Password::parse(PASSWORD).unwrap(),
            [].into(),
        )
        .await
        .unwrap();
    let lobby = room_name("lobby");
    services
        .rooms
        .create(
            &root,
            lobby.clone(),
            Description::empty(),
            Visibility::Public,
        )
        .await
        .unwrap();
    services
        .moderation
        .mute(&root, &lobby, &name("alice"), None)
        .await
        .unwrap();
    assert_eq!(
        services
            .moderation
            .mutes(&root, &lobby)
            .await
            .unwrap()
            .len(),
        1
    );
    services
        .accounts
        .delete_user(&root, &name("alice"))
        .await
        .unwrap();
    assert!(matches!(
        services.accounts.user(&root, &name("alice")).await,
        Err(AccountError::NotFound)
    ));
    // Reading the trail is what fails, and says so.
    let err = services.accounts.audit(&root, 10).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable);
}

/// The next room event within the patience, or `None` when the bus is quiet
/// (the memory bus delivers at once, so a short wait is enough).
async fn next_event(events: &mut chat_domain::EventStream<RoomEvent>) -> Option<RoomEvent> {
    match tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        Ok(Some(chat_domain::Delivery::Event(e))) => Some((*e).clone()),
        Ok(Some(chat_domain::Delivery::Lagged)) => panic!("the bus lagged"),
        Ok(None) => panic!("the bus closed"),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_connection_that_stops_heartbeating_goes_offline_after_the_timeout_with_one_leave() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(T0));
    let ports = Ports::single(Arc::clone(&store), clock.clone());
    let ttl = Duration::from_secs(3);
    let services = Services::with_config(
        &ports,
        chat_domain::ServiceConfig {
            presence_ttl: ttl,
            hasher: PasswordHasher::with_params(1024, 1, 1),
            ..chat_domain::ServiceConfig::default()
        },
        Arc::new(CorpusBot::new("bot", "?", Arc::clone(&ports.corpus))),
    );
    let app = App {
        store,
        clock,
        services,
    };
    let chat = &app.services.chat;
    assert_eq!(chat.presence_ttl(), ttl);
    let alice = app.creator("alice").await;
    let bob = app.user("bob", &[]).await;
    let lobby = app.room(&alice, "闲聊-1", Visibility::Public).await;
    let mut events = app.store.subscribe(&lobby).await.unwrap();
    let (silent, live) = (
        chat_domain::ConnectionId("silent".into()),
        chat_domain::ConnectionId("live".into()),
    );
    chat.present(&alice, &lobby, &silent).await.unwrap();
    chat.present(&bob, &lobby, &live).await.unwrap();
    let join = |who: &str| RoomEvent::Presence {
        user: name(who),
        change: chat_domain::PresenceChange::Join,
    };
    assert_eq!(next_event(&mut events).await, Some(join("alice")));
    assert_eq!(next_event(&mut events).await, Some(join("bob")));

    // Bob heartbeats every second; alice's connection has gone silent.
    for second in 1..=2 {
        app.clock.advance(Duration::from_secs(1));
        chat.present(&bob, &lobby, &live).await.unwrap();
        assert_eq!(chat.expire_presence().await.unwrap(), 0, "at {second} s");
        assert_eq!(
            chat.online(&bob, &lobby).await.unwrap(),
            vec![name("alice"), name("bob")],
            "within the timeout alice is still online"
        );
    }
    app.clock.advance(Duration::from_secs(1));
    chat.present(&bob, &lobby, &live).await.unwrap();
    assert_eq!(
        chat.online(&bob, &lobby).await.unwrap(),
        vec![name("bob")],
        "at the timeout alice is no longer listed"
    );
    assert_eq!(chat.expire_presence().await.unwrap(), 1);
    assert_eq!(chat.expire_presence().await.unwrap(), 0);
    // Her socket finally closes: nothing more to announce.
    chat.absent(&alice, &lobby, &silent).await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        Some(RoomEvent::Presence {
            user: name("alice"),
            change: chat_domain::PresenceChange::Leave,
        })
    );
    assert_eq!(next_event(&mut events).await, None, "exactly one leave");
    assert_eq!(chat.online(&bob, &lobby).await.unwrap(), vec![name("bob")]);
}

#[tokio::test]
async fn slow_mode_lets_a_member_send_once_per_interval_and_spares_moderators() {
    let app = app();
    let alice = app.creator("alice").await;
    let mo = app.user("mo", &[PermissionName::moderate()]).await;
    let bob = app.user("bob", &[]).await;
    let carol = app.user("carol", &[]).await;
    let lobby = app.room(&alice, "闲聊-1", Visibility::Public).await;
    let moderation = &app.services.moderation;
    let mut events = app.store.subscribe(&lobby).await.unwrap();

    // Only the room's moderators set it, and only to 1 s .. 1 h.
    let ten = Some(Duration::from_secs(10));
    assert!(matches!(
        moderation.set_slow_mode(&bob, &lobby, ten).await,
        Err(RoomError::Forbidden(_))
    ));
    assert!(matches!(
        moderation.set_slow_mode(&Actor::Guest, &lobby, ten).await,
        Err(RoomError::Unauthenticated)
    ));
    for bad in [0, 3601] {
        assert!(matches!(
            moderation
                .set_slow_mode(&alice, &lobby, Some(Duration::from_secs(bad)))
                .await,
            Err(RoomError::Invalid(_))
        ));
    }
    assert!(matches!(
        moderation
            .set_slow_mode(&alice, &room_name("nowhere"), ten)
            .await,
        Err(RoomError::NotFound)
    ));
    assert_eq!(next_event(&mut events).await, None, "refusals say nothing");
    assert_eq!(
        app.services
            .rooms
            .join(&bob, &lobby)
            .await
            .unwrap()
            .slow_mode,
        None
    );

    moderation.set_slow_mode(&alice, &lobby, ten).await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        Some(RoomEvent::SlowMode { seconds: Some(10) })
    );
    let Some(RoomEvent::Message(notice)) = next_event(&mut events).await else {
        panic!("no notice in the room's history");
    };
    assert_eq!(notice.kind, chat_domain::MessageKind::Notice);
    assert!(
        notice.text.as_str().contains("10 s"),
        "{}",
        notice.text.as_str()
    );
    assert_eq!(
        app.services
            .rooms
            .join(&bob, &lobby)
            .await
            .unwrap()
            .slow_mode,
        ten
    );
    assert_eq!(
        app.services
            .rooms
            .slow_mode(&Actor::Guest, &lobby)
            .await
            .unwrap(),
        ten
    );

    let first = app.stored(&bob, &lobby, "one").await;
    let err = app.send(&bob, &lobby, "two").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
    app.clock.advance(Duration::from_secs(4));
    let err = app.send(&bob, &lobby, "two").await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(6)));
    assert_eq!(
        app.store_last_seq(&lobby).await,
        first,
        "refused sends store nothing"
    );
    // Others have their own interval; the creator and moderators have none.
    app.stored(&carol, &lobby, "me too").await;
    for who in [&alice, &alice, &mo, &mo] {
        app.stored(who, &lobby, "moderating").await;
    }
    app.clock.advance(Duration::from_secs(6));
    app.stored(&bob, &lobby, "two, at last").await;
    assert!(app.send(&bob, &lobby, "three").await.is_err());
    // Direct messages are not slowed.
    let bob_name = bob.user().unwrap().name.clone();
    for i in 0..3 {
        app.services
            .chat
            .direct(&carol, &bob_name, text(&format!("dm {i}")), None)
            .await
            .unwrap();
    }

    moderation.set_slow_mode(&mo, &lobby, None).await.unwrap();
    assert_eq!(
        app.services
            .rooms
            .join(&bob, &lobby)
            .await
            .unwrap()
            .slow_mode,
        None
    );
    app.stored(&bob, &lobby, "three").await;
    app.stored(&bob, &lobby, "four").await;

    let root = app.user("root", &[PermissionName::admin()]).await;
    let slow: Vec<_> = trail(&app, &root)
        .await
        .into_iter()
        .filter(|e| e.1 == "slow_mode")
        .collect();
    assert_eq!(
        slow,
        vec![
            (
                "alice".to_owned(),
                "slow_mode",
                "闲聊-1".to_owned(),
                "in 闲聊-1: one message every 10 s".to_owned()
            ),
            (
                "mo".to_owned(),
                "slow_mode",
                "闲聊-1".to_owned(),
                "in 闲聊-1: off".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn a_guest_opening_a_public_room_is_greeted_privately_by_the_bot() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(T0));
    let ports = Ports::single(Arc::clone(&store), clock.clone());
    let services = Services::new(
        &ports,
        chat_domain::ServiceConfig {
            bot_name: "鸭鸭".into(),
            bot_greeting: "欢迎! Welcome!".into(),
            hasher: PasswordHasher::with_params(1024, 1, 1),
            ..chat_domain::ServiceConfig::default()
        },
    );
    let app = App {
        store,
        clock,
        services,
    };
    let alice = app.creator("alice").await;
    let lobby = app.room(&alice, "闲聊-1", Visibility::Public).await;
    let chat = &app.services.chat;

    let joined = app
        .services
        .rooms
        .join(&Actor::Guest, &lobby)
        .await
        .unwrap();
    let greeting = chat.greeting(&Actor::Guest, &joined).expect("a greeting");
    assert_eq!(greeting.room, lobby);
    assert_eq!(greeting.from, "鸭鸭");
    assert_eq!(greeting.text, "欢迎! Welcome!");
    assert_eq!(greeting.ts, T0);
    // Users are not greeted, and nothing was stored.
    let joined = app.services.rooms.join(&alice, &lobby).await.unwrap();
    assert!(chat.greeting(&alice, &joined).is_none());
    assert_eq!(app.store_last_seq(&lobby).await, Seq::ZERO);

    // A bot without a greeting greets nobody; the default one has one.
    let quiet = CorpusBot::new("bot", "?", Arc::clone(&ports.corpus)).with_greeting("  ");
    assert!(quiet.greeting().is_none());
    assert!(
        !chat_domain::ServiceConfig::default()
            .bot_greeting
            .is_empty()
    );
}
