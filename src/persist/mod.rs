//! Model persistence (DESIGN §3.5): the models are snapshotted to an Arrow IPC file
//! periodically and at graceful shutdown, and restored at start, so a restart does not
//! relearn them. A snapshot never blocks requests: it copies one shard at a time and
//! streams record batches to a temporary file that replaces the previous one atomically.

mod file;
pub mod history;
pub mod import;
pub mod schema;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use file::{read, SnapshotError, Writer};
pub use import::ImportConfig;
pub use schema::{Row, SeriesParams};

use crate::derive::Models;
use crate::fit::Fitted;
use crate::metrics::Metrics;
use crate::model::Model;

/// Rows per record batch.
const BATCH_ROWS: usize = 8192;

/// What to do with a snapshot that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCorrupt {
    /// Log loudly, count, and start with no models: blocking ingestion is worse than
    /// relearning.
    StartEmpty,
    /// Refuse to start.
    Refuse,
}

/// The `persistence:` section.
#[derive(Debug, Clone)]
pub struct PersistConfig {
    pub path: PathBuf,
    pub interval: Duration,
    pub on_corrupt: OnCorrupt,
    /// The fit histories for the learning core (`persistence.export`).
    pub export: Option<ExportConfig>,
}

/// The `persistence.export:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// The history file (Arrow IPC, the learning core's input schema).
    pub path: PathBuf,
    /// How often it is rewritten (it is also written at graceful shutdown).
    pub interval: Duration,
}

/// Writes every model to `path`; returns (series, bytes).
///
/// # Errors
/// The write failed; the previous snapshot is left in place.
pub fn snapshot(
    models: &Models,
    path: &Path,
    metrics: &Metrics,
) -> Result<(u64, u64), SnapshotError> {
    let started = Instant::now();
    let result = write_all(models, path);
    match &result {
        Ok((series, bytes)) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            metrics.snapshot_last_success.set(now);
            metrics
                .snapshot_duration
                .set(started.elapsed().as_secs_f64());
            metrics.snapshot_bytes.set(*bytes as i64);
            metrics.snapshot_series.set(*series as i64);
            tracing::info!(file = %path.display(), series, bytes, elapsed = ?started.elapsed(), "snapshot written");
        }
        Err(e) => {
            metrics.snapshot_failures.inc();
            tracing::error!(error = %e, "snapshot failed; the previous one stays in place");
        }
    }
    result
}

fn write_all(models: &Models, path: &Path) -> Result<(u64, u64), SnapshotError> {
    let mut writer = Writer::create(path)?;
    for shard in 0..models.shards() {
        let entries = models.entries(shard);
        for chunk in entries.chunks(BATCH_ROWS) {
            let rows: Vec<Row> = chunk
                .iter()
                .map(|(key, rule, m)| Row {
                    key: *key,
                    rule: *rule,
                    state: m.to_record(),
                    params: models
                        .fitter()
                        .adopted(*key)
                        .map_or_else(SeriesParams::default, |f| fitted_params(&f)),
                })
                .collect();
            writer.push(&rows)?;
        }
    }
    writer.commit()
}

/// A background fit as a snapshot row's parameters: the smoothing constants and the fine
/// season the fit decided (0 = none; applied only under `seasonality: auto`, as the fit is).
fn fitted_params(f: &Fitted) -> SeriesParams {
    SeriesParams {
        alpha: Some(f.alpha),
        beta: Some(f.beta),
        phi: Some(f.phi),
        season_fine_ms: Some(f.season_ms),
        ..SeriesParams::default()
    }
}

/// The fit a snapshot row recorded, if any. The profile is not needed: it was seeded into
/// the state when the fit was adopted.
fn fitted_of(p: &SeriesParams) -> Option<Fitted> {
    let fitted = Fitted {
        alpha: p.alpha?,
        beta: p.beta?,
        phi: p.phi?,
        season_ms: p.season_fine_ms.unwrap_or(0),
        profile: [0.0; crate::model::FINE_BUCKETS],
    };
    p.check().ok().map(|()| fitted)
}

/// Restores the models from `path` if it exists. A missing file is a first start.
///
/// # Errors
/// With [`OnCorrupt::Refuse`], a file that cannot be read. With
/// [`OnCorrupt::StartEmpty`] the problem is logged and counted, the models are emptied
/// and `Ok(0)` is returned.
pub fn restore(
    models: &Models,
    config: &PersistConfig,
    metrics: &Metrics,
) -> Result<u64, SnapshotError> {
    if !config.path.exists() {
        tracing::info!(file = %config.path.display(), "no snapshot yet: starting with no models");
        return Ok(0);
    }
    let started = Instant::now();
    let result = read(&config.path, |rows| {
        for r in rows {
            let model = Model::from_record(&r.state);
            if let Some(fitted) = fitted_of(&r.params) {
                models.fitter().restore_fit(r.key, model.kind(), fitted);
            }
            models.insert(r.key, r.rule, model);
        }
        ControlFlow::Continue(())
    });
    match result {
        Ok(n) => {
            metrics.snapshot_restored_series.set(n as i64);
            tracing::info!(file = %config.path.display(), series = n, elapsed = ?started.elapsed(), "models restored");
            Ok(n)
        }
        Err(e) => {
            models.clear();
            metrics.snapshot_restore_failures.inc();
            match config.on_corrupt {
                OnCorrupt::Refuse => Err(e),
                OnCorrupt::StartEmpty => {
                    tracing::error!(
                        error = %e,
                        "SNAPSHOT UNREADABLE: starting with no models (persistence.on_corrupt: start_empty); \
                         the file is kept as .corrupt for inspection"
                    );
                    let _ =
                        std::fs::rename(&config.path, config.path.with_extension("arrow.corrupt"));
                    Ok(0)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
