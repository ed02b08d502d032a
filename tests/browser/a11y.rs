//! Accessibility checks on every page, in both themes: each control has a
//! name, images have an `alt`, text meets WCAG 2.1 AA contrast, and the
//! keyboard reaches everything with a visible focus.

use chat_tests::spawn_app;
use serde_json::{Value, json};

use crate::harness::{Browser, browser_test, keys};

/// Visible controls without an accessible name, and images without `alt`.
const UNNAMED: &str = r#"(() => {
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const text = (el) => (el.textContent || "").trim();
  const name = (el) => {
    if (el.getAttribute("aria-label")) return el.getAttribute("aria-label");
    const by = el.getAttribute("aria-labelledby");
    if (by) return by.split(/\s+/).map((id) => text(document.getElementById(id) || document.createElement("i"))).join(" ").trim();
    if (el.labels && el.labels.length) return Array.from(el.labels, text).join(" ").trim();
    if (el.matches("button, a, summary")) return text(el) || Array.from(el.querySelectorAll("img[alt]"), (i) => i.alt).join(" ").trim();
    return el.getAttribute("title") || "";
  };
  const controls = document.querySelectorAll("input:not([type=hidden]), select, textarea, button, a[href], summary");
  const unnamed = Array.from(controls).filter(visible).filter((el) => !name(el)).map((el) => el.outerHTML.slice(0, 160));
  const noAlt = Array.from(document.images).filter((i) => !i.hasAttribute("alt")).map((i) => i.outerHTML.slice(0, 160));
  return unnamed.concat(noAlt);
})()"#;

/// Text whose contrast with its background is under WCAG AA (4.5:1, or 3:1
/// for large text). Backgrounds are composited up the tree.
const LOW_CONTRAST: &str = r#"(() => {
  const parse = (c) => {
    const m = /rgba?\(([^)]+)\)/.exec(c || "");
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (el) => {
    const chain = [];
    for (let e = el; e; e = e.parentElement) chain.unshift(e);
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    if (getComputedStyle(document.documentElement).colorScheme.includes("dark") && document.documentElement.dataset.theme === "dark") bg = { r: 18, g: 18, b: 18, a: 1 };
    for (const e of chain) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) bg = over(c, bg);
    }
    return bg;
  };
  const bad = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.textContent.trim()) continue;
    const el = n.parentElement;
    if (!el || seen.has(el)) continue;
    seen.add(el);
    if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
    const rect = el.getBoundingClientRect();
    if (rect.width <= 1 || rect.height <= 1) continue; // visually hidden, for screen readers
    if (el.closest("button:disabled, textarea:disabled, input:disabled, [aria-disabled=true]")) continue;
    const cs = getComputedStyle(el);
    const bg = background(el);
    const fg = over(parse(cs.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(cs.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5) - 0.01) {
      bad.push({ text: n.textContent.trim().slice(0, 40), ratio: Math.round(ratio * 100) / 100, color: cs.color, background: `rgb(${Math.round(bg.r)}, ${Math.round(bg.g)}, ${Math.round(bg.b)})`, in: el.className || el.tagName });
    }
  }
  return bad;
})()"#;

async fn check_page(b: &Browser, path: &str) {
    for theme in ["light", "dark"] {
        b.js(
            "localStorage.setItem('hihichat:theme', arguments[0]);",
            vec![json!(theme)],
        )
        .await;
        b.goto(path).await;
        b.wait_until("the page", "document.readyState === 'complete'")
            .await;
        assert_eq!(
            b.eval("document.documentElement.dataset.theme").await,
            theme
        );
        assert_eq!(
            b.eval(UNNAMED).await,
            json!([]),
            "unnamed controls on {path}"
        );
        assert_eq!(
            b.eval(LOW_CONTRAST).await,
            json!([]),
            "text under WCAG AA contrast on {path} ({theme} theme)"
        );
    }
    // On a phone nothing sticks out sideways.
    b.viewport(375, 740, true).await;
    b.goto(path).await;
    b.wait_until("the page", "document.readyState === 'complete'")
        .await;
    let wide = b
        .eval("Array.from(document.querySelectorAll('body *')).filter((e) => e.getBoundingClientRect().right > 376 && !e.closest('.table-wrap')).map((e) => e.tagName + '.' + e.className)")
        .await;
    assert_eq!(
        b.eval("document.documentElement.scrollWidth").await,
        375,
        "{path} is wider than a phone: {wide}"
    );
    b.viewport(1280, 800, false).await;
}

/// Tabs through the page from the top; returns what got the focus, in
/// order, and fails on a focused element without a visible focus style.
async fn tab_through(b: &Browser, stops: usize) -> Vec<Value> {
    b.eval("document.activeElement && document.activeElement.blur()")
        .await;
    let mut seen = Vec::new();
    for _ in 0..stops {
        b.press(keys::TAB).await;
        let focus = b
            .eval("(() => { const el = document.activeElement; const cs = getComputedStyle(el); return { tag: el.tagName.toLowerCase(), id: el.id, text: (el.textContent || el.getAttribute('aria-label') || '').trim().slice(0, 30), cls: el.className, outline: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0, shadow: cs.boxShadow !== 'none' }; })()")
            .await;
        if focus["tag"] == "body" {
            break;
        }
        assert!(
            focus["outline"] == true || focus["shadow"] == true,
            "no visible focus on {focus} at {}",
            b.path().await
        );
        seen.push(focus);
    }
    seen
}

#[tokio::test]
async fn every_page_is_labelled_readable_and_keyboard_usable() {
    browser_test(|rig| async move {
        let app = spawn_app().await;
        let alice = app.create_user("alice", &["create_room"]).await;
        let api = app.login(&alice).await;
        api.create_room_ok("lobby").await;
        let mut ws = api.ws().await;
        ws.join("lobby", None).await;
        ws.send_and_wait("lobby", "hello https://example.com", "c-1").await;

        let guest = rig.browser(&app.base_url, "guest").await;
        for path in ["/login", "/rooms", "/rooms/lobby"] {
            check_page(&guest, path).await;
        }
        guest.assert_clean().await;

        let admin = rig.browser(&app.base_url, "admin").await;
        admin.log_in(&app.admin).await;
        for path in [
            "/rooms",
            "/rooms/lobby",
            "/rooms/@admin+alice",
            "/dms",
            "/admin/users",
            "/admin/users/new",
            "/admin/users/alice",
            "/admin/permissions",
        ] {
            check_page(&admin, path).await;
        }

        // The keyboard: the skip link comes first, then the navigation;
        // the composer and its button are reachable; focus is always visible.
        admin.goto("/rooms/lobby").await;
        admin.wait_until_joined().await;
        let stops = tab_through(&admin, 40).await;
        assert_eq!(stops[0]["text"], "Skip to content", "{stops:?}");
        let reached = |id: &str| stops.iter().any(|s| s["id"] == id);
        assert!(reached("composer-text"), "the composer is not reachable by Tab: {stops:?}");
        // Typing and Enter in the composer, from the keyboard alone.
        admin.eval("document.querySelector('#composer-text').focus()").await;
        for c in "from the keyboard".chars() {
            admin.press(c).await;
        }
        admin.press(keys::ENTER).await;
        admin
            .wait_until(
                "the keyboard's message",
                "Array.from(document.querySelectorAll('[data-messages] li.msg[data-seq] .msg-text')).some((p) => p.textContent === 'from the keyboard')",
            )
            .await;
        admin.assert_clean().await;
    })
    .await;
}
