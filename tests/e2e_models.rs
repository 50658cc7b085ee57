//! End-to-end, models: a scrape target served by this test exposes a gauge that follows a
//! steady pattern and then jumps; real Debian `prometheus` scrapes it every second and
//! remote-writes through omen (one model rule) to a second `prometheus` receiving
//! remote-write. In the receiver, `anomaly_score{for="<that gauge>"}` exists, stays ≤ 1
//! in the steady part and exceeds 1 at the jump.

mod procs;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use procs::http::{enc, serve_exposition};
use procs::json::Json;
use procs::series::{self, SeriesSet};
use procs::servers::{get_ok, now_ms, wait_ready, yaml_str, Prometheus, RECEIVER_CONFIG};
use procs::{free_port, require_program, wait_for, Proc, TestDir};

const METRIC: &str = "omen_e2e_room_temperature";

/// Serves `/metrics` with the gauge; each scrape advances the pattern by one step.
fn serve_target(jump: Arc<AtomicBool>) -> u16 {
    serve_exposition(move |i| {
        let wobble = [0.0, 0.2, -0.1, 0.15, -0.2, 0.05][(i % 6) as usize];
        let v = if jump.load(Ordering::SeqCst) {
            45.0
        } else {
            21.0 + wobble
        };
        format!("# TYPE {METRIC} gauge\n{METRIC}{{room=\"lab\"}} {v}\n")
    })
}

fn range(p: &Prometheus, expr: &str, t_ms: i64) -> Result<SeriesSet, String> {
    let url = format!(
        "{}/api/v1/query?query={}&time={}.{:03}",
        p.url(),
        enc(expr),
        t_ms / 1000,
        t_ms % 1000
    );
    series::from_prometheus_matrix(&Json::parse(&get_ok(&url)?)?)
}

#[test]
fn anomaly_scores_reach_a_real_receiver() {
    let Some(prometheus) = require_program("prometheus") else {
        return;
    };
    let dir = TestDir::new("e2e_models");
    let receiver = Prometheus::start(
        &prometheus,
        &dir.path,
        "receiver",
        free_port(),
        RECEIVER_CONFIG,
        &["--web.enable-remote-write-receiver"],
    );

    let omen_port = free_port();
    let cfg = dir.join("omen.yaml");
    let yaml = format!(
        "server: {{listen: '127.0.0.1:{omen_port}'}}\n\
         downstream: {{url: {}}}\n\
         whitelist: [{}]\n\
         models:\n  rules:\n    - match: {}\n      warmup: 15\n      outputs: [score, bounds]\n      seasonality: none\n",
        yaml_str(&receiver.write_url()),
        yaml_str(METRIC),
        yaml_str(METRIC)
    );
    std::fs::write(&cfg, yaml).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_omen"));
    let mut omen = Proc::spawn(
        "omen",
        &dir.path,
        Command::new(bin).arg("serve").arg("--config").arg(&cfg),
    );
    wait_ready(&mut omen, &format!("http://127.0.0.1:{omen_port}/-/ready"));

    let jump = Arc::new(AtomicBool::new(false));
    let target = serve_target(jump.clone());
    let sender_port = free_port();
    let sender_cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: room\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n\
         remote_write:\n  - url: http://127.0.0.1:{omen_port}/api/v1/write\n    queue_config: {{batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 1s}}\n"
    );
    let _sender = Prometheus::start(
        &prometheus,
        &dir.path,
        "sender",
        sender_port,
        &sender_cfg,
        &[],
    );

    // Steady: wait until the receiver holds at least 15 scores (after a warm-up of 15).
    let score_sel = format!("anomaly_score{{for=\"{METRIC}\"}}");
    let steady = wait_for(
        "steady scores in the receiver",
        Duration::from_secs(120),
        || {
            let s = range(&receiver, &format!("{score_sel}[10m]"), now_ms())?;
            let n = series::sample_count(&s);
            if n >= 15 {
                Ok(s)
            } else {
                Err(format!("{n} scores so far"))
            }
        },
    );
    let (labels, samples) = steady.iter().next().expect("one score series");
    assert_eq!(
        labels.get("room").map(String::as_str),
        Some("lab"),
        "original labels kept: {labels:?}"
    );
    assert_eq!(labels.get("job").map(String::as_str), Some("room"));
    let max_steady = samples.iter().map(|s| s.value()).fold(0.0, f64::max);
    assert!(
        max_steady <= 1.0,
        "steady part scores at most 1, got {max_steady}: {samples:?}"
    );
    let jump_from = now_ms();

    jump.store(true, Ordering::SeqCst);
    let after = wait_for(
        "a score above 1 after the jump",
        Duration::from_secs(60),
        || {
            let s = range(&receiver, &format!("{score_sel}[10m]"), now_ms())?;
            let over: Vec<f64> = s
                .values()
                .flatten()
                .filter(|x| x.t_ms > jump_from)
                .map(|x| x.value())
                .filter(|v| *v > 1.0)
                .collect();
            if over.is_empty() {
                Err("no score above 1 yet".into())
            } else {
                Ok(over)
            }
        },
    );
    assert!(after[0] > 1.0);
    let bounds = range(
        &receiver,
        &format!("anomaly_forecast_upper{{for=\"{METRIC}\"}}[10m]"),
        now_ms(),
    )
    .unwrap();
    assert!(
        series::sample_count(&bounds) > 0,
        "the band reaches the receiver too"
    );
    omen.terminate(Duration::from_secs(20));
}
