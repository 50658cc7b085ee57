//! The status panel's document: ingest rate, models, evictions, downstream health and the
//! page's own record, read from the existing self-metrics. Rates come from a small window
//! of counter snapshots taken when the status is asked for (at most one a second, the
//! last 32 kept), so nothing runs in the background and the write path pays nothing.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::core::Collector;
use serde::Serialize;
use tokio::time::Instant;

use crate::app::App;

const SNAPSHOTS: usize = 32;
/// Rates are measured over about this long.
const RATE_SPAN: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    received: u64,
    downstream_ok: u64,
    downstream_failed: u64,
}

/// Recent counter snapshots, for rates.
pub struct Window {
    started: Instant,
    snapshots: Mutex<VecDeque<Snapshot>>,
}

impl Default for Window {
    fn default() -> Window {
        Window {
            started: Instant::now(),
            snapshots: Mutex::new(VecDeque::with_capacity(SNAPSHOTS)),
        }
    }
}

/// The document of `/api/omen/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// `serve` or `demo`.
    mode: &'static str,
    version: &'static str,
    /// The server's clock (ms since the epoch).
    now_ms: i64,
    uptime_s: f64,
    ingest: Ingest,
    models: Models,
    downstream: Downstream,
    record: Record,
}

#[derive(Debug, Serialize)]
struct Ingest {
    /// Samples received per second over the last ~15 s (None until two snapshots exist).
    samples_per_s: Option<f64>,
    received_samples: u64,
    forwarded_samples: u64,
    derived_samples: u64,
}

#[derive(Debug, Serialize)]
struct Models {
    /// Models in memory.
    count: usize,
    max_series: usize,
    rules: usize,
    evictions: u64,
    retired: u64,
    /// Fit backlog: no background fitter runs yet, so always null.
    fit_backlog: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Downstream {
    url: String,
    /// `ok`, `failing` (some recent requests failed), `down` (all recent failed) or `idle`.
    health: &'static str,
    /// Requests by outcome since start (status code, `timeout`, `error`).
    requests: Vec<(String, u64)>,
    /// Failed requests (not 2xx/400) per second over the last ~15 s.
    failed_per_s: Option<f64>,
    ok_per_s: Option<f64>,
    mean_latency_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Record {
    series: usize,
    max_series: usize,
    points: usize,
    /// Series replaced to admit an anomalous one.
    evictions: u64,
}

pub fn status(app: &App, window: &Window, demo: bool) -> Status {
    let m = app.metrics();
    let state = app.state();
    let mut requests = Vec::new();
    let (mut ok, mut failed) = (0, 0);
    for family in m.downstream_requests.collect() {
        for metric in family.get_metric() {
            let code = metric
                .get_label()
                .iter()
                .find(|l| l.name() == "code")
                .map(|l| l.value().to_string())
                .unwrap_or_default();
            let n = metric.get_counter().get_value() as u64;
            if code.starts_with('2') || code == "400" {
                ok += n;
            } else {
                failed += n;
            }
            requests.push((code, n));
        }
    }
    let now = Snapshot {
        at: Instant::now(),
        received: m.received_samples.get(),
        downstream_ok: ok,
        downstream_failed: failed,
    };
    let base = {
        let mut snaps = window.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        if snaps
            .back()
            .is_none_or(|s| now.at.duration_since(s.at) >= Duration::from_secs(1))
        {
            if snaps.len() == SNAPSHOTS {
                snaps.pop_front();
            }
            snaps.push_back(now);
        }
        // The oldest snapshot within the span (or the oldest there is).
        snaps
            .iter()
            .find(|s| now.at.duration_since(s.at) <= RATE_SPAN)
            .copied()
            .filter(|s| now.at.duration_since(s.at) >= Duration::from_millis(500))
            .or_else(|| {
                snaps
                    .front()
                    .copied()
                    .filter(|s| now.at.duration_since(s.at) >= Duration::from_millis(500))
            })
    };
    let rate = |f: fn(&Snapshot) -> u64| {
        base.map(|b| {
            let dt = now.at.duration_since(b.at).as_secs_f64();
            (f(&now).saturating_sub(f(&b))) as f64 / dt
        })
    };
    let failed_per_s = rate(|s| s.downstream_failed);
    let ok_per_s = rate(|s| s.downstream_ok);
    let health = match (ok_per_s, failed_per_s) {
        (_, Some(f)) if f > 0.0 && ok_per_s.unwrap_or(0.0) == 0.0 => "down",
        (_, Some(f)) if f > 0.0 => "failing",
        (Some(o), _) if o > 0.0 => "ok",
        _ if ok + failed == 0 => "idle",
        _ if failed > 0 && ok == 0 => "down",
        _ => "idle",
    };
    let count = m.downstream_duration.get_sample_count();
    let record = app.ui().recent();
    let (max_series, points) = record.map_or((0, 0), |r| r.tracks().capacity());
    Status {
        mode: if demo { "demo" } else { "serve" },
        version: env!("CARGO_PKG_VERSION"),
        now_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        uptime_s: now.at.duration_since(window.started).as_secs_f64(),
        ingest: Ingest {
            samples_per_s: rate(|s| s.received),
            received_samples: now.received,
            forwarded_samples: m.forwarded_samples.get(),
            derived_samples: m.derived_samples.get(),
        },
        models: Models {
            count: app.models().len(),
            max_series: state.config.models.max_series,
            rules: state.config.models.rules.len(),
            evictions: m.model_evictions.get(),
            retired: m.models_retired.get(),
            fit_backlog: Some(app.models().fitter().backlog() as u64),
        },
        downstream: Downstream {
            url: shown_url(&state.config.downstream.url),
            health,
            requests,
            failed_per_s,
            ok_per_s,
            mean_latency_ms: (count > 0)
                .then(|| 1000.0 * m.downstream_duration.get_sample_sum() / count as f64),
        },
        record: Record {
            series: record.map_or(0, |r| r.tracks().len()),
            max_series,
            points,
            evictions: record.map_or(0, |r| r.tracks().evictions()),
        },
    }
}

/// The downstream URL without any user:password part.
fn shown_url(url: &hyper::Uri) -> String {
    let host = url.host().unwrap_or("");
    let port = url.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let scheme = url.scheme_str().unwrap_or("http");
    format!("{scheme}://{host}{port}{}", url.path())
}
