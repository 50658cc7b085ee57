//! `omen replay`: runs the model over CSV files (`timestamp,value`) and writes, per input, the
//! derived values and a NAB-compatible score, streaming, with a progress bar across files.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::model::{Kind, Model, ModelSettings, Outcome, Params};

/// Arguments of `omen replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// omen.yaml whose `models.rules` choose the settings; a file named `NAME.csv` is matched
    /// as the series `{__name__="NAME"}` (the first rule applies if none matches). Without it,
    /// one default rule models every file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder; each input is written to the same relative path under it.
    #[arg(long)]
    pub out: PathBuf,
    /// Override a model parameter for every rule, e.g. `--set alpha=0.3` (for experiments).
    #[arg(long = "set", value_name = "PARAM=VALUE")]
    pub set: Vec<String>,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// CSV files (`timestamp,value`, ISO-8601 or epoch s/ms) or folders searched recursively.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

/// One input file and where its output goes.
struct Job {
    input: PathBuf,
    output: PathBuf,
    bytes: u64,
}

/// Runs replay over every input.
///
/// # Errors
/// An unreadable config or input, a malformed row (naming file and line), or an unwritable
/// output.
pub fn run(args: &ReplayArgs) -> Result<()> {
    let mut rules = load_rules(args.config.as_deref())?;
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv}: expected PARAM=VALUE"))?;
        for (_, p) in rules.0.iter_mut() {
            p.set(k.trim(), v.trim())
                .map_err(|e| anyhow::anyhow!("--set: {e}"))?;
        }
    }
    let jobs = collect(&args.inputs, &args.out)?;
    if jobs.is_empty() {
        bail!("no CSV files found in the inputs");
    }
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(jobs.iter().map(|j| j.bytes).sum())
    };
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}") {
        bar.set_style(style);
    }
    for (i, job) in jobs.iter().enumerate() {
        bar.set_message(format!(
            "[{}/{}] {}",
            i + 1,
            jobs.len(),
            job.input.display()
        ));
        let name = series_name(&job.input);
        let (params, kind) = rules.for_series(&name);
        replay_file(job, &params, kind, &bar)?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// Model settings per rule, matched by series name.
struct Rules(Vec<(Option<crate::selector::Selector>, Params)>);

impl Rules {
    fn for_series(&self, name: &str) -> (Params, Kind) {
        let labels = [("__name__", name)];
        let params = self
            .0
            .iter()
            .find(|(sel, _)| {
                sel.as_ref()
                    .is_none_or(|s| s.matches(labels.iter().copied()))
            })
            .or(self.0.first())
            .map(|(_, p)| *p)
            .unwrap_or_default();
        let counter = ["_total", "_count", "_sum"]
            .iter()
            .any(|s| name.ends_with(s));
        (params, if counter { Kind::Counter } else { Kind::Gauge })
    }
}

fn load_rules(config: Option<&Path>) -> Result<Rules> {
    let Some(path) = config else {
        return Ok(Rules(vec![(None, Params::default())]));
    };
    let config = Config::load(path)?;
    if config.models.rules.is_empty() {
        bail!(
            "{}: models.rules is empty: nothing would be modeled",
            path.display()
        );
    }
    Ok(Rules(
        config
            .models
            .rules
            .iter()
            .map(|r| {
                (
                    Some(r.selector.clone()),
                    Params::new(&ModelSettings::from(r)),
                )
            })
            .collect(),
    ))
}

/// The series name a file stands for: its stem, with characters a metric name cannot hold
/// replaced by `_`.
fn series_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

fn collect(inputs: &[PathBuf], out: &Path) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for input in inputs {
        let meta =
            fs::metadata(input).with_context(|| format!("{}: cannot read", input.display()))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(input, &mut files)?;
            files.sort();
            for f in files {
                let rel = f.strip_prefix(input).unwrap_or(&f).to_path_buf();
                let bytes = fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
                jobs.push(Job {
                    output: out.join(rel),
                    input: f,
                    bytes,
                });
            }
        } else {
            let rel = input
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| input.clone());
            jobs.push(Job {
                output: out.join(rel),
                input: input.clone(),
                bytes: meta.len(),
            });
        }
    }
    Ok(jobs)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let path = entry
            .with_context(|| format!("{}: cannot list", dir.display()))?
            .path();
        if path.is_dir() {
            walk(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            files.push(path);
        }
    }
    Ok(())
}

fn replay_file(job: &Job, params: &Params, kind: Kind, bar: &ProgressBar) -> Result<()> {
    let input =
        File::open(&job.input).with_context(|| format!("{}: cannot open", job.input.display()))?;
    if let Some(dir) = job.output.parent() {
        fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let out = File::create(&job.output)
        .with_context(|| format!("{}: cannot create", job.output.display()))?;
    let mut out = BufWriter::new(out);
    let werr = |e| anyhow::Error::new(e).context(format!("{}: write failed", job.output.display()));
    writeln!(
        out,
        "timestamp,value,anomaly_score,forecast,lower,upper,nab_score"
    )
    .map_err(werr)?;

    let mut model = Model::new(kind);
    let mut reader = BufReader::new(input);
    let mut line = String::new();
    let mut lineno = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("{}:{}: cannot read", job.input.display(), lineno + 1))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        bar.inc(n as u64);
        let row = line.trim_end_matches(['\n', '\r']);
        if row.trim().is_empty() {
            continue;
        }
        let mut fields = row.splitn(3, ',');
        let ts_text = fields.next().unwrap_or("").trim();
        let value_text = fields.next().map(str::trim);
        let ts = match parse_timestamp(ts_text) {
            Some(ts) => ts,
            // A first line that is not data is the header.
            None if lineno == 1 => continue,
            None => bail!(
                "{}:{lineno}: timestamp {ts_text:?} is neither ISO-8601 nor epoch s/ms",
                job.input.display()
            ),
        };
        let Some(value_text) = value_text else {
            bail!("{}:{lineno}: expected timestamp,value", job.input.display());
        };
        let value: f64 = value_text.parse().map_err(|_| {
            anyhow::anyhow!(
                "{}:{lineno}: value {value_text:?} is not a number",
                job.input.display()
            )
        })?;
        match model.update(params, ts, value) {
            Outcome::Scored(f) => writeln!(
                out,
                "{ts_text},{value_text},{},{},{},{},{}",
                f.score,
                f.forecast,
                f.lower,
                f.upper,
                nab_score(f.score)
            ),
            _ => writeln!(out, "{ts_text},{value_text},,,,,0"),
        }
        .map_err(werr)?;
    }
    out.flush().map_err(werr)?;
    Ok(())
}

/// The fixed monotone map from `anomaly_score` (≥ 0, 1 = edge of the interval) to [0, 1):
/// `s / (1 + s)`, so the interval edge maps to 0.5.
pub fn nab_score(score: f64) -> f64 {
    if score.is_finite() && score > 0.0 {
        score / (1.0 + score)
    } else if score == f64::INFINITY {
        1.0
    } else {
        0.0
    }
}

/// Parses ISO-8601 (`2014-07-01 00:00:00`, `2014-07-01T00:00:00.5Z`, with an offset, or a bare
/// date; UTC when no zone is given) or Unix epoch seconds or milliseconds into epoch ms.
/// Numbers at or above 1e11 are taken as milliseconds (1e11 s is the year 5138).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse::<f64>() {
        if !n.is_finite()
            || text.starts_with(['+', '-', 'i', 'I', 'n', 'N'])
                && text.len() > 1
                && !text[1..].starts_with(|c: char| c.is_ascii_digit())
        {
            return None;
        }
        let ms = if n.abs() >= 1e11 { n } else { n * 1000.0 };
        return (ms.abs() < 9.0e15).then(|| ms.round() as i64);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        for (text, ms) in [
            ("2014-07-01 00:00:00", Some(1_404_172_800_000)),
            ("2014-07-01T00:00:00Z", Some(1_404_172_800_000)),
            ("2014-07-01T02:00:00+02:00", Some(1_404_172_800_000)),
            ("2014-07-01 00:00:00.250", Some(1_404_172_800_250)),
            ("2014-07-01 00:00", Some(1_404_172_800_000)),
            ("2014-07-01", Some(1_404_172_800_000)),
            ("1404172800", Some(1_404_172_800_000)),
            ("1404172800.5", Some(1_404_172_800_500)),
            ("1404172800000", Some(1_404_172_800_000)),
            ("timestamp", None),
            ("2014-13-01 00:00:00", None),
            ("NaN", None),
            ("inf", None),
            ("", None),
        ] {
            assert_eq!(parse_timestamp(text), ms, "{text:?}");
        }
    }

    #[test]
    fn nab_score_is_a_monotone_map_into_the_unit_interval() {
        let xs = [0.0, 0.1, 0.5, 1.0, 2.0, 10.0, 1e6];
        let ys: Vec<f64> = xs.iter().map(|x| nab_score(*x)).collect();
        assert!(ys.windows(2).all(|w| w[0] < w[1]), "{ys:?}");
        assert!(ys.iter().all(|y| (0.0..=1.0).contains(y)));
        assert_eq!(nab_score(1.0), 0.5);
        assert_eq!(nab_score(f64::NAN), 0.0);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("omen-replay-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn args(out: &Path, inputs: Vec<PathBuf>) -> ReplayArgs {
        ReplayArgs {
            config: None,
            out: out.to_path_buf(),
            set: vec![],
            quiet: true,
            inputs,
        }
    }

    #[test]
    fn writes_one_row_per_input_row_under_the_same_relative_path() {
        let dir = temp_dir("tree");
        let data = dir.join("data/cat");
        fs::create_dir_all(&data).unwrap();
        let mut csv = String::from("timestamp,value\n");
        for i in 0..100 {
            let v = if i == 80 {
                500.0
            } else {
                10.0 + (i % 3) as f64
            };
            csv.push_str(&format!("{},{v}\n", 1_404_172_800 + i * 300));
        }
        fs::write(data.join("a.csv"), &csv).unwrap();
        fs::write(data.join("notes.txt"), "not a csv").unwrap();
        let out = dir.join("out");
        run(&args(&out, vec![dir.join("data")])).unwrap();

        let text = fs::read_to_string(out.join("cat/a.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "timestamp,value,anomaly_score,forecast,lower,upper,nab_score"
        );
        assert_eq!(lines.len(), 101);
        assert!(lines[1].starts_with("1404172800,10,,,,,0"), "{}", lines[1]);
        let spike: Vec<&str> = lines[81].split(',').collect();
        assert!(spike[2].parse::<f64>().unwrap() > 1.0, "{}", lines[81]);
        assert!(spike[6].parse::<f64>().unwrap() > 0.5);
        assert!(!out.join("cat/notes.txt").exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_malformed_row_names_file_and_line() {
        let dir = temp_dir("bad");
        let file = dir.join("bad.csv");
        for (body, want) in [
            (
                "timestamp,value\n2014-07-01 00:00:00,1\n2014-07-01 00:05:00,x\n",
                "bad.csv:3: value \"x\" is not a number",
            ),
            (
                "timestamp,value\n2014-07-01 00:00:00,1\nyesterday,2\n",
                "bad.csv:3: timestamp \"yesterday\"",
            ),
            (
                "timestamp,value\n2014-07-01 00:00:00\n",
                "bad.csv:2: expected timestamp,value",
            ),
        ] {
            fs::write(&file, body).unwrap();
            let err = format!(
                "{:#}",
                run(&args(&dir.join("out"), vec![file.clone()])).unwrap_err()
            );
            assert!(err.contains(want), "{err}");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn rules_from_a_config_file_match_by_file_name() {
        let dir = temp_dir("config");
        let config = dir.join("omen.yaml");
        fs::write(
            &config,
            "downstream:\n  url: http://127.0.0.1:9009/api/v1/push\nmodels:\n  rules:\n    \
             - match: '{__name__=\"quiet\"}'\n      warmup: 50\n      seasonality: none\n    \
             - match: '{__name__=~\".+\"}'\n      confidence: 0.9\n      seasonality: [1d, 7d]\n",
        )
        .unwrap();
        let rules = load_rules(Some(&config)).unwrap();
        let (quiet, _) = rules.for_series("quiet");
        let (other, _) = rules.for_series("loud");
        assert_eq!(
            (quiet.warmup, quiet.season_fine_ms, quiet.season_gate),
            (50, 0, false)
        );
        assert_eq!(
            (other.season_fine_ms, other.season_coarse_ms),
            (86_400_000, 604_800_000)
        );
        assert!(other.width < quiet.width);
        fs::write(
            &config,
            "downstream:\n  url: http://127.0.0.1:9009/api/v1/push\n",
        )
        .unwrap();
        let err = load_rules(Some(&config)).err().unwrap().to_string();
        assert!(err.contains("models.rules is empty"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn series_names_and_kinds() {
        let rules = Rules(vec![(None, Params::default())]);
        assert_eq!(
            series_name(Path::new("x/http_requests_total.csv")),
            "http_requests_total"
        );
        assert_eq!(series_name(Path::new("x/9-lives.csv")), "_9_lives");
        assert_eq!(rules.for_series("http_requests_total").1, Kind::Counter);
        assert_eq!(rules.for_series("nyc_taxi").1, Kind::Gauge);
    }
}
