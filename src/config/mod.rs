//! omen's configuration: read the YAML file, then validate it into typed form at start so
//! the hot path never re-parses anything. Every error names the file, the key and the problem.

mod models;
mod raw;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use models::{FitConfig, ModelsConfig, Names, Outputs, RuleConfig, Seasonality};
pub use units::{parse_duration, parse_size};

use crate::persist::{ExportConfig, OnCorrupt, PersistConfig};
use crate::selector::Selector;
use raw::RawConfig;

/// A configuration error: `FILE: key.path: reason`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {key}: {reason}", file.display())]
pub struct ConfigError {
    /// The file that was read.
    pub file: PathBuf,
    /// Dotted path of the offending key (`server.listen`), or `(file)` for the file itself.
    pub key: String,
    /// One-line reason.
    pub reason: String,
}

/// A key-path-and-reason pair produced while validating; the file is added by `load`.
#[derive(Debug)]
pub(crate) struct KeyError {
    pub key: String,
    pub reason: String,
}

pub(crate) fn key_err(key: impl Into<String>, reason: impl Into<String>) -> KeyError {
    KeyError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub downstream: DownstreamConfig,
    /// Series selectors; a series is forwarded if any matches. Empty = keep everything.
    pub whitelist: Vec<Selector>,
    /// Entries of the per-series route cache (label-set hash → decision).
    pub route_cache_size: usize,
    pub models: ModelsConfig,
    pub ui: UiConfig,
    /// Model snapshots; `None` = models live in memory only.
    pub persistence: Option<PersistConfig>,
}

/// The `ui:` section: the page at `/` and the bounded record of recent values behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UiConfig {
    /// Serve the page and its JSON endpoints, and record recent derived values.
    pub enabled: bool,
    /// Series whose recent values are kept; when full, only an anomalous series is
    /// admitted, in place of the least interesting one.
    pub max_series: usize,
    /// Points kept per series (a ring).
    pub points: usize,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Cap on the decoded body; also bounds the compressed body.
    pub max_decoded_bytes: usize,
    pub max_concurrent_requests: usize,
    pub shutdown_grace: Duration,
    pub max_series_per_request: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// Samples stamped further than this ahead of omen's clock are refused.
    pub future_tolerance: Duration,
    /// TLS on the listener; `None` = plain HTTP.
    pub tls: Option<ServerTls>,
    /// Credentials a client must present on the write endpoint.
    pub auth: Credentials,
}

/// The listener's TLS: the built rustls config and the files it came from (watched for
/// changes, reloaded like the rest of the config).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DownstreamConfig {
    pub url: hyper::Uri,
    pub timeout: Duration,
    /// Fixed tenant; `None` passes the incoming `X-Scope-OrgID` through.
    pub tenant: Option<String>,
    /// Extra headers, validated as HTTP header names and values.
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    pub auth: Credentials,
    /// TLS for an `https` URL.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Credentials (for downstream, or required from clients). Secrets are read from files at start (and on reload);
/// `Debug` never prints them.
#[derive(Clone)]
pub enum Credentials {
    None,
    Basic { username: String, password: String },
    Bearer { token: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <secret>)"),
            Credentials::Bearer { .. } => f.write_str("Bearer(<secret>)"),
        }
    }
}

impl Credentials {
    /// The `Authorization` header value these credentials make, if any.
    pub fn authorization(&self) -> Option<String> {
        use base64::Engine;
        match self {
            Credentials::None => None,
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Credentials::Bearer { token } => Some(format!("Bearer {token}")),
        }
    }
}

/// Headers omen sets itself; a config that tries to set them is refused.
const RESERVED_HEADERS: [&str; 10] = [
    "content-encoding",
    "content-type",
    "content-length",
    "x-prometheus-remote-write-version",
    "user-agent",
    "x-scope-orgid",
    "authorization",
    "host",
    "transfer-encoding",
    "connection",
];

impl Config {
    /// Reads and validates a config file.
    ///
    /// # Errors
    /// `FILE: key: reason` for an unreadable file, invalid YAML, an unknown key or an
    /// invalid value.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            key: "(file)".into(),
            reason: e.to_string(),
        })?;
        Config::parse(&text, path)
    }

    /// Validates config text; `path` is used in errors and to resolve relative files.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let wrap = |e: KeyError| ConfigError {
            file: path.to_path_buf(),
            key: e.key,
            reason: e.reason,
        };
        let de = serde_yaml::Deserializer::from_str(text);
        let raw: RawConfig = match serde_path_to_error::deserialize(de) {
            Ok(raw) => raw,
            Err(e) => {
                let key = e.path().to_string();
                let key = if key == "." || key == "?" {
                    "(file)".to_string()
                } else {
                    key
                };
                // serde_yaml prefixes its own notion of the path; the key already says it.
                let reason = e.into_inner().to_string();
                let reason = match reason.split_once(": ") {
                    Some((prefix, rest)) if key.starts_with(prefix) => rest.to_string(),
                    _ => reason,
                };
                return Err(wrap(key_err(key, reason)));
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        build(raw, base).map_err(wrap)
    }
}

fn build(raw: RawConfig, base: &Path) -> Result<Config, KeyError> {
    let s = raw.server;
    let listen = s.listen.as_deref().unwrap_or("127.0.0.1:9201");
    let listen: SocketAddr = listen.parse().map_err(|_| {
        key_err(
            "server.listen",
            format!("{listen:?} is not a host:port address (e.g. 127.0.0.1:9201)"),
        )
    })?;
    let max_decoded_bytes = size(
        s.max_decoded_bytes.as_deref(),
        "32MiB",
        "server.max_decoded_bytes",
    )?;
    if max_decoded_bytes == 0 || max_decoded_bytes > (1 << 30) {
        return Err(key_err(
            "server.max_decoded_bytes",
            "must be between 1B and 1GiB",
        ));
    }
    let server = ServerConfig {
        listen,
        max_decoded_bytes: max_decoded_bytes as usize,
        max_concurrent_requests: positive(
            s.max_concurrent_requests,
            64,
            "server.max_concurrent_requests",
        )?,
        shutdown_grace: duration(s.shutdown_grace.as_deref(), "30s", "server.shutdown_grace")?,
        max_series_per_request: positive(
            s.max_series_per_request,
            100_000,
            "server.max_series_per_request",
        )?,
        max_labels_per_series: positive(
            s.max_labels_per_series,
            64,
            "server.max_labels_per_series",
        )?,
        max_label_name_length: positive(
            s.max_label_name_length,
            1024,
            "server.max_label_name_length",
        )?,
        max_label_value_length: positive(
            s.max_label_value_length,
            4096,
            "server.max_label_value_length",
        )?,
        future_tolerance: duration(
            s.future_tolerance.as_deref(),
            "10m",
            "server.future_tolerance",
        )?,
        tls: match s.tls {
            None => None,
            Some(t) => {
                let (cert, key) = (base.join(&t.cert_file), base.join(&t.key_file));
                let ca = t.client_ca_file.as_ref().map(|c| base.join(c));
                let config = crate::tls::server_config(&cert, &key, ca.as_deref())
                    .map_err(|e| key_err("server.tls", e))?;
                let files = [Some(cert), Some(key), ca].into_iter().flatten().collect();
                Some(ServerTls { config, files })
            }
        },
        auth: match s.auth {
            None => Credentials::None,
            Some(a) => credentials(base, a.basic, a.bearer_token_file, "server.auth")?,
        },
    };

    let d = raw.downstream.ok_or_else(|| {
        key_err(
            "downstream",
            "missing: omen needs a downstream url to forward to",
        )
    })?;
    let url_text = d.url.ok_or_else(|| key_err("downstream.url", "missing"))?;
    let url: hyper::Uri = url_text
        .parse()
        .map_err(|e| key_err("downstream.url", format!("{url_text:?} is not a URL: {e}")))?;
    match url.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(key_err(
                "downstream.url",
                format!("scheme {other:?} is not supported (use http or https)"),
            ))
        }
        None => {
            return Err(key_err(
                "downstream.url",
                format!("{url_text:?} has no scheme (use http://host:port/path)"),
            ))
        }
    }
    if url.host().is_none() {
        return Err(key_err(
            "downstream.url",
            format!("{url_text:?} has no host"),
        ));
    }
    let timeout = duration(d.timeout.as_deref(), "30s", "downstream.timeout")?;
    if timeout.is_zero() {
        return Err(key_err("downstream.timeout", "must be greater than 0"));
    }
    if let Some(t) = &d.tenant {
        if t.is_empty() || hyper::header::HeaderValue::from_str(t).is_err() {
            return Err(key_err(
                "downstream.tenant",
                "must be a non-empty header-safe string",
            ));
        }
    }
    let mut headers = Vec::new();
    for (name, value) in &d.headers {
        let key = format!("downstream.headers.{name}");
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(key_err(
                key,
                "is set by omen and cannot be overridden (use downstream.tenant or the auth keys)",
            ));
        }
        let hn = hyper::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| key_err(key.clone(), "is not a valid header name"))?;
        let hv = hyper::header::HeaderValue::from_str(value)
            .map_err(|_| key_err(key, "has an invalid header value"))?;
        headers.push((hn, hv));
    }
    let auth = credentials(base, d.basic_auth, d.bearer_token_file, "downstream")?;
    let tls = match (url.scheme_str(), d.tls) {
        (Some("https"), t) => {
            let ca = t
                .as_ref()
                .and_then(|t| t.ca_file.as_ref())
                .map(|f| base.join(f));
            let pair = match t.as_ref().map(|t| (&t.cert_file, &t.key_file)) {
                Some((Some(c), Some(k))) => Some((base.join(c), base.join(k))),
                Some((None, None)) | None => None,
                Some(_) => {
                    return Err(key_err(
                        "downstream.tls",
                        "cert_file and key_file go together",
                    ))
                }
            };
            let pair_ref = pair.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
            let config = crate::tls::client_config(ca.as_deref(), pair_ref)
                .map_err(|e| key_err("downstream.tls", e))?;
            Some(config)
        }
        (_, Some(_)) => {
            return Err(key_err(
                "downstream.tls",
                "set, but downstream.url is not https",
            ))
        }
        (_, None) => None,
    };
    let downstream = DownstreamConfig {
        url,
        timeout,
        tenant: d.tenant,
        headers,
        auth,
        tls,
    };

    let mut whitelist = Vec::new();
    for (i, text) in raw.whitelist.unwrap_or_default().iter().enumerate() {
        whitelist.push(Selector::parse(text).map_err(|e| key_err(format!("whitelist[{i}]"), e))?);
    }
    let route_cache_size = positive(raw.route_cache_size, 1_000_000, "route_cache_size")?;
    let models = models::build(raw.models.unwrap_or_default(), base)?;
    let ui = raw.ui.unwrap_or_default();
    let ui = UiConfig {
        enabled: ui.enabled.unwrap_or(true),
        max_series: positive(ui.max_series, 500, "ui.max_series")?,
        points: positive(ui.points, 240, "ui.points")?,
    };
    if ui.max_series > 100_000 {
        return Err(key_err(
            "ui.max_series",
            "at most 100000 (the page is for people)",
        ));
    }
    if ui.points < 2 || ui.points > 10_000 {
        return Err(key_err("ui.points", "must be between 2 and 10000"));
    }
    let persistence = match raw.persistence {
        None => None,
        Some(p) => {
            if p.path.is_empty() {
                return Err(key_err("persistence.path", "must not be empty"));
            }
            let interval = duration(
                p.snapshot_interval.as_deref(),
                "5m",
                "persistence.snapshot_interval",
            )?;
            if interval < Duration::from_secs(1) {
                return Err(key_err(
                    "persistence.snapshot_interval",
                    "must be at least 1s",
                ));
            }
            let on_corrupt = match p.on_corrupt.as_deref().unwrap_or("start_empty") {
                "start_empty" => OnCorrupt::StartEmpty,
                "refuse" => OnCorrupt::Refuse,
                other => {
                    return Err(key_err(
                        "persistence.on_corrupt",
                        format!("{other:?}: expected start_empty or refuse"),
                    ))
                }
            };
            let export = match p.export {
                None => None,
                Some(e) => {
                    if e.path.is_empty() {
                        return Err(key_err("persistence.export.path", "must not be empty"));
                    }
                    let interval =
                        duration(e.interval.as_deref(), "1h", "persistence.export.interval")?;
                    if interval < Duration::from_secs(1) {
                        return Err(key_err(
                            "persistence.export.interval",
                            "must be at least 1s",
                        ));
                    }
                    Some(ExportConfig {
                        path: base.join(e.path),
                        interval,
                    })
                }
            };
            Some(PersistConfig {
                path: base.join(p.path),
                interval,
                on_corrupt,
                export,
            })
        }
    };
    Ok(Config {
        server,
        downstream,
        whitelist,
        route_cache_size,
        models,
        ui,
        persistence,
    })
}

fn credentials(
    base: &Path,
    basic: Option<raw::RawBasicAuth>,
    bearer_file: Option<String>,
    key: &str,
) -> Result<Credentials, KeyError> {
    match (basic, bearer_file) {
        (Some(_), Some(_)) => Err(key_err(
            key,
            "basic auth and bearer_token_file are mutually exclusive",
        )),
        (Some(b), None) => {
            let basic = if key == "downstream" {
                "downstream.basic_auth"
            } else {
                "server.auth.basic"
            };
            if b.username.is_empty() {
                return Err(key_err(format!("{basic}.username"), "must not be empty"));
            }
            let password = read_secret(base, &b.password_file, &format!("{basic}.password_file"))?;
            Ok(Credentials::Basic {
                username: b.username,
                password,
            })
        }
        (None, Some(f)) => Ok(Credentials::Bearer {
            token: read_secret(base, &f, &format!("{key}.bearer_token_file"))?,
        }),
        (None, None) => Ok(Credentials::None),
    }
}

fn read_secret(base: &Path, file: &str, key: &str) -> Result<String, KeyError> {
    let path = base.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| key_err(key, format!("cannot read {}: {e}", path.display())))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        return Err(key_err(key, format!("{} is empty", path.display())));
    }
    Ok(secret)
}

pub(crate) fn duration(v: Option<&str>, default: &str, key: &str) -> Result<Duration, KeyError> {
    parse_duration(v.unwrap_or(default)).map_err(|e| key_err(key, e))
}

pub(crate) fn size(v: Option<&str>, default: &str, key: &str) -> Result<u64, KeyError> {
    parse_size(v.unwrap_or(default)).map_err(|e| key_err(key, e))
}

pub(crate) fn positive(v: Option<u64>, default: u64, key: &str) -> Result<usize, KeyError> {
    match v.unwrap_or(default) {
        0 => Err(key_err(key, "must be greater than 0")),
        n => usize::try_from(n).map_err(|_| key_err(key, "too large")),
    }
}

#[cfg(test)]
mod tests;
