//! Logging in through the form, creating a room through the form, and an
//! admin granting `create_room` through the admin pages.

use chat_tests::spawn_app;
use serde_json::json;

use crate::harness::{browser_test, js_str};

#[tokio::test]
async fn a_user_logs_in_through_the_form_and_creates_a_room() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let carol = app.create_user("carol", &["create_room"]).await;
        let b = rig.browser(&app.base_url, "carol").await;

        // A wrong password: a clear error, the name kept, nothing else said.
        b.goto("/login").await;
        b.type_keys("#username", &carol.name).await;
        b.type_keys("#password", "not-her-password").await;
        b.click("form[data-login-form] button[type=submit]").await;
        let error = b
            .wait_until("the login error", "document.querySelector('#login-error')?.textContent")
            .await;
        assert_eq!(error, "Login failed: wrong username or password.");
        assert_eq!(b.eval("document.querySelector('#username').value").await, "carol");
        assert_eq!(
            b.eval("document.querySelector('#username').getAttribute('aria-invalid')").await,
            "true"
        );

        b.log_in(&carol).await;
        b.find("form[data-create-room]").await;

        // Guessing: after five wrong passwords the form says to wait.
        let erin = app.create_user("erin", &[]).await;
        let guesser = rig.browser(&app.base_url, "guesser").await;
        let mut said = serde_json::Value::Null;
        for attempt in 1..=6 {
            guesser.goto("/login").await;
            guesser.type_keys("#username", &erin.name).await;
            guesser.type_keys("#password", &format!("guess-{attempt}")).await;
            guesser.click("form[data-login-form] button[type=submit]").await;
            said = guesser
                .wait_until("the login error", "document.querySelector('#login-error')?.textContent")
                .await;
        }
        assert!(
            said.as_str().is_some_and(|s| s.starts_with("Too many failed attempts for this account. Wait ")),
            "{said}"
        );
        guesser.assert_clean().await;

        // The form, in Chinese, as a person types it.
        b.insert_text("#room-name", "闲聊-1").await;
        b.insert_text("#room-description", "随便聊聊").await;
        b.click("form[data-create-room] button[type=submit]").await;
        b.wait_until("the new room's page", "document.querySelector('#room-title')")
            .await;
        assert_eq!(b.path().await, "/rooms/闲聊-1");
        assert_eq!(b.text("#room-title span").await, "闲聊-1");
        assert_eq!(b.text(".room-desc").await, "随便聊聊");
        b.wait_until_joined().await;
        b.assert_clean().await;

        // The list shows it with its one member.
        b.goto("/rooms").await;
        let card = b
            .eval("Array.from(document.querySelectorAll('.room-card'), (c) => c.textContent.replace(/\\s+/g, ' ').trim())")
            .await;
        assert_eq!(card, json!(["闲聊-1 随便聊聊 public 1 member by carol"]));

        // The same name again: the form says why and keeps the input.
        b.insert_text("#room-name", "闲聊-1").await;
        b.click("form[data-create-room] button[type=submit]").await;
        let error = b
            .wait_until("the create error", "document.querySelector('#create-error')?.textContent")
            .await;
        assert!(error.as_str().is_some_and(|e| !e.is_empty()), "{error}");
        assert_eq!(b.eval("document.querySelector('#room-name').value").await, json!("闲聊-1"));
        b.assert_clean().await;
    })
    .await;
}

#[tokio::test]
async fn an_admin_grants_create_room_through_the_admin_pages() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let admin = rig.browser(&app.base_url, "admin").await;
        admin.log_in(&app.admin).await;

        // A new user, made through the admin form.
        admin.goto("/admin/users/new").await;
        admin.type_keys("#username", "dave").await;
        admin.type_keys("#password", "dave-password").await;
        admin.type_keys("#password2", "dave-password").await;
        // The form offers create_room ticked; dave starts without it.
        let offered = "form[data-new-user] input[name=\"perm:create_room\"]";
        if admin
            .eval(&format!("document.querySelector({}).checked", js_str(offered)))
            .await
            == true
        {
            admin.click(offered).await;
        }
        admin.click("form[data-new-user] button[type=submit]").await;
        admin
            .wait_until(
                "the new user in the list",
                "document.querySelector('[data-user=\"dave\"]') || document.querySelector('.flash.ok')",
            )
            .await;
        admin.assert_clean().await;

        let dave = rig.browser(&app.base_url, "dave").await;
        dave.log_in(&chat_tests::TestUser::new("dave")).await;
        assert_eq!(
            dave.eval("document.querySelector('form[data-create-room]') === null").await,
            true,
            "dave may not create rooms yet"
        );

        // The admin ticks create_room on dave's page.
        admin.goto("/admin/users").await;
        admin.click("tr[data-user=\"dave\"] a").await;
        admin
            .wait_until("dave's page", "location.pathname === '/admin/users/dave'")
            .await;
        let create_room = "form[data-user-permissions] input[name=\"perm:create_room\"]";
        assert_eq!(
            admin
                .eval(&format!("document.querySelector({}).checked", js_str(create_room)))
                .await,
            false
        );
        admin.click(create_room).await;
        admin
            .click("form[data-user-permissions] button[type=submit]")
            .await;
        let flash = admin
            .wait_until("the saved message", "document.querySelector('.flash.ok')?.textContent")
            .await;
        assert_eq!(flash, "Permissions saved.");
        assert_eq!(
            admin
                .eval(&format!("document.querySelector({}).checked", js_str(create_room)))
                .await,
            true
        );
        admin.assert_clean().await;

        // Dave's next page shows the form, and it works.
        dave.reload().await;
        dave.find("form[data-create-room]").await;
        dave.insert_text("#room-name", "dave.s_room").await;
        dave.click("form[data-create-room] button[type=submit]").await;
        dave.wait_until("dave's room", "document.querySelector('#room-title')")
            .await;
        assert_eq!(dave.path().await, "/rooms/dave.s_room");
        dave.assert_clean().await;
    })
    .await;
}
