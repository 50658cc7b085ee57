//! The history export (DESIGN §3.5, `persistence.export`): the fit store's compact
//! per-series histories (576 ten-minute bucket means) written by the serving process, in
//! the learning core's input schema, atomically like a snapshot. The histories live only in
//! the serving process's memory, so the server writes them; the file is the interface.
//!
//! Schema (metadata `omen.schema_version = 1`, `omen.kind = history`), one row per bucket
//! that has samples: `key u64`, `tenant utf8` and `labels utf8` (null: omen keeps neither
//! in memory; the key already includes the tenant), `counter bool` (values are per-second
//! rates), `ts_ms i64` (bucket start), `value f64` (bucket mean), and omen's extension
//! `samples f64`, the series' mean raw samples per bucket, with which the learning core
//! maps its per-bucket parameters to omen's per-sample steps. Record batches are
//! LZ4-compressed (Arrow IPC's LZ4 frame codec): a row costs about 40 bytes uncompressed
//! against 4 in memory, and the keys and bucket starts compress well.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arrow_array::UInt64Array;
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::file::{SnapshotError, Writer};
use super::schema::{KIND_KEY, VERSION_KEY};
use crate::fit::{Fitter, HistoryCopy, BUCKET_MS};
use crate::metrics::Metrics;

/// The history schema version this omen writes.
pub const HISTORY_VERSION: u32 = 1;

/// Series copied per shard lock.
const SERIES_PER_COPY: usize = 256;

/// The schema of history files.
pub fn schema() -> SchemaRef {
    let fields = vec![
        Field::new("key", DataType::UInt64, false),
        Field::new("tenant", DataType::Utf8, true),
        Field::new("labels", DataType::Utf8, true),
        Field::new("counter", DataType::Boolean, false),
        Field::new("ts_ms", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("samples", DataType::Float64, true),
    ];
    let meta = HashMap::from([
        (VERSION_KEY.to_string(), HISTORY_VERSION.to_string()),
        (KIND_KEY.to_string(), "history".to_string()),
    ]);
    Arc::new(Schema::new_with_metadata(fields, meta))
}

/// The histories as one record batch: a row per bucket with samples.
///
/// # Errors
/// Only if the arrays do not fit the schema (a programming error).
pub fn to_batch(copies: &[HistoryCopy]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let (mut key, mut counter, mut ts, mut value, mut samples) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for c in copies {
        for (i, v) in c.values.iter().enumerate() {
            if !v.is_finite() {
                continue;
            }
            key.push(c.key);
            counter.push(c.counter);
            ts.push(c.start_ms + i as i64 * BUCKET_MS);
            value.push(f64::from(*v));
            samples.push(c.samples_per_bucket);
        }
    }
    let n = key.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(key)),
        Arc::new(StringArray::new_null(n)),
        Arc::new(StringArray::new_null(n)),
        Arc::new(BooleanArray::from(counter)),
        Arc::new(Int64Array::from(ts)),
        Arc::new(Float64Array::from(value)),
        Arc::new(Float64Array::from(samples)),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// Writes every history with at least one closed bucket to `path`; returns (series, rows,
/// bytes). Logs and counts the outcome.
///
/// # Errors
/// The write failed; the previous export stays in place.
pub fn export(
    fitter: &Fitter,
    path: &Path,
    metrics: &Metrics,
) -> Result<(u64, u64, u64), SnapshotError> {
    let started = Instant::now();
    let result = write_all(fitter, path);
    match &result {
        Ok((series, rows, bytes)) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            metrics.history_export_last_success.set(now);
            metrics.history_export_series.set(*series as i64);
            tracing::info!(file = %path.display(), series, rows, bytes, elapsed = ?started.elapsed(), "histories exported");
        }
        Err(e) => {
            metrics.history_export_failures.inc();
            tracing::error!(error = %e, "history export failed; the previous export stays in place");
        }
    }
    result
}

fn write_all(fitter: &Fitter, path: &Path) -> Result<(u64, u64, u64), SnapshotError> {
    let mut writer = Writer::create_compressed(path, &schema())?;
    let mut series = 0u64;
    for shard in 0..fitter.shards() {
        let mut from = Some(0);
        while let Some(start) = from {
            let (copies, next) = fitter.copy_histories(shard, start, SERIES_PER_COPY);
            from = next;
            let copies: Vec<HistoryCopy> = copies
                .into_iter()
                .filter(|c| c.values.iter().any(|v| v.is_finite()))
                .collect();
            if copies.is_empty() {
                continue;
            }
            series += copies.len() as u64;
            let batch = to_batch(&copies).map_err(|e| SnapshotError {
                file: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            writer.push_batch(&batch)?;
        }
    }
    let (rows, bytes) = writer.commit()?;
    Ok((series, rows, bytes))
}
