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
    out.push(Label {
        name: b"__name__",
        value: name,
    });
    out.push(Label {
        name: for_label,
        value: metric,
    });
    out.extend(
        original
            .iter()
            .filter(|l| l.name != b"__name__" && l.name != for_label)
            .copied(),
    );
    out.sort_unstable_by(|a, b| a.name.cmp(b.name));
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
        ];
        let mut out = Vec::new();
        for (original, want) in cases {
            let original = labels(original);
            derived(&original, b"anomaly_score", b"for", &mut out);
            assert_eq!(out, labels(want));
        }
    }
}
