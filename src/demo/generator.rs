//! The demo's synthetic Prometheus: a few hundred series of realistic shapes (request
//! counters with a compressed daily cycle, latency and CPU gauges, memory with a slow
//! trend, queue depths, temperatures), optional CSV replays, and injected anomalies of
//! known kinds at known times. Deterministic for a given series count: the same run
//! gives the same values.

use std::f64::consts::TAU;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::proto;

/// Simulated scrape interval.
pub const STEP_MS: i64 = 1_000;
/// The compressed "day": one cycle of the daily pattern.
pub const DAY_S: f64 = 300.0;
/// When the first anomaly starts (simulated seconds): after the models' warm-up.
const FIRST_ANOMALY_S: i64 = 45;
/// Time between anomaly starts within a round.
const ANOMALY_EVERY_S: i64 = 15;
/// A round of anomalies repeats every compressed day, on other series.
const ROUND_S: i64 = 300;

const SERVICES: [&str; 8] = [
    "checkout", "search", "payments", "catalog", "auth", "cart", "shipping", "reviews",
];

/// The shape families, in the order series are dealt out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Requests,
    Latency,
    Cpu,
    Memory,
    Queue,
    Temperature,
}

const FAMILIES: [Family; 6] = [
    Family::Requests,
    Family::Latency,
    Family::Cpu,
    Family::Memory,
    Family::Queue,
    Family::Temperature,
];

/// What an injected anomaly does to its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A short spike far above the usual values (3 samples).
    Spike,
    /// A short drop far below (5 samples).
    Dip,
    /// The level doubles for 60 s (the model adopts the new level after a few samples).
    LevelShift,
    /// A request counter stops increasing for 30 s.
    CounterStall,
    /// An error counter's rate jumps 20-fold for 20 s.
    ErrorBurst,
    /// The noise grows 12-fold for 20 s.
    NoiseBurst,
}

impl AnomalyKind {
    fn family(self) -> Family {
        match self {
            AnomalyKind::Spike => Family::Cpu,
            AnomalyKind::Dip => Family::Temperature,
            AnomalyKind::LevelShift => Family::Latency,
            AnomalyKind::CounterStall | AnomalyKind::ErrorBurst => Family::Requests,
            AnomalyKind::NoiseBurst => Family::Queue,
        }
    }

    fn duration_s(self) -> i64 {
        match self {
            AnomalyKind::Spike => 3,
            AnomalyKind::Dip => 5,
            AnomalyKind::LevelShift => 60,
            AnomalyKind::CounterStall => 30,
            AnomalyKind::ErrorBurst | AnomalyKind::NoiseBurst => 20,
        }
    }
}

const KINDS: [AnomalyKind; 6] = [
    AnomalyKind::Spike,
    AnomalyKind::LevelShift,
    AnomalyKind::CounterStall,
    AnomalyKind::Dip,
    AnomalyKind::ErrorBurst,
    AnomalyKind::NoiseBurst,
];

/// One injected anomaly, as `/api/omen/demo` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    pub kind: AnomalyKind,
    /// The metric name of the affected series (the `for` of its derived series).
    #[serde(rename = "for")]
    pub name: String,
    /// Its other labels, sorted.
    pub labels: Vec<(String, String)>,
    /// First and last affected sample timestamps (ms).
    pub start_ms: i64,
    pub end_ms: i64,
}

/// One generated series.
struct Series {
    family: Family,
    name: String,
    /// Sorted, without `__name__`.
    labels: Vec<(String, String)>,
    /// Error counter (`code="500"`).
    errors: bool,
    phase: f64,
    base: f64,
    /// Counter total, or the AR state of a queue.
    state: f64,
    rng: u64,
    /// Replayed values (CSV), cycled.
    replay: Option<Vec<f64>>,
}

/// All series and the anomaly schedule.
pub struct Generator {
    series: Vec<Series>,
    /// The simulated time of sample 0 (ms).
    start_ms: i64,
    tick: i64,
}

impl Generator {
    /// `n` synthetic series (plus one per CSV file under `replay`), starting at `start_ms`.
    ///
    /// # Errors
    /// An unreadable replay folder or file, or a file with no numeric value.
    pub fn new(n: usize, replay: Option<&Path>, start_ms: i64) -> anyhow::Result<Generator> {
        let mut series: Vec<Series> = (0..n).map(synthetic).collect();
        if let Some(dir) = replay {
            series.extend(replayed(dir)?);
        }
        Ok(Generator {
            series,
            start_ms,
            tick: 0,
        })
    }

    /// Series generated.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether there are no series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The next scrape: one sample per series at the next simulated timestamp.
    pub fn next_request(&mut self) -> proto::WriteRequest {
        let t = self.tick;
        self.tick += 1;
        let ts = self.start_ms + t * STEP_MS;
        let active: Vec<(usize, AnomalyKind)> = self.active(t);
        let mut timeseries = Vec::with_capacity(self.series.len());
        for (i, s) in self.series.iter_mut().enumerate() {
            let kind = active.iter().find(|(j, _)| *j == i).map(|(_, k)| *k);
            let value = s.sample(t, kind);
            let mut labels = Vec::with_capacity(s.labels.len() + 1);
            labels.push(proto::Label {
                name: "__name__".into(),
                value: s.name.clone(),
            });
            labels.extend(s.labels.iter().map(|(k, v)| proto::Label {
                name: k.clone(),
                value: v.clone(),
            }));
            // Labels must be sorted by name; `__name__` sorts first.
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            timeseries.push(proto::TimeSeries {
                labels,
                samples: vec![proto::Sample {
                    value,
                    timestamp: ts,
                }],
                ..Default::default()
            });
        }
        proto::WriteRequest {
            timeseries,
            ..Default::default()
        }
    }

    /// The simulated time of the next request (ms).
    pub fn now_ms(&self) -> i64 {
        self.start_ms + self.tick * STEP_MS
    }

    /// Injected anomalies that started by simulated second `until_s` (the last `max`).
    pub fn schedule(&self, until_s: i64, max: usize) -> Vec<Injected> {
        let mut out = Vec::new();
        let mut round = 0;
        loop {
            let round_start = round * ROUND_S;
            if round_start + FIRST_ANOMALY_S > until_s {
                break;
            }
            for (k, kind) in KINDS.iter().enumerate() {
                let start = round_start + FIRST_ANOMALY_S + k as i64 * ANOMALY_EVERY_S;
                if start > until_s {
                    break;
                }
                if let Some(i) = self.target(*kind, round) {
                    let s = &self.series[i];
                    out.push(Injected {
                        kind: *kind,
                        name: s.name.clone(),
                        labels: s.labels.clone(),
                        start_ms: self.start_ms + start * 1000,
                        end_ms: self.start_ms + (start + kind.duration_s() - 1) * 1000,
                    });
                }
            }
            round += 1;
        }
        let skip = out.len().saturating_sub(max);
        out.drain(..skip);
        out
    }

    /// Anomalies active at simulated second `t`: (series index, kind).
    fn active(&self, t: i64) -> Vec<(usize, AnomalyKind)> {
        let round = t / ROUND_S;
        let offset = t % ROUND_S - FIRST_ANOMALY_S;
        let mut out = Vec::new();
        if offset < 0 {
            return out;
        }
        for (k, kind) in KINDS.iter().enumerate() {
            let since = offset - k as i64 * ANOMALY_EVERY_S;
            if (0..kind.duration_s()).contains(&since) {
                if let Some(i) = self.target(*kind, round) {
                    out.push((i, *kind));
                }
            }
        }
        out
    }

    /// The series an anomaly of `kind` hits in `round`: a different one each round.
    fn target(&self, kind: AnomalyKind, round: i64) -> Option<usize> {
        let candidates: Vec<usize> = self
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.replay.is_none()
                    && s.family == kind.family()
                    && s.errors == (kind == AnomalyKind::ErrorBurst)
            })
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let pick = (round as usize * 7 + kind as usize * 3) % candidates.len();
        Some(candidates[pick])
    }
}

impl Series {
    /// The sample at simulated second `t`, with `anomaly` applied if one is active.
    fn sample(&mut self, t: i64, anomaly: Option<AnomalyKind>) -> f64 {
        if let Some(values) = &self.replay {
            return values[t as usize % values.len()];
        }
        let day = (TAU * t as f64 / DAY_S + self.phase).sin();
        let noise = gaussian(&mut self.rng);
        let noise_scale = if anomaly == Some(AnomalyKind::NoiseBurst) {
            12.0
        } else {
            1.0
        };
        let shift = if anomaly == Some(AnomalyKind::LevelShift) {
            2.0
        } else {
            1.0
        };
        match self.family {
            Family::Requests => {
                // Requests per second follow the day; errors are a small, noisy share.
                let mut rate = self.base * (1.0 + 0.5 * day) * (1.0 + 0.03 * noise);
                if self.errors {
                    rate =
                        (self.base * (1.0 + 0.3 * day) + noise * self.base.sqrt() * 0.3).max(0.0);
                    if anomaly == Some(AnomalyKind::ErrorBurst) {
                        rate *= 20.0;
                    }
                }
                if anomaly == Some(AnomalyKind::CounterStall) {
                    rate = 0.0;
                }
                self.state += (rate * STEP_MS as f64 / 1000.0).round();
                self.state
            }
            Family::Latency => {
                let v = self.base * (1.0 + 0.25 * day) * (1.0 + 0.04 * noise);
                v * shift
            }
            Family::Cpu => {
                let mut v = self.base + 0.2 * day + 0.02 * noise;
                if anomaly == Some(AnomalyKind::Spike) {
                    v += 0.45;
                }
                v.clamp(0.0, 1.0)
            }
            Family::Memory => {
                // A slow swell over the day, plus a little noise.
                let v = self.base
                    * (1.0 + 0.04 * (0.5 * TAU * t as f64 / DAY_S + self.phase).sin())
                    + self.base * 0.002 * noise;
                v * shift
            }
            Family::Queue => {
                // Mean-reverting around the base.
                self.state += 0.2 * (self.base - self.state) + 2.0 * noise_scale * noise;
                self.state.max(0.0)
            }
            Family::Temperature => {
                let mut v = self.base + 1.5 * day + 0.08 * noise;
                if anomaly == Some(AnomalyKind::Dip) {
                    v -= 6.0;
                }
                v
            }
        }
    }
}

/// The `k`-th synthetic series: families dealt out in turn, labels from its number.
fn synthetic(k: usize) -> Series {
    let family = FAMILIES[k % FAMILIES.len()];
    let n = k / FAMILIES.len();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (k as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let phase = uniform(&mut rng) * 0.6;
    let service = SERVICES[n % SERVICES.len()];
    let instance = format!(
        "10.0.{}.{}:8080",
        n / SERVICES.len(),
        10 + n % SERVICES.len()
    );
    let node = format!("node-{n:03}");
    let l = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    };
    let (name, labels, errors, base, state) = match family {
        Family::Requests => {
            let errors = n % 4 == 3;
            let code = if errors { "500" } else { "200" };
            let labels = l(&[
                ("job", "api"),
                ("service", service),
                ("instance", &instance),
                ("code", code),
            ]);
            let base = if errors {
                3.0
            } else {
                40.0 + 20.0 * uniform(&mut rng)
            };
            (
                "http_requests_total",
                labels,
                errors,
                base,
                (1e5 * uniform(&mut rng)).round(),
            )
        }
        Family::Latency => (
            "http_request_duration_seconds",
            l(&[
                ("job", "api"),
                ("service", service),
                ("instance", &instance),
                ("quantile", "0.99"),
            ]),
            false,
            0.08 + 0.1 * uniform(&mut rng),
            0.0,
        ),
        Family::Cpu => (
            "node_cpu_utilization",
            l(&[("job", "node"), ("instance", &node)]),
            false,
            0.35 + 0.2 * uniform(&mut rng),
            0.0,
        ),
        Family::Memory => (
            "node_memory_used_bytes",
            l(&[("job", "node"), ("instance", &node)]),
            false,
            (2.0 + 6.0 * uniform(&mut rng)) * 1e9,
            0.0,
        ),
        Family::Queue => {
            let base = 80.0 + 60.0 * uniform(&mut rng);
            (
                "queue_depth",
                l(&[("job", "worker"), ("queue", &format!("q-{n:02}"))]),
                false,
                base,
                base,
            )
        }
        Family::Temperature => (
            "room_temperature_celsius",
            l(&[("job", "facility"), ("room", &format!("r-{n:02}"))]),
            false,
            19.0 + 4.0 * uniform(&mut rng),
            0.0,
        ),
    };
    Series {
        family,
        name: name.to_string(),
        labels,
        errors,
        phase,
        base,
        state,
        rng,
        replay: None,
    }
}

/// One gauge per CSV file (`timestamp,value`, header optional) under `dir`, replayed one
/// row per simulated step and cycled.
fn replayed(dir: &Path) -> anyhow::Result<Vec<Series>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("--replay {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "csv") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for path in files.into_iter().take(100) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let values: Vec<f64> = text
            .lines()
            .filter_map(|line| line.rsplit(',').next()?.trim().parse().ok())
            .filter(|v: &f64| v.is_finite())
            .collect();
        if values.is_empty() {
            bail!(
                "{}: no numeric values (expected timestamp,value rows)",
                path.display()
            );
        }
        let file = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        out.push(Series {
            family: Family::Queue,
            name: "replay_value".into(),
            labels: vec![("file".into(), file), ("job".into(), "replay".into())],
            errors: false,
            phase: 0.0,
            base: 0.0,
            state: 0.0,
            rng: 0,
            replay: Some(values),
        });
    }
    Ok(out)
}

/// xorshift64*: small, deterministic, good enough for demo noise.
fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn uniform(rng: &mut u64) -> f64 {
    (next(rng) >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal deviate (Box–Muller).
fn gaussian(rng: &mut u64) -> f64 {
    let u = uniform(rng).max(1e-12);
    let v = uniform(rng);
    (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_anomaly_has_a_target_in_the_default_demo() {
        let g = Generator::new(300, None, 0).unwrap();
        let s = g.schedule(ROUND_S, 100);
        assert_eq!(s.len(), KINDS.len());
        assert!(s.windows(2).all(|w| w[0].start_ms < w[1].start_ms));
    }

    #[test]
    fn requests_are_sorted_counters_increase() {
        let mut g = Generator::new(12, None, 1_000_000).unwrap();
        let a = g.next_request();
        let b = g.next_request();
        for ts in &a.timeseries {
            assert!(ts.labels.windows(2).all(|w| w[0].name < w[1].name));
        }
        assert_eq!(b.timeseries[0].samples[0].timestamp, 1_001_000);
        assert!(b.timeseries[0].samples[0].value >= a.timeseries[0].samples[0].value);
    }
}
