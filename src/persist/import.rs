//! Model import (DESIGN §3.5): per-series parameters and state from model files in the
//! snapshot schema (`omen.kind = models`, written by the learning core), loaded at start
//! and reloaded when they change. A file that cannot be read completely, or holds a value
//! outside the model's range, changes nothing: the previous import stays in force.
//!
//! What an import does to a series (see `derive::Models`): its parameters replace the
//! rule's and any background fit's for as long as the import lists it ("imported wins");
//! its online state is used only when omen has no model for it yet, so a running model
//! continues and an unseen series starts from the imported state with no warm-up.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::file::{read, SnapshotError};
use crate::derive::{Imported, Imports, Models};
use crate::idhash::BuildIdHasher;
use crate::metrics::Metrics;
use crate::model::{Model, ModelRecord};

/// The `models.import:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportConfig {
    /// A model file, or a folder whose `*.arrow` files (not hidden, not recursive) are
    /// imported together.
    pub path: PathBuf,
    /// How often the files' modification times and sizes are checked.
    pub poll_interval: Duration,
    /// The most series an import may list (default `models.max_series`): an import that
    /// lists more is refused while it is read, so it never holds more than this in memory.
    pub max_series: usize,
}

/// The files an import path names, in a stable order.
///
/// # Errors
/// The path does not exist or the folder cannot be listed.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let err = |reason: String| SnapshotError {
        file: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot open: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| err(format!("cannot list: {e}")))? {
        let entry = entry.map_err(|e| err(format!("cannot list: {e}")))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && name.ends_with(".arrow") && entry.path().is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// What the import files look like now (name, modification time, size): a reload is due
/// when this changes. A missing path is an empty list.
pub fn fingerprint(path: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    files(path)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (f, modified, len)
        })
        .collect()
}

/// Reads every file of an import path into one table of at most `max_series` series.
///
/// # Errors
/// The first problem, naming the file: unreadable, truncated, wrong kind or schema, a
/// newer version, a duplicate series (within a file or across files), more series than
/// `max_series`, a parameter outside the model's range or a non-finite state.
pub fn load(path: &Path, max_series: usize) -> Result<Imports, SnapshotError> {
    let mut map: HashMap<u64, Imported, BuildIdHasher> = HashMap::default();
    let mut owner: HashMap<u64, usize, BuildIdHasher> = HashMap::default();
    let files = files(path)?;
    for (n, file) in files.iter().enumerate() {
        let mut problem = None;
        read(file, |rows| {
            for r in rows {
                if let Err(e) = r.params.check().and_then(|()| check_state(&r.state)) {
                    problem = Some(format!("series {:016x}: {e}", r.key));
                    return ControlFlow::Break(());
                }
                if let Some(&first) = owner.get(&r.key) {
                    problem = Some(format!(
                        "series {:016x} is also in {}",
                        r.key,
                        files[first].display()
                    ));
                    return ControlFlow::Break(());
                }
                if owner.len() >= max_series {
                    problem = Some(format!(
                        "the import lists more than {max_series} series \
                         (models.import.max_series); split the model file or raise it"
                    ));
                    return ControlFlow::Break(());
                }
                owner.insert(r.key, n);
                map.insert(
                    r.key,
                    Imported {
                        params: r.params,
                        model: Model::from_record(&r.state),
                    },
                );
            }
            ControlFlow::Continue(())
        })?;
        if let Some(reason) = problem {
            return Err(SnapshotError {
                file: file.clone(),
                reason,
            });
        }
    }
    Ok(Imports::new(map, files.len()))
}

/// The online state must be finite where the model computes with it.
fn check_state(s: &ModelRecord) -> Result<(), String> {
    let finite = [
        ("level", s.level),
        ("prev_raw", s.prev_raw),
        ("trend", f64::from(s.trend)),
        ("band", f64::from(s.band)),
        ("err_season", f64::from(s.err_season)),
        ("err_plain", f64::from(s.err_plain)),
        ("shock", f64::from(s.shock)),
        ("step", f64::from(s.step)),
        ("profile_unit", f64::from(s.profile_unit)),
    ];
    for (name, v) in finite {
        if !v.is_finite() {
            return Err(format!("{name} is {v}"));
        }
    }
    // The range may be empty (+inf, -inf) but not NaN.
    for (name, v) in [("range_low", s.range_low), ("range_high", s.range_high)] {
        if v.is_nan() {
            return Err(format!("{name} is NaN"));
        }
    }
    for (name, v) in [
        ("band", s.band),
        ("step", s.step),
        ("profile_unit", s.profile_unit),
    ] {
        if v < 0.0 {
            return Err(format!("{name} {v} is negative"));
        }
    }
    Ok(())
}

/// Loads the import and puts it in force, or keeps the previous one: logs the file and
/// the problem and counts it. Returns the series now imported.
///
/// # Errors
/// The problem with the new files; the previous import stays in force.
pub fn reload(
    models: &Models,
    config: &ImportConfig,
    metrics: &Metrics,
) -> Result<usize, SnapshotError> {
    let started = Instant::now();
    match load(&config.path, config.max_series) {
        Ok(imports) => {
            let (series, files) = (imports.len(), imports.files());
            models.set_imports(imports);
            metrics.import_loads.inc();
            metrics.import_series.set(series as i64);
            tracing::info!(path = %config.path.display(), files, series, elapsed = ?started.elapsed(), "models imported");
            Ok(series)
        }
        Err(e) => {
            metrics.import_failures.inc();
            tracing::error!(error = %e, kept = models.imported_series(), "model import failed; the previous import stays in force");
            Err(e)
        }
    }
}

/// Drops every imported series (the config no longer names an import).
pub fn clear(models: &Models, metrics: &Metrics) {
    if models.imported_series() > 0 {
        tracing::info!("models.import removed from the config: imported parameters dropped");
    }
    models.set_imports(Imports::default());
    metrics.import_series.set(0);
}
