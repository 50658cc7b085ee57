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

use crate::derive::{Models, Scratch, Tentative};
use crate::forward::{Forwarder, Outcome};
use crate::ingest::{self, IngestError};
use crate::metrics::Metrics;
use crate::route::Router;
use crate::wire::{self, DecodeError, InvalidSeries, Limits, RequestWriter};

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

thread_local! {
    static ENCODER: RefCell<snap::raw::Encoder> = RefCell::new(snap::raw::Encoder::new());
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
        let decoded = match ingest::decompress(compressed, self.max_decoded_bytes) {
            Ok(d) => d,
            Err(e) => return self.refuse(&e),
        };
        let tenant = self
            .forwarder
            .tenant(headers.get(crate::forward::TENANT_HEADER));
        let batch = match self.build(&decoded, tenant.map(|t| t.as_bytes())) {
            Ok(b) => b,
            Err(e) => return self.refuse(&IngestError::from(e)),
        };
        drop(decoded);
        self.metrics.received_samples.inc_by(batch.received);
        let outcome = if batch.writer.is_empty() {
            // Nothing kept: nothing to deliver, nothing to wait for.
            Outcome::Delivered
        } else {
            let body = ENCODER.with(|enc| enc.borrow_mut().compress_vec(batch.writer.as_bytes()));
            let body = match body {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    return Answer {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        body: format!("snappy compression failed: {e}"),
                        retry_after: None,
                    }
                }
            };
            let tenant = self
                .forwarder
                .tenant(headers.get(crate::forward::TENANT_HEADER));
            self.forwarder.send(body, tenant).await
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

    /// Scans a decoded body and builds the downstream request from the kept series and
    /// the derived series of the modeled ones; model state is keyed by `tenant`.
    ///
    /// # Errors
    /// A [`DecodeError`] if the body is malformed anywhere: then nothing is forwarded.
    pub fn build(&self, decoded: &[u8], tenant: Option<&[u8]>) -> Result<Batch, DecodeError> {
        let mut batch = Batch {
            writer: RequestWriter::with_capacity(decoded.len()),
            ..Batch::default()
        };
        let mut scratch = Scratch::default();
        let mut limits = self.limits;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        limits.max_timestamp_ms = now_ms.saturating_add(self.future_tolerance.as_millis() as i64);
        let mut items = wire::scan(decoded, limits);
        while let Some(item) = items.next()? {
            let series = match item {
                wire::Item::Metadata(m) => {
                    self.models.record_metadata(m.family, m.kind);
                    if self.router.keeps_family(m.family) {
                        batch.writer.push_raw_metadata(m.raw);
                        batch.metadata += 1;
                    }
                    continue;
                }
                wire::Item::Series(s) => s,
            };
            let samples = u64::from(series.samples) + u64::from(series.histograms);
            batch.received += samples;
            let route = match series.defect {
                Some(defect) => Err(defect),
                None => match self.router.cached(series.hash) {
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
                            &mut batch.writer,
                            &mut batch.tentative,
                            &mut scratch,
                        );
                    }
                }
                Ok(_) => batch.dropped_whitelist += samples,
            }
        }
        Ok(batch)
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
