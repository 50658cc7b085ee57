//! Background fitting (DESIGN §3.4): per-series compact histories in a store bounded by
//! `models.fit.history_bytes`, a prioritised backlog of series due for a fit, and the fitted
//! parameters that the write path applies as overrides of the rule's `Params`.
//!
//! The write path touches this module twice per modeled series and request, each time under
//! one short shard lock and without allocating for a tracked series: [`Fitter::params`] while
//! the request is built (the adopted fit, if any) and, once downstream took the data,
//! [`Fitter::feed`] with the committed samples and [`Fitter::adopt`], which makes a finished
//! fit the series' parameters from its next request on (never retroactively; a retried
//! request sees the same parameters as the original, because adoption happens only at a
//! commit). The fitting itself runs on the [`pool`] threads.

pub mod estimate;
mod history;
pub mod pool;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use history::{
    Due, Fed, Fitted, ADOPT_LAG_BUCKETS, BUCKETS, BUCKET_MS, FIRST_FIT_BUCKETS, WINDOW_BUCKETS,
};

use crate::config::FitConfig;
use crate::idhash::{prefetch, shard_of, IdMap, ShardOrder, SHARDS};
use crate::metrics::Metrics;
use crate::model::{Kind, Model, Params, FINE_BUCKETS};
use estimate::{estimate, Estimate};
use history::History;

/// A history not fed for this long (wall clock) is dropped by the sweep.
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// Per-sample level smoothing never goes below this, whatever the fit says: the model's
/// robust machinery (clipping, level-shift adoption) is tuned for a level that follows.
const ALPHA_MIN: f64 = 0.02;

/// One series' closed history buckets, copied for an export.
#[derive(Debug, Clone)]
pub struct HistoryCopy {
    pub key: u64,
    /// The buckets hold per-second rates.
    pub counter: bool,
    /// Mean raw samples per bucket (how the learning core maps per-bucket smoothing to
    /// per-sample).
    pub samples_per_bucket: f64,
    /// Start (ms) of `values[0]`; bucket `i` starts at `start_ms + i * BUCKET_MS`.
    pub start_ms: i64,
    /// Bucket means, oldest first; NaN = no sample.
    pub values: Vec<f32>,
}

/// The histories, the backlog and the fitted results of all modeled series.
pub struct Fitter {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    /// Bytes accounted per tracked series (ring, bookkeeping, index entry).
    series_bytes: usize,
    backlog: Mutex<Backlog>,
    ready: Condvar,
    /// Fits published but not yet adopted: lets `adopt` skip its lock when there are none.
    pending: AtomicUsize,
    /// At most the earliest adoption bucket of the pending fits (lowered when one is
    /// published, raised again by the sweep): lets `adopt` skip its lock before then.
    next_adopt: AtomicI64,
    /// Held by a publication and by the sweep that recomputes `next_adopt` (taken before
    /// any shard lock), so the sweep never raises it above a fit it did not see.
    publish: Mutex<()>,
    /// Series with an adopted fit: lets `params` skip its lock while there are none.
    adopted: AtomicUsize,
    live: AtomicUsize,
    /// Admissions refused since the last sweep (the sweep then makes room).
    rejected: AtomicU64,
    epoch: Instant,
    metrics: Metrics,
}

/// One series' committed samples for [`Fitter::feed_many`]: a range of its `samples`.
#[derive(Debug, Clone)]
pub struct FedSeries {
    pub key: u64,
    pub kind: Kind,
    pub samples: std::ops::Range<usize>,
    /// Whether the series may be fitted. An imported series (whose imported parameters win
    /// over any fit) keeps its history, for the export, but is not queued while the import
    /// lists it: it becomes due again at its next closed bucket after that.
    pub fit: bool,
}

struct Shard {
    index: IdMap<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

struct Slot {
    key: u64,
    history: History,
}

/// Series due for a fit, one FIFO per [`Due`] class, most urgent class first. Each series is
/// queued at most once (its history's `queued` flag), so the backlog is bounded by the store.
#[derive(Default)]
struct Backlog {
    queues: [VecDeque<u64>; 3],
}

impl Backlog {
    fn len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }
    fn pop(&mut self) -> Option<u64> {
        self.queues.iter_mut().find_map(VecDeque::pop_front)
    }
}

impl Fitter {
    /// An empty store sized by `config.history_bytes`.
    pub fn new(config: &FitConfig, metrics: Metrics) -> Fitter {
        let series_bytes = std::mem::size_of::<Slot>()
            + BUCKETS * std::mem::size_of::<f32>()
            + 2 * std::mem::size_of::<(u64, u32)>();
        let capacity = (config.history_bytes as usize / series_bytes).max(SHARDS);
        Fitter {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        index: IdMap::new(),
                        slots: Vec::new(),
                        free: Vec::new(),
                    })
                })
                .collect(),
            per_shard: capacity / SHARDS,
            series_bytes,
            backlog: Mutex::new(Backlog::default()),
            ready: Condvar::new(),
            pending: AtomicUsize::new(0),
            next_adopt: AtomicI64::new(i64::MAX),
            publish: Mutex::new(()),
            adopted: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            epoch: Instant::now(),
            metrics,
        }
    }

    /// Series the store can hold.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Series with a history now.
    pub fn series(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Series waiting for a fit.
    pub fn backlog(&self) -> usize {
        lock(&self.backlog).len()
    }

    /// The parameters to model series `key` with: the rule's, overridden by the adopted fit.
    pub fn params(&self, key: u64, rule: &Params) -> Option<Params> {
        if self.adopted.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let shard = lock(self.shard(key));
        let i = *shard.index.get(key)?;
        let fitted = shard.slots[i as usize].history.active?;
        Some(apply(&fitted, rule))
    }

    /// The fit series `key` runs with, if any (per-sample units), e.g. for a snapshot's
    /// per-series parameters.
    pub fn adopted(&self, key: u64) -> Option<Fitted> {
        let shard = lock(self.shard(key));
        let i = *shard.index.get(key)?;
        shard.slots[i as usize].history.active
    }

    /// Copies up to `max` histories of shard `shard`, from slot `from` on, under one short
    /// lock (an export never holds a shard for long). Returns the copies and the next slot
    /// (`None` when the shard is done).
    pub fn copy_histories(
        &self,
        shard: usize,
        from: usize,
        max: usize,
    ) -> (Vec<HistoryCopy>, Option<usize>) {
        let s = lock(&self.shards[shard]);
        let end = (from + max).min(s.slots.len());
        let mut out = Vec::with_capacity(end.saturating_sub(from));
        for i in from..end {
            let slot = &s.slots[i];
            if s.index.get(slot.key) != Some(&(i as u32)) {
                continue;
            }
            let mut values = Vec::with_capacity(BUCKETS);
            if let Some(start_ms) = slot.history.closed_buckets(&mut values) {
                out.push(HistoryCopy {
                    key: slot.key,
                    counter: slot.history.is_counter(),
                    samples_per_bucket: slot.history.samples_per_bucket_now(),
                    start_ms,
                    values,
                });
            }
        }
        (out, (end < s.slots.len()).then_some(end))
    }

    /// Number of shards, for [`Fitter::copy_histories`].
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Puts a fit back that a snapshot recorded (restart): series `key` is modeled with it
    /// from its next request on, as if it had been adopted. Its history starts empty, so the
    /// series is refitted once it has enough again. Ignored when the store is full.
    pub fn restore_fit(&self, key: u64, kind: Kind, fitted: Fitted) {
        let mut shard = lock(self.shard(key));
        let i = match shard.index.get(key) {
            Some(&i) => i as usize,
            None => match self.admit(&mut shard, key, kind) {
                Some(i) => i,
                None => return,
            },
        };
        let h = &mut shard.slots[i].history;
        h.last_feed_s = self.epoch.elapsed().as_secs() as u32;
        if h.active.replace(fitted).is_none() {
            self.adopted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adopts a finished fit for `key` if one waits and `model` (the state about to be
    /// committed) reached the fit's adoption bucket in model time: from now on the series is
    /// modeled with it, and its seasonal profile is seeded into `model`.
    pub fn adopt(&self, key: u64, model: &mut Model, rule: &Params) {
        if self.pending.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(now) = model.last_timestamp().map(|ts| ts.div_euclid(BUCKET_MS)) else {
            return;
        };
        if now < self.next_adopt.load(Ordering::Relaxed) {
            return;
        }
        let mut shard = lock(self.shard(key));
        let Some(&i) = shard.index.get(key) else {
            return;
        };
        let h = &mut shard.slots[i as usize].history;
        let Some(new) = h.pending.take_if(|(_, at)| *at <= now).map(|(f, _)| f) else {
            return;
        };
        self.pending.fetch_sub(1, Ordering::Relaxed);
        let old = h.active.map_or(*rule, |f| apply(&f, rule));
        let next = apply(&new, rule);
        if h.active.replace(new).is_none() {
            self.adopted.fetch_add(1, Ordering::Relaxed);
        }
        drop(shard);
        let profile = (new.season_ms > 0 && next.season_fine_ms == new.season_ms).then(|| {
            let mut p = [0.0; FINE_BUCKETS];
            p.iter_mut()
                .zip(new.profile)
                .for_each(|(p, v)| *p = f64::from(v));
            p
        });
        model.seed_profile(&old, &next, profile.as_ref());
    }

    /// Appends committed samples of series `key` to its history, admitting the series if the
    /// store has room, and queues it when it becomes due for a fit.
    pub fn feed(&self, key: u64, kind: Kind, samples: &[Fed]) {
        self.feed_many(
            &[FedSeries {
                key,
                kind,
                samples: 0..samples.len(),
                fit: true,
            }],
            samples,
            &mut ShardOrder::default(),
        );
    }

    /// [`Fitter::feed`] for the series of one commit, whose samples are ranges of
    /// `samples`: shard by shard, each locked once, with the index buckets and then the
    /// histories of the shard's series requested before the first is touched, so their
    /// cache misses overlap.
    pub fn feed_many(&self, series: &[FedSeries], samples: &[Fed], order: &mut ShardOrder) {
        let now_s = self.epoch.elapsed().as_secs() as u32;
        let mut due = Vec::new();
        order.sort(series.iter().enumerate().map(|(j, s)| (j as u32, s.key)));
        for (shard, run) in order.runs() {
            let mut shard = lock(&self.shards[shard]);
            for &j in run {
                shard.index.prefetch(series[j as usize].key);
            }
            for &j in run {
                if let Some(&i) = shard.index.get(series[j as usize].key) {
                    prefetch(&shard.slots[i as usize]);
                }
            }
            for &j in run {
                let s = &series[j as usize];
                let fed = &samples[s.samples.clone()];
                if let Some(d) = self.feed_locked(&mut shard, s, fed, now_s) {
                    due.push((s.key, d));
                }
            }
        }
        for (key, d) in due {
            self.enqueue(key, d);
        }
    }

    /// Feeds one series under its shard's lock; returns its class if it became due.
    fn feed_locked(
        &self,
        shard: &mut Shard,
        series: &FedSeries,
        samples: &[Fed],
        now_s: u32,
    ) -> Option<Due> {
        if samples.is_empty() {
            return None;
        }
        let (key, kind) = (series.key, series.kind);
        let i = match shard.index.get(key) {
            Some(&i) => i as usize,
            None => match self.admit(shard, key, kind) {
                Some(i) => i,
                None => {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    self.metrics.fit_history_rejected.inc();
                    return None;
                }
            },
        };
        let h = &mut shard.slots[i].history;
        h.last_feed_s = now_s;
        let mut closed = false;
        for s in samples {
            closed |= h.push(*s);
        }
        let due = if closed && series.fit { h.due() } else { None };
        if due.is_some() {
            h.begin();
        }
        due
    }

    fn admit(&self, shard: &mut Shard, key: u64, kind: Kind) -> Option<usize> {
        let i = if let Some(i) = shard.free.pop() {
            let slot = &mut shard.slots[i as usize];
            slot.key = key;
            slot.history.reset(kind);
            i as usize
        } else if shard.slots.len() < self.per_shard {
            shard.slots.push(Slot {
                key,
                history: History::new(kind),
            });
            shard.slots.len() - 1
        } else {
            return None;
        };
        shard.index.insert(key, i as u32);
        let live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        self.set_store_gauges(live);
        Some(i)
    }

    fn enqueue(&self, key: u64, due: Due) {
        let mut backlog = lock(&self.backlog);
        backlog.queues[due as usize].push_back(key);
        self.metrics.fit_backlog.set(backlog.len() as i64);
        drop(backlog);
        self.ready.notify_one();
    }

    /// The most urgent series due for a fit, waiting up to `wait` for one.
    pub fn next_due(&self, wait: Duration) -> Option<u64> {
        let mut backlog = lock(&self.backlog);
        if backlog.len() == 0 {
            backlog = self
                .ready
                .wait_timeout(backlog, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let key = backlog.pop();
        self.metrics.fit_backlog.set(backlog.len() as i64);
        key
    }

    /// Wakes every thread waiting in [`Fitter::next_due`] (shutdown).
    pub fn wake_all(&self) {
        self.ready.notify_all();
    }

    /// Fits series `key` on the window of its last due point (if it still has a history) and
    /// publishes the result for adoption at the series' first commit at or after the adoption
    /// bucket. `buf` is scratch space. Returns the estimate.
    pub fn fit_one(&self, key: u64, buf: &mut Vec<f64>) -> Option<Estimate> {
        let (start_ms, per_bucket, adopt_at) = {
            let mut shard = lock(self.shard(key));
            let i = *shard.index.get(key)?;
            let h = &mut shard.slots[i as usize].history;
            h.queued = false;
            let (start_ms, on_time) = h.snapshot(buf);
            // A late fit is adopted at the next commit, whatever its model time.
            let adopt_at = if on_time { h.adopt_at() } else { i64::MIN };
            (start_ms, h.samples_per_bucket(), adopt_at)
        };
        let result = estimate(buf, start_ms, BUCKET_MS);
        let label = match &result {
            Ok(e) if e.season_ms.is_some() => "season",
            Ok(_) => "flat",
            Err(_) => "skipped",
        };
        self.metrics.fits.with_label_values(&[label]).inc();
        let e = result.ok()?;
        let fitted = per_sample(&e, per_bucket);
        let _publishing = lock(&self.publish);
        let mut shard = lock(self.shard(key));
        if let Some(&i) = shard.index.get(key) {
            let h = &mut shard.slots[i as usize].history;
            // Late if a commit already reached the adoption bucket without this fit.
            let adopt_at = if h.open_bucket() >= adopt_at {
                self.metrics.fit_late.inc();
                i64::MIN
            } else {
                adopt_at
            };
            self.next_adopt.fetch_min(adopt_at, Ordering::Relaxed);
            if h.pending.replace((fitted, adopt_at)).is_none() {
                self.pending.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(e)
    }

    /// Drops histories not fed for a while and, when admissions were refused since the last
    /// sweep, makes room by evicting the least useful histories: series whose fit found no
    /// season, oldest fit first. O(series); run from a fitting thread every few seconds.
    pub fn sweep(&self) {
        let now_s = self.epoch.elapsed().as_secs() as u32;
        let rejected = self.rejected.swap(0, Ordering::Relaxed) as usize;
        let make_room = rejected.div_ceil(SHARDS).min(self.per_shard / 100 + 1);
        let mut evicted = 0;
        // Recomputed from the pending fits, with publications held off meanwhile.
        let _publishing = lock(&self.publish);
        let mut next_adopt = i64::MAX;
        for shard in &self.shards {
            let mut shard = lock(shard);
            let mut idle = Vec::new();
            let mut flat = Vec::new();
            for (i, slot) in shard.slots.iter().enumerate() {
                let h = &slot.history;
                if shard.index.get(slot.key) != Some(&(i as u32)) {
                    continue;
                }
                if let Some((_, at)) = h.pending {
                    next_adopt = next_adopt.min(at);
                }
                if now_s.saturating_sub(h.last_feed_s) as u64 > IDLE.as_secs() {
                    idle.push(i);
                } else if make_room > 0 && h.fitted_flat() && !h.queued {
                    flat.push((h.fit_age(), i));
                }
            }
            let room = make_room.saturating_sub(shard.free.len() + idle.len());
            flat.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
            for i in idle
                .into_iter()
                .chain(flat.into_iter().take(room).map(|f| f.1))
            {
                let key = shard.slots[i].key;
                shard.index.remove(key);
                let h = &mut shard.slots[i].history;
                if h.pending.take().is_some() {
                    self.pending.fetch_sub(1, Ordering::Relaxed);
                }
                if h.active.take().is_some() {
                    self.adopted.fetch_sub(1, Ordering::Relaxed);
                }
                shard.free.push(i as u32);
                evicted += 1;
            }
        }
        self.next_adopt.store(next_adopt, Ordering::Relaxed);
        let live = self.live.fetch_sub(evicted, Ordering::Relaxed) - evicted;
        self.metrics.fit_history_evictions.inc_by(evicted as u64);
        self.set_store_gauges(live);
    }

    fn set_store_gauges(&self, live: usize) {
        self.metrics.fit_history_series.set(live as i64);
        self.metrics
            .fit_history_bytes
            .set((live * self.series_bytes) as i64);
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        &self.shards[shard_of(key)]
    }
}

/// A rule's parameters with a fit applied: the smoothing constants always; the fine season
/// only when the rule leaves seasonality to detection (`auto`), and then the fit's decision
/// replaces the online gate.
pub fn apply(f: &Fitted, rule: &Params) -> Params {
    let mut p = *rule;
    p.alpha = f.alpha;
    p.beta = f.beta;
    p.phi = f.phi;
    if rule.season_gate {
        p.season_fine_ms = f.season_ms;
        p.season_gate = f.season_ms == 0;
    }
    p
}

/// Maps an estimate made on history buckets to per-sample values, `m` samples per bucket:
/// smoothing constants keep their time constants (`1 - (1 - alpha)^(1/m)`, `phi^(1/m)`).
fn per_sample(e: &Estimate, m: f64) -> Fitted {
    let mut profile = [0.0f32; FINE_BUCKETS];
    profile
        .iter_mut()
        .zip(e.profile)
        .for_each(|(p, v)| *p = v as f32);
    Fitted {
        alpha: (1.0 - (1.0 - e.alpha).powf(1.0 / m)).clamp(ALPHA_MIN, 1.0),
        beta: e.beta_ratio,
        phi: if e.phi > 0.0 {
            e.phi.powf(1.0 / m)
        } else {
            0.0
        },
        season_ms: e.season_ms.unwrap_or(0),
        profile,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
