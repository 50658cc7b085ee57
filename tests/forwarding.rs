//! What omen forwards: exactly the kept series, byte for byte, plus kept metadata; and what
//! it refuses (413, 415, 400) without forwarding anything.

// Table-driven: the tables are tuples of borrowed slices, spelled out where they are used.
#![allow(clippy::type_complexity)]

mod common;

use common::*;
use omen::proto;
use prost::Message;

const CONFIG: &str = r#"
downstream:
  url: DOWNSTREAM
whitelist:
  - up
  - '{__name__=~"http_.*", job="api"}'
"#;

#[tokio::test]
async fn forwards_exactly_the_kept_series() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    let mut hist = series(
        &[
            ("__name__", "http_request_duration_seconds"),
            ("job", "api"),
        ],
        &[],
    );
    hist.histograms.push(proto::Histogram {
        count: Some(proto::histogram::Count::CountInt(4)),
        sum: 2.0,
        schema: 1,
        positive_spans: vec![proto::BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![3, -2],
        timestamp: 1000,
        ..Default::default()
    });
    let mut with_exemplar = series(
        &[("__name__", "http_requests_total"), ("job", "api")],
        &[(1000, 5.0), (2000, 6.0)],
    );
    with_exemplar.exemplars.push(proto::Exemplar {
        labels: vec![proto::Label {
            name: "trace_id".into(),
            value: "abc".into(),
        }],
        value: 1.0,
        timestamp: 1500,
    });
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let kept = vec![
        series(
            &[("__name__", "up"), ("job", "web")],
            &[(1000, 1.0), (2000, stale)],
        ),
        with_exemplar,
        hist,
    ];
    let dropped = [
        series(
            &[("__name__", "http_requests_total"), ("job", "web")],
            &[(1000, 1.0)],
        ),
        series(
            &[("__name__", "go_goroutines"), ("job", "api")],
            &[(1000, 1.0), (2000, 2.0)],
        ),
    ];
    let mut all = vec![
        dropped[0].clone(),
        kept[0].clone(),
        dropped[1].clone(),
        kept[1].clone(),
        kept[2].clone(),
    ];
    let req = proto::WriteRequest {
        timeseries: std::mem::take(&mut all),
        metadata: vec![
            proto::MetricMetadata {
                r#type: 1,
                metric_family_name: "http_requests".into(),
                help: "h".into(),
                unit: String::new(),
            },
            proto::MetricMetadata {
                r#type: 2,
                metric_family_name: "go_goroutines".into(),
                help: "g".into(),
                unit: String::new(),
            },
        ],
    };
    let a = write(&omen, &req).await;
    assert_eq!(a.status, 204, "{}", a.body);
    let got = fake.received();
    assert_eq!(got.len(), 1);
    let want = proto::WriteRequest {
        timeseries: kept.clone(),
        metadata: vec![req.metadata[0].clone()],
    };
    assert_eq!(
        got[0].raw,
        want.encode_to_vec(),
        "kept series and metadata, byte for byte, in order"
    );
    assert_eq!(metric(&omen, "omen_forwarded_samples_total").await, 5.0);
    assert_eq!(metric(&omen, "omen_received_samples_total").await, 8.0);
    assert_eq!(
        metric(&omen, "omen_dropped_samples_total{reason=\"whitelist\"}").await,
        3.0
    );
}

#[tokio::test]
async fn nothing_kept_means_no_downstream_call() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    let req = request(vec![series(
        &[("__name__", "go_goroutines")],
        &[(1000, 1.0)],
    )]);
    assert_eq!(write(&omen, &req).await.status, 204);
    assert_eq!(
        write(&omen, &request(vec![])).await.status,
        204,
        "an empty request is fine too"
    );
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn partly_invalid_request_forwards_the_valid_rest_and_answers_400() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    let good = series(&[("__name__", "up"), ("job", "api")], &[(1000, 1.0)]);
    let req = request(vec![
        series(&[("job", "api"), ("__name__", "up")], &[(1000, 1.0)]), // unsorted
        good.clone(),
        series(
            &[("__name__", "up"), ("job", "x")],
            &[(2000, 1.0), (1000, 1.0)],
        ), // out of order
    ]);
    let a = write(&omen, &req).await;
    assert_eq!(a.status, 400);
    assert!(
        a.body.contains("unsorted_labels"),
        "the first reason: {}",
        a.body
    );
    let got = fake.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].request.timeseries, vec![good]);
    assert_eq!(
        metric(
            &omen,
            "omen_dropped_samples_total{reason=\"unsorted_labels\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &omen,
            "omen_dropped_samples_total{reason=\"out_of_order_samples\"}"
        )
        .await,
        2.0
    );

    // Delivery failure wins over the invalid-series 400: Prometheus must retry.
    fake.reply(Reply::status(503));
    assert_eq!(write(&omen, &req).await.status, 503);
}

#[tokio::test]
async fn refusals_forward_nothing() {
    let fake = FakeDownstream::start().await;
    let yaml = "server: {max_decoded_bytes: 4KiB}\ndownstream: {url: DOWNSTREAM}\n";
    let omen = Omen::start(yaml, &fake.url()).await;
    let url = omen.url("/api/v1/write");
    let valid = snap::raw::Encoder::new()
        .compress_vec(&request(vec![series(&[("__name__", "up")], &[(1, 1.0)])]).encode_to_vec())
        .unwrap();
    let big_raw = request(
        (0..200)
            .map(|i| series(&[("__name__", "up"), ("i", &i.to_string())], &[(1, 1.0)]))
            .collect(),
    )
    .encode_to_vec();
    assert!(big_raw.len() > 4096);
    let big = snap::raw::Encoder::new().compress_vec(&big_raw).unwrap();
    let cases: Vec<(&str, Vec<(&str, &str)>, Vec<u8>, u16)> = vec![
        (
            "json content type",
            vec![("content-type", "application/json")],
            valid.clone(),
            415,
        ),
        (
            "gzip encoding",
            vec![("content-encoding", "gzip")],
            valid.clone(),
            415,
        ),
        (
            "remote-write 2.0",
            vec![(
                "content-type",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            )],
            valid.clone(),
            415,
        ),
        ("decoded size over the cap", RW_HEADERS.to_vec(), big, 413),
        (
            "body over the cap",
            RW_HEADERS.to_vec(),
            vec![0u8; 5000],
            413,
        ),
        (
            "not snappy",
            RW_HEADERS.to_vec(),
            b"hello, world".to_vec(),
            400,
        ),
        ("empty body", RW_HEADERS.to_vec(), vec![], 400),
        (
            "snappy of garbage protobuf",
            RW_HEADERS.to_vec(),
            snap::raw::Encoder::new()
                .compress_vec(&[0x0a, 0x7f, 1])
                .unwrap(),
            400,
        ),
        (
            "no headers at all reads as 1.0 + snappy",
            vec![],
            valid.clone(),
            204,
        ),
    ];
    for (what, headers, body, want) in cases {
        let a = post(&url, &headers, body).await;
        assert_eq!(a.status, want, "{what}: {}", a.body);
        if want != 204 {
            assert!(
                !a.body.trim().is_empty() && !a.body.trim().contains('\n'),
                "{what}: one-line reason, got {:?}",
                a.body
            );
        }
    }
    assert_eq!(
        fake.received().len(),
        1,
        "only the valid request was forwarded"
    );
    assert_eq!(
        metric(
            &omen,
            "omen_bad_requests_total{reason=\"unsupported_media_type\"}"
        )
        .await,
        3.0
    );
    assert_eq!(
        metric(&omen, "omen_bad_requests_total{reason=\"too_large\"}").await,
        2.0
    );
}
