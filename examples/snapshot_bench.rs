//! Snapshot benchmark: write and restore time and file size for N models (default 1 M),
//! against the in-memory size of their state; the same file loaded as a model import; and
//! the history export of a full fit store. Run by `bench/snapshot.sh`.

use std::path::Path;
use std::time::Instant;

use omen::config::Config;
use omen::derive::Models;
use omen::fit::{Fed, BUCKETS, BUCKET_MS};
use omen::metrics::Metrics;
use omen::model::{Kind, Model, ModelSettings, Params};
use omen::persist::{self, OnCorrupt, PersistConfig};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("omen-snapshot-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("models.arrow");
    let yaml = format!(
        "downstream: {{url: 'http://h:1/p'}}\nmodels: {{max_series: {n}, rules: [{{match: up}}]}}"
    );
    let config = Config::parse(&yaml, Path::new("omen.yaml")).expect("valid config");
    let metrics = Metrics::new();
    let models = Models::new(&config.models, metrics.clone());
    let params = Params::new(&ModelSettings::default());
    // One model warmed on a short history, copied with small variations: building 1 M
    // individually warmed models would measure the model, not the snapshot.
    let mut warm = Model::new(Kind::Gauge);
    for i in 0..200i64 {
        warm.update(
            &params,
            1_700_000_000_000 + i * 15_000,
            100.0 + (i as f64 / 9.0).sin() * 10.0,
        );
    }
    for k in 0..n {
        let mut m = warm;
        m.update(
            &params,
            1_700_000_000_000 + 200 * 15_000 + (k as i64 % 1000),
            100.0 + (k % 97) as f64,
        );
        models.insert(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), 0, m);
    }
    let t = Instant::now();
    let (series, bytes) = persist::snapshot(&models, &path, &metrics).expect("snapshot");
    let write_s = t.elapsed().as_secs_f64();
    let restored = Models::new(&config.models, metrics.clone());
    let pc = PersistConfig {
        path: path.clone(),
        interval: std::time::Duration::from_secs(300),
        on_corrupt: OnCorrupt::Refuse,
        export: None,
    };
    let t = Instant::now();
    let back = persist::restore(&restored, &pc, &metrics).expect("restore");
    let restore_s = t.elapsed().as_secs_f64();
    assert_eq!(back, series, "every model restored");
    let state = std::mem::size_of::<Model>() as u64 + 8 + 2; // state + key + rule
    let in_memory = state * series;
    println!("snapshot of {series} models:");
    println!("  write   {write_s:.2} s   (target <= 3 s)");
    println!("  restore {restore_s:.2} s   (target <= 3 s)");
    println!(
        "  file    {:.1} MiB = {:.2} x the in-memory state ({} B per model: state {} + key + rule; target <= 1.5)",
        bytes as f64 / 1048576.0,
        bytes as f64 / in_memory as f64,
        state,
        std::mem::size_of::<Model>()
    );

    // The same file as a model import (it is one: the learning core writes this schema).
    let t = Instant::now();
    let imports = persist::import::load(&path, series as usize).expect("import");
    let import_s = t.elapsed().as_secs_f64();
    assert_eq!(imports.len() as u64, series);
    println!("import of the same file: {import_s:.2} s for {series} series");
    drop(imports);

    // The history export: the fit store full at the default models.fit.history_bytes, every
    // history 4 days long (one sample per 10-minute bucket).
    let fitter = models.fitter();
    let capacity = fitter.capacity() as u64;
    let start = 1_700_000_000_000 - 1_700_000_000_000 % BUCKET_MS;
    let mut fed = Vec::with_capacity(BUCKETS + 1);
    for k in 0..capacity {
        fed.clear();
        fed.extend((0..=BUCKETS as i64).map(|b| {
            Fed {
                ts: start + b * BUCKET_MS,
                // A daily cycle plus noise: compression sees realistic values.
                value: 100.0
                    + 10.0 * ((b % 144) as f64 / 144.0 * std::f64::consts::TAU).sin()
                    + ((k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b as u64)
                        .wrapping_mul(0xbf58_476d_1ce4_e5b9)
                        >> 40) as f64
                        / (1u64 << 24) as f64,
                score: f32::NAN,
            }
        }));
        fitter.feed(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), Kind::Gauge, &fed);
    }
    let hist = dir.join("history.arrow");
    let t = Instant::now();
    let (hs, rows, hbytes) =
        persist::history::export(fitter, &hist, &metrics).expect("history export");
    println!(
        "history export: {hs} series x {} buckets = {rows} rows in {:.2} s, {:.1} MiB ({:.1} B per row)",
        BUCKETS,
        t.elapsed().as_secs_f64(),
        hbytes as f64 / 1048576.0,
        hbytes as f64 / rows.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
