//! Models survive restarts: a SIGTERM writes the snapshot and the restarted omen produces
//! exactly the derived series an uninterrupted one does; after `kill -9` omen restarts from
//! the last periodic snapshot and keeps answering.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use omen::proto;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

async fn start(config: &Path, port: u16) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_omen"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Ok(Ok(r)) = tokio::time::timeout(
            Duration::from_millis(500),
            try_get(&format!("http://127.0.0.1:{port}/-/ready")),
        )
        .await
        {
            if r == 200 {
                return Proc(child);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "omen did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn try_get(url: &str) -> Result<u16, String> {
    use http_body_util::Full;
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let r = client
        .request(hyper::Request::get(url).body(Full::default()).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    Ok(r.status().as_u16())
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

async fn post_to(port: u16, req: &proto::WriteRequest) -> u16 {
    use prost::Message;
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    post(
        &format!("http://127.0.0.1:{port}/api/v1/write"),
        &RW_HEADERS,
        body,
    )
    .await
    .status
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
    let _o1 = start(&c1, p1).await;
    for i in 0..N {
        assert_eq!(post_to(p1, &stream(i)).await, 204);
    }

    // Same stream, with a SIGTERM and a restart in the middle.
    let restarted = FakeDownstream::start().await;
    let d2 = tempdir("restarted");
    let p2 = free_port();
    let c2 = config(&d2, p2, &restarted.url(), "1h");
    let mut o2 = start(&c2, p2).await;
    for i in 0..N / 2 {
        assert_eq!(post_to(p2, &stream(i)).await, 204);
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
    let _o2b = start(&c2, p2).await;
    for i in N / 2..N {
        assert_eq!(post_to(p2, &stream(i)).await, 204);
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
    let o = start(&c, port).await;
    for i in 0..40 {
        assert_eq!(post_to(port, &stream(i)).await, 204);
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
    let _o = start(&c, port).await;
    let metrics = get(&format!("http://127.0.0.1:{port}/metrics")).await.body;
    assert!(
        metrics.contains("omen_snapshot_restored_series 2"),
        "restored from the snapshot"
    );
    assert!(metrics.contains("omen_models 2"));
    assert_eq!(post_to(port, &stream(40)).await, 204);
    let last = fake.received().pop().unwrap();
    assert!(
        last.request.timeseries.len() > 2,
        "warm models: derived series right after the restart"
    );
}
