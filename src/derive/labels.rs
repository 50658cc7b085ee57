//! Label sets of derived series: the original labels with `__name__` replaced and
//! `for="<original name>"` added (the label name is configurable), sorted by name.

use crate::wire::{label_field_len, Label, LabelRun};

/// The two labels a derived series adds, sorted by name: `__name__` = `name` and
/// `for_label` = the original's metric name.
fn added<'a>(original: &[Label<'a>], name: &'a [u8], for_label: &'a [u8]) -> [Label<'a>; 2] {
    let metric = original
        .iter()
        .find(|l| l.name == b"__name__")
        .map_or(&b""[..], |l| l.value);
    let mut added = [
        Label {
            name: b"__name__",
            value: name,
        },
        Label {
            name: for_label,
            value: metric,
        },
    ];
    added.sort_unstable_by(|a, b| a.name.cmp(b.name));
    added
}

/// Builds the derived label set into `out` (cleared first). A label of the original with
/// the same name as the `for` label is replaced: the derived series must say what it is for.
pub fn derived<'a>(
    original: &[Label<'a>],
    name: &'a [u8],
    for_label: &'a [u8],
    out: &mut Vec<Label<'a>>,
) {
    out.clear();
    let added = added(original, name, for_label);
    // Merged into the original labels, which senders keep sorted (Prometheus does): then
    // the result is sorted without sorting it; otherwise it is sorted after.
    let mut next = added.iter().peekable();
    for l in original
        .iter()
        .filter(|l| l.name != b"__name__" && l.name != for_label)
    {
        while let Some(a) = next.next_if(|a| a.name < l.name) {
            out.push(*a);
        }
        out.push(*l);
    }
    out.extend(next.copied());
    if !out.is_sorted_by(|a, b| a.name <= b.name) {
        out.sort_unstable_by(|a, b| a.name.cmp(b.name));
    }
}

/// [`derived`] as runs for [`RequestWriter::push_series_runs`](crate::wire::RequestWriter):
/// when the original's label fields are `encoded` canonically and sorted (as Prometheus
/// sends them), the original labels between the two added ones are copied as encoded runs
/// instead of encoded one by one; otherwise every label is its own run. The bytes written
/// are the same either way. `labels` is scratch for the second case.
pub fn derived_runs<'a>(
    original: &[Label<'a>],
    encoded: Option<&'a [u8]>,
    name: &'a [u8],
    for_label: &'a [u8],
    labels: &mut Vec<Label<'a>>,
    out: &mut Vec<LabelRun<'a>>,
) {
    out.clear();
    if let Some(encoded) = encoded {
        if encoded_runs(original, encoded, name, for_label, out) {
            return;
        }
        out.clear();
    }
    derived(original, name, for_label, labels);
    out.extend(labels.iter().map(|&l| LabelRun::Label(l)));
}

/// The runs of [`derived_runs`] from the encoded label fields; false (with `out` partly
/// written) if the original labels are not strictly sorted or not what `encoded` holds.
fn encoded_runs<'a>(
    original: &[Label<'a>],
    encoded: &'a [u8],
    name: &'a [u8],
    for_label: &'a [u8],
    out: &mut Vec<LabelRun<'a>>,
) -> bool {
    let added = added(original, name, for_label);
    let mut next = added.iter().peekable();
    // The pending run of kept original labels, as a range of `encoded`.
    let mut run = 0..0;
    let flush = |run: &mut std::ops::Range<usize>, out: &mut Vec<LabelRun<'a>>| {
        if run.end > run.start {
            out.push(LabelRun::Encoded(&encoded[run.clone()]));
        }
        *run = 0..0;
    };
    let mut at = 0;
    let mut prev: Option<&[u8]> = None;
    for l in original {
        if prev.is_some_and(|p| !name_lt(p, l.name)) {
            return false;
        }
        prev = Some(l.name);
        let start = at;
        at += label_field_len(l);
        if l.name == b"__name__" || l.name == for_label {
            flush(&mut run, out);
            continue;
        }
        if next.peek().is_some_and(|a| name_lt(a.name, l.name)) {
            flush(&mut run, out);
            while let Some(a) = next.next_if(|a| name_lt(a.name, l.name)) {
                out.push(LabelRun::Label(*a));
            }
        }
        if run.end == run.start {
            run = start..at;
        } else {
            run.end = at;
        }
    }
    if at != encoded.len() {
        return false;
    }
    flush(&mut run, out);
    out.extend(next.map(|&a| LabelRun::Label(a)));
    true
}

/// `a < b` for label names, decided by the first byte when it differs (for most pairs
/// of a label set's names) rather than by a call to `memcmp`.
#[inline]
fn name_lt(a: &[u8], b: &[u8]) -> bool {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // table-driven
mod tests {
    use super::*;

    fn labels<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<Label<'a>> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.as_bytes(),
                value: v.as_bytes(),
            })
            .collect()
    }

    #[test]
    fn derived_labels() {
        let cases: &[(&[(&str, &str)], &[(&str, &str)])] = &[
            (
                &[
                    ("__name__", "http_requests_total"),
                    ("cluster", "eu1"),
                    ("job", "api"),
                    ("__replica__", "a"),
                ],
                &[
                    ("__name__", "anomaly_score"),
                    ("__replica__", "a"),
                    ("cluster", "eu1"),
                    ("for", "http_requests_total"),
                    ("job", "api"),
                ],
            ),
            (
                &[("__name__", "up"), ("for", "someone"), ("zone", "b")],
                &[("__name__", "anomaly_score"), ("for", "up"), ("zone", "b")],
            ),
            // Sorted input with names before `__name__` (upper case) and after `for`.
            (
                &[
                    ("A", "1"),
                    ("Z_", "2"),
                    ("__name__", "up"),
                    ("a", "3"),
                    ("g", "4"),
                ],
                &[
                    ("A", "1"),
                    ("Z_", "2"),
                    ("__name__", "anomaly_score"),
                    ("a", "3"),
                    ("for", "up"),
                    ("g", "4"),
                ],
            ),
            // No `__name__` at all, unsorted.
            (
                &[("zone", "b"), ("app", "x")],
                &[
                    ("__name__", "anomaly_score"),
                    ("app", "x"),
                    ("for", ""),
                    ("zone", "b"),
                ],
            ),
        ];
        let mut out = Vec::new();
        for (original, want) in cases {
            let original = labels(original);
            derived(&original, b"anomaly_score", b"for", &mut out);
            assert_eq!(out, labels(want));
        }
    }

    #[test]
    fn runs_write_the_derived_labels() {
        use crate::wire::{scan, Item, Limits, RequestWriter};
        let limits = Limits {
            max_series_per_request: 10,
            max_labels_per_series: 30,
            max_label_name_length: 1024,
            max_label_value_length: 1 << 20,
            max_timestamp_ms: i64::MAX,
        };
        let long = "v".repeat(200);
        let cases: &[(&[(&str, &str)], bool)] = &[
            // (original labels, whether they are sorted and so copied as runs)
            (
                &[
                    ("__name__", "http_requests_total"),
                    ("cluster", "eu1"),
                    ("env", "prod"),
                    ("instance", "a:9100"),
                    ("job", "api"),
                ],
                true,
            ),
            (
                &[("__name__", "up"), ("for", "someone"), ("zone", "b")],
                true,
            ),
            (
                &[
                    ("A", "1"),
                    ("Z_", &long),
                    ("__name__", "up"),
                    ("a", "3"),
                    ("g", "4"),
                ],
                true,
            ),
            (&[("__name__", "up")], true),
            (&[], true),
            (&[("zone", "b"), ("app", "x")], false),
            (&[("__name__", "up"), ("job", "a"), ("cluster", "x")], false),
        ];
        let samples = [(1_700_000_000_000, 0.5), (1_700_000_015_000, 0.0)];
        for &(original, sorted) in cases {
            let (mut want, mut runs, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
            let original = labels(original);
            let mut request = RequestWriter::default();
            request.push_series(&original, &samples);
            let mut items = scan(request.as_bytes(), limits);
            let Ok(Some(Item::Series(series))) = items.next() else {
                panic!("no series in {original:?}");
            };
            assert!(series.encoded_labels.is_some());
            for encoded in [series.encoded_labels, None] {
                derived(&original, b"anomaly_score", b"for", &mut want);
                derived_runs(
                    &original,
                    encoded,
                    b"anomaly_score",
                    b"for",
                    &mut scratch,
                    &mut runs,
                );
                let copied = runs.iter().any(|r| matches!(r, LabelRun::Encoded(_)));
                let has_kept = original
                    .iter()
                    .any(|l| l.name != b"__name__" && l.name != b"for");
                assert_eq!(
                    copied,
                    encoded.is_some() && sorted && has_kept,
                    "{original:?}"
                );
                let (mut a, mut b) = (RequestWriter::default(), RequestWriter::default());
                a.push_series(&want, &samples);
                b.push_series_runs(&runs, &samples);
                assert_eq!(a.as_bytes(), b.as_bytes(), "{original:?}");
            }
        }
    }
}
