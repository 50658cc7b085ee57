//! The HTTP listener: endpoints, the in-flight limit with load shedding, and graceful
//! shutdown that stops accepting and drains in-flight requests within a grace period.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::pipeline::Answer;

/// Time a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The write endpoint Prometheus's `remote_write.url` points at.
pub const WRITE_PATH: &str = "/api/v1/write";

/// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests
/// up to `grace` to finish.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let ready = Arc::new(AtomicBool::new(true));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (app, ready) = (app.clone(), ready.clone());
                let tls = app.state().config.server.tls.as_ref().map(|t| TlsAcceptor::from(t.config.clone()));
                let service = service_fn(move |req| handle(app.clone(), ready.clone(), req));
                match tls {
                    None => {
                        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Some(acceptor) => {
                        // The handshake runs in the connection's task, bounded in time, so a
                        // slow client cannot stall the accept loop.
                        let (builder, watcher) = (builder.clone(), graceful.watcher());
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => return tracing::debug!("TLS handshake timed out"),
                            };
                            let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    ready.store(false, Ordering::SeqCst);
    drop(listener);
    tracing::info!(grace = ?grace, "shutting down: draining in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period ended with requests still in flight");
    }
}

async fn handle(
    app: Arc<App>,
    ready: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::POST, WRITE_PATH) => write(&app, req).await,
        (_, WRITE_PATH) => text(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
        (&Method::GET, "/metrics") => {
            let state = app.state();
            app.metrics()
                .route_cache_entries
                .set(state.pipeline.router().cache_len() as i64);
            app.metrics().models.set(app.models().len() as i64);
            let mut r = text(StatusCode::OK, &app.metrics().render());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::GET | &Method::HEAD, "/-/healthy") => text(StatusCode::OK, "omen is healthy"),
        (&Method::GET | &Method::HEAD, "/-/ready") => {
            if ready.load(Ordering::SeqCst) {
                text(StatusCode::OK, "omen is ready")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "omen is shutting down")
            }
        }
        (&Method::GET, path) if crate::ui::serves(path) => {
            crate::ui::handle(&app, path, req.uri().query())
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(resp)
}

async fn write(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = tokio::time::Instant::now();
    let state = app.state();
    let metrics = app.metrics();
    let authorized = match &state.required_auth {
        None => true,
        Some(want) => req
            .headers()
            .get(AUTHORIZATION)
            .is_some_and(|got| bool::from(got.as_bytes().ct_eq(want))),
    };
    if !authorized {
        metrics.requests.with_label_values(&["401"]).inc();
        metrics
            .bad_requests
            .with_label_values(&["unauthorized"])
            .inc();
        let mut resp = text(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"omen\""),
        );
        return resp;
    }
    let answer = match state.limit.clone().try_acquire_owned() {
        Err(_) => Answer {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: "too many requests in flight; retry later".into(),
            retry_after: Some(HeaderValue::from_static("1")),
        },
        Ok(_permit) => {
            metrics.in_flight.inc();
            let (parts, body) = req.into_parts();
            let answer = state.pipeline.write(&parts.headers, body).await;
            metrics.in_flight.dec();
            answer
        }
    };
    let code = answer.status.as_str().to_string();
    metrics.requests.with_label_values(&[&code]).inc();
    metrics
        .request_duration
        .with_label_values(&[&code])
        .observe(started.elapsed().as_secs_f64());
    let mut resp = text(answer.status, &answer.body);
    if let Some(ra) = answer.retry_after {
        resp.headers_mut().insert(RETRY_AFTER, ra);
    }
    resp
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let empty = body.is_empty() || status == StatusCode::NO_CONTENT;
    let body = if empty {
        String::new()
    } else {
        format!("{body}\n")
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if !empty {
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    r
}
