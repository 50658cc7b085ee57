//! The compact history of one series: a ring of fixed-width bucket means (10 minutes, 4 days),
//! counters as per-second rates as the model sees them, plus the bookkeeping that decides when
//! the series is due for a (re)fit and the fitted result waiting to be adopted.

use crate::model::{is_stale_marker, Kind, FINE_BUCKETS};

/// Width of one history bucket.
pub const BUCKET_MS: i64 = 600_000;
/// Buckets kept per series: 4 days, so a daily season has two full periods with room to spare.
pub const BUCKETS: usize = 576;
/// Closed buckets of history before the first fit (12 hours).
pub const FIRST_FIT_BUCKETS: u32 = 72;
/// Closed buckets after a fit before the regular refit (a day).
pub const REFIT_BUCKETS: u32 = 144;
/// Closed buckets after a fit before errors that grew may trigger a refit (an hour).
const MIN_REFIT_BUCKETS: u32 = 6;
/// Buckets of model time from the point a series becomes due (the end of the window it is
/// fitted on) to the commit that adopts the fit (an hour). Both points are model time, so two
/// replicas fed the same requests fit the same window and adopt at the same commit, however
/// fast their fitting threads are, as long as the fit finishes within this lag.
pub const ADOPT_LAG_BUCKETS: i64 = 6;
/// Buckets a fit sees: the ring minus the lag, the part no bucket closed after the due point
/// can have overwritten by the time the fit is adopted.
pub const WINDOW_BUCKETS: usize = BUCKETS - ADOPT_LAG_BUCKETS as usize;
/// Smoothing of the error level (mean of the capped anomaly score) per scored sample.
const ERR_RATE: f32 = 0.01;
/// Scores are capped here before they enter the error level, so one anomaly does not count
/// as "errors grew".
const ERR_CAP: f32 = 4.0;

/// One committed sample as the fitter sees it: the raw value (a stale marker included) and
/// the anomaly score it got (NaN when nothing was emitted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fed {
    pub ts: i64,
    pub value: f64,
    pub score: f32,
}

/// Parameters a fit estimated for one series, already in per-sample units. `Copy`, small.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fitted {
    pub alpha: f64,
    /// Trend smoothing as a fraction of alpha (the model's `beta`).
    pub beta: f64,
    /// Trend damping per sample; 0 = no trend.
    pub phi: f64,
    /// Fine season length; 0 = the fit found none.
    pub season_ms: i64,
    /// Zero-mean offsets at the fine profile's bucket centres.
    pub profile: [f32; FINE_BUCKETS],
}

/// Why a series is in the fit backlog; lower is more urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Due {
    /// Never fitted, or fitted on less than half of the history it has now.
    New = 0,
    /// The anomaly scores since the last fit are well above those before it.
    ErrorsGrew = 1,
    /// The regular refit, oldest fit first.
    Refit = 2,
}

/// A series' history and fit bookkeeping.
#[derive(Debug)]
pub struct History {
    /// Bucket means; NaN = no sample. Allocated when the first bucket closes (a series gone
    /// before its first 10-minute bucket closed never needs it), then kept for the slot and
    /// reused after eviction.
    ring: Option<Box<[f32; BUCKETS]>>,
    /// Bucket index (`ts / BUCKET_MS`) of the open bucket; `i64::MIN` before the first sample.
    head: i64,
    /// Sums of the open bucket: value (or counter increase) and count (or seconds).
    num: f64,
    den: f64,
    samples: u32,
    /// Mean samples per bucket (for mapping per-bucket smoothing to per-sample).
    per_bucket: f32,
    /// Counters: the previous raw value and its timestamp; `prev_ts == i64::MIN` = unprimed.
    prev_raw: f64,
    prev_ts: i64,
    counter: bool,
    /// Buckets closed since admission: this series' clock for fit scheduling.
    closed: u32,
    /// `closed` at the last fit (0 = never fitted).
    fitted_at: u32,
    /// Mean capped score, now and as of the last fit.
    err: f32,
    err_at_fit: f32,
    /// In the backlog (at most once).
    pub queued: bool,
    /// The open bucket when the series last became due: its fit window ends before it, and
    /// the fit is adopted from bucket `due_head + ADOPT_LAG_BUCKETS` on. `i64::MIN` = never.
    due_head: i64,
    /// `per_bucket` at the due point.
    due_per_bucket: f32,
    /// Wall-clock second (store-relative) of the last feed, for idle eviction.
    pub last_feed_s: u32,
    /// The adopted fit, applied to this series' parameters.
    pub active: Option<Fitted>,
    /// A fit waiting to be adopted, at the first commit whose model time reaches the bucket
    /// that goes with it.
    pub pending: Option<(Fitted, i64)>,
}

impl History {
    /// An empty history.
    pub fn new(kind: Kind) -> History {
        let mut h = History {
            ring: None,
            head: i64::MIN,
            num: 0.0,
            den: 0.0,
            samples: 0,
            per_bucket: 0.0,
            prev_raw: 0.0,
            prev_ts: i64::MIN,
            counter: false,
            closed: 0,
            fitted_at: 0,
            err: 0.0,
            err_at_fit: 0.0,
            queued: false,
            due_head: i64::MIN,
            due_per_bucket: 0.0,
            last_feed_s: 0,
            active: None,
            pending: None,
        };
        h.reset(kind);
        h
    }

    /// Empties the history for another series, keeping the ring's allocation.
    pub fn reset(&mut self, kind: Kind) {
        if let Some(ring) = &mut self.ring {
            ring.fill(f32::NAN);
        }
        self.head = i64::MIN;
        self.num = 0.0;
        self.den = 0.0;
        self.samples = 0;
        self.per_bucket = 0.0;
        self.prev_raw = 0.0;
        self.prev_ts = i64::MIN;
        self.counter = kind == Kind::Counter;
        self.closed = 0;
        self.fitted_at = 0;
        self.err = 0.0;
        self.err_at_fit = 0.0;
        self.queued = false;
        self.due_head = i64::MIN;
        self.due_per_bucket = 0.0;
        self.active = None;
        self.pending = None;
    }

    /// Takes one committed sample in O(1) (amortised: a jump over empty buckets clears them,
    /// at most the ring once). Returns true when this closed a bucket.
    pub fn push(&mut self, s: Fed) -> bool {
        if s.score.is_finite() {
            self.err += ERR_RATE * (s.score.min(ERR_CAP) - self.err);
        }
        let b = s.ts.div_euclid(BUCKET_MS);
        let closed = if self.head == i64::MIN {
            self.head = b;
            false
        } else if b < self.head {
            // Older than the open bucket: a model restarted behind its history.
            return false;
        } else if b > self.head {
            self.close(b);
            true
        } else {
            false
        };
        if is_stale_marker(s.value) {
            // A counter's next sample after staleness primes it again, as in the model.
            self.prev_ts = i64::MIN;
            return closed;
        }
        if !s.value.is_finite() {
            return closed;
        }
        if self.counter {
            if self.prev_ts != i64::MIN && s.ts > self.prev_ts {
                let increase = if s.value >= self.prev_raw {
                    s.value - self.prev_raw
                } else {
                    s.value
                };
                self.num += increase;
                self.den += (s.ts - self.prev_ts) as f64 / 1000.0;
                self.samples += 1;
            }
            self.prev_raw = s.value;
            self.prev_ts = s.ts;
        } else {
            self.num += s.value;
            self.den += 1.0;
            self.samples += 1;
        }
        closed
    }

    /// Closes the open bucket and opens bucket `b`, marking the skipped ones empty.
    fn close(&mut self, b: i64) {
        let mean = if self.den > 0.0 {
            (self.num / self.den) as f32
        } else {
            f32::NAN
        };
        let ring = self
            .ring
            .get_or_insert_with(|| Box::new([f32::NAN; BUCKETS]));
        ring[slot(self.head)] = mean;
        if self.samples > 0 {
            let n = self.samples as f32;
            self.per_bucket += if self.per_bucket == 0.0 {
                n
            } else {
                0.05 * (n - self.per_bucket)
            };
        }
        let skipped = (b - self.head - 1).clamp(0, BUCKETS as i64);
        for j in 1..=skipped {
            ring[slot(self.head + j)] = f32::NAN;
        }
        self.closed = self
            .closed
            .saturating_add((b - self.head).min(u32::MAX as i64) as u32);
        self.head = b;
        self.num = 0.0;
        self.den = 0.0;
        self.samples = 0;
    }

    /// Whether the series is due for a fit now, and why.
    pub fn due(&self) -> Option<Due> {
        if self.queued || self.closed < FIRST_FIT_BUCKETS {
            return None;
        }
        let since = self.closed - self.fitted_at;
        let full = self.fitted_at as usize >= BUCKETS;
        if self.fitted_at == 0 || (!full && since >= self.fitted_at) {
            return Some(Due::New);
        }
        if since >= MIN_REFIT_BUCKETS && self.err > 0.3 && self.err > 2.0 * self.err_at_fit {
            return Some(Due::ErrorsGrew);
        }
        (since >= REFIT_BUCKETS).then_some(Due::Refit)
    }

    /// Marks the due point (call when [`History::due`] said so): the fit's window ends here,
    /// and the clock and error level the next `due` is measured against start here. Returns
    /// the bucket from which the fit is to be adopted.
    pub fn begin(&mut self) -> i64 {
        self.queued = true;
        self.due_head = self.head;
        self.due_per_bucket = self.per_bucket;
        self.fitted_at = self.closed.max(1);
        self.err_at_fit = self.err;
        self.adopt_at()
    }

    /// The open bucket (`ts / BUCKET_MS` of the newest sample); `i64::MIN` before the first.
    pub fn open_bucket(&self) -> i64 {
        self.head
    }

    /// The bucket from which the fit begun at the last due point is adopted.
    pub fn adopt_at(&self) -> i64 {
        self.due_head.saturating_add(ADOPT_LAG_BUCKETS)
    }

    /// Copies the fit window, [`WINDOW_BUCKETS`] closed buckets oldest first, into `out`;
    /// returns the start (ms) of the first and whether the window is the one of the due
    /// point. It is unless the series' model time already passed the adoption bucket (the
    /// fit is late: its window then ends at the newest closed bucket instead).
    pub fn snapshot(&self, out: &mut Vec<f64>) -> (i64, bool) {
        let on_time = self.due_head != i64::MIN && self.head < self.adopt_at();
        let end = if on_time { self.due_head } else { self.head };
        out.clear();
        out.extend(
            (1..=WINDOW_BUCKETS as i64)
                .rev()
                .map(|age| f64::from(self.bucket(end - age))),
        );
        ((end - WINDOW_BUCKETS as i64) * BUCKET_MS, on_time)
    }

    /// The mean of closed bucket `b` (NaN = no sample, or not within the ring).
    fn bucket(&self, b: i64) -> f32 {
        self.ring.as_ref().map_or(f32::NAN, |ring| ring[slot(b)])
    }

    /// Whether the series is a counter (the buckets hold per-second rates).
    pub fn is_counter(&self) -> bool {
        self.counter
    }

    /// The closed buckets, oldest first, into `out` (NaN = no sample), without touching the
    /// fit bookkeeping; returns the start (ms) of the first, or `None` before any sample.
    pub fn closed_buckets(&self, out: &mut Vec<f32>) -> Option<i64> {
        out.clear();
        if self.head == i64::MIN {
            return None;
        }
        out.extend(
            (1..=BUCKETS as i64)
                .rev()
                .map(|age| self.bucket(self.head - age)),
        );
        Some((self.head - BUCKETS as i64) * BUCKET_MS)
    }

    /// Mean samples per bucket seen so far (at least 1), e.g. for an export.
    pub fn samples_per_bucket_now(&self) -> f64 {
        f64::from(self.per_bucket).max(1.0)
    }

    /// Mean samples per bucket at the due point (at least 1).
    pub fn samples_per_bucket(&self) -> f64 {
        f64::from(self.due_per_bucket).max(1.0)
    }

    /// True if the last fit found no season: such a series gains least from its history and
    /// is evicted first when the store is full.
    pub fn fitted_flat(&self) -> bool {
        self.active
            .or(self.pending.map(|p| p.0))
            .is_some_and(|f| f.season_ms == 0)
    }

    /// Closed buckets since the last fit (the age of the fit, in this series' time).
    pub fn fit_age(&self) -> u32 {
        self.closed - self.fitted_at
    }
}

fn slot(bucket: i64) -> usize {
    bucket.rem_euclid(BUCKETS as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(ts: i64, value: f64) -> Fed {
        Fed {
            ts,
            value,
            score: f32::NAN,
        }
    }

    #[test]
    fn gauges_become_bucket_means_with_gaps_empty() {
        let mut h = History::new(Kind::Gauge);
        for (ts, v) in [
            (0, 1.0),
            (60_000, 3.0),
            (BUCKET_MS, 10.0),
            (3 * BUCKET_MS, 7.0),
        ] {
            h.push(fed(ts, v));
        }
        let mut out = Vec::new();
        h.begin();
        let (start, on_time) = h.snapshot(&mut out);
        assert!(on_time);
        assert_eq!(start, (3 - WINDOW_BUCKETS as i64) * BUCKET_MS);
        assert_eq!(out.len(), WINDOW_BUCKETS);
        let tail = &out[WINDOW_BUCKETS - 3..];
        assert_eq!(tail[0], 2.0);
        assert_eq!(tail[1], 10.0);
        assert!(tail[2].is_nan());
        assert!(out[..WINDOW_BUCKETS - 3].iter().all(|v| v.is_nan()));
    }

    #[test]
    fn counters_become_rates_across_resets_and_staleness() {
        let mut h = History::new(Kind::Counter);
        // 10/s, a reset to 50 (50 in 10 s = 5/s), stale, then primes again.
        for (ts, v) in [(0, 0.0), (10_000, 100.0), (20_000, 50.0)] {
            h.push(fed(ts, v));
        }
        h.push(fed(30_000, f64::from_bits(crate::model::STALE_NAN_BITS)));
        h.push(fed(40_000, 1_000.0));
        h.push(fed(50_000, 1_010.0));
        h.push(fed(BUCKET_MS, 0.0));
        let mut out = Vec::new();
        h.begin();
        h.snapshot(&mut out);
        // (100 + 50 + 10) over 30 s.
        assert!(
            (out[WINDOW_BUCKETS - 1] - 160.0 / 30.0).abs() < 1e-4,
            "{}",
            out[WINDOW_BUCKETS - 1]
        );
    }

    #[test]
    fn due_new_then_refit_then_errors_grew() {
        let mut h = History::new(Kind::Gauge);
        let mut t = 0;
        let mut feed_buckets = |h: &mut History, n: i64, score: f32| {
            for _ in 0..n {
                h.push(Fed {
                    ts: t,
                    value: 1.0,
                    score,
                });
                t += BUCKET_MS;
            }
        };
        feed_buckets(&mut h, FIRST_FIT_BUCKETS as i64, 0.1);
        assert_eq!(h.due(), None);
        feed_buckets(&mut h, 1, 0.1);
        assert_eq!(h.due(), Some(Due::New));
        h.begin();
        h.queued = false;
        // Half the history again: "new" until the history doubled.
        feed_buckets(&mut h, 10, 0.1);
        assert_eq!(h.due(), None);
        feed_buckets(&mut h, FIRST_FIT_BUCKETS as i64, 0.1);
        assert_eq!(h.due(), Some(Due::New));
        h.begin();
        h.queued = false;
        feed_buckets(&mut h, 400, 0.1);
        assert_eq!(h.due(), Some(Due::New));
        h.begin();
        h.queued = false;
        // Full history: errors that grew come before the daily refit.
        feed_buckets(&mut h, 10, 3.0);
        assert_eq!(h.due(), Some(Due::ErrorsGrew));
        h.begin();
        h.queued = false;
        feed_buckets(&mut h, REFIT_BUCKETS as i64 - 1, 0.1);
        assert_eq!(h.due(), None);
        feed_buckets(&mut h, 1, 0.1);
        assert_eq!(h.due(), Some(Due::Refit));
    }

    #[test]
    fn a_long_gap_clears_the_ring_once() {
        let mut h = History::new(Kind::Gauge);
        h.push(fed(0, 5.0));
        h.push(fed(BUCKET_MS * 10_000, 6.0));
        let mut out = Vec::new();
        h.begin();
        h.snapshot(&mut out);
        assert!(out.iter().all(|v| v.is_nan()));
    }
}
