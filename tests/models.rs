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

#[tokio::test]
async fn two_instances_send_identical_bodies() {
    let (fa, fb) = (FakeDownstream::start().await, FakeDownstream::start().await);
    let (a, b) = (
        Omen::start(CONFIG, &fa.url()).await,
        Omen::start(CONFIG, &fb.url()).await,
    );
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
