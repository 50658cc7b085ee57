//! The demo's downstream: an in-process remote-write receiver on 127.0.0.1 that decodes
//! what omen forwards and keeps a bounded window of it ([`Tracks`]): each original series
//! joined again with its derived series (`anomaly_score{for="…"}` and the forecast band),
//! so the page can show exactly what a TSDB behind omen would have stored.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::net::TcpListener;

use crate::config::Names;
use crate::proto;
use crate::ui::tracks::{TrackMeta, Tracks};

/// Bodies larger than this are refused (the demo sends far less).
const MAX_BODY: usize = 64 << 20;

/// Which field of a point a received series fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Value,
    Score,
    Forecast,
    Lower,
    Upper,
}

/// The receiver's shared state.
pub struct Receiver {
    tracks: Arc<Tracks>,
    names: Names,
    requests: AtomicU64,
    samples: AtomicU64,
}

impl Receiver {
    /// A receiver keeping `max_series` × `points`, reading derived series by `names`.
    pub fn new(names: Names, max_series: usize, points: usize) -> Receiver {
        Receiver {
            tracks: Arc::new(Tracks::new(max_series, points)),
            names,
            requests: AtomicU64::new(0),
            samples: AtomicU64::new(0),
        }
    }

    /// The window of what was received.
    pub fn tracks(&self) -> &Arc<Tracks> {
        &self.tracks
    }

    /// (requests, samples) received so far.
    pub fn received(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.samples.load(Ordering::Relaxed),
        )
    }

    /// Serves remote-write on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let me = me.clone();
                    async move { Ok::<_, Infallible>(me.answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, body: &str| {
            let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
            *r.status_mut() = status;
            r
        };
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return reply(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string()),
        };
        let decoded = match snap::raw::Decoder::new().decompress_vec(&body) {
            Ok(d) => d,
            Err(e) => return reply(StatusCode::BAD_REQUEST, &format!("snappy: {e}")),
        };
        let request = match proto::WriteRequest::decode(&decoded[..]) {
            Ok(r) => r,
            Err(e) => return reply(StatusCode::BAD_REQUEST, &format!("protobuf: {e}")),
        };
        self.take(&request);
        reply(StatusCode::NO_CONTENT, "")
    }

    /// Files every sample of `request` into the window.
    fn take(&self, request: &proto::WriteRequest) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        for ts in &request.timeseries {
            self.samples
                .fetch_add(ts.samples.len() as u64, Ordering::Relaxed);
            let name = ts
                .labels
                .iter()
                .find(|l| l.name == "__name__")
                .map_or("", |l| l.value.as_str());
            let field = match name {
                n if n == self.names.score => Field::Score,
                n if n == self.names.forecast => Field::Forecast,
                n if n == self.names.lower => Field::Lower,
                n if n == self.names.upper => Field::Upper,
                _ => Field::Value,
            };
            let original = match field {
                Field::Value => name,
                _ => match ts.labels.iter().find(|l| l.name == self.names.label) {
                    Some(l) => l.value.as_str(),
                    None => continue,
                },
            };
            let skip = |l: &&proto::Label| {
                l.name != "__name__" && (field == Field::Value || l.name != self.names.label)
            };
            let key = key(original, ts.labels.iter().filter(skip));
            let hottest = || {
                if field == Field::Score {
                    ts.samples
                        .iter()
                        .map(|s| s.value as f32)
                        .fold(0.0, f32::max)
                } else {
                    0.0
                }
            };
            let meta = || TrackMeta {
                name: original.to_string(),
                labels: ts
                    .labels
                    .iter()
                    .filter(skip)
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                // Counters by the naming convention, as omen reads them without metadata.
                counter: ["_total", "_count", "_sum"]
                    .iter()
                    .any(|s| original.ends_with(s)),
            };
            self.tracks.with(key, hottest, meta, |track| {
                for s in &ts.samples {
                    let v = if field == Field::Value {
                        track.value_of(s.timestamp, s.value)
                    } else {
                        s.value
                    };
                    if field == Field::Score && v.is_finite() {
                        track.raise_peak(v as f32);
                    }
                    let Some(p) = track.point_at(s.timestamp) else {
                        continue;
                    };
                    let v = v as f32;
                    match field {
                        Field::Value => p.value = v,
                        Field::Score => p.score = v,
                        Field::Forecast => p.forecast = v,
                        Field::Lower => p.lower = v,
                        Field::Upper => p.upper = v,
                    }
                }
            });
        }
    }
}

/// The key of a series by its name and other labels (in their sorted wire order).
fn key<'a>(name: &str, labels: impl Iterator<Item = &'a proto::Label>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(name.as_bytes());
    for l in labels {
        h.update(&[0]);
        h.update(l.name.as_bytes());
        h.update(&[1]);
        h.update(l.value.as_bytes());
    }
    h.digest()
}

/// Binds the receiver on 127.0.0.1 (a free port) and serves it in the background.
///
/// # Errors
/// The bind error.
pub async fn start(receiver: Arc<Receiver>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(receiver.serve(listener));
    Ok(addr)
}
