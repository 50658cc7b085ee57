//! PromQL series selectors (`up`, `{__name__=~"http_.*", job="api"}`), parsed with
//! promql-parser and compiled once into matchers that test a label set.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr};

/// A compiled series selector: all matchers must match (an `or` selector matches if any
/// of its alternatives does). A label the series lacks reads as the empty string, as in
/// Prometheus, so `{job!="x"}` matches a series without `job`.
#[derive(Debug, Clone)]
pub struct Selector {
    text: String,
    alternatives: Vec<Vec<Matcher>>,
}

impl Selector {
    /// Parses a series selector.
    ///
    /// # Errors
    /// A one-line reason when the text is not a plain series selector (a range,
    /// an offset, a function or any other expression is refused).
    pub fn parse(text: &str) -> Result<Selector, String> {
        let expr = parser::parse(text)
            .map_err(|e| format!("invalid selector {text:?}: {}", one_line(&e)))?;
        let Expr::VectorSelector(vs) = expr else {
            return Err(format!("invalid selector {text:?}: not a series selector"));
        };
        if vs.offset.is_some() || vs.at.is_some() {
            return Err(format!(
                "invalid selector {text:?}: offset and @ are not allowed"
            ));
        }
        let name_matcher = vs
            .name
            .as_ref()
            .map(|n| Matcher::new(MatchOp::Equal, "__name__", n));
        let mut alternatives = Vec::new();
        let groups = if vs.matchers.or_matchers.is_empty() {
            vec![vs.matchers.matchers.clone()]
        } else {
            vs.matchers.or_matchers.clone()
        };
        for mut group in groups {
            if let Some(m) = &name_matcher {
                if !group
                    .iter()
                    .any(|g| g.name == "__name__" && g.op == MatchOp::Equal && g.value == m.value)
                {
                    group.push(m.clone());
                }
            }
            alternatives.push(group);
        }
        Ok(Selector {
            text: text.to_string(),
            alternatives,
        })
    }

    /// The selector as written in the config.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether a series with these labels (name, value pairs) is selected.
    pub fn matches<'a, I>(&self, labels: I) -> bool
    where
        I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        self.alternatives.iter().any(|group| {
            group.iter().all(|m| {
                let value = labels
                    .clone()
                    .into_iter()
                    .find(|(n, _)| *n == m.name)
                    .map_or("", |(_, v)| v);
                m.is_match(value)
            })
        })
    }

    /// Whether some series of the metric family `name` could be selected, judged on the
    /// `__name__` matchers alone. Used to decide which metadata entries to forward: a
    /// family is kept if the selector can match its name or one of the series names a
    /// histogram or summary family produces (`_bucket`, `_sum`, `_count`, `_total`).
    pub fn may_match_family(&self, name: &str) -> bool {
        const SUFFIXES: [&str; 6] = ["", "_total", "_bucket", "_sum", "_count", "_created"];
        self.alternatives.iter().any(|group| {
            SUFFIXES.iter().any(|suffix| {
                let candidate = format!("{name}{suffix}");
                group
                    .iter()
                    .filter(|m| m.name == "__name__")
                    .all(|m| m.is_match(&candidate))
            })
        })
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(selector: &str, labels: &[(&str, &str)], expected: bool) {
        let s = Selector::parse(selector).expect("selector parses");
        let got = s.matches(labels.iter().map(|(n, v)| (*n, *v)));
        assert_eq!(got, expected, "{selector} on {labels:?}");
    }

    #[test]
    fn matching() {
        let up = [("__name__", "up"), ("job", "api")];
        let http = [("__name__", "http_requests_total"), ("job", "api")];
        check("up", &up, true);
        check("up", &http, false);
        check(r#"{__name__=~"http_.*", job="api"}"#, &http, true);
        check(r#"{__name__=~"http_.*", job="web"}"#, &http, false);
        check(r#"{__name__=~"http"}"#, &http, false); // regexes are fully anchored
        check(r#"{__name__!~"http_.*", job="api"}"#, &up, true);
        check(r#"up{job!="api"}"#, &up, false);
        check(r#"up{instance=""}"#, &up, true); // missing label reads as ""
        check(r#"up{instance!=""}"#, &up, false);
        check(r#"up{job=~"ap.|web"}"#, &up, true);
        check(
            r#"{job="api" or job="web"}"#,
            &[("__name__", "x"), ("job", "web")],
            true,
        );
    }

    #[test]
    fn refused() {
        for bad in ["rate(up[5m])", "up[5m]", "up offset 5m", "up +", "1", ""] {
            assert!(Selector::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn families() {
        let s = Selector::parse(r#"{__name__=~"http_requests_total|rpc_duration_seconds_bucket"}"#)
            .unwrap();
        assert!(s.may_match_family("http_requests"));
        assert!(s.may_match_family("http_requests_total"));
        assert!(s.may_match_family("rpc_duration_seconds"));
        assert!(!s.may_match_family("go_goroutines"));
        let any = Selector::parse(r#"{job="api"}"#).unwrap();
        assert!(any.may_match_family("anything"));
    }
}
