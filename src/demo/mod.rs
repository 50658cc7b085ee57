//! `omen demo`: omen with an embedded configuration, fed over HTTP by a built-in
//! generator and forwarding to an in-process receiver, with the page on. Everything
//! goes through the real data path: generator → `POST /api/v1/write` → omen (route,
//! models, derived series) → remote-write → receiver.
//!
//! - `generator.rs` the synthetic series and the injected anomalies (known kinds, times);
//! - `receiver.rs` the downstream, keeping a bounded window of what arrived;
//! - `demo.yaml` the embedded configuration.

mod generator;
mod receiver;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

pub use generator::{AnomalyKind, Generator, Injected, DAY_S, STEP_MS};
pub use receiver::Receiver;

use crate::app::App;
use crate::config::{parse_duration, Config};
use crate::metrics::Metrics;
use crate::ui::DemoView;

/// The embedded configuration (`src/demo/demo.yaml`).
pub const CONFIG: &str = include_str!("demo.yaml");

/// Arguments of `omen demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Address of the page and of the write endpoint; port 0 picks a free port (the URL
    /// printed on stdout says which).
    #[arg(long, default_value = "127.0.0.1:9201")]
    pub listen: SocketAddr,
    /// Time compression: simulated seconds per real second (1 = a sample per second per
    /// series; the compressed day lasts 5 minutes of simulated time).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Synthetic series to generate.
    #[arg(long, default_value_t = 300)]
    pub series: usize,
    /// Stop after this long (real time), e.g. `90s`; default: until Ctrl-C.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Also replay CSV files (`timestamp,value`, e.g. NAB's data) found under DIR, one
    /// row per simulated step, as `replay_value{file="…"}`.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
}

/// Runs `omen demo` until Ctrl-C, SIGTERM or `--duration`.
///
/// # Errors
/// Invalid arguments, an address that cannot be bound, an unreadable replay folder.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if !(args.speed > 0.0 && args.speed <= 1000.0) {
        bail!("--speed must be in (0, 1000]");
    }
    if args.series == 0 || args.series > 100_000 {
        bail!("--series must be between 1 and 100000");
    }
    let duration = args
        .duration
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("OMEN_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("omen-demo")
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(demo(args, duration))
}

async fn demo(args: &DemoArgs, duration: Option<Duration>) -> anyhow::Result<()> {
    let source = Path::new("(embedded demo config)");
    let mut config = Config::parse(CONFIG, source)?;
    let receiver = Arc::new(Receiver::new(
        config.models.names.clone(),
        config.ui.max_series,
        config.ui.points,
    ));
    let downstream = receiver::start(receiver.clone())
        .await
        .context("binding the demo receiver on 127.0.0.1")?;
    config.downstream.url = format!("http://{downstream}/api/v1/write").parse()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding --listen {}", args.listen))?;
    let addr = listener.local_addr()?;
    config.server.listen = addr;
    let grace = config.server.shutdown_grace;
    let app = Arc::new(App::new(config, source.to_path_buf(), Metrics::new()));

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let generator = Generator::new(args.series, args.replay.as_deref(), now_ms / 1000 * 1000)?;
    let series = generator.len();
    let generator = Arc::new(Mutex::new(generator));
    let (info_gen, info_rx, speed) = (generator.clone(), receiver.clone(), args.speed);
    let write_url = format!("http://{addr}/api/v1/write");
    let info_url = write_url.clone();
    app.ui().attach_demo(DemoView {
        downstream: receiver.tracks().clone(),
        info: Box::new(move || {
            let g = info_gen.lock().unwrap_or_else(|p| p.into_inner());
            let (requests, samples) = info_rx.received();
            let sim_now = g.now_ms();
            let until_s = (sim_now - now_ms / 1000 * 1000) / 1000 + 60;
            serde_json::json!({
                "speed": speed,
                "step_ms": STEP_MS,
                "day_s": DAY_S,
                "started_ms": now_ms / 1000 * 1000,
                "sim_now_ms": sim_now,
                "series": series,
                "write_url": info_url,
                "downstream": {"requests": requests, "samples": samples},
                "anomalies": g.schedule(until_s, 60),
            })
        }),
    });

    println!("omen demo: open http://{addr}/  ({series} series, speed {speed}x; Ctrl-C stops)");
    println!("omen demo: omen writes to http://{downstream}/api/v1/write (in-process receiver)");
    std::io::stdout().flush()?;

    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::run(
        listener,
        app.clone(),
        async move {
            let _ = stopped.await;
        },
        grace,
    ));
    let sender = tokio::spawn(send_loop(generator, write_url, args.speed));

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let limit = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        () = limit => {}
        r = sender => {
            // The sender only ends on an error it cannot retry.
            let _ = stop_server.send(());
            return r.context("the generator task")?;
        }
    }
    let _ = stop_server.send(());
    let _ = server.await;
    let (requests, samples) = receiver.received();
    println!("omen demo: stopped; the receiver got {samples} samples in {requests} requests");
    Ok(())
}

/// Posts one scrape of every series per tick (a tick is one simulated step / speed), in
/// order, each after the previous was answered; a 5xx is retried as Prometheus would.
async fn send_loop(
    generator: Arc<Mutex<Generator>>,
    url: String,
    speed: f64,
) -> anyhow::Result<()> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let period = Duration::from_secs_f64(STEP_MS as f64 / 1000.0 / speed);
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut encoder = snap::raw::Encoder::new();
    loop {
        every.tick().await;
        let request = generator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_request();
        let body = Bytes::from(encoder.compress_vec(&request.encode_to_vec())?);
        for attempt in 0..5u32 {
            let req = Request::post(&url)
                .header(CONTENT_TYPE, "application/x-protobuf")
                .header(CONTENT_ENCODING, "snappy")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(Full::new(body.clone()))?;
            match client.request(req).await {
                Ok(resp) if resp.status().is_success() => break,
                Ok(resp) if resp.status().is_client_error() => {
                    tracing::warn!(status = %resp.status(), "omen refused a demo request; dropped");
                    break;
                }
                Ok(resp) => {
                    tracing::warn!(status = %resp.status(), attempt, "omen answered; retrying")
                }
                Err(e) => tracing::warn!(error = %e, attempt, "write failed; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(3))).await;
        }
    }
}
