//! Hostile and unusual text everywhere a user can put text: messages, room
//! names, descriptions, usernames. Every piece shows up as exactly the text
//! that was sent, on the live path (chat.js) and the server-rendered path
//! (askama), and nothing runs.
//!
//! The viewer's browser ignores the CSP (`Page.setBypassCSP`), so a payload
//! that got into the page as markup would really run there and set
//! `window.__pwned`: escaping is tested on its own, not hidden behind the
//! CSP. The sender's browser keeps the CSP and must report no violation.

use std::time::Duration;

use chat_tests::spawn_app;
use serde_json::{Value, json};

use crate::harness::{Browser, browser_test, keys};

/// Message texts: markup, script in every disguise, entities, template
/// syntax, bidirectional and zero-width characters, Chinese and emoji.
const PAYLOADS: &[&str] = &[
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'\">",
    "<svg onload=\"window.__pwned = 'svg'\"><circle r=\"9\"/></svg>",
    "<a href=\"javascript:window.__pwned = 'href'\">click me</a>",
    "javascript:window.__pwned = 'bare'",
    "\"><iframe srcdoc=\"<script>parent.__pwned = 'iframe'</script>\"></iframe>",
    "</textarea></p></li><script>window.__pwned = 'close'</script>",
    "<style>body { display: none }</style>",
    "&lt;b&gt;not bold&lt;/b&gt; &amp;amp; &#60;script&#62; &quot;",
    "{{ 7*7 }} ${7*7} <%= 7*7 %> {% raw %}",
    "see https://example.com/a\"onmouseover=\"window.__pwned='link' x",
    "\u{202E}gnp.exe \u{200F}שלום עולם\u{200F} مرحبا بالعالم",
    "zero\u{200B}width\u{200C}non\u{200D}joiner\u{FEFF}!",
    "你好，世界！ 👋🏽 👨‍👩‍👧 🇨🇳",
    "  spaces around  ",
    "tab\there\nand a new line",
];

/// The room's description: the same kinds of things, in the one free-text
/// field of a room.
const DESCRIPTION: &str = "<img src=x onerror=\"window.__pwned = 'desc'\"> <script>window.__pwned = 'desc2'</script> &amp; \u{202E}txt 你好 👋 javascript:alert(1)";

/// Room names may hold letters of any script, digits, `-`, `_` and `.`.
const ROOM: &str = "闲聊.xss-1_مرحبا";
/// Usernames likewise.
const SENDER: &str = "小明";
const VIEWER: &str = "مرحبا_1";

/// Checks the messages on `b`'s page: exactly [`PAYLOADS`], no markup of
/// theirs in the page, links only to http(s) and opened safely.
async fn assert_exact_and_inert(b: &Browser, path: &str) {
    let texts = b.message_texts().await;
    let expected: Vec<String> = PAYLOADS.iter().map(|p| (*p).to_owned()).collect();
    assert_eq!(
        texts, expected,
        "[{}] the texts on the {path} page",
        b.label
    );
    let intruders = b
        .eval("Array.from(document.querySelectorAll('[data-messages] script, [data-messages] iframe, [data-messages] svg, [data-messages] style, [data-messages] img:not(.avatar), [data-messages] [onerror], [data-messages] [onload], [data-messages] [onmouseover]'), (e) => e.outerHTML)")
        .await;
    assert_eq!(
        intruders,
        json!([]),
        "[{}] markup from a message ({path})",
        b.label
    );
    let links = b
        .eval("Array.from(document.querySelectorAll('[data-messages] .msg-text a'), (a) => ({ href: a.getAttribute('href'), rel: a.rel, text: a.textContent }))")
        .await;
    assert_eq!(
        links,
        json!([{ "href": "https://example.com/a", "rel": "noopener noreferrer", "text": "https://example.com/a" }]),
        "[{}] links in messages ({path})",
        b.label
    );
}

async fn room_texts(b: &Browser) -> Value {
    b.eval("({ title: document.title, h1: document.querySelector('#room-title span').textContent, desc: document.querySelector('.room-desc')?.textContent, members: Array.from(document.querySelectorAll('[data-members] li[data-user] .member-name'), (m) => m.textContent).sort() })")
        .await
}

#[tokio::test]
async fn hostile_text_shows_as_exact_text_and_runs_nothing() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let sender = app.create_user(SENDER, &["create_room"]).await;
        let viewer = app.create_user(VIEWER, &[]).await;

        let s = rig.browser(&app.base_url, SENDER).await;
        let v = rig.browser(&app.base_url, VIEWER).await;
        v.cdp("Page.setBypassCSP", json!({ "enabled": true })).await;
        s.log_in(&sender).await;
        v.log_in(&viewer).await;

        // The room, made through the form.
        s.insert_text("#room-name", ROOM).await;
        s.insert_text("#room-description", DESCRIPTION).await;
        s.click("form[data-create-room] button[type=submit]").await;
        s.wait_until("the room page", "document.querySelector('#room-title')").await;
        s.wait_until_joined().await;
        v.open_room(ROOM).await;
        s.wait_until("the viewer online", "document.querySelector('[data-members] li.online .member-name')?.textContent === 'مرحبا_1'").await;

        for payload in PAYLOADS {
            s.insert_text("#composer-text", payload).await;
            s.type_keys("#composer-text", &keys::ENTER.to_string()).await;
        }
        let n = PAYLOADS.len();
        for b in [&s, &v] {
            b.wait_until(
                "every payload stored",
                &format!("document.querySelectorAll('[data-messages] li.msg[data-seq]').length === {n} && !document.querySelector('[data-messages] li.pending, [data-messages] li.failed')"),
            )
            .await;
            assert_exact_and_inert(b, "live").await;
        }
        let expected_room = json!({
            "title": format!("{ROOM} · hihichat"),
            "h1": ROOM,
            "desc": DESCRIPTION,
            "members": [VIEWER, SENDER],
        });
        assert_eq!(room_texts(&v).await, expected_room);

        // The server-rendered page, after a reload.
        v.reload().await;
        v.wait_until_joined().await;
        assert_exact_and_inert(&v, "reloaded").await;
        assert_eq!(room_texts(&v).await, expected_room);

        // The room list.
        v.goto("/rooms").await;
        let card = v
            .eval("(() => { const c = document.querySelector('.room-card'); return { name: c.querySelector('.room-name').textContent, desc: c.querySelector('.room-desc').textContent, by: c.querySelector('.room-meta').textContent.trim().split('by ').pop() }; })()")
            .await;
        assert_eq!(card, json!({ "name": ROOM, "desc": DESCRIPTION, "by": SENDER }));
        assert_eq!(v.text("[data-whoami]").await, VIEWER);

        // An image's error handler runs a moment after the page: give it one.
        tokio::time::sleep(Duration::from_millis(300)).await;
        v.assert_clean().await;
        s.assert_clean().await;
    })
    .await;
}
