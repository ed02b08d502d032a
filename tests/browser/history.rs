//! Scrolling up through a long history: older pages load as the reader
//! nears the top, and what they were reading stays exactly where it was.

use chat_tests::{spawn_app_with, without_rate_limit};
use serde_json::Value;

use crate::harness::{Browser, browser_test};

/// How many messages the room holds: the page opens on the last 50.
const TOTAL: u64 = 130;

/// Scrolls the messages to `scroll_top` and, in the same script (before the
/// scroll event can ask for more), returns the first message at least partly
/// visible and its top relative to the scroller's top.
async fn scroll_and_anchor(b: &Browser, scroll_top: u32) -> Value {
    b.eval(&format!(
        "(() => {{ const s = document.querySelector('[data-scroller]'); s.scrollTop = {scroll_top}; const top = s.getBoundingClientRect().top; \
         const li = Array.from(s.querySelectorAll('li.msg[data-seq]')).find((li) => li.getBoundingClientRect().bottom > top + 1); \
         return {{ seq: Number(li.dataset.seq), offset: li.getBoundingClientRect().top - top, count: s.querySelectorAll('li.msg[data-seq]').length }}; }})()",
    ))
    .await
}

async fn offset_of(b: &Browser, seq: u64) -> f64 {
    b.eval(&format!(
        "document.querySelector('[data-messages] li[data-seq=\"{seq}\"]').getBoundingClientRect().top - document.querySelector('[data-scroller]').getBoundingClientRect().top"
    ))
    .await
    .as_f64()
    .unwrap()
}

#[tokio::test]
async fn scrolling_up_loads_older_pages_without_a_jump() {
    browser_test(|rig| async move {
        let app = spawn_app_with(without_rate_limit).await;
        let alice = app.user_client("alice", &["create_room"]).await;
        alice.create_room_ok("long").await;
        let mut ws = alice.ws().await;
        ws.join("long", None).await;
        for i in 1..=TOTAL {
            // Some long ones, so pages differ in height.
            let text = if i % 7 == 0 {
                format!("message {i}\n(a longer one, on\nthree lines)")
            } else {
                format!("message {i}")
            };
            ws.send_and_wait("long", &text, &format!("c-{i}")).await;
        }

        let b = rig.browser(&app.base_url, "reader").await;
        b.open_room("long").await;
        assert_eq!(b.message_seqs().await, ((TOTAL - 49)..=TOTAL).collect::<Vec<_>>());
        // Opened at the bottom.
        b.wait_until(
            "the newest message in view",
            "(() => { const s = document.querySelector('[data-scroller]'); return s.scrollHeight - s.scrollTop - s.clientHeight < 2; })()",
        )
        .await;

        // The reader scrolls near the top: the next page loads above, and the
        // message they were reading does not move.
        let before = scroll_and_anchor(&b, 120).await;
        assert_eq!(before["count"], 50, "nothing loaded before the scroll");
        b.wait_until(
            "the second page",
            "document.querySelectorAll('[data-messages] li.msg[data-seq]').length === 100 && !window.hihichat.loadingOlder",
        )
        .await;
        let seq = before["seq"].as_u64().unwrap();
        let moved = offset_of(&b, seq).await - before["offset"].as_f64().unwrap();
        assert!(moved.abs() <= 1.0, "message {seq} jumped by {moved}px");

        // With the mouse wheel, up to the very beginning.
        for _ in 0..20 {
            if b.eval("window.hihichat.more").await == false {
                break;
            }
            let count = b.message_seqs().await.len();
            wheel_up(&b).await;
            b.wait_until(
                "another page",
                &format!(
                    "document.querySelectorAll('[data-messages] li.msg[data-seq]').length > {count} && !window.hihichat.loadingOlder || !window.hihichat.more"
                ),
            )
            .await;
        }
        assert_eq!(b.message_seqs().await, (1..=TOTAL).collect::<Vec<_>>());
        assert_eq!(
            b.text("[data-history-edge]").await,
            "This is the beginning of the conversation."
        );

        // Scrolled up, a new message does not pull the reader down: a marker
        // says it came, and takes them there when clicked.
        let reading = scroll_and_anchor(&b, 2000).await;
        assert_eq!(b.eval("document.querySelector('[data-new-marker]').hidden").await, true);
        ws.send_and_wait("long", "while you were reading", "c-new").await;
        b.wait_until("the new-messages marker", "!document.querySelector('[data-new-marker]').hidden").await;
        let seq = reading["seq"].as_u64().unwrap();
        let moved = offset_of(&b, seq).await - reading["offset"].as_f64().unwrap();
        assert!(moved.abs() <= 1.0, "message {seq} moved by {moved}px when a new one came");
        assert_eq!(b.text("[data-messages] .unread-divider").await, "New messages");
        b.click("[data-new-marker]").await;
        b.wait_until(
            "the newest message in view",
            "(() => { const s = document.querySelector('[data-scroller]'); return s.scrollHeight - s.scrollTop - s.clientHeight < 2; })()",
        )
        .await;
        assert_eq!(b.eval("document.querySelector('[data-new-marker]').hidden").await, true);
        assert_eq!(b.eval("document.activeElement.id").await, "composer-text");
        b.assert_clean().await;
    })
    .await;
}

/// Turns the mouse wheel up over the messages, as a reader does.
async fn wheel_up(b: &Browser) {
    b.wheel("[data-scroller]", -3000).await;
}
