//! Screenshots of the chat page, light and dark, at desktop (1280x800) and
//! phone (375x740) sizes, saved under `target/e2e/`; the layout checks that
//! make them worth looking at (nothing wider than the screen, the composer
//! in view); and the theme toggle being remembered.

use std::path::Path;

use chat_tests::{Client, encode, expect_status, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Browser, browser_test};

/// The PNG's width and height, from its header.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (be(16), be(20))
}

async fn post(client: &Client, room: &str, text: &str) {
    let response = client
        .post_json(
            &format!("/api/rooms/{}/messages", encode(room)),
            &json!({ "text": text }),
        )
        .await;
    expect_status(response, StatusCode::CREATED, "post a message").await;
}

/// Nothing sticks out sideways, and the composer is on screen.
async fn assert_fits(b: &Browser, width: u32, height: u32) {
    let layout = b
        .eval("(() => { const r = document.querySelector('#composer-text').getBoundingClientRect(); const s = document.querySelector('[data-scroller]').getBoundingClientRect(); return { scrollWidth: document.documentElement.scrollWidth, composerTop: r.top, composerBottom: r.bottom, composerWidth: r.width, scrollerHeight: s.height }; })()")
        .await;
    assert!(
        layout["scrollWidth"].as_f64().unwrap() <= f64::from(width),
        "[{}] the page is wider than {width}px: {layout}",
        b.label
    );
    assert!(
        layout["composerBottom"].as_f64().unwrap() <= f64::from(height)
            && layout["composerTop"].as_f64().unwrap() >= 0.0
            && layout["composerWidth"].as_f64().unwrap() >= f64::from(width) * 0.5,
        "[{}] the composer is not fully on a {width}x{height} screen: {layout}",
        b.label
    );
    assert!(
        layout["scrollerHeight"].as_f64().unwrap() >= 150.0,
        "[{}] hardly any room for messages at {width}x{height}: {layout}",
        b.label
    );
}

async fn shoot(b: &Browser, name: &str, width: u32, height: u32) {
    b.eval("document.querySelector('[data-scroller]').scrollTop = 1e9")
        .await;
    // Let the avatars and layout settle: every image loaded.
    b.wait_until(
        "images loaded",
        "Array.from(document.images).every((i) => i.complete)",
    )
    .await;
    let path = b.screenshot(name).await;
    assert_eq!(png_size(&path), (width, height), "{}", path.display());
}

#[tokio::test]
async fn the_chat_page_is_photographed_light_and_dark_on_desktop_and_phone() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let alice = app.create_user("alice", &["create_room"]).await;
        let alice_api = app.login(&alice).await;
        let bob_api = app.user_client("bob", &[]).await;
        let mei = app.user_client("美玲", &[]).await;
        let room = "launch";
        let response = alice_api
            .post_json(
                "/api/rooms",
                &json!({ "name": room, "description": "Everything about Friday's release. Be kind, be brief.", "visibility": "public" }),
            )
            .await;
        expect_status(response, StatusCode::CREATED, "create the room").await;
        post(&bob_api, room, "Morning! Did the new build go out?").await;
        post(&alice_api, room, "Yes, at 9:30. Release notes: https://example.com/notes").await;
        post(&alice_api, room, "Two things left:\n- the avatar cache\n- the README screenshot").await;
        post(&mei, room, "我来更新 README 的截图。").await;
        post(&bob_api, room, "Great, thanks both. I'll watch the error rates this afternoon.").await;
        // Bob is in the room and typing when the picture is taken.
        let mut bob_ws = bob_api.ws().await;
        bob_ws.join(room, None).await;

        let a = rig.browser(&app.base_url, "alice").await;
        a.log_in(&alice).await;
        a.open_room(room).await;
        a.wait_until("bob online", "document.querySelector('[data-members] li[data-user=\"bob\"].online')").await;

        // Desktop, light (the default of a fresh profile in light mode).
        a.cdp("Emulation.setEmulatedMedia", json!({ "features": [{ "name": "prefers-color-scheme", "value": "light" }] })).await;
        a.reload().await;
        a.wait_until_joined().await;
        assert_eq!(a.eval("document.documentElement.dataset.theme").await, "light");
        a.type_keys("#composer-text", "Let's ship it").await;
        bob_ws.send_json(json!({ "type": "typing", "room": room })).await;
        a.wait_until("bob typing", "document.querySelector('[data-typing]').textContent !== ''").await;
        assert_fits(&a, 1280, 800).await;
        shoot(&a, "chat-desktop-light", 1280, 800).await;

        // The toggle switches to dark, and it is remembered.
        assert_eq!(a.text("[data-theme-toggle] .theme-label").await, "Dark theme");
        assert_eq!(
            a.eval("document.querySelector('[data-theme-toggle]').getAttribute('aria-pressed')").await,
            "false"
        );
        a.click("[data-theme-toggle]").await;
        assert_eq!(a.eval("document.documentElement.dataset.theme").await, "dark");
        a.reload().await;
        a.wait_until_joined().await;
        assert_eq!(a.eval("document.documentElement.dataset.theme").await, "dark");
        assert_eq!(a.eval("document.querySelector('[data-theme-toggle]').getAttribute('aria-pressed')").await, "true");
        bob_ws.send_json(json!({ "type": "typing", "room": room })).await;
        a.wait_until("bob typing", "document.querySelector('[data-typing]').textContent !== ''").await;
        shoot(&a, "chat-desktop-dark", 1280, 800).await;

        // A phone.
        a.viewport(375, 740, true).await;
        a.reload().await;
        a.wait_until_joined().await;
        assert_fits(&a, 375, 740).await;
        let bar = a.eval("document.querySelector('.topbar').getBoundingClientRect().height").await;
        assert!(bar.as_f64().unwrap() <= 60.0, "the top bar takes {bar}px of a phone");
        shoot(&a, "chat-phone-dark", 375, 740).await;
        a.click("[data-theme-toggle]").await;
        assert_eq!(a.eval("document.documentElement.dataset.theme").await, "light");
        assert_fits(&a, 375, 740).await;
        shoot(&a, "chat-phone-light", 375, 740).await;

        // The room list on a phone, too.
        a.goto("/rooms").await;
        let width = a.eval("document.documentElement.scrollWidth").await;
        assert!(width.as_f64().unwrap() <= 375.0, "the room list is {width}px wide");
        a.screenshot("rooms-phone-light").await;
        a.assert_clean().await;
    })
    .await;
}

#[tokio::test]
async fn long_words_wrap_instead_of_widening_the_page() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let long_name = "長".repeat(16) + &"n".repeat(16);
        let writer = app.user_client(&long_name, &["create_room"]).await;
        let room = "r".repeat(64);
        let response = writer
            .post_json(
                "/api/rooms",
                &json!({ "name": room, "description": "d".repeat(300), "visibility": "public" }),
            )
            .await;
        expect_status(response, StatusCode::CREATED, "create the room").await;
        post(&writer, &room, &"x".repeat(400)).await;
        post(&writer, &room, &format!("https://example.com/{}", "path/".repeat(60))).await;
        post(&writer, &room, &"汉".repeat(300)).await;

        let b = rig.browser(&app.base_url, "reader").await;
        let user = chat_tests::TestUser::new(&long_name);
        b.log_in(&user).await;
        for (width, height, mobile) in [(1280, 800, false), (375, 740, true)] {
            b.viewport(width, height, mobile).await;
            b.open_room(&room).await;
            assert_fits(&b, width, height).await;
            let overflowing = b
                .eval("Array.from(document.querySelectorAll('.chat *, .panel *, .topbar *')).filter((e) => e.scrollWidth > e.clientWidth + 1 && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)).map((e) => e.tagName + '.' + e.className)")
                .await;
            // Ellipses (names cut short on purpose) are fine; a sideways scrollbar is not.
            assert_eq!(overflowing, json!([]), "scrolled sideways at {width}px");
            if mobile {
                b.screenshot("long-words-phone").await;
            }
            b.goto("/rooms").await;
            let page = b.eval("document.documentElement.scrollWidth").await;
            assert!(page.as_f64().unwrap() <= f64::from(width), "the room list is {page}px wide at {width}px");
        }
        b.assert_clean().await;
    })
    .await;
}
