//! `Tracks`: a bounded set of recent per-series windows (value, forecast band, score),
//! the one data structure behind the page. Fixed capacity (series × points); when full,
//! a new series is admitted only if it is anomalous and more so than the least interesting
//! one (lowest decayed peak score, then oldest), which it replaces. Used by serve mode's record of what omen
//! computed ([`super::Recent`]) and by the demo's in-process downstream receiver.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::idhash::BuildIdHasher;

const SHARDS: usize = 16;

/// How fast a track's peak score fades, per point: a spike stays "interesting" for a few
/// hundred points, then lets calmer series take its place.
const PEAK_DECAY: f32 = 0.99;

/// One instant of a series; NaN = not known (warming up, or not emitted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub ts: i64,
    /// The value as the model sees it: the sample, or the per-second rate of a counter.
    pub value: f32,
    pub forecast: f32,
    pub lower: f32,
    pub upper: f32,
    pub score: f32,
}

impl Point {
    /// A point at `ts` with nothing known yet.
    pub fn empty(ts: i64) -> Point {
        Point {
            ts,
            value: f32::NAN,
            forecast: f32::NAN,
            lower: f32::NAN,
            upper: f32::NAN,
            score: f32::NAN,
        }
    }
}

/// What identifies a track to a person: its metric name (the `for` of its derived
/// series) and its other labels.
#[derive(Debug, Clone)]
pub struct TrackMeta {
    pub name: String,
    /// Sorted, without `__name__`.
    pub labels: Vec<(String, String)>,
    /// Shown as a per-second rate.
    pub counter: bool,
}

/// The recent window of one series.
#[derive(Debug)]
pub struct Track {
    meta: TrackMeta,
    /// Counters: the previous raw sample, for the rate.
    prev: Option<(i64, f64)>,
    points: VecDeque<Point>,
    capacity: usize,
    peak: f32,
}

impl Track {
    fn new(meta: TrackMeta, capacity: usize) -> Track {
        Track {
            meta,
            prev: None,
            points: VecDeque::with_capacity(capacity),
            capacity,
            peak: 0.0,
        }
    }

    /// The value to show for a raw sample: the sample itself, or for a counter the
    /// per-second rate since the previous sample (a drop is a reset), NaN for the first.
    pub fn value_of(&mut self, ts: i64, raw: f64) -> f64 {
        if !self.meta.counter {
            return raw;
        }
        let v = match self.prev {
            Some((pts, _)) if ts <= pts => return f64::NAN,
            Some((pts, praw)) => {
                let increase = if raw >= praw { raw - praw } else { raw };
                increase / ((ts - pts) as f64 / 1000.0)
            }
            None => f64::NAN,
        };
        if raw.is_finite() {
            self.prev = Some((ts, raw));
        }
        v
    }

    /// Appends a point newer than the last one (older ones, e.g. from a retried
    /// request, are ignored); the oldest point goes when the ring is full.
    pub fn push(&mut self, p: Point) {
        if self.points.back().is_some_and(|last| p.ts <= last.ts) {
            return;
        }
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(p);
        self.note_score(p.score);
    }

    /// The point at `ts`, appended if newer than the last one; `None` if it is older
    /// than the window or falls between kept points.
    pub fn point_at(&mut self, ts: i64) -> Option<&mut Point> {
        if self.points.back().is_none_or(|last| ts > last.ts) {
            self.push(Point::empty(ts));
            return self.points.back_mut();
        }
        // Usually one of the last few points: the original came first in the request.
        let i = self.points.iter().rposition(|p| p.ts <= ts)?;
        let p = &mut self.points[i];
        (p.ts == ts).then_some(p)
    }

    /// Takes a score into the decayed peak (the track's interest when space is short).
    pub fn note_score(&mut self, score: f32) {
        let decayed = self.peak * PEAK_DECAY;
        self.peak = if score.is_finite() {
            decayed.max(score)
        } else {
            decayed
        };
    }

    /// Raises the peak to `score` if higher (a score that arrives after its point).
    pub fn raise_peak(&mut self, score: f32) {
        if score > self.peak {
            self.peak = score;
        }
    }

    pub fn meta(&self) -> &TrackMeta {
        &self.meta
    }

    pub fn points(&self) -> &VecDeque<Point> {
        &self.points
    }

    fn last_ts(&self) -> i64 {
        self.points.back().map_or(i64::MIN, |p| p.ts)
    }
}

/// The keys are hashes already: use them as they are.
type Index = HashMap<u64, usize, BuildIdHasher>;

struct Shard {
    index: Index,
    slots: Vec<(u64, Track)>,
}

/// A bounded set of tracks keyed by a 64-bit series key.
pub struct Tracks {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    points: usize,
    evictions: AtomicU64,
}

/// A track's row in the ranked table.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Key of the track, for [`Tracks::detail`] (16 hex digits).
    pub id: String,
    /// The original metric name, i.e. the `for` label of its derived series.
    #[serde(rename = "for")]
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub counter: bool,
    /// Timestamp (ms) of the newest point.
    pub ts: Option<i64>,
    pub value: Option<f32>,
    /// The newest score (None while warming up).
    pub score: Option<f32>,
    /// The highest score in the window.
    pub max_score: Option<f32>,
    /// Points in the window with a score above 1.
    pub anomalies: usize,
    pub points: usize,
}

/// A track's whole window, as columns (null = not known).
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    pub t: Vec<i64>,
    pub value: Vec<Option<f32>>,
    pub forecast: Vec<Option<f32>>,
    pub lower: Vec<Option<f32>>,
    pub upper: Vec<Option<f32>>,
    pub score: Vec<Option<f32>>,
}

/// How [`Tracks::ranked`] orders rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// By the newest score.
    Current,
    /// By the highest score in the window.
    Window,
}

fn known(v: f32) -> Option<f32> {
    v.is_finite().then_some(v)
}

impl Tracks {
    /// Room for `max_series` tracks of `points` points each.
    pub fn new(max_series: usize, points: usize) -> Tracks {
        let per_shard = max_series.div_ceil(SHARDS).max(1);
        Tracks {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        index: Index::default(),
                        slots: Vec::new(),
                    })
                })
                .collect(),
            per_shard,
            points: points.max(2),
            evictions: AtomicU64::new(0),
        }
    }

    /// Runs `f` on the track of `key`. An unknown key is admitted (with the meta `make`
    /// builds) while there is room, or when `score` is above 1 and above the decayed peak
    /// of the least interesting track of its shard, which it replaces; otherwise `f` does
    /// not run and nothing allocates.
    pub fn with<R>(
        &self,
        key: u64,
        score: impl FnOnce() -> f32,
        make: impl FnOnce() -> TrackMeta,
        f: impl FnOnce(&mut Track) -> R,
    ) -> Option<R> {
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let shard = &mut *shard;
        if let Some(&i) = shard.index.get(&key) {
            return Some(f(&mut shard.slots[i].1));
        }
        if shard.slots.len() < self.per_shard {
            shard.slots.push((key, Track::new(make(), self.points)));
            shard.index.insert(key, shard.slots.len() - 1);
            return shard.slots.last_mut().map(|(_, t)| f(t));
        }
        let score = score();
        // NaN is not above anything.
        if score.partial_cmp(&1.0) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        let (i, (_, least)) =
            shard
                .slots
                .iter()
                .enumerate()
                .min_by(|(_, (_, a)), (_, (_, b))| {
                    a.peak
                        .total_cmp(&b.peak)
                        .then(a.last_ts().cmp(&b.last_ts()))
                })?;
        // Only a series more interesting than the least interesting track takes its place
        // (else a stream of mild anomalies would churn out the strong ones).
        if score.partial_cmp(&least.peak) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        let old = shard.slots[i].0;
        shard.index.remove(&old);
        shard.index.insert(key, i);
        shard.slots[i] = (key, Track::new(make(), self.points));
        self.evictions.fetch_add(1, Ordering::Relaxed);
        Some(f(&mut shard.slots[i].1))
    }

    /// Tracks held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).slots.len())
            .sum()
    }

    /// Whether no track is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tracks evicted to admit an anomalous series.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Room: (series, points per series).
    pub fn capacity(&self) -> (usize, usize) {
        (self.per_shard * SHARDS, self.points)
    }

    /// The `limit` most anomalous tracks (optionally only those whose name is `name`).
    pub fn ranked(&self, rank: Rank, limit: usize, name: Option<&str>) -> (usize, Vec<Summary>) {
        let mut rows = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            rows.extend(
                shard
                    .slots
                    .iter()
                    .filter(|(_, t)| name.is_none_or(|n| t.meta.name == n))
                    .map(|(k, t)| summary(*k, t)),
            );
        }
        let key = |s: &Summary| match rank {
            Rank::Current => (s.score.unwrap_or(-1.0), s.max_score.unwrap_or(-1.0)),
            Rank::Window => (s.max_score.unwrap_or(-1.0), s.score.unwrap_or(-1.0)),
        };
        rows.sort_by(|a, b| {
            let (a1, a2) = key(a);
            let (b1, b2) = key(b);
            b1.total_cmp(&a1)
                .then(b2.total_cmp(&a2))
                .then_with(|| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)))
        });
        let total = rows.len();
        rows.truncate(limit);
        (total, rows)
    }

    /// The whole window of the track `id` (as in [`Summary::id`]).
    pub fn detail(&self, id: &str) -> Option<Detail> {
        let key = u64::from_str_radix(id, 16).ok()?;
        let shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let &i = shard.index.get(&key)?;
        let t = &shard.slots[i].1;
        let col = |f: fn(&Point) -> f32| t.points.iter().map(|p| known(f(p))).collect();
        Some(Detail {
            summary: summary(key, t),
            t: t.points.iter().map(|p| p.ts).collect(),
            value: col(|p| p.value),
            forecast: col(|p| p.forecast),
            lower: col(|p| p.lower),
            upper: col(|p| p.upper),
            score: col(|p| p.score),
        })
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        &self.shards[(key >> 56) as usize % SHARDS]
    }
}

fn summary(key: u64, t: &Track) -> Summary {
    let last = t.points.back();
    let scored = t.points.iter().filter(|p| p.score.is_finite());
    Summary {
        id: format!("{key:016x}"),
        name: t.meta.name.clone(),
        labels: t.meta.labels.clone(),
        counter: t.meta.counter,
        ts: last.map(|p| p.ts),
        value: last.and_then(|p| known(p.value)),
        score: t
            .points
            .iter()
            .rev()
            .find(|p| p.score.is_finite())
            .map(|p| p.score),
        max_score: scored.clone().map(|p| p.score).reduce(f32::max),
        anomalies: scored.filter(|p| p.score > 1.0).count(),
        points: t.points.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str) -> TrackMeta {
        TrackMeta {
            name: name.into(),
            labels: vec![],
            counter: false,
        }
    }

    fn scored(ts: i64, score: f32) -> Point {
        Point {
            score,
            value: 1.0,
            ..Point::empty(ts)
        }
    }

    #[test]
    fn ring_keeps_the_newest_points_and_ignores_old_ones() {
        let tracks = Tracks::new(16, 3);
        for ts in [1, 2, 3, 4, 2] {
            tracks.with(7, || 0.0, || meta("a"), |t| t.push(scored(ts, 0.5)));
        }
        let d = tracks.detail(&format!("{:016x}", 7)).unwrap();
        assert_eq!(d.t, vec![2, 3, 4]);
    }

    #[test]
    fn when_full_only_anomalous_series_enter_replacing_the_calmest() {
        // One slot per shard: keys in the same shard compete.
        let tracks = Tracks::new(16, 4);
        let (calm, hot, new_calm, new_hot) = (1u64, 2u64, 3u64, 4u64);
        tracks.with(calm, || 0.2, || meta("calm"), |t| t.push(scored(1, 0.2)));
        assert!(tracks
            .with(new_calm, || 0.5, || meta("x"), |_| ())
            .is_none());
        assert!(tracks
            .with(new_hot, || 3.0, || meta("hot"), |t| t.push(scored(2, 3.0)))
            .is_some());
        assert_eq!(tracks.evictions(), 1);
        assert_eq!(tracks.len(), 1);
        let (_, rows) = tracks.ranked(Rank::Current, 10, None);
        assert_eq!(rows[0].name, "hot");
        // A milder anomaly does not push out a track that is more interesting than it.
        assert!(tracks.with(hot, || 1.5, || meta("mild"), |_| ()).is_none());
        assert_eq!(tracks.evictions(), 1);
        let (_, rows) = tracks.ranked(Rank::Current, 10, None);
        assert_eq!(rows[0].name, "hot");
    }

    #[test]
    fn counters_show_a_per_second_rate_across_resets() {
        let tracks = Tracks::new(16, 8);
        let m = TrackMeta {
            counter: true,
            ..meta("c_total")
        };
        let got: Vec<f64> = tracks
            .with(
                1,
                || 0.0,
                || m,
                |t| {
                    [(0, 10.0), (1000, 20.0), (2000, 5.0)]
                        .iter()
                        .map(|&(ts, v)| t.value_of(ts, v))
                        .collect()
                },
            )
            .unwrap();
        assert!(got[0].is_nan());
        assert_eq!(&got[1..], &[10.0, 5.0]);
    }

    #[test]
    fn point_at_fills_fields_of_points_in_the_window() {
        let tracks = Tracks::new(16, 8);
        tracks.with(
            1,
            || 0.0,
            || meta("a"),
            |t| {
                t.point_at(10).unwrap().value = 1.0;
                t.point_at(20).unwrap().value = 2.0;
                t.point_at(10).unwrap().score = 0.5;
                assert!(t.point_at(15).is_none());
            },
        );
        let d = tracks.detail(&format!("{:016x}", 1)).unwrap();
        assert_eq!(d.score, vec![Some(0.5), None]);
        assert_eq!(d.summary.anomalies, 0);
    }
}
