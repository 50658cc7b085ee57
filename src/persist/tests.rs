//! Snapshot round trips and every kind of bad file.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};

use super::*;
use crate::config::Config;
use crate::model::{Kind, ModelSettings, Params};
use crate::persist::schema::SeriesParams;

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
