//! A small W3C WebDriver client for the browser test: starts Debian's
//! `chromedriver`, opens one headless Chromium session with a phone's
//! viewport, and offers what the test needs (navigate, find, click, read,
//! screenshot). The browser and the driver go away when [`Browser`] is
//! dropped, a failing test included.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{Clock, SystemClock};
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// How long the driver, a page or an element may take to appear. Generous:
/// CI shares two cores with other builds.
const PATIENCE: TimeDelta = TimeDelta::seconds(30);
/// Pause between two looks while waiting for something to appear.
const POLL: Duration = Duration::from_millis(50);

const PACKAGES: &str = "install the Debian packages `chromium` and `chromium-driver` \
                        (scripts/prepare-test-env does, as root)";

/// The phone whose screen the pages are checked on (a common Android size).
pub const PHONE: (u32, u32) = (412, 915);

/// A binary from an environment variable or its Debian path; panics, naming
/// the packages, when it is not there: a missing browser fails the test.
fn binary(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "the browser test needs {} (set {var} to use another path): {PACKAGES}",
        path.display()
    );
    path
}

fn deadline() -> DateTime<Utc> {
    // The test waits on real processes, so real time: through the Clock trait.
    SystemClock.now() + PATIENCE
}

fn past(deadline: DateTime<Utc>) -> bool {
    SystemClock.now() > deadline
}

/// A headless Chromium driven through chromedriver.
#[derive(Debug)]
pub struct Browser {
    http: Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    driver: Child,
    /// Chromium's own process, killed should the driver fail to close it.
    browser_pid: Option<u64>,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a Chromium session; `logs` gets the driver's log.
    pub fn start(logs: &Path) -> Browser {
        let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = binary("CHROMIUM", "/usr/bin/chromium");
        let profile = std::env::temp_dir().join(format!(
            "continuity-browser-{}-{}",
            std::process::id(),
            SystemClock.now().timestamp_nanos_opt().unwrap_or_default()
        ));
        fs::create_dir_all(&profile).expect("a fresh Chromium profile directory");

        // Port 0: the driver picks a free port and says which on stdout.
        let mut driver = Command::new(&chromedriver)
            .arg("--port=0")
            .arg(format!("--log-path={}", logs.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {PACKAGES}", chromedriver.display()));
        let stdout = driver.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            // Reads to the end, so the driver never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(PATIENCE.to_std().unwrap_or_default()) {
            Ok(port) => port,
            Err(_) => {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!(
                    "{} did not say it started (log: {})",
                    chromedriver.display(),
                    logs.display()
                );
            }
        };
        let http = Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client");
        let root = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            http,
            session: String::new(),
            driver,
            browser_pid: None,
            profile,
        };
        browser.wait_until_ready(&root);
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    // Chromium as root (CI) has no sandbox.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    // Chromium's own traffic to the outside fails here; keep it from trying.
                    "--disable-quic",
                    "--no-first-run",
                    "--no-proxy-server",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", browser.profile.display()),
                    format!("--window-size={},{}", PHONE.0, PHONE.1),
                ],
                // A phone: the viewport meta tag applies, as on a real one.
                "mobileEmulation": {"deviceMetrics": {
                    "width": PHONE.0, "height": PHONE.1, "pixelRatio": 1.0,
                    "mobile": true, "touch": true,
                }},
            },
        }}});
        let created = browser.call("POST", &format!("{root}/session"), Some(capabilities));
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"));
        browser.session = format!("{root}/session/{id}");
        browser.browser_pid = created["capabilities"]["goog:processID"].as_u64();
        // Elements are looked for up to a second by the driver itself; the
        // test's own waits (`wait_for`) cover slower pages.
        browser.cmd("POST", "/timeouts", Some(json!({"implicit": 1000})));
        browser
    }

    fn wait_until_ready(&self, root: &str) {
        let until = deadline();
        loop {
            let ready = self
                .http
                .get(format!("{root}/status"))
                .send()
                .and_then(|r| r.json::<Value>())
                .is_ok_and(|v| v["value"]["ready"] == true);
            if ready {
                return;
            }
            assert!(!past(until), "chromedriver on {root} never became ready");
            thread::sleep(POLL);
        }
    }

    /// One WebDriver command; panics with the driver's error.
    fn call(&self, method: &str, url: &str, body: Option<Value>) -> Value {
        self.try_call(method, url, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"))
    }

    fn try_call(&self, method: &str, url: &str, body: Option<Value>) -> Result<Value, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().map_err(|e| e.to_string())?;
        let status = response.status();
        let answer: Value = response.json().map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(answer["value"].clone())
        } else {
            Err(format!(
                "{status}: {} {}",
                answer["value"]["error"], answer["value"]["message"]
            ))
        }
    }

    /// A command of the session (`path` after `/session/ID`).
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("{}{path}", self.session), body)
    }

    /// Opens `url` and waits for it to load.
    pub fn navigate(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// The page's address.
    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The text of the page as displayed.
    pub fn page_text(&self) -> String {
        self.try_text("body").unwrap_or_default()
    }

    fn find(&self, css: &str) -> Result<String, String> {
        self.locate("css selector", css)
    }

    fn locate(&self, using: &str, value: &str) -> Result<String, String> {
        let found = self.try_call(
            "POST",
            &format!("{}/element", self.session),
            Some(json!({"using": using, "value": value})),
        )?;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("no element reference in {found}"))
    }

    fn try_text(&self, css: &str) -> Result<String, String> {
        let element = self.find(css)?;
        let text = self.try_call(
            "GET",
            &format!("{}/element/{element}/text", self.session),
            None,
        )?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the element `css` shows `expected`, and returns the
    /// page's text; panics with what the page shows instead.
    pub fn wait_for(&self, css: &str, expected: &str) -> String {
        let until = deadline();
        loop {
            // Errors while a page is replaced (a stale or missing element) are
            // expected: look again.
            if self.try_text(css).is_ok_and(|t| t.contains(expected)) {
                return self.page_text();
            }
            assert!(
                !past(until),
                "{css} never showed {expected:?} on {}; the page says:\n{}",
                self.url(),
                self.page_text()
            );
            thread::sleep(POLL);
        }
    }

    /// Clicks the element `css` (a radio button, a submit button).
    pub fn click(&self, css: &str) {
        self.click_on("css selector", css);
    }

    /// Clicks the link whose text is `text`, as a person would pick it.
    pub fn click_link(&self, text: &str) {
        self.click_on("link text", text);
    }

    fn click_on(&self, using: &str, value: &str) {
        let element = self.locate(using, value).unwrap_or_else(|e| {
            panic!("no {value:?} on {}: {e}\n{}", self.url(), self.page_text())
        });
        self.cmd(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    /// Whether the radio button or checkbox `css` is checked.
    pub fn is_selected(&self, css: &str) -> bool {
        let element = self
            .find(css)
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.url()));
        self.cmd("GET", &format!("/element/{element}/selected"), None) == true
    }

    /// The page's layout width and the viewport's, in CSS pixels.
    pub fn widths(&self) -> (u64, u64) {
        let v = self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({
                "script": "return [document.documentElement.scrollWidth, window.innerWidth];",
                "args": [],
            })),
        );
        (
            v[0].as_u64().unwrap_or_default(),
            v[1].as_u64().unwrap_or_default(),
        )
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.cmd("GET", "/screenshot", None);
        let bytes = STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("the screenshot is base64");
        assert!(bytes.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let closed =
            self.session.is_empty() || self.try_call("DELETE", &self.session, None).is_ok();
        if !closed && let Some(pid) = self.browser_pid {
            // The driver could not close its browser: end it ourselves (only
            // the process this test started, by its id).
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = fs::remove_dir_all(&self.profile);
    }
}
