//! Model update cost: ns per sample over many series (state in a Vec, as the pipeline keeps
//! it), and `size_of` the per-series state. Run with `bench/model.sh`.

use std::hint::black_box;
use std::time::Instant;

use omen::model::{Kind, Model, Outcome, Params};

fn main() {
    let series: usize = arg(1).unwrap_or(100_000);
    let rounds: usize = arg(2).unwrap_or(100);
    let params = Params::default();
    let mut models = vec![Model::new(Kind::Gauge); series];
    let mut counters = vec![Model::new(Kind::Counter); series / 10];
    let step = 15_000i64;
    let value = |s: usize, r: usize| 100.0 + ((s * 7919 + r * 104_729) % 1000) as f64 / 100.0;

    // Warm every model past warm-up so the measured loop is the steady state.
    for r in 0..40 {
        for (s, m) in models.iter_mut().enumerate() {
            black_box(m.update(&params, r as i64 * step, value(s, r)));
        }
    }
    let mut scored = 0u64;
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    for r in 40..40 + rounds {
        let ts = r as i64 * step;
        for (s, m) in models.iter_mut().enumerate() {
            // The pipeline's tentative update: copy, update, write back.
            let mut t = *m;
            if let Outcome::Scored(f) = t.update(&params, ts, value(s, r)) {
                scored += (f.score > 1.0) as u64;
            }
            *m = t;
        }
    }
    let gauge_ns = start.elapsed().as_nanos() as f64 / (series * rounds) as f64;
    let gauge_cpu_ns = cpu_seconds()
        .zip(cpu0)
        .map(|(b, a)| (b - a) * 1e9 / (series * rounds) as f64);

    let start = Instant::now();
    for r in 0..rounds {
        for (s, m) in counters.iter_mut().enumerate() {
            black_box(m.update(&params, r as i64 * step, (r * 150 + s) as f64));
        }
    }
    let counter_ns = start.elapsed().as_nanos() as f64 / (counters.len() * rounds).max(1) as f64;

    println!("series                 {series}");
    println!("samples                {}", series * rounds);
    println!("gauge update           {gauge_ns:.1} ns/sample wall (copy, update, write back)");
    if let Some(cpu) = gauge_cpu_ns {
        println!("gauge update           {cpu:.1} ns/sample CPU time of this process");
    }
    println!("counter update         {counter_ns:.1} ns/sample");
    println!(
        "size_of::<Model>()     {} bytes",
        std::mem::size_of::<Model>()
    );
    println!(
        "size_of::<Params>()    {} bytes (per rule, or per series once fitted)",
        std::mem::size_of::<Params>()
    );
    println!("(scores above 1: {scored})");
}

/// User + system CPU seconds of this process from /proc (Linux; 10 ms ticks), so the figure
/// holds on a loaded machine where wall time also counts waiting for a core.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn arg(i: usize) -> Option<usize> {
    std::env::args().nth(i).and_then(|a| a.parse().ok())
}
