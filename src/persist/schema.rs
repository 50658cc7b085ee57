//! The snapshot schema (Arrow, versioned by the `omen.schema_version` metadata key): one
//! row per modeled series, its key, rule and every field of its online state; and the
//! conversion between rows and record batches.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Int16Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, Int64Array, Int8Array, RecordBatch, StringArray,
    UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::model::{Kind, Model, ModelRecord, Params, COARSE_BUCKETS, FINE_BUCKETS};

/// The schema version this omen writes. It also reads versions 2 (the learning core's files
/// and snapshots of earlier omens), which lacks the range columns, so its models start with
/// an empty range, and 3, which lacks the repeat and surprise columns, so its models start
/// with no repeats and no surprise remembered.
pub const SCHEMA_VERSION: u32 = 4;

/// The oldest schema version this omen reads.
const OLDEST_VERSION: u32 = 2;

/// Columns of a version-2 file: every column of [`schema`] but the range ones at the end.
const V2_COLUMNS: usize = 26;

/// Columns of a version-3 file: every column of [`schema`] but the repeat and surprise ones.
const V3_COLUMNS: usize = 29;

/// Metadata key carrying the version.
pub const VERSION_KEY: &str = "omen.schema_version";

/// Metadata key saying what a file holds (`models`; the learning core's input is `history`).
pub const KIND_KEY: &str = "omen.kind";

/// Per-series parameters; `None` = the rule's default. Written by the learning core (and by
/// omen for parameters its background fitter estimated).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SeriesParams {
    pub alpha: Option<f64>,
    pub beta: Option<f64>,
    pub phi: Option<f64>,
    pub gamma_fine: Option<f64>,
    pub gamma_coarse: Option<f64>,
    pub season_fine_ms: Option<i64>,
    pub season_coarse_ms: Option<i64>,
}

impl SeriesParams {
    /// Whether any parameter is set.
    pub fn is_empty(&self) -> bool {
        *self == SeriesParams::default()
    }

    /// A rule's parameters with these overrides applied (unset ones keep the rule's).
    pub fn apply(&self, rule: &Params) -> Params {
        let mut p = *rule;
        if let Some(v) = self.alpha {
            p.alpha = v;
        }
        if let Some(v) = self.beta {
            p.beta = v;
        }
        if let Some(v) = self.phi {
            p.phi = v;
        }
        if let Some(v) = self.gamma_fine {
            p.gamma_fine = v;
        }
        if let Some(v) = self.gamma_coarse {
            p.gamma_coarse = v;
        }
        if let Some(v) = self.season_fine_ms {
            p.season_fine_ms = v;
        }
        if let Some(v) = self.season_coarse_ms {
            p.season_coarse_ms = v;
        }
        p
    }

    /// Checks that every set parameter is in the model's range.
    ///
    /// # Errors
    /// The first parameter out of range, as `name value: reason`.
    pub fn check(&self) -> Result<(), String> {
        let unit = |name: &str, v: Option<f64>, open_zero: bool| match v {
            Some(v) if !(0.0..=1.0).contains(&v) || (open_zero && v == 0.0) => Err(format!(
                "{name} {v} is outside {}",
                if open_zero { "(0, 1]" } else { "[0, 1]" }
            )),
            _ => Ok(()),
        };
        unit("alpha", self.alpha, true)?;
        unit("beta", self.beta, false)?;
        unit("phi", self.phi, false)?;
        unit("gamma_fine", self.gamma_fine, false)?;
        unit("gamma_coarse", self.gamma_coarse, false)?;
        for (name, v) in [
            ("season_fine_ms", self.season_fine_ms),
            ("season_coarse_ms", self.season_coarse_ms),
        ] {
            if let Some(v) = v {
                if v != 0 && !(60_000..=MAX_SEASON_MS).contains(&v) {
                    return Err(format!(
                        "{name} {v} is neither 0 (none) nor between 1m and 366d"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The longest season a file may set (a year and a day).
const MAX_SEASON_MS: i64 = 366 * 86_400_000;

/// One modeled series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// The series key: label-set hash mixed with the tenant (see `derive::Models::key`).
    pub key: u64,
    /// Index of the model rule the state was built under.
    pub rule: u16,
    pub state: ModelRecord,
    pub params: SeriesParams,
}

fn list(name: &str, len: usize) -> Field {
    Field::new(
        name,
        DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Int16, false)),
            len as i32,
        ),
        false,
    )
}

/// The schema of snapshot files.
pub fn schema() -> SchemaRef {
    let fields = vec![
        Field::new("key", DataType::UInt64, false),
        // Informational: the key already includes the tenant, and labels are not kept in
        // memory (every request carries them); null in snapshots omen writes.
        Field::new("tenant", DataType::Utf8, true),
        Field::new("labels", DataType::Utf8, true),
        Field::new("rule", DataType::UInt16, false),
        Field::new("last_ts", DataType::Int64, false),
        Field::new("level", DataType::Float64, false),
        Field::new("prev_raw", DataType::Float64, false),
        Field::new("trend", DataType::Float32, false),
        Field::new("band", DataType::Float32, false),
        Field::new("err_season", DataType::Float32, false),
        Field::new("err_plain", DataType::Float32, false),
        Field::new("shock", DataType::Float32, false),
        Field::new("step", DataType::Float32, false),
        Field::new("seen", DataType::UInt32, false),
        Field::new("run", DataType::Int8, false),
        Field::new("flags", DataType::UInt8, false),
        Field::new("profile_unit", DataType::Float32, false),
        list("profile_fine", FINE_BUCKETS),
        list("profile_coarse", COARSE_BUCKETS),
        Field::new("alpha", DataType::Float64, true),
        Field::new("beta", DataType::Float64, true),
        Field::new("phi", DataType::Float64, true),
        Field::new("gamma_fine", DataType::Float64, true),
        Field::new("gamma_coarse", DataType::Float64, true),
        Field::new("season_fine_ms", DataType::Int64, true),
        Field::new("season_coarse_ms", DataType::Int64, true),
        // Version 3: the range of values the model has seen.
        Field::new("range_low", DataType::Float32, false),
        Field::new("range_high", DataType::Float32, false),
        Field::new("range_seen", DataType::UInt16, false),
        // Version 4: the time of the last surprise and the repeats of the raw value.
        Field::new("surprise_min", DataType::UInt32, false),
        Field::new("repeats", DataType::UInt16, false),
        Field::new("same", DataType::UInt8, false),
    ];
    let meta = HashMap::from([
        (VERSION_KEY.to_string(), SCHEMA_VERSION.to_string()),
        (KIND_KEY.to_string(), "models".to_string()),
    ]);
    Arc::new(Schema::new_with_metadata(fields, meta))
}

fn profile_column(rows: &[Row], len: usize, get: impl Fn(&ModelRecord) -> &[i16]) -> ArrayRef {
    let mut b = FixedSizeListBuilder::with_capacity(
        Int16Builder::with_capacity(rows.len() * len),
        len as i32,
        rows.len(),
    )
    .with_field(Arc::new(Field::new("item", DataType::Int16, false)));
    for r in rows {
        b.values().append_slice(get(&r.state));
        b.append(true);
    }
    Arc::new(b.finish())
}

/// Rows as a record batch.
///
/// # Errors
/// Only if the arrays do not fit the schema (a programming error).
pub fn to_batch(rows: &[Row]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let n = rows.len();
    macro_rules! col {
        ($ty:ident, $f:expr) => {
            Arc::new($ty::from_iter_values(rows.iter().map($f))) as ArrayRef
        };
    }
    let columns: Vec<ArrayRef> = vec![
        col!(UInt64Array, |r| r.key),
        Arc::new(StringArray::new_null(n)),
        Arc::new(StringArray::new_null(n)),
        col!(UInt16Array, |r| r.rule),
        col!(Int64Array, |r| r.state.last_ts),
        col!(Float64Array, |r| r.state.level),
        col!(Float64Array, |r| r.state.prev_raw),
        col!(Float32Array, |r| r.state.trend),
        col!(Float32Array, |r| r.state.band),
        col!(Float32Array, |r| r.state.err_season),
        col!(Float32Array, |r| r.state.err_plain),
        col!(Float32Array, |r| r.state.shock),
        col!(Float32Array, |r| r.state.step),
        col!(UInt32Array, |r| r.state.seen),
        col!(Int8Array, |r| r.state.run),
        col!(UInt8Array, |r| r.state.flags),
        col!(Float32Array, |r| r.state.profile_unit),
        profile_column(rows, FINE_BUCKETS, |s| &s.profile_fine),
        profile_column(rows, COARSE_BUCKETS, |s| &s.profile_coarse),
        Arc::new(
            rows.iter()
                .map(|r| r.params.alpha)
                .collect::<Float64Array>(),
        ),
        Arc::new(rows.iter().map(|r| r.params.beta).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.params.phi).collect::<Float64Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.params.gamma_fine)
                .collect::<Float64Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.params.gamma_coarse)
                .collect::<Float64Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.params.season_fine_ms)
                .collect::<Int64Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.params.season_coarse_ms)
                .collect::<Int64Array>(),
        ),
        col!(Float32Array, |r| r.state.range_low),
        col!(Float32Array, |r| r.state.range_high),
        col!(UInt16Array, |r| r.state.range_seen),
        col!(UInt32Array, |r| r.state.surprise_min),
        col!(UInt16Array, |r| r.state.repeats),
        col!(UInt8Array, |r| r.state.same),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// Checks a file's schema against [`schema`]: the version first, then every column.
///
/// # Errors
/// A one-line reason: another kind of file (a history), no version, a newer version, or
/// the first column that differs.
pub fn check(found: &Schema) -> Result<(), String> {
    if let Some(kind) = found.metadata().get(KIND_KEY) {
        if kind != "models" {
            return Err(format!(
                "wrong kind: {KIND_KEY} is {kind:?}, expected \"models\""
            ));
        }
    }
    let version = found
        .metadata()
        .get(VERSION_KEY)
        .ok_or_else(|| format!("wrong schema: no {VERSION_KEY} metadata (not an omen snapshot)"))?;
    let v: u32 = version
        .parse()
        .map_err(|_| format!("wrong schema: {VERSION_KEY} is {version:?}"))?;
    if v > SCHEMA_VERSION {
        return Err(format!(
            "unknown newer schema version {v} (this omen reads up to {SCHEMA_VERSION})"
        ));
    }
    if v < OLDEST_VERSION {
        return Err(format!(
            "old schema version {v} (this omen reads {OLDEST_VERSION} to {SCHEMA_VERSION})"
        ));
    }
    let want = schema();
    let columns = match v {
        2 => V2_COLUMNS,
        3 => V3_COLUMNS,
        _ => want.fields().len(),
    };
    if found.fields().len() != columns {
        return Err(format!(
            "wrong schema: {} columns, expected {columns} for version {v}",
            found.fields().len(),
        ));
    }
    for (f, w) in found.fields().iter().zip(want.fields()) {
        if f.name() != w.name() || f.data_type() != w.data_type() {
            return Err(format!(
                "wrong schema: column {:?} of type {}, expected {:?} of type {}",
                f.name(),
                f.data_type(),
                w.name(),
                w.data_type()
            ));
        }
    }
    Ok(())
}

/// Rows of a batch whose schema passed [`check`].
///
/// # Errors
/// A null in a column that must not have one.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Row>, String> {
    let c = |i: usize| batch.column(i);
    for (i, f) in batch.schema().fields().iter().enumerate() {
        if !f.is_nullable() && c(i).null_count() > 0 {
            return Err(format!("column {:?} has nulls", f.name()));
        }
    }
    let key = c(0).as_primitive::<UInt64Type>();
    let rule = c(3).as_primitive::<UInt16Type>();
    let last_ts = c(4).as_primitive::<Int64Type>();
    let level = c(5).as_primitive::<Float64Type>();
    let prev_raw = c(6).as_primitive::<Float64Type>();
    let f32s: Vec<_> = (7..=12)
        .map(|i| c(i).as_primitive::<Float32Type>())
        .collect();
    let seen = c(13).as_primitive::<UInt32Type>();
    let run = c(14).as_primitive::<Int8Type>();
    let flags = c(15).as_primitive::<UInt8Type>();
    let unit = c(16).as_primitive::<Float32Type>();
    let fine = c(17).as_fixed_size_list();
    let coarse = c(18).as_fixed_size_list();
    let opt_f64 = |i: usize, row: usize| {
        let a = c(i).as_primitive::<Float64Type>();
        a.is_valid(row).then(|| a.value(row))
    };
    let opt_i64 = |i: usize, row: usize| {
        let a = c(i).as_primitive::<Int64Type>();
        a.is_valid(row).then(|| a.value(row))
    };
    // Version 2 files have no range: their models start with an empty one.
    let range = (batch.num_columns() > V2_COLUMNS).then(|| {
        (
            c(26).as_primitive::<Float32Type>(),
            c(27).as_primitive::<Float32Type>(),
            c(28).as_primitive::<UInt16Type>(),
        )
    });
    // Version 3 files have no repeats or surprise: their models start without them.
    let recall = (batch.num_columns() > V3_COLUMNS).then(|| {
        (
            c(29).as_primitive::<UInt32Type>(),
            c(30).as_primitive::<UInt16Type>(),
            c(31).as_primitive::<UInt8Type>(),
        )
    });
    let empty = Model::new(Kind::Gauge).to_record();
    let fine_values = fine.values().as_primitive::<Int16Type>();
    let coarse_values = coarse.values().as_primitive::<Int16Type>();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut profile_fine = [0i16; FINE_BUCKETS];
        let start = fine.value_offset_at(i);
        profile_fine.copy_from_slice(&fine_values.values()[start..start + FINE_BUCKETS]);
        let mut profile_coarse = [0i16; COARSE_BUCKETS];
        let start = coarse.value_offset_at(i);
        profile_coarse.copy_from_slice(&coarse_values.values()[start..start + COARSE_BUCKETS]);
        rows.push(Row {
            key: key.value(i),
            rule: rule.value(i),
            state: ModelRecord {
                last_ts: last_ts.value(i),
                level: level.value(i),
                prev_raw: prev_raw.value(i),
                trend: f32s[0].value(i),
                band: f32s[1].value(i),
                err_season: f32s[2].value(i),
                err_plain: f32s[3].value(i),
                shock: f32s[4].value(i),
                step: f32s[5].value(i),
                range_low: range.map_or(empty.range_low, |r| r.0.value(i)),
                range_high: range.map_or(empty.range_high, |r| r.1.value(i)),
                range_seen: range.map_or(empty.range_seen, |r| r.2.value(i)),
                surprise_min: recall.map_or(empty.surprise_min, |r| r.0.value(i)),
                repeats: recall.map_or(empty.repeats, |r| r.1.value(i)),
                same: recall.map_or(empty.same, |r| r.2.value(i)),
                seen: seen.value(i),
                run: run.value(i),
                flags: flags.value(i),
                profile_unit: unit.value(i),
                profile_fine,
                profile_coarse,
            },
            params: SeriesParams {
                alpha: opt_f64(19, i),
                beta: opt_f64(20, i),
                phi: opt_f64(21, i),
                gamma_fine: opt_f64(22, i),
                gamma_coarse: opt_f64(23, i),
                season_fine_ms: opt_i64(24, i),
                season_coarse_ms: opt_i64(25, i),
            },
        });
    }
    Ok(rows)
}
