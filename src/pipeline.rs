//! One write request end to end (DESIGN §1): read and decode, route every series, build
//! the single downstream request, send it, and turn the outcome into omen's answer.
//!
//! Models: [`Pipeline::build`] sees every kept series with its labels and samples; the
//! derived series of modeled ones are appended to the same [`RequestWriter`] right after
//! their original, from tentative updates that [`Pipeline::write`] commits or discards by
//! [`Outcome::commits`].

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::StatusCode;

use crate::derive::{Models, Scratch, Staged, Tentative};
use crate::forward::{Forwarder, Outcome};
use crate::idhash::ShardOrder;
use crate::ingest::{self, IngestError};
use crate::metrics::Metrics;
use crate::route::{Route, Router};
use crate::wire::{
    self, DecodeError, InvalidSeries, Label, Limits, MetadataView, RequestWriter, SeriesView,
};

/// Items of a request scanned before any is routed: the route-cache and model-store
/// lookups of a chunk are made together, shard by shard with their buckets prefetched, so
/// their cache misses overlap (one after another they were most of the per-series cost).
/// Bounds the per-request scratch: a chunk holds at most this many label lists.
const CHUNK: usize = 256;

/// A scanned item waiting in the chunk: a series with its labels copied out of the
/// scanner's scratch, or a metadata entry.
enum Held<'a> {
    Series {
        view: SeriesView<'a, 'a>,
        labels: std::ops::Range<usize>,
    },
    Metadata(MetadataView<'a>),
}

/// One chunk's items and lookups, reused across chunks.
#[derive(Default)]
struct Chunk<'a> {
    items: Vec<Held<'a>>,
    labels: Vec<Label<'a>>,
    /// Hash of every series item, in item order.
    hashes: Vec<u64>,
    routes: Vec<Option<Route>>,
    /// Modeled series with a cached route: (index into `hashes`, model key).
    batch: Vec<(u32, u64)>,
    staged: Vec<Option<Staged>>,
    order: ShardOrder,
}

/// omen's answer to one write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    /// One line, empty on success.
    pub body: String,
    pub retry_after: Option<HeaderValue>,
}

impl Answer {
    fn from_error(e: &IngestError) -> Answer {
        Answer {
            status: e.status(),
            body: e.to_string(),
            retry_after: None,
        }
    }
}

/// The downstream request built from one incoming request, with its accounting.
#[derive(Debug, Default)]
pub struct Batch {
    pub writer: RequestWriter,
    /// Float and histogram samples in the incoming request.
    pub received: u64,
    /// Samples of the series being forwarded.
    pub forwarded: u64,
    pub metadata: u64,
    /// Samples dropped by the whitelist.
    pub dropped_whitelist: u64,
    /// Samples of invalid series, by reason (indexed as `InvalidSeries::ALL`).
    pub dropped_invalid: [u64; InvalidSeries::ALL.len()],
    /// The first invalid series met: the reason for a 400 answer.
    pub first_invalid: Option<(InvalidSeries, String)>,
    /// Model updates made for this request, committed only if downstream took it.
    pub tentative: Tentative,
}

/// The data path, shared by all connections. Replaced as a whole on config reload.
pub struct Pipeline {
    router: Router,
    models: Arc<Models>,
    forwarder: Forwarder,
    limits: Limits,
    max_decoded_bytes: usize,
    future_tolerance: Duration,
    metrics: Metrics,
}

/// A request's large buffers (decoded body, downstream request, compressed body), reused
/// by the next request on the same thread: decoding, building and compressing run on one
/// thread with no await in between, so a thread needs one set. Allocating them per request
/// cost page faults and zeroing on every request (about 7 % of the modeled path's CPU).
struct Buffers {
    encoder: snap::raw::Encoder,
    decoded: Vec<u8>,
    writer: Vec<u8>,
    compressed: Vec<u8>,
}

/// A buffer grown past this (a request far larger than Prometheus sends, which batches
/// 2,000 samples, about 1 MiB decoded) is freed after use instead of kept.
const RETAIN_BYTES: usize = 16 << 20;

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers {
        encoder: snap::raw::Encoder::new(),
        decoded: Vec::new(),
        writer: Vec::new(),
        compressed: Vec::new(),
    });
}

impl Pipeline {
    /// Assembles the data path.
    pub fn new(
        router: Router,
        models: Arc<Models>,
        forwarder: Forwarder,
        limits: Limits,
        max_decoded_bytes: usize,
        future_tolerance: Duration,
        metrics: Metrics,
    ) -> Pipeline {
        Pipeline {
            router,
            models,
            forwarder,
            limits,
            max_decoded_bytes,
            future_tolerance,
            metrics,
        }
    }

    /// The forwarder (its pool is reused across config reloads).
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// The router, for its cache size.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Handles one `POST /api/v1/write`.
    pub async fn write(&self, headers: &HeaderMap, body: Incoming) -> Answer {
        if let Err(e) = ingest::check_headers(headers) {
            return self.refuse(&e);
        }
        let compressed = match ingest::read_body(headers, body, self.max_decoded_bytes).await {
            Ok(b) => b,
            Err(e) => return self.refuse(&e),
        };
        self.write_body(headers, &compressed).await
    }

    /// Handles a write request whose compressed body has been read.
    pub async fn write_body(&self, headers: &HeaderMap, compressed: &[u8]) -> Answer {
        let tenant = self
            .forwarder
            .tenant(headers.get(crate::forward::TENANT_HEADER));
        let key = tenant.map(|t| t.as_bytes());
        let prepared = BUFFERS.with(|b| self.prepare(&mut b.borrow_mut(), compressed, key));
        let (batch, body) = match prepared {
            Ok(p) => p,
            Err(answer) => return answer,
        };
        self.metrics.received_samples.inc_by(batch.received);
        let outcome = if let Some(body) = body {
            self.forwarder.send(body, tenant).await
        } else {
            // Nothing kept: nothing to deliver, nothing to wait for.
            Outcome::Delivered
        };
        let first_invalid = batch.first_invalid.clone();
        if outcome.commits() {
            self.account(&batch);
            self.models.commit(batch.tentative);
        }
        match (&outcome, &first_invalid) {
            (Outcome::Delivered, Some((reason, detail))) => {
                let e = IngestError::InvalidSeries {
                    reason: *reason,
                    detail: detail.clone(),
                };
                self.refuse(&e)
            }
            (Outcome::Delivered, None) => Answer {
                status: StatusCode::NO_CONTENT,
                body: String::new(),
                retry_after: None,
            },
            _ => Answer {
                status: outcome.status(),
                body: outcome.message(),
                retry_after: outcome.retry_after(),
            },
        }
    }

    /// Decodes, builds and compresses one request in `bufs`: the batch (its writer
    /// emptied) and the compressed downstream body, `None` when nothing is kept; or the
    /// answer refusing the request.
    fn prepare(
        &self,
        bufs: &mut Buffers,
        compressed: &[u8],
        tenant: Option<&[u8]>,
    ) -> Result<(Batch, Option<Bytes>), Answer> {
        let n = ingest::decompress_into(compressed, self.max_decoded_bytes, &mut bufs.decoded)
            .map_err(|e| self.refuse(&e))?;
        let writer = std::mem::take(&mut bufs.writer);
        let mut batch = self
            .build_with(&bufs.decoded[..n], tenant, writer)
            .map_err(|e| self.refuse(&IngestError::from(e)))?;
        let writer = std::mem::take(&mut batch.writer);
        let mut body = None;
        if !writer.is_empty() {
            let input = writer.as_bytes();
            let need = snap::raw::max_compress_len(input.len());
            if bufs.compressed.len() < need {
                bufs.compressed.resize(need, 0);
            }
            let len = bufs
                .encoder
                .compress(input, &mut bufs.compressed)
                .map_err(|e| Answer {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    body: format!("snappy compression failed: {e}"),
                    retry_after: None,
                })?;
            body = Some(Bytes::copy_from_slice(&bufs.compressed[..len]));
        }
        bufs.writer = writer.into_buf();
        for buf in [&mut bufs.decoded, &mut bufs.writer, &mut bufs.compressed] {
            if buf.capacity() > RETAIN_BYTES {
                *buf = Vec::new();
            }
        }
        Ok((batch, body))
    }

    /// Scans a decoded body and builds the downstream request from the kept series and
    /// the derived series of the modeled ones; model state is keyed by `tenant`.
    ///
    /// # Errors
    /// A [`DecodeError`] if the body is malformed anywhere: then nothing is forwarded.
    pub fn build(&self, decoded: &[u8], tenant: Option<&[u8]>) -> Result<Batch, DecodeError> {
        self.build_with(decoded, tenant, Vec::new())
    }

    /// [`Pipeline::build`] writing into `buf`'s allocation.
    fn build_with(
        &self,
        decoded: &[u8],
        tenant: Option<&[u8]>,
        buf: Vec<u8>,
    ) -> Result<Batch, DecodeError> {
        // Derived series add up to about as much as the kept series they come from.
        let capacity = if self.models.has_rules() {
            decoded.len() + decoded.len() / 2
        } else {
            decoded.len()
        };
        let mut batch = Batch {
            writer: RequestWriter::reuse(buf, capacity),
            tentative: self.models.tentative(),
            ..Batch::default()
        };
        let mut scratch = self.models.scratch();
        let mut limits = self.limits;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        limits.max_timestamp_ms = now_ms.saturating_add(self.future_tolerance.as_millis() as i64);
        let mut items = wire::scan(decoded, limits);
        let mut chunk = Chunk::default();
        loop {
            chunk.items.clear();
            chunk.labels.clear();
            chunk.hashes.clear();
            while chunk.items.len() < CHUNK {
                match items.next()? {
                    None => break,
                    Some(wire::Item::Metadata(m)) => chunk.items.push(Held::Metadata(m)),
                    Some(wire::Item::Series(s)) => {
                        let start = chunk.labels.len();
                        chunk.labels.extend_from_slice(s.labels);
                        chunk.hashes.push(s.hash);
                        chunk.items.push(Held::Series {
                            view: SeriesView { labels: &[], ..s },
                            labels: start..chunk.labels.len(),
                        });
                    }
                }
            }
            if chunk.items.is_empty() {
                break;
            }
            self.build_chunk(&mut chunk, tenant, &mut batch, &mut scratch);
        }
        Ok(batch)
    }

    /// Routes, models and writes one chunk of scanned items, in wire order.
    fn build_chunk<'a>(
        &self,
        chunk: &mut Chunk<'a>,
        tenant: Option<&[u8]>,
        batch: &mut Batch,
        scratch: &mut Scratch,
    ) {
        self.router
            .cached_many(&chunk.hashes, &mut chunk.order, &mut chunk.routes);
        // The committed models of the modeled series whose route is known, all at once.
        chunk.batch.clear();
        let mut n = 0;
        for item in &chunk.items {
            let Held::Series { view, labels } = item else {
                continue;
            };
            if let Some(Route {
                forward: true,
                rule: Some(rule),
            }) = chunk.routes[n]
            {
                let view = SeriesView {
                    labels: &chunk.labels[labels.clone()],
                    ..*view
                };
                if view.defect.is_none() && Models::models(scratch, rule, &view) {
                    chunk.batch.push((n as u32, Models::key(tenant, view.hash)));
                }
            }
            n += 1;
        }
        chunk.staged.clear();
        chunk.staged.resize(chunk.hashes.len(), None);
        if !chunk.batch.is_empty() {
            self.models
                .stage(&chunk.batch, &mut chunk.order, &mut chunk.staged);
        }
        let mut n = 0;
        for item in &chunk.items {
            let (view, labels) = match item {
                Held::Metadata(m) => {
                    self.models.record_metadata(m.family, m.kind);
                    if self.router.keeps_family(m.family) {
                        batch.writer.push_raw_metadata(m.raw);
                        batch.metadata += 1;
                    }
                    continue;
                }
                Held::Series { view, labels } => (view, labels),
            };
            let series = SeriesView {
                labels: &chunk.labels[labels.clone()],
                ..*view
            };
            let (cached, staged) = (chunk.routes[n], chunk.staged[n]);
            n += 1;
            let samples = u64::from(series.samples) + u64::from(series.histograms);
            batch.received += samples;
            let route = match series.defect {
                Some(defect) => Err(defect),
                None => match cached {
                    Some(route) => Ok(route),
                    None => wire::validate(series.labels, &self.limits)
                        .map(|()| self.router.decide(series.hash, series.labels)),
                },
            };
            match route {
                Err(reason) => {
                    let i = InvalidSeries::ALL
                        .iter()
                        .position(|r| *r == reason)
                        .unwrap_or(0);
                    batch.dropped_invalid[i] += samples;
                    if batch.first_invalid.is_none() {
                        let name = series
                            .label(b"__name__")
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default();
                        batch.first_invalid = Some((
                            reason,
                            format!("series {{__name__={name:?}}} at byte {}", series.offset),
                        ));
                    }
                }
                Ok(route) if route.forward => {
                    batch.writer.push_raw_series(series.raw);
                    batch.forwarded += samples;
                    if let Some(rule) = route.rule {
                        let key = Models::key(tenant, series.hash);
                        self.models.derive(
                            key,
                            rule,
                            &series,
                            staged,
                            &mut batch.writer,
                            &mut batch.tentative,
                            scratch,
                        );
                    }
                }
                Ok(_) => batch.dropped_whitelist += samples,
            }
        }
    }

    fn account(&self, batch: &Batch) {
        let m = &self.metrics;
        m.forwarded_samples.inc_by(batch.forwarded);
        m.forwarded_metadata.inc_by(batch.metadata);
        m.dropped_samples
            .with_label_values(&["whitelist"])
            .inc_by(batch.dropped_whitelist);
        for (reason, n) in InvalidSeries::ALL.iter().zip(batch.dropped_invalid) {
            if n > 0 {
                m.dropped_samples
                    .with_label_values(&[reason.reason()])
                    .inc_by(n);
            }
        }
    }

    fn refuse(&self, e: &IngestError) -> Answer {
        self.metrics
            .bad_requests
            .with_label_values(&[e.reason()])
            .inc();
        tracing::debug!(status = e.status().as_u16(), reason = %e, "write request refused");
        Answer::from_error(e)
    }
}
