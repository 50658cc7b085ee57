//! Estimating one series' parameters from its compact history with augurs: the season length
//! (`augurs::seasons` periodogram, refined by autocorrelation), the seasonal profile (an
//! `augurs::mstl` decomposition with a naive trend, mapped onto the model's fine buckets) and
//! the smoothing constants (a grid of fixed-parameter `augurs::ets` models, best by AICc).
//!
//! Pure: a slice of bucket means in, an [`Estimate`] out. No locks, no clocks.

use augurs::ets::model::{
    ErrorComponent, ModelType, Params as EtsParams, SeasonalComponent, TrendComponent, Unfit,
};
use augurs::mstl::MSTLModel;
use augurs::seasons::PeriodogramDetector;
use augurs::Fit;

use crate::model::FINE_BUCKETS;

const DAY_MS: i64 = 86_400_000;
/// Fewest observed buckets a fit needs.
pub const MIN_POINTS: usize = 72;
/// Shortest season worth a profile, in history buckets (the fine profile has 24 buckets; a
/// season much shorter than 24 history buckets cannot be mapped onto it).
const MIN_PERIOD: usize = 12;
/// A season is kept only if deseasonalising with the model's own profile lowers the one-step
/// mean squared error of the best ETS model by at least this factor.
const SEASON_GAIN: f64 = 0.75;
/// Level smoothing candidates (per history bucket).
const ALPHAS: [f64; 5] = [0.05, 0.12, 0.25, 0.5, 0.8];
/// Optimiser iterations for the initial states (the smoothing constants are fixed).
const MAX_ITERATIONS: usize = 60;
/// The damped-trend candidate: trend smoothing as a fraction of alpha, and the damping.
const TREND_BETA_RATIO: f64 = 0.1;
const TREND_PHI: f64 = 0.9;

/// What the fit found, in history-bucket units (the caller maps it to per-sample values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Season length in ms, if a season lowers the forecast error.
    pub season_ms: Option<i64>,
    /// Zero-mean additive offsets at the centres of the model's fine profile buckets (zeros
    /// without a season).
    pub profile: [f64; FINE_BUCKETS],
    /// Level smoothing per history bucket.
    pub alpha: f64,
    /// Trend smoothing as a fraction of `alpha` (0 = no trend).
    pub beta_ratio: f64,
    /// Trend damping per history bucket (0 = no trend).
    pub phi: f64,
    /// One-step mean squared error of the chosen model on the history.
    pub mse: f64,
    /// The same without the season (equal to `mse` when no season was kept).
    pub mse_plain: f64,
}

/// Why a history could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EstimateError {
    #[error("too few observed buckets ({0})")]
    TooShort(usize),
    #[error("too many gaps ({0} of {1} buckets empty)")]
    TooSparse(usize, usize),
    #[error("no ETS model could be fitted")]
    NoModel,
}

/// Estimates parameters from `values`, one mean per history bucket in time order (NaN = no
/// sample in that bucket); `start_ms` is the start of the first bucket, `bucket_ms` their width.
///
/// # Errors
/// Too little or too sparse history, or no ETS model fitted.
pub fn estimate(values: &[f64], start_ms: i64, bucket_ms: i64) -> Result<Estimate, EstimateError> {
    let first = values
        .iter()
        .position(|v| v.is_finite())
        .unwrap_or(values.len());
    let values = &values[first..];
    let start_ms = start_ms + first as i64 * bucket_ms;
    let observed = values.iter().filter(|v| v.is_finite()).count();
    if observed < MIN_POINTS {
        return Err(EstimateError::TooShort(observed));
    }
    if observed * 5 < values.len() * 4 {
        return Err(EstimateError::TooSparse(
            values.len() - observed,
            values.len(),
        ));
    }
    let y = fill_gaps(values);
    let plain = best_ets(&y).ok_or(EstimateError::NoModel)?;
    let mut best = Estimate {
        season_ms: None,
        profile: [0.0; FINE_BUCKETS],
        alpha: plain.alpha,
        beta_ratio: plain.beta_ratio,
        phi: plain.phi,
        mse: plain.mse,
        mse_plain: plain.mse,
    };
    let Some(period) = season_length(&y) else {
        return Ok(best);
    };
    let season_ms = snap(period as i64 * bucket_ms);
    let Some(profile) = seasonal_profile(&y, period, start_ms, bucket_ms, season_ms) else {
        return Ok(best);
    };
    let deseasonalised: Vec<f64> = y
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let centre = start_ms + i as i64 * bucket_ms + bucket_ms / 2;
            v - profile_at(&profile, centre, season_ms)
        })
        .collect();
    if let Some(fit) = best_ets(&deseasonalised) {
        if fit.mse < SEASON_GAIN * plain.mse {
            best = Estimate {
                season_ms: Some(season_ms),
                profile,
                alpha: fit.alpha,
                beta_ratio: fit.beta_ratio,
                phi: fit.phi,
                mse: fit.mse,
                mse_plain: plain.mse,
            };
        }
    }
    Ok(best)
}

/// The strongest period of `y` in buckets, if any has two full cycles in the history: the
/// periodogram's peaks (max period = half the history), each refined to the lag with the
/// highest autocorrelation between its neighbouring periodogram periods.
fn season_length(y: &[f64]) -> Option<usize> {
    let max_period = y.len() / 2;
    if max_period <= MIN_PERIOD {
        return None;
    }
    let detector = PeriodogramDetector::builder()
        .min_period(MIN_PERIOD as u32)
        .max_period(max_period as u32 + 1)
        .build();
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let centred: Vec<f64> = y.iter().map(|v| v - mean).collect();
    // Centred: an offset leaks into the longest periods and can hide the real peak.
    let periodogram = detector.periodogram(&centred);
    let var = centred.iter().map(|v| v * v).sum::<f64>();
    if var.is_nan() || var <= 0.0 {
        return None;
    }
    let acf = |lag: usize| -> f64 {
        centred[lag..]
            .iter()
            .zip(&centred)
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / var
    };
    // The three strongest peaks, refined; keep the lag with the best autocorrelation.
    let mut peaks: Vec<_> = periodogram.peaks(0.5).collect();
    peaks.reverse();
    peaks
        .iter()
        .take(3)
        .filter_map(|p| {
            let lo = (p.next_period.max(MIN_PERIOD as u32) as usize).max(MIN_PERIOD);
            let hi = if p.prev_period == 0 {
                max_period
            } else {
                (p.prev_period as usize).min(max_period)
            };
            (lo..=hi.max(lo))
                .filter(|&lag| lag <= max_period)
                .map(|lag| (lag, acf(lag)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
        })
        .filter(|&(_, r)| r > 0.2)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(lag, r)| {
            // A multiple of the true period correlates as well as the period itself: take
            // the shortest whole fraction of the lag that correlates nearly as well.
            (2..=lag / MIN_PERIOD)
                .rev()
                .map(|k| ((lag as f64 / k as f64).round() as usize, k))
                .filter(|&(l, _)| l >= MIN_PERIOD)
                .find_map(|(l, _)| {
                    let near = (l.saturating_sub(2).max(MIN_PERIOD)..=l + 2)
                        .map(|l| (l, acf(l)))
                        .max_by(|a, b| a.1.total_cmp(&b.1))?;
                    // ...and is a period, not just smoothness: half a period later the
                    // series is far from itself.
                    let half = acf((near.0 / 2).max(1));
                    (near.1 >= 0.9 * r && half < 0.5 * near.1).then_some(near.0)
                })
                .unwrap_or(lag)
        })
}

/// A season within 5 % of a day is a day (the periodogram's resolution is coarse and daily
/// seasons are the common case); others are kept as measured.
fn snap(ms: i64) -> i64 {
    if (ms - DAY_MS).abs() * 20 <= DAY_MS {
        DAY_MS
    } else {
        ms
    }
}

/// The seasonal component of an MSTL decomposition (naive trend) mapped onto the fine
/// profile: each profile bucket's value is the mean seasonal component over the history
/// buckets whose centre falls nearest to its centre; then centred to zero mean.
fn seasonal_profile(
    y: &[f64],
    period: usize,
    start_ms: i64,
    bucket_ms: i64,
    season_ms: i64,
) -> Option<[f64; FINE_BUCKETS]> {
    if y.len() < 2 * period {
        return None;
    }
    let fitted = MSTLModel::naive(vec![period]).fit(y).ok()?;
    let seasonal = fitted.fit().seasonal().first()?;
    let mut sum = [0.0; FINE_BUCKETS];
    let mut count = [0u32; FINE_BUCKETS];
    for (i, s) in seasonal.iter().enumerate() {
        let centre = start_ms + i as i64 * bucket_ms + bucket_ms / 2;
        let pos = centre.rem_euclid(season_ms) as f64 / season_ms as f64;
        let b = ((pos * FINE_BUCKETS as f64) as usize).min(FINE_BUCKETS - 1);
        sum[b] += f64::from(*s);
        count[b] += 1;
    }
    if count.contains(&0) {
        return None;
    }
    let mut profile = [0.0; FINE_BUCKETS];
    for b in 0..FINE_BUCKETS {
        profile[b] = sum[b] / f64::from(count[b]);
    }
    let mean = profile.iter().sum::<f64>() / FINE_BUCKETS as f64;
    profile.iter_mut().for_each(|p| *p -= mean);
    Some(profile)
}

/// The profile's value at `ts_ms`, interpolated between bucket centres as the model does.
pub fn profile_at(profile: &[f64; FINE_BUCKETS], ts_ms: i64, season_ms: i64) -> f64 {
    let pos = ts_ms.rem_euclid(season_ms) as f64 / season_ms as f64;
    let x = pos * FINE_BUCKETS as f64 - 0.5;
    let fl = x.floor();
    let w1 = x - fl;
    let i0 = (fl as i64).rem_euclid(FINE_BUCKETS as i64) as usize;
    let i1 = (i0 + 1) % FINE_BUCKETS;
    (1.0 - w1) * profile[i0] + w1 * profile[i1]
}

/// The winner of the ETS grid.
#[derive(Debug, Clone, Copy)]
struct Smoothing {
    alpha: f64,
    beta_ratio: f64,
    phi: f64,
    mse: f64,
}

/// Fits a small grid of fixed-parameter `augurs::ets` models (only their initial states
/// are optimised) and keeps the lowest AICc: level-only (ANN) models over [`ALPHAS`], then
/// one damped-trend (AAdN) model at the best alpha, kept if its AICc is lower. AutoETS
/// would search the same space more finely, but its fitted parameters are private and it
/// costs far more (REFERENCE: 42 ms at 1,000 points); a trend model costs about ten
/// level-only ones, hence only one.
fn best_ets(y: &[f64]) -> Option<Smoothing> {
    let fit = |alpha: f64, trend: bool| -> Option<(f64, Smoothing)> {
        let (trend_component, beta, phi) = if trend {
            (
                TrendComponent::Additive,
                alpha * TREND_BETA_RATIO,
                TREND_PHI,
            )
        } else {
            (TrendComponent::None, f64::NAN, f64::NAN)
        };
        let model_type = ModelType {
            error: ErrorComponent::Additive,
            trend: trend_component,
            season: SeasonalComponent::None,
        };
        let model = Unfit::new(model_type)
            .damped(trend)
            .params(EtsParams {
                alpha,
                beta,
                gamma: f64::NAN,
                phi,
            })
            .max_iterations(MAX_ITERATIONS)
            .fit(y)
            .ok()?;
        let (aicc, mse) = (model.aicc(), model.mse());
        (aicc.is_finite() && mse.is_finite()).then_some((
            aicc,
            Smoothing {
                alpha,
                beta_ratio: if trend { TREND_BETA_RATIO } else { 0.0 },
                phi: if trend { TREND_PHI } else { 0.0 },
                mse,
            },
        ))
    };
    let level = ALPHAS
        .iter()
        .filter_map(|&a| fit(a, false))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let trend = level.and_then(|(_, s)| fit(s.alpha, true));
    match (level, trend) {
        (Some(l), Some(t)) if t.0 < l.0 => Some(t.1),
        (Some(l), _) => Some(l.1),
        (None, t) => t.map(|t| t.1),
    }
}

/// Linear interpolation over NaN buckets (the ends take the nearest observed value).
fn fill_gaps(values: &[f64]) -> Vec<f64> {
    let mut out = values.to_vec();
    let mut last: Option<usize> = None;
    for i in 0..out.len() {
        if !out[i].is_finite() {
            continue;
        }
        match last {
            Some(j) if i > j + 1 => {
                let (a, b) = (out[j], out[i]);
                for (k, v) in out.iter_mut().enumerate().take(i).skip(j + 1) {
                    *v = a + (b - a) * (k - j) as f64 / (i - j) as f64;
                }
            }
            None => out[..i].iter_mut().for_each(|v| *v = values[i]),
            _ => {}
        }
        last = Some(i);
    }
    if let Some(j) = last {
        let v = out[j];
        out[j + 1..].iter_mut().for_each(|x| *x = v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET: i64 = 600_000;

    fn noise(i: usize) -> f64 {
        // A deterministic pseudo-random value in [-1, 1).
        let x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    fn daily(i: usize) -> f64 {
        let t = (i as i64 * BUCKET + BUCKET / 2) as f64 / DAY_MS as f64;
        100.0 + 30.0 * (2.0 * std::f64::consts::PI * t).sin()
    }

    #[test]
    fn a_daily_pattern_gets_a_daily_season_and_its_profile() {
        let n = 4 * 144;
        let y: Vec<f64> = (0..n).map(|i| daily(i) + 2.0 * noise(i)).collect();
        let started = std::time::Instant::now();
        let e = estimate(&y, 0, BUCKET).unwrap();
        eprintln!("{e:?} in {:?}", started.elapsed());
        assert_eq!(e.season_ms, Some(DAY_MS));
        for (b, p) in e.profile.iter().enumerate() {
            let centre = (b as f64 + 0.5) / FINE_BUCKETS as f64;
            let truth = 30.0 * (2.0 * std::f64::consts::PI * centre).sin();
            assert!((p - truth).abs() < 3.0, "bucket {b}: {p} vs {truth}");
        }
        assert!(e.mse < SEASON_GAIN * e.mse_plain, "{e:?}");
    }

    #[test]
    fn a_flat_series_gets_no_season() {
        let y: Vec<f64> = (0..4 * 144).map(|i| 50.0 + 3.0 * noise(i)).collect();
        let e = estimate(&y, 0, BUCKET).unwrap();
        assert_eq!(e.season_ms, None, "{e:?}");
        assert_eq!(e.profile, [0.0; FINE_BUCKETS]);
    }

    #[test]
    fn a_six_hour_cycle_is_found_with_gaps() {
        let mut y: Vec<f64> = (0..3 * 144)
            .map(|i| {
                let t = (i as i64 * BUCKET) as f64 / (6 * 3_600_000) as f64;
                10.0 + 5.0 * (2.0 * std::f64::consts::PI * t).cos() + 0.2 * noise(i)
            })
            .collect();
        for i in (5..y.len()).step_by(17) {
            y[i] = f64::NAN;
        }
        let e = estimate(&y, 0, BUCKET).unwrap();
        assert_eq!(e.season_ms, Some(6 * 3_600_000), "{e:?}");
    }

    #[test]
    fn short_or_sparse_histories_are_refused() {
        assert_eq!(
            estimate(&[1.0; 10], 0, BUCKET),
            Err(EstimateError::TooShort(10))
        );
        let sparse: Vec<f64> = (0..200)
            .map(|i| if i % 2 == 0 { 1.0 } else { f64::NAN })
            .collect();
        assert!(matches!(
            estimate(&sparse, 0, BUCKET),
            Err(EstimateError::TooSparse(..))
        ));
    }

    #[test]
    fn gaps_are_interpolated() {
        let v = [f64::NAN, 1.0, f64::NAN, f64::NAN, 4.0, f64::NAN];
        assert_eq!(fill_gaps(&v), vec![1.0, 1.0, 2.0, 3.0, 4.0, 4.0]);
    }
}
