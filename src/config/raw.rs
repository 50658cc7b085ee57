//! The configuration file as written: inert serde structs with `deny_unknown_fields`.
//! Nothing here is validated; `config::build` turns it into typed form.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub downstream: Option<RawDownstream>,
    #[serde(default)]
    pub whitelist: Option<Vec<String>>,
    #[serde(default)]
    pub route_cache_size: Option<u64>,
    #[serde(default)]
    pub models: Option<RawModels>,
    #[serde(default)]
    pub ui: Option<RawUi>,
    pub persistence: Option<RawPersistence>,
}

/// The `ui:` section: omen's own page and its bounded record of recent derived values.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUi {
    pub enabled: Option<bool>,
    pub max_series: Option<u64>,
    pub points: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPersistence {
    pub path: String,
    pub snapshot_interval: Option<String>,
    pub on_corrupt: Option<String>,
    pub export: Option<RawExport>,
}

/// `persistence.export`: the fit histories for the learning core, written periodically.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExport {
    pub path: String,
    pub interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub max_decoded_bytes: Option<String>,
    pub max_concurrent_requests: Option<u64>,
    pub shutdown_grace: Option<String>,
    pub max_series_per_request: Option<u64>,
    pub max_labels_per_series: Option<u64>,
    pub max_label_name_length: Option<u64>,
    pub max_label_value_length: Option<u64>,
    pub future_tolerance: Option<String>,
    pub tls: Option<RawServerTls>,
    pub auth: Option<RawAuth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    pub cert_file: String,
    pub key_file: String,
    pub client_ca_file: Option<String>,
}

/// Credentials a client must present: basic auth or a bearer token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub basic: Option<RawBasicAuth>,
    pub bearer_token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDownstream {
    pub url: Option<String>,
    pub timeout: Option<String>,
    pub tenant: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub basic_auth: Option<RawBasicAuth>,
    pub bearer_token_file: Option<String>,
    pub tls: Option<RawClientTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    pub username: String,
    pub password_file: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModels {
    pub max_series: Option<u64>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    #[serde(default)]
    pub names: RawNames,
    #[serde(default)]
    pub fit: RawFit,
    /// `models.import` (a Rust keyword, hence the rename).
    #[serde(rename = "import")]
    pub import: Option<RawImport>,
}

/// `models.import`: model files (the learning core's output) to load and hot-reload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImport {
    pub path: String,
    pub poll_interval: Option<String>,
    pub max_series: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(rename = "match")]
    pub selector: String,
    pub confidence: Option<f64>,
    pub outputs: Option<Vec<String>>,
    pub warmup: Option<u64>,
    pub seasonality: Option<RawSeasonality>,
    pub histogram_buckets: Option<bool>,
}

/// `auto`, `none`, or a list of periods such as `[1d, 7d]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSeasonality {
    Word(String),
    Periods(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNames {
    pub score: Option<String>,
    pub forecast: Option<String>,
    pub lower: Option<String>,
    pub upper: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFit {
    pub threads: Option<u64>,
    pub cpu_budget: Option<f64>,
    pub history_bytes: Option<String>,
}
