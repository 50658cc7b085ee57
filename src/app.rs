//! Building the running application from a validated config, and replacing it on reload
//! (SIGHUP) without dropping connections; a bad new config keeps the old one running.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::derive::Models;
use crate::fit::pool::FitPool;
use crate::forward::{Forwarder, ForwarderSettings};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::route::Router;
use crate::wire::Limits;

/// What a request needs, swapped as a whole on reload.
pub struct State {
    pub config: Config,
    pub pipeline: Pipeline,
    /// Write requests allowed in flight; beyond, 503 + Retry-After.
    pub limit: Arc<Semaphore>,
    /// The `Authorization` header a writer must send, if `server.auth` is set.
    pub required_auth: Option<Vec<u8>>,
}

/// The application: current state, metrics, and where the config came from.
pub struct App {
    state: ArcSwap<State>,
    /// Outlives config reloads: a reload never drops models.
    models: Arc<Models>,
    metrics: Metrics,
    config_path: PathBuf,
    /// The background fitting threads (stopped by [`App::stop_fitting`] or on drop).
    fit_pool: Mutex<Option<FitPool>>,
    /// The page and its record of recent derived values (`ui:`; sized at start).
    ui: crate::ui::Ui,
}

impl App {
    /// Builds the application from a loaded config.
    pub fn new(config: Config, config_path: PathBuf, metrics: Metrics) -> App {
        let forwarder = Forwarder::new(
            ForwarderSettings::from_config(&config.downstream),
            config.downstream.tls.clone(),
            metrics.clone(),
        );
        let limit = Arc::new(Semaphore::new(config.server.max_concurrent_requests));
        let ui = crate::ui::Ui::new(&config.ui);
        let mut models = Models::new(&config.models, metrics.clone());
        if let Some(recent) = ui.recent() {
            models = models.with_recent(recent.clone());
        }
        let models = Arc::new(models);
        let pipeline = build_pipeline(&config, models.clone(), forwarder, &metrics);
        // `models.fit.threads` and `cpu_budget` take effect at start (not on reload).
        let fit_pool = FitPool::start(models.fitter().clone(), &config.models.fit);
        App {
            fit_pool: Mutex::new(Some(fit_pool)),
            models,
            state: ArcSwap::from_pointee(State {
                required_auth: config.server.auth.authorization().map(String::into_bytes),
                config,
                pipeline,
                limit,
            }),
            metrics,
            config_path,
            ui,
        }
    }

    /// The page's state.
    pub fn ui(&self) -> &crate::ui::Ui {
        &self.ui
    }

    /// The current state; cheap, lock-free.
    pub fn state(&self) -> Arc<State> {
        self.state.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The models, shared by every pipeline this app builds.
    pub fn models(&self) -> &Arc<Models> {
        &self.models
    }

    /// Stops the background fitting threads (shutdown); waits for a fit in progress.
    pub fn stop_fitting(&self) {
        let pool = self
            .fit_pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(pool);
    }

    /// Re-reads the config file and swaps it in. In-flight requests finish on the old
    /// state. `server.listen` cannot change without a restart and is reported.
    ///
    /// # Errors
    /// The config error; the running config stays in place.
    pub fn reload(&self) -> Result<(), crate::config::ConfigError> {
        let result = Config::load(&self.config_path);
        let config = match result {
            Ok(c) => c,
            Err(e) => {
                self.metrics
                    .config_reloads
                    .with_label_values(&["failure"])
                    .inc();
                tracing::error!(error = %e, "config reload failed; keeping the running config");
                return Err(e);
            }
        };
        let old = self.state();
        if config.server.listen != old.config.server.listen {
            tracing::warn!(old = %old.config.server.listen, new = %config.server.listen, "server.listen changes only on restart");
        }
        // A fresh pool: the URL, TLS or credentials may have changed. In-flight requests
        // finish on the old one.
        let forwarder = Forwarder::new(
            ForwarderSettings::from_config(&config.downstream),
            config.downstream.tls.clone(),
            self.metrics.clone(),
        );
        let limit =
            if config.server.max_concurrent_requests == old.config.server.max_concurrent_requests {
                old.limit.clone()
            } else {
                Arc::new(Semaphore::new(config.server.max_concurrent_requests))
            };
        self.models.reconfigure(&config.models);
        let pipeline = build_pipeline(&config, self.models.clone(), forwarder, &self.metrics);
        self.state.store(Arc::new(State {
            required_auth: config.server.auth.authorization().map(String::into_bytes),
            config,
            pipeline,
            limit,
        }));
        self.metrics
            .config_reloads
            .with_label_values(&["success"])
            .inc();
        tracing::info!(file = %self.config_path.display(), "config reloaded");
        Ok(())
    }
}

fn build_pipeline(
    config: &Config,
    models: Arc<Models>,
    forwarder: Forwarder,
    metrics: &Metrics,
) -> Pipeline {
    let rules = config
        .models
        .rules
        .iter()
        .map(|r| r.selector.clone())
        .collect();
    let router = Router::new(config.whitelist.clone(), rules, config.route_cache_size);
    let s = &config.server;
    let limits = Limits {
        max_series_per_request: s.max_series_per_request,
        max_labels_per_series: s.max_labels_per_series,
        max_label_name_length: s.max_label_name_length,
        max_label_value_length: s.max_label_value_length,
        // Set per request from the wall clock and `future_tolerance`.
        max_timestamp_ms: i64::MAX,
    };
    Pipeline::new(
        router,
        models,
        forwarder,
        limits,
        s.max_decoded_bytes,
        s.future_tolerance,
        metrics.clone(),
    )
}
