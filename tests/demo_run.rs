//! `omen demo` end to end, as a user runs it: the binary with a free port and time
//! compressed 20-fold. Through the JSON endpoints: every injected anomaly whose window is
//! in the record got a score above 1, on omen's own record and on what the in-process
//! downstream received; the steady parts stay at or below 1 almost everywhere; the page
//! and its assets are served; SIGTERM stops it cleanly.

mod procs;

use std::process::Command;
use std::time::Duration;

use procs::{http, wait_for, Proc, TestDir};
use serde_json::Value;

fn get_json(base: &str, path: &str) -> Result<Value, String> {
    let r = http::get(&format!("{base}{path}")).map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("GET {path}: {} {}", r.status, r.text()));
    }
    serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: {e}"))
}

/// The URL `omen demo` prints first.
fn printed_url(log: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix("omen demo: open "))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|u| u.trim_end_matches('/').to_string())
        .ok_or_else(|| format!("no URL yet; log: {text}"))
}

/// A series row by metric name and labels, from `source`.
fn find<'a>(rows: &'a [Value], a: &Value) -> Option<&'a Value> {
    rows.iter()
        .find(|r| r["for"] == a["for"] && r["labels"] == a["labels"])
}

/// (timestamp, score) pairs of a series' window.
fn scores(base: &str, source: &str, id: &str) -> Vec<(i64, f64)> {
    let d = get_json(base, &format!("/api/omen/series/{id}?source={source}")).unwrap();
    let t = d["t"].as_array().unwrap();
    let s = d["score"].as_array().unwrap();
    t.iter()
        .zip(s)
        .filter_map(|(t, s)| Some((t.as_i64()?, s.as_f64()?)))
        .collect()
}

#[test]
fn demo_scores_injected_anomalies_above_1_and_steady_parts_at_most_1() {
    let dir = TestDir::new("demo");
    let mut demo = Proc::spawn(
        "demo",
        &dir.path,
        Command::new(env!("CARGO_BIN_EXE_omen")).args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "20",
        ]),
    );
    let base = wait_for("the printed URL", Duration::from_secs(20), || {
        demo.check_running()?;
        printed_url(&demo.log)
    });

    // The page and its assets are embedded and served.
    let page = http::get(&format!("{base}/")).unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/ui/app.js"));
    for asset in ["/ui/app.js", "/ui/app.css"] {
        assert_eq!(
            http::get(&format!("{base}{asset}")).unwrap().status,
            200,
            "{asset}"
        );
    }

    // The first round of anomalies ends 140 simulated seconds in; wait for 170 (8.5 s
    // at 20x, longer on a loaded machine).
    let info = wait_for("a full round of anomalies", Duration::from_secs(90), || {
        demo.check_running()?;
        let info = get_json(&base, "/api/omen/demo")?;
        let elapsed = info["sim_now_ms"].as_i64().unwrap() - info["started_ms"].as_i64().unwrap();
        if elapsed >= 170_000 {
            Ok(info)
        } else {
            Err(format!("simulated {elapsed} ms so far"))
        }
    });
    let status = get_json(&base, "/api/omen/status").unwrap();
    assert_eq!(status["mode"], "demo");
    assert_eq!(status["models"]["count"], 300, "{status}");
    assert_eq!(status["downstream"]["requests"][0][0], "204", "{status}");
    assert!(status["record"]["series"].as_u64().unwrap() >= 300);

    let sim_now = info["sim_now_ms"].as_i64().unwrap();
    let anomalies: Vec<&Value> = info["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["end_ms"].as_i64().unwrap() + 5_000 < sim_now)
        .collect();
    let kinds: Vec<&str> = anomalies
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "spike",
            "level_shift",
            "counter_stall",
            "dip",
            "error_burst",
            "noise_burst"
        ],
        "{info}"
    );

    for source in ["omen", "downstream"] {
        let ranked = get_json(
            &base,
            &format!("/api/omen/series?limit=1000&source={source}"),
        )
        .unwrap();
        let rows = ranked["series"].as_array().unwrap();
        assert_eq!(rows.len(), 300, "{source}: every series is in the record");
        let windows = |row: &Value| -> Vec<(i64, i64)> {
            anomalies
                .iter()
                .filter(|a| a["for"] == row["for"] && a["labels"] == row["labels"])
                // The model needs a few samples to adopt a shifted level or a new scale.
                .map(|a| {
                    (
                        a["start_ms"].as_i64().unwrap(),
                        a["end_ms"].as_i64().unwrap() + 30_000,
                    )
                })
                .collect()
        };
        for a in &anomalies {
            let row = find(rows, a).unwrap_or_else(|| panic!("{source}: no series for {a}"));
            let (start, end) = (
                a["start_ms"].as_i64().unwrap(),
                a["end_ms"].as_i64().unwrap(),
            );
            let max = scores(&base, source, row["id"].as_str().unwrap())
                .into_iter()
                .filter(|&(t, _)| t >= start && t <= end + 2_000)
                .map(|(_, s)| s)
                .fold(0.0, f64::max);
            assert!(
                max > 1.0,
                "{source}: {} on {} scored at most {max}",
                a["kind"],
                a["for"]
            );
        }
        let (mut steady, mut calm) = (0usize, 0usize);
        for row in rows {
            let windows = windows(row);
            for (t, s) in scores(&base, source, row["id"].as_str().unwrap()) {
                if windows.iter().any(|&(a, b)| t >= a && t <= b) {
                    continue;
                }
                steady += 1;
                calm += usize::from(s <= 1.0);
            }
        }
        let share = calm as f64 / steady as f64;
        assert!(steady > 10_000, "{source}: only {steady} steady points");
        assert!(
            share >= 0.98,
            "{source}: only {:.2}% of {steady} steady points scored <= 1",
            share * 100.0
        );
    }

    let exit = demo.terminate(Duration::from_secs(15));
    assert!(
        exit.is_some_and(|s| s.success()),
        "clean exit on SIGTERM: {exit:?}"
    );
    let log = std::fs::read_to_string(&demo.log).unwrap();
    assert!(log.contains("omen demo: stopped"), "{log}");
}
