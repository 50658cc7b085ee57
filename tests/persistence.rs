//! Models survive restarts: a SIGTERM writes the snapshot and the restarted omen produces
//! exactly the derived series an uninterrupted one does; after `kill -9` omen restarts from
//! the last periodic snapshot and keeps answering.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use omen::proto;

fn config(dir: &Path, port: u16, downstream: &str, interval: &str) -> PathBuf {
    let path = dir.join("omen.yaml");
    let yaml = format!(
        "server: {{listen: '127.0.0.1:{port}'}}\n\
         downstream: {{url: '{downstream}'}}\n\
         models: {{rules: [{{match: '{{__name__=~\"temp.*\"}}', warmup: 10, outputs: [score, forecast, bounds]}}]}}\n\
         persistence: {{path: models.arrow, snapshot_interval: {interval}}}\n"
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

fn stream(i: i64) -> proto::WriteRequest {
    let t = 1_700_000_000_000 + i * 15_000;
    let daily = (i as f64 / 40.0).sin() * 3.0;
    let wobble = [0.0, 0.4, -0.3, 0.2, -0.1][(i % 5) as usize];
    request(vec![
        series(
            &[("__name__", "temperature"), ("room", "a")],
            &[(t, 20.0 + daily + wobble)],
        ),
        series(
            &[("__name__", "temperature"), ("room", "b")],
            &[(t, 10.0 - daily + wobble)],
        ),
    ])
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omen-restart-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_sigterm_gives_identical_derived_series() {
    const N: i64 = 120;
    // Uninterrupted reference.
    let reference = FakeDownstream::start().await;
    let d1 = tempdir("reference");
    let p1 = free_port();
    let c1 = config(&d1, p1, &reference.url(), "1h");
    let _o1 = start_omen_process(&c1, p1, None).await;
    for i in 0..N {
        assert_eq!(write_port(p1, &stream(i)).await, 204);
    }

    // Same stream, with a SIGTERM and a restart in the middle.
    let restarted = FakeDownstream::start().await;
    let d2 = tempdir("restarted");
    let p2 = free_port();
    let c2 = config(&d2, p2, &restarted.url(), "1h");
    let mut o2 = start_omen_process(&c2, p2, None).await;
    for i in 0..N / 2 {
        assert_eq!(write_port(p2, &stream(i)).await, 204);
    }
    let pid = o2.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = o2.0.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    assert!(
        d2.join("models.arrow").exists(),
        "the shutdown snapshot is written"
    );
    let _o2b = start_omen_process(&c2, p2, None).await;
    for i in N / 2..N {
        assert_eq!(write_port(p2, &stream(i)).await, 204);
    }

    let (a, b) = (reference.received(), restarted.received());
    assert_eq!(a.len(), b.len());
    let derived = |r: &Received| r.request.timeseries.len() > 2;
    assert!(
        a[N as usize / 2..].iter().all(derived),
        "the reference emits derived series after warm-up"
    );
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.raw, y.raw, "request {i}: identical downstream body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_restarts_from_the_last_snapshot() {
    let fake = FakeDownstream::start().await;
    let d = tempdir("kill9");
    let port = free_port();
    let c = config(&d, port, &fake.url(), "1s");
    let o = start_omen_process(&c, port, None).await;
    for i in 0..40 {
        assert_eq!(write_port(port, &stream(i)).await, 204);
    }
    // Wait for a periodic snapshot that holds the two models.
    let started = Instant::now();
    loop {
        let text = get(&format!("http://127.0.0.1:{port}/metrics")).await.body;
        if text.lines().any(|l| l == "omen_snapshot_series 2") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no periodic snapshot"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(o); // SIGKILL
    let _o = start_omen_process(&c, port, None).await;
    let metrics = get(&format!("http://127.0.0.1:{port}/metrics")).await.body;
    assert!(
        metrics.contains("omen_snapshot_restored_series 2"),
        "restored from the snapshot"
    );
    assert!(metrics.contains("omen_models 2"));
    assert_eq!(write_port(port, &stream(40)).await, 204);
    let last = fake.received().pop().unwrap();
    assert!(
        last.request.timeseries.len() > 2,
        "warm models: derived series right after the restart"
    );
}

/// Writes a model file (snapshot schema) listing `keys`, atomically as the learning core does.
fn write_import(path: &Path, keys: &[u64]) {
    use omen::model::{Kind, Model};
    use omen::persist::{Row, SeriesParams, Writer};
    let rows: Vec<Row> = keys
        .iter()
        .map(|&key| Row {
            key,
            rule: 0,
            state: Model::new(Kind::Gauge).to_record(),
            params: SeriesParams {
                alpha: Some(0.1),
                ..SeriesParams::default()
            },
        })
        .collect();
    let mut w = Writer::create(path).unwrap();
    w.push(&rows).unwrap();
    w.commit().unwrap();
}

async fn metric_value(port: u16, name: &str) -> f64 {
    let text = get(&format!("http://127.0.0.1:{port}/metrics")).await.body;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

async fn wait_metric(port: u16, name: &str, want: f64) {
    let started = Instant::now();
    loop {
        if metric_value(port, name).await == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{name} never reached {want} (now {})",
            metric_value(port, name).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_import_reloads_on_change_and_sighup_and_keeps_the_last_good_one() {
    let fake = FakeDownstream::start().await;
    let d = tempdir("import");
    let import = d.join("import");
    std::fs::create_dir_all(&import).unwrap();
    write_import(&import.join("a.arrow"), &[1, 2, 3]);
    let port = free_port();
    let config = d.join("omen.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{listen: '127.0.0.1:{port}'}}\ndownstream: {{url: '{}'}}\n\
             models: {{rules: [{{match: up}}], import: {{path: import, poll_interval: 1s}}}}\n",
            fake.url()
        ),
    )
    .unwrap();
    let o = start_omen_process(&config, port, None).await;
    // Loaded before /-/ready.
    assert_eq!(metric_value(port, "omen_import_loads_total").await, 1.0);
    assert_eq!(metric_value(port, "omen_import_series").await, 3.0);

    // A new file in the folder is picked up by the poll.
    write_import(&import.join("b.arrow"), &[4]);
    wait_metric(port, "omen_import_series", 4.0).await;
    assert_eq!(metric_value(port, "omen_import_loads_total").await, 2.0);

    // A truncated one is refused and counted; the previous import stays in force.
    let bytes = std::fs::read(import.join("b.arrow")).unwrap();
    std::fs::write(import.join("c.arrow"), &bytes[..bytes.len() - 40]).unwrap();
    wait_metric(port, "omen_import_failures_total", 1.0).await;
    assert_eq!(metric_value(port, "omen_import_series").await, 4.0);

    // Removing it is a change too; then SIGHUP re-reads the import without any change.
    std::fs::remove_file(import.join("c.arrow")).unwrap();
    wait_metric(port, "omen_import_loads_total", 3.0).await;
    let pid = o.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_metric(port, "omen_import_loads_total", 4.0).await;
    assert_eq!(metric_value(port, "omen_import_series").await, 4.0);
    assert_eq!(metric_value(port, "omen_import_failures_total").await, 1.0);
}
