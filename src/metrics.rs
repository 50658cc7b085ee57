//! omen's self-metrics (`/metrics`), named `omen_<thing>_<unit>[_total]`. Series labels
//! of user data never become metric labels; reasons and status codes do.

use prometheus::{
    Counter, Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

use crate::wire::InvalidSeries;

/// All counters, gauges and histograms, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Write requests answered, by HTTP status code.
    pub requests: IntCounterVec,
    /// Bad requests (4xx) by reason.
    pub bad_requests: IntCounterVec,
    pub in_flight: IntGauge,
    pub received_samples: IntCounter,
    pub forwarded_samples: IntCounter,
    /// Samples not forwarded, by reason (`whitelist` or an invalid-series reason).
    pub dropped_samples: IntCounterVec,
    pub forwarded_metadata: IntCounter,
    /// Downstream requests by outcome (status code, `timeout` or `error`).
    pub downstream_requests: IntCounterVec,
    pub downstream_duration: Histogram,
    pub route_cache_entries: IntGauge,
    pub config_reloads: IntCounterVec,
    pub request_duration: HistogramVec,
    /// Models in memory (set at scrape time).
    pub models: IntGauge,
    pub model_evictions: IntCounter,
    pub models_retired: IntCounter,
    /// Derived samples (scores, forecasts, bounds, stale markers) delivered downstream.
    pub derived_samples: IntCounter,
    pub snapshot_last_success: Gauge,
    pub snapshot_duration: Gauge,
    pub snapshot_bytes: IntGauge,
    pub snapshot_series: IntGauge,
    pub snapshot_failures: IntCounter,
    pub snapshot_restore_failures: IntCounter,
    pub snapshot_restored_series: IntGauge,
    pub import_loads: IntCounter,
    pub import_failures: IntCounter,
    pub import_series: IntGauge,
    pub history_export_last_success: Gauge,
    pub history_export_series: IntGauge,
    pub history_export_failures: IntCounter,
    /// Background fits by result (`season`, `flat`, `skipped`).
    pub fits: IntCounterVec,
    /// Series waiting for a fit.
    pub fit_backlog: IntGauge,
    pub fit_duration: Histogram,
    /// CPU time of the fitting threads.
    pub fit_cpu: Counter,
    /// Bytes accounted to fit histories (bounded by `models.fit.history_bytes`).
    pub fit_history_bytes: IntGauge,
    pub fit_history_series: IntGauge,
    /// Series not given a history because the store was full.
    pub fit_history_rejected: IntCounter,
    pub fit_history_evictions: IntCounter,
    /// Fits finished after their series' model time reached the adoption point.
    pub fit_late: IntCounter,
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Panics
    /// Only on a programming error (a duplicate or malformed metric definition).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let fgauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let buckets = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let downstream_duration = Histogram::with_opts(
            HistogramOpts::new(
                "omen_downstream_request_duration_seconds",
                "Latency of downstream write requests.",
            )
            .buckets(buckets.clone()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(downstream_duration.clone()))
            .expect("unique metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "omen_request_duration_seconds",
                "Time from receiving a write request to answering it.",
            )
            .buckets(buckets),
            &["code"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(request_duration.clone()))
            .expect("unique metric");
        let build_info = IntCounterVec::new(
            Opts::new(
                "omen_build_info",
                "Always 1; the version label says which omen runs.",
            ),
            &["version"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(build_info.clone()))
            .expect("unique metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .inc();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");

        let fit_duration = Histogram::with_opts(
            HistogramOpts::new(
                "omen_fit_duration_seconds",
                "Wall time of one background fit of one series.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(fit_duration.clone()))
            .expect("unique metric");
        let fit_cpu = Counter::new(
            "omen_fit_cpu_seconds_total",
            "CPU time used by the background fitting threads.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(fit_cpu.clone()))
            .expect("unique metric");

        let m = Metrics {
            requests: counter_vec("omen_requests_total", "Write requests answered, by status code.", &["code"]),
            bad_requests: counter_vec("omen_bad_requests_total", "Write requests refused with a 4xx, by reason.", &["reason"]),
            in_flight: gauge("omen_requests_in_flight", "Write requests being processed."),
            received_samples: counter("omen_received_samples_total", "Samples (float and histogram) received."),
            forwarded_samples: counter("omen_forwarded_samples_total", "Received samples delivered downstream."),
            dropped_samples: counter_vec(
                "omen_dropped_samples_total",
                "Received samples not forwarded, by reason (whitelist or why the series was invalid).",
                &["reason"],
            ),
            forwarded_metadata: counter("omen_forwarded_metadata_total", "Metadata entries delivered downstream."),
            downstream_requests: counter_vec(
                "omen_downstream_requests_total",
                "Downstream write requests by outcome: status code, timeout or error.",
                &["code"],
            ),
            downstream_duration,
            route_cache_entries: gauge("omen_route_cache_entries", "Series whose route decision is cached."),
            config_reloads: counter_vec("omen_config_reloads_total", "Configuration reloads by result.", &["result"]),
            request_duration,
            models: gauge("omen_models", "Per-series models in memory."),
            model_evictions: counter(
                "omen_model_evictions_total",
                "Models evicted (least recently used) because models.max_series was reached.",
            ),
            models_retired: counter("omen_models_retired_total", "Models dropped after their series went stale."),
            derived_samples: counter(
                "omen_derived_samples_total",
                "Derived samples (score, forecast, bounds) delivered downstream.",
            ),
            snapshot_last_success: fgauge(
                "omen_snapshot_last_success_timestamp_seconds",
                "When the last model snapshot was written (0: never).",
            ),
            snapshot_duration: fgauge("omen_snapshot_duration_seconds", "Time the last model snapshot took."),
            snapshot_bytes: gauge("omen_snapshot_bytes", "Size of the last model snapshot file."),
            snapshot_series: gauge("omen_snapshot_series", "Models in the last snapshot."),
            snapshot_failures: counter("omen_snapshot_failures_total", "Model snapshots that could not be written."),
            snapshot_restore_failures: counter(
                "omen_snapshot_restore_failures_total",
                "Snapshots found unreadable at start (truncated, wrong schema, newer version, duplicates).",
            ),
            snapshot_restored_series: gauge("omen_snapshot_restored_series", "Models restored from the snapshot at start."),
            import_loads: counter("omen_import_loads_total", "Model imports (models.import) loaded and put in force."),
            import_failures: counter(
                "omen_import_failures_total",
                "Model imports refused (unreadable, wrong schema, bad values); the previous import stays in force.",
            ),
            import_series: gauge("omen_import_series", "Series listed by the model import in force."),
            history_export_last_success: fgauge(
                "omen_history_export_last_success_timestamp_seconds",
                "When the fit histories were last exported (persistence.export; 0: never).",
            ),
            history_export_series: gauge("omen_history_export_series", "Series in the last history export."),
            history_export_failures: counter("omen_history_export_failures_total", "History exports that could not be written."),
            fits: counter_vec(
                "omen_fits_total",
                "Background fits by result: season found, flat (no season), or skipped (too little or too sparse history).",
                &["result"],
            ),
            fit_backlog: gauge("omen_fit_backlog", "Series waiting for a background fit."),
            fit_duration,
            fit_cpu,
            fit_history_bytes: gauge(
                "omen_fit_history_bytes",
                "Memory accounted to fit histories (bounded by models.fit.history_bytes).",
            ),
            fit_history_series: gauge("omen_fit_history_series", "Series with a fit history."),
            fit_history_rejected: counter(
                "omen_fit_history_rejected_total",
                "Times a modeled series got no fit history because the store was full.",
            ),
            fit_history_evictions: counter(
                "omen_fit_history_evictions_total",
                "Fit histories dropped (idle series, or to admit new series when full).",
            ),
            fit_late: counter(
                "omen_fit_late_total",
                "Fits that finished after their series' model time reached the adoption point (an hour after the series became due); such a fit is adopted at the next commit, so replicas fed the same stream may differ.",
            ),
            registry,
        };
        for r in ["season", "flat", "skipped"] {
            m.fits.with_label_values(&[r]);
        }
        m.dropped_samples.with_label_values(&["whitelist"]);
        for r in InvalidSeries::ALL {
            m.dropped_samples.with_label_values(&[r.reason()]);
        }
        for r in ["success", "failure"] {
            m.config_reloads.with_label_values(&[r]);
        }
        m
    }

    /// The registry, for components that register their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
