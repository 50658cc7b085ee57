//! The downstream HTTP client: one keep-alive connection pool, the remote-write headers,
//! tenant and credentials, and a deadline on every request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
    USER_AGENT,
};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::Outcome;
use rustls::ClientConfig;

use crate::config::DownstreamConfig;
use crate::metrics::Metrics;

/// The tenant header Cortex and Mimir read.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// Bytes of a downstream error body that are read and passed on (as Prometheus does).
const MAX_REASON_BYTES: usize = 1024;

/// Everything about downstream that a config reload may change.
#[derive(Debug, Clone)]
pub struct ForwarderSettings {
    pub url: Uri,
    pub timeout: Duration,
    pub tenant: Option<HeaderValue>,
    /// Fixed headers sent on every request (remote-write headers, auth, extra headers).
    pub headers: HeaderMap,
}

impl ForwarderSettings {
    /// Builds the settings from the validated config.
    pub fn from_config(c: &DownstreamConfig) -> ForwarderSettings {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            HeaderName::from_static("x-prometheus-remote-write-version"),
            HeaderValue::from_static("0.1.0"),
        );
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("omen/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in &c.headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(Ok(mut v)) = c.auth.authorization().map(|a| HeaderValue::from_str(&a)) {
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        ForwarderSettings {
            url: c.url.clone(),
            timeout: c.timeout,
            // Validated as a header value at config time.
            tenant: c
                .tenant
                .as_deref()
                .and_then(|t| HeaderValue::from_str(t).ok()),
            headers,
        }
    }
}

/// Sends write requests downstream over a keep-alive pool (HTTP or HTTPS).
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    settings: ForwarderSettings,
    metrics: Metrics,
}

impl Forwarder {
    /// A forwarder with a fresh connection pool; `tls` is used for `https` URLs.
    pub fn new(
        settings: ForwarderSettings,
        tls: Option<Arc<ClientConfig>>,
        metrics: Metrics,
    ) -> Forwarder {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.timeout));
        http.enforce_http(false);
        // A plain-HTTP downstream still needs a (never used) TLS config for the connector.
        let tls = tls.map_or_else(
            || {
                ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
            },
            |c| (*c).clone(),
        );
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        Forwarder {
            client,
            settings,
            metrics,
        }
    }

    /// The tenant to send: the configured one, else the incoming request's.
    pub fn tenant<'a>(&'a self, incoming: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
        self.settings.tenant.as_ref().or(incoming)
    }

    /// Sends one snappy-compressed WriteRequest and classifies the answer.
    pub async fn send(&self, body: Bytes, tenant: Option<&HeaderValue>) -> Outcome {
        let started = tokio::time::Instant::now();
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.settings.url.clone();
        *req.headers_mut() = self.settings.headers.clone();
        if let Some(t) = tenant {
            req.headers_mut()
                .insert(HeaderName::from_static(TENANT_HEADER), t.clone());
        }
        let deadline = started + self.settings.timeout;
        let outcome = match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Err(_) => {
                self.count("timeout");
                Outcome::Unavailable {
                    reason: format!(
                        "downstream did not answer within {:?}",
                        self.settings.timeout
                    ),
                }
            }
            Ok(Err(e)) => {
                self.count("error");
                Outcome::Unavailable {
                    reason: format!("downstream unreachable: {}", error_chain(&e)),
                }
            }
            Ok(Ok(resp)) => {
                let status = resp.status();
                self.count(status.as_str());
                let retry_after = resp.headers().get(RETRY_AFTER).cloned();
                let reason = if status.is_success() {
                    String::new()
                } else {
                    let body = tokio::time::timeout_at(
                        deadline,
                        Limited::new(resp.into_body(), MAX_REASON_BYTES).collect(),
                    )
                    .await;
                    match body {
                        Ok(Ok(b)) => one_line(&b.to_bytes()),
                        _ => String::new(),
                    }
                };
                Outcome::from_response(status, reason, retry_after)
            }
        };
        self.metrics
            .downstream_duration
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    fn count(&self, code: &str) {
        self.metrics
            .downstream_requests
            .with_label_values(&[code])
            .inc();
    }
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// A downstream error body as one printable line.
fn one_line(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
