//! The page in `serve` mode, through the HTTP surface with a fake downstream: the record
//! shows what omen derived (value, band, score per series), stays within
//! `ui.max_series` × `ui.points`, admits a new series when full only if it is anomalous
//! and more so than the calmest track (which it replaces), and the page can be turned off.

mod common;

use common::*;
use omen::proto;
use serde_json::Value;

const CONFIG: &str = r#"
downstream: {url: DOWNSTREAM}
models:
  rules:
    - match: '{__name__=~"temp.*"}'
      warmup: 10
      seasonality: none
ui: {max_series: 16, points: 20}
"#;

fn point(i: i64) -> (i64, f64) {
    let wobble = [0.0, 0.3, -0.2, 0.1, -0.3, 0.2][(i % 6) as usize];
    (1_700_000_000_000 + i * 15_000, 20.0 + wobble)
}

fn room(r: usize, samples: &[(i64, f64)]) -> proto::TimeSeries {
    series(
        &[("__name__", "temperature"), ("room", &format!("r{r:03}"))],
        samples,
    )
}

async fn json(omen: &Omen, path: &str) -> Value {
    let a = get(&omen.url(path)).await;
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    assert_eq!(a.headers["content-type"], "application/json");
    serde_json::from_str(&a.body).unwrap()
}

#[tokio::test]
async fn record_is_bounded_and_admits_anomalous_series_when_full() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    // 64 calm rooms: one slot per shard in a record of 16.
    for i in 0..40 {
        let all = (0..64).map(|r| room(r, &[point(i)])).collect();
        assert_eq!(write(&omen, &request(all)).await.status, 204);
    }
    let status = json(&omen, "/api/omen/status").await;
    assert_eq!(status["mode"], "serve");
    assert_eq!(status["models"]["count"], 64);
    assert_eq!(status["record"]["max_series"], 16);
    assert_eq!(status["record"]["points"], 20);
    let tracked = status["record"]["series"].as_u64().unwrap();
    assert!(tracked <= 16, "bounded: {tracked}");
    assert_eq!(status["downstream"]["health"], "idle");

    let ranked = json(&omen, "/api/omen/series?limit=100").await;
    assert_eq!(ranked["total"], tracked);
    let row = &ranked["series"][0];
    assert_eq!(row["for"], "temperature");
    assert!(row["score"].as_f64().unwrap() <= 1.0, "{row}");
    let detail = json(
        &omen,
        &format!("/api/omen/series/{}", row["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        detail["t"].as_array().unwrap().len(),
        20,
        "ring of ui.points"
    );
    for k in ["value", "forecast", "lower", "upper", "score"] {
        assert_eq!(detail[k].as_array().unwrap().len(), 20, "{k}");
    }
    let (lo, hi) = (
        detail["lower"][19].as_f64().unwrap(),
        detail["upper"][19].as_f64().unwrap(),
    );
    let v = detail["value"][19].as_f64().unwrap();
    assert!(lo < v && v < hi, "{lo} < {v} < {hi}");

    // The rooms not tracked jump, the tracked ones stay calm: the record is full, so the
    // jumping rooms take the place of calmer ones.
    let tracked_rooms: Vec<String> = ranked["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| {
            let labels = row["labels"].as_array()?;
            let room = labels.iter().find(|l| l[0] == "room")?;
            Some(room[1].as_str()?.to_string())
        })
        .collect();
    assert_eq!(tracked_rooms.len() as u64, tracked);
    let all = (0..64)
        .map(|r| {
            let calm = tracked_rooms.contains(&format!("r{r:03}"));
            room(r, &[(point(40).0, if calm { point(40).1 } else { 40.0 })])
        })
        .collect();
    assert_eq!(write(&omen, &request(all)).await.status, 204);
    let status = json(&omen, "/api/omen/status").await;
    assert!(status["record"]["series"].as_u64().unwrap() <= 16);
    assert!(
        status["record"]["evictions"].as_u64().unwrap() > 0,
        "{status}"
    );
    let ranked = json(&omen, "/api/omen/series?limit=1&rank=window").await;
    assert!(
        ranked["series"][0]["score"].as_f64().unwrap() > 1.0,
        "{ranked}"
    );
    assert_eq!(ranked["series"].as_array().unwrap().len(), 1);

    // The page and its assets; unknown ids and paths are 404s.
    let page = get(&omen.url("/")).await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(
        get(&omen.url("/api/omen/series/00000000000000ff"))
            .await
            .status,
        404
    );
    assert_eq!(get(&omen.url("/api/omen/demo")).await.status, 404);
}

#[tokio::test]
async fn page_can_be_turned_off() {
    let fake = FakeDownstream::start().await;
    let config = CONFIG.replace("ui: {max_series: 16, points: 20}", "ui: {enabled: false}");
    let omen = Omen::start(&config, &fake.url()).await;
    for i in 0..12 {
        write(&omen, &request(vec![room(1, &[point(i)])])).await;
    }
    assert_eq!(get(&omen.url("/")).await.status, 404);
    assert_eq!(get(&omen.url("/api/omen/status")).await.status, 404);
    assert_eq!(get(&omen.url("/-/healthy")).await.status, 200);
}
