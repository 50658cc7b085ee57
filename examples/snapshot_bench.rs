//! Snapshot benchmark: write and restore time and file size for N models (default 1 M),
//! against the in-memory size of their state. Run by `bench/snapshot.sh`.

use std::path::Path;
use std::time::Instant;

use omen::config::Config;
use omen::derive::Models;
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
    let _ = std::fs::remove_dir_all(&dir);
}
