//! Real processes for the end-to-end tests: free loopback ports, a scratch
//! directory per test, child processes that are killed when dropped (also
//! when a test panics), bounded polling, and launchers for omen, Debian's
//! `prometheus` and `victoria-metrics` (see `servers`). Named `procs` so it
//! stays apart from `tests/common/`, the fake-downstream helpers.
#![allow(dead_code)]

pub mod http;
pub mod json;
pub mod proxy;
pub mod series;
pub mod servers;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Finds an external program on `PATH`.
///
/// When it is missing, the test fails if `CI` or `OMEN_E2E_REQUIRE` is set
/// (CI and `scripts/test.sh` must never skip an end-to-end test); otherwise
/// it prints why it skips and returns `None`.
pub fn require_program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        if strict() {
            panic!("`{name}` is not installed but the end-to-end tests must run here (CI/OMEN_E2E_REQUIRE set): run scripts/install-deps.sh");
        }
        eprintln!("SKIPPING end-to-end test: `{name}` not on PATH (run scripts/install-deps.sh; CI never skips)");
    }
    found
}

/// True where end-to-end tests must never skip: `CI` or `OMEN_E2E_REQUIRE`
/// is set (to anything but empty, `0` or `false`).
pub fn strict() -> bool {
    ["CI", "OMEN_E2E_REQUIRE"].iter().any(|v| {
        std::env::var(v)
            .map(|s| !s.is_empty() && s != "0" && s != "false")
            .unwrap_or(false)
    })
}

/// Polls `f` every 200 ms until it returns `Ok`, and panics with its last
/// error once `timeout` has passed.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A scratch directory for one test. Removed on success; kept on panic,
/// when the tail of every `*.log` in it is printed.
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(test: &str) -> TestDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = option_env!("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let path = base.join(format!(
            "e2e-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create test dir");
        TestDir { path }
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- test failed; files kept in {}", self.path.display());
            let mut logs: Vec<_> = fs::read_dir(&self.path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            logs.sort();
            for log in logs {
                eprintln!("--- last lines of {}:\n{}", log.display(), tail(&log, 25));
            }
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A child process whose output goes to `<dir>/<name>.log`, killed on drop.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Starts `cmd` with its output appended to `<dir>/<name>.log`.
    pub fn spawn(name: &str, dir: &Path, cmd: &mut Command) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log");
        let err = out.try_clone().expect("dup log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            log,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(|c| c.id())
            .expect("process already stopped")
    }

    /// `Err` with the exit status and log tail if the process has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        let c = self.child.as_mut().ok_or("process already stopped")?;
        match c.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => Err(format!(
                "{} exited ({st}); log:\n{}",
                self.name,
                tail(&self.log, 25)
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; panics (the
    /// process is then killed on drop) if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("process already stopped");
        loop {
            match child.try_wait() {
                Ok(Some(st)) => {
                    self.child = None;
                    return st;
                }
                Ok(None) if Instant::now() >= deadline => {
                    panic!(
                        "{} still running after {timeout:?}; log:\n{}",
                        self.name,
                        tail(&self.log, 25)
                    )
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("wait for {}: {e}", self.name),
            }
        }
    }

    /// Sends `signal` (e.g. `TERM`, `KILL`) to the process without waiting.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {} failed", self.name);
    }

    /// SIGKILL, as `kill -9`: no chance to clean up. Returns once the process is gone.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("process already stopped");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit, then SIGKILLs.
    /// Returns the exit status (`None` if it had to be killed).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sums the samples of `name` in a Prometheus text exposition whose label
/// set contains every one of `labels` (e.g. `code="503"`). `None` if absent.
pub fn metric_sum(exposition: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut total = None;
    for line in exposition.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if !labels.iter().all(|l| rest.contains(l)) {
            continue;
        }
        let Some(v) = rest.rsplit(['}', ' ']).find(|s| !s.is_empty()) else {
            continue;
        };
        // A trailing timestamp is not used by any of the servers we scrape.
        if let Ok(v) = v.parse::<f64>() {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    #[test]
    fn sums_matching_samples() {
        let text = "# HELP x\nomen_requests_total{code=\"204\"} 5\nomen_requests_total{code=\"503\"} 2\nomen_requests_total_other 9\nup 1\n";
        assert_eq!(metric_sum(text, "omen_requests_total", &[]), Some(7.0));
        assert_eq!(
            metric_sum(text, "omen_requests_total", &["code=\"503\""]),
            Some(2.0)
        );
        assert_eq!(metric_sum(text, "up", &[]), Some(1.0));
        assert_eq!(metric_sum(text, "down", &[]), None);
    }
}
