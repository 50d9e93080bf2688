//! A real Chromium, headless, driven through `ChromeDriver` (Debian's `chromium` and
//! `chromium-driver`, which `sealtrail setup` installs), with a download directory and a place
//! for the screenshots each test saves.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::harness::free_port;

/// The longest a page may take to show what a test waits for: only a broken console gets near it.
const PATIENCE: Duration = Duration::from_secs(90);

pub struct Browser {
    pub client: Client,
    pub downloads: tempfile::TempDir,
    driver: Child,
}

impl Browser {
    /// A fresh browser session (its own profile: nothing is shared between tests).
    pub async fn start() -> Self {
        let chromedriver = sealtrail_local::ensure_browser(false)
            .unwrap_or_else(|error| panic!("{error}"))
            .path;
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver");
        let downloads = tempfile::tempdir().expect("a download directory");
        let capabilities = json!({
            "browserName": "chrome",
            // The stack serves HTTPS with its own CA, which this profile does not know.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--lang=en-US"],
                "prefs": {
                    "download.default_directory": downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                // ChromeDriver is still starting.
                Err(error) if started.elapsed() < PATIENCE => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!(
                    "cannot open a Chromium session through {}: {error}",
                    chromedriver.display()
                ),
            }
        };
        Self {
            client,
            downloads,
            driver,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("open {url}: {error}"));
    }

    /// The first element matching `css`, once there is one.
    pub async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(error) => panic!("no `{css}` on the page: {error}\n{}", self.page_text().await),
        }
    }

    /// Whether an element matches `css` now.
    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("query the page")
            .is_empty()
    }

    pub async fn click(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("click `{css}`: {error}"));
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.element(css).await;
        field.clear().await.expect("clear the field");
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("type into `{css}`: {error}"));
    }

    /// `attribute` of the first element matching `css`, once `accept` takes it.
    pub async fn attribute_when(&self, css: &str, attribute: &str, accept: impl Fn(&str) -> bool) -> String {
        let read = async || {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            element.attr(attribute).await.ok().flatten()
        };
        self.settled(&format!("`{css}` [{attribute}]"), read, |value| accept(value))
            .await
    }

    /// How many elements match `css`, once `accept` takes that number: a list the page is
    /// replacing (old rows, then none while it loads, then the new ones) is read when it settles.
    pub async fn count_when(&self, css: &str, accept: impl Fn(usize) -> bool) -> usize {
        let read = async || Some(self.client.find_all(Locator::Css(css)).await.ok()?.len());
        self.settled(&format!("the number of `{css}`"), read, |count| accept(*count))
            .await
    }

    /// What `read` gives, once `accept` takes it; read again every 100 ms for up to `PATIENCE`.
    async fn settled<T: std::fmt::Debug>(
        &self,
        what: &str,
        read: impl AsyncFn() -> Option<T>,
        accept: impl Fn(&T) -> bool,
    ) -> T {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < PATIENCE {
            if let Some(value) = read().await {
                if accept(&value) {
                    return value;
                }
                last = Some(value);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{what} never became what the test waits for (last: {last:?})\n{}",
            self.page_text().await
        )
    }

    /// The text of the page, for failure messages.
    pub async fn page_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .expect("run a script in the page")
    }

    /// Saves a screenshot of the page as `<name>.png` in the test output, and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = screenshots_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("save the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// A file the browser downloaded, once it is complete (Chromium writes `.crdownload` first).
    pub async fn downloaded(&self, name: &str) -> PathBuf {
        let path = self.downloads.path().join(name);
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            if path.exists() && !Path::new(&format!("{}.crdownload", path.display())).exists() {
                return path;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let present: Vec<_> = std::fs::read_dir(self.downloads.path())
            .map(|dir| dir.flatten().map(|entry| entry.file_name()).collect())
            .unwrap_or_default();
        panic!("the browser did not download {name} (the directory holds {present:?})")
    }

    pub async fn close(mut self) {
        self.client.clone().close().await.ok();
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test still leaves no ChromeDriver behind.
        self.driver.kill().ok();
    }
}

/// Where the screenshots go: the test output directory Cargo gives integration tests.
pub fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshots directory");
    dir
}
