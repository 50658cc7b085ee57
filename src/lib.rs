//! omen: a Prometheus remote-write sidecar. It receives remote-write from Prometheus,
//! keeps the whitelisted series, and forwards them downstream (Cortex, Mimir, Thanos,
//! VictoriaMetrics, Prometheus), answering Prometheus only after downstream answered.
//!
//! The modules, in the order a request meets them:
//! - [`app`]: the running state built from the config, swapped on reload.
//! - [`server`]: the HTTP listener, concurrency limit, endpoints and graceful shutdown.
//! - [`ingest`]: headers, size limits and snappy: from an HTTP body to a protobuf buffer.
//! - [`wire`]: the hand-written remote-write scanner and writer (zero-copy hot path).
//! - [`route`]: per-series decision (forward? model?), cached by label-set hash.
//! - [`pipeline`]: one request end to end: scan, route, build, forward, answer.
//! - [`derive`]: per-series model state, tentative updates and derived series.
//! - [`fit`]: compact histories and background fitting with augurs (off the request path).
//! - [`persist`]: model snapshots in Arrow IPC files, restored at start; the model import
//!   (hot-reloaded) and the history export for the learning core.
//! - [`forward`]: the downstream client and the mapping of its answers.
//! - [`metrics`], the self-metrics registry.
//! - [`model`]: the per-series online forecasting model (pure: no I/O, no wall clock).
//! - [`ui`]: omen's own page (`GET /`), its JSON endpoints and record of recent values.
//! - [`demo`]: `omen demo`, generator → omen → in-process receiver, with the page.
//! - [`replay`]: `omen replay`, the model over CSV files (and NAB quality).
//! - [`config`], [`selector`]: the YAML configuration, validated at start.
//! - [`proto`]: prost types generated from `proto/`, for tests and tools.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod derive;
pub mod fit;
pub mod forward;
pub mod idhash;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod persist;
pub mod pipeline;
pub mod proto;
pub mod recency;
pub mod replay;
pub mod route;
pub mod run;
pub mod selector;
pub mod server;
pub mod tls;
pub mod ui;
pub mod wire;
