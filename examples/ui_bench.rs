//! Write-path cost of the page's record (`ui:`): ns per sample of `Pipeline::build` +
//! `Models::commit` (scan, route, model, derived series, and the record's hook), with the
//! page off, on with the default bound (500 series tracked, the rest looked up and
//! skipped), and on with every series tracked. No network: the downstream is never
//! called. Run with `bench/ui.sh [SERIES] [ROUNDS]`.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use prost::Message;

use omen::app::App;
use omen::config::Config;
use omen::metrics::Metrics;
use omen::proto;

const BATCH: usize = 2000;

fn main() {
    let series: usize = arg(1).unwrap_or(20_000);
    let rounds: usize = arg(2).unwrap_or(60);
    let warmup = 32;
    // Prometheus sends about one sample per series per request: 2000-series batches.
    let bodies: Vec<Vec<u8>> = (0..warmup + rounds)
        .flat_map(|r| (0..series.div_ceil(BATCH)).map(move |b| (r, b)))
        .map(|(r, b)| body(r, b * BATCH..((b + 1) * BATCH).min(series)))
        .collect();
    let per_round = series.div_ceil(BATCH);
    let variants = [
        ("ui off", "ui: {enabled: false}".to_string()),
        (
            "ui on, 500 tracked",
            "ui: {enabled: true, max_series: 500, points: 240}".to_string(),
        ),
        (
            "ui on, all tracked",
            format!("ui: {{enabled: true, max_series: {series}, points: 240}}"),
        ),
    ];
    // `ui_bench SERIES ROUNDS VARIANT` runs one variant once (for callgrind's counts).
    let only: Option<usize> = arg(3);
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for rep in 0..if only.is_some() { 1 } else { 3 } {
        // Alternate the order so that drift on a shared machine hits all variants alike.
        let mut order: Vec<usize> = (0..variants.len()).collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        for i in order {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            let ui = &variants[i].1;
            let app = app(ui, series);
            let pipeline = &app.state().pipeline;
            for b in &bodies[..warmup * per_round] {
                let batch = pipeline.build(b, None).expect("valid body");
                app.models().commit(batch.tentative);
            }
            let start = Instant::now();
            for b in &bodies[warmup * per_round..] {
                let batch = pipeline.build(b, None).expect("valid body");
                black_box(batch.writer.as_bytes().len());
                app.models().commit(batch.tentative);
            }
            let ns = start.elapsed().as_nanos() as f64 / (series * rounds) as f64;
            results[i].push(ns);
        }
    }
    if let Some(o) = only {
        println!("{}: {:.1} ns per sample", variants[o].0, results[o][0]);
        return;
    }
    println!("{series} series x {rounds} rounds, {BATCH}-series requests; ns per sample (build + commit), median of 3:");
    for ((name, _), r) in variants.iter().zip(&mut results) {
        r.sort_by(f64::total_cmp);
        println!(
            "  {name:<20} {:7.1} ns   (runs: {:?})",
            r[1],
            r.iter()
                .map(|x| (x * 10.0).round() / 10.0)
                .collect::<Vec<_>>()
        );
    }
}

fn app(ui: &str, series: usize) -> App {
    let yaml = format!(
        "downstream: {{url: 'http://127.0.0.1:9/api/v1/write'}}\n\
         models:\n  max_series: {}\n  rules:\n    - match: '{{__name__=~\".+\"}}'\n      outputs: [score]\n      warmup: 30\n\
         {ui}\n",
        series * 2
    );
    let config = Config::parse(&yaml, Path::new("bench.yaml")).expect("valid bench config");
    App::new(config, "bench.yaml".into(), Metrics::new())
}

/// One decoded request: series `range`, one sample each at round `r`.
fn body(r: usize, range: std::ops::Range<usize>) -> Vec<u8> {
    let timeseries = range
        .map(|s| proto::TimeSeries {
            labels: vec![
                label(
                    "__name__",
                    if s % 2 == 0 {
                        "node_load1"
                    } else {
                        "http_requests_in_flight"
                    },
                ),
                label("instance", &format!("10.1.{}.{}:9100", s / 250, s % 250)),
                label("job", "node"),
                label("pod", &format!("pod-{s:06}")),
            ],
            samples: vec![proto::Sample {
                value: 100.0 + ((s * 7919 + r * 104_729) % 1000) as f64 / 100.0,
                timestamp: 1_700_000_000_000 + r as i64 * 15_000,
            }],
            ..Default::default()
        })
        .collect();
    proto::WriteRequest {
        timeseries,
        ..Default::default()
    }
    .encode_to_vec()
}

fn label(name: &str, value: &str) -> proto::Label {
    proto::Label {
        name: name.into(),
        value: value.into(),
    }
}

fn arg(i: usize) -> Option<usize> {
    std::env::args().nth(i).and_then(|a| a.parse().ok())
}
