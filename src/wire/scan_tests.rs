//! Tests of the scanner and writer against the prost reference types.

// Table-driven: the tables are tuples of borrowed slices, spelled out where they are used.
#![allow(clippy::type_complexity)]

use prost::Message;

use super::*;
use crate::proto;
use crate::wire::{RequestWriter, STALE_NAN_BITS};

const LIMITS: Limits = Limits {
    max_series_per_request: 1000,
    max_labels_per_series: 8,
    max_label_name_length: 64,
    max_label_value_length: 128,
    max_timestamp_ms: 2_000_000_000_000,
};

fn labels(pairs: &[(&str, &str)]) -> Vec<proto::Label> {
    pairs
        .iter()
        .map(|(n, v)| proto::Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> proto::TimeSeries {
    proto::TimeSeries {
        labels: labels(pairs),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| proto::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

/// Scans a body and collects (raw, labels, hash, samples, defect) per series and
/// (family, kind) per metadata entry.
#[allow(clippy::type_complexity)]
fn collect(
    body: &[u8],
) -> Result<
    (
        Vec<(
            Vec<u8>,
            Vec<(Vec<u8>, Vec<u8>)>,
            u64,
            Vec<(i64, u64)>,
            Option<InvalidSeries>,
        )>,
        Vec<(String, u64)>,
    ),
    DecodeError,
> {
    let mut out = Vec::new();
    let mut meta = Vec::new();
    let mut items = scan(body, LIMITS);
    while let Some(item) = items.next()? {
        match item {
            Item::Series(s) => out.push((
                s.raw.to_vec(),
                s.labels
                    .iter()
                    .map(|l| (l.name.to_vec(), l.value.to_vec()))
                    .collect(),
                s.hash,
                s.samples().map(|(t, v)| (t, v.to_bits())).collect(),
                s.defect,
            )),
            Item::Metadata(m) => meta.push((m.family.to_string(), m.kind)),
        }
    }
    Ok((out, meta))
}

#[test]
fn scans_what_prost_encodes() {
    let mut with_extras = series(
        &[("__name__", "rpc_seconds"), ("job", "api")],
        &[(1000, 0.5)],
    );
    with_extras.exemplars.push(proto::Exemplar {
        labels: labels(&[("trace_id", "abc")]),
        value: 0.4,
        timestamp: 999,
    });
    with_extras.histograms.push(proto::Histogram {
        count: Some(proto::histogram::Count::CountInt(3)),
        sum: 1.5,
        schema: 3,
        positive_spans: vec![proto::BucketSpan {
            offset: -2,
            length: 2,
        }],
        positive_deltas: vec![1, -1],
        timestamp: 1000,
        ..Default::default()
    });
    let req = proto::WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "up"), ("job", "api")],
                &[
                    (1000, 1.0),
                    (2000, 0.0),
                    (3000, f64::from_bits(STALE_NAN_BITS)),
                ],
            ),
            with_extras,
            series(&[("__name__", "neg"), ("x", "y")], &[(5, -1.0)]),
        ],
        metadata: vec![proto::MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    let body = req.encode_to_vec();
    let (got, meta) = collect(&body).expect("decodes");
    assert_eq!(got.len(), 3);
    for (g, want) in got.iter().zip(&req.timeseries) {
        assert_eq!(
            g.0,
            want.encode_to_vec(),
            "raw bytes are the series' own encoding"
        );
        let want_labels: Vec<_> = want
            .labels
            .iter()
            .map(|l| (l.name.as_bytes().to_vec(), l.value.as_bytes().to_vec()))
            .collect();
        assert_eq!(g.1, want_labels);
        let want_samples: Vec<_> = want
            .samples
            .iter()
            .map(|s| (s.timestamp, s.value.to_bits()))
            .collect();
        assert_eq!(
            g.3, want_samples,
            "samples, bit for bit (stale marker included)"
        );
        assert_eq!(g.4, None);
    }
    assert_eq!(meta, vec![("http_requests".to_string(), 1)]);

    // Re-emitting every item byte for byte rebuilds the request exactly.
    let mut w = RequestWriter::default();
    for g in &got {
        w.push_raw_series(&g.0);
    }
    w.push_raw_metadata(&req.metadata[0].encode_to_vec());
    assert_eq!(
        proto::WriteRequest::decode(w.as_bytes())
            .unwrap()
            .encode_to_vec(),
        body
    );
}

#[test]
fn hash_is_canonical() {
    let canonical = proto::WriteRequest {
        timeseries: vec![series(&[("__name__", "up"), ("job", "api")], &[(1, 1.0)])],
        ..Default::default()
    }
    .encode_to_vec();
    // The same label set with the value field before the name field and a sample
    // between the two labels: unusual, legal, and the same series.
    let mut odd = Vec::new();
    let label = |name: &str, value: &str| {
        let mut m = vec![0x12, value.len() as u8];
        m.extend_from_slice(value.as_bytes());
        m.push(0x0a);
        m.push(name.len() as u8);
        m.extend_from_slice(name.as_bytes());
        m
    };
    let mut ts = Vec::new();
    for part in [label("__name__", "up"), vec![], label("job", "api")] {
        if part.is_empty() {
            let s = proto::Sample {
                value: 1.0,
                timestamp: 1,
            }
            .encode_to_vec();
            ts.push(0x12);
            ts.push(s.len() as u8);
            ts.extend_from_slice(&s);
        } else {
            ts.push(0x0a);
            ts.push(part.len() as u8);
            ts.extend_from_slice(&part);
        }
    }
    odd.push(0x0a);
    odd.push(ts.len() as u8);
    odd.extend_from_slice(&ts);
    let a = collect(&canonical).unwrap().0;
    let b = collect(&odd).unwrap().0;
    assert_eq!(a[0].1, b[0].1, "same labels");
    assert_eq!(a[0].2, b[0].2, "same hash");
    let other = proto::WriteRequest {
        timeseries: vec![series(&[("__name__", "up"), ("job", "apj")], &[(1, 1.0)])],
        ..Default::default()
    }
    .encode_to_vec();
    assert_ne!(collect(&other).unwrap().0[0].2, a[0].2);
}

#[test]
fn undecodable_bodies() {
    let good = proto::WriteRequest {
        timeseries: vec![series(&[("__name__", "up")], &[(1, 1.0)])],
        ..Default::default()
    }
    .encode_to_vec();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() - 3].to_vec()),
        ("timeseries as varint", vec![0x08, 0x01]),
        ("length past the end", vec![0x0a, 0x7f, 0x00]),
        ("group wire type", vec![0x0b]),
        ("field number 0", vec![0x00, 0x00]),
        (
            "sample timestamp as fixed64",
            vec![0x0a, 0x0b, 0x12, 0x09, 0x11, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            "exemplar value as varint",
            vec![0x0a, 0x04, 0x1a, 0x02, 0x10, 0x01],
        ),
        (
            "histogram packed fixed64 of 3 bytes",
            vec![0x0a, 0x07, 0x22, 0x05, 0x52, 0x03, 0, 0, 0],
        ),
        (
            "metadata family not UTF-8",
            vec![0x1a, 0x03, 0x12, 0x01, 0xff],
        ),
        ("varint of 11 bytes", [vec![0x0a], vec![0xff; 11]].concat()),
        ("remote-write 2.0 symbols", vec![0x22, 0x00]),
        ("remote-write 2.0 timeseries", vec![0x2a, 0x00]),
    ];
    for (what, body) in cases {
        assert!(collect(&body).is_err(), "{what} must not decode");
    }
    // An empty body is an empty request, and unknown top-level fields are skipped.
    assert_eq!(collect(&[]).unwrap().0.len(), 0);
    assert_eq!(collect(&[0x20, 0x05]).unwrap().0.len(), 0);
}

#[test]
fn scan_defects() {
    let out_of_order = series(&[("__name__", "up")], &[(2000, 1.0), (1000, 1.0)]);
    let duplicate_ts = series(&[("__name__", "up")], &[(1000, 1.0), (1000, 2.0)]);
    let many: Vec<(String, String)> = (0..20)
        .map(|i| (format!("l{i:02}"), "v".to_string()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let too_many = series(&many, &[(1, 1.0)]);
    let req = proto::WriteRequest {
        timeseries: vec![out_of_order, duplicate_ts, too_many],
        ..Default::default()
    }
    .encode_to_vec();
    let (got, _) = collect(&req).unwrap();
    assert_eq!(got[0].4, Some(InvalidSeries::OutOfOrderSamples));
    assert_eq!(got[1].4, Some(InvalidSeries::OutOfOrderSamples));
    assert_eq!(got[2].4, Some(InvalidSeries::TooManyLabels));
    assert_eq!(
        got[2].1.len(),
        LIMITS.max_labels_per_series,
        "labels beyond the limit are not collected"
    );
}

#[test]
fn too_many_series() {
    let ts: Vec<_> = (0..=LIMITS.max_series_per_request)
        .map(|_| series(&[("__name__", "up")], &[(1, 1.0)]))
        .collect();
    let body = proto::WriteRequest {
        timeseries: ts,
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(
        collect(&body).unwrap_err(),
        DecodeError::TooManySeries {
            limit: LIMITS.max_series_per_request
        }
    );
}

#[test]
fn validation() {
    let long_name = "n".repeat(65);
    let long_value = "v".repeat(129);
    let cases: &[(&[(&str, &str)], Result<(), InvalidSeries>)] = &[
        (&[("__name__", "up"), ("job", "api")], Ok(())),
        (&[("job", "api")], Err(InvalidSeries::NoMetricName)),
        (
            &[("__name__", "9up")],
            Err(InvalidSeries::InvalidMetricName),
        ),
        (
            &[("__name__", "up"), ("bad-name", "x")],
            Err(InvalidSeries::InvalidLabelName),
        ),
        (
            &[("__name__", "up"), ("job", "")],
            Err(InvalidSeries::EmptyLabelValue),
        ),
        (
            &[("job", "api"), ("__name__", "up")],
            Err(InvalidSeries::UnsortedLabels),
        ),
        (
            &[("__name__", "up"), ("job", "a"), ("job", "b")],
            Err(InvalidSeries::DuplicateLabel),
        ),
        (
            &[("__name__", "up"), (&long_name, "x")],
            Err(InvalidSeries::LabelNameTooLong),
        ),
        (
            &[("__name__", "up"), ("job", &long_value)],
            Err(InvalidSeries::LabelValueTooLong),
        ),
        (
            &[("", "x"), ("__name__", "up")],
            Err(InvalidSeries::InvalidLabelName),
        ),
    ];
    for (pairs, want) in cases {
        let ls: Vec<Label<'_>> = pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.as_bytes(),
                value: v.as_bytes(),
            })
            .collect();
        assert_eq!(validate(&ls, &LIMITS), *want, "{pairs:?}");
    }
    let bad_utf8 = [
        Label {
            name: b"__name__",
            value: b"up",
        },
        Label {
            name: b"job",
            value: b"\xff\xfe",
        },
    ];
    assert_eq!(
        validate(&bad_utf8, &LIMITS),
        Err(InvalidSeries::InvalidUtf8)
    );
}

#[test]
fn writer_encodes_like_prost() {
    let cases: &[(&[(&str, &str)], &[(i64, f64)])] = &[
        (
            &[("__name__", "anomaly_score"), ("for", "up"), ("job", "api")],
            &[(1_700_000_000_000, 0.25)],
        ),
        (
            &[("__name__", "x")],
            &[
                (0, 0.0),
                (-1, -0.0),
                (5, f64::from_bits(STALE_NAN_BITS)),
                (6, f64::INFINITY),
            ],
        ),
        (&[("__name__", "y")], &[]),
    ];
    // Lengths of one, two and three varint bytes (127 / 128 / 16,384).
    let (v127, v128, v16k) = ("a".repeat(127), "b".repeat(128), "c".repeat(16_384));
    let long: &[(&str, &str)] = &[("__name__", &v127), ("l", &v128), ("m", &v16k)];
    let long_samples: &[(i64, f64)] = &[(1, 2.0)];
    for &(pairs, samples) in cases.iter().chain([(long, long_samples)].iter()) {
        let ls: Vec<Label<'_>> = pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.as_bytes(),
                value: v.as_bytes(),
            })
            .collect();
        let mut w = RequestWriter::default();
        w.push_series(&ls, samples);
        let want = proto::WriteRequest {
            timeseries: vec![series(pairs, samples)],
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(w.as_bytes(), &want[..], "{pairs:?}");
        let (got, _) = collect(w.as_bytes()).unwrap();
        // -0.0 travels as 0.0, as with every protobuf encoder; all other bits survive.
        let want: Vec<_> = samples
            .iter()
            .map(|&(t, v)| (t, if v == 0.0 { 0 } else { v.to_bits() }))
            .collect();
        assert_eq!(got[0].3, want);
    }
}

#[test]
fn canonical_hash_matches_fast_hash() {
    let body = proto::WriteRequest {
        timeseries: vec![series(&[("__name__", "up"), ("job", "api")], &[(1, 1.0)])],
        ..Default::default()
    }
    .encode_to_vec();
    let (got, _) = collect(&body).unwrap();
    let ls = [
        Label {
            name: b"__name__",
            value: b"up",
        },
        Label {
            name: b"job",
            value: b"api",
        },
    ];
    assert_eq!(canonical_hash(&ls, &mut Vec::new()), got[0].2);
}

#[test]
fn scans_other_encodings_like_the_canonical_one() {
    // Length-delimited field `field` holding `body`.
    fn field(field: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![field << 3 | 2];
        crate::wire::proto::put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(body);
        out
    }
    let sample = |parts: &[&[u8]]| field(2, &parts.concat());
    let value = [&[0x09u8][..], &1.5f64.to_bits().to_le_bytes()].concat();
    let ts = [0x10u8, 0xe8, 0x07]; // 1000
    let unknown = [0x18u8, 0x05]; // field 3, varint 5
    let long = "n".repeat(130);
    let series = [
        // A sample before the labels; a label written value first.
        sample(&[&value, &ts]),
        field(1, &[field(1, b"__name__"), field(2, b"up")].concat()),
        field(1, &[field(2, b"b"), field(1, b"job")].concat()),
        field(1, &[field(1, long.as_bytes()), field(2, b"v")].concat()),
        // Timestamp first; an unknown field after value and timestamp; value omitted.
        sample(&[&[0x10, 0xd0, 0x0f], &value]),
        sample(&[&value, &[0x10, 0xb8, 0x17], &unknown]),
        sample(&[&[0x10, 0xa0, 0x1f]]),
    ]
    .concat();
    let body = field(1, &series);
    let (got, _) = collect(&body).expect("decodes");
    let labels: Vec<(Vec<u8>, Vec<u8>)> = [("__name__", "up"), ("job", "b"), (&long, "v")]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    assert_eq!(got[0].1, labels);
    let bits = 1.5f64.to_bits();
    assert_eq!(
        got[0].3,
        vec![(1000, bits), (2000, bits), (3000, bits), (4000, 0)]
    );
    let mut items = scan(&body, LIMITS);
    let Ok(Some(Item::Series(s))) = items.next() else {
        panic!("a series");
    };
    assert_eq!(s.encoded_labels, None, "not canonical: a value-first label");
}
