//! The browser rig: a private chromedriver on a free port, headless Chromium
//! sessions with fresh profiles, a cuttable TCP proxy, and helpers that wait
//! for the page instead of sleeping.
//!
//! Every test runs inside [`browser_test`], which closes every browser it
//! opened (so no Chromium outlives a failed test) and then re-raises the
//! test's panic, if any.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_tests::{TestUser, free_port};
use fantoccini::actions::{InputSource, KeyAction, KeyActions, WheelAction, WheelActions};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client as Driver, ClientBuilder};
use futures::FutureExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// How long a wait for the page may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// What a failing test says when the browser is not installed.
const MISSING: &str =
    "install chromium and chromium-driver (apt-get install chromium chromium-driver)";

/// WebDriver's code points for special keys.
pub mod keys {
    /// Releases every held modifier.
    pub const NULL: char = '\u{E000}';
    /// Tab.
    pub const TAB: char = '\u{E004}';
    /// Enter.
    pub const ENTER: char = '\u{E007}';
    /// Shift (held until [`NULL`]).
    pub const SHIFT: char = '\u{E008}';
    /// Control (held until [`NULL`]).
    pub const CONTROL: char = '\u{E009}';
}

/// Records, from the first line of every document, what the tests assert
/// never happens: CSP violations, uncaught errors and the XSS payloads'
/// marker. Injected through CDP, so the page's own CSP does not apply to it.
const WATCHER: &str = r#"
window.__csp = [];
window.__errors = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push({ directive: e.violatedDirective, blocked: e.blockedURI,
    sample: e.sample, source: e.sourceFile, line: e.lineNumber });
});
window.addEventListener("error", (e) => { window.__errors.push(String(e.message)); });
window.addEventListener("unhandledrejection", (e) => { window.__errors.push(String(e.reason)); });
"#;

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// The Chromium executable. Debian's `/usr/bin/chromium` is a shell wrapper
/// that reads `/etc/chromium.d`; the real binary beside it takes our flags as
/// they are.
fn chromium_binary() -> PathBuf {
    let wrapper = find_program(&["chromium", "chromium-browser"])
        .unwrap_or_else(|| panic!("{MISSING}: no chromium on PATH"));
    let real = Path::new("/usr/lib/chromium/chromium");
    if wrapper.starts_with("/usr/bin") && real.is_file() {
        real.to_path_buf()
    } else {
        wrapper
    }
}

/// The target directory (respects `CARGO_TARGET_DIR`): this test binary
/// lives in `<target>/debug/deps/`.
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        })
}

/// Where screenshots go: `<target>/e2e/`.
pub fn screenshot_dir() -> PathBuf {
    target_dir().join("e2e")
}

/// A chromedriver process of this test's own, on a free port.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    async fn start() -> Self {
        // Both are looked for first, so a machine without them fails at once
        // and says what to install.
        let program = find_program(&["chromedriver"])
            .unwrap_or_else(|| panic!("{MISSING}: no chromedriver on PATH"));
        chromium_binary();
        let mut last = String::new();
        // The free port may be taken between the probe and chromedriver's bind.
        for _ in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(&program);
            cmd.arg(format!("--port={port}"))
                .arg("--log-level=WARNING")
                .stdin(Stdio::null())
                .kill_on_drop(true);
            if std::env::var_os("TEST_LOG").is_none() {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => panic!("{MISSING}: cannot run {}: {e}", program.display()),
            };
            let mut driver = Chromedriver { child, port };
            match driver.wait_ready().await {
                Ok(()) => return driver,
                Err(e) => last = e,
            }
        }
        panic!("chromedriver did not start: {last}")
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("chromedriver exited ({status})"));
            }
            let ready = client
                .get(format!("http://127.0.0.1:{}/status", self.port))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(r) = ready {
                if let Ok(body) = r.json::<Value>().await {
                    if body["value"]["ready"] == true {
                        return Ok(());
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("no answer on port {} in {WAIT:?}", self.port));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // `/shutdown` makes chromedriver quit its browsers too; a plain kill
        // would leave them running.
        use std::io::Write;
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = s.write_all(
                b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 256];
            let _ = std::io::Read::read(&mut s, &mut buf);
        }
        let _ = self.child.start_kill();
    }
}

/// What a test gets: a way to open browsers, all closed when it ends.
pub struct Rig {
    driver: Arc<Chromedriver>,
    opened: Arc<Mutex<Vec<Driver>>>,
}

/// Runs `test` with a fresh [`Rig`]; closes every browser it opened, then
/// fails if the test failed.
pub async fn browser_test<F, Fut>(test: F)
where
    F: FnOnce(Rig) -> Fut,
    Fut: Future<Output = ()>,
{
    let driver = Arc::new(Chromedriver::start().await);
    let opened = Arc::new(Mutex::new(Vec::new()));
    let rig = Rig {
        driver: Arc::clone(&driver),
        opened: Arc::clone(&opened),
    };
    let outcome = AssertUnwindSafe(test(rig)).catch_unwind().await;
    let sessions: Vec<Driver> = opened
        .lock()
        .map(|mut o| o.drain(..).collect())
        .unwrap_or_default();
    for session in sessions {
        let _ = tokio::time::timeout(Duration::from_secs(10), session.close()).await;
    }
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

impl Rig {
    /// A new browser (its own Chromium, profile and cookies) for the site
    /// at `base_url`, with a 1280x800 viewport.
    pub async fn browser(&self, base_url: &str, label: &str) -> Browser {
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            // Timers of a page that is not in front must keep running: two
            // people chat at once.
            "--disable-background-timer-throttling".to_owned(),
            "--disable-renderer-backgrounding".to_owned(),
            "--lang=en-US".to_owned(),
            "--window-size=1280,800".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = Capabilities::new();
        caps.insert("browserName".to_owned(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": chromium_binary(), "args": args }),
        );
        let driver = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.driver.url())
            .await
            .unwrap_or_else(|e| panic!("{MISSING}: chromedriver could not start Chromium: {e}"));
        if let Ok(mut opened) = self.opened.lock() {
            opened.push(driver.clone());
        }
        let browser = Browser {
            driver,
            base_url: base_url.trim_end_matches('/').to_owned(),
            label: label.to_owned(),
            _profile: profile,
        };
        browser
            .cdp(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": WATCHER }),
            )
            .await;
        browser.viewport(1280, 800, false).await;
        browser
    }
}

/// A CDP command sent through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// One browser window, driven through WebDriver (and CDP where WebDriver
/// has no word for it).
pub struct Browser {
    driver: Driver,
    /// The site it visits: `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Names this browser in failure messages.
    pub label: String,
    _profile: TempDir,
}

impl Browser {
    /// Opens `path` (already percent-encoded) and waits for it to load.
    pub async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base_url);
        self.driver
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("[{}] open {url}: {e}", self.label));
    }

    /// Reloads the page.
    pub async fn reload(&self) {
        self.driver
            .refresh()
            .await
            .unwrap_or_else(|e| panic!("[{}] reload: {e}", self.label));
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.driver
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("[{}] script failed: {e}\n{script}", self.label))
    }

    /// The value of a JavaScript expression.
    pub async fn eval(&self, expr: &str) -> Value {
        self.js(&format!("return ({expr});"), Vec::new()).await
    }

    /// Waits until `expr` is truthy (errors while a page loads count as not
    /// yet) and returns its value; fails the test after [`WAIT`].
    pub async fn wait_until(&self, what: &str, expr: &str) -> Value {
        self.wait_until_for(what, expr, WAIT).await
    }

    /// [`Browser::wait_until`] with its own time limit.
    pub async fn wait_until_for(&self, what: &str, expr: &str, limit: Duration) -> Value {
        let script = format!("return ({expr});");
        let deadline = tokio::time::Instant::now() + limit;
        let mut last;
        loop {
            match self.driver.execute(&script, Vec::new()).await {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => last = v.to_string(),
                Err(e) => last = e.to_string(),
            }
            if tokio::time::Instant::now() > deadline {
                let path = self.path().await;
                panic!(
                    "[{}] waited {limit:?} for {what} on {path}; `{expr}` was {last}",
                    self.label
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The current path and query (percent-decoded for the reader).
    pub async fn path(&self) -> String {
        match self.driver.current_url().await {
            Ok(url) => {
                let raw = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_owned(),
                };
                decode(&raw)
            }
            Err(e) => format!("<no URL: {e}>"),
        }
    }

    /// Waits until `css` matches an element.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.wait_until(
            &format!("an element matching `{css}`"),
            &format!("document.querySelector({})", js_str(css)),
        )
        .await;
        self.driver
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("[{}] find `{css}`: {e}", self.label))
    }

    /// Clicks the element matching `css`, as a user would.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("[{}] click `{css}`: {e}", self.label));
    }

    /// Picks the option labelled `label` in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, label: &str) {
        let element = self.find(css).await;
        element
            .select_by_label(label)
            .await
            .unwrap_or_else(|e| panic!("[{}] pick {label:?} in `{css}`: {e}", self.label));
    }

    /// Accepts the `confirm()` dialog the page is showing, returning its text.
    pub async fn accept_dialog(&self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self.driver.get_alert_text().await {
                Ok(text) => {
                    self.driver
                        .accept_alert()
                        .await
                        .unwrap_or_else(|e| panic!("[{}] accept the dialog: {e}", self.label));
                    return text;
                }
                Err(e) if tokio::time::Instant::now() > deadline => {
                    panic!("[{}] no dialog came: {e}", self.label)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Types `keys` into the element matching `css` (WebDriver key codes allowed).
    pub async fn type_keys(&self, css: &str, keys: &str) {
        let element = self.find(css).await;
        element
            .send_keys(keys)
            .await
            .unwrap_or_else(|e| panic!("[{}] type into `{css}`: {e}", self.label));
    }

    /// Empties the field matching `css`.
    pub async fn clear(&self, css: &str) {
        let element = self.find(css).await;
        element
            .clear()
            .await
            .unwrap_or_else(|e| panic!("[{}] clear `{css}`: {e}", self.label));
    }

    /// Focuses the field matching `css` and inserts `text` the way an input
    /// method does (chromedriver's keys cannot type emoji).
    pub async fn insert_text(&self, css: &str, text: &str) {
        self.js(
            "const el = document.querySelector(arguments[0]); el.focus();",
            vec![json!(css)],
        )
        .await;
        self.cdp("Input.insertText", json!({ "text": text })).await;
    }

    /// The `textContent` of the first element matching `css` (`null` if none).
    pub async fn text(&self, css: &str) -> Value {
        self.js(
            "const el = document.querySelector(arguments[0]); return el ? el.textContent : null;",
            vec![json!(css)],
        )
        .await
    }

    /// Presses and releases `key` on whatever has the focus (WebDriver key
    /// codes allowed, see [`keys`]).
    pub async fn press(&self, key: char) {
        let keyboard = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.driver
            .perform_actions(keyboard)
            .await
            .unwrap_or_else(|e| panic!("[{}] press {key:?}: {e}", self.label));
    }

    /// Turns the mouse wheel by `delta_y` pixels over the middle of `css`
    /// (negative: up).
    pub async fn wheel(&self, css: &str, delta_y: i64) {
        let at = self
            .js(
                "const r = document.querySelector(arguments[0]).getBoundingClientRect(); \
                 return [Math.round(r.left + r.width / 2), Math.round(r.top + r.height / 2)];",
                vec![json!(css)],
            )
            .await;
        let mut wheel = WheelActions::new("wheel".to_owned());
        wheel.push(WheelAction::Scroll {
            duration: None,
            x: at[0].as_i64().unwrap_or(0),
            y: at[1].as_i64().unwrap_or(0),
            delta_x: 0,
            delta_y,
        });
        self.driver
            .perform_actions(wheel)
            .await
            .unwrap_or_else(|e| panic!("[{}] wheel over `{css}`: {e}", self.label));
    }

    /// Sends a Chrome DevTools Protocol command.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.driver
            .issue_cmd(Cdp {
                cmd: cmd.to_owned(),
                params,
            })
            .await
            .unwrap_or_else(|e| panic!("[{}] CDP {cmd}: {e}", self.label))
    }

    /// Sets the viewport to exactly `width` x `height` CSS pixels.
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
    }

    /// Saves a PNG of the viewport as `<target>/e2e/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .driver
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("[{}] screenshot: {e}", self.label));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Fails the test if this page saw a CSP violation, an uncaught error,
    /// or a payload ran (`window.__pwned` set).
    pub async fn assert_clean(&self) {
        let report = self
            .eval("{ csp: window.__csp, errors: window.__errors, pwned: typeof window.__pwned }")
            .await;
        assert_eq!(
            report["csp"],
            json!([]),
            "[{}] CSP violations on {}",
            self.label,
            self.path().await
        );
        assert_eq!(
            report["errors"],
            json!([]),
            "[{}] uncaught script errors on {}",
            self.label,
            self.path().await
        );
        assert_eq!(
            report["pwned"],
            "undefined",
            "[{}] a payload ran on {}",
            self.label,
            self.path().await
        );
    }

    /// Logs in through the login form and waits for the room list.
    pub async fn log_in(&self, user: &TestUser) {
        self.goto("/login").await;
        self.clear("#username").await;
        self.insert_text("#username", &user.name).await;
        self.type_keys("#password", &user.password).await;
        self.click("form[data-login-form] button[type=submit]")
            .await;
        self.wait_until(
            &format!("being logged in as {}", user.name),
            &format!(
                "location.pathname === '/rooms' && document.querySelector('[data-whoami]')?.textContent === {}",
                js_str(&user.name)
            ),
        )
        .await;
    }

    /// Opens a chat page and waits until its socket has joined the room.
    pub async fn open_room(&self, room: &str) {
        self.goto(&format!("/rooms/{}", chat_tests::encode(room)))
            .await;
        self.wait_until_joined().await;
    }

    /// Waits until the chat page is connected and joined.
    pub async fn wait_until_joined(&self) {
        self.wait_until(
            "the chat page to join its room",
            "window.hihichat && window.hihichat.joined && window.hihichat.ready",
        )
        .await;
    }

    /// The texts of the room's stored messages on the page, in page order.
    pub async fn message_texts(&self) -> Vec<String> {
        let v = self
            .eval("Array.from(document.querySelectorAll('[data-messages] li.msg[data-seq] .msg-text'), (p) => p.textContent)")
            .await;
        serde_json::from_value(v).unwrap_or_default()
    }

    /// The seqs of the messages on the page, in page order.
    pub async fn message_seqs(&self) -> Vec<u64> {
        let v = self
            .eval("Array.from(document.querySelectorAll('[data-messages] li.msg[data-seq]'), (li) => Number(li.dataset.seq))")
            .await;
        serde_json::from_value(v).unwrap_or_default()
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `s` as a JavaScript string literal.
pub fn js_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Percent-decodes a URL path for messages and comparisons.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(Ok(b)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A TCP proxy in front of a server: the test cuts every connection
/// through it (and refuses new ones) to play a network outage, then
/// restores it.
pub struct Proxy {
    /// `http://127.0.0.1:PORT` of the proxy.
    pub base_url: String,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding a free port on 127.0.0.1 to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let up = Arc::clone(&up);
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // Down: the connection is closed at once, as by a dead link.
                        drop(inbound);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    if let Ok(mut c) = connections.lock() {
                        c.retain(|t| !t.is_finished());
                        c.push(task);
                    }
                }
            })
        };
        Proxy {
            base_url: format!("http://{addr}"),
            up,
            connections,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut c) = self.connections.lock() {
            for task in c.drain(..) {
                task.abort();
            }
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
