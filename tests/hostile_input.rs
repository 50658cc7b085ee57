//! The corpus of hostile and malformed requests: each case with the status and reason
//! omen must answer, checked through HTTP with a fake downstream that records what is
//! forwarded. Nothing partial is forwarded except the valid rest of a request whose
//! invalid series were dropped (the documented Cortex-like rule).

mod common;

use common::*;
use omen::proto;
use prost::Message;

/// What a case expects.
struct Case {
    what: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    /// A piece of the one-line reason (or "" for success).
    reason: &'static str,
    /// Series that must reach downstream.
    forwarded: usize,
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

fn rw(ts: Vec<proto::TimeSeries>) -> Vec<u8> {
    snappy(&request(ts).encode_to_vec())
}

fn up(samples: &[(i64, f64)]) -> proto::TimeSeries {
    series(&[("__name__", "up"), ("job", "x")], samples)
}

fn case(
    what: &'static str,
    body: Vec<u8>,
    status: u16,
    reason: &'static str,
    forwarded: usize,
) -> Case {
    Case {
        what,
        headers: RW_HEADERS.to_vec(),
        body,
        status,
        reason,
        forwarded,
    }
}

fn corpus() -> Vec<Case> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let valid = rw(vec![up(&[(now, 1.0)])]);
    let raw_valid = request(vec![up(&[(now, 1.0)])]).encode_to_vec();
    // Declares 10 bytes, then a copy from offset 0: invalid in the block format.
    let corrupt = vec![0x0a, 0x01, 0x00];
    let many_labels: Vec<(String, String)> =
        (0..100).map(|i| (format!("l{i:03}"), "v".into())).collect();
    let mut pairs: Vec<(&str, &str)> = vec![("__name__", "up")];
    pairs.extend(many_labels.iter().map(|(a, b)| (a.as_str(), b.as_str())));
    let huge_value = "x".repeat(10_000);
    // A label value of invalid UTF-8, spliced into an otherwise valid series.
    let mut bad_utf8 = request(vec![series(
        &[("__name__", "up"), ("job", "\u{1}\u{1}")],
        &[(now, 1.0)],
    )])
    .encode_to_vec();
    let at = bad_utf8.windows(2).position(|w| w == [1, 1]).unwrap();
    bad_utf8[at] = 0xff;
    bad_utf8[at + 1] = 0xfe;
    // A remote-write 2.0 Request: symbols (4) and a series (5) with label refs.
    let mut v2 = vec![0x22, 0x00, 0x22, 0x08];
    v2.extend_from_slice(b"__name__");
    v2.extend_from_slice(&[0x22, 0x02, b'u', b'p', 0x2a, 0x04, 0x0a, 0x02, 0x01, 0x02]);
    let gzip_magic = vec![
        0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03, 0x01, 0x00, 0x00, 0xff, 0xff,
    ];

    vec![
        case(
            "truncated snappy",
            valid[..valid.len() - 4].to_vec(),
            400,
            "snappy",
            0,
        ),
        case("corrupt snappy", corrupt, 400, "snappy", 0),
        case(
            "snappy declaring 4 GiB",
            vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x01],
            413,
            "exceeds the limit",
            0,
        ),
        case(
            "framed snappy (stream format)",
            [b"\xff\x06\x00\x00sNaPpY".to_vec(), valid.clone()].concat(),
            400,
            "snappy",
            0,
        ),
        case(
            "protobuf with wrong wire types",
            snappy(&[0x0d, 0, 0, 0, 0]),
            400,
            "wrong wire type",
            0,
        ),
        case(
            "protobuf length past the end",
            snappy(&[0x0a, 0xff, 0x01, 0x00]),
            400,
            "past the end",
            0,
        ),
        case(
            "remote-write 2.0 body under a 1.0 content type",
            snappy(&v2),
            400,
            "remote-write 2.0",
            0,
        ),
        case(
            "valid request with a 2.0 tail",
            snappy(&[raw_valid.clone(), vec![0x2a, 0x00]].concat()),
            400,
            "remote-write 2.0",
            0,
        ),
        case(
            "huge label count",
            rw(vec![series(&pairs, &[(now, 1.0)]), up(&[(now, 1.0)])]),
            400,
            "too_many_labels",
            1,
        ),
        case(
            "huge label value",
            rw(vec![series(
                &[("__name__", "up"), ("v", &huge_value)],
                &[(now, 1.0)],
            )]),
            400,
            "label_value_too_long",
            0,
        ),
        case(
            "non-UTF-8 label value",
            snappy(&bad_utf8),
            400,
            "invalid_utf8",
            0,
        ),
        case(
            "negative timestamp",
            rw(vec![up(&[(-1000, 1.0)])]),
            400,
            "timestamp_out_of_range",
            0,
        ),
        case(
            "far-future timestamp",
            rw(vec![
                up(&[(now + 86_400_000, 1.0)]),
                series(&[("__name__", "ok")], &[(now, 1.0)]),
            ]),
            400,
            "timestamp_out_of_range",
            1,
        ),
        case(
            "samples out of order",
            rw(vec![up(&[(now, 1.0), (now - 1000, 2.0)])]),
            400,
            "out_of_order_samples",
            0,
        ),
        case(
            "unsorted labels",
            rw(vec![series(
                &[("job", "x"), ("__name__", "up")],
                &[(now, 1.0)],
            )]),
            400,
            "unsorted_labels",
            0,
        ),
        case(
            "no metric name",
            rw(vec![series(&[("job", "x")], &[(now, 1.0)])]),
            400,
            "no_metric_name",
            0,
        ),
        case("empty body", vec![], 400, "empty body", 0),
        case(
            "gzip body labelled snappy",
            gzip_magic.clone(),
            400,
            "snappy",
            0,
        ),
        Case {
            what: "gzip content encoding",
            headers: vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            body: gzip_magic,
            status: 415,
            reason: "Content-Encoding",
            forwarded: 0,
        },
        Case {
            what: "remote-write 2.0 content type",
            headers: vec![
                (
                    "content-type",
                    "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                ),
                ("content-encoding", "snappy"),
            ],
            body: snappy(&v2),
            status: 415,
            reason: "io.prometheus.write.v2.Request",
            forwarded: 0,
        },
        // Legal input, listed so the corpus says what omen does with it: NaN, ±Inf and huge
        // values are valid samples (a summary quantile with no observations is NaN; stale
        // markers are NaNs); they are forwarded, and the model ignores non-finite values.
        case(
            "NaN, Inf and huge values are valid samples",
            rw(vec![up(&[
                (now - 3000, f64::NAN),
                (now - 2000, f64::INFINITY),
                (now - 1000, -f64::INFINITY),
                (now, 1e308),
            ])]),
            204,
            "",
            1,
        ),
        // A request with no series is how Prometheus sends metadata: valid, nothing to do.
        case("zero series", rw(vec![]), 204, "", 0),
    ]
}

#[tokio::test]
async fn every_corpus_case_gets_its_answer() {
    let fake = FakeDownstream::start().await;
    let yaml = "server: {max_decoded_bytes: 1MiB, max_labels_per_series: 64, max_label_value_length: 4096}\n\
                downstream: {url: DOWNSTREAM}\n\
                models: {rules: [{match: '{__name__=~\".+\"}'}]}\n";
    let omen = Omen::start(yaml, &fake.url()).await;
    let url = omen.url("/api/v1/write");
    let cases = corpus();
    let mut forwarded_so_far = 0;
    for c in &cases {
        let a = post(&url, &c.headers, c.body.clone()).await;
        assert_eq!(a.status, c.status, "{}: {}", c.what, a.body);
        assert!(
            a.body.contains(c.reason),
            "{}: reason {:?} lacks {:?}",
            c.what,
            a.body,
            c.reason
        );
        assert!(
            !a.body.trim().contains('\n'),
            "{}: one line: {:?}",
            c.what,
            a.body
        );
        let got = fake.received();
        let new: usize = got
            .iter()
            .skip(forwarded_so_far)
            .map(|r| r.request.timeseries.len())
            .sum();
        assert_eq!(new, c.forwarded, "{}: series forwarded", c.what);
        forwarded_so_far = got.len();
    }
    // Still healthy after the whole corpus.
    assert_eq!(get(&omen.url("/-/healthy")).await.status, 200);
    println!("hostile corpus: {} cases", cases.len());
}
