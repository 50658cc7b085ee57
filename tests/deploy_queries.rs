//! The deploy artefacts against real data: a real Debian `prometheus` scrapes
//! itself and omen (with the `namespace` label the Kubernetes relabelling
//! adds) and remote-writes through omen — running the shipped whitelist of
//! `deploy/kubernetes/config/omen.yaml` with a model rule — into a second
//! `prometheus` (the receiver) that evaluates the shipped alert rules.
//! A short downstream outage and one refused request make the error series
//! exist that the health dashboard and the alerts read.
//!
//! Then, on the receiver:
//! - every PromQL target of both Grafana dashboards, with the template
//!   variables resolved through their own `label_values` queries, returns data;
//! - every alert rule has been evaluated without error, and every series
//!   selector in every alert expression matches data.
//!
//! Metrics omen does not export yet are listed in `PENDING`; queries that
//! read them are reported and skipped, and the test fails as soon as omen
//! exports one of them, so that the list shrinks.

mod procs;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};

use procs::http::{self, enc};
use procs::json::Json;
use procs::servers::{get_ok, wait_ready, yaml_str, Prometheus};
use procs::{free_port, metric_sum, require_program, wait_for, Proc, TestDir};

/// Metrics the dashboards and alerts use that omen does not export yet, and
/// the work that adds them.
const PENDING: &[(&str, &str)] = &[];

/// Grafana's built-in variables, as a 1 s scrape interval and a 5 m range make them.
const BUILTIN: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "15s"),
    ("__range_s", "300"),
    ("__range", "5m"),
];

/// The test's model rule (the shipped rules model `http_requests_total`, which
/// nothing here exposes): two of omen's counters and a gauge, with every output.
const MODEL_RULES: &str = r#"
- match: '{job="omen", __name__=~"omen_received_samples_total|omen_forwarded_samples_total|process_resident_memory_bytes"}'
  warmup: 5
  outputs: [score, forecast, bounds]
  seasonality: none
"#;

const DATA_TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped sidecar omen.yaml, pointed at the receiver, with the test's
/// rules, snapshotting every second into the test's directory.
fn omen_config(port: u16, downstream: &str, state: &Path) -> String {
    let text = fs::read_to_string(root().join("deploy/kubernetes/config/omen.yaml"))
        .expect("read deploy omen.yaml");
    let mut cfg: serde_yaml::Value = serde_yaml::from_str(&text).expect("deploy omen.yaml is YAML");
    cfg["server"]["listen"] = format!("127.0.0.1:{port}").into();
    cfg["server"]["shutdown_grace"] = "5s".into();
    cfg["downstream"] =
        serde_yaml::from_str(&format!("{{url: {}, timeout: 5s}}", yaml_str(downstream)))
            .expect("yaml");
    cfg["models"]["rules"] = serde_yaml::from_str(MODEL_RULES).expect("yaml");
    assert!(
        cfg["persistence"]["path"].is_string(),
        "the shipped omen.yaml should snapshot its models"
    );
    cfg["persistence"]["path"] = state
        .join("models.arrow")
        .to_str()
        .expect("utf-8 path")
        .into();
    cfg["persistence"]["snapshot_interval"] = "1s".into();
    serde_yaml::to_string(&cfg).expect("serialize omen config")
}

/// Scrapes itself and omen every second with the labels the Kubernetes
/// relabelling of deploy/kubernetes/config/prometheus.yml gives (`job`,
/// `namespace`), and remote-writes to omen with a fast queue.
fn sender_config(self_port: u16, omen_port: u16) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ['127.0.0.1:{self_port}'], labels: {{namespace: monitoring}}}}]
  - job_name: omen
    static_configs: [{{targets: ['127.0.0.1:{omen_port}'], labels: {{namespace: monitoring}}}}]
remote_write:
  - url: http://127.0.0.1:{omen_port}/api/v1/write
    remote_timeout: 10s
    queue_config: {{batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 1s, max_samples_per_send: 500}}
    metadata_config: {{send: true, send_interval: 5s}}
"#
    )
}

/// Runs an instant query; `Ok(n)` with the number of results (a scalar counts as one).
fn query(prom: &str, expr: &str) -> Result<usize, String> {
    let body = get_ok(&format!("{prom}/api/v1/query?query={}", enc(expr)))?;
    let answer = Json::parse(&body)?;
    if answer.get("status").as_str() != Some("success") {
        return Err(format!("{expr}: {body}"));
    }
    let data = answer.get("data");
    Ok(match data.get("resultType").as_str() {
        Some("scalar") | Some("string") => 1,
        _ => data.get("result").as_arr().len(),
    })
}

/// A dashboard's query variables (in order) and its targets (panel title, expr).
struct Dashboard {
    title: String,
    variables: Vec<(String, String)>,
    targets: Vec<(String, String)>,
}

fn load_dashboard(file: &str) -> Dashboard {
    let path = root().join("deploy/grafana/dashboards").join(file);
    let d =
        Json::parse(&fs::read_to_string(&path).expect("read dashboard")).expect("dashboard JSON");
    let mut variables = Vec::new();
    for v in d.get("templating").get("list").as_arr() {
        match v.get("type").as_str() {
            Some("datasource") => {}
            Some("query") => variables.push((
                v.get("name").as_str().expect("variable name").to_string(),
                v.get("query")
                    .get("query")
                    .as_str()
                    .expect("variable query")
                    .to_string(),
            )),
            other => panic!("{file}: variable type {other:?} is not resolved by this test"),
        }
    }
    let mut targets = Vec::new();
    let mut panels: Vec<&Json> = d.get("panels").as_arr().iter().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p.get("panels").as_arr());
        let title = p.get("title").as_str().unwrap_or("?").to_string();
        for t in p.get("targets").as_arr() {
            targets.push((
                title.clone(),
                t.get("expr").as_str().expect("target expr").to_string(),
            ));
        }
    }
    assert!(
        targets.len() >= 10,
        "{file}: only {} targets found",
        targets.len()
    );
    Dashboard {
        title: d.get("title").as_str().expect("title").to_string(),
        variables,
        targets,
    }
}

/// Replaces `$name` and `${name}` with the values, longest names first so
/// that `$__range` does not eat `$__range_s`.
fn substitute(expr: &str, values: &[(String, String)]) -> String {
    let mut all: Vec<(String, String)> = values.to_vec();
    all.extend(BUILTIN.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    all.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut out = expr.to_string();
    for (k, v) in &all {
        out = out
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
    assert!(!out.contains('$'), "unresolved variable in {out}");
    out
}

/// Resolves the variables in order, as Grafana does: each `label_values`
/// query (with the earlier variables substituted) asks the label-values API,
/// and the first value is selected.
fn resolve_variables(prom: &str, d: &Dashboard) -> Result<Vec<(String, String)>, String> {
    let mut values: Vec<(String, String)> = Vec::new();
    for (name, q) in &d.variables {
        let q = substitute(q, &values);
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("{}: variable {name}: not label_values(...): {q}", d.title))?;
        let (selector, label) = match inner.rfind(',') {
            Some(i) => (Some(inner[..i].trim()), inner[i + 1..].trim()),
            None => (None, inner.trim()),
        };
        let mut url = format!("{prom}/api/v1/label/{label}/values");
        if let Some(s) = selector {
            url.push_str(&format!("?match[]={}", enc(s)));
        }
        let answer = Json::parse(&get_ok(&url)?)?;
        let first = answer
            .get("data")
            .as_arr()
            .first()
            .and_then(Json::as_str)
            .ok_or_else(|| format!("{}: variable {name} ({q}) has no values yet", d.title))?;
        values.push((name.clone(), first.to_string()));
    }
    Ok(values)
}

/// The pending metric an expression reads, if any.
fn pending_in(expr: &str) -> Option<&'static (&'static str, &'static str)> {
    pending_among(PENDING, expr)
}

/// The first metric of `list` that `expr` reads (whole names only).
fn pending_among<'a>(
    list: &'a [(&'static str, &'static str)],
    expr: &str,
) -> Option<&'a (&'static str, &'static str)> {
    list.iter().find(|(m, _)| {
        expr.match_indices(m).any(|(i, _)| {
            let after = expr[i + m.len()..].chars().next();
            !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

/// Every series selector in a PromQL expression (range selectors without the range).
fn selectors(expr: &str) -> Vec<String> {
    struct Collect(Vec<String>);
    impl ExprVisitor for Collect {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            match e {
                Expr::VectorSelector(vs) => self.0.push(vs.to_string()),
                Expr::MatrixSelector(ms) => self.0.push(ms.vs.to_string()),
                _ => {}
            }
            Ok(true)
        }
    }
    let ast = parser::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let mut c = Collect(Vec::new());
    walk_expr(&mut c, &ast).expect("walk");
    c.0
}

/// The dashboards' targets that return no data yet (an empty list: all do).
fn empty_targets(
    prom: &str,
    dashboards: &[Dashboard],
    checked: &mut usize,
) -> Result<Vec<String>, String> {
    let mut empty = Vec::new();
    *checked = 0;
    for d in dashboards {
        let values = resolve_variables(prom, d)?;
        for (panel, expr) in &d.targets {
            if pending_in(expr).is_some() {
                continue;
            }
            let q = substitute(expr, &values);
            *checked += 1;
            if query(prom, &q)? == 0 {
                empty.push(format!("{} / {panel}: {q}", d.title));
            }
        }
    }
    Ok(empty)
}

struct Rule {
    name: String,
    expr: String,
}

fn shipped_alerts() -> Vec<Rule> {
    let text = fs::read_to_string(root().join("deploy/kubernetes/config/omen-rules.yml"))
        .expect("read rules");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("rules YAML");
    let mut rules = Vec::new();
    for g in doc["groups"].as_sequence().expect("groups") {
        for r in g["rules"].as_sequence().expect("rules") {
            rules.push(Rule {
                name: r["alert"]
                    .as_str()
                    .expect("only alerting rules")
                    .to_string(),
                expr: r["expr"].as_str().expect("expr").to_string(),
            });
        }
    }
    rules
}

#[test]
fn dashboards_and_alert_rules_return_data_through_omen() {
    let Some(prometheus) = require_program("prometheus") else {
        return;
    };
    let omen_bin = PathBuf::from(env!("CARGO_BIN_EXE_omen"));
    let dir = TestDir::new("deploy-queries");

    // The receiver evaluates the shipped rules every second.
    let rules_file = root().join("deploy/kubernetes/config/omen-rules.yml");
    let receiver_config = format!(
        "global:\n  scrape_interval: 1m\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs: []\n",
        yaml_str(rules_file.to_str().expect("utf-8 path"))
    );
    let mut receiver = Prometheus::start(
        &prometheus,
        &dir.path,
        "receiver",
        free_port(),
        &receiver_config,
        &["--web.enable-remote-write-receiver"],
    );
    let recv = receiver.url();

    let omen_port = free_port();
    let omen_url = format!("http://127.0.0.1:{omen_port}");
    let config = dir.join("omen.yaml");
    fs::write(
        &config,
        omen_config(omen_port, &receiver.write_url(), &dir.path),
    )
    .expect("write omen config");
    let check = Command::new(&omen_bin)
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("run omen check-config");
    assert!(
        check.status.success(),
        "omen check-config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut omen = Proc::spawn(
        "omen",
        &dir.path,
        Command::new(&omen_bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info"),
    );
    wait_ready(&mut omen, &format!("{omen_url}/-/ready"));

    let sender_port = free_port();
    let _sender = Prometheus::start(
        &prometheus,
        &dir.path,
        "sender",
        sender_port,
        &sender_config(sender_port, omen_port),
        &[],
    );

    // One refused request (415: not remote-write), for omen_bad_requests_total.
    let r = http::post_empty(&format!("{omen_url}/api/v1/write")).expect("POST to omen");
    assert_eq!(r.status, 415, "{}", r.text());

    // A downstream outage: omen answers 503, Prometheus retries from its WAL.
    wait_for(
        "omen's metrics at the receiver",
        DATA_TIMEOUT,
        || match query(&recv, r#"omen_build_info{job="omen"}"#)? {
            0 => Err("none yet".into()),
            _ => Ok(()),
        },
    );
    receiver.stop();
    wait_for(
        "omen to see downstream errors and answer 503",
        Duration::from_secs(30),
        || {
            let m = get_ok(&format!("{omen_url}/metrics"))?;
            let errors = metric_sum(&m, "omen_downstream_requests_total", &["code=\"error\""])
                .unwrap_or(0.0);
            let refused = metric_sum(&m, "omen_requests_total", &["code=\"503\""]).unwrap_or(0.0);
            if errors >= 1.0 && refused >= 1.0 {
                Ok(())
            } else {
                Err(format!("downstream errors {errors}, 503s {refused}"))
            }
        },
    );
    receiver.restart();

    // Every dashboard target returns data.
    let dashboards = [
        load_dashboard("omen-anomalies.json"),
        load_dashboard("omen-health.json"),
    ];
    let mut checked = 0;
    wait_for("every dashboard query to return data", DATA_TIMEOUT, || {
        let empty = empty_targets(&recv, &dashboards, &mut checked)?;
        if empty.is_empty() {
            Ok(())
        } else {
            Err(format!("no data for:\n  {}", empty.join("\n  ")))
        }
    });
    for d in &dashboards {
        for (panel, expr) in &d.targets {
            if let Some((metric, work)) = pending_in(expr) {
                eprintln!("PENDING {} / {panel}: needs {metric} ({work})", d.title);
            }
        }
    }
    assert!(checked >= 30, "only {checked} dashboard targets checked");

    // Every selector of every alert expression matches data, and each whole
    // expression evaluates.
    let alerts = shipped_alerts();
    assert!(alerts.len() >= 10, "{} alerts", alerts.len());
    let mut missing = BTreeSet::new();
    for rule in &alerts {
        query(&recv, &rule.expr).unwrap_or_else(|e| panic!("{}: {e}", rule.name));
        for sel in selectors(&rule.expr) {
            if let Some((metric, work)) = pending_in(&sel) {
                eprintln!("PENDING alert {}: needs {metric} ({work})", rule.name);
            } else if query(&recv, &sel).expect("query") == 0 {
                missing.insert(format!("{}: {sel}", rule.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "alert selectors without data:\n  {}",
        missing.iter().cloned().collect::<Vec<_>>().join("\n  ")
    );

    // The receiver evaluated every rule, without error.
    wait_for(
        "every rule evaluated without error",
        Duration::from_secs(30),
        || {
            let body = get_ok(&format!("{recv}/api/v1/rules"))?;
            let answer = Json::parse(&body)?;
            let mut seen = 0;
            for g in answer.get("data").get("groups").as_arr() {
                for r in g.get("rules").as_arr() {
                    let name = r.get("name").as_str().unwrap_or("?");
                    if r.get("lastEvaluation")
                        .as_str()
                        .is_none_or(|t| t.starts_with("0001-"))
                    {
                        return Err(format!("{name} not evaluated yet"));
                    }
                    let health = r.get("health").as_str().unwrap_or("?");
                    assert_eq!(health, "ok", "{name}: {:?}", r.get("lastError"));
                    seen += 1;
                }
            }
            if seen == alerts.len() {
                Ok(())
            } else {
                Err(format!("{seen} of {} rules loaded", alerts.len()))
            }
        },
    );

    // PENDING is honest: omen does not export these yet. When it does, take
    // the metric off the list so its panels and alerts are checked too.
    let exposition = get_ok(&format!("{omen_url}/metrics")).expect("omen metrics");
    for (metric, work) in PENDING {
        assert!(
            metric_sum(&exposition, metric, &[]).is_none(),
            "omen now exports {metric} ({work}): remove it from PENDING in tests/deploy_queries.rs"
        );
    }
}

#[test]
fn variable_substitution_and_pending_detection() {
    const TRY: &[(&str, &str)] = &[("omen_fit_backlog", "an example")];
    let values = vec![
        ("job".to_string(), "omen".to_string()),
        ("jobs".to_string(), "x".to_string()),
    ];
    assert_eq!(
        substitute(
            r#"rate(a{job=~"$job", j="${jobs}"}[$__rate_interval]) + b[$__range] + $__range_s"#,
            &values
        ),
        r#"rate(a{job=~"omen", j="x"}[1m]) + b[5m] + 300"#
    );
    assert_eq!(
        pending_among(TRY, "time() - max(omen_fit_backlog{a=\"b\"})").map(|p| p.0),
        Some("omen_fit_backlog")
    );
    assert_eq!(pending_among(TRY, "sum(omen_fit_backlog_other)"), None);
    assert_eq!(
        selectors(
            r#"sum by (a) (rate(x_total{code!~"2.."}[5m])) / sum(rate(x_total[5m])) > 0.1 and up == 0"#
        ),
        vec![r#"x_total{code!~"2.."}"#, "x_total", "up"]
    );
}
