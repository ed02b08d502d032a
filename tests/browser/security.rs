//! The page's defences as a browser sees them: the CSP blocks injected
//! inline script and reports it (which also proves the tests' watcher would
//! see a violation), the security headers are on every page, and assets
//! carry cache-busting names.

use chat_tests::spawn_app;
use serde_json::json;

use crate::harness::browser_test;

/// Markup a successful injection would put in a page.
const INJECTED: &str = "document.body.insertAdjacentHTML('beforeend', '<img id=\"probe\" src=\"/no-such-image\" onerror=\"window.__pwned = 1\">')";

#[tokio::test]
async fn the_csp_blocks_injected_script_and_the_watcher_sees_it() {
    browser_test(|rig| async move {
        let app = spawn_app().await;

        let b = rig.browser(&app.base_url, "with the CSP").await;
        b.goto("/login").await;
        b.eval(INJECTED).await;
        let seen = b
            .wait_until(
                "the violation report",
                "window.__csp.length > 0 && window.__csp",
            )
            .await;
        assert_eq!(seen[0]["directive"], "script-src-attr", "{seen}");
        assert_eq!(b.eval("typeof window.__pwned").await, "undefined");

        // Without the CSP the same injection runs: the XSS test's viewer,
        // who browses that way, would notice an escaping bug.
        let open = rig.browser(&app.base_url, "without the CSP").await;
        open.cdp("Page.setBypassCSP", json!({ "enabled": true }))
            .await;
        open.goto("/login").await;
        open.eval(INJECTED).await;
        open.wait_until("the payload to run", "window.__pwned === 1")
            .await;
    })
    .await;
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_hashed_assets() {
    let app = spawn_app().await;
    let admin = app.admin_client().await;
    for path in ["/login", "/rooms", "/dms", "/admin/users", "/no-such-page"] {
        let response = admin.get(path).await;
        let headers = response.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let csp = header("content-security-policy");
        let directive = |name: &str| {
            csp.split(';')
                .map(str::trim)
                .find(|d| d.split_whitespace().next() == Some(name))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        assert_eq!(
            directive("script-src"),
            "script-src 'self'",
            "{path}: {csp}"
        );
        assert_eq!(
            directive("object-src"),
            "object-src 'none'",
            "{path}: {csp}"
        );
        assert_eq!(directive("base-uri"), "base-uri 'none'", "{path}: {csp}");
        assert_eq!(
            directive("frame-ancestors"),
            "frame-ancestors 'none'",
            "{path}: {csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert!(!header("referrer-policy").is_empty(), "{path}");
    }

    let html = app.guest().get("/login").await.text().await.unwrap();
    for asset in ["app.css", "chat.js", "theme.js"] {
        let (stem, ext) = asset.split_once('.').unwrap();
        let at = html
            .find(&format!("/static/{stem}."))
            .unwrap_or_else(|| panic!("no {asset} on the login page"));
        let rest = &html[at..];
        let href = &rest[..rest.find('"').unwrap()];
        let hash = href
            .strip_prefix(&format!("/static/{stem}."))
            .and_then(|h| h.strip_suffix(&format!(".{ext}")))
            .unwrap_or_default();
        assert!(
            hash.len() >= 8 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{asset} is linked without a content hash: {href}"
        );
        let response = app.guest().get(href).await;
        assert_eq!(response.status(), 200, "{href}");
        let cache = response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(cache.contains("immutable"), "{href}: {cache}");
    }
}
