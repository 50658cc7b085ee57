//! TLS and credentials on both sides: ingest over TLS (optionally verifying client
//! certificates), basic and bearer auth with 401 without them, egress over TLS with a CA
//! file and a client certificate, certificate reload, and secrets kept out of output.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA and certificates it signed, written as PEM files into a fresh folder.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("omen-pki-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    /// Issues a certificate for localhost; returns (cert path, key path).
    fn issue(&self, name: &str, purpose: ExtendedKeyUsagePurpose) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (c, k) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

fn one() -> Vec<u8> {
    let req = request(vec![series(&[("__name__", "up")], &[(1000, 1.0)])]);
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

/// POSTs over HTTPS trusting `ca`, optionally with a client certificate. `Err` when the
/// connection or handshake fails.
async fn post_tls(
    url: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    auth: Option<&str>,
) -> Result<u16, String> {
    let tls = omen::tls::client_config(Some(ca), client).unwrap();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut req = Request::post(url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(one()))).unwrap())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

#[tokio::test]
async fn ingest_over_tls_with_client_certificates() {
    let pki = Pki::new("ingest");
    let (cert, key) = pki.issue("server", ExtendedKeyUsagePurpose::ServerAuth);
    let (ccert, ckey) = pki.issue("client", ExtendedKeyUsagePurpose::ClientAuth);
    let fake = FakeDownstream::start().await;
    let yaml = format!(
        "server: {{tls: {{cert_file: {}, key_file: {}, client_ca_file: {}}}}}\ndownstream: {{url: DOWNSTREAM}}\n",
        cert.display(),
        key.display(),
        pki.ca_path().display()
    );
    let omen = Omen::start_at(&yaml, &fake.url(), &pki.dir.join("omen.yaml")).await;
    let url = format!("https://localhost:{}/api/v1/write", omen.addr.port());
    assert_eq!(
        post_tls(&url, &pki.ca_path(), Some((&ccert, &ckey)), None).await,
        Ok(204)
    );
    assert!(
        post_tls(&url, &pki.ca_path(), None, None).await.is_err(),
        "no client certificate: refused"
    );
    let other = Pki::new("stranger");
    let (scert, skey) = other.issue("client", ExtendedKeyUsagePurpose::ClientAuth);
    assert!(
        post_tls(&url, &pki.ca_path(), Some((&scert, &skey)), None)
            .await
            .is_err(),
        "certificate from another CA: refused"
    );
    let plain = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        client
            .request(
                Request::post(omen.url("/api/v1/write"))
                    .body(Full::new(Bytes::from(one())))
                    .unwrap(),
            )
            .await
    })
    .await
    .expect("plain HTTP to the TLS port ends promptly");
    assert!(plain.is_err(), "plain HTTP is not served on the TLS port");
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn bearer_and_basic_auth_on_ingest() {
    let dir = std::env::temp_dir().join(format!("omen-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "t0ken\n").unwrap();
    std::fs::write(dir.join("pw"), "pa55").unwrap();
    let fake = FakeDownstream::start().await;
    let cases = [
        (
            "server: {auth: {bearer_token_file: token}}\n",
            "Bearer t0ken",
            "Bearer wrong",
        ),
        (
            "server: {auth: {basic: {username: prom, password_file: pw}}}\n",
            "Basic cHJvbTpwYTU1",
            "Basic cHJvbTpwYTU2",
        ),
    ];
    for (server, right, wrong) in cases {
        let yaml = format!("{server}downstream: {{url: DOWNSTREAM}}\n");
        let omen = Omen::start_at(&yaml, &fake.url(), &dir.join("omen.yaml")).await;
        let url = omen.url("/api/v1/write");
        let none = post(&url, &RW_HEADERS, one()).await;
        assert_eq!(none.status, 401, "{server}");
        assert!(none.headers.get("www-authenticate").is_some());
        let mut h = RW_HEADERS.to_vec();
        h.push(("authorization", wrong));
        assert_eq!(post(&url, &h, one()).await.status, 401, "{server}");
        h.pop();
        h.push(("authorization", right));
        assert_eq!(post(&url, &h, one()).await.status, 204, "{server}");
        assert_eq!(
            get(&omen.url("/-/healthy")).await.status,
            200,
            "probes need no credentials"
        );
        let metrics = get(&omen.url("/metrics")).await.body;
        assert!(
            !metrics.contains("t0ken") && !metrics.contains("pa55"),
            "no secret in /metrics"
        );
        assert!(metrics.contains("omen_bad_requests_total{reason=\"unauthorized\"} 2"));
    }
    assert_eq!(
        fake.received().len(),
        2,
        "only authorized writes were forwarded"
    );
}

#[tokio::test]
async fn egress_over_tls_with_ca_file_and_client_certificate() {
    let pki = Pki::new("egress");
    let (dcert, dkey) = pki.issue("downstream", ExtendedKeyUsagePurpose::ServerAuth);
    let (ccert, ckey) = pki.issue("omen", ExtendedKeyUsagePurpose::ClientAuth);
    // The fake downstream requires a client certificate from our CA.
    let downstream_tls = omen::tls::server_config(&dcert, &dkey, Some(&pki.ca_path())).unwrap();
    let fake = FakeDownstream::start_with(Some(downstream_tls)).await;
    std::fs::write(pki.dir.join("pw"), "s3cret-pw").unwrap();
    let yaml = format!(
        "downstream:\n  url: DOWNSTREAM\n  basic_auth: {{username: omen, password_file: pw}}\n  tls: {{ca_file: {}, cert_file: {}, key_file: {}}}\n",
        pki.ca_path().display(),
        ccert.display(),
        ckey.display()
    );
    let omen = Omen::start_at(&yaml, &fake.https_url(), &pki.dir.join("omen.yaml")).await;
    assert_eq!(
        write(
            &omen,
            &request(vec![series(&[("__name__", "up")], &[(1, 1.0)])])
        )
        .await
        .status,
        204
    );
    let got = fake.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].headers.get("authorization").unwrap(),
        "Basic b21lbjpzM2NyZXQtcHc="
    );

    // Without the client certificate the downstream refuses the handshake: 503, retryable.
    let yaml = format!(
        "downstream: {{url: DOWNSTREAM, tls: {{ca_file: {}}}}}\n",
        pki.ca_path().display()
    );
    let omen = Omen::start_at(&yaml, &fake.https_url(), &pki.dir.join("omen.yaml")).await;
    let a = write(
        &omen,
        &request(vec![series(&[("__name__", "up")], &[(1, 1.0)])]),
    )
    .await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(!a.body.contains("s3cret"), "{}", a.body);
}

#[tokio::test]
async fn certificate_reload_serves_the_new_certificate() {
    let pki = Pki::new("reload");
    let (cert, key) = pki.issue("server", ExtendedKeyUsagePurpose::ServerAuth);
    let fake = FakeDownstream::start().await;
    let path = pki.dir.join("omen.yaml");
    let yaml = format!(
        "server: {{tls: {{cert_file: {}, key_file: {}}}}}\ndownstream: {{url: {}}}\n",
        cert.display(),
        key.display(),
        fake.url()
    );
    std::fs::write(&path, &yaml).unwrap();
    let omen = Omen::start_at(&yaml, "", &path).await;
    let url = format!("https://localhost:{}/api/v1/write", omen.addr.port());
    assert_eq!(post_tls(&url, &pki.ca_path(), None, None).await, Ok(204));

    // Rotate to a certificate from a new CA; clients trusting only the old CA now fail,
    // clients trusting the new one succeed.
    let rotated = Pki::new("reload-new");
    let (ncert, nkey) = rotated.issue("server", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::copy(&ncert, &cert).unwrap();
    std::fs::copy(&nkey, &key).unwrap();
    omen.app.reload().expect("reload with the new files");
    assert!(post_tls(&url, &pki.ca_path(), None, None).await.is_err());
    assert_eq!(
        post_tls(&url, &rotated.ca_path(), None, None).await,
        Ok(204)
    );
}

#[test]
fn check_config_names_bad_tls_files_without_secrets() {
    let dir = std::env::temp_dir().join(format!("omen-badtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("junk.pem"), "not a certificate").unwrap();
    std::fs::write(dir.join("pw"), "hunter2").unwrap();
    let cases = [
        ("server: {tls: {cert_file: junk.pem, key_file: junk.pem}}\ndownstream: {url: 'http://h:1/p'}\n", "server.tls", "junk.pem"),
        ("downstream: {url: 'https://h:1/p', tls: {ca_file: missing.pem}}\n", "downstream.tls", "missing.pem"),
        ("downstream: {url: 'http://h:1/p', tls: {ca_file: junk.pem}}\n", "downstream.tls", "not https"),
        ("server: {auth: {basic: {username: '', password_file: pw}}}\ndownstream: {url: 'http://h:1/p'}\n", "server.auth.basic.username", "empty"),
    ];
    for (i, (yaml, key, reason)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_omen"))
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{yaml}");
        assert!(
            stderr.starts_with(&format!("{}: {key}: ", path.display())),
            "{stderr}"
        );
        assert!(stderr.contains(reason), "{stderr}");
        assert!(!stderr.contains("hunter2"));
    }
}
