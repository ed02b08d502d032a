//! Browser tests of hihichat: a real headless Chromium, driven through a
//! private chromedriver (fantoccini, WebDriver plus a few CDP commands),
//! against real servers on `127.0.0.1:0`.
//!
//! Needs `chromium` and `chromedriver` on PATH (Debian: `apt-get install
//! chromium chromium-driver`); without them every test that opens a browser
//! fails, saying so.
//! `cargo xtask e2e` runs just these. Screenshots land in `target/e2e/`.
#![allow(clippy::unwrap_used)]

mod a11y;
mod chat;
mod harness;
mod history;
mod login;
mod network;
mod screenshots;
mod security;
mod xss;
