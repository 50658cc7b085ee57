//! End-to-end with rwload, the benchmark's load generator and null sink
//! (`../shared/rwload`, built by `scripts/test.sh`, which passes its path in
//! `OMEN_RWLOAD`): `rwload send` → omen with a 50 % whitelist → `rwload sink`.
//! omen answers only after downstream answered, so the moment every request
//! is acknowledged the sink must already hold exactly the kept samples.

mod procs;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use procs::json::Json;
use procs::servers::{get_ok, wait_ready, Omen};
use procs::{free_port, metric_sum, strict, tail, Proc, TestDir};

/// The 6 of rwload's 12 families that the benchmark keeps (50 % of series
/// and samples), as vmagent's relabel rule and peers.py have them.
const KEEP: &[&str] = &[
    "http_requests_total",
    "node_cpu_seconds_total",
    "container_memory_working_set_bytes",
    "container_cpu_usage_seconds_total",
    "grpc_server_handled_total",
    "up",
];
// A multiple of 12, so that the 6 kept families are exactly half.
const SERIES: u64 = 24_000;
const SAMPLES_PER_SERIES: u64 = 10;

fn rwload() -> Option<PathBuf> {
    match std::env::var_os("OMEN_RWLOAD").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        other => {
            let why = format!("OMEN_RWLOAD is {other:?}, not an rwload binary (scripts/test.sh builds it from ../shared/rwload)");
            if strict() {
                panic!("{why}; the end-to-end tests must run here (CI/OMEN_E2E_REQUIRE set)");
            }
            eprintln!("SKIPPING end-to-end test: {why}");
            None
        }
    }
}

fn num(j: &Json) -> f64 {
    j.as_num_text()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {j:?}"))
}

#[test]
fn rwload_through_a_50_percent_whitelist_delivers_exactly_the_kept_samples() {
    let Some(rwload) = rwload() else { return };
    let dir = TestDir::new("rwload");
    let sink_port = free_port();
    let mut sink = Proc::spawn(
        "sink",
        &dir.path,
        Command::new(&rwload).args(["sink", "--listen", &format!("127.0.0.1:{sink_port}")]),
    );
    let stats_url = format!("http://127.0.0.1:{sink_port}/stats");
    wait_ready(&mut sink, &stats_url);
    let whitelist = format!(r#"{{__name__=~"{}"}}"#, KEEP.join("|"));
    let mut omen = Omen::start(
        &PathBuf::from(env!("CARGO_BIN_EXE_omen")),
        &dir.path,
        free_port(),
        &format!("http://127.0.0.1:{sink_port}/api/v1/write"),
        &[&whitelist],
    );

    let mut send = Proc::spawn(
        "send",
        &dir.path,
        Command::new(&rwload).args([
            "send",
            "--url",
            &format!("{}/api/v1/write", omen.url()),
            "--series",
            &SERIES.to_string(),
            "--samples-per-series",
            &SAMPLES_PER_SERIES.to_string(),
            "--batch",
            "2000",
            "--concurrency",
            "4",
        ]),
    );
    let st = send.wait_exit(Duration::from_secs(120));
    let out = std::fs::read_to_string(&send.log).expect("read rwload output");
    assert!(
        st.success(),
        "rwload send failed ({st}):\n{}",
        tail(&send.log, 25)
    );
    let result = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT_JSON "))
        .unwrap_or_else(|| panic!("no RESULT_JSON in rwload output:\n{out}"));
    let result = Json::parse(result).expect("RESULT_JSON parses");

    // Every request acknowledged, nothing failed.
    let sent = num(result.get("sent_samples"));
    assert_eq!(sent, (SERIES * SAMPLES_PER_SERIES) as f64);
    assert_eq!(
        num(result.get("ok_samples")),
        sent,
        "not every sample was acknowledged: {result:?}"
    );
    assert_eq!(
        result.get("errors").as_obj().map(|m| m.len()),
        Some(0),
        "errors: {result:?}"
    );
    let by_name = result
        .get("samples_per_pass_by_name")
        .as_obj()
        .expect("samples_per_pass_by_name");
    let expected: f64 = KEEP
        .iter()
        .map(|n| num(by_name.get(*n).unwrap_or(&Json::Null)))
        .sum();
    assert_eq!(
        expected * 2.0,
        sent,
        "the whitelist should keep exactly half of rwload's samples"
    );

    // Acknowledged means delivered: no waiting here.
    let stats = Json::parse(&get_ok(&stats_url).expect("sink stats")).expect("stats parse");
    let got = stats
        .get("samples_by_name")
        .as_obj()
        .expect("samples_by_name");
    for (name, n) in got {
        assert!(
            KEEP.contains(&name.as_str()),
            "the sink received {} samples of {name}, which the whitelist drops",
            num(n)
        );
    }
    for name in KEEP {
        assert_eq!(
            got.get(*name).map(num),
            Some(num(by_name.get(*name).unwrap_or(&Json::Null))),
            "samples of {name} at the sink"
        );
    }
    assert_eq!(num(stats.get("samples")), expected, "samples at the sink");
    assert_eq!(
        num(stats.get("distinct_series")),
        (SERIES / 2) as f64,
        "series at the sink"
    );
    assert_eq!(num(stats.get("bad_requests")), 0.0);

    let m = omen.metrics().expect("omen metrics");
    assert_eq!(
        metric_sum(&m, "omen_received_samples_total", &[]),
        Some(sent)
    );
    assert_eq!(
        metric_sum(&m, "omen_forwarded_samples_total", &[]),
        Some(expected)
    );
    assert_eq!(
        metric_sum(&m, "omen_dropped_samples_total", &["reason=\"whitelist\""]),
        Some(sent - expected)
    );
    eprintln!("rwload: {sent} samples sent, {expected} kept and delivered exactly");
    omen.stop_cleanly();
}
