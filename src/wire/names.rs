//! Metric and label name rules of the Prometheus data model.

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn valid_metric_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_' || *first == b':')
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b':')
        }
        None => false,
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn valid_label_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (name, metric, label) in [
            ("up", true, true),
            ("http_requests_total", true, true),
            ("job:rate5m", true, false),
            ("_x", true, true),
            ("9lives", false, false),
            ("a-b", false, false),
            ("", false, false),
            ("é", false, false),
        ] {
            assert_eq!(
                valid_metric_name(name.as_bytes()),
                metric,
                "metric {name:?}"
            );
            assert_eq!(valid_label_name(name.as_bytes()), label, "label {name:?}");
        }
    }
}
