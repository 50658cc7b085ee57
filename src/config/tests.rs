//! Config validation: defaults, the full documented example, and errors that name keys.

use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::parse(yaml, Path::new("omen.yaml"))
}

#[test]
fn defaults() {
    let c = parse("downstream: {url: 'http://127.0.0.1:9009/api/v1/push'}").unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:9201");
    assert_eq!(c.server.max_decoded_bytes, 32 << 20);
    assert_eq!(c.server.max_concurrent_requests, 64);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.downstream.timeout, Duration::from_secs(30));
    assert!(c.downstream.tenant.is_none());
    assert!(c.whitelist.is_empty());
    assert!(c.models.rules.is_empty());
    assert_eq!(c.models.max_series, 1_000_000);
    assert_eq!(c.models.names.score, "anomaly_score");
    assert_eq!(c.models.names.label, "for");
}

#[test]
fn shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/omen.yaml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.whitelist.is_empty());
}

#[test]
fn models_section() {
    let c = parse(
        r#"
downstream: {url: 'http://h:1/p'}
models:
  max_series: 5000
  rules:
    - match: '{__name__=~"http_requests_total|node_cpu_seconds_total"}'
      confidence: 0.95
      outputs: [score, bounds]
      warmup: 10
      seasonality: [1d, 7d]
    - match: up
      seasonality: none
  names: {score: s, label: of}
  fit: {threads: 2, cpu_budget: 0.5, history_bytes: 64MiB}
"#,
    )
    .unwrap();
    let m = &c.models;
    assert_eq!(m.max_series, 5000);
    assert_eq!(m.rules.len(), 2);
    assert_eq!(m.rules[0].confidence, 0.95);
    assert_eq!(
        m.rules[0].outputs,
        Outputs {
            score: true,
            forecast: false,
            bounds: true
        }
    );
    assert_eq!(m.rules[0].warmup, 10);
    assert_eq!(
        m.rules[0].seasonality,
        Seasonality::Periods(vec![
            Duration::from_secs(86_400),
            Duration::from_secs(604_800)
        ])
    );
    assert_eq!(m.rules[1].seasonality, Seasonality::None);
    assert_eq!(
        m.rules[1].outputs,
        Outputs {
            score: true,
            forecast: false,
            bounds: false
        }
    );
    assert_eq!(
        (
            m.names.score.as_str(),
            m.names.forecast.as_str(),
            m.names.label.as_str()
        ),
        ("s", "anomaly_forecast", "of")
    );
    assert_eq!(
        (m.fit.threads, m.fit.cpu_budget, m.fit.history_bytes),
        (2, 0.5, 64 << 20)
    );
}

#[test]
fn errors_name_the_key() {
    let cases = [
        ("downstream: {url: 'http://h:1/p'}\nmodels: {rules: [{match: up, confidence: 1.5}]}", "models.rules[0].confidence"),
        ("downstream: {url: 'http://h:1/p'}\nmodels: {rules: [{match: up, seasonality: hourly}]}", "models.rules[0].seasonality"),
        ("downstream: {url: 'http://h:1/p'}\nmodels: {rules: [{match: up, seasonality: [30s]}]}", "models.rules[0].seasonality[0]"),
        ("downstream: {url: 'http://h:1/p'}\nmodels: {names: {label: __for}}", "models.names.label"),
        ("downstream: {url: 'http://h:1/p'}\nmodels: {names: {score: 'anomaly-score'}}", "models.names.score"),
        ("downstream: {url: 'http://h:1/p'}\nmodels: {max_series: 0}", "models.max_series"),
        ("downstream: {url: 'http://h:1/p'}\nmodels: {fit: {cpu_budget: 0}}", "models.fit.cpu_budget"),
        ("downstream: {url: 'http://h:1/p', tenant: ''}", "downstream.tenant"),
        ("downstream: {url: 'http://h:1/p', basic_auth: {username: u, password_file: a}, bearer_token_file: b}", "downstream"),
        ("downstream: {url: 'http://h:1/p'}\nserver: {shutdown_grace: soon}", "server.shutdown_grace"),
        ("downstream: {url: 'http://h:1/p'}\nserver: {max_concurrent_requests: 0}", "server.max_concurrent_requests"),
        ("downstream: [1, 2]", "downstream"),
        (": : :", "(file)"),
    ];
    for (yaml, key) in cases {
        let e = parse(yaml).expect_err(yaml);
        assert_eq!(e.key, key, "{yaml}: {e}");
        assert!(
            e.to_string().starts_with(&format!("omen.yaml: {key}: ")),
            "{e}"
        );
    }
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let dir = std::env::temp_dir().join(format!("omen-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pw"), "hunter2\n").unwrap();
    let c = Config::parse(
        "downstream: {url: 'http://h:1/p', basic_auth: {username: u, password_file: pw}}",
        &dir.join("omen.yaml"),
    )
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        matches!(c.downstream.auth, Credentials::Basic { ref password, .. } if password == "hunter2")
    );
}

#[test]
fn import_and_export_sections() {
    let c = Config::parse(
        "downstream: {url: 'http://h:1/p'}\n\
         models: {import: {path: learned}}\n\
         persistence: {path: m.arrow, export: {path: h.arrow}}",
        Path::new("/etc/omen/omen.yaml"),
    )
    .unwrap();
    let i = c.models.import.unwrap();
    assert_eq!(
        i.path,
        Path::new("/etc/omen/learned"),
        "relative to the file"
    );
    assert_eq!(i.poll_interval, Duration::from_secs(30));
    assert_eq!(i.max_series, 1_000_000, "models.max_series by default");
    let small = Config::parse(
        "downstream: {url: 'http://h:1/p'}\n\
         models: {max_series: 5000, import: {path: learned, max_series: 20000}}",
        Path::new("omen.yaml"),
    )
    .unwrap();
    assert_eq!(small.models.import.unwrap().max_series, 20_000);
    let follows = Config::parse(
        "downstream: {url: 'http://h:1/p'}\nmodels: {max_series: 5000, import: {path: learned}}",
        Path::new("omen.yaml"),
    )
    .unwrap();
    assert_eq!(follows.models.import.unwrap().max_series, 5_000);
    let e = c.persistence.unwrap().export.unwrap();
    assert_eq!(e.path, Path::new("/etc/omen/h.arrow"));
    assert_eq!(e.interval, Duration::from_secs(3600));
    let d = parse("downstream: {url: 'http://h:1/p'}").unwrap();
    assert!(d.models.import.is_none());

    for (yaml, want) in [
        (
            "models: {import: {path: ''}}",
            "omen.yaml: models.import.path: must not be empty",
        ),
        ("models: {import: {}}", "missing field `path`"),
        (
            "models: {import: {path: x, poll_interval: 100ms}}",
            "omen.yaml: models.import.poll_interval: must be at least 1s",
        ),
        (
            "models: {import: {path: x, max_series: 0}}",
            "omen.yaml: models.import.max_series: must be greater than 0",
        ),
        (
            "models: {import: {path: x, poll: 1s}}",
            "unknown field `poll`",
        ),
        (
            "persistence: {path: m, export: {path: h, interval: 0s}}",
            "omen.yaml: persistence.export.interval: must be at least 1s",
        ),
        (
            "persistence: {path: m, export: {path: ''}}",
            "omen.yaml: persistence.export.path: must not be empty",
        ),
    ] {
        let e = parse(&format!("downstream: {{url: 'http://h:1/p'}}\n{yaml}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{yaml}: {e}");
    }
}
