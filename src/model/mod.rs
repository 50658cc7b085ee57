//! The per-series online forecasting model: pure (no protobuf, HTTP, files or wall clock; model
//! time is the sample timestamp in ms), O(1) per sample, a small `Copy` state per series.
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
