//! Snapshot round trips and every kind of bad file.

// Table-driven: the tables are tuples of borrowed slices, spelled out where they are used.
#![allow(clippy::type_complexity)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};

use super::*;
use crate::config::Config;
use crate::model::{Kind, ModelSettings, Params};
use crate::persist::schema::SeriesParams;
use crate::persist::{history, import, ImportConfig};

fn models(max_series: usize) -> Models {
    let yaml = format!("downstream: {{url: 'http://h:1/p'}}\nmodels: {{max_series: {max_series}, rules: [{{match: up}}]}}");
    let config = Config::parse(&yaml, Path::new("omen.yaml")).unwrap();
    Models::new(&config.models, Metrics::new())
}

/// Models fed with varied histories: gauges and counters, some warm, one stale.
fn filled(n: u64) -> Models {
    let m = models(100_000);
    let params = Params::new(&ModelSettings::default());
    for key in 0..n {
        let kind = if key % 3 == 0 {
            Kind::Counter
        } else {
            Kind::Gauge
        };
        let mut model = Model::new(kind);
        for i in 0..(key % 90) as i64 {
            let v = (key as f64) * 10.0 + (i as f64 * 0.3).sin() * 5.0 + i as f64;
            model.update(&params, 1_700_000_000_000 + i * 15_000, v);
        }
        if key == 7 {
            model.update(
                &params,
                1_800_000_000_000,
                f64::from_bits(crate::wire::STALE_NAN_BITS),
            );
        }
        m.insert(
            key.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            (key % 2) as u16,
            model,
        );
    }
    m
}

fn all(m: &Models) -> Vec<Vec<(u64, u16, Model)>> {
    (0..m.shards()).map(|s| m.entries(s)).collect()
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omen-persist-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(path: PathBuf, on_corrupt: OnCorrupt) -> PersistConfig {
    PersistConfig {
        path,
        interval: Duration::from_secs(300),
        on_corrupt,
        export: None,
    }
}

#[test]
fn round_trip_is_exact_and_keeps_recency_order() {
    let d = dir("roundtrip");
    let path = d.join("models.arrow");
    let original = filled(20_000);
    let metrics = Metrics::new();
    let (series, bytes) = snapshot(&original, &path, &metrics).unwrap();
    assert_eq!(series, 20_000);
    assert!(bytes > 0 && !d.join("models.arrow.tmp").exists());
    let restored = models(100_000);
    assert_eq!(
        restore(&restored, &config(path, OnCorrupt::Refuse), &metrics).unwrap(),
        20_000
    );
    let (a, b) = (all(&original), all(&restored));
    assert_eq!(a.len(), b.len());
    for (sa, sb) in a.iter().zip(&b) {
        assert_eq!(sa.len(), sb.len());
        for (x, y) in sa.iter().zip(sb) {
            assert_eq!((x.0, x.1), (y.0, y.1), "same key, rule and order");
            assert_eq!(x.2.to_record(), y.2.to_record(), "every field, bit for bit");
        }
    }
}

#[test]
fn missing_file_is_a_first_start() {
    let d = dir("missing");
    let m = models(10);
    assert_eq!(
        restore(
            &m,
            &config(d.join("none.arrow"), OnCorrupt::Refuse),
            &Metrics::new()
        )
        .unwrap(),
        0
    );
}

fn write_batch(path: &Path, schema: Arc<Schema>, batches: &[RecordBatch]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = arrow_ipc::writer::FileWriter::try_new(f, &schema).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn bad_files_are_named_and_counted() {
    let d = dir("bad");
    let good = d.join("good.arrow");
    snapshot(&filled(50), &good, &Metrics::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = d.join("truncated.arrow");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = d.join("garbage.arrow");
    std::fs::write(&garbage, b"this is not an arrow file").unwrap();
    let empty = d.join("empty.arrow");
    std::fs::write(&empty, b"").unwrap();

    let wrong = d.join("wrong.arrow");
    let meta = HashMap::from([(
        schema::VERSION_KEY.to_string(),
        schema::SCHEMA_VERSION.to_string(),
    )]);
    let other = Arc::new(Schema::new_with_metadata(
        vec![Field::new("key", DataType::UInt64, false)],
        meta,
    ));
    let batch =
        RecordBatch::try_new(other.clone(), vec![Arc::new(UInt64Array::from(vec![1u64]))]).unwrap();
    write_batch(&wrong, other, &[batch]);

    let newer = d.join("newer.arrow");
    let s = schema::schema();
    let newer_schema = Arc::new(Schema::new_with_metadata(
        s.fields().clone(),
        HashMap::from([(schema::VERSION_KEY.to_string(), "99".to_string())]),
    ));
    write_batch(&newer, newer_schema, &[]);

    let unversioned = d.join("unversioned.arrow");
    write_batch(&unversioned, Arc::new(Schema::new(s.fields().clone())), &[]);

    let duplicate = d.join("duplicate.arrow");
    let row = Row {
        key: 42,
        rule: 0,
        state: Model::new(Kind::Gauge).to_record(),
        params: Default::default(),
    };
    let batch = schema::to_batch(&[row, row]).unwrap();
    write_batch(&duplicate, schema::schema(), &[batch]);

    let cases = [
        (&truncated, "truncated or corrupt"),
        (&garbage, "not a readable Arrow IPC file"),
        (&empty, "not a readable Arrow IPC file"),
        (&wrong, "wrong schema"),
        (&newer, "unknown newer schema version 99"),
        (&unversioned, "no omen.schema_version"),
        (&duplicate, "duplicate series rows"),
    ];
    for (path, want) in cases {
        // refuse: an error that names the file and the problem, no models.
        let m = models(1000);
        let metrics = Metrics::new();
        let e = restore(&m, &config(path.to_path_buf(), OnCorrupt::Refuse), &metrics).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with(&format!("{}: ", path.display())), "{text}");
        assert!(text.contains(want), "{}: {text}", path.display());
        assert!(m.is_empty(), "{}: nothing half-restored", path.display());
        assert_eq!(metrics.snapshot_restore_failures.get(), 1);
        // start_empty: starts, counted, the file is moved aside.
        let metrics = Metrics::new();
        assert_eq!(
            restore(
                &m,
                &config(path.to_path_buf(), OnCorrupt::StartEmpty),
                &metrics
            )
            .unwrap(),
            0
        );
        assert_eq!(metrics.snapshot_restore_failures.get(), 1);
        assert!(
            !path.exists() && path.with_extension("arrow.corrupt").exists(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn rows_with_parameters_round_trip_through_a_batch() {
    let mut state = Model::new(Kind::Counter).to_record();
    state.level = 12.5;
    state.profile_fine[3] = -7;
    let rows = [
        Row {
            key: 1,
            rule: 3,
            state,
            params: SeriesParams::default(),
        },
        Row {
            key: 2,
            rule: 0,
            state,
            params: SeriesParams {
                alpha: Some(0.25),
                beta: Some(0.1),
                phi: Some(0.95),
                gamma_fine: None,
                gamma_coarse: Some(0.01),
                season_fine_ms: Some(86_400_000),
                season_coarse_ms: None,
            },
        },
    ];
    let batch = schema::to_batch(&rows).unwrap();
    schema::check(&batch.schema()).unwrap();
    assert_eq!(schema::from_batch(&batch).unwrap(), rows);
}

fn fitted(alpha: f64, season_ms: i64) -> crate::fit::Fitted {
    crate::fit::Fitted {
        alpha,
        beta: 0.05,
        phi: 0.9,
        season_ms,
        profile: [0.0; crate::model::FINE_BUCKETS],
    }
}

#[test]
fn fitted_parameters_survive_a_snapshot() {
    let d = dir("fitted");
    let path = d.join("models.arrow");
    let original = filled(100);
    let keys: Vec<u64> = all(&original).concat().iter().map(|e| e.0).collect();
    original
        .fitter()
        .restore_fit(keys[0], Kind::Gauge, fitted(0.125, 86_400_000));
    original
        .fitter()
        .restore_fit(keys[1], Kind::Gauge, fitted(0.5, 0));
    snapshot(&original, &path, &Metrics::new()).unwrap();
    let restored = models(100_000);
    restore(&restored, &config(path, OnCorrupt::Refuse), &Metrics::new()).unwrap();
    assert_eq!(
        restored.fitter().adopted(keys[0]),
        Some(fitted(0.125, 86_400_000))
    );
    assert_eq!(restored.fitter().adopted(keys[1]), Some(fitted(0.5, 0)));
    assert_eq!(restored.fitter().adopted(keys[2]), None, "never fitted");
    // The fit is in force: the rule's parameters with the fitted ones applied.
    let rule = Params::new(&ModelSettings::default());
    let p = restored.fitter().params(keys[0], &rule).unwrap();
    assert_eq!(
        (p.alpha, p.season_fine_ms, p.season_gate),
        (0.125, 86_400_000, false)
    );
}

fn model_rows(keys: &[u64], params: SeriesParams) -> Vec<Row> {
    let rule = Params::new(&ModelSettings::default());
    keys.iter()
        .map(|&key| {
            let mut m = Model::new(Kind::Gauge);
            for i in 0..100i64 {
                m.update(&rule, 1_700_000_000_000 + i * 60_000, 10.0 + (i % 7) as f64);
            }
            Row {
                key,
                rule: 0,
                state: m.to_record(),
                params,
            }
        })
        .collect()
}

fn write_models(path: &Path, rows: &[Row]) {
    let mut w = Writer::create(path).unwrap();
    w.push(rows).unwrap();
    w.commit().unwrap();
}

#[test]
fn import_loads_a_folder_and_a_bad_one_keeps_the_previous() {
    let d = dir("import");
    let good = SeriesParams {
        alpha: Some(0.2),
        season_fine_ms: Some(0),
        ..SeriesParams::default()
    };
    write_models(&d.join("a.arrow"), &model_rows(&[1, 2, 3], good));
    write_models(&d.join("b.arrow"), &model_rows(&[4], good));
    // Not imported: hidden, or another suffix (a file being written).
    std::fs::write(d.join(".c.arrow"), b"junk").unwrap();
    std::fs::write(d.join("c.arrow.tmp"), b"junk").unwrap();
    let m = models(100);
    let metrics = Metrics::new();
    let config = ImportConfig {
        path: d.clone(),
        poll_interval: Duration::from_secs(1),
        max_series: 10,
    };
    assert_eq!(import::reload(&m, &config, &metrics).unwrap(), 4);
    assert_eq!(
        (metrics.import_loads.get(), metrics.import_series.get()),
        (1, 4)
    );
    // One bad file in the folder: the whole new import is refused, the previous stays.
    let cases: Vec<(&str, Box<dyn Fn(&Path)>, &str)> = vec![
        (
            "truncated",
            Box::new(|p: &Path| {
                write_models(p, &model_rows(&[9], good));
                let bytes = std::fs::read(p).unwrap();
                std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
            }),
            "not a readable Arrow IPC file",
        ),
        (
            "alpha out of range",
            Box::new(|p: &Path| {
                let bad = SeriesParams {
                    alpha: Some(1.5),
                    ..good
                };
                write_models(p, &model_rows(&[9], bad));
            }),
            "series 0000000000000009: alpha 1.5 is outside (0, 1]",
        ),
        (
            "season too short",
            Box::new(|p: &Path| {
                let bad = SeriesParams {
                    season_fine_ms: Some(5),
                    ..good
                };
                write_models(p, &model_rows(&[9], bad));
            }),
            "season_fine_ms 5",
        ),
        (
            "non-finite state",
            Box::new(|p: &Path| {
                let mut rows = model_rows(&[9], good);
                rows[0].state.level = f64::NAN;
                write_models(p, &rows);
            }),
            "level is NaN",
        ),
        (
            "more series than models.import.max_series",
            Box::new(|p: &Path| {
                let keys: Vec<u64> = (100..107).collect();
                write_models(p, &model_rows(&keys, good));
            }),
            "the import lists more than 10 series (models.import.max_series)",
        ),
        (
            "a series in two files",
            Box::new(|p: &Path| write_models(p, &model_rows(&[2], good))),
            "series 0000000000000002 is also in",
        ),
        (
            "a history file",
            Box::new(|p: &Path| {
                let f = crate::fit::Fitter::new(&models_config().fit, Metrics::new());
                history::export(&f, p, &Metrics::new()).unwrap();
            }),
            "wrong kind: omen.kind is \"history\"",
        ),
    ];
    for (i, (what, make, want)) in cases.iter().enumerate() {
        let bad = d.join("z.arrow");
        make(&bad);
        let e = import::reload(&m, &config, &metrics)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{what}: {e}");
        assert!(e.contains(".arrow: "), "{what}: names the file: {e}");
        assert_eq!(metrics.import_failures.get(), i as u64 + 1, "{what}");
        assert_eq!(m.imported_series(), 4, "{what}: the previous import stays");
        assert_eq!(metrics.import_series.get(), 4, "{what}");
        std::fs::remove_file(&bad).unwrap();
    }
    // Exactly models.import.max_series series is fine.
    let six: Vec<u64> = (100..106).collect();
    write_models(&d.join("z.arrow"), &model_rows(&six, good));
    assert_eq!(import::reload(&m, &config, &metrics).unwrap(), 10);
    std::fs::remove_file(d.join("z.arrow")).unwrap();
    assert_eq!(import::reload(&m, &config, &metrics).unwrap(), 4);
    // A missing path is a failure too; an empty folder is a valid empty import.
    let missing = ImportConfig {
        path: d.join("nope"),
        ..config.clone()
    };
    assert!(import::reload(&m, &missing, &metrics)
        .unwrap_err()
        .to_string()
        .contains("nope: cannot open"));
    assert_eq!(m.imported_series(), 4);
    std::fs::remove_file(d.join("a.arrow")).unwrap();
    std::fs::remove_file(d.join("b.arrow")).unwrap();
    assert_eq!(import::reload(&m, &config, &metrics).unwrap(), 0);
    assert_eq!(metrics.import_series.get(), 0);
}

fn models_config() -> crate::config::ModelsConfig {
    let yaml = "downstream: {url: 'http://h:1/p'}\nmodels: {rules: [{match: up}]}";
    Config::parse(yaml, Path::new("omen.yaml")).unwrap().models
}

#[test]
fn history_export_writes_the_learning_core_schema() {
    use crate::fit::{Fed, BUCKET_MS};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, UInt64Type};

    let d = dir("history");
    let path = d.join("history.arrow");
    let fitter = crate::fit::Fitter::new(&models_config().fit, Metrics::new());
    let t0 = 1_700_000_400_000 - 1_700_000_400_000 % BUCKET_MS;
    // A gauge sampled every minute for 30 minutes (3 closed buckets, 10 samples each),
    // and a counter growing 2/s.
    let gauge: Vec<Fed> = (0..31)
        .map(|i| Fed {
            ts: t0 + i * 60_000,
            value: (i / 10) as f64,
            score: f32::NAN,
        })
        .collect();
    let counter: Vec<Fed> = (0..31)
        .map(|i| Fed {
            ts: t0 + i * 60_000,
            value: (i * 120) as f64,
            score: f32::NAN,
        })
        .collect();
    fitter.feed(7, Kind::Gauge, &gauge);
    fitter.feed(8, Kind::Counter, &counter);
    let metrics = Metrics::new();
    let (series, rows, _) = history::export(&fitter, &path, &metrics).unwrap();
    assert_eq!((series, rows), (2, 6));
    assert_eq!(metrics.history_export_series.get(), 2);
    assert!(!d.join("history.arrow.tmp").exists());

    let f = std::fs::File::open(&path).unwrap();
    let reader = arrow_ipc::reader::FileReader::try_new(f, None).unwrap();
    let meta = reader.schema().metadata().clone();
    assert_eq!(meta["omen.schema_version"], "1");
    assert_eq!(meta["omen.kind"], "history");
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        ["key", "tenant", "labels", "counter", "ts_ms", "value", "samples"]
    );
    let mut got = Vec::new();
    for b in reader {
        let b = b.unwrap();
        for i in 0..b.num_rows() {
            got.push((
                b.column(0).as_primitive::<UInt64Type>().value(i),
                b.column(3).as_boolean().value(i),
                b.column(4).as_primitive::<Int64Type>().value(i) - t0,
                b.column(5).as_primitive::<Float64Type>().value(i),
                b.column(6).as_primitive::<Float64Type>().value(i),
                b.column(1).is_null(i) && b.column(2).is_null(i),
            ));
        }
    }
    got.sort_by(|a, b| (a.0, a.2).partial_cmp(&(b.0, b.2)).unwrap());
    let m = BUCKET_MS;
    // `samples` is the series' running mean of samples per bucket (an EMA, rate 0.05):
    // the counter's first bucket has 9 increases (the first sample primes), then 10, 10.
    let mut per = 9.0f32;
    per += 0.05 * (10.0 - per);
    per += 0.05 * (10.0 - per);
    let per = f64::from(per);
    assert_eq!(
        got,
        vec![
            (7, false, 0, 0.0, 10.0, true),
            (7, false, m, 1.0, 10.0, true),
            (7, false, 2 * m, 2.0, 10.0, true),
            (8, true, 0, 2.0, per, true),
            (8, true, m, 2.0, per, true),
            (8, true, 2 * m, 2.0, per, true),
        ]
    );
}

#[test]
fn older_versions_are_read_with_empty_new_fields_and_version_1_is_refused() {
    let params = Params::default();
    let mut m = Model::new(Kind::Gauge);
    for i in 0..2000i64 {
        // Repeats now and then, and a spike each day at noon: every v4 field is set.
        let v = if i % 1440 == 720 {
            90.0
        } else {
            10.0 + (i % 7) as f64
        };
        m.update(&params, 1_700_000_000_000 + i * 60_000, v);
        m.update(&params, 1_700_000_000_000 + i * 60_000 + 30_000, v);
    }
    let row = Row {
        key: 7,
        rule: 0,
        state: m.to_record(),
        params: Default::default(),
    };
    assert_ne!(row.state.range_seen, 0, "the original has a range");
    assert_ne!(row.state.repeats, 0, "the original has repeats");
    assert_ne!(row.state.surprise_min, 0, "the original has a surprise");
    let v4 = schema::to_batch(&[row]).unwrap();
    assert_eq!(v4.num_columns(), 32);
    let older = |version: &str, columns: usize| {
        Arc::new(Schema::new_with_metadata(
            v4.schema().fields()[..columns].to_vec(),
            HashMap::from([(schema::VERSION_KEY.to_string(), version.to_string())]),
        ))
    };
    let empty = Model::new(Kind::Gauge).to_record();
    let read = |version: &str, columns: usize| {
        let batch = RecordBatch::try_new(older(version, columns), v4.columns()[..columns].to_vec())
            .unwrap();
        schema::check(&batch.schema()).unwrap();
        schema::from_batch(&batch).unwrap()
    };
    // Version 3: no repeats and no surprise.
    let mut want = row;
    (want.state.surprise_min, want.state.repeats, want.state.same) =
        (empty.surprise_min, empty.repeats, empty.same);
    assert_eq!(read("3", 29), vec![want]);
    // Version 2: no range either.
    (
        want.state.range_low,
        want.state.range_high,
        want.state.range_seen,
    ) = (empty.range_low, empty.range_high, empty.range_seen);
    assert_eq!(read("2", 26), vec![want]);
    // The current version must have every column; version 1 is too old.
    let short = older(&schema::SCHEMA_VERSION.to_string(), 29);
    assert!(schema::check(&short).unwrap_err().contains("29 columns"));
    assert!(schema::check(&older("3", 26))
        .unwrap_err()
        .contains("26 columns"));
    assert!(schema::check(&older("1", 26))
        .unwrap_err()
        .contains("old schema version 1"));
}
