//! omen's page in a real browser: `omen demo` on a free port, then headless Chromium
//! (Debian's `chromium`, driven by playwright-core from `tests/browser/`) loads the page
//! and checks that there are no console errors, the ranked table has scored rows, the
//! chart is drawn, the tooltip gives local and UTC time and nothing scrolls sideways at
//! 1280 px. Screenshots go to `target/tmp/browser/` (the README's is one of them).
//!
//! Needs `chromium` (apt) and `npm ci --prefix tests/browser`; `scripts/test.sh` does
//! both. Without them the test skips, unless CI or OMEN_E2E_REQUIRE is set.

mod procs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use procs::{require_program, wait_for, Proc, TestDir};

fn printed_url(log: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix("omen demo: open "))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .ok_or_else(|| format!("no URL yet; log: {text}"))
}

#[test]
fn page_renders_table_and_chart_without_console_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser/page.mjs");
    let (Some(node), Some(_chromium)) = (require_program("node"), require_program("chromium"))
    else {
        return;
    };
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .is_dir()
    {
        // Same rule as a missing program: CI and scripts/test.sh never skip.
        let strict = ["CI", "OMEN_E2E_REQUIRE"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false"));
        assert!(
            !strict,
            "playwright-core is missing: run `npm ci --prefix tests/browser`"
        );
        eprintln!("SKIPPING browser test: run `npm ci --prefix tests/browser` first");
        return;
    }
    let dir = TestDir::new("browser");
    let mut demo = Proc::spawn(
        "demo",
        &dir.path,
        Command::new(env!("CARGO_BIN_EXE_omen")).args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "10",
        ]),
    );
    let url = wait_for("the printed URL", Duration::from_secs(20), || {
        demo.check_running()?;
        printed_url(&demo.log)
    });
    // Let a few injected anomalies pass, so the page (and the README's screenshot) shows
    // one: the first round starts 45 simulated seconds in, 4.5 s at 10x.
    wait_for("three injected anomalies", Duration::from_secs(90), || {
        demo.check_running()?;
        let r = procs::http::get(&format!("{}api/omen/demo", url)).map_err(|e| e.to_string())?;
        let info: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        let now = info["sim_now_ms"].as_i64().unwrap_or(0);
        let past = info["anomalies"].as_array().map_or(0, |a| {
            a.iter()
                .filter(|a| a["end_ms"].as_i64().unwrap_or(i64::MAX) + 5_000 < now)
                .count()
        });
        if past >= 3 {
            Ok(())
        } else {
            Err(format!("{past} anomalies so far"))
        }
    });
    let out: PathBuf = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("browser");
    let run = Command::new(node)
        .arg(&script)
        .arg(&url)
        .arg(&out)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "browser check failed:\n{stderr}\n{stdout}"
    );
    assert!(out.join("omen-page.png").is_file());
    eprintln!("browser check: {stdout}screenshots in {}", out.display());
    demo.check_running().expect("omen demo still running");
    let exit = demo.terminate(Duration::from_secs(15));
    assert!(exit.is_some_and(|s| s.success()), "clean exit: {exit:?}");
}
