//! Operating omen: endpoints, load shedding, config reload, graceful shutdown, and the
//! `check-config` command.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn one() -> omen::proto::WriteRequest {
    request(vec![series(&[("__name__", "up")], &[(1000, 1.0)])])
}

#[tokio::test]
async fn endpoints() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start("downstream: {url: DOWNSTREAM}", &fake.url()).await;
    assert_eq!(get(&omen.url("/-/healthy")).await.status, 200);
    assert_eq!(get(&omen.url("/-/ready")).await.status, 200);
    assert_eq!(get(&omen.url("/api/v1/write")).await.status, 405);
    assert_eq!(get(&omen.url("/nope")).await.status, 404);
    write(&omen, &one()).await;
    let m = get(&omen.url("/metrics")).await;
    assert_eq!(m.status, 200);
    for name in [
        "omen_requests_total{code=\"204\"} 1",
        "omen_received_samples_total 1",
        "omen_forwarded_samples_total 1",
        "omen_downstream_requests_total{code=\"200\"} 1",
        "omen_downstream_request_duration_seconds_count 1",
        "omen_requests_in_flight 0",
        "omen_route_cache_entries 1",
        "omen_build_info{version=",
    ] {
        assert!(m.body.contains(name), "/metrics lacks {name}");
    }
}

#[tokio::test]
async fn overload_sheds_with_503_and_recovers() {
    let fake = FakeDownstream::start().await;
    fake.set_default(Reply::status(200).delay(Duration::from_millis(400)));
    let omen = Omen::start(
        "server: {max_concurrent_requests: 2}\ndownstream: {url: DOWNSTREAM}",
        &fake.url(),
    )
    .await;
    let omen = std::sync::Arc::new(omen);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let o = omen.clone();
        tasks.push(tokio::spawn(async move { write(&o, &one()).await }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        let a = t.await.unwrap();
        if a.status == 503 {
            assert_eq!(a.headers.get("retry-after").unwrap(), "1");
        }
        codes.push(a.status);
    }
    codes.sort();
    assert_eq!(
        codes,
        vec![204, 204, 503, 503, 503, 503],
        "two in flight, the rest shed"
    );
    fake.set_default(Reply::status(200));
    assert_eq!(
        write(&omen, &one()).await.status,
        204,
        "recovers afterwards"
    );
}

#[tokio::test]
async fn reload_swaps_config_and_keeps_the_old_one_when_bad() {
    let fake = FakeDownstream::start().await;
    let dir = std::env::temp_dir().join(format!("omen-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("omen.yaml");
    let yaml = |whitelist: &str| {
        format!(
            "downstream: {{url: {}}}\nwhitelist: [{whitelist}]\n",
            fake.url()
        )
    };
    std::fs::write(&path, yaml("up")).unwrap();
    let omen = Omen::start_at(&std::fs::read_to_string(&path).unwrap(), "", &path).await;
    let other = request(vec![series(&[("__name__", "other")], &[(1000, 1.0)])]);
    write(&omen, &other).await;
    assert!(fake.received().is_empty(), "`other` is not whitelisted yet");

    std::fs::write(&path, yaml("other")).unwrap();
    omen.app.reload().expect("valid config reloads");
    write(&omen, &other).await;
    assert_eq!(fake.received().len(), 1, "new whitelist in force");

    std::fs::write(&path, yaml("'rate(x[5m])'")).unwrap();
    let err = omen.app.reload().expect_err("bad config refused");
    assert!(err.to_string().contains("whitelist[0]"), "{err}");
    write(&omen, &other).await;
    assert_eq!(fake.received().len(), 2, "old config still running");
    assert_eq!(
        metric(&omen, "omen_config_reloads_total{result=\"failure\"}").await,
        1.0
    );
    assert_eq!(
        metric(&omen, "omen_config_reloads_total{result=\"success\"}").await,
        1.0
    );
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let fake = FakeDownstream::start().await;
    fake.set_default(Reply::status(200).delay(Duration::from_millis(500)));
    let mut omen = Omen::start(
        "server: {shutdown_grace: 5s}\ndownstream: {url: DOWNSTREAM}",
        &fake.url(),
    )
    .await;
    let url = omen.url("/api/v1/write");
    let body = {
        use prost::Message;
        snap::raw::Encoder::new()
            .compress_vec(&one().encode_to_vec())
            .unwrap()
    };
    let in_flight = tokio::spawn(async move { post(&url, &RW_HEADERS, body).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    omen.shutdown();
    let a = in_flight.await.unwrap();
    assert_eq!(a.status, 204, "the in-flight request completed: {}", a.body);
    tokio::time::timeout(Duration::from_secs(5), omen.done.take().unwrap())
        .await
        .expect("server stops")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(omen.addr).await.is_err(),
        "no longer accepting"
    );
}

#[test]
fn check_config_names_file_key_and_reason() {
    let dir = std::env::temp_dir().join(format!("omen-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("downstream: {url: http://x:1/p}\n", None),
        (
            "downstream: {url: http://x:1/p}\nserver: {listen: nowhere}\n",
            Some("server.listen"),
        ),
        (
            "downstream: {url: http://x:1/p}\nserver: {bogus: 1}\n",
            Some("server.bogus"),
        ),
        (
            "downstream: {url: http://x:1/p, timeout: 30}\n",
            Some("downstream.timeout"),
        ),
        ("downstream: {url: 'ftp://x/p'}\n", Some("downstream.url")),
        (
            "downstream: {url: http://x:1/p, headers: {Content-Type: x}}\n",
            Some("downstream.headers.Content-Type"),
        ),
        (
            "downstream: {url: http://x:1/p}\nwhitelist: ['up{']\n",
            Some("whitelist[0]"),
        ),
        (
            "downstream: {url: http://x:1/p}\nserver: {max_decoded_bytes: 32MB!}\n",
            Some("server.max_decoded_bytes"),
        ),
        (
            "downstream: {url: http://x:1/p, bearer_token_file: /nonexistent}\n",
            Some("downstream.bearer_token_file"),
        ),
        (
            "downstream: {url: http://x:1/p}\nmodels: {rules: [{match: up, outputs: [magic]}]}\n",
            Some("models.rules[0].outputs[0]"),
        ),
        ("server: {}\n", Some("downstream")),
    ];
    for (i, (yaml, want_key)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_omen"))
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match want_key {
            None => assert!(out.status.success(), "{yaml}: {stderr}"),
            Some(key) => {
                assert_eq!(out.status.code(), Some(1), "{yaml}");
                let prefix = format!("{}: {key}: ", path.display());
                assert!(
                    stderr.starts_with(&prefix),
                    "{yaml}: expected {prefix:?}..., got {stderr:?}"
                );
                assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr:?}");
            }
        }
    }
    let v = Command::new(env!("CARGO_BIN_EXE_omen"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("omen "));
}
