//! Overload with the real binary (issue 8, "Load and bounds"): rounds of far more concurrent
//! write requests than `max_concurrent_requests`, against a slow downstream. Every request is
//! either delivered (204) or shed with 503 + `Retry-After` (nothing in between, nothing
//! half-forwarded), omen's resident memory stays flat from round to round, and it answers
//! normally once the burst is over.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    free_port, post, request, series, start_omen_process, FakeDownstream, Reply, RW_HEADERS,
};
use prost::Message;

const LIMIT: usize = 4;
const CONCURRENT: usize = 64;
const ROUNDS: usize = 8;
const SERIES: usize = 4000;

/// A field of /proc/PID/status in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A request of `SERIES` series with long label values (about 1 MiB decoded); the same
/// series every time, so that the route cache is warm after the first request and only
/// request handling can make memory grow.
fn body() -> Vec<u8> {
    let pad = "x".repeat(160);
    let ts: Vec<_> = (0..SERIES)
        .map(|i| {
            let id = format!("{i}-{pad}");
            series(
                &[("__name__", "load_test"), ("id", &id)],
                &[(1_700_000_000_000 + i as i64, i as f64)],
            )
        })
        .collect();
    snap::raw::Encoder::new()
        .compress_vec(&request(ts).encode_to_vec())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_requests_than_the_limit_are_shed_memory_stays_flat_and_omen_recovers() {
    let fake = FakeDownstream::start().await;
    fake.set_default(Reply::status(200).delay(Duration::from_millis(1500)));
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("omen-overload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("omen.yaml");
    let mut f = std::fs::File::create(&config).unwrap();
    write!(
        f,
        "server: {{listen: '127.0.0.1:{port}', max_concurrent_requests: {LIMIT}}}\n\
         downstream: {{url: '{}'}}\n",
        fake.url()
    )
    .unwrap();
    let server = start_omen_process(&config, port, None).await;
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let url = Arc::new(format!("{base}/api/v1/write"));

    let payload = body();
    let mut rss_kib = Vec::new();
    let (mut delivered, mut shed) = (0, 0);
    for round in 0..ROUNDS {
        let tasks: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let (url, b) = (url.clone(), payload.clone());
                tokio::spawn(async move { post(&url, &RW_HEADERS, b).await })
            })
            .collect();
        let (mut ok, mut busy) = (0, 0);
        for t in tasks {
            let a = t.await.unwrap();
            match a.status {
                204 => ok += 1,
                503 => {
                    assert_eq!(
                        a.headers.get("retry-after").map(|v| v.to_str().unwrap()),
                        Some("1"),
                        "a shed request says when to come back"
                    );
                    busy += 1;
                }
                other => panic!("round {round}: status {other}: {}", a.body),
            }
        }
        assert!(ok >= LIMIT, "round {round}: only {ok} delivered");
        assert!(
            busy >= CONCURRENT / 2,
            "round {round}: only {busy} of {CONCURRENT} shed with a limit of {LIMIT}"
        );
        delivered += ok;
        shed += busy;
        rss_kib.push(status_kib(pid, "VmRSS:"));
    }
    // Each delivered request reached downstream whole, and only those.
    let received = fake.received();
    assert_eq!(received.len(), delivered);
    assert!(received
        .iter()
        .all(|r| r.request.timeseries.len() == SERIES));

    // Flat: after the first two rounds (allocator and route cache warm), later rounds of the
    // same burst do not grow the process. 16 MiB is less than one round's bodies
    // (64 × ~1 MiB decoded), so keeping shed bodies would show.
    let settled = rss_kib[1];
    let last = *rss_kib.last().unwrap();
    eprintln!(
        "delivered {delivered}, shed {shed}; VmRSS per round (MiB): {:?}; peak {} MiB",
        rss_kib.iter().map(|k| k / 1024).collect::<Vec<_>>(),
        status_kib(pid, "VmHWM:") / 1024
    );
    assert!(
        last <= settled + 16 * 1024,
        "RSS grew from {settled} KiB to {last} KiB under repeated overload"
    );

    // Recovery: with the downstream fast again, a single request is delivered at once.
    fake.set_default(Reply::status(200));
    let start = Instant::now();
    let a = post(&url, &RW_HEADERS, payload).await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert!(start.elapsed() < Duration::from_secs(5));
    let metrics = common::get(&format!("{base}/metrics")).await.body;
    let shed_line = metrics
        .lines()
        .find(|l| l.starts_with("omen_requests_total{code=\"503\"}"))
        .expect("503s counted");
    assert_eq!(
        shed_line
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        shed
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
