//! End-to-end TLS and bearer auth with real Prometheus: the sender's
//! `remote_write` speaks HTTPS to omen (`tls_config.ca_file`, the test's own
//! CA) with `authorization.credentials_file`; omen listens with TLS and
//! bearer auth and forwards to a real receiver. A second queue of the same
//! sender uses a wrong token: omen answers 401, Prometheus counts those
//! samples as failed, and nothing of them reaches the receiver. The sender
//! also scrapes omen's `/metrics` over HTTPS, which is how the test reads
//! omen's counters.

mod procs;

use std::path::{Path, PathBuf};
use std::time::Duration;

use procs::series::{diff, sample_count, show};
use procs::servers::{now_ms, yaml_str, Prometheus, RECEIVER_CONFIG};
use procs::{free_port, metric_sum, require_program, wait_for, TestDir};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

const KEPT: &[&str] = &["up", "prometheus_tsdb_head_series"];

/// Writes a CA and a server certificate for `localhost` and `127.0.0.1`
/// it signed; returns (ca, cert, key) paths.
fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("omen.pem"),
        dir.join("omen-key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn prometheus_writes_through_tls_and_bearer_auth_and_a_wrong_token_is_refused() {
    let Some(prometheus) = require_program("prometheus") else {
        return;
    };
    let dir = TestDir::new("tls");
    let (ca, cert, key) = pki(&dir.path);
    let (token, wrong) = (dir.join("token"), dir.join("wrong-token"));
    std::fs::write(&token, "s3cret-e2e-token\n").unwrap();
    std::fs::write(&wrong, "not-the-token\n").unwrap();

    let receiver = Prometheus::start(
        &prometheus,
        &dir.path,
        "receiver",
        free_port(),
        RECEIVER_CONFIG,
        &["--web.enable-remote-write-receiver"],
    );
    let omen_port = free_port();
    let mut yaml = format!(
        "server:\n  listen: 127.0.0.1:{omen_port}\n  shutdown_grace: 10s\n\
         \x20 tls: {{cert_file: {}, key_file: {}}}\n\
         \x20 auth: {{bearer_token_file: {}}}\n\
         downstream: {{url: {}}}\nwhitelist:\n",
        yaml_str(&cert.display().to_string()),
        yaml_str(&key.display().to_string()),
        yaml_str(&token.display().to_string()),
        yaml_str(&receiver.write_url()),
    );
    for sel in KEPT {
        yaml.push_str(&format!("  - {}\n", yaml_str(sel)));
    }
    // omen is only reachable over HTTPS: readiness through the sender below.
    let config = dir.join("omen.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_omen"));
    let mut omen = procs::Proc::spawn(
        "omen",
        &dir.path,
        std::process::Command::new(&bin)
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info"),
    );

    let sender_port = free_port();
    let ca_s = yaml_str(&ca.display().to_string());
    let url = format!("https://127.0.0.1:{omen_port}/api/v1/write");
    let sender_cfg = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ['127.0.0.1:{sender_port}']}}]
  - job_name: omen
    scheme: https
    tls_config: {{ca_file: {ca_s}}}
    static_configs: [{{targets: ['127.0.0.1:{omen_port}']}}]
remote_write:
  - name: good
    url: {url}
    tls_config: {{ca_file: {ca_s}}}
    authorization: {{type: Bearer, credentials_file: {token}}}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 1s}}
  - name: wrong
    url: {url}
    tls_config: {{ca_file: {ca_s}}}
    authorization: {{type: Bearer, credentials_file: {wrong}}}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 1s}}
    write_relabel_configs:
      - {{target_label: via, replacement: wrong-token}}
"#,
        token = yaml_str(&token.display().to_string()),
        wrong = yaml_str(&wrong.display().to_string()),
    );
    let sender = Prometheus::start(
        &prometheus,
        &dir.path,
        "sender",
        sender_port,
        &sender_cfg,
        &[],
    );

    // The sender scrapes omen over TLS and sees both queues answered.
    let omen_counter = |name: &str, labels: &str| -> Result<f64, String> {
        let q = format!("{name}{{job=\"omen\"{labels}}}[1h]");
        let s = sender.raw_samples(&q, now_ms())?;
        Ok(s.values()
            .flat_map(|v| v.last())
            .map(|x| x.value())
            .sum::<f64>())
    };
    wait_for(
        "omen to answer both queues (204 and 401), seen by scraping it over TLS",
        Duration::from_secs(90),
        || {
            omen.check_running()?;
            let ok = omen_counter("omen_requests_total", ",code=\"204\"")?;
            let refused = omen_counter("omen_requests_total", ",code=\"401\"")?;
            if ok >= 3.0 && refused >= 3.0 {
                Ok(())
            } else {
                Err(format!("204: {ok}, 401: {refused}"))
            }
        },
    );
    let unauthorized = omen_counter("omen_bad_requests_total", ",reason=\"unauthorized\"")
        .expect("query the sender");
    assert!(
        unauthorized >= 3.0,
        "omen counts the refusals by reason: {unauthorized}"
    );
    let up_omen = sender
        .raw_samples(r#"up{job="omen"}[1h]"#, now_ms())
        .unwrap();
    assert!(
        up_omen.values().flatten().any(|s| s.value() == 1.0),
        "the sender scraped omen over TLS"
    );

    // Everything through the good queue, exactly; nothing from the wrong one.
    wait_for(
        "10 scrapes at the receiver",
        Duration::from_secs(60),
        || {
            let n = sample_count(&receiver.raw_samples("up[1h]", now_ms())?);
            if n >= 20 {
                Ok(())
            } else {
                Err(format!("{n} samples of `up`"))
            }
        },
    );
    let t = now_ms() - 3_000;
    let kept = |p: &Prometheus| -> Result<_, String> {
        let mut out = procs::series::SeriesSet::new();
        for sel in KEPT {
            out.extend(p.raw_samples(&format!("{sel}[1h]"), t)?);
        }
        Ok(out)
    };
    let expected = wait_for(
        "the receiver to hold exactly the kept samples",
        Duration::from_secs(90),
        || {
            let (want, got) = (kept(&sender)?, kept(&receiver)?);
            let d = diff(&want, &got);
            if d.is_empty() {
                Ok(want)
            } else {
                Err(d)
            }
        },
    );
    assert!(sample_count(&expected) >= 20, "{expected:?}");
    let at_receiver = receiver.series(r#"{__name__=~".+"}"#).unwrap();
    for l in &at_receiver {
        assert!(
            !l.contains_key("via"),
            "a sample sent with the wrong token was forwarded: {}",
            show(l)
        );
    }
    let sm = sender.metrics().expect("sender /metrics");
    let failed = |q: &str| {
        metric_sum(
            &sm,
            "prometheus_remote_storage_samples_failed_total",
            &[&format!("remote_name=\"{q}\"")],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(failed("good"), 0.0, "the good queue lost nothing");
    assert!(
        failed("wrong") > 0.0,
        "Prometheus shows the wrong token's samples as failed"
    );
    let log = std::fs::read_to_string(&omen.log).unwrap_or_default();
    assert!(
        !log.contains("s3cret-e2e-token") && !log.contains("not-the-token"),
        "tokens never appear in omen's log"
    );
    eprintln!(
        "tls: {} samples delivered over TLS + bearer, exactly; wrong token: {} samples failed at the sender, {unauthorized} requests refused 401, none forwarded",
        sample_count(&expected),
        failed("wrong")
    );
    let st = omen.terminate(Duration::from_secs(20));
    assert!(st.is_some_and(|s| s.success()), "omen exits 0: {st:?}");
}
