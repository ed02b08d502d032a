//! The chat page between people: two browsers chatting both ways with
//! presence and typing, the composer's keys, reload, direct messages, and a
//! guest answered by the bot.

use std::time::Duration;

use chat_tests::{encode, expect_status, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{browser_test, js_str, keys};

/// Waits until the page shows a stored message with exactly `text`.
async fn wait_for_message(b: &crate::harness::Browser, text: &str) {
    b.wait_until(
        &format!("the message {text:?}"),
        &format!(
            "Array.from(document.querySelectorAll('[data-messages] li.msg[data-seq] .msg-text')).some((p) => p.textContent === {})",
            js_str(text)
        ),
    )
    .await;
}

#[tokio::test]
async fn two_people_chat_both_ways_and_see_presence_and_typing() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let alice = app.create_user("alice", &["create_room"]).await;
        let bob = app.create_user("bob", &[]).await;
        app.login(&alice).await.create_room_ok("lobby").await;

        let a = rig.browser(&app.base_url, "alice").await;
        let b = rig.browser(&app.base_url, "bob").await;
        a.log_in(&alice).await;
        b.log_in(&bob).await;
        a.open_room("lobby").await;
        b.open_room("lobby").await;

        // Presence: each sees the other online.
        a.wait_until("bob online", "document.querySelector('[data-members] li[data-user=\"bob\"].online')").await;
        b.wait_until("alice online", "document.querySelector('[data-members] li[data-user=\"alice\"].online')").await;
        assert_eq!(b.text("[data-member-count]").await, "2");

        // Typing shows on the other side and goes away by itself.
        a.type_keys("#composer-text", "hel").await;
        b.wait_until("alice typing", "document.querySelector('[data-typing]').textContent === 'alice is typing…'").await;
        assert_eq!(a.text("[data-typing]").await, "", "the typer sees no indicator of her own");
        b.wait_until_for(
            "the typing indicator to go away",
            "document.querySelector('[data-typing]').textContent === ''",
            Duration::from_secs(9),
        )
        .await;

        // Enter sends.
        a.type_keys("#composer-text", &format!("lo{}", keys::ENTER)).await;
        wait_for_message(&b, "hello").await;
        wait_for_message(&a, "hello").await;
        a.wait_until("the ack", "!document.querySelector('[data-messages] li.pending')").await;
        assert_eq!(a.eval("document.querySelector('#composer-text').value").await, "");
        assert_eq!(
            a.eval("document.querySelector('[data-messages] li.msg[data-seq=\"1\"]').classList.contains('mine')").await,
            true
        );
        assert_eq!(
            b.eval("document.querySelector('[data-messages] li.msg[data-seq=\"1\"]').classList.contains('mine')").await,
            false
        );

        // Shift+Enter is a new line; Ctrl+Enter sends too.
        a.type_keys(
            "#composer-text",
            &format!(
                "line one{}{}{}line two{}{}{}",
                keys::SHIFT,
                keys::ENTER,
                keys::NULL,
                keys::CONTROL,
                keys::ENTER,
                keys::NULL
            ),
        )
        .await;
        wait_for_message(&b, "line one\nline two").await;
        // Two messages of one sender in a row share one header.
        assert_eq!(
            b.eval("document.querySelector('[data-messages] li.msg[data-seq=\"2\"]').classList.contains('cont')").await,
            true
        );

        // Bob answers, in Chinese.
        b.insert_text("#composer-text", "你好 alice").await;
        b.type_keys("#composer-text", &keys::ENTER.to_string()).await;
        wait_for_message(&a, "你好 alice").await;
        assert_eq!(
            a.message_texts().await,
            vec!["hello", "line one\nline two", "你好 alice"]
        );
        assert_eq!(b.message_texts().await, a.message_texts().await);
        assert_eq!(a.message_seqs().await, vec![1, 2, 3]);

        // Times are the reader's local time, with the full date on hover.
        let time = a
            .eval("(() => { const t = document.querySelector('[data-messages] li[data-seq=\"3\"] time'); return { text: t.textContent, title: t.title, dt: t.getAttribute('datetime') }; })()")
            .await;
        assert!(
            time["text"].as_str().is_some_and(|t| t.contains(':')) && !time["title"].as_str().unwrap_or_default().is_empty(),
            "{time}"
        );

        // A reload keeps the history, in order, drawn by the server.
        a.reload().await;
        a.wait_until_joined().await;
        assert_eq!(
            a.message_texts().await,
            vec!["hello", "line one\nline two", "你好 alice"]
        );
        assert_eq!(a.message_seqs().await, vec![1, 2, 3]);
        b.wait_until("alice back online", "document.querySelector('[data-members] li[data-user=\"alice\"].online')").await;

        // Clicking a member's name opens a direct conversation.
        a.click("[data-members] li[data-user=\"bob\"] a.member-name").await;
        a.wait_until("the direct room", "document.querySelector('#chat')?.dataset.room === '@alice+bob'").await;
        a.wait_until("the direct page ready", "window.hihichat && window.hihichat.ready").await;
        a.type_keys("#composer-text", &format!("psst{}", keys::ENTER)).await;
        wait_for_message(&a, "psst").await;
        // Bob, still in the lobby, gets it in his sidebar with an unread badge.
        let badge = b
            .wait_until(
                "bob's unread badge",
                "(() => { const a = document.querySelector('[data-dm-list] a[data-room=\"@alice+bob\"]'); const badge = a && a.querySelector('[data-unread]'); return badge && !badge.hidden && badge.textContent; })()",
            )
            .await;
        assert_eq!(badge, "1 unread");
        b.click("[data-dm-list] a[data-room=\"@alice+bob\"]").await;
        b.wait_until("bob in the direct room", "document.querySelector('#chat')?.dataset.room === '@alice+bob'").await;
        b.wait_until_joined().await;
        assert_eq!(b.message_texts().await, vec!["psst"]);
        assert_eq!(
            b.eval("document.querySelector('[data-dm-list] a[data-room=\"@alice+bob\"] [data-unread]').hidden").await,
            true
        );

        // Bob leaves the lobby: alice, back there, sees him go offline.
        a.open_room("lobby").await;
        b.goto("/rooms").await;
        a.wait_until("bob offline", "document.querySelector('[data-members] li[data-user=\"bob\"]:not(.online)')").await;

        a.assert_clean().await;
        b.assert_clean().await;
    })
    .await;
}

#[tokio::test]
async fn a_guest_reads_the_history_and_is_answered_by_the_bot() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let alice = app.user_client("alice", &["create_room"]).await;
        alice.create_room_ok("大厅").await;
        for text in ["第一条", "second", "third, with a link https://example.com/x"] {
            let response = alice
                .post_json(&format!("/api/rooms/{}/messages", encode("大厅")), &json!({ "text": text }))
                .await;
            expect_status(response, StatusCode::CREATED, "post a message").await;
        }

        let g = rig.browser(&app.base_url, "guest").await;
        g.open_room("大厅").await;
        assert_eq!(
            g.message_texts().await,
            vec!["第一条", "second", "third, with a link https://example.com/x"]
        );
        let link = g
            .eval("(() => { const a = document.querySelector('[data-messages] li[data-seq=\"3\"] a'); return { href: a.href, rel: a.rel, text: a.textContent }; })()")
            .await;
        assert_eq!(
            link,
            json!({ "href": "https://example.com/x", "rel": "noopener noreferrer", "text": "https://example.com/x" })
        );
        assert!(
            g.text(".guest-note").await.as_str().is_some_and(|t| t.contains("You are a guest")),
            "the guest is told who answers"
        );

        // The bot greets a guest first, privately.
        let greeting = g
            .wait_until(
                "the bot's greeting",
                "(() => { const li = document.querySelector('[data-messages] li.msg.private'); return li && li.querySelector('.msg-text').textContent; })()",
            )
            .await;
        assert!(greeting.as_str().is_some_and(|t| t.contains("小黄鸭")), "{greeting}");

        g.insert_text("#composer-text", "小黄鸭你好").await;
        g.type_keys("#composer-text", &keys::ENTER.to_string()).await;
        let reply = g
            .wait_until(
                "the bot's answer",
                "(() => { const all = document.querySelectorAll('[data-messages] li.msg.private'); const li = all.length > 1 && all[all.length - 1]; return li && { from: li.querySelector('.msg-from').textContent, text: li.querySelector('.msg-text').textContent, tag: li.querySelector('.tag-private')?.textContent }; })()",
            )
            .await;
        assert!(!reply["from"].as_str().unwrap_or_default().is_empty(), "{reply}");
        // "你好" is in the built-in corpus: the answer comes from it, not the fallback.
        let answer = reply["text"].as_str().unwrap_or_default();
        assert!(!answer.is_empty() && answer != greeting.as_str().unwrap_or_default(), "{reply}");
        assert!(!answer.contains("还不太明白"), "the fallback answered: {reply}");
        assert_eq!(reply["tag"], "only you can see this");
        // The guest's own line says who saw it, and is not pending any more.
        g.wait_until(
            "the guest's line settled",
            "(() => { const li = Array.from(document.querySelectorAll('[data-messages] li.mine')).pop(); return li && !li.classList.contains('pending') && li.querySelector('.msg-state')?.textContent.startsWith('Only you and'); })()",
        )
        .await;
        g.assert_clean().await;

        // Nothing the guest said entered the room.
        let history = alice.all_messages("大厅").await;
        assert_eq!(history.len(), 3, "{history:?}");
    })
    .await;
}

#[tokio::test]
async fn a_moderator_mutes_and_removes_from_the_member_list() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let alice = app.create_user("alice", &["create_room"]).await;
        let bob = app.create_user("bob", &[]).await;
        app.login(&alice).await.create_room_ok("lobby").await;
        let a = rig.browser(&app.base_url, "alice").await;
        let b = rig.browser(&app.base_url, "bob").await;
        a.log_in(&alice).await;
        b.log_in(&bob).await;
        a.open_room("lobby").await;
        b.open_room("lobby").await;
        a.wait_until("bob in the list", "document.querySelector('[data-members] li[data-user=\"bob\"].online')").await;
        assert_eq!(
            b.eval("document.querySelector('[data-members] select') === null").await,
            true,
            "bob may not moderate: no menu for him"
        );

        // Mute for 5 minutes, from alice's member list.
        a.select("[data-members] li[data-user=\"bob\"] select", "Mute 5 min").await;
        a.wait_until("bob marked muted", "!document.querySelector('[data-members] li[data-user=\"bob\"] [data-muted-tag]').hidden").await;
        let notice = b
            .wait_until("bob told he is muted", "!document.querySelector('[data-notice-banner]').hidden && document.querySelector('[data-notice-banner]').textContent")
            .await;
        assert!(notice.as_str().is_some_and(|n| n.starts_with("A moderator muted you in this room until")), "{notice}");
        assert_eq!(b.eval("document.querySelector('#composer-text').disabled").await, true);
        b.wait_until("bob sees himself muted", "!document.querySelector('[data-members] li[data-user=\"bob\"] [data-muted-tag]').hidden").await;

        // Unmute: bob may talk again.
        a.select("[data-members] li[data-user=\"bob\"] select", "Unmute").await;
        b.wait_until("bob's composer back", "!document.querySelector('#composer-text').disabled").await;
        a.wait_until("bob's mark gone", "document.querySelector('[data-members] li[data-user=\"bob\"] [data-muted-tag]').hidden").await;
        b.type_keys("#composer-text", &format!("thanks{}", keys::ENTER)).await;
        wait_for_message(&a, "thanks").await;

        // Remove him, after a confirmation.
        a.select("[data-members] li[data-user=\"bob\"] select", "Remove from room").await;
        let question = a.accept_dialog().await;
        assert_eq!(question, "Remove bob from this room?");
        a.wait_until("bob gone from the list", "!document.querySelector('[data-members] li[data-user=\"bob\"]')").await;
        let notice = b
            .wait_until("bob told he was removed", "document.querySelector('[data-notice-banner]').textContent")
            .await;
        assert_eq!(notice, "A moderator removed you from this room.");
        assert_eq!(b.eval("document.querySelector('#composer-text').disabled").await, true);
        a.assert_clean().await;
        b.assert_clean().await;
    })
    .await;
}

#[tokio::test]
async fn the_room_list_counts_what_came_since_my_last_visit() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let alice = app.create_user("alice", &["create_room"]).await;
        let api = app.login(&alice).await;
        api.create_room_ok("lobby").await;
        api.create_room_ok("quiet").await;
        let bob = app.user_client("bob", &[]).await;
        let mut ws = bob.ws().await;
        ws.join("lobby", None).await;
        ws.send_and_wait("lobby", "one", "c-1").await;

        let a = rig.browser(&app.base_url, "alice").await;
        a.log_in(&alice).await;
        a.open_room("lobby").await;
        a.goto("/rooms").await;
        let badge = "(() => { const b = document.querySelector('a[data-room=\"lobby\"] [data-unread]'); return b.hidden ? '' : b.textContent; })()";
        assert_eq!(a.eval(badge).await, "", "everything in the lobby was seen");

        ws.send_and_wait("lobby", "two", "c-2").await;
        ws.send_and_wait("lobby", "three", "c-3").await;
        a.reload().await;
        a.wait_until("the unread count", &format!("{badge} === '2 unread'")).await;
        assert_eq!(
            a.eval("document.querySelector('a[data-room=\"quiet\"] [data-unread]').hidden").await,
            true
        );
        // Reading them clears the count.
        a.click("a[data-room=\"lobby\"]").await;
        a.wait_until_joined().await;
        a.goto("/rooms").await;
        assert_eq!(a.eval(badge).await, "");
        a.assert_clean().await;
    })
    .await;
}

#[tokio::test]
async fn a_first_direct_message_reaches_a_page_already_open() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let alice = app.create_user("alice", &[]).await;
        let bob = app.create_user("bob", &[]).await;
        let a = rig.browser(&app.base_url, "alice").await;
        let b = rig.browser(&app.base_url, "bob").await;
        a.log_in(&alice).await;
        b.log_in(&bob).await;

        // Both open the conversation before it exists; bob's is a different
        // spelling of the same pair, and lands on the one name.
        b.goto(&format!("/rooms/{}", encode("@bob+alice"))).await;
        b.wait_until(
            "bob's page ready",
            "window.hihichat && window.hihichat.ready",
        )
        .await;
        assert_eq!(b.path().await, "/rooms/@alice+bob");
        assert_eq!(
            b.text("[data-history-edge]").await.as_str().map(str::trim),
            Some("No messages yet. Say hello to alice!")
        );
        a.goto(&format!("/rooms/{}", encode("@alice+bob"))).await;
        a.wait_until(
            "alice's page ready",
            "window.hihichat && window.hihichat.ready",
        )
        .await;

        a.type_keys("#composer-text", &format!("hi bob{}", keys::ENTER))
            .await;
        wait_for_message(&b, "hi bob").await;
        b.wait_until_joined().await;
        b.type_keys("#composer-text", &format!("hi alice{}", keys::ENTER))
            .await;
        wait_for_message(&a, "hi alice").await;
        for page in [&a, &b] {
            assert_eq!(page.message_texts().await, vec!["hi bob", "hi alice"]);
            assert_eq!(page.message_seqs().await, vec![1, 2]);
        }
        // Both sidebars list the conversation.
        for (page, peer) in [(&a, "bob"), (&b, "alice")] {
            page.reload().await;
            page.wait_until_joined().await;
            assert_eq!(
                page.text("[data-dm-list] a[data-room=\"@alice+bob\"] .dm-name")
                    .await,
                peer
            );
        }
        a.assert_clean().await;
        b.assert_clean().await;
    })
    .await;
}
