//! Table-driven tests of the model against the behaviours the spec asks for.

// Table-driven: the tables are tuples of borrowed slices, spelled out where they are used.
#![allow(clippy::type_complexity)]

use super::*;

const MIN: i64 = 60_000;
const STEP: i64 = 5 * MIN;

/// Deterministic noise in [-1, 1] (an LCG), so tests need no RNG crate and never flake.
fn noise(i: i64) -> f64 {
    let x = (i as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// Feeds `(ts, value)` pairs; returns the outcome of each.
fn run(params: &Params, kind: Kind, samples: &[(i64, f64)]) -> Vec<Outcome> {
    let mut m = Model::new(kind);
    samples
        .iter()
        .map(|&(ts, v)| m.update(params, ts, v))
        .collect()
}

fn score(o: &Outcome) -> Option<f64> {
    match o {
        Outcome::Scored(f) => Some(f.score),
        _ => None,
    }
}

/// A steady noisy gauge of `n` samples at 5-minute steps, then `tail` from the function.
fn series(n: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (0..n).map(|i| (i * STEP, f(i))).collect()
}

#[test]
fn state_is_small_and_copy() {
    fn is_copy<T: Copy>() {}
    is_copy::<Model>();
    // The aim was 128 bytes; the range of values seen (two f32 and a count) costs 8,
    // the repeats and the time of the last surprise 8 more.
    assert!(
        std::mem::size_of::<Model>() <= 144,
        "{} bytes",
        std::mem::size_of::<Model>()
    );
}

#[test]
fn warm_up_emits_nothing_then_scores() {
    for warmup in [0u32, 1, 10, 30] {
        let p = Params::new(&ModelSettings {
            warmup,
            ..ModelSettings::default()
        });
        let out = run(&p, Kind::Gauge, &series(60, |i| 100.0 + noise(i)));
        let first_scored = out
            .iter()
            .position(|o| matches!(o, Outcome::Scored(_)))
            .unwrap();
        assert_eq!(first_scored, (warmup as usize).max(1), "warmup {warmup}");
        assert!(out[..first_scored].iter().all(|o| *o == Outcome::Warming));
        assert!(out[first_scored..]
            .iter()
            .all(|o| matches!(o, Outcome::Scored(_))));
    }
}

#[test]
fn anomalies_score_above_one_and_normal_data_below() {
    // (case, values, index of the anomaly, expected score at it: above 1?)
    let steady = |i: i64| 100.0 + noise(i);
    type Case = (&'static str, Box<dyn Fn(i64) -> f64>, i64, bool);
    let cases: Vec<Case> = vec![
        (
            "spike",
            Box::new(move |i| steady(i) + if i == 800 { 30.0 } else { 0.0 }),
            800,
            true,
        ),
        (
            "dip",
            Box::new(move |i| steady(i) - if i == 800 { 30.0 } else { 0.0 }),
            800,
            true,
        ),
        (
            "level shift",
            Box::new(move |i| steady(i) + if i >= 800 { 20.0 } else { 0.0 }),
            800,
            true,
        ),
        ("no anomaly", Box::new(steady), 800, false),
        (
            "slow drift",
            Box::new(move |i| steady(i) + i as f64 * 0.01),
            800,
            false,
        ),
    ];
    let p = Params::default();
    for (name, f, at, above) in cases {
        let out = run(&p, Kind::Gauge, &series(1000, f));
        let s = score(&out[at as usize]).unwrap();
        assert_eq!(s > 1.0, above, "{name}: score {s}");
        // Before the anomaly, the band holds almost all of the steady data.
        let over = out[100..at as usize]
            .iter()
            .filter(|o| score(o).unwrap() > 1.0)
            .count();
        assert!(over <= 10, "{name}: {over} false alarms");
    }
}

#[test]
fn one_outlier_does_not_blind_the_band() {
    let p = Params::default();
    let out = run(
        &p,
        Kind::Gauge,
        &series(1000, |i| {
            100.0
                + noise(i)
                + if i == 700 {
                    1000.0
                } else if i == 705 {
                    15.0
                } else {
                    0.0
                }
        }),
    );
    assert!(score(&out[700]).unwrap() > 100.0);
    assert!(
        score(&out[705]).unwrap() > 1.0,
        "second, smaller anomaly: {:?}",
        out[705]
    );
}

#[test]
fn a_huge_outlier_widens_the_band_no_more_than_a_moderate_one() {
    // The post-surprise widening is capped and the learning clips at the band, so whatever the
    // outlier's size, the model comes out of it in the same state: a later, smaller anomaly
    // scores the same, above the interval.
    let p = Params::default();
    let after = |spike: f64| {
        let out = run(
            &p,
            Kind::Gauge,
            &series(800, |i| {
                100.0
                    + noise(i)
                    + match i {
                        700 => spike,
                        720 => 15.0,
                        _ => 0.0,
                    }
            }),
        );
        assert!(score(&out[700]).unwrap() > 1.0, "spike {spike}");
        score(&out[720]).unwrap()
    };
    let moderate = after(30.0);
    assert!(moderate > 1.0, "{moderate}");
    for spike in [1e3, 1e6, 1e12] {
        assert_eq!(after(spike).to_bits(), moderate.to_bits(), "spike {spike}");
    }
}

#[test]
fn a_level_shift_is_adopted() {
    let p = Params::default();
    let out = run(
        &p,
        Kind::Gauge,
        &series(1200, |i| {
            100.0 + noise(i) + if i >= 800 { 50.0 } else { 0.0 }
        }),
    );
    assert!(score(&out[800]).unwrap() > 1.0);
    let Outcome::Scored(f) = out[900] else {
        panic!()
    };
    assert!((f.forecast - 150.0).abs() < 2.0, "{f:?}");
    let late = out[850..]
        .iter()
        .filter(|o| score(o).unwrap() > 1.0)
        .count();
    assert!(late <= 5, "{late} alarms after the shift was adopted");
}

#[test]
fn daily_pattern_is_learnt() {
    // A strong daily wave sampled every 5 minutes; after a few days the forecast follows it and
    // a missing bump (the value stays flat where a peak is due) is an anomaly.
    let day = 288;
    let wave = |i: i64| {
        100.0 + 50.0 * (2.0 * std::f64::consts::PI * i as f64 / day as f64).sin() + noise(i)
    };
    let p = Params::default();
    let out = run(&p, Kind::Gauge, &series(day * 8, wave));
    let late: Vec<f64> = out[(day * 6) as usize..]
        .iter()
        .map(|o| score(o).unwrap())
        .collect();
    let over = late.iter().filter(|s| **s > 1.0).count();
    assert!(over <= 3, "{over} alarms on a learnt daily pattern");
    let errs: Vec<f64> = out[(day * 7) as usize..]
        .iter()
        .zip(series(day * 8, wave)[(day * 7) as usize..].iter())
        .map(|(o, (_, v))| match o {
            Outcome::Scored(f) => (f.forecast - v).abs(),
            _ => f64::NAN,
        })
        .collect();
    let mae = errs.iter().sum::<f64>() / errs.len() as f64;
    assert!(mae < 2.0, "mean absolute one-step error {mae}");
}

#[test]
fn counters_are_rates_with_resets() {
    // 10 per second, scraped every 15 s; reset to 0 at sample 500; rate is unchanged.
    let scrape = 15_000;
    let mut samples = Vec::new();
    let mut total = 0.0;
    for i in 0..1000i64 {
        total += 150.0 + 15.0 * noise(i);
        if i == 500 {
            total = 150.0;
        }
        samples.push((i * scrape, total));
    }
    let p = Params::default();
    let out = run(&p, Kind::Counter, &samples);
    assert_eq!(
        out[0],
        Outcome::Warming,
        "the first counter sample only primes"
    );
    for (i, o) in out.iter().enumerate().skip(100) {
        let Outcome::Scored(f) = o else {
            panic!("{i}: {o:?}")
        };
        assert!((f.forecast - 10.0).abs() < 1.0, "{i}: rate forecast {f:?}");
        assert!(f.score < 1.5, "{i}: reset taken for an anomaly: {f:?}");
        assert!(f.lower >= 0.0);
    }
}

#[test]
fn gaps_and_irregular_intervals() {
    let p = Params::default();
    let mut m = Model::new(Kind::Gauge);
    let mut ts = 0;
    for i in 0..600 {
        // Jittered intervals: 4 to 6 minutes.
        ts += STEP + ((noise(i) * MIN as f64) as i64);
        m.update(&p, ts, 50.0 + noise(i + 7));
    }
    // A few missed scrapes: the band widens a little, an ordinary value is still fine.
    let before = m;
    let o = m.update(&p, ts + 4 * STEP, 50.5);
    assert!(score(&o).unwrap() < 1.0, "{o:?}");
    // A long gap (a day): the model re-anchors on the first value without scoring it.
    let mut m2 = before;
    assert_eq!(m2.update(&p, ts + 288 * STEP, 80.0), Outcome::Warming);
    let o = m2.update(&p, ts + 289 * STEP, 80.2);
    let Outcome::Scored(f) = o else {
        panic!("{o:?}")
    };
    assert!((f.forecast - 80.0).abs() < 1.0 && f.score < 1.0, "{f:?}");
}

#[test]
fn old_duplicate_and_non_finite_samples_are_ignored() {
    let p = Params::default();
    let mut m = Model::new(Kind::Gauge);
    for i in 0..50 {
        m.update(&p, i * STEP, 1.0 + noise(i));
    }
    let before = m;
    for (ts, v) in [
        (49 * STEP, 5.0),
        (10 * STEP, 5.0),
        (60 * STEP, f64::NAN),
        (60 * STEP, f64::INFINITY),
    ] {
        assert_eq!(m.update(&p, ts, v), Outcome::Ignored, "{ts} {v}");
        assert_eq!(m, before, "state changed by an ignored sample");
    }
}

#[test]
fn stale_markers_mark_stale_and_retire_after_grace() {
    let p = Params::default();
    let stale = f64::from_bits(STALE_NAN_BITS);
    assert!(is_stale_marker(stale) && !is_stale_marker(f64::NAN));

    // Stale during warm-up: nothing was emitted, so nothing to mark.
    let mut young = Model::new(Kind::Gauge);
    young.update(&p, 0, 1.0);
    assert_eq!(young.update(&p, STEP, stale), Outcome::Warming);

    let mut m = Model::new(Kind::Gauge);
    for i in 0..100 {
        m.update(&p, i * STEP, 10.0 + noise(i));
    }
    let t = 100 * STEP;
    assert_eq!(m.update(&p, t, stale), Outcome::Stale);
    assert!(m.is_stale());
    assert!(!m.retire_due(&p, t + p.stale_grace_ms - 1));
    assert!(m.retire_due(&p, t + p.stale_grace_ms));
    // The series comes back: it re-anchors, then scores again.
    assert_eq!(m.update(&p, t + STEP, 12.0), Outcome::Warming);
    assert!(!m.is_stale() && !m.retire_due(&p, t + 100 * STEP));
    assert!(matches!(
        m.update(&p, t + 2 * STEP, 12.1),
        Outcome::Scored(_)
    ));

    // A counter is re-primed after staleness (the target likely restarted).
    let mut c = Model::new(Kind::Counter);
    for i in 0..100 {
        c.update(&p, i * STEP, (i * 300) as f64);
    }
    assert_eq!(c.update(&p, t, stale), Outcome::Stale);
    assert_eq!(c.update(&p, t + STEP, 5.0), Outcome::Warming);
    let Outcome::Scored(f) = c.update(&p, t + 2 * STEP, 305.0) else {
        panic!()
    };
    assert!(f.score < 1.0, "{f:?}");
}

#[test]
fn identical_input_gives_identical_bits() {
    let p = Params::default();
    let samples = series(3000, |i| {
        100.0
            + 30.0 * (i as f64 / 40.0).sin()
            + 5.0 * noise(i)
            + if i % 700 == 0 { 80.0 } else { 0.0 }
    });
    let bits = |out: Vec<Outcome>| -> Vec<u64> {
        out.iter()
            .flat_map(|o| match o {
                Outcome::Scored(f) => vec![
                    f.score.to_bits(),
                    f.forecast.to_bits(),
                    f.lower.to_bits(),
                    f.upper.to_bits(),
                ],
                _ => vec![0],
            })
            .collect()
    };
    let a = bits(run(&p, Kind::Gauge, &samples));
    let b = bits(run(&p, Kind::Gauge, &samples));
    assert_eq!(a, b);
    // A tentative update on a copy that is discarded leaves the committed state as it was.
    let mut committed = Model::new(Kind::Gauge);
    for &(ts, v) in &samples[..2000] {
        committed.update(&p, ts, v);
    }
    let mut tentative = committed;
    let first = tentative.update(&p, samples[2000].0, samples[2000].1);
    let mut retry = committed;
    assert_eq!(retry.update(&p, samples[2000].0, samples[2000].1), first);
    assert_eq!(retry, tentative);
}

#[test]
fn confidence_sets_where_the_score_crosses_one() {
    let wide = Params::new(&ModelSettings {
        confidence: 0.999,
        ..ModelSettings::default()
    });
    let narrow = Params::new(&ModelSettings {
        confidence: 0.9,
        ..ModelSettings::default()
    });
    // The early outlier widens the range seen, so the spike at 400 is not a new extreme
    // (whose score would be floored alike at both confidences).
    let samples = series(500, |i| {
        100.0
            + noise(i)
            + [(50, 10.0), (400, 4.0)]
                .iter()
                .find(|s| s.0 == i)
                .map_or(0.0, |s| s.1)
    });
    let (a, b) = (
        run(&wide, Kind::Gauge, &samples),
        run(&narrow, Kind::Gauge, &samples),
    );
    let (Outcome::Scored(fa), Outcome::Scored(fb)) = (a[400], b[400]) else {
        panic!()
    };
    assert!(fb.score > fa.score);
    assert!(fa.upper - fa.lower > fb.upper - fb.lower);
    assert_eq!(fa.forecast, fb.forecast);
}

#[test]
fn a_value_outside_the_range_seen_scores_as_a_far_outlier() {
    let p = Params::default();
    // (case, samples, index of the probe, the least score, the most score)
    let drop_after = |n: i64| series(n + 1, move |i| if i == n { 95.0 } else { 100.0 + noise(i) });
    let cases: Vec<(&str, Vec<(i64, f64)>, usize, f64, f64)> = vec![
        // Just below every earlier value: inside the band by its size alone, but a new low.
        ("new low", drop_after(400), 400, 4.0, f64::INFINITY),
        // The same drop before the range has seen enough samples scores by the band alone.
        ("young range", drop_after(200), 200, 0.0, 3.9),
        // A new high that the forecast expected (a steady climb) is not scored.
        (
            "trend along the forecast",
            series(600, |i| 100.0 + 0.5 * i as f64 + 0.1 * noise(i)),
            599,
            0.0,
            1.0,
        ),
        // Inside the range: an earlier excursion to 120 covers a later 106 (off the forecast
        // by more than half the interval, so only the range keeps it from the floor).
        (
            "inside the range",
            series(500, |i| match i {
                100 => 120.0,
                450 => 106.0,
                _ => 100.0 + noise(i),
            }),
            450,
            0.5,
            3.9,
        ),
    ];
    for (case, samples, at, least, most) in cases {
        let s = score(&run(&p, Kind::Gauge, &samples)[at]).unwrap();
        assert!((least..=most).contains(&s), "{case}: score {s}");
    }
}

#[test]
fn the_range_is_rounded_outwards_so_large_values_are_never_outside_their_own_range() {
    let p = Params::default();
    // Values near 1e12 whose spread is below f32's resolution there (65 536): rounding the
    // bounds to the nearest f32 could put a value just outside; outwards never does.
    let samples = series(600, |i| 1e12 + 100.0 * noise(i));
    let outcomes = run(&p, Kind::Gauge, &samples);
    let worst = outcomes.iter().filter_map(score).fold(0.0, f64::max);
    assert!(worst < state::RANGE_SCORE, "worst score {worst}");
    let mut m = Model::new(Kind::Gauge);
    for &(ts, v) in &samples {
        m.update(&p, ts, v);
    }
    let r = m.to_record();
    assert!(f64::from(r.range_low) <= 1e12 - 90.0 && f64::from(r.range_high) >= 1e12 + 90.0);
    assert_eq!(r.range_seen, state::RANGE_AFTER);
}

#[test]
fn the_range_is_of_the_deseasonalised_value() {
    // Three weeks of hourly samples of a daily cycle between 80 and 120 (the profile beats
    // following the level, so it is applied): the range is of the values less the seasonal
    // offset applied, so its top stays below the raw peaks. Then at the night-time trough a
    // value of 118, inside the raw range: less its (negative) offset it is above anything
    // seen, and the range's top moves above the raw maximum.
    let p = Params::default();
    let hour = 60 * MIN;
    let cycle = |i: i64| 100.0 + 20.0 * (std::f64::consts::TAU * i as f64 / 24.0).sin();
    let probe = 21 * 24 + 18;
    let samples: Vec<(i64, f64)> = (0..probe)
        .map(|i| (i * hour, cycle(i) + 0.5 * noise(i)))
        .collect();
    let raw_high = samples
        .iter()
        .map(|s| s.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut m = Model::new(Kind::Gauge);
    for &(ts, v) in &samples {
        m.update(&p, ts, v);
    }
    let before = f64::from(m.to_record().range_high);
    assert!(
        before < raw_high - 0.5,
        "range top {before}, raw {raw_high}"
    );
    let s = score(&m.update(&p, probe * hour, 118.0)).unwrap();
    let after = f64::from(m.to_record().range_high);
    assert!(after > raw_high, "range top {after}, raw {raw_high}");
    assert!(s >= state::RANGE_SCORE, "score {s}");
}

#[test]
fn a_value_that_stops_moving_is_stuck() {
    let p = Params::default();
    let k = state::STUCK_AFTER as i64;
    // (case, kind, samples, first frozen sample, the frozen samples floored at the far-outlier
    // score, as offsets from the first)
    let frozen =
        |n: i64, f: fn(i64) -> f64| series(n + 30, move |i| if i >= n { f(n) } else { f(i) });
    let gauge: fn(i64) -> f64 = |i| 100.0 + noise(i);
    // A gauge that repeats every value once (scraped twice as often as it is updated).
    let coarse: fn(i64) -> f64 = |i| 100.0 + noise(i / 2);
    // A counter with a varying increase per scrape, which then stops increasing.
    let counter: fn(i64) -> f64 = |i| (0..=i).map(|j| 5.0 + noise(j)).sum();
    let cases: Vec<(&str, Kind, Vec<(i64, f64)>, i64, Vec<i64>)> = vec![
        // Only the k-th repeat: once, not on every stuck sample.
        (
            "frozen gauge",
            Kind::Gauge,
            frozen(400, gauge),
            400,
            vec![k],
        ),
        ("young series", Kind::Gauge, frozen(200, gauge), 200, vec![]),
        (
            "a series that repeats anyway",
            Kind::Gauge,
            frozen(400, coarse),
            400,
            vec![],
        ),
        // A rate of zero is a new low at once; the k-th repeat is stuck as well.
        (
            "stopped counter",
            Kind::Counter,
            frozen(400, counter),
            400,
            vec![1, k],
        ),
    ];
    for (case, kind, samples, from, want) in cases {
        let scores: Vec<f64> = run(&p, kind, &samples)
            .iter()
            .map(|o| score(o).unwrap_or(0.0))
            .collect();
        let floored: Vec<i64> = (from..samples.len() as i64)
            .filter(|&i| scores[i as usize] >= state::RANGE_SCORE)
            .map(|i| i - from)
            .collect();
        assert_eq!(floored, want, "{case}: {:?}", &scores[from as usize..]);
    }
}

#[test]
fn a_surprise_at_the_same_time_every_day_becomes_routine() {
    let day = 24 * 60 * MIN;
    let days = 8;
    // A calm gauge with a burst once a day from day 2 on: `burst` from `at(d)` on day `d`;
    // the scores of each day's burst.
    let bursts = |p: &Params, at: &dyn Fn(i64) -> i64, burst: &[f64]| -> Vec<Vec<f64>> {
        let mut m = Model::new(Kind::Gauge);
        let mut out = vec![Vec::new(); days as usize];
        for i in 0..days * day / STEP {
            let ts = i * STEP;
            let (d, into) = (ts / day, (ts % day - at(ts / day)) / STEP);
            let v = match burst.get(into as usize) {
                Some(&b) if d >= 2 && into >= 0 => b,
                _ => 100.0 + noise(i),
            };
            let s = score(&m.update(p, ts, v)).unwrap_or(0.0);
            if d >= 2 && (0..burst.len() as i64).contains(&into) {
                out[d as usize].push(s);
            }
        }
        out.split_off(2)
    };
    let max = |scores: &[f64]| scores.iter().cloned().fold(0.0, f64::max);
    let p = Params::default();
    let spike = [150.0];
    // 03:00, give or take ten minutes: the first two spikes are surprises, the rest routine.
    let cron = bursts(&p, &|d| 3 * 60 * MIN + (d % 3 - 1) * 10 * MIN, &spike);
    assert!(cron[..2].iter().all(|b| max(b) > 2.0), "{cron:?}");
    assert!(cron[2..].iter().all(|b| max(b) <= 1.0), "{cron:?}");
    // A job of several samples, each a surprise: one episode a day, routine from the third.
    let job = [150.0, 190.0, 230.0, 150.0];
    let cron = bursts(&p, &|_| 3 * 60 * MIN, &job);
    assert!(
        cron[0].iter().filter(|&&s| s > 2.0).count() >= 2,
        "{cron:?}"
    );
    assert!(cron[..2].iter().all(|b| max(b) > 2.0), "{cron:?}");
    assert!(cron[2..].iter().all(|b| max(b) < 2.0), "{cron:?}");
    // Two hours later each day: never a recurrence.
    let drifting = bursts(&p, &|d| d * 2 * 60 * MIN, &spike);
    assert!(drifting.iter().all(|b| max(b) > 2.0), "{drifting:?}");
    // Without a daily season there is no time of day to recur at.
    let none = Params::new(&ModelSettings {
        seasonality: SeasonSpec::None,
        ..ModelSettings::default()
    });
    let flat = bursts(&none, &|_| 3 * 60 * MIN, &spike);
    assert!(flat.iter().all(|b| max(b) > 2.0), "{flat:?}");
}
