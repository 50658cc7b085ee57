//! Launchers for the real servers of the end-to-end tests: omen (the binary
//! under test), Debian's `prometheus` (as sender and as remote-write
//! receiver) and `victoria-metrics`. Each listens on its own free loopback
//! port and keeps its config, data and log in the test's scratch directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::http::{self, enc};
use super::json::Json;
use super::series::{self, Labels, SeriesSet};
use super::{wait_for, Proc};

/// How long a server may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `url` until it answers 200, failing early if `proc` exits.
pub fn wait_ready(proc: &mut Proc, url: &str) {
    wait_for(
        &format!("{} ready at {url}", proc.name),
        READY_TIMEOUT,
        || {
            proc.check_running()?;
            match http::get(url) {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(format!("status {}: {}", r.status, r.text())),
                Err(e) => Err(e.to_string()),
            }
        },
    );
}

/// GETs a URL that must answer 200 and returns the body as text.
pub fn get_ok(url: &str) -> Result<String, String> {
    let r = http::get(url).map_err(|e| format!("GET {url}: {e}"))?;
    if r.status != 200 {
        return Err(format!("GET {url}: status {}: {}", r.status, r.text()));
    }
    Ok(r.text())
}

/// Quotes a string for YAML (single-quoted style).
pub fn yaml_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A running omen.
pub struct Omen {
    pub proc: Proc,
    pub port: u16,
    pub config: PathBuf,
}

impl Omen {
    /// Writes a config (listen port, downstream URL, whitelist) and starts
    /// `omen serve` with it, waiting for `/-/ready`.
    pub fn start(
        bin: &Path,
        dir: &Path,
        port: u16,
        downstream_url: &str,
        whitelist: &[&str],
    ) -> Omen {
        let mut cfg = format!(
            "server:\n  listen: 127.0.0.1:{port}\n  max_decoded_bytes: 32MiB\n  max_concurrent_requests: 64\n  shutdown_grace: 10s\n\
             downstream:\n  url: {}\n  timeout: 10s\nwhitelist:\n",
            yaml_str(downstream_url)
        );
        for sel in whitelist {
            cfg.push_str(&format!("  - {}\n", yaml_str(sel)));
        }
        let config = dir.join("omen.yaml");
        fs::write(&config, cfg).expect("write omen config");
        let mut proc = Proc::spawn(
            "omen",
            dir,
            Command::new(bin)
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "info"),
        );
        wait_ready(&mut proc, &format!("http://127.0.0.1:{port}/-/ready"));
        Omen { proc, port, config }
    }

    /// Starts `omen serve` with a complete config (which must listen on
    /// `127.0.0.1:<port>`), waiting for `/-/ready`.
    pub fn start_with_config(bin: &Path, dir: &Path, name: &str, port: u16, yaml: &str) -> Omen {
        let config = dir.join(format!("{name}.yaml"));
        fs::write(&config, yaml).expect("write omen config");
        let mut omen = Omen {
            proc: spawn_omen(bin, dir, name, &config),
            port,
            config,
        };
        omen.wait_ready();
        omen
    }

    /// Starts omen again with the same binary, config and port (after it
    /// stopped or was killed), waiting for `/-/ready`.
    pub fn restart(&mut self, bin: &Path) {
        let dir = self.proc.log.parent().expect("log in a dir").to_path_buf();
        self.proc = spawn_omen(bin, &dir, &self.proc.name.clone(), &self.config);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let url = format!("{}/-/ready", self.url());
        wait_ready(&mut self.proc, &url);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn metrics(&self) -> Result<String, String> {
        get_ok(&format!("{}/metrics", self.url()))
    }

    /// SIGTERM must make omen drain and exit 0.
    pub fn stop_cleanly(&mut self) {
        let st = self.proc.terminate(Duration::from_secs(20));
        assert!(
            st.is_some_and(|s| s.success()),
            "omen did not exit 0 within 20 s of SIGTERM (status {st:?}); log:\n{}",
            super::tail(&self.proc.log, 25)
        );
    }
}

fn spawn_omen(bin: &Path, dir: &Path, name: &str, config: &Path) -> Proc {
    Proc::spawn(
        name,
        dir,
        Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info"),
    )
}

/// A running Debian `prometheus`.
pub struct Prometheus {
    pub proc: Proc,
    pub port: u16,
    pub name: String,
    dir: PathBuf,
    bin: PathBuf,
    args: Vec<String>,
}

impl Prometheus {
    /// Starts `prometheus` named `name` with `config` (YAML) and `extra`
    /// flags; its data live in `<dir>/<name>-data`, so a restart with the
    /// same name keeps them.
    pub fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        port: u16,
        config: &str,
        extra: &[&str],
    ) -> Prometheus {
        let cfg = dir.join(format!("{name}.yml"));
        fs::write(&cfg, config).expect("write prometheus config");
        let mut args = vec![
            format!("--config.file={}", cfg.display()),
            format!(
                "--storage.tsdb.path={}",
                dir.join(format!("{name}-data")).display()
            ),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-lifecycle".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn(name, dir, Command::new(bin).args(&args));
        let mut p = Prometheus {
            proc,
            port,
            name: name.to_string(),
            dir: dir.to_path_buf(),
            bin: bin.to_path_buf(),
            args,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let url = format!("{}/-/ready", self.url());
        wait_ready(&mut self.proc, &url);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The remote-write receiver URL (needs `--web.enable-remote-write-receiver`).
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    /// Graceful stop (SIGTERM); the TSDB is closed cleanly.
    pub fn stop(&mut self) {
        let st = self.proc.terminate(Duration::from_secs(30));
        assert!(
            st.is_some_and(|s| s.success()),
            "{} did not stop cleanly: {st:?}",
            self.name
        );
    }

    /// Starts again with the same flags, data directory and port.
    pub fn restart(&mut self) {
        self.proc = Proc::spawn(
            &self.name,
            &self.dir,
            Command::new(&self.bin).args(&self.args),
        );
        self.wait_ready();
    }

    pub fn metrics(&self) -> Result<String, String> {
        get_ok(&format!("{}/metrics", self.url()))
    }

    /// Evaluates `expr` (a range-vector selector, e.g. `up[1h]`) at `time_ms`
    /// and returns the raw samples it selects.
    pub fn raw_samples(&self, expr: &str, time_ms: i64) -> Result<SeriesSet, String> {
        let url = format!(
            "{}/api/v1/query?query={}&time={}.{:03}",
            self.url(),
            enc(expr),
            time_ms / 1000,
            time_ms % 1000
        );
        let body = get_ok(&url)?;
        series::from_prometheus_matrix(&Json::parse(&body)?)
    }

    /// Series known to this Prometheus that match `selector`.
    pub fn series(&self, selector: &str) -> Result<Vec<Labels>, String> {
        let body = get_ok(&format!(
            "{}/api/v1/series?match[]={}",
            self.url(),
            enc(selector)
        ))?;
        series_list(&Json::parse(&body)?)
    }
}

fn series_list(answer: &Json) -> Result<Vec<Labels>, String> {
    if answer.get("status").as_str() != Some("success") {
        return Err(format!("series query failed: {answer:?}"));
    }
    answer
        .get("data")
        .as_arr()
        .iter()
        .map(|m| {
            m.as_obj()
                .ok_or("not an object")?
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or("not a string")?.to_string())))
                .collect()
        })
        .collect()
}

/// The config of a sender: scrapes itself and omen every second and
/// remote-writes everything to `remote_write_url` with a fast queue.
pub fn sender_config(self_port: u16, omen_port: u16, remote_write_url: &str) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ['127.0.0.1:{self_port}']}}]
  - job_name: omen
    static_configs: [{{targets: ['127.0.0.1:{omen_port}']}}]
remote_write:
  - url: {remote_write_url}
    remote_timeout: 10s
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 50ms
      max_backoff: 1s
      max_samples_per_send: 500
    metadata_config:
      send: true
      send_interval: 5s
"#
    )
}

/// A receiver's config: it scrapes nothing.
pub const RECEIVER_CONFIG: &str = "global:\n  scrape_interval: 1m\nscrape_configs: []\n";

/// A running `victoria-metrics` single node.
pub struct Victoria {
    pub proc: Proc,
    pub port: u16,
}

impl Victoria {
    pub fn start(bin: &Path, dir: &Path, port: u16) -> Victoria {
        let mut proc = Proc::spawn(
            "victoria-metrics",
            dir,
            Command::new(bin).args([
                format!("-httpListenAddr=127.0.0.1:{port}"),
                format!("-storageDataPath={}", dir.join("vm-data").display()),
                "-retentionPeriod=1".to_string(),
                // Answer queries about the last second too (default: 1 m).
                "-search.latencyOffset=1s".to_string(),
                "-search.disableCache".to_string(),
            ]),
        );
        wait_ready(&mut proc, &format!("http://127.0.0.1:{port}/health"));
        Victoria { proc, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    /// Makes recently ingested rows searchable, then exports the raw
    /// samples of the series matching `selector` in `[start_ms, end_ms]`.
    pub fn export(&self, selector: &str, start_ms: i64, end_ms: i64) -> Result<SeriesSet, String> {
        get_ok(&format!("{}/internal/force_flush", self.url()))?;
        let body = get_ok(&format!(
            "{}/api/v1/export?match[]={}&start={}&end={}",
            self.url(),
            enc(selector),
            start_ms as f64 / 1000.0,
            end_ms as f64 / 1000.0
        ))?;
        series::from_vm_export(&body)
    }

    /// Evaluates the PromQL `expr` at `time_ms` through the Prometheus-compatible
    /// query API; returns each result series with its value.
    pub fn query(&self, expr: &str, time_ms: i64) -> Result<Vec<(Labels, f64)>, String> {
        let body = get_ok(&format!(
            "{}/api/v1/query?query={}&time={}.{:03}",
            self.url(),
            enc(expr),
            time_ms / 1000,
            time_ms % 1000
        ))?;
        let answer = Json::parse(&body)?;
        if answer.get("status").as_str() != Some("success")
            || answer.get("data").get("resultType").as_str() != Some("vector")
        {
            return Err(format!("query {expr} failed: {body}"));
        }
        answer
            .get("data")
            .get("result")
            .as_arr()
            .iter()
            .map(|r| {
                let labels = r
                    .get("metric")
                    .as_obj()
                    .ok_or("metric is not an object")?
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            v.as_str().ok_or("label value is not a string")?.to_string(),
                        ))
                    })
                    .collect::<Result<Labels, String>>()?;
                let v = r
                    .get("value")
                    .as_arr()
                    .get(1)
                    .and_then(Json::as_num_text)
                    .ok_or("no value")?;
                Ok((labels, series::parse_value(v)?))
            })
            .collect()
    }

    /// Series matching `selector`, through the Prometheus-compatible API.
    pub fn series(&self, selector: &str, start_ms: i64) -> Result<Vec<Labels>, String> {
        let body = get_ok(&format!(
            "{}/api/v1/series?match[]={}&start={}",
            self.url(),
            enc(selector),
            start_ms / 1000
        ))?;
        series_list(&Json::parse(&body)?)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
