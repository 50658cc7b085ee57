//! Model parameters: everything a background fitter (augurs, or a Spark job) may estimate per
//! series, kept apart from the online state so fitted values can be swapped in later.

use std::time::Duration;

use crate::config::{RuleConfig, Seasonality};

const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;
/// Default quantile miss rate of the tracked band.
const TAIL: f64 = 0.002;

/// The settings a rule gives the model, in plain form (built from a [`RuleConfig`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// Two-sided confidence of the prediction interval, in (0.5, 1).
    pub confidence: f64,
    /// Samples seen before anything is emitted.
    pub warmup: u32,
    /// Season lengths to model; see [`SeasonSpec`].
    pub seasonality: SeasonSpec,
}

/// Which seasonal profiles a model keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum SeasonSpec {
    /// Daily and weekly profiles; each only takes part in the forecast once it has shown that it
    /// lowers the one-step error of this series (an online gate, until a fitter decides).
    Auto,
    /// No seasonality: level and damped trend only.
    None,
    /// Explicit season lengths. The shortest gets the fine profile (24 interpolated buckets),
    /// the next the coarse one (7 step buckets); longer ones are ignored.
    Periods(Vec<Duration>),
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            confidence: 0.99,
            warmup: 30,
            seasonality: SeasonSpec::Auto,
        }
    }
}

impl From<&RuleConfig> for ModelSettings {
    fn from(rule: &RuleConfig) -> Self {
        let seasonality = match &rule.seasonality {
            Seasonality::Auto => SeasonSpec::Auto,
            Seasonality::None => SeasonSpec::None,
            Seasonality::Periods(p) => SeasonSpec::Periods(p.clone()),
        };
        ModelSettings {
            confidence: rule.confidence,
            warmup: rule.warmup,
            seasonality,
        }
    }
}

/// Parameters of one model: smoothing constants, season lengths, scale handling and the
/// interval width. `Copy` and small, so a fitter can hand a per-series value to the hot path.
///
/// All rates are per sample; time enters through the sample timestamps (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Level smoothing, in (0, 1].
    pub alpha: f64,
    /// Trend smoothing (as a fraction of `alpha`), in [0, 1).
    pub beta: f64,
    /// Trend damping per step, in [0, 1]; 0 disables the trend.
    pub phi: f64,
    /// Smoothing of the fine (e.g. daily) seasonal profile.
    pub gamma_fine: f64,
    /// Smoothing of the coarse (e.g. weekly) seasonal profile.
    pub gamma_coarse: f64,
    /// Length of the fine season in ms (0 = none); 24 interpolated buckets.
    pub season_fine_ms: i64,
    /// Shape of the fine profile between bucket centres: 0 = linear, 1 = steps at the bucket
    /// boundaries.
    pub fine_sharpness: f64,
    /// Length of the coarse season in ms (0 = none); 7 step buckets.
    pub season_coarse_ms: i64,
    /// Apply a profile to the forecast only when it lowers the tracked error (season "auto").
    pub season_gate: bool,
    /// Smoothing of the error means that decide the season gate.
    pub scale_rate: f64,
    /// Log-step of the band tracker when an error falls outside the band; inside, the band
    /// shrinks by `band_rate * tail / (1 - tail)`, so in equilibrium a fraction `tail` of the
    /// errors falls outside: the band is an online quantile of the absolute one-step error.
    /// A single outlier widens it by a bounded factor, whatever its size.
    pub band_rate: f64,
    /// Fraction of errors the tracked band leaves outside (a far quantile, tracked the same
    /// way for every rule so scores rank alike whatever the confidence).
    pub tail: f64,
    /// After an error outside the band, the band widens by
    /// `shock_gain * min(ln(error / band), shock_cap)` (times the band)...
    pub shock_gain: f64,
    /// ...where the log-ratio is capped, so a huge outlier widens the band no more than a
    /// moderate one and cannot blind it to the next anomaly...
    pub shock_cap: f64,
    /// ...and the widening decays by this factor per sample (slowly: repeated surprises in a
    /// burst are scored against a wider band, so one event does not raise many alarms).
    pub shock_decay: f64,
    /// Errors are clipped at this many band half-widths before they update level, trend and
    /// season, so one outlier does not drag the forecast.
    pub clip: f64,
    /// After this many consecutive outside-the-band errors on the same side, the level jumps
    /// to the data: a real level shift is adopted.
    pub adopt_after: u8,
    /// Scale floor relative to the magnitude of the level.
    pub rel_floor: f64,
    /// Absolute scale floor.
    pub abs_floor: f64,
    /// Interval half-width at the rule's confidence, as a fraction of the tracked band:
    /// `ln(1 / (1 - confidence)) / ln(1 / tail)`, the ratio of the two quantiles of a Laplace
    /// (heavy-tailed) error. The score is the distance in these half-widths.
    pub width: f64,
    /// Samples before anything is emitted.
    pub warmup: u32,
    /// Derived: `exp(band_rate)`, the band's growth on an outside error.
    pub band_grow: f64,
    /// Derived: `exp(-band_rate * tail / (1 - tail))`, its shrink on an inside one.
    pub band_shrink: f64,
    /// A gap longer than this many typical intervals restarts level and trend.
    pub gap_reset_steps: f64,
    /// How long a stale series keeps its model before it may be retired (ms).
    pub stale_grace_ms: i64,
}

impl Params {
    /// Default parameters for the given rule settings; they work without any fitting.
    pub fn new(settings: &ModelSettings) -> Params {
        let (fine, coarse, gate) = match &settings.seasonality {
            SeasonSpec::Auto => (DAY_MS, WEEK_MS, true),
            SeasonSpec::None => (0, 0, false),
            SeasonSpec::Periods(ps) => {
                let mut ms: Vec<i64> = ps
                    .iter()
                    .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
                    .collect();
                ms.sort_unstable();
                (
                    ms.first().copied().unwrap_or(0),
                    ms.get(1).copied().unwrap_or(0),
                    false,
                )
            }
        };
        let confidence = settings.confidence.clamp(0.5, 0.999_999);
        let mut params = Params {
            alpha: 0.5,
            beta: 0.05,
            phi: 0.9,
            gamma_fine: 0.1,
            gamma_coarse: 0.005,
            season_fine_ms: fine,
            season_coarse_ms: coarse,
            fine_sharpness: 0.0,
            season_gate: gate,
            scale_rate: 0.02,
            band_rate: 0.2,
            tail: TAIL,
            clip: 1.0,
            shock_gain: 1.0,
            shock_cap: 0.5,
            shock_decay: 0.99,
            adopt_after: 4,
            rel_floor: 0.02,
            abs_floor: 1e-9,
            width: (1.0 - confidence).ln() / TAIL.ln(),
            warmup: settings.warmup,
            gap_reset_steps: 100.0,
            stale_grace_ms: 5 * 60_000,
            band_grow: 0.0,
            band_shrink: 0.0,
        };
        params.derive();
        params
    }

    /// Recomputes the derived fields after a change of `band_rate` or `tail`.
    pub fn derive(&mut self) {
        self.band_grow = self.band_rate.exp();
        self.band_shrink = (-self.band_rate * self.tail / (1.0 - self.tail)).exp();
    }
}

impl Params {
    /// Overrides one parameter by name (`alpha`, `clip`, ...), for experiments such as
    /// `omen replay --set alpha=0.3`.
    ///
    /// # Errors
    /// An unknown name or a value that does not parse.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let num = || {
            value
                .parse::<f64>()
                .map_err(|_| format!("{name}: {value:?} is not a number"))
        };
        match name {
            "alpha" => self.alpha = num()?,
            "beta" => self.beta = num()?,
            "phi" => self.phi = num()?,
            "gamma_fine" => self.gamma_fine = num()?,
            "gamma_coarse" => self.gamma_coarse = num()?,
            "season_fine_ms" => self.season_fine_ms = num()? as i64,
            "season_coarse_ms" => self.season_coarse_ms = num()? as i64,
            "fine_sharpness" => self.fine_sharpness = num()?,
            "season_gate" => self.season_gate = num()? != 0.0,
            "scale_rate" => self.scale_rate = num()?,
            "clip" => self.clip = num()?,
            "band_rate" => self.band_rate = num()?,
            "tail" => self.tail = num()?,
            "shock_gain" => self.shock_gain = num()?,
            "shock_cap" => self.shock_cap = num()?,
            "shock_decay" => self.shock_decay = num()?,
            "adopt_after" => self.adopt_after = num()? as u8,
            "rel_floor" => self.rel_floor = num()?,
            "abs_floor" => self.abs_floor = num()?,
            "width" => self.width = num()?,
            "warmup" => self.warmup = num()? as u32,
            "gap_reset_steps" => self.gap_reset_steps = num()?,
            "stale_grace_ms" => self.stale_grace_ms = num()? as i64,
            _ => return Err(format!("unknown model parameter {name:?}")),
        }
        self.derive();
        Ok(())
    }
}

impl Default for Params {
    fn default() -> Self {
        Params::new(&ModelSettings::default())
    }
}
