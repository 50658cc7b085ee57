//! Background fit cost: milliseconds per fit of one 4-day history (576 ten-minute buckets)
//! for a few shapes, the augurs stages alone, and the CPU share the fitting pool actually
//! uses under its budget. Run with `bench/fit.sh`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use augurs::ets::model::{
    ErrorComponent, ModelType, Params, SeasonalComponent, TrendComponent, Unfit,
};
use augurs::mstl::MSTLModel;
use augurs::seasons::PeriodogramDetector;
use augurs::Fit;
use omen::config::FitConfig;
use omen::fit::estimate::estimate;
use omen::fit::pool::FitPool;
use omen::fit::{Fed, Fitter, BUCKETS, BUCKET_MS};
use omen::metrics::Metrics;
use omen::model::Kind;

fn noise(i: usize) -> f64 {
    let x = (i as u64 + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

fn shape(name: &str, i: usize) -> f64 {
    let day = (i % 144) as f64 / 144.0;
    match name {
        "daily" => 100.0 + 40.0 * (2.0 * std::f64::consts::PI * day).sin() + 2.0 * noise(i),
        "4h" => {
            100.0
                + 40.0 * (2.0 * std::f64::consts::PI * (i % 24) as f64 / 24.0).sin()
                + 2.0 * noise(i)
        }
        "flat" => 50.0 + 3.0 * noise(i),
        _ => (0..=i).map(noise).sum::<f64>(),
    }
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    start.elapsed().as_secs_f64() * 1000.0 / n as f64
}

fn main() {
    let n = 50;
    println!(
        "estimate() per series, {BUCKETS} buckets of {} min:",
        BUCKET_MS / 60_000
    );
    for name in ["daily", "4h", "flat", "random-walk"] {
        let y: Vec<f64> = (0..BUCKETS).map(|i| shape(name, i)).collect();
        let e = estimate(&y, 0, BUCKET_MS).expect("fits");
        let ms = time(n, || estimate(&y, 0, BUCKET_MS));
        println!(
            "  {name:12} {ms:7.2} ms  season {:?} alpha {} trend {}",
            e.season_ms,
            e.alpha,
            e.phi > 0.0
        );
    }
    let y: Vec<f64> = (0..BUCKETS).map(|i| shape("daily", i)).collect();
    println!("augurs stages on the daily history:");
    let det = PeriodogramDetector::builder()
        .min_period(12)
        .max_period(289)
        .build();
    println!(
        "  periodogram        {:7.3} ms",
        time(n, || det.periodogram(&y))
    );
    println!(
        "  MSTL[144] naive    {:7.3} ms",
        time(n, || MSTLModel::naive(vec![144]).fit(&y).is_ok())
    );
    let ets = |trend: bool| {
        Unfit::new(ModelType {
            error: ErrorComponent::Additive,
            trend: if trend {
                TrendComponent::Additive
            } else {
                TrendComponent::None
            },
            season: SeasonalComponent::None,
        })
        .damped(trend)
        .params(Params {
            alpha: 0.2,
            beta: if trend { 0.02 } else { f64::NAN },
            gamma: f64::NAN,
            phi: if trend { 0.9 } else { f64::NAN },
        })
        .max_iterations(60)
        .fit(&y)
        .is_ok()
    };
    println!("  ETS ANN fixed      {:7.3} ms", time(n, || ets(false)));
    println!("  ETS AAdN fixed     {:7.3} ms", time(n, || ets(true)));

    // The write path's share: feeding one committed sample to a tracked series (one shard
    // lock, no allocation), with few series (cache-resident) and many.
    for series in [1_000u64, 100_000] {
        let config = FitConfig {
            threads: 1,
            cpu_budget: 0.25,
            history_bytes: 1 << 30,
        };
        let fitter = Fitter::new(&config, Metrics::new());
        let keys: Vec<u64> = (0..series)
            .map(|s| s.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
            .collect();
        for &k in &keys {
            fitter.feed(
                k,
                Kind::Gauge,
                &[Fed {
                    ts: 0,
                    value: 1.0,
                    score: 0.1,
                }],
            );
        }
        let rounds = 2_000_000 / series as i64;
        let start = Instant::now();
        for r in 1..=rounds {
            for &k in &keys {
                fitter.feed(
                    k,
                    Kind::Gauge,
                    &[Fed {
                        ts: r * 15_000,
                        value: 1.0,
                        score: 0.1,
                    }],
                );
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / (rounds as f64 * keys.len() as f64);
        println!(
            "feed, one sample, {series} tracked series: {ns:.0} ns (a bucket closes every 40 samples)"
        );
    }

    // The pool under its default budget: 2,000 due series, 10 s of wall time.
    let config = FitConfig {
        threads: 1,
        cpu_budget: 0.25,
        history_bytes: 256 << 20,
    };
    let metrics = Metrics::new();
    let fitter = Arc::new(Fitter::new(&config, metrics.clone()));
    for s in 0..2_000u64 {
        let key = s.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let samples: Vec<Fed> = (0..BUCKETS)
            .map(|i| Fed {
                ts: i as i64 * BUCKET_MS,
                value: shape(if s % 2 == 0 { "daily" } else { "flat" }, i + s as usize),
                score: 0.1,
            })
            .collect();
        fitter.feed(key, Kind::Gauge, &samples);
    }
    let backlog = fitter.backlog();
    let wall = Duration::from_secs(10);
    let start = Instant::now();
    let mut pool = FitPool::start(fitter.clone(), &config);
    std::thread::sleep(wall);
    pool.stop();
    let elapsed = start.elapsed().as_secs_f64();
    let fits: u64 = ["season", "flat", "skipped"]
        .iter()
        .map(|r| metrics.fits.with_label_values(&[r]).get())
        .sum();
    println!(
        "pool, threads 1, cpu_budget 0.25: {fits} fits in {elapsed:.1} s (backlog {backlog} -> {}), cpu {:.2} s = {:.3} of a core, {:.1} fits/s",
        fitter.backlog(),
        metrics.fit_cpu.get(),
        metrics.fit_cpu.get() / elapsed,
        fits as f64 / elapsed
    );
}
