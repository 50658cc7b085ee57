//! Derived series in the write path: emission after warm-up, the commit rule (a retry
//! after a failed delivery yields byte-identical derived series), determinism across
//! instances, old samples not re-modeled, tenant isolation, and LRU eviction.

mod common;

use common::*;
use omen::proto;

const CONFIG: &str = r#"
downstream: {url: DOWNSTREAM}
models:
  max_series: 1000
  rules:
    - match: '{__name__=~"temp.*"}'
      warmup: 10
      outputs: [score, forecast, bounds]
      seasonality: none
"#;

/// A gauge with a little deterministic wobble, one sample every 15 s.
fn point(i: i64) -> (i64, f64) {
    let wobble = [0.0, 0.3, -0.2, 0.1, -0.3, 0.2][(i % 6) as usize];
    (1_700_000_000_000 + i * 15_000, 20.0 + wobble)
}

fn temp(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> proto::WriteRequest {
    let mut pairs = vec![("__name__", "temperature")];
    pairs.extend_from_slice(labels);
    request(vec![series(&pairs, samples)])
}

fn derived<'a>(got: &'a Received, name: &str) -> Vec<&'a proto::TimeSeries> {
    got.request
        .timeseries
        .iter()
        .filter(|t| {
            t.labels
                .iter()
                .any(|l| l.name == "__name__" && l.value == name)
        })
        .collect()
}

#[tokio::test]
async fn derived_series_after_warmup_with_labels() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    for i in 0..40 {
        assert_eq!(
            write(
                &omen,
                &temp(&[("cluster", "eu1"), ("job", "x")], &[point(i)])
            )
            .await
            .status,
            204
        );
    }
    let got = fake.received();
    assert!(
        derived(&got[3], "anomaly_score").is_empty(),
        "nothing during warm-up"
    );
    let last = got.last().unwrap();
    assert_eq!(
        last.request.timeseries.len(),
        5,
        "original + score, forecast, lower, upper"
    );
    let score = derived(last, "anomaly_score")[0];
    let names: Vec<(&str, &str)> = score
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("__name__", "anomaly_score"),
            ("cluster", "eu1"),
            ("for", "temperature"),
            ("job", "x")
        ]
    );
    assert_eq!(
        score.samples[0].timestamp,
        point(39).0,
        "at the sample's own timestamp"
    );
    assert!(
        score.samples[0].value <= 1.0,
        "steady data scores ≤ 1: {}",
        score.samples[0].value
    );
    let lower = derived(last, "anomaly_forecast_lower")[0].samples[0].value;
    let upper = derived(last, "anomaly_forecast_upper")[0].samples[0].value;
    let forecast = derived(last, "anomaly_forecast")[0].samples[0].value;
    assert!(
        lower < forecast && forecast < upper,
        "{lower} < {forecast} < {upper}"
    );

    // A jump far outside the band scores above 1.
    write(
        &omen,
        &temp(&[("cluster", "eu1"), ("job", "x")], &[(point(40).0, 35.0)]),
    )
    .await;
    let got = fake.received();
    let jump = derived(got.last().unwrap(), "anomaly_score")[0].samples[0].value;
    assert!(jump > 1.0, "jump scores {jump}");
    assert!(metric(&omen, "omen_derived_samples_total").await > 0.0);
}

#[tokio::test]
async fn retry_after_failed_delivery_is_byte_identical() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    for i in 0..20 {
        write(&omen, &temp(&[], &[point(i)])).await;
    }
    let next = temp(&[], &[point(20), point(21), point(22)]);
    fake.reply(Reply::status(503));
    assert_eq!(write(&omen, &next).await.status, 503);
    fake.reply(Reply::status(500));
    assert_eq!(write(&omen, &next).await.status, 503);
    assert_eq!(write(&omen, &next).await.status, 204);
    let got = fake.received();
    let n = got.len();
    assert_eq!(
        got[n - 3].raw,
        got[n - 1].raw,
        "discarded updates: the retry computes the same"
    );
    assert_eq!(got[n - 2].raw, got[n - 1].raw);
    assert_eq!(derived(&got[n - 1], "anomaly_score")[0].samples.len(), 3);

    // Replaying committed samples forwards them but models nothing.
    assert_eq!(write(&omen, &next).await.status, 204);
    let again = fake.received().pop().unwrap();
    assert_eq!(
        again.request.timeseries.len(),
        1,
        "only the original: {:?}",
        again.request.timeseries
    );
}

#[tokio::test]
async fn downstream_400_commits() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    for i in 0..20 {
        write(&omen, &temp(&[], &[point(i)])).await;
    }
    fake.reply(Reply::status(400).body("out of order sample"));
    assert_eq!(write(&omen, &temp(&[], &[point(20)])).await.status, 400);
    write(&omen, &temp(&[], &[point(20)])).await;
    let again = fake.received().pop().unwrap();
    assert_eq!(
        again.request.timeseries.len(),
        1,
        "the 400 committed the update: not modeled twice"
    );
}

/// An omen with `CONFIG` and the fake downstream it writes to.
async fn omen_and_downstream() -> (Omen, FakeDownstream) {
    let fake = FakeDownstream::start().await;
    (Omen::start(CONFIG, &fake.url()).await, fake)
}

#[tokio::test]
async fn two_instances_send_identical_bodies() {
    let ((a, fa), (b, fb)) = (omen_and_downstream().await, omen_and_downstream().await);
    for i in 0..30 {
        let req = temp(&[("__replica__", "a")], &[point(i)]);
        write(&a, &req).await;
        write(&b, &req).await;
    }
    let (ga, gb) = (fa.received(), fb.received());
    assert_eq!(ga.len(), gb.len());
    for (x, y) in ga.iter().zip(&gb) {
        assert_eq!(x.raw, y.raw);
    }
    assert!(!derived(ga.last().unwrap(), "anomaly_score").is_empty());
}

#[tokio::test]
async fn tenants_do_not_share_state() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    for i in 0..20 {
        write_with(&omen, &temp(&[], &[point(i)]), &[("x-scope-orgid", "a")]).await;
    }
    write_with(&omen, &temp(&[], &[point(20)]), &[("x-scope-orgid", "b")]).await;
    let got = fake.received().pop().unwrap();
    assert!(
        derived(&got, "anomaly_score").is_empty(),
        "tenant b starts its own model (warming up)"
    );
    write_with(&omen, &temp(&[], &[point(20)]), &[("x-scope-orgid", "a")]).await;
    let got = fake.received().pop().unwrap();
    assert_eq!(
        derived(&got, "anomaly_score").len(),
        1,
        "tenant a's model is warm"
    );
}

#[tokio::test]
async fn lru_eviction_under_max_series() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(
        &CONFIG.replace("max_series: 1000", "max_series: 32"),
        &fake.url(),
    )
    .await;
    for round in 0..2 {
        let ts: Vec<_> = (0..200)
            .map(|i| {
                series(
                    &[("__name__", "temperature"), ("i", &i.to_string())],
                    &[point(round)],
                )
            })
            .collect();
        assert_eq!(write(&omen, &request(ts)).await.status, 204);
    }
    let models = omen.app.models().len();
    assert!(models <= 32, "bounded by max_series: {models}");
    assert_eq!(metric(&omen, "omen_models").await, models as f64);
    assert!(metric(&omen, "omen_model_evictions_total").await >= 200.0 - 32.0);
}

/// The key omen gives a series (label-set hash): what a model file is keyed by.
async fn key_of(labels: &[(&str, &str)]) -> u64 {
    let fake = FakeDownstream::start().await;
    let probe = Omen::start(CONFIG, &fake.url()).await;
    write(&probe, &temp(labels, &[point(0)])).await;
    let models = probe.app.models();
    let keys: Vec<u64> = (0..models.shards())
        .flat_map(|s| models.entries(s))
        .map(|e| e.0)
        .collect();
    assert_eq!(keys.len(), 1);
    keys[0]
}

fn forecasts(got: &[Received], room: &str) -> Vec<(i64, f64)> {
    got.iter()
        .flat_map(|r| derived(r, "anomaly_forecast"))
        .filter(|t| t.labels.iter().any(|l| l.name == "room" && l.value == room))
        .flat_map(|t| t.samples.iter().map(|s| (s.timestamp, s.value)))
        .collect()
}

#[tokio::test]
async fn imported_parameters_replace_the_rules_and_unseen_series_start_from_the_import() {
    use omen::model::{Kind, Model, ModelSettings, Outcome, Params};
    use omen::persist::{import, ImportConfig, Row, SeriesParams, Writer};

    let (x, y) = ([("room", "x")], [("room", "y")]);
    let key_y = key_of(&y).await;
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    for i in 0..20 {
        write(&omen, &temp(&x, &[point(i)])).await;
    }
    let models = omen.app.models();
    let (key_x, _, online_x) = (0..models.shards())
        .flat_map(|s| models.entries(s))
        .next()
        .unwrap();

    // The import: x with a state that must not be used (x has a running model), y (never
    // seen) warmed up around 500, both with alpha 0.9.
    let rule = Params::new(&ModelSettings::from(
        &omen.app.state().config.models.rules[0],
    ));
    let mut bogus = Model::new(Kind::Gauge);
    for i in 0..50 {
        bogus.update(&rule, 1_600_000_000_000 + i * 15_000, 1e6);
    }
    let mut warm_y = Model::new(Kind::Gauge);
    for i in 0..50 {
        // Up to just before the next samples (a long gap would re-anchor the level).
        warm_y.update(
            &rule,
            point(20).0 - (50 - i) * 15_000,
            500.0 + (i % 3) as f64,
        );
    }
    let params = SeriesParams {
        alpha: Some(0.9),
        ..SeriesParams::default()
    };
    let dir = std::env::temp_dir().join(format!("omen-import-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("models.arrow");
    let mut w = Writer::create(&file).unwrap();
    w.push(&[
        Row {
            key: key_x,
            rule: 0,
            state: bogus.to_record(),
            params,
        },
        Row {
            key: key_y,
            rule: 0,
            state: warm_y.to_record(),
            params,
        },
    ])
    .unwrap();
    w.commit().unwrap();
    let config = ImportConfig {
        path: file,
        poll_interval: std::time::Duration::from_secs(30),
        max_series: 1_000,
    };
    assert_eq!(
        import::reload(models, &config, omen.app.metrics()).unwrap(),
        2
    );

    let before = fake.received().len();
    for i in 20..25 {
        let p = point(i);
        let req = request(vec![
            temp(&x, &[p]).timeseries.remove(0),
            temp(&y, &[(p.0, p.1 + 480.0)]).timeseries.remove(0),
        ]);
        assert_eq!(write(&omen, &req).await.status, 204);
    }
    // The same arithmetic done here: x continues its online state, y starts from the
    // imported one (no warm-up), both with the rule's parameters and alpha 0.9.
    let p = params.apply(&rule);
    let expect = |mut m: Model, offset: f64| -> Vec<(i64, f64)> {
        (20..25)
            .filter_map(|i| {
                let (t, v) = point(i);
                match m.update(&p, t, v + offset) {
                    Outcome::Scored(f) => Some((t, f.forecast)),
                    _ => None,
                }
            })
            .collect()
    };
    let got = fake.received()[before..].to_vec();
    assert_eq!(forecasts(&got, "x"), expect(online_x, 0.0));
    let y_forecasts = forecasts(&got, "y");
    assert_eq!(y_forecasts.len(), 5, "y: scored from its first sample");
    assert_eq!(y_forecasts, expect(warm_y, 480.0));
    // And alpha 0.9 is not the rule's: the rule's parameters would forecast otherwise.
    assert_ne!(rule.alpha, 0.9);
}

/// A request is routed and modeled in chunks of series whose lookups are batched: the
/// chunking must not show. 700 series (three chunks), where some series repeat within a
/// chunk and across chunk borders, sent as one request per round to one omen and one
/// series per request to another, give the same series in the same order, sample for
/// sample, and both commit the same models (the next round agrees too).
#[tokio::test]
async fn a_large_request_is_modeled_as_its_series_one_by_one() {
    let ((a, fa), (b, fb)) = (omen_and_downstream().await, omen_and_downstream().await);
    // Series j of a round: room j % 300, so rooms 0..100 come three times (within the
    // first chunk of 256 and across both chunk borders), the others twice or once.
    let room = |j: usize| format!("r{}", j % 300);
    for round in 0..14i64 {
        let mut all = Vec::new();
        for j in 0..700usize {
            // Each occurrence of a room in a round carries a later sample than the last.
            let at = round * 3 + (j / 300) as i64;
            let (ts, v) = point(at);
            let s = series(
                &[("__name__", "temperature"), ("room", &room(j))],
                &[(ts, v + (j % 300) as f64)],
            );
            let one = request(vec![s.clone()]);
            assert_eq!(write(&b, &one).await.status, 204);
            all.push(s);
        }
        assert_eq!(write(&a, &request(all)).await.status, 204);
    }
    let whole: Vec<proto::TimeSeries> = fa
        .received()
        .into_iter()
        .flat_map(|r| r.request.timeseries)
        .collect();
    let one_by_one: Vec<proto::TimeSeries> = fb
        .received()
        .into_iter()
        .flat_map(|r| r.request.timeseries)
        .collect();
    let scores = whole
        .iter()
        .filter(|t| t.labels.iter().any(|l| l.value == "anomaly_score"))
        .count();
    assert!(scores > 700, "derived series were sent: {scores}");
    assert_eq!(whole.len(), one_by_one.len());
    for (i, (x, y)) in whole.iter().zip(&one_by_one).enumerate() {
        assert_eq!(x, y, "series {i} of the stream");
    }
}
