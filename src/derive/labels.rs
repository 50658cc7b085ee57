//! Label sets of derived series: the original labels with `__name__` replaced and
//! `for="<original name>"` added (the label name is configurable), sorted by name.

use crate::wire::Label;

/// Builds the derived label set into `out` (cleared first). A label of the original with
/// the same name as the `for` label is replaced: the derived series must say what it is for.
pub fn derived<'a>(
    original: &[Label<'a>],
    name: &'a [u8],
    for_label: &'a [u8],
    out: &mut Vec<Label<'a>>,
) {
    out.clear();
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

#[cfg(test)]
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
}
