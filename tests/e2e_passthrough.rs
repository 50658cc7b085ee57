//! End-to-end: real Debian `prometheus` scrapes itself and omen every second
//! and remote-writes to omen; omen keeps the whitelisted series and forwards
//! them to a real receiver (a second `prometheus` with
//! `--web.enable-remote-write-receiver`, or `victoria-metrics`).
//!
//! The checks compare raw samples over a closed time range: the sender's own
//! TSDB holds everything it scraped, so evaluating `SELECTOR[1h]` at a fixed
//! instant `T` (a little in the past) on the sender, for each whitelist
//! selector, gives exactly the samples that must reach the receiver; the
//! receiver, asked for every series at the same `T`, must return exactly
//! those — same series, same timestamps, same values, nothing else.

mod procs;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use procs::series::{self, diff, sample_count, show, Labels, SeriesSet};
use procs::servers::{now_ms, sender_config, Omen, Prometheus, Victoria, RECEIVER_CONFIG};
use procs::{free_port, metric_sum, require_program, wait_for, TestDir};

/// The whitelist under test: a bare metric name, a name regex, and label
/// matchers (`=~` anchored, `!=`) on a label other than `__name__`.
const WHITELIST: &[&str] = &[
    "up",
    r#"{__name__=~"prometheus_tsdb_head_.*"}"#,
    r#"scrape_samples_scraped{job=~"om.n"}"#,
    r#"scrape_duration_seconds{job!="prometheus"}"#,
];

/// Every series, for receivers.
const ALL: &str = r#"{__name__=~".+"}"#;

/// How long samples at or before `T` may take to reach the receiver.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);

fn omen_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omen"))
}

fn label_set(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn job_of(l: &Labels) -> &str {
    l.get("job").map(String::as_str).unwrap_or("")
}

/// A sender → omen → receiver chain. Fields drop in order: the processes
/// are killed first, then the scratch directory is removed (or kept and its
/// logs printed if the test failed).
struct Chain<R> {
    sender: Prometheus,
    omen: Omen,
    receiver: R,
    _dir: TestDir,
}

fn start_chain<R>(test: &str, receiver: impl FnOnce(&TestDir) -> (R, String)) -> Option<Chain<R>> {
    let prometheus = require_program("prometheus")?;
    let dir = TestDir::new(test);
    let (receiver, write_url) = receiver(&dir);
    let omen_port = free_port();
    let omen = Omen::start(&omen_bin(), &dir.path, omen_port, &write_url, WHITELIST);
    let sender_port = free_port();
    let sender = Prometheus::start(
        &prometheus,
        &dir.path,
        "sender",
        sender_port,
        &sender_config(
            sender_port,
            omen_port,
            &format!("{}/api/v1/write", omen.url()),
        ),
        &[],
    );
    Some(Chain {
        sender,
        omen,
        receiver,
        _dir: dir,
    })
}

fn prometheus_receiver(dir: &TestDir) -> (Prometheus, String) {
    let bin = require_program("prometheus").expect("checked by start_chain");
    let r = Prometheus::start(
        &bin,
        &dir.path,
        "receiver",
        free_port(),
        RECEIVER_CONFIG,
        &["--web.enable-remote-write-receiver"],
    );
    let url = r.write_url();
    (r, url)
}

/// What the sender scraped for the whitelisted series, in `(T-1h, T]`.
fn sender_kept(sender: &Prometheus, t_ms: i64) -> SeriesSet {
    let mut out = SeriesSet::new();
    for sel in WHITELIST {
        let got = sender
            .raw_samples(&format!("{sel}[1h]"), t_ms)
            .unwrap_or_else(|e| panic!("query sender: {e}"));
        out.extend(got);
    }
    out
}

/// Every series the sender knows that the whitelist keeps (at any time).
fn sender_kept_series(sender: &Prometheus) -> BTreeSet<Labels> {
    WHITELIST
        .iter()
        .flat_map(|sel| {
            sender
                .series(sel)
                .unwrap_or_else(|e| panic!("series on sender: {e}"))
        })
        .collect()
}

/// The whitelist must have matched series of both jobs and through every
/// selector, and the sender must hold series the whitelist drops, or the
/// comparison would prove little.
fn assert_meaningful(sender: &Prometheus, expected: &SeriesSet, t_ms: i64) {
    let keys: Vec<&Labels> = expected.keys().collect();
    let has = |name: &str, job: &str| {
        keys.iter()
            .any(|l| l["__name__"] == name && job_of(l) == job)
    };
    for (name, job) in [
        ("up", "omen"),
        ("up", "prometheus"),
        ("scrape_samples_scraped", "omen"),
        ("scrape_duration_seconds", "omen"),
        ("prometheus_tsdb_head_series", "prometheus"),
    ] {
        assert!(
            has(name, job),
            "sender has no {name}{{job={job:?}}}; kept series: {:?}",
            keys.iter().map(|l| show(l)).collect::<Vec<_>>()
        );
    }
    for (name, job) in [
        ("scrape_samples_scraped", "prometheus"),
        ("scrape_duration_seconds", "prometheus"),
    ] {
        assert!(
            !has(name, job),
            "whitelist should not keep {name}{{job={job:?}}}"
        );
    }
    let all = sender
        .raw_samples(&format!("{ALL}[1h]"), t_ms)
        .expect("query sender");
    assert!(
        all.len() > expected.len() + 100,
        "the sender should hold many series the whitelist drops: {} in all, {} kept",
        all.len(),
        expected.len()
    );
    for l in expected.keys() {
        assert!(all.contains_key(l));
    }
    assert!(expected.values().all(|s| !s.is_empty()));
}

/// Polls `receiver_at(T)` until it equals `expected` exactly.
fn wait_exact(
    what: &str,
    expected: &SeriesSet,
    receiver_at: impl FnMut() -> Result<SeriesSet, String>,
) {
    wait_same(what, expected, diff, receiver_at)
}

fn wait_same(
    what: &str,
    expected: &SeriesSet,
    diff: fn(&SeriesSet, &SeriesSet) -> String,
    mut receiver_at: impl FnMut() -> Result<SeriesSet, String>,
) {
    wait_for(what, DELIVERY_TIMEOUT, || {
        let got = receiver_at()?;
        let d = diff(expected, &got);
        if d.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "receiver differs from sender ({} vs {} samples):\n{d}",
                sample_count(&got),
                sample_count(expected)
            ))
        }
    });
}

fn omen_metric(omen: &Omen, name: &str, labels: &[&str]) -> f64 {
    let text = omen.metrics().expect("omen /metrics");
    metric_sum(&text, name, labels)
        .unwrap_or_else(|| panic!("omen /metrics has no {name}{labels:?}:\n{text}"))
}

/// Waits until `receiver_series` shows `up` of both jobs with `n` samples each.
fn wait_for_scrapes(
    what: &str,
    n: usize,
    mut up_at_now: impl FnMut() -> Result<SeriesSet, String>,
) {
    wait_for(what, Duration::from_secs(60), || {
        let got = up_at_now()?;
        let count = |job: &str| {
            got.iter()
                .filter(|(l, _)| job_of(l) == job)
                .map(|(_, s)| s.len())
                .sum::<usize>()
        };
        let (a, b) = (count("omen"), count("prometheus"));
        if a >= n && b >= n {
            Ok(())
        } else {
            Err(format!(
                "up samples at the receiver: omen {a}, prometheus {b}; want {n} each"
            ))
        }
    });
}

fn check_forwarded_exactly(c: &Chain<Prometheus>, t_ms: i64) -> SeriesSet {
    let expected = sender_kept(&c.sender, t_ms);
    assert_meaningful(&c.sender, &expected, t_ms);
    wait_exact(
        "the receiver to hold exactly the whitelisted samples",
        &expected,
        || c.receiver.raw_samples(&format!("{ALL}[1h]"), t_ms),
    );
    // No other series at any time, including samples newer than T.
    let allowed = sender_kept_series(&c.sender);
    let at_receiver = c.receiver.series(ALL).expect("series on receiver");
    assert!(!at_receiver.is_empty());
    for l in &at_receiver {
        assert!(
            allowed.contains(l),
            "receiver has {} which the whitelist does not keep",
            show(l)
        );
    }
    expected
}

#[test]
fn prometheus_receiver_gets_exactly_the_whitelisted_samples() {
    let Some(mut c) = start_chain("exact", prometheus_receiver) else {
        return;
    };
    wait_for_scrapes("10 scrapes to arrive", 10, || {
        c.receiver.raw_samples("up[1h]", now_ms())
    });
    let t = now_ms() - 2_000;
    let expected = check_forwarded_exactly(&c, t);

    let received = omen_metric(&c.omen, "omen_received_samples_total", &[]);
    let forwarded = omen_metric(&c.omen, "omen_forwarded_samples_total", &[]);
    let dropped = omen_metric(
        &c.omen,
        "omen_dropped_samples_total",
        &["reason=\"whitelist\""],
    );
    assert!(
        forwarded >= sample_count(&expected) as f64,
        "omen counts {forwarded} forwarded, the receiver holds {}",
        sample_count(&expected)
    );
    assert!(
        dropped > 0.0 && received >= forwarded + dropped,
        "received {received}, forwarded {forwarded}, dropped by whitelist {dropped}"
    );
    eprintln!(
        "exact: {} series / {} samples kept and delivered exactly; omen received {received}, forwarded {forwarded}, dropped {dropped}",
        expected.len(),
        sample_count(&expected)
    );
    c.omen.stop_cleanly();
}

#[test]
fn receiver_outage_of_30s_loses_no_sample() {
    let Some(mut c) = start_chain("outage", prometheus_receiver) else {
        return;
    };
    wait_for_scrapes("5 scrapes to arrive", 5, || {
        c.receiver.raw_samples("up[1h]", now_ms())
    });

    c.receiver.stop();
    let down_at = Instant::now();
    let t_down = now_ms();
    wait_for(
        "omen to answer 503 while the receiver is down",
        Duration::from_secs(20),
        || {
            let text = c.omen.metrics()?;
            match metric_sum(&text, "omen_requests_total", &["code=\"503\""]) {
                Some(n) if n > 0.0 => Ok(()),
                other => Err(format!("omen_requests_total{{code=\"503\"}} = {other:?}")),
            }
        },
    );
    // The outage itself is the point of this test, so this one is a real wait.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed()));
    let t_up = now_ms();
    c.receiver.restart();

    // Let a few scrapes after the outage through too.
    wait_for(
        "samples scraped after the restart to arrive",
        DELIVERY_TIMEOUT,
        || {
            let up = c.receiver.raw_samples(r#"up{job="omen"}[1h]"#, now_ms())?;
            let after = up
                .values()
                .flatten()
                .filter(|s| s.t_ms > t_up + 3_000)
                .count();
            if after > 0 {
                Ok(())
            } else {
                Err("no sample newer than the restart yet".into())
            }
        },
    );
    let t = now_ms() - 2_000;
    let expected = check_forwarded_exactly(&c, t);

    let during: usize = expected
        .iter()
        .filter(|(l, _)| l["__name__"] == "up" && job_of(l) == "omen")
        .flat_map(|(_, s)| s)
        .filter(|s| s.t_ms > t_down && s.t_ms < t_up)
        .count();
    assert!(
        during >= 20,
        "only {during} samples of up{{job=\"omen\"}} were scraped during the 30 s outage"
    );
    let retried = metric_sum(
        &c.sender.metrics().expect("sender metrics"),
        "prometheus_remote_storage_samples_retried_total",
        &[],
    );
    assert!(
        retried.unwrap_or(0.0) > 0.0,
        "the sender never retried (samples_retried_total = {retried:?})"
    );
    let r503 = omen_metric(&c.omen, "omen_requests_total", &["code=\"503\""]);
    eprintln!(
        "outage: {during} samples of up{{job=\"omen\"}} scraped during the outage all arrived; omen answered {r503} 503s; sender retried {retried:?} samples; {} samples checked",
        sample_count(&expected)
    );
    c.omen.stop_cleanly();
}

#[test]
fn victoriametrics_receiver_gets_the_whitelisted_samples() {
    let Some(vm_bin) = require_program("victoria-metrics") else {
        return;
    };
    let start = now_ms() - 60_000;
    let Some(mut c) = start_chain("victoriametrics", |dir| {
        let vm = Victoria::start(&vm_bin, &dir.path, free_port());
        let url = vm.write_url();
        (vm, url)
    }) else {
        return;
    };
    wait_for_scrapes("10 scrapes to arrive", 10, || {
        c.receiver.export("up", start, now_ms())
    });
    let t = now_ms() - 2_000;
    let expected = sender_kept(&c.sender, t);
    assert_meaningful(&c.sender, &expected, t);
    // VictoriaMetrics keeps Prometheus stale markers as NaN samples, which a
    // range query on the sender never returns, so NaNs are left out; and it
    // stores values to 12 significant digits. Series and timestamps: exact.
    let expected = series::without_nan(&expected);
    wait_same(
        "VictoriaMetrics to hold exactly the whitelisted samples",
        &expected,
        series::diff_12_digits,
        || {
            Ok(series::without_nan(&c.receiver.export(
                r#"{__name__!=""}"#,
                start,
                t,
            )?))
        },
    );
    let allowed = sender_kept_series(&c.sender);
    let at_vm = c
        .receiver
        .series(r#"{__name__!=""}"#, start)
        .expect("series on VictoriaMetrics");
    assert!(
        at_vm.len() >= expected.len(),
        "VictoriaMetrics lists {} series, {} expected",
        at_vm.len(),
        expected.len()
    );
    for l in &at_vm {
        assert!(
            allowed.contains(l),
            "VictoriaMetrics has {} which the whitelist does not keep",
            show(l)
        );
    }
    assert!(at_vm.contains(&label_set(&[
        ("__name__", "up"),
        ("instance", &format!("127.0.0.1:{}", c.omen.port)),
        ("job", "omen")
    ])));
    eprintln!(
        "victoriametrics: {} series / {} samples delivered exactly",
        expected.len(),
        sample_count(&expected)
    );
    c.omen.stop_cleanly();
}
