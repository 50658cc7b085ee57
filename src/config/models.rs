//! The `models:` section: which series are modeled (rules, first match wins), with what
//! settings, what the derived series are called, and the background fitting budget.

use std::path::Path;
use std::time::Duration;

use super::raw::{RawModels, RawRule, RawSeasonality};
use super::{duration, key_err, parse_duration, positive, size, KeyError};
use crate::persist::ImportConfig;
use crate::selector::Selector;

/// The validated `models:` section. No rules = nothing is modeled.
#[derive(Debug, Clone)]
pub struct ModelsConfig {
    /// Models kept at once; the least recently used is evicted beyond this.
    pub max_series: usize,
    pub rules: Vec<RuleConfig>,
    pub names: Names,
    pub fit: FitConfig,
    /// Per-series parameters and states from model files (the learning core's output).
    pub import: Option<ImportConfig>,
}

/// One modeling rule.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    pub selector: Selector,
    /// Two-sided confidence of the prediction interval, in (0, 1).
    pub confidence: f64,
    pub outputs: Outputs,
    /// Samples seen before anything is emitted.
    pub warmup: u32,
    pub seasonality: Seasonality,
    /// Also model classic-histogram `_bucket` series (off by default: many series, and
    /// their rates are better read through the histogram's quantiles).
    pub histogram_buckets: bool,
}

/// Which derived series a rule emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outputs {
    pub score: bool,
    pub forecast: bool,
    /// `lower` and `upper`.
    pub bounds: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Seasonality {
    /// Detected by the background fitter.
    Auto,
    None,
    Periods(Vec<Duration>),
}

/// Names of the derived series and of the label that carries the original metric name.
#[derive(Debug, Clone, PartialEq)]
pub struct Names {
    pub score: String,
    pub forecast: String,
    pub lower: String,
    pub upper: String,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct FitConfig {
    pub threads: usize,
    /// Fraction of one core the fitting workers may use in total.
    pub cpu_budget: f64,
    /// Bound on the memory of all fit histories together.
    pub history_bytes: u64,
}

pub(super) fn build(raw: RawModels, base: &Path) -> Result<ModelsConfig, KeyError> {
    let max_series = positive(raw.max_series, 1_000_000, "models.max_series")?;
    let rules = raw
        .rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| build_rule(r, &format!("models.rules[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let n = raw.names;
    let names = Names {
        score: metric_name(n.score, "anomaly_score", "models.names.score")?,
        forecast: metric_name(n.forecast, "anomaly_forecast", "models.names.forecast")?,
        lower: metric_name(n.lower, "anomaly_forecast_lower", "models.names.lower")?,
        upper: metric_name(n.upper, "anomaly_forecast_upper", "models.names.upper")?,
        label: label_name(n.label, "for", "models.names.label")?,
    };
    let fit = FitConfig {
        threads: positive(raw.fit.threads, 1, "models.fit.threads")?,
        cpu_budget: match raw.fit.cpu_budget.unwrap_or(0.25) {
            b if b > 0.0 && b <= 64.0 => b,
            _ => {
                return Err(key_err(
                    "models.fit.cpu_budget",
                    "must be a fraction of a core in (0, 64]",
                ))
            }
        },
        history_bytes: size(
            raw.fit.history_bytes.as_deref(),
            "256MiB",
            "models.fit.history_bytes",
        )?,
    };
    let import = match raw.import {
        None => None,
        Some(i) => {
            if i.path.is_empty() {
                return Err(key_err("models.import.path", "must not be empty"));
            }
            let poll_interval = duration(
                i.poll_interval.as_deref(),
                "30s",
                "models.import.poll_interval",
            )?;
            if poll_interval < Duration::from_secs(1) {
                return Err(key_err(
                    "models.import.poll_interval",
                    "must be at least 1s",
                ));
            }
            Some(ImportConfig {
                path: base.join(i.path),
                poll_interval,
                max_series: positive(i.max_series, max_series as u64, "models.import.max_series")?,
            })
        }
    };
    Ok(ModelsConfig {
        max_series,
        rules,
        names,
        fit,
        import,
    })
}

fn build_rule(r: RawRule, key: &str) -> Result<RuleConfig, KeyError> {
    let selector = Selector::parse(&r.selector).map_err(|e| key_err(format!("{key}.match"), e))?;
    let confidence = r.confidence.unwrap_or(0.99);
    if !(confidence > 0.5 && confidence < 1.0) {
        return Err(key_err(format!("{key}.confidence"), "must be in (0.5, 1)"));
    }
    let mut outputs = Outputs {
        score: false,
        forecast: false,
        bounds: false,
    };
    for (i, o) in r
        .outputs
        .unwrap_or_else(|| vec!["score".into()])
        .iter()
        .enumerate()
    {
        match o.as_str() {
            "score" => outputs.score = true,
            "forecast" => outputs.forecast = true,
            "bounds" => outputs.bounds = true,
            other => {
                return Err(key_err(
                    format!("{key}.outputs[{i}]"),
                    format!("unknown output {other:?} (score, forecast, bounds)"),
                ))
            }
        }
    }
    if outputs
        == (Outputs {
            score: false,
            forecast: false,
            bounds: false,
        })
    {
        return Err(key_err(
            format!("{key}.outputs"),
            "must name at least one output",
        ));
    }
    let warmup = r.warmup.unwrap_or(30);
    let warmup =
        u32::try_from(warmup).map_err(|_| key_err(format!("{key}.warmup"), "too large"))?;
    let seasonality = match r.seasonality {
        None => Seasonality::Auto,
        Some(RawSeasonality::Word(w)) if w == "auto" => Seasonality::Auto,
        Some(RawSeasonality::Word(w)) if w == "none" => Seasonality::None,
        Some(RawSeasonality::Word(w)) => {
            return Err(key_err(
                format!("{key}.seasonality"),
                format!("{w:?}: expected auto, none or a list of periods"),
            ))
        }
        Some(RawSeasonality::Periods(ps)) => {
            let mut periods = Vec::new();
            for (i, p) in ps.iter().enumerate() {
                let d =
                    parse_duration(p).map_err(|e| key_err(format!("{key}.seasonality[{i}]"), e))?;
                if d < Duration::from_secs(60) {
                    return Err(key_err(
                        format!("{key}.seasonality[{i}]"),
                        "a season must be at least 1m",
                    ));
                }
                periods.push(d);
            }
            if periods.is_empty() {
                Seasonality::None
            } else {
                Seasonality::Periods(periods)
            }
        }
    };
    Ok(RuleConfig {
        selector,
        confidence,
        outputs,
        warmup,
        seasonality,
        histogram_buckets: r.histogram_buckets.unwrap_or(false),
    })
}

fn metric_name(v: Option<String>, default: &str, key: &str) -> Result<String, KeyError> {
    let v = v.unwrap_or_else(|| default.to_string());
    if crate::wire::valid_metric_name(v.as_bytes()) {
        Ok(v)
    } else {
        Err(key_err(key, format!("{v:?} is not a valid metric name")))
    }
}

fn label_name(v: Option<String>, default: &str, key: &str) -> Result<String, KeyError> {
    let v = v.unwrap_or_else(|| default.to_string());
    if crate::wire::valid_label_name(v.as_bytes()) && !v.starts_with("__") {
        Ok(v)
    } else {
        Err(key_err(key, format!("{v:?} is not a valid label name")))
    }
}
