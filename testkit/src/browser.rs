//! Headless Chromium, for the tests that look at what the project draws: Debian's `chromium`
//! and `chromium-driver` packages (`/usr/bin/chromium`, `/usr/bin/chromedriver`; `.ci/run`
//! installs them where missing, or set `CHROMIUM` and `CHROMEDRIVER` to other binaries).
//!
//! Where Chromium is missing, [`Browser::require`] prints why and returns `None`, and the test
//! skips; with `CI=true` it panics instead, so CI never passes without a browser.
//!
//! Every page the tests open is on loopback or a local file, and the browser runs with
//! background networking off, so it fetches nothing from anywhere else.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::peers::skip;
use crate::process::{Peer, free_port, scratch_dir, wait_until};

/// Chromium's flags for a test run: headless, no sandbox (tests may run as root), no GPU, no
/// traffic of its own (updates, safe browsing, metrics).
pub const CHROMIUM_FLAGS: [&str; 4] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
];

/// How long one screenshot may take, start to exit.
const SCREENSHOT_WITHIN: Duration = Duration::from_secs(60);

/// An installed Chromium (and ChromeDriver, where installed).
#[derive(Debug, Clone)]
pub struct Browser {
    chromium: PathBuf,
    chromedriver: Option<PathBuf>,
}

impl Browser {
    /// The installed browser; `None` (after printing why) where Chromium is missing. `test`
    /// names the caller in the message. With `CI=true`, panics instead of skipping.
    pub fn require(test: &str) -> Option<Browser> {
        let chromium = find("CHROMIUM", &["chromium", "chromium-browser"]);
        let chromedriver = find("CHROMEDRIVER", &["chromedriver"]);
        match chromium {
            Some(chromium) => Some(Browser {
                chromium,
                chromedriver,
            }),
            None => skip(test, NO_CHROMIUM),
        }
    }

    /// The browser and its WebDriver server; `None` (after printing why) where either is
    /// missing. With `CI=true`, panics instead of skipping.
    pub fn require_driver(test: &str) -> Option<Browser> {
        let browser = Browser::require(test)?;
        if browser.chromedriver.is_none() {
            return skip(test, NO_CHROMEDRIVER);
        }
        Some(browser)
    }

    /// The Chromium binary.
    pub fn chromium(&self) -> &Path {
        &self.chromium
    }

    /// Renders `url` (an `http://127.0.0.1:...` page or a `file://` path) at `width` x
    /// `height` CSS pixels and writes it to `png`.
    pub fn screenshot(&self, url: &str, png: &Path, width: u32, height: u32) -> Result<(), String> {
        let profile = scratch_dir("chromium");
        let _ = std::fs::remove_file(png);
        let mut child = Command::new(&self.chromium)
            .args(CHROMIUM_FLAGS)
            .arg("--hide-scrollbars")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--screenshot={}", png.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.chromium.display()))?;
        let status = wait_until(SCREENSHOT_WITHIN, || match child.try_wait() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(format!("cannot wait for chromium: {e}")),
        });
        let status = match status {
            Ok(status) => status,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("chromium did not finish the screenshot: {why}"));
            }
        };
        let stderr = child
            .stderr
            .take()
            .map(|mut e| {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut e, &mut text);
                text
            })
            .unwrap_or_default();
        let _ = std::fs::remove_dir_all(&profile);
        if !status.success() || !png.exists() {
            return Err(format!(
                "chromium exited with {status} without writing {}: {stderr}",
                png.display()
            ));
        }
        Ok(())
    }

    /// Starts ChromeDriver on a free loopback port; connect a WebDriver client to
    /// [`Driver::url`] with [`Driver::capabilities`]. Killed when dropped.
    pub fn driver(&self) -> Result<Driver, String> {
        let chromedriver = self.chromedriver.as_ref().ok_or(NO_CHROMEDRIVER)?;
        let port = free_port();
        let dir = scratch_dir("chromedriver");
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        // A group of its own, so the browsers it starts go with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut peer = Peer::spawn("chromedriver", cmd, &dir.join("chromedriver.log"));
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        // ChromeDriver answers HTTP/1.1 only (the test support's client speaks 1.0); it says
        // in its log when it listens.
        wait_until(Duration::from_secs(30), || {
            peer.check_alive()?;
            if !peer.log_tail(20).contains("started successfully") {
                return Err("not started yet".into());
            }
            std::net::TcpStream::connect(addr)
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .map_err(|why| format!("chromedriver did not start: {why}"))?;
        Ok(Driver {
            peer,
            url: format!("http://{addr}"),
            chromium: self.chromium.clone(),
            profile: dir.join("profile"),
            dir,
        })
    }
}

/// The narrowest window headless Chromium opens.
const MIN_WINDOW_WIDTH: u32 = 500;

/// A running ChromeDriver. Dropping it stops the driver and the browsers it started (its
/// whole process group).
#[derive(Debug)]
pub struct Driver {
    peer: Peer,
    url: String,
    chromium: PathBuf,
    profile: PathBuf,
    /// The driver's scratch directory (its log and the browsers' profile), removed on drop.
    dir: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's ID is the driver's PID; the driver itself is killed by its `Peer`.
        let group = self.peer.pid();
        if group > 0 {
            crate::process::send_signal(-group, libc::SIGKILL);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Driver {
    /// The WebDriver endpoint, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The W3C capabilities of a headless session of this Chromium with a `width` x `height`
    /// viewport: pass them to the WebDriver client's session builder. A desktop window is at
    /// least 500 px wide, so a narrower viewport is a phone's, by Chromium's mobile emulation.
    pub fn capabilities(&self, width: u32, height: u32) -> serde_json::Value {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!(
            "--window-size={},{height}",
            width.max(MIN_WINDOW_WIDTH)
        ));
        args.push(format!("--user-data-dir={}", self.profile.display()));
        let mut capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": args,
            }
        });
        if width < MIN_WINDOW_WIDTH {
            capabilities["goog:chromeOptions"]["mobileEmulation"] = serde_json::json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0, "mobile": true},
            });
        }
        capabilities
    }
}

const NO_CHROMIUM: &str =
    "Chromium is not installed (Debian: `apt-get install chromium`, or set CHROMIUM to its binary)";
const NO_CHROMEDRIVER: &str = "ChromeDriver is not installed (Debian: `apt-get install chromium-driver`, or set CHROMEDRIVER to its binary)";

/// The binary `var` names, or the first of `names` on `PATH`.
fn find(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var).map(PathBuf::from) {
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}
