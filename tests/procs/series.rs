//! Raw samples as read back from a TSDB, so that what the sender stored and
//! what a receiver stored can be compared sample by sample.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::json::Json;

/// A label set, `__name__` included.
pub type Labels = BTreeMap<String, String>;

/// One sample: timestamp in milliseconds and the value's bits (so that NaN
/// compares equal to NaN and the comparison is exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sample {
    pub t_ms: i64,
    pub v_bits: u64,
}

impl Sample {
    pub fn new(t_ms: i64, v: f64) -> Sample {
        Sample {
            t_ms,
            v_bits: v.to_bits(),
        }
    }

    pub fn value(&self) -> f64 {
        f64::from_bits(self.v_bits)
    }
}

/// Series and their samples, in timestamp order.
pub type SeriesSet = BTreeMap<Labels, Vec<Sample>>;

/// Total samples in a set.
pub fn sample_count(s: &SeriesSet) -> usize {
    s.values().map(Vec::len).sum()
}

/// Renders a label set as `name{a="b", ...}`.
pub fn show(l: &Labels) -> String {
    let name = l.get("__name__").map(String::as_str).unwrap_or("");
    let rest: Vec<String> = l
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

/// Parses Prometheus's `1764390000.123` (seconds, up to ms precision) exactly.
pub fn seconds_text_to_ms(t: &str) -> Result<i64, String> {
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if frac.len() > 3 || t.contains(['e', 'E']) {
        return Err(format!("timestamp {t:?} is not in milliseconds"));
    }
    let secs: i64 = int.parse().map_err(|_| format!("bad timestamp {t:?}"))?;
    let ms: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")
            .parse()
            .map_err(|_| format!("bad timestamp {t:?}"))?
    };
    Ok(secs * 1000 + ms)
}

/// Parses a sample value as Prometheus and VictoriaMetrics write it.
pub fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

fn labels_of(metric: &Json) -> Result<Labels, String> {
    let obj = metric.as_obj().ok_or("metric is not an object")?;
    obj.iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                v.as_str().ok_or("label value is not a string")?.to_string(),
            ))
        })
        .collect()
}

/// Reads the `data.result` of a Prometheus `/api/v1/query` answer whose
/// result type is `matrix` (a range-vector selector evaluated at one instant
/// returns the raw samples; stale markers are never part of it).
pub fn from_prometheus_matrix(answer: &Json) -> Result<SeriesSet, String> {
    if answer.get("status").as_str() != Some("success") {
        return Err(format!("query failed: {answer:?}"));
    }
    let data = answer.get("data");
    if data.get("resultType").as_str() != Some("matrix") {
        return Err(format!(
            "expected a matrix, got {:?}",
            data.get("resultType")
        ));
    }
    let mut out = SeriesSet::new();
    for r in data.get("result").as_arr() {
        let labels = labels_of(r.get("metric"))?;
        let mut samples = Vec::new();
        for pair in r.get("values").as_arr() {
            let p = pair.as_arr();
            let t = p.first().and_then(Json::as_num_text).ok_or("bad sample")?;
            let v = p.get(1).and_then(Json::as_num_text).ok_or("bad sample")?;
            samples.push(Sample::new(seconds_text_to_ms(t)?, parse_value(v)?));
        }
        out.insert(labels, samples);
    }
    Ok(out)
}

/// Reads VictoriaMetrics' `/api/v1/export` answer (one JSON object per line:
/// `{"metric":{..},"values":[..],"timestamps":[..]}`). Series that appear on
/// several lines are merged and sorted by timestamp.
pub fn from_vm_export(text: &str) -> Result<SeriesSet, String> {
    let mut out = SeriesSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let j = Json::parse(line)?;
        let labels = labels_of(j.get("metric"))?;
        let vals = j.get("values").as_arr();
        let ts = j.get("timestamps").as_arr();
        if vals.len() != ts.len() {
            return Err(format!("values and timestamps differ in length: {line}"));
        }
        let entry = out.entry(labels).or_default();
        for (v, t) in vals.iter().zip(ts) {
            let v = match v {
                Json::Null => f64::NAN,
                other => parse_value(other.as_num_text().ok_or("bad value")?)?,
            };
            let t: i64 = t
                .as_num_text()
                .and_then(|t| t.parse().ok())
                .ok_or("bad timestamp")?;
            entry.push(Sample::new(t, v));
        }
    }
    for s in out.values_mut() {
        s.sort();
    }
    Ok(out)
}

/// Drops NaN samples (used where a receiver stores Prometheus stale markers
/// as NaN samples while a Prometheus range query never returns them).
pub fn without_nan(s: &SeriesSet) -> SeriesSet {
    s.iter()
        .map(|(l, v)| {
            (
                l.clone(),
                v.iter()
                    .copied()
                    .filter(|x| !x.value().is_nan())
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// An empty string when equal (same series, same timestamps, bit-identical
/// values), else a readable account of the differences.
pub fn diff(expected: &SeriesSet, actual: &SeriesSet) -> String {
    diff_by(expected, actual, |a, b| a == b)
}

/// Like `diff`, but values need only agree to 12 significant digits, the
/// precision VictoriaMetrics stores floats with; timestamps stay exact.
pub fn diff_12_digits(expected: &SeriesSet, actual: &SeriesSet) -> String {
    diff_by(expected, actual, |a, b| {
        let (x, y) = (a.value(), b.value());
        a.t_ms == b.t_ms
            && (x.to_bits() == y.to_bits() || (x - y).abs() <= 1e-11 * x.abs().max(y.abs()))
    })
}

fn diff_by(
    expected: &SeriesSet,
    actual: &SeriesSet,
    same: impl Fn(&Sample, &Sample) -> bool,
) -> String {
    let same_vec =
        |a: &[Sample], b: &[Sample]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y));
    let mut out = String::new();
    let mut lines = 0;
    for (l, want) in expected {
        match actual.get(l) {
            None => {
                lines += 1;
                if lines <= 20 {
                    let _ = writeln!(out, "missing series {} ({} samples)", show(l), want.len());
                }
            }
            Some(got) if !same_vec(want, got) => {
                lines += 1;
                if lines <= 20 {
                    let missing: Vec<_> = want
                        .iter()
                        .filter(|s| !got.iter().any(|g| same(s, g)))
                        .collect();
                    let extra: Vec<_> = got
                        .iter()
                        .filter(|g| !want.iter().any(|s| same(s, g)))
                        .collect();
                    let _ = writeln!(
                        out,
                        "series {}: expected {} samples, got {}; missing {} (first {:?}), unexpected {} (first {:?})",
                        show(l),
                        want.len(),
                        got.len(),
                        missing.len(),
                        missing.first(),
                        extra.len(),
                        extra.first()
                    );
                }
            }
            Some(_) => {}
        }
    }
    for (l, got) in actual {
        if !expected.contains_key(l) {
            lines += 1;
            if lines <= 20 {
                let _ = writeln!(out, "unexpected series {} ({} samples)", show(l), got.len());
            }
        }
    }
    if lines > 20 {
        let _ = writeln!(out, "... {} differing series in all", lines);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_diffs() {
        assert_eq!(seconds_text_to_ms("1764390000.123"), Ok(1_764_390_000_123));
        assert_eq!(seconds_text_to_ms("1764390000.1"), Ok(1_764_390_000_100));
        assert_eq!(seconds_text_to_ms("1764390000"), Ok(1_764_390_000_000));
        assert!(seconds_text_to_ms("1.7e9").is_err());
        let vm = from_vm_export(
            "{\"metric\":{\"__name__\":\"up\",\"job\":\"a\"},\"values\":[1,0],\"timestamps\":[2000,1000]}\n",
        )
        .unwrap();
        let l: Labels = [
            ("__name__".to_string(), "up".to_string()),
            ("job".to_string(), "a".to_string()),
        ]
        .into();
        assert_eq!(vm[&l], vec![Sample::new(1000, 0.0), Sample::new(2000, 1.0)]);
        assert_eq!(diff(&vm, &vm), "");
        let mut less = vm.clone();
        less.get_mut(&l).unwrap().pop();
        assert!(diff(&vm, &less).contains("missing 1"));
        assert!(diff(&SeriesSet::new(), &vm).contains("unexpected series up{job=\"a\"}"));
        let mut close = vm.clone();
        close.get_mut(&l).unwrap()[1] = Sample::new(2000, 1.0 + 1e-13);
        assert_ne!(diff(&vm, &close), "");
        assert_eq!(diff_12_digits(&vm, &close), "");
        close.get_mut(&l).unwrap()[1] = Sample::new(2000, 1.0 + 1e-9);
        assert_ne!(diff_12_digits(&vm, &close), "");
    }
}
