//! omen's own page (`GET /`) and the JSON endpoints behind it: a table of series ranked
//! by anomaly score, a chart of one series with its forecast band and score, and omen's
//! status. The assets are embedded in the binary (no CDN, no network at run time).
//!
//! Endpoints (all `GET`, JSON unless noted; documented in `docs/ui.md`):
//! - `/` the page; `/ui/app.js`, `/ui/app.css` its assets;
//! - `/api/omen/status` ingest rate, models, evictions, downstream health, the record;
//! - `/api/omen/series?rank=current|window&limit=N&name=NAME&source=omen|downstream`
//!   the ranked table;
//! - `/api/omen/series/<id>?source=…` one series' window as columns;
//! - `/api/omen/demo` the demo's injected anomalies (`omen demo` only).
//!
//! In `serve` mode the data is [`Recent`], what omen itself derived, bounded by
//! `ui.max_series` × `ui.points`. `omen demo` adds a second source, `downstream`: what its
//! in-process receiver got over HTTP (originals and derived series, joined again).

mod recent;
mod status;
pub mod tracks;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

pub use recent::{Recent, Scored};
pub use tracks::{Rank, Tracks};

use crate::app::App;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Rows the ranked table returns at most.
const MAX_LIMIT: usize = 1000;

/// What `omen demo` adds to the page: its receiver's window and its anomaly schedule.
pub struct DemoView {
    /// What the in-process downstream received, originals and derived series joined.
    pub downstream: Arc<Tracks>,
    /// The `/api/omen/demo` document (the injected anomalies so far and to come).
    pub info: Box<dyn Fn() -> serde_json::Value + Send + Sync>,
}

/// The page's state: the record of recent values, the demo's extras, the rate window.
pub struct Ui {
    recent: Option<Arc<Recent>>,
    demo: OnceLock<DemoView>,
    status: status::Window,
}

impl Ui {
    /// The page's state for `ui:`; `None` when the page is off.
    pub fn new(config: &crate::config::UiConfig) -> Ui {
        Ui {
            recent: config
                .enabled
                .then(|| Arc::new(Recent::new(config.max_series, config.points))),
            demo: OnceLock::new(),
            status: status::Window::default(),
        }
    }

    /// The record the models feed, if the page is on.
    pub fn recent(&self) -> Option<&Arc<Recent>> {
        self.recent.as_ref()
    }

    /// Adds the demo's receiver and schedule (once; later calls are ignored).
    pub fn attach_demo(&self, demo: DemoView) {
        let _ = self.demo.set(demo);
    }

    fn source(&self, name: Option<&str>) -> Option<&Tracks> {
        match name {
            Some("downstream") => self.demo.get().map(|d| &*d.downstream),
            _ => self.recent.as_deref().map(Recent::tracks),
        }
    }
}

/// Whether `path` is one of the page's (so the server hands it here).
pub fn serves(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/") || path.starts_with("/api/omen/")
}

/// Answers a `GET` on one of the page's paths.
pub fn handle(app: &App, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let ui = app.ui();
    if ui.recent.is_none() {
        return plain(
            StatusCode::NOT_FOUND,
            "the page is off (ui.enabled: false)\n",
        );
    }
    let param = |name: &str| {
        query?.split('&').find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if kv == name => Some(""),
            _ => None,
        })
    };
    match path {
        "/" => asset(INDEX_HTML, "text/html; charset=utf-8"),
        "/ui/app.js" => asset(APP_JS, "text/javascript; charset=utf-8"),
        "/ui/app.css" => asset(APP_CSS, "text/css; charset=utf-8"),
        "/api/omen/status" => json(&status::status(app, &ui.status, ui.demo.get().is_some())),
        "/api/omen/series" => {
            let Some(tracks) = ui.source(param("source")) else {
                return plain(StatusCode::NOT_FOUND, "no such source\n");
            };
            let rank = match param("rank") {
                Some("window") => Rank::Window,
                _ => Rank::Current,
            };
            let limit = param("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100)
                .min(MAX_LIMIT);
            let name = param("name").map(decode);
            let (total, series) = tracks.ranked(rank, limit, name.as_deref());
            json(&Ranked { total, series })
        }
        "/api/omen/demo" => match ui.demo.get() {
            Some(d) => json(&(d.info)()),
            None => plain(StatusCode::NOT_FOUND, "not running as omen demo\n"),
        },
        _ => match path.strip_prefix("/api/omen/series/") {
            Some(id) => {
                let detail = ui.source(param("source")).and_then(|t| t.detail(id));
                match detail {
                    Some(d) => json(&d),
                    None => plain(StatusCode::NOT_FOUND, "no such series in the window\n"),
                }
            }
            None => plain(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

#[derive(Serialize)]
struct Ranked {
    /// Series in the window (the table shows the first `limit`).
    total: usize,
    series: Vec<tracks::Summary>,
}

/// Percent-decoding of a query value (`+` is a space).
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn asset(body: &'static str, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn json<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(super::decode("a%2Bb+c%zz"), "a+b c%zz");
        assert_eq!(super::decode("x%4"), "x%4");
    }
}
