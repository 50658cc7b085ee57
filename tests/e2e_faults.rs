//! End-to-end faults: nothing is lost and derived series stay exact while the
//! downstream fails in every way DESIGN §2 names and omen itself is stopped.
//!
//! Real Debian `prometheus` scrapes itself, a test target (three gauges) and
//! omen every second and remote-writes through two queues:
//!
//! ```text
//! sender ─ queue "faulty" ──▶ omen ──▶ proxy ──▶ receiver       (the path under test)
//!        └ queue "reference" ─▶ omen-ref ─────▶ receiver-ref   (never disturbed)
//! ```
//!
//! Both omens have the same whitelist and model rules. The faulty path goes
//! through, one after another: the receiver stopped for 60 s (600 s with
//! `OMEN_SOAK=1`), the proxy answering 429, the proxy answering after omen's
//! downstream timeout (the receiver has stored the data, omen has given up),
//! SIGTERM of omen while a request is in flight, and `kill -9` of omen while a
//! request is in flight; the test restarts omen each time.
//!
//! Then, over the closed range up to a fixed instant `T`:
//! - the receiver holds exactly the samples the sender scraped for the kept
//!   series (same series, timestamps and values, nothing else), and the
//!   sender dropped or failed no sample;
//! - the derived series (`anomaly_score`, `anomaly_forecast_*`) in the faulty
//!   receiver are identical, sample for sample, to the undisturbed
//!   reference's: a duplicated or lost model update would change every later
//!   value; and each modeled series has a derived sample at every original
//!   timestamp from its first derived sample on (none missing, none extra);
//! - every request the proxy failed was later delivered with exactly the same
//!   bytes (a retry recomputes byte-identical derived series), and the one
//!   held across SIGTERM was answered and never retried.
//!
//! The `kill -9` comes after a periodic snapshot that holds every committed
//! update (no request commits while the proxy holds the only one in flight),
//! so the restored models equal the killed ones and exactness still holds; a
//! kill with a staler snapshot restores older models (see README).

mod procs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use procs::http::serve_exposition;
use procs::proxy::{Mode, Proxy, Record};
use procs::series::{diff, sample_count, show, Labels, SeriesSet};
use procs::servers::{now_ms, yaml_str, Omen, Prometheus, RECEIVER_CONFIG};
use procs::{free_port, metric_sum, require_program, wait_for, TestDir};

/// Kept series: a bare name, a name regex, and the target's gauges.
const WHITELIST: &[&str] = &[
    "up",
    r#"{__name__=~"prometheus_tsdb_head_.*"}"#,
    "scrape_samples_scraped",
    GAUGE,
];

/// The test target's gauge (three series, one per `room`).
const GAUGE: &str = "omen_e2e_load";

/// Derived series, as a selector.
const DERIVED: &str = r#"{__name__=~"anomaly_.*"}"#;

/// The receiver behind the proxy accepts out-of-order samples, as Cortex and
/// Mimir can: when the slow proxy has let a request through but omen gave up
/// on it, Prometheus resends the same batch, and a batch holding two samples
/// of one series would otherwise be refused whole (the older one is then out
/// of order) although all of it is stored. Identical resent samples are merged
/// by timestamp when read.
const FAULTY_RECEIVER_CONFIG: &str = "global:\n  scrape_interval: 1m\nscrape_configs: []\nstorage:\n  tsdb:\n    out_of_order_time_window: 1h\n";

/// omen's downstream timeout; the slow proxy answers later than this.
const DOWNSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// The omen under test: this build's, or `OMEN_BIN` (a copy kept aside lets a
/// soak run while the tree is rebuilt).
fn omen_bin() -> PathBuf {
    std::env::var_os("OMEN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_omen")))
}

fn soak() -> bool {
    std::env::var("OMEN_SOAK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Serves three gauges with a wobbling daily-like pattern; each scrape
/// advances it by one step.
fn serve_target() -> u16 {
    serve_exposition(|i| {
        let i = i as f64;
        let mut body = format!("# TYPE {GAUGE} gauge\n");
        for (k, room) in ["lab", "hall", "roof"].iter().enumerate() {
            let v = 20.0 + 5.0 * k as f64 + (i / 30.0).sin() * 2.0 + ((i * 7.3).sin() * 0.3);
            body.push_str(&format!("{GAUGE}{{room=\"{room}\"}} {v}\n"));
        }
        body
    })
}

fn omen_config(port: u16, downstream: &str, persistence: bool) -> String {
    let mut y = format!(
        "server:\n  listen: 127.0.0.1:{port}\n  shutdown_grace: 10s\n\
         downstream:\n  url: {}\n  timeout: {}s\nwhitelist:\n",
        yaml_str(downstream),
        DOWNSTREAM_TIMEOUT.as_secs()
    );
    for sel in WHITELIST {
        y.push_str(&format!("  - {}\n", yaml_str(sel)));
    }
    y.push_str(&format!(
        "models:\n  rules:\n\
         \x20   - {{match: {}, warmup: 10, outputs: [score, bounds], seasonality: none}}\n\
         \x20   - {{match: prometheus_tsdb_head_series, warmup: 10, outputs: [score], seasonality: none}}\n",
        yaml_str(GAUGE)
    ));
    if persistence {
        y.push_str("persistence:\n  path: models.arrow\n  snapshot_interval: 1s\n");
    }
    y
}

fn sender_config(self_port: u16, target: u16, omen: u16, omen_ref: u16) -> String {
    // One shard on the faulty queue: one request in flight at a time, so when
    // the proxy holds a request, everything before it has been answered.
    let queue = "remote_timeout: 10s\n    queue_config: {batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 1s, max_samples_per_send: 500, min_shards: 1, max_shards: 1}\n    metadata_config: {send: false}";
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ['127.0.0.1:{self_port}']}}]
  - job_name: target
    static_configs: [{{targets: ['127.0.0.1:{target}']}}]
  - job_name: omen
    static_configs: [{{targets: ['127.0.0.1:{omen}']}}]
remote_write:
  - name: faulty
    url: http://127.0.0.1:{omen}/api/v1/write
    {queue}
  - name: reference
    url: http://127.0.0.1:{omen_ref}/api/v1/write
    {queue}
"#
    )
}

/// The samples of the kept series in `(T-1h, T]`, by selector union.
fn kept(p: &Prometheus, t_ms: i64) -> Result<SeriesSet, String> {
    let mut out = SeriesSet::new();
    for sel in WHITELIST {
        out.extend(p.raw_samples(&format!("{sel}[1h]"), t_ms)?);
    }
    Ok(out)
}

fn derived(p: &Prometheus, t_ms: i64) -> Result<SeriesSet, String> {
    p.raw_samples(&format!("{DERIVED}[1h]"), t_ms)
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    metric_sum(text, name, labels).unwrap_or(0.0)
}

fn omen_metric(omen: &Omen, name: &str, labels: &[&str]) -> f64 {
    metric(&omen.metrics().expect("omen /metrics"), name, labels)
}

/// Waits until the proxy has delivered a request (2xx from the receiver)
/// that arrived after `since`.
fn wait_delivered(proxy: &Proxy, since: Instant, what: &str) {
    wait_for(what, Duration::from_secs(90), || {
        let ok = proxy
            .log()
            .iter()
            .any(|r| r.at > since && r.mode == Mode::Pass && r.receiver_status.is_some_and(is_2xx));
        if ok {
            Ok(())
        } else {
            Err("no request delivered yet".into())
        }
    });
}

/// Waits until the sender's faulty queue has sent what it scraped up to 2 s
/// ago, so that a fault starts on a queue that is not catching up.
fn wait_caught_up(sender: &Prometheus) {
    wait_for(
        "the faulty queue to catch up",
        Duration::from_secs(120),
        || {
            let m = sender.metrics()?;
            let newest = metric(
                &m,
                "prometheus_remote_storage_highest_timestamp_in_seconds",
                &[],
            );
            let sent = metric(
                &m,
                "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                &["remote_name=\"faulty\""],
            );
            if newest > 0.0 && newest - sent <= 2.0 {
                Ok(())
            } else {
                Err(format!("newest sample {newest}, sent up to {sent}"))
            }
        },
    );
}

fn is_2xx(s: u16) -> bool {
    (200..300).contains(&s)
}

/// A fault window in wall-clock milliseconds, for the per-fault figures.
struct Window {
    name: &'static str,
    from_ms: i64,
    to_ms: i64,
}

/// Kept samples the sender scraped inside `w`.
fn scraped_in(expected: &SeriesSet, w: &Window) -> usize {
    expected
        .values()
        .flatten()
        .filter(|s| s.t_ms >= w.from_ms && s.t_ms <= w.to_ms)
        .count()
}

/// The original series a derived one belongs to: `for` becomes `__name__`.
fn original_of(derived: &Labels) -> Labels {
    let mut l = derived.clone();
    let name = l.remove("for").expect("derived series carry `for`");
    l.insert("__name__".into(), name);
    l
}

#[test]
fn faults_lose_no_sample_and_keep_derived_series_exact() {
    let Some(prometheus) = require_program("prometheus") else {
        return;
    };
    let outage = if soak() {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(60)
    };
    let test_started = Instant::now();
    let dir = TestDir::new("faults");
    let mut receiver = Prometheus::start(
        &prometheus,
        &dir.path,
        "receiver",
        free_port(),
        FAULTY_RECEIVER_CONFIG,
        &["--web.enable-remote-write-receiver"],
    );
    let receiver_ref = Prometheus::start(
        &prometheus,
        &dir.path,
        "receiver-ref",
        free_port(),
        RECEIVER_CONFIG,
        &["--web.enable-remote-write-receiver"],
    );
    let proxy = Proxy::start(receiver.port);
    let (omen_port, ref_port) = (free_port(), free_port());
    let bin = omen_bin();
    let mut omen = Omen::start_with_config(
        &bin,
        &dir.path,
        "omen",
        omen_port,
        &omen_config(omen_port, &proxy.write_url(), true),
    );
    let omen_ref = Omen::start_with_config(
        &bin,
        &dir.path,
        "omen-ref",
        ref_port,
        &omen_config(ref_port, &receiver_ref.write_url(), false),
    );
    let target = serve_target();
    let sender_port = free_port();
    let sender = Prometheus::start(
        &prometheus,
        &dir.path,
        "sender",
        sender_port,
        &sender_config(sender_port, target, omen_port, ref_port),
        &[],
    );

    // Warm: derived series reach the faulty receiver.
    wait_for(
        "derived series at the receiver",
        Duration::from_secs(90),
        || {
            let n = sample_count(&derived(&receiver, now_ms())?);
            if n >= 20 {
                Ok(())
            } else {
                Err(format!("{n} derived samples so far"))
            }
        },
    );
    let mut windows = Vec::new();

    // 1. The receiver is down.
    let from_ms = now_ms();
    let since = Instant::now();
    receiver.stop();
    wait_for(
        "omen to answer 503 while the receiver is down",
        Duration::from_secs(20),
        || match omen_metric(&omen, "omen_requests_total", &["code=\"503\""]) {
            n if n > 0.0 => Ok(()),
            n => Err(format!("omen_requests_total{{code=\"503\"}} = {n}")),
        },
    );
    std::thread::sleep(outage.saturating_sub(since.elapsed()));
    let (to_ms, up_at) = (now_ms(), Instant::now());
    receiver.restart();
    wait_delivered(&proxy, up_at, "delivery after the receiver restarted");
    windows.push(Window {
        name: "receiver down",
        from_ms,
        to_ms,
    });
    let unavailable = omen_metric(&omen, "omen_requests_total", &["code=\"503\""]);

    // 2. The receiver rate-limits: 429, never forwarded.
    wait_caught_up(&sender);
    let (from_ms, since) = (now_ms(), Instant::now());
    proxy.set_mode(Mode::RateLimit);
    std::thread::sleep(Duration::from_secs(15));
    proxy.set_mode(Mode::Pass);
    windows.push(Window {
        name: "429",
        from_ms,
        to_ms: now_ms(),
    });
    wait_delivered(&proxy, Instant::now(), "delivery after the 429s");
    let limited = omen_metric(&omen, "omen_downstream_requests_total", &["code=\"429\""]);
    let limited_requests = proxy
        .log()
        .iter()
        .filter(|r| r.at > since && r.mode == Mode::RateLimit)
        .count();
    assert!(
        limited >= 2.0 && limited as usize == limited_requests,
        "omen saw {limited} 429s, the proxy gave {limited_requests}"
    );

    // 3. The receiver answers after omen's timeout: it has the data, omen gave up.
    wait_caught_up(&sender);
    let from_ms = now_ms();
    proxy.set_mode(Mode::Slow(DOWNSTREAM_TIMEOUT + Duration::from_secs(1)));
    std::thread::sleep(Duration::from_secs(15));
    proxy.set_mode(Mode::Pass);
    windows.push(Window {
        name: "slow",
        from_ms,
        to_ms: now_ms(),
    });
    wait_delivered(&proxy, Instant::now(), "delivery after the slow answers");
    let timeouts = omen_metric(
        &omen,
        "omen_downstream_requests_total",
        &["code=\"timeout\""],
    );
    assert!(timeouts >= 2.0, "omen saw {timeouts} downstream timeouts");
    let answered_503 = omen_metric(&omen, "omen_requests_total", &["code=\"503\""]);
    assert!(
        answered_503 >= unavailable + limited + timeouts,
        "every 429 and timeout was answered 503: {answered_503} 503s after {unavailable} in the outage, {limited} 429s, {timeouts} timeouts"
    );

    // 4. SIGTERM while a request is in flight (forwarded, answer held): omen
    //    waits for it, answers it, and exits 0.
    wait_caught_up(&sender);
    let from_ms = now_ms();
    proxy.set_mode(Mode::HoldAnswer);
    let in_flight = wait_for("a request in flight", Duration::from_secs(20), || {
        proxy.held().first().copied().ok_or("none held".to_string())
    });
    omen.proc.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    omen.proc
        .check_running()
        .expect("omen waits for the in-flight request after SIGTERM");
    proxy.set_mode(Mode::Pass);
    let status = omen.proc.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "omen exits 0 after SIGTERM: {status:?}");
    let log = std::fs::read_to_string(&omen.proc.log).unwrap_or_default();
    assert!(
        log.contains("shutting down: draining") && !log.contains("grace period ended"),
        "omen drained within its grace period:\n{log}"
    );
    omen.restart(&bin);
    windows.push(Window {
        name: "SIGTERM",
        from_ms,
        to_ms: now_ms(),
    });
    let restored = omen_metric(&omen, "omen_snapshot_restored_series", &[]);
    assert!(restored >= 4.0, "restored {restored} models after SIGTERM");
    wait_delivered(&proxy, Instant::now(), "delivery after the SIGTERM restart");

    // 5. kill -9 while a request is in flight (held before forwarding), once a
    //    periodic snapshot holds every committed update.
    wait_caught_up(&sender);
    let from_ms = now_ms();
    proxy.set_mode(Mode::HoldRequest);
    wait_for("a request held", Duration::from_secs(20), || {
        proxy.held().first().copied().ok_or("none held".to_string())
    });
    let held_at_s = now_ms() as f64 / 1000.0;
    wait_for(
        "a snapshot after the hold began",
        Duration::from_secs(10),
        || {
            // The gauge is set when a snapshot has finished; it began `duration` earlier.
            let text = omen.metrics()?;
            let done = metric(&text, "omen_snapshot_last_success_timestamp_seconds", &[]);
            let began = done - metric(&text, "omen_snapshot_duration_seconds", &[]);
            if began > held_at_s {
                Ok(())
            } else {
                Err(format!(
                    "last snapshot began at {began}, the hold at {held_at_s}"
                ))
            }
        },
    );
    omen.proc.kill9();
    proxy.set_mode(Mode::Pass);
    omen.restart(&bin);
    windows.push(Window {
        name: "kill -9",
        from_ms,
        to_ms: now_ms(),
    });
    let restored = omen_metric(&omen, "omen_snapshot_restored_series", &[]);
    assert!(restored >= 4.0, "restored {restored} models after kill -9");
    let restarted_ms = now_ms();

    // Some undisturbed time after the last fault.
    wait_for(
        "derived samples after the last restart",
        Duration::from_secs(90),
        || {
            let d = derived(&receiver, now_ms())?;
            let n = d
                .values()
                .flatten()
                .filter(|s| s.t_ms > restarted_ms + 5_000)
                .count();
            if n >= 4 {
                Ok(())
            } else {
                Err(format!("{n} derived samples after the restart"))
            }
        },
    );
    let t = now_ms() - 3_000;

    // Every kept sample, at both receivers.
    let expected = wait_for(
        "the receivers to hold exactly the kept samples",
        Duration::from_secs(120),
        || {
            let want = kept(&sender, t)?;
            for (name, r) in [("receiver", &receiver), ("receiver-ref", &receiver_ref)] {
                let got = kept(r, t)?;
                let d = diff(&want, &got);
                if !d.is_empty() {
                    return Err(format!(
                        "{name} differs from the sender ({} vs {} samples):\n{d}",
                        sample_count(&got),
                        sample_count(&want)
                    ));
                }
            }
            Ok(want)
        },
    );
    for name in [GAUGE, "up", "prometheus_tsdb_head_series"] {
        assert!(
            expected.keys().any(|l| l["__name__"] == name),
            "no {name} among the kept series"
        );
    }
    let all_at_receiver = receiver
        .series(r#"{__name__=~".+"}"#)
        .expect("series at the receiver");
    for l in &all_at_receiver {
        let name = l["__name__"].as_str();
        assert!(
            expected.contains_key(l) || name.starts_with("anomaly_"),
            "the receiver holds {} which is neither kept nor derived",
            show(l)
        );
    }

    // Derived series: identical to the reference's, none missing.
    let (faulty_derived, ref_derived) = wait_for(
        "derived series equal to the reference's",
        Duration::from_secs(60),
        || {
            let (a, b) = (derived(&receiver, t)?, derived(&receiver_ref, t)?);
            let d = diff(&b, &a);
            if d.is_empty() {
                Ok((a, b))
            } else {
                Err(format!(
                    "derived series differ from the undisturbed reference's ({} vs {} samples):\n{d}",
                    sample_count(&a),
                    sample_count(&b)
                ))
            }
        },
    );
    let score_series: Vec<&Labels> = faulty_derived
        .keys()
        .filter(|l| l["__name__"] == "anomaly_score")
        .collect();
    assert_eq!(
        score_series.len(),
        4,
        "a score for each of the three gauges and prometheus_tsdb_head_series: {:?}",
        score_series.iter().map(|l| show(l)).collect::<Vec<_>>()
    );
    for (l, samples) in &faulty_derived {
        let original = expected
            .get(&original_of(l))
            .unwrap_or_else(|| panic!("{} has no original series", show(l)));
        let first = samples.first().expect("non-empty").t_ms;
        let want: Vec<i64> = original
            .iter()
            .map(|s| s.t_ms)
            .filter(|t| *t >= first)
            .collect();
        let got: Vec<i64> = samples.iter().map(|s| s.t_ms).collect();
        assert!(
            got == want,
            "{}: derived at {} timestamps, original has {} from the first derived one on",
            show(l),
            got.len(),
            want.len()
        );
        assert!(
            samples.iter().any(|s| s.t_ms > restarted_ms),
            "{} continues after the last restart",
            show(l)
        );
    }

    // The sender lost nothing; it did retry.
    let sm = sender.metrics().expect("sender /metrics");
    for name in [
        "prometheus_remote_storage_samples_failed_total",
        "prometheus_remote_storage_samples_dropped_total",
    ] {
        assert_eq!(
            metric(&sm, name, &[]),
            0.0,
            "the sender lost samples: {name}"
        );
    }
    let retried = metric(
        &sm,
        "prometheus_remote_storage_samples_retried_total",
        &["remote_name=\"faulty\""],
    );
    assert!(retried > 0.0, "the sender never retried");

    // Every failed request came back with the same bytes and was delivered;
    // the one in flight at SIGTERM was answered and never sent again.
    let log = proxy.log();
    let delivered_later = |r: &Record| {
        log.iter().any(|x| {
            x.at > r.at
                && x.body == r.body
                && x.mode == Mode::Pass
                && x.receiver_status.is_some_and(is_2xx)
        })
    };
    let mut retried_bodies: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &log {
        let failed = match r.mode {
            Mode::Pass => !r.receiver_status.is_some_and(is_2xx),
            Mode::RateLimit | Mode::Slow(_) | Mode::HoldRequest => true,
            Mode::HoldAnswer => false,
        };
        let kind = match r.mode {
            Mode::Pass => "receiver down",
            Mode::RateLimit => "429",
            Mode::Slow(_) => "slow",
            Mode::HoldRequest => "kill -9",
            Mode::HoldAnswer => "SIGTERM",
        };
        if failed {
            assert!(
                delivered_later(r),
                "a request failed by the proxy ({kind}) was never delivered with the same bytes"
            );
            *retried_bodies.entry(kind).or_default() += 1;
        }
    }
    for kind in ["receiver down", "429", "slow", "kill -9"] {
        assert!(
            retried_bodies.get(kind).copied().unwrap_or(0) > 0,
            "no request failed during {kind}: {retried_bodies:?}"
        );
    }
    let in_flight_sent = log.iter().filter(|r| r.body == in_flight).count();
    assert_eq!(
        in_flight_sent, 1,
        "the request in flight at SIGTERM was answered 2xx, so Prometheus never sent it again"
    );

    for w in &windows {
        let n = scraped_in(&expected, w);
        assert!(n > 0, "no kept sample scraped during {}", w.name);
        eprintln!(
            "faults: {:13} {:6.1} s, {n} kept samples scraped meanwhile, 0 lost",
            w.name,
            (w.to_ms - w.from_ms) as f64 / 1000.0
        );
    }
    eprintln!(
        "faults: {} series / {} kept samples delivered exactly; {} derived series / {} samples identical to the reference; failed requests redelivered byte-identical: {retried_bodies:?}; sender retried {retried} samples; {:.0} s in all",
        expected.len(),
        sample_count(&expected),
        faulty_derived.len(),
        sample_count(&ref_derived),
        test_started.elapsed().as_secs_f64()
    );
    omen.stop_cleanly();
    drop(omen_ref);
}
