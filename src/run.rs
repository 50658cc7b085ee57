//! Running the commands: logging, the tokio runtime, signals (SIGTERM/SIGINT drain and
//! exit, SIGHUP reloads the config and the model import) and the serve loop: snapshot
//! restore and model import before serving, periodic snapshots and history exports, and
//! polls of the TLS and import files.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::app::App;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::persist;

/// `omen check-config FILE`.
///
/// # Errors
/// The config error, as `FILE: key: reason`.
pub fn check_config(path: &Path) -> anyhow::Result<()> {
    Config::load(path)?;
    println!("{}: ok", path.display());
    Ok(())
}

/// `omen serve --config FILE`: runs until SIGTERM or SIGINT.
///
/// # Errors
/// A bad config, a listen address that cannot be bound, or a runtime failure.
pub fn serve(path: &Path) -> anyhow::Result<()> {
    init_logging();
    let config = Config::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("omen")
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve_async(config, path))
}

async fn serve_async(config: Config, path: &Path) -> anyhow::Result<()> {
    let listen = config.server.listen;
    let grace = config.server.shutdown_grace;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding server.listen {listen}"))?;
    let app = Arc::new(App::new(config, path.to_path_buf(), Metrics::new()));
    if let Some(p) = app.state().config.persistence.clone() {
        // Before serving: `/-/ready` answers only once the models are back.
        let (restorer, config) = (app.clone(), p.clone());
        tokio::task::spawn_blocking(move || {
            persist::restore(restorer.models(), &config, restorer.metrics())
        })
        .await
        .context("restoring the snapshot")?
        .context("persistence.on_corrupt is refuse")?;
        if let Some(export) = &p.export {
            every(export.interval, &app, export_now);
        }
        every(p.interval, &app, snapshot_now);
    }
    // Also before serving: an imported series needs no warm-up from its first request on. A
    // bad import is logged and counted; omen serves without it.
    let importer = app.clone();
    tokio::task::spawn_blocking(move || import_now(&importer))
        .await
        .context("loading the model import")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let reloader = app.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // Errors are logged and counted inside reload. The import is re-read either
            // way (its files may have changed, or the config names other ones).
            let _ = reloader.reload();
            let app = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || import_now(&app)).await;
        }
    });
    let watcher = app.clone();
    tokio::spawn(async move {
        // Certificates are rotated on disk (cert-manager, a Secret update): reload when the
        // listener's TLS files change, as on SIGHUP.
        let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
        let mut seen = tls_mtimes(&watcher);
        loop {
            every.tick().await;
            let now = tls_mtimes(&watcher);
            if now != seen {
                tracing::info!("TLS files changed; reloading");
                let _ = watcher.reload();
                seen = tls_mtimes(&watcher);
            }
        }
    });
    let import_watcher = app.clone();
    tokio::spawn(async move {
        // The learning core replaces the model file (atomically) when it has trained: reload
        // when the files' names, modification times or sizes change.
        let mut seen = import_fingerprint(&import_watcher);
        loop {
            let every = import_watcher
                .state()
                .config
                .models
                .import
                .as_ref()
                .map_or(std::time::Duration::from_secs(30), |i| i.poll_interval);
            tokio::time::sleep(every).await;
            let now = import_fingerprint(&import_watcher);
            if now != seen {
                tracing::info!("model import files changed; reloading");
                let app = import_watcher.clone();
                let _ = tokio::task::spawn_blocking(move || import_now(&app)).await;
                seen = now;
            }
        }
    });
    let retirer = app.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            let retired = retirer.models().retire_stale();
            if retired > 0 {
                tracing::debug!(retired, "stale models retired");
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    tracing::info!(listen = %listener.local_addr()?, version = env!("CARGO_PKG_VERSION"), "omen serving");
    crate::server::run(listener, app.clone(), shutdown, grace).await;
    // In-flight requests have finished: the models are final. Fitting stops first (a
    // finished fit is adopted only at a commit, so none can change them any more).
    app.stop_fitting();
    tokio::task::spawn_blocking(move || {
        snapshot_now(&app);
        export_now(&app);
    })
    .await
    .context("writing the shutdown snapshot")?;
    tracing::info!("omen stopped");
    Ok(())
}

/// Writes a snapshot if persistence is configured (errors are logged and counted).
fn snapshot_now(app: &App) {
    if let Some(p) = &app.state().config.persistence {
        let _ = persist::snapshot(app.models(), &p.path, app.metrics());
    }
}

/// Runs `job` on a blocking thread every `interval`, the first time one interval from now.
fn every(interval: std::time::Duration, app: &Arc<App>, job: fn(&App)) {
    let app = app.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let app = app.clone();
            let _ = tokio::task::spawn_blocking(move || job(&app)).await;
        }
    });
}

/// Writes the history export if configured (errors are logged and counted).
fn export_now(app: &App) {
    let state = app.state();
    if let Some(e) = state
        .config
        .persistence
        .as_ref()
        .and_then(|p| p.export.as_ref())
    {
        let _ = persist::history::export(app.models().fitter(), &e.path, app.metrics());
    }
}

/// Loads the configured model import (keeping the previous one if it is bad), or drops
/// the imported series when the config names no import.
fn import_now(app: &App) {
    let state = app.state();
    match &state.config.models.import {
        Some(config) => {
            let _ = persist::import::reload(app.models(), config, app.metrics());
        }
        None => persist::import::clear(app.models(), app.metrics()),
    }
}

type Fingerprint = Vec<(std::path::PathBuf, Option<std::time::SystemTime>, u64)>;

fn import_fingerprint(app: &App) -> Option<Fingerprint> {
    let state = app.state();
    let path = state.config.models.import.as_ref()?.path.clone();
    Some(persist::import::fingerprint(&path))
}

fn tls_mtimes(app: &App) -> Vec<Option<std::time::SystemTime>> {
    let state = app.state();
    let files = state
        .config
        .server
        .tls
        .as_ref()
        .map(|t| t.files.clone())
        .unwrap_or_default();
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("OMEN_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// An error and its causes, as one line.
pub fn error_chain(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
