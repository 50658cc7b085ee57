//! The online state of one series and its O(1) update: robust level + damped trend + seasonal
//! profile, one-step-ahead forecast, interval and anomaly score.

use super::params::Params;
use super::season::{Phase, Profile};
use super::{is_stale_marker, Forecast, Kind, Outcome};

const COUNTER: u8 = 1;
const PRIMED: u8 = 2;
const STALE: u8 = 4;
const EMITTED: u8 = 8;
/// `surprise_min` holds the start of an earlier episode of surprises.
const SURPRISED: u8 = 16;
/// Two bits: how many episodes in a row (0..=3) started one fine season after the one before.
const ROUTINE_SHIFT: u8 = 5;
const ROUTINE_MASK: u8 = 3 << ROUTINE_SHIFT;

/// How often (in samples) the seasonal unit is checked for lost precision.
const REFINE_EVERY: u32 = 256;
/// Samples the band is estimated from (a mean) before it is tracked as a quantile, even when
/// the rule's warm-up is shorter.
const MIN_LEARN: u32 = 10;
/// Samples the range must have seen before a value outside it counts as a new extreme.
pub(super) const RANGE_AFTER: u16 = 300;
/// How far (as a fraction of the range) a value must fall outside the range seen so far.
const RANGE_MARGIN: f64 = 0.01;
/// The least score (in half-widths of the interval) at which a new extreme is scored...
const RANGE_NEED: f64 = 0.5;
/// ...and the score it then gets at least: that of a far outlier.
pub(super) const RANGE_SCORE: f64 = 4.0;
/// A value repeated exactly this many times in a row (raw value; a counter that stops
/// increasing) is stuck...
pub(super) const STUCK_AFTER: u8 = 12;
/// ...when the series repeated its value on fewer than this fraction of samples before
/// (as a fraction of `u16::MAX`: 10 %)...
const STUCK_RARE: u16 = u16::MAX / 10;
/// ...an exponential mean of repeats over about this many samples (a rate of 1 / 100 per
/// sample), kept as a fraction of `u16::MAX`.
const REPEAT_SPAN: u16 = 100;
/// A score at least this high is a surprise. Surprises within 1 / `ROUTINE_TOLERANCE` of the
/// fine season (30 minutes of a day) of the first are one episode (a job that runs for some
/// minutes); the episode's start is remembered...
const SURPRISE: f64 = 2.0;
/// ...and an episode that starts a fine season (a day) after the previous one, give or take
/// the same tolerance, is a recurrence. From the second recurrence in a row on, the episode is
/// routine (a daily job): its surprises score at most 1.
const ROUTINE_TOLERANCE: i64 = 48;
const ROUTINE_AFTER: u8 = 2;

/// The online state of one series. `Copy`, fixed size, no heap: the pipeline copies it,
/// updates the copy tentatively and writes it back when the downstream write commits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// Timestamp (ms) of the last sample taken, or of the stale marker.
    last_ts: i64,
    /// Smoothed level (deseasonalised), in value units (per-second rate for counters).
    level: f64,
    /// The previous raw value (for counters, the previous counter value).
    prev_raw: f64,
    /// Damped trend, value units per ms.
    trend: f32,
    /// The tracked band: an online far quantile (`Params::tail`) of the absolute one-step
    /// error; during warm-up, the mean absolute error.
    band: f32,
    /// Mean absolute error of the forecast with the seasonal profile applied.
    err_season: f32,
    /// Mean absolute error of the forecast without it (season gate).
    err_plain: f32,
    /// Short-lived widening after a surprise (volatility clusters): the band is multiplied by
    /// `1 + shock`, which decays back to 1.
    shock: f32,
    /// Typical sampling interval, ms.
    step: f32,
    /// The range of the deseasonalised values seen so far (the value, a per-second rate for
    /// counters, less the seasonal offset the forecast applied; rounded outwards to f32), and
    /// how many samples it has seen (saturating at `RANGE_AFTER`). Empty: low = +inf, high = -inf.
    range_low: f32,
    range_high: f32,
    range_seen: u16,
    /// The start (minutes since the epoch, wrapping) of the last episode of surprises, if
    /// `SURPRISED`.
    surprise_min: u32,
    /// Exponential mean of samples that repeated the previous raw value, as a fraction of
    /// `u16::MAX`, not counting the current run of repeats.
    repeats: u16,
    /// The current run of exact repeats of the raw value (saturating).
    same: u8,
    /// Samples modeled (saturating).
    seen: u32,
    /// Consecutive outside-the-band errors: positive above, negative below.
    run: i8,
    flags: u8,
    profile: Profile,
}

impl Model {
    /// A fresh model. `kind` says whether values are a counter (modeled as a per-second rate
    /// with reset handling) or a gauge (modeled as is).
    pub fn new(kind: Kind) -> Model {
        Model {
            last_ts: i64::MIN,
            level: 0.0,
            prev_raw: 0.0,
            trend: 0.0,
            band: 0.0,
            shock: 0.0,
            err_season: 0.0,
            err_plain: 0.0,
            step: 0.0,
            range_low: f32::INFINITY,
            range_high: f32::NEG_INFINITY,
            range_seen: 0,
            surprise_min: 0,
            repeats: 0,
            same: 0,
            seen: 0,
            run: 0,
            flags: if kind == Kind::Counter { COUNTER } else { 0 },
            profile: Profile::EMPTY,
        }
    }

    /// Whether this model treats its series as a counter.
    pub fn kind(&self) -> Kind {
        if self.flags & COUNTER != 0 {
            Kind::Counter
        } else {
            Kind::Gauge
        }
    }

    /// Timestamp (ms) of the last sample or stale marker taken, if any. Samples at or before it
    /// are ignored by [`Model::update`].
    pub fn last_timestamp(&self) -> Option<i64> {
        (self.last_ts != i64::MIN).then_some(self.last_ts)
    }

    /// True after a stale marker until the next real sample.
    pub fn is_stale(&self) -> bool {
        self.flags & STALE != 0
    }

    /// True once the series has been stale for the grace period as of `now_ms` (any clock the
    /// caller trusts, e.g. the newest sample timestamp it has seen): the model may be dropped.
    pub fn retire_due(&self, params: &Params, now_ms: i64) -> bool {
        self.is_stale() && now_ms.saturating_sub(self.last_ts) >= params.stale_grace_ms
    }

    /// Takes one sample (`ts_ms`, `value`) in O(1) and without allocation.
    ///
    /// A stale marker (bit pattern, see [`is_stale_marker`]) marks the model stale. Samples at
    /// or before the last timestamp, and non-finite values, are ignored without changing state.
    pub fn update(&mut self, params: &Params, ts_ms: i64, value: f64) -> Outcome {
        if is_stale_marker(value) {
            return self.mark_stale(ts_ms);
        }
        if !value.is_finite() || (self.last_ts != i64::MIN && ts_ms <= self.last_ts) {
            return Outcome::Ignored;
        }
        let was_stale = self.is_stale();
        self.flags &= !STALE;
        let stuck = self.note_repeat(value);
        if self.flags & COUNTER == 0 {
            self.prev_raw = value;
            return self.observe(params, ts_ms, value, was_stale, stuck);
        }
        // Counters: the first sample (and the first after staleness, when the target has
        // likely restarted) only primes the previous value.
        if self.flags & PRIMED == 0 || was_stale {
            self.prev_raw = value;
            self.flags |= PRIMED;
            if self.seen == 0 {
                self.last_ts = ts_ms;
                return Outcome::Warming;
            }
            return self.restart(ts_ms, None);
        }
        let dt_s = (ts_ms - self.last_ts) as f64 / 1000.0;
        // A drop is a reset: the counter restarted from zero, so the increase is the new value.
        let increase = if value >= self.prev_raw {
            value - self.prev_raw
        } else {
            value
        };
        self.prev_raw = value;
        self.observe(params, ts_ms, increase / dt_s, false, stuck)
    }

    /// Counts exact repeats of the raw value (for a counter: no increase). True on the
    /// `STUCK_AFTER`-th repeat in a row of a series that rarely repeats: a stuck value (a
    /// frozen exporter, a counter that stopped). The mean leaves the current run out until it
    /// ends, so a long run does not teach the series that it repeats before it is scored.
    fn note_repeat(&mut self, value: f64) -> bool {
        if self.seen > 0 && value == self.prev_raw {
            self.same = self.same.saturating_add(1);
            return self.same == STUCK_AFTER && self.repeats < STUCK_RARE;
        }
        if self.same > 0 {
            // The run that just ended: each repeat moves the mean 1 / REPEAT_SPAN towards 1.
            let keep = (1.0 - 1.0 / REPEAT_SPAN as f64).powi(self.same.min(STUCK_AFTER) as i32);
            let rest = (u16::MAX - self.repeats) as f64 * keep;
            self.repeats = u16::MAX - rest.round() as u16;
            self.same = 0;
        }
        // This sample, not a repeat, moves it towards 0 (integer steps, rounded up, so it
        // reaches 0).
        self.repeats -= self.repeats.div_ceil(REPEAT_SPAN);
        false
    }

    /// Takes a surprise (a score of at least `SURPRISE`) into its episode and says whether
    /// the episode is routine: the latest of at least `ROUTINE_AFTER` episodes in a row, each
    /// starting a fine season (a day) after the one before, within `1 / ROUTINE_TOLERANCE`
    /// of the season.
    fn routine(&mut self, p: &Params, ts_ms: i64, score: f64) -> bool {
        if score < SURPRISE || p.season_fine_ms <= 0 {
            return false;
        }
        let now = ts_ms.div_euclid(60_000) as u32;
        let mut streak = (self.flags & ROUTINE_MASK) >> ROUTINE_SHIFT;
        let since_ms = now.wrapping_sub(self.surprise_min) as i64 * 60_000;
        let tolerance = p.season_fine_ms / ROUTINE_TOLERANCE;
        let surprised = self.flags & SURPRISED != 0;
        if surprised && since_ms <= tolerance {
            return streak >= ROUTINE_AFTER;
        }
        if surprised && (since_ms - p.season_fine_ms).abs() <= tolerance {
            streak = (streak + 1).min(3);
        } else {
            streak = 0;
        }
        self.flags = (self.flags & !ROUTINE_MASK) | (streak << ROUTINE_SHIFT) | SURPRISED;
        self.surprise_min = now;
        streak >= ROUTINE_AFTER
    }

    fn mark_stale(&mut self, ts_ms: i64) -> Outcome {
        if self.last_ts != i64::MIN && ts_ms <= self.last_ts {
            return Outcome::Ignored;
        }
        self.last_ts = ts_ms;
        self.flags |= STALE;
        self.run = 0;
        if self.flags & EMITTED != 0 {
            Outcome::Stale
        } else {
            Outcome::Warming
        }
    }

    /// Re-anchors level and trend after a long gap or staleness; keeps scale and profile.
    /// `level`, when given, is the new sample less the seasonal offset in force.
    fn restart(&mut self, ts_ms: i64, level: Option<f64>) -> Outcome {
        if let Some(level) = level {
            self.level = level;
        }
        self.trend = 0.0;
        self.run = 0;
        self.last_ts = ts_ms;
        Outcome::Warming
    }

    fn season_forecast(&self, p: &Params, ph: &Phase) -> f64 {
        if p.season_gate && self.err_season >= self.err_plain {
            return 0.0;
        }
        self.profile.value(ph)
    }

    /// True if `x` (deseasonalised) lies outside the range seen so far by more than
    /// `RANGE_MARGIN` of it, once
    /// the range has seen `RANGE_AFTER` samples: a new extreme (a value below every earlier
    /// one, or above).
    fn new_extreme(&self, x: f64) -> bool {
        if self.range_seen < RANGE_AFTER {
            return false;
        }
        let (low, high) = (self.range_low as f64, self.range_high as f64);
        let margin = RANGE_MARGIN * (high - low);
        x > high + margin || x < low - margin
    }

    /// Takes `x` into the range. The bounds are rounded outwards to f32, so a value is never
    /// outside a range that holds it (large values with a narrow range lose resolution: the
    /// test becomes conservative, never spurious).
    fn widen_range(&mut self, x: f64) {
        let v = x as f32;
        if x > self.range_high as f64 {
            self.range_high = if (v as f64) < x { v.next_up() } else { v };
        }
        if x < self.range_low as f64 {
            self.range_low = if (v as f64) > x { v.next_down() } else { v };
        }
        self.range_seen = self.range_seen.saturating_add(1).min(RANGE_AFTER);
    }

    fn observe(&mut self, p: &Params, ts_ms: i64, x: f64, was_stale: bool, stuck: bool) -> Outcome {
        let ph = Phase::of(p, ts_ms);
        let season = self.profile.value(&ph);
        let gate_open = !p.season_gate || self.err_season < self.err_plain;
        // The range is kept of the deseasonalised value: the sample less the seasonal offset
        // the forecast applies (none while the season gate is closed), so a value can be a
        // new extreme for its time of day while inside the raw range.
        let deseasonalised = x - if gate_open { season } else { 0.0 };
        let extreme = self.new_extreme(deseasonalised);
        self.widen_range(deseasonalised);
        if self.seen == 0 {
            self.level = x;
            self.seen = 1;
            self.last_ts = ts_ms;
            return Outcome::Warming;
        }
        let dt = (ts_ms - self.last_ts) as f64;
        let step = if self.step > 0.0 {
            self.step as f64
        } else {
            dt
        };
        let k = dt / step;
        if was_stale || k > p.gap_reset_steps {
            return self.restart(ts_ms, Some(deseasonalised));
        }
        // The typical interval follows the data but a missed scrape moves it only a little.
        self.step = (step + 0.1 * (dt.min(4.0 * step) - step)) as f32;

        // Regular intervals (k = 1) skip the powers.
        let regular = (k - 1.0).abs() < 1e-3;
        let phi_k = if regular { p.phi } else { p.phi.powf(k) };
        let damp = match () {
            _ if regular => p.phi,
            _ if p.phi >= 1.0 => k,
            _ => p.phi * (1.0 - phi_k) / (1.0 - p.phi),
        };
        let level_fc = self.level + self.trend as f64 * step * damp;
        let forecast = level_fc + if gate_open { season } else { 0.0 };
        let r = x - forecast;

        let warming = self.seen < p.warmup;
        let learning = self.seen < p.warmup.max(MIN_LEARN);
        let floor = (p.rel_floor * self.level.abs()).max(p.abs_floor);
        let band = if learning {
            -p.tail.ln() * self.band as f64
        } else {
            self.band as f64
        }
        .max(floor);
        // Missed scrapes: the error of a k-step forecast of a local level grows with k.
        let widen = if k <= 1.0 {
            1.0
        } else {
            (1.0 + (k - 1.0) * p.alpha * p.alpha).sqrt()
        };
        let edge = band * widen * (1.0 + self.shock as f64);
        let half = p.width * edge;
        let mut score = r.abs() / half;
        // A value beyond everything the series has shown is a far outlier once it is also
        // off the forecast (a series trending along its forecast sets records unscored).
        if extreme && score >= RANGE_NEED {
            score = score.max(RANGE_SCORE);
        }
        // A value that stopped moving in a series that rarely repeats is as surprising.
        if stuck && self.range_seen >= RANGE_AFTER {
            score = score.max(RANGE_SCORE);
        }
        // A surprise at the same time of day, day after day, is a routine job, not an anomaly.
        if self.routine(p, ts_ms, score) {
            score = score.min(1.0);
        }

        // Robust learning: clip the error, unless the same-side run says the level moved.
        let outside = r.abs() > edge && !learning;
        self.run = match (outside, r > 0.0) {
            (false, _) => 0,
            (true, true) => self.run.max(0).saturating_add(1),
            (true, false) => self.run.min(0).saturating_sub(1),
        };
        let n = self.seen as f64;
        let alpha = p.alpha.max(1.0 / (n + 1.0));
        let rate = p.scale_rate.max(1.0 / n);
        let limit = if learning {
            f64::INFINITY
        } else {
            p.clip * half
        };
        let rc = r.clamp(-limit, limit);

        if self.run.unsigned_abs() >= p.adopt_after {
            self.level = level_fc + r;
            self.run = 0;
        } else {
            self.level = level_fc + alpha * rc;
            self.trend = (phi_k * self.trend as f64 + alpha * p.beta * rc / step) as f32;
            // The profile learns what the level forecast misses at this phase.
            let rs = (x - level_fc - season).clamp(-limit, limit);
            let hint = band / 1024.0;
            self.profile
                .add(&ph, p.gamma_fine * rs, p.gamma_coarse * rs, hint);
            let plain = (x - level_fc).abs().min(limit);
            self.err_plain += (rate * (plain - self.err_plain as f64)) as f32;
            self.err_season += (rate * (rs.abs() - self.err_season as f64)) as f32;
        }
        self.shock = (self.shock as f64 * p.shock_decay
            + if outside {
                p.shock_gain * (r.abs() / edge).ln().min(p.shock_cap)
            } else {
                0.0
            }) as f32;
        if learning {
            self.band += ((r.abs() - self.band as f64) / n) as f32;
            if self.seen + 1 == p.warmup.max(MIN_LEARN) {
                self.band = (-p.tail.ln() * self.band as f64).max(floor) as f32;
            }
        } else if r.abs() > band * widen {
            self.band = (band * p.band_grow) as f32;
        } else {
            self.band = (band * p.band_shrink) as f32;
        }
        self.seen = self.seen.saturating_add(1);
        self.last_ts = ts_ms;
        if self.seen % REFINE_EVERY == 0 {
            self.profile.refine(band / 1024.0);
        }
        if warming {
            return Outcome::Warming;
        }
        self.flags |= EMITTED;
        let lower = forecast - half;
        let lower = if self.flags & COUNTER != 0 {
            lower.max(0.0)
        } else {
            lower
        };
        Outcome::Scored(Forecast {
            score,
            forecast,
            lower,
            upper: forecast + half,
        })
    }
    /// Switches the model from parameters `old` to fitted ones `new` (background fitting),
    /// optionally seeding the fine seasonal profile with fitted offsets at the bucket
    /// centres. The level is moved so that the seasonal part of the forecast at the last
    /// sample's phase changes nothing: the switch does not jump the forecast.
    pub fn seed_profile(
        &mut self,
        old: &Params,
        new: &Params,
        fine: Option<&[f64; super::FINE_BUCKETS]>,
    ) {
        if self.last_ts == i64::MIN {
            if let Some(fine) = fine {
                self.profile.set_fine(fine);
            }
            return;
        }
        let before = self.season_forecast(old, &Phase::of(old, self.last_ts));
        if let Some(fine) = fine {
            self.profile.set_fine(fine);
        }
        let after = self.season_forecast(new, &Phase::of(new, self.last_ts));
        self.level += before - after;
    }
}

#[path = "record.rs"]
mod record;
pub use record::ModelRecord;
