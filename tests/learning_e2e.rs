//! The learning core end to end (issue 5): omen (the release binary) is fed three days of
//! a stream with a daily pattern and exports its fit histories at shutdown; the PySpark job
//! (`learning.train`, local mode, the project's `.venv`) trains a model file; a fresh omen
//! imports it. The imported series score from their first sample (no warm-up) and score
//! the pattern's known anomaly above 1, while a series omen starts cold cannot yet.
//!
//! Needs `.venv` (`bash learning/install.sh`) and Java; without them the test skips, unless
//! `CI` or `OMEN_E2E_REQUIRE` is set (then it fails).

mod common;
mod procs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;
use omen::proto;

const DAY_MS: i64 = 86_400_000;
const STEP_MS: i64 = 60_000;
/// Phase 2: samples after the import, and the one carrying the anomaly.
const AFTER: i64 = 60;
const ANOMALY_AT: i64 = 20;
const SPIKE: f64 = 60.0;

/// The pattern: a daily cycle of ±40 around 100 with ±2 of deterministic noise.
fn value(ts: i64, instance: u64) -> f64 {
    let phase = (ts.rem_euclid(DAY_MS)) as f64 / DAY_MS as f64;
    let mut h = (ts as u64 ^ instance.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 31;
    let noise = (h % 4001) as f64 / 1000.0 - 2.0;
    100.0 + 40.0 * (2.0 * std::f64::consts::PI * phase).sin() + noise
}

fn labels(instance: &str) -> [(&'static str, String); 2] {
    [
        ("__name__", "requests".to_string()),
        ("instance", instance.to_string()),
    ]
}

fn series_of(instance: &str, samples: &[(i64, f64)]) -> proto::TimeSeries {
    let l = labels(instance);
    let pairs: Vec<(&str, &str)> = l.iter().map(|(n, v)| (*n, v.as_str())).collect();
    series(&pairs, samples)
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("omen-learning-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The `.venv` interpreter with pyspark, or `None` (skip) outside strict mode.
fn python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = root.join(".venv/bin/python");
    let ok = py.is_file()
        && Command::new(&py)
            .args(["-c", "import pyspark, pyarrow, numba"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        if procs::strict() {
            panic!("{} with pyspark is missing but the end-to-end tests must run here (CI/OMEN_E2E_REQUIRE set): run bash learning/install.sh", py.display());
        }
        eprintln!(
            "SKIPPING learning end-to-end test: no .venv with pyspark (bash learning/install.sh)"
        );
        return None;
    }
    procs::require_program("java")?;
    Some(py)
}

/// The `anomaly_score` samples downstream received for `instance`.
fn scores(fake: &FakeDownstream, instance: &str) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for r in fake.received() {
        for s in &r.request.timeseries {
            let has = |n: &str, v: &str| s.labels.iter().any(|l| l.name == n && l.value == v);
            if has("__name__", "anomaly_score") && has("instance", instance) {
                out.extend(s.samples.iter().map(|x| (x.timestamp, x.value)));
            }
        }
    }
    out
}

async fn metric_of(port: u16, name: &str) -> f64 {
    let text = get(&format!("http://127.0.0.1:{port}/metrics")).await.body;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_train_import_scores_without_warmup() {
    let Some(python) = python() else { return };
    let d = tempdir();
    let rule = "models: {rules: [{match: '{__name__=\"requests\"}', warmup: 30}]";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Three days of history ending three hours ago, aligned to the 10-minute buckets.
    let t0 = (now - 3 * DAY_MS - 3 * 3_600_000) / 600_000 * 600_000;
    let t1 = t0 + 3 * DAY_MS;

    // 1. omen learns from the stream and exports its histories at shutdown.
    let fake = FakeDownstream::start().await;
    let port = free_port();
    let config = d.join("first.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{listen: '127.0.0.1:{port}'}}\ndownstream: {{url: '{}'}}\n{rule}}}\n\
             persistence: {{path: models.arrow, export: {{path: history.arrow, interval: 1h}}}}\n",
            fake.url()
        ),
    )
    .unwrap();
    let mut first = start_omen_process(&config, port, Some(&d.join("first.log"))).await;
    let hour = 3_600_000 / STEP_MS;
    for chunk in 0..(t1 - t0) / STEP_MS / hour {
        let ts: Vec<i64> = (0..hour)
            .map(|i| t0 + (chunk * hour + i) * STEP_MS)
            .collect();
        let req = request(
            ["a", "b"]
                .iter()
                .enumerate()
                .map(|(n, inst)| {
                    let s: Vec<(i64, f64)> = ts.iter().map(|&t| (t, value(t, n as u64))).collect();
                    series_of(inst, &s)
                })
                .collect(),
        );
        assert_eq!(write_port(port, &req).await, 204);
    }
    let pid = first.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(first.0.wait().unwrap().success(), "SIGTERM exits 0");
    let history = d.join("history.arrow");
    assert!(history.is_file(), "the shutdown export is written");

    // 2. The PySpark job trains (local mode).
    let import = d.join("import");
    std::fs::create_dir_all(&import).unwrap();
    let started = Instant::now();
    let out = Command::new(&python)
        .args(["-m", "learning.train", "--master", "local[2]", "--input"])
        .arg(&history)
        .arg("--output")
        .arg(import.join("models.arrow"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "learning.train failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "learning.train: {} ({:.1} s)",
        String::from_utf8_lossy(&out.stdout).trim(),
        started.elapsed().as_secs_f64()
    );

    // 3. A fresh omen imports the model file (a folder holding it).
    let fake = FakeDownstream::start().await;
    let port = free_port();
    let config = d.join("second.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{listen: '127.0.0.1:{port}'}}\ndownstream: {{url: '{}'}}\n{rule}, \
             import: {{path: import}}}}\n",
            fake.url()
        ),
    )
    .unwrap();
    let _second = start_omen_process(&config, port, Some(&d.join("second.log"))).await;
    assert_eq!(metric_of(port, "omen_import_loads_total").await, 1.0);
    assert_eq!(metric_of(port, "omen_import_series").await, 2.0);

    // The stream goes on for an hour, one sample per request; "c" is a series omen has
    // never seen. The anomaly hits every series at the same sample.
    let anomaly_ts = t1 + ANOMALY_AT * STEP_MS;
    for k in 0..AFTER {
        let t = t1 + k * STEP_MS;
        let spike = if k == ANOMALY_AT { SPIKE } else { 0.0 };
        let req = request(
            ["a", "b", "c"]
                .iter()
                .enumerate()
                .map(|(n, inst)| series_of(inst, &[(t, value(t, n as u64) + spike)]))
                .collect(),
        );
        assert_eq!(write_port(port, &req).await, 204);
    }
    for inst in ["a", "b"] {
        let s = scores(&fake, inst);
        assert_eq!(
            s.len(),
            AFTER as usize,
            "{inst}: imported, scored from the first sample (no warm-up)"
        );
        assert_eq!(s[0].0, t1);
        let at = s.iter().find(|x| x.0 == anomaly_ts).unwrap().1;
        let mut normal: Vec<f64> = s
            .iter()
            .filter(|x| x.0 != anomaly_ts)
            .map(|x| x.1)
            .collect();
        normal.sort_by(f64::total_cmp);
        let median = normal[normal.len() / 2];
        let first: Vec<String> = s[..5].iter().map(|x| format!("{:.2}", x.1)).collect();
        eprintln!(
            "{inst}: score at the anomaly {at:.2}; other samples median {median:.2}, max {:.2}; first five {}",
            normal[normal.len() - 1],
            first.join(" ")
        );
        assert!(at > 1.0, "{inst}: the anomaly scores {at}");
        assert!(
            median < 1.0,
            "{inst}: the imported model fits the pattern (median score {median})"
        );
    }
    let cold = scores(&fake, "c");
    assert!(
        cold.iter().all(|x| x.0 > anomaly_ts),
        "c: a cold-started series is still warming up at the anomaly: {cold:?}"
    );
    assert!(
        !cold.is_empty() && cold.len() < (AFTER - ANOMALY_AT) as usize,
        "c: scored only after its 30-sample warm-up ({} scores)",
        cold.len()
    );
}
