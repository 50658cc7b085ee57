//! The per-series online forecasting model: pure (no protobuf, HTTP, files or wall clock; model
//! time is the sample timestamp in ms), O(1) per sample, a small `Copy` state per series.
//!
//! How it works, per sample (all O(1), no allocation): the one-step forecast is a robust level
//! plus a damped trend plus a seasonal offset (24 interpolated buckets over the day, 7 over the
//! week, i16 in a per-series unit; `auto` applies them only while they lower the error). The
//! band is an online far quantile (0.2 %) of the absolute one-step error, so heavy-tailed
//! series get wide bands and calm ones narrow ones; the interval at the rule's confidence is a
//! fixed fraction of it, and the score is the distance from the forecast in half-widths.
//! Errors are clipped at the band before they move level, trend and profile, so one outlier
//! neither drags the forecast nor blinds the band; several outside errors in a row on one side
//! are a level shift and are adopted. After a surprise the band widens, by a capped amount
//! that decays over some hundred samples (volatility clusters: one burst raises one alarm,
//! and a huge outlier widens it no more than a moderate one), missed scrapes widen it, a long gap re-anchors the level, and the
//! band never drops below 2 % of the level. The model also keeps the range of the
//! deseasonalised values it has seen (the value less the seasonal offset the forecast
//! applies): once that range has seen 300 samples, a value outside it (by more than 1 % of its
//! width) that is also off the forecast by half the interval's half-width scores at least 4,
//! as a far outlier: a new extreme is an anomaly even when the band, widened by earlier noise,
//! would call it ordinary. Two more rules shape the score only: a raw value repeated exactly 12
//! times in a row in a series that repeats on fewer than 10 % of samples is *stuck* (a frozen
//! exporter, a counter that stopped) and scores 4 once, on the 12th repeat; and surprises (scores
//! of 2 or more) within 30 minutes of the first are one episode, and an episode that starts a
//! day after the previous one, give or take 30 minutes, for the second time in a row or more,
//! is *routine* (a daily job): its surprises score at most 1.
//! Counters are turned into per-second rates (a drop is a reset). [`Params`] holds what a fitter may estimate; [`Model`] only the online state.
//!
//! How the pipeline uses it:
//! ```
//! use omen::model::{Kind, Model, ModelSettings, Outcome, Params};
//!
//! let params = Params::new(&ModelSettings::default()); // once per rule (or fitted per series)
//! let mut model = Model::new(Kind::Gauge);             // once per series
//! for (ts_ms, v) in [(0, 1.0), (15_000, 1.2)] {
//!     let mut tentative = model;                       // copy, update, write back on commit
//!     match tentative.update(&params, ts_ms, v) {
//!         Outcome::Scored(f) => { let _ = (f.score, f.forecast, f.lower, f.upper); }
//!         Outcome::Stale => { /* emit stale markers on the derived series */ }
//!         Outcome::Warming | Outcome::Ignored => { /* emit nothing */ }
//!     }
//!     model = tentative;
//! }
//! ```

mod params;
mod season;
mod state;
#[cfg(test)]
mod tests;

pub use params::{ModelSettings, Params, SeasonSpec};
pub use season::{COARSE_BUCKETS, FINE_BUCKETS};
pub use state::{Model, ModelRecord};

/// Prometheus's stale marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True if `v` is Prometheus's stale marker (compared by bits; an ordinary NaN is not one).
#[inline]
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// How a series' values are modeled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Modeled as is.
    Gauge,
    /// Modeled as a per-second rate of increase; a drop is a counter reset.
    Counter,
}

/// The one-step-ahead forecast for a sample and how far the sample is from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// ≥ 0: 0 = exactly as forecast, 1 = at the edge of the interval, > 1 outside, growing
    /// linearly with the distance.
    pub score: f64,
    /// The forecast (per-second rate for counters).
    pub forecast: f64,
    /// Lower edge of the prediction interval at the rule's confidence.
    pub lower: f64,
    /// Upper edge of the prediction interval.
    pub upper: f64,
}

/// What one [`Model::update`] yields, i.e. what the caller emits for this sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Derived samples at the sample's timestamp.
    Scored(Forecast),
    /// Warming up (or re-anchoring after a long gap): emit nothing.
    Warming,
    /// A stale marker on a series that has emitted: emit stale markers on its derived series.
    Stale,
    /// Not modeled (timestamp not after the last one, or a non-finite value): emit nothing.
    Ignored,
}
