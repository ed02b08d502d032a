//! The chat page through a network outage (a TCP proxy the test cuts and
//! restores), and a send the server refuses, shown as a failure with a retry.

use std::time::Duration;

use chat_domain::RateLimit;
use chat_tests::{spawn_app, spawn_app_with};

use crate::harness::{Proxy, browser_test, keys};

#[tokio::test]
async fn a_cut_network_shows_the_banner_then_the_missed_messages() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let alice = app.create_user("alice", &["create_room"]).await;
        app.login(&alice).await.create_room_ok("lobby").await;
        let bob = app.user_client("bob", &[]).await;
        let mut bob_ws = bob.ws().await;
        bob_ws.join("lobby", None).await;

        let proxy = Proxy::start(app.addr).await;
        let a = rig.browser(&proxy.base_url, "alice").await;
        a.log_in(&alice).await;
        a.open_room("lobby").await;
        assert_eq!(a.eval("document.querySelector('[data-offline-banner]').hidden").await, true);
        bob_ws.send_and_wait("lobby", "before the cut", "b-0").await;
        a.wait_until("the first message", "document.querySelectorAll('[data-messages] li.msg[data-seq]').length === 1").await;

        proxy.cut();
        a.wait_until("the offline banner", "!document.querySelector('[data-offline-banner]').hidden").await;
        for i in 1..=3 {
            bob_ws.send_and_wait("lobby", &format!("missed {i}"), &format!("b-{i}")).await;
        }
        // Alice writes meanwhile: her line waits, marked as sending.
        a.type_keys("#composer-text", &format!("written offline{}", keys::ENTER)).await;
        let state = a
            .wait_until("alice's pending line", "document.querySelector('[data-messages] li.pending .msg-state')?.textContent")
            .await;
        assert_eq!(state, "Sending…");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            a.eval("document.querySelector('[data-offline-banner]').hidden").await,
            false,
            "the banner stays while the network is down"
        );

        proxy.restore();
        a.wait_until_for(
            "the banner to go and the gap to fill",
            "document.querySelector('[data-offline-banner]').hidden && !document.querySelector('[data-messages] li.pending') && document.querySelectorAll('[data-messages] li.msg[data-seq]').length === 5",
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(
            a.message_texts().await,
            vec!["before the cut", "missed 1", "missed 2", "missed 3", "written offline"]
        );
        assert_eq!(a.message_seqs().await, vec![1, 2, 3, 4, 5]);
        // Bob (whose socket also carries his own messages) got alice's line once.
        let got = bob_ws.messages("lobby", 5).await;
        let texts: Vec<&str> = got.iter().filter_map(|f| f["text"].as_str()).collect();
        assert_eq!(
            texts,
            vec!["before the cut", "missed 1", "missed 2", "missed 3", "written offline"]
        );
        let extra = bob_ws.drain(Duration::from_millis(300)).await;
        assert!(extra.iter().all(|f| f["type"] != "message"), "{extra:?}");
        a.assert_clean().await;
    })
    .await;
}

#[tokio::test]
async fn a_refused_send_shows_why_and_retries_on_request() {
    browser_test(|rig| async move {
        // One message per two seconds: the second in a row is refused.
        let app = spawn_app_with(|s| {
            s.rate_limit = Some(RateLimit {
                per_second: 0.5,
                burst: 1,
            });
        })
        .await;
        let alice = app.create_user("alice", &["create_room"]).await;
        let api = app.login(&alice).await;
        api.create_room_ok("lobby").await;
        let a = rig.browser(&app.base_url, "alice").await;
        a.log_in(&alice).await;
        a.open_room("lobby").await;

        a.type_keys("#composer-text", &format!("one{}", keys::ENTER)).await;
        a.type_keys("#composer-text", &format!("two{}", keys::ENTER)).await;
        let failed = a
            .wait_until(
                "the refused line",
                "(() => { const li = document.querySelector('[data-messages] li.failed'); return li && { state: li.querySelector('.msg-state').textContent, retry: li.querySelector('.msg-actions button')?.textContent, role: li.querySelector('.msg-actions').getAttribute('role') }; })()",
            )
            .await;
        assert!(
            failed["state"].as_str().is_some_and(|s| s.starts_with("Slow down")),
            "{failed}"
        );
        assert_eq!(failed["retry"], "Retry");
        assert_eq!(failed["role"], "alert");

        tokio::time::sleep(Duration::from_millis(2200)).await;
        a.click("[data-messages] li.failed .msg-actions button").await;
        a.wait_until(
            "the retried line stored",
            "!document.querySelector('[data-messages] li.failed, [data-messages] li.pending') && document.querySelectorAll('[data-messages] li.msg[data-seq]').length === 2",
        )
        .await;
        assert_eq!(a.message_texts().await, vec!["one", "two"]);
        let stored: Vec<String> = api
            .all_messages("lobby")
            .await
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(stored, vec!["one", "two"]);
        a.assert_clean().await;
    })
    .await;
}
