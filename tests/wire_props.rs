//! Property tests of decoding: arbitrary bytes never panic and never allocate beyond the
//! caps; valid requests scan back exactly. `PROPTEST_CASES=100000 cargo test --release
//! --test wire_props` is the longer fuzz-style run.

use omen::ingest;
use omen::proto;
use omen::wire::{scan, Item, Limits};
use proptest::prelude::*;
use prost::Message;

const LIMITS: Limits = Limits {
    max_series_per_request: 10_000,
    max_labels_per_series: 32,
    max_label_name_length: 1024,
    max_label_value_length: 4096,
    max_timestamp_ms: i64::MAX,
};

/// Drains a scan; returns the series count or the error text.
fn drain(body: &[u8]) -> Result<usize, String> {
    let mut items = scan(body, LIMITS);
    let mut n = 0;
    while let Some(item) = items.next().map_err(|e| e.to_string())? {
        if let Item::Series(s) = item {
            assert!(s.labels.len() <= LIMITS.max_labels_per_series);
            assert!(s.raw.len() <= body.len());
            n += s.samples().count().min(1) + 1;
        }
    }
    Ok(n)
}

fn label() -> impl Strategy<Value = (String, String)> {
    ("[a-z_][a-z0-9_]{0,12}", "[ -~]{1,20}")
}

fn series() -> impl Strategy<Value = proto::TimeSeries> {
    (
        prop::collection::btree_map("[a-z_][a-z0-9_]{0,12}", "[ -~é]{1,20}", 0..8),
        "[a-z_:][a-z0-9_:]{0,20}",
        prop::collection::vec((any::<i64>(), any::<f64>()), 0..6),
        prop::collection::vec(label(), 0..3),
    )
        .prop_map(|(labels, name, samples, exemplar_labels)| {
            let mut ls: Vec<proto::Label> = vec![proto::Label {
                name: "__name__".into(),
                value: name,
            }];
            ls.extend(
                labels
                    .into_iter()
                    .map(|(name, value)| proto::Label { name, value }),
            );
            ls.sort_by(|a, b| a.name.cmp(&b.name));
            ls.dedup_by(|a, b| a.name == b.name);
            let mut samples: Vec<proto::Sample> = samples
                .into_iter()
                .map(|(timestamp, value)| proto::Sample { value, timestamp })
                .collect();
            samples.sort_by_key(|s| s.timestamp);
            let exemplars = if exemplar_labels.is_empty() {
                vec![]
            } else {
                vec![proto::Exemplar {
                    labels: exemplar_labels
                        .into_iter()
                        .map(|(name, value)| proto::Label { name, value })
                        .collect(),
                    value: 1.5,
                    timestamp: 7,
                }]
            };
            proto::TimeSeries {
                labels: ls,
                samples,
                exemplars,
                histograms: vec![],
            }
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = drain(&body);
    }

    #[test]
    fn mutated_valid_requests_never_panic(
        req in prop::collection::vec(series(), 1..6),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut body = proto::WriteRequest { timeseries: req, metadata: vec![] }.encode_to_vec();
        for (i, b) in flips {
            let at = i.index(body.len());
            body[at] ^= b;
        }
        let _ = drain(&body);
        let _ = drain(&body[..body.len() / 2]);
    }

    #[test]
    fn arbitrary_snappy_never_allocates_past_the_cap(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(out) = ingest::decompress(&body, 64 << 10) {
            prop_assert!(out.len() <= 64 << 10);
        }
    }

    #[test]
    fn valid_requests_scan_back_exactly(req in prop::collection::vec(series(), 0..12)) {
        let write = proto::WriteRequest { timeseries: req.clone(), metadata: vec![] };
        let body = write.encode_to_vec();
        let mut items = scan(&body, LIMITS);
        let mut i = 0;
        while let Some(item) = items.next().expect("valid body decodes") {
            let Item::Series(s) = item else { continue };
            let want = &req[i];
            prop_assert_eq!(s.raw, &want.encode_to_vec()[..]);
            let labels: Vec<(String, String)> = s.labels.iter()
                .map(|l| (String::from_utf8(l.name.to_vec()).unwrap(), String::from_utf8(l.value.to_vec()).unwrap()))
                .collect();
            let want_labels: Vec<(String, String)> = want.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
            prop_assert_eq!(labels, want_labels);
            let samples: Vec<(i64, u64)> = s.samples().map(|(t, v)| (t, v.to_bits())).collect();
            let want_samples: Vec<(i64, u64)> = want.samples.iter()
                .map(|x| (x.timestamp, if x.value == 0.0 { 0 } else { x.value.to_bits() }))
                .collect();
            prop_assert_eq!(samples, want_samples);
            i += 1;
        }
        prop_assert_eq!(i, req.len());
    }
}
