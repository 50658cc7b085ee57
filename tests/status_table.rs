//! Every row of DESIGN §2's status table, through the HTTP surface, with a fake downstream.

mod common;

use std::time::Duration;

use common::*;

const CONFIG: &str = r#"
downstream:
  url: DOWNSTREAM
  timeout: 500ms
"#;

fn one() -> omen::proto::WriteRequest {
    request(vec![series(
        &[("__name__", "up"), ("job", "api")],
        &[(1000, 1.0)],
    )])
}

#[tokio::test]
async fn status_table_rows() {
    // (downstream status, downstream body, omen's status, text omen's body must contain)
    let table = [
        (200, "", 204, ""),
        (202, "", 204, ""),
        (204, "", 204, ""),
        (400, "out of order sample", 400, "out of order sample"),
        (401, "no org id", 502, "401"),
        (403, "forbidden", 502, "403"),
        (404, "not found", 502, "404"),
        (500, "boom", 503, "500"),
        (502, "bad gateway", 503, "502"),
        (503, "overloaded", 503, "503"),
    ];
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    for (down, down_body, want, want_text) in table {
        fake.reply(Reply::status(down).body(down_body));
        let a = write(&omen, &one()).await;
        assert_eq!(a.status, want, "downstream {down}: {}", a.body);
        assert!(
            a.body.contains(want_text),
            "downstream {down}: body {:?} lacks {want_text:?}",
            a.body
        );
        assert!(
            !a.body.trim().contains('\n'),
            "one-line reason: {:?}",
            a.body
        );
    }
    assert_eq!(
        fake.received().len(),
        table.len(),
        "one downstream request per incoming request"
    );
}

#[tokio::test]
async fn rate_limited_becomes_503_with_retry_after() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    fake.reply(Reply::status(429).header("retry-after", "7"));
    let a = write(&omen, &one()).await;
    assert_eq!(a.status, 503);
    assert_eq!(
        a.headers.get("retry-after").unwrap(),
        "7",
        "downstream's Retry-After is passed on"
    );
    fake.reply(Reply::status(429));
    let a = write(&omen, &one()).await;
    assert_eq!(a.status, 503);
    assert_eq!(
        a.headers.get("retry-after").unwrap(),
        "1",
        "a default Retry-After when downstream gives none"
    );
}

#[tokio::test]
async fn timeout_and_connection_errors_are_503() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    fake.reply(Reply::status(200).delay(Duration::from_millis(1500)));
    let a = write(&omen, &one()).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("did not answer"), "{}", a.body);

    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/push", closed.local_addr().unwrap());
    drop(closed);
    let omen = Omen::start(CONFIG, &url).await;
    let a = write(&omen, &one()).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("unreachable"), "{}", a.body);
    assert_eq!(
        metric(&omen, "omen_downstream_requests_total{code=\"error\"}").await,
        1.0
    );
}

#[tokio::test]
async fn downstream_headers_and_tenant() {
    let fake = FakeDownstream::start().await;
    let omen = Omen::start(CONFIG, &fake.url()).await;
    assert_eq!(
        write_with(&omen, &one(), &[("x-scope-orgid", "team-b")])
            .await
            .status,
        204
    );
    assert_eq!(write(&omen, &one()).await.status, 204);
    let got = fake.received();
    let h = &got[0].headers;
    assert_eq!(h.get("content-encoding").unwrap(), "snappy");
    assert_eq!(h.get("content-type").unwrap(), "application/x-protobuf");
    assert_eq!(h.get("x-prometheus-remote-write-version").unwrap(), "0.1.0");
    assert!(h
        .get("user-agent")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("omen/"));
    assert_eq!(
        h.get("x-scope-orgid").unwrap(),
        "team-b",
        "incoming tenant passed through"
    );
    assert!(
        got[1].headers.get("x-scope-orgid").is_none(),
        "no tenant invented"
    );

    let dir = tempdir();
    std::fs::write(dir.join("token"), "s3cret\n").unwrap();
    let yaml = r#"
downstream:
  url: DOWNSTREAM
  tenant: team-a
  bearer_token_file: token
  headers: {X-Extra: yes}
"#;
    let fake = FakeDownstream::start().await;
    let omen = Omen::start_at(yaml, &fake.url(), &dir.join("omen.yaml")).await;
    assert_eq!(
        write_with(&omen, &one(), &[("x-scope-orgid", "team-b")])
            .await
            .status,
        204
    );
    let h = &fake.received()[0].headers;
    assert_eq!(
        h.get("x-scope-orgid").unwrap(),
        "team-a",
        "configured tenant overrides"
    );
    assert_eq!(h.get("authorization").unwrap(), "Bearer s3cret");
    assert_eq!(h.get("x-extra").unwrap(), "yes");
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "omen-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}
