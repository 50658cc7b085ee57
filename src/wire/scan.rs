//! Scanning a `prometheus.WriteRequest` one item at a time, borrowing from the body.
//!
//! The scanner checks the wire format of everything it passes over, including the parts
//! omen forwards without interpreting (exemplars, native histograms, metadata), so a body
//! that is undecodable anywhere is refused as a whole. Series labels go into a small
//! reusable scratch list, bounded by the label limit, so a hostile body cannot make the
//! scanner allocate beyond `max_labels_per_series` entries.

use super::names::{valid_label_name, valid_metric_name};
use super::proto::{
    self, check, Reader, WireError, EXEMPLAR, HISTOGRAM, I64, LEN, METADATA, VARINT,
};

/// One label, borrowed from the request body. Not yet validated as UTF-8 or as a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// Request-level limits the scanner and validation enforce.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_series_per_request: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// Samples stamped after this (ms since the epoch) are refused: a far-future sample
    /// would otherwise freeze its series' model. `i64::MAX` disables the check.
    pub max_timestamp_ms: i64,
}

/// A body that cannot be decoded as a whole: nothing of it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("protobuf: {what} at byte {offset}")]
    Wire { offset: usize, what: &'static str },
    #[error("too many series in one request (limit {limit})")]
    TooManySeries { limit: usize },
    #[error(
        "the body holds remote-write 2.0 fields (symbols/timeseries at 4/5) under a 1.0 content type; \
         send it as prometheus.WriteRequest (omen does not accept 2.0 yet)"
    )]
    RemoteWrite2,
}

impl From<WireError> for DecodeError {
    fn from(e: WireError) -> Self {
        DecodeError::Wire {
            offset: e.offset,
            what: e.what,
        }
    }
}

/// Why a series is dropped (the rest of the request is still delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidSeries {
    NoMetricName,
    InvalidMetricName,
    InvalidLabelName,
    EmptyLabelValue,
    UnsortedLabels,
    DuplicateLabel,
    TooManyLabels,
    LabelNameTooLong,
    LabelValueTooLong,
    InvalidUtf8,
    OutOfOrderSamples,
    TimestampOutOfRange,
}

impl InvalidSeries {
    /// The `reason` label of `omen_dropped_samples_total`.
    pub fn reason(self) -> &'static str {
        match self {
            InvalidSeries::NoMetricName => "no_metric_name",
            InvalidSeries::InvalidMetricName => "invalid_metric_name",
            InvalidSeries::InvalidLabelName => "invalid_label_name",
            InvalidSeries::EmptyLabelValue => "empty_label_value",
            InvalidSeries::UnsortedLabels => "unsorted_labels",
            InvalidSeries::DuplicateLabel => "duplicate_label",
            InvalidSeries::TooManyLabels => "too_many_labels",
            InvalidSeries::LabelNameTooLong => "label_name_too_long",
            InvalidSeries::LabelValueTooLong => "label_value_too_long",
            InvalidSeries::InvalidUtf8 => "invalid_utf8",
            InvalidSeries::OutOfOrderSamples => "out_of_order_samples",
            InvalidSeries::TimestampOutOfRange => "timestamp_out_of_range",
        }
    }

    /// All reasons, so counters can be created up front.
    pub const ALL: [InvalidSeries; 12] = [
        InvalidSeries::NoMetricName,
        InvalidSeries::InvalidMetricName,
        InvalidSeries::InvalidLabelName,
        InvalidSeries::EmptyLabelValue,
        InvalidSeries::UnsortedLabels,
        InvalidSeries::DuplicateLabel,
        InvalidSeries::TooManyLabels,
        InvalidSeries::LabelNameTooLong,
        InvalidSeries::LabelValueTooLong,
        InvalidSeries::InvalidUtf8,
        InvalidSeries::OutOfOrderSamples,
        InvalidSeries::TimestampOutOfRange,
    ];
}

/// A TimeSeries, borrowed from the body.
#[derive(Debug)]
pub struct SeriesView<'a, 's> {
    /// The encoded TimeSeries message (without its field key and length).
    pub raw: &'a [u8],
    /// Offset of `raw` in the body.
    pub offset: usize,
    /// The labels in wire order (at most `max_labels_per_series` of them).
    pub labels: &'s [Label<'a>],
    /// Canonical hash of the label set: equal label sets hash equal however encoded.
    pub hash: u64,
    /// The label fields of `raw` when they are contiguous and exactly the canonical
    /// encoding of `labels` (as Prometheus sends them), so they can be copied as encoded.
    pub encoded_labels: Option<&'a [u8]>,
    pub samples: u32,
    /// Where in `raw` the first sample field starts (`raw.len()` without samples), so
    /// [`SeriesView::samples`] does not pass over the labels again.
    pub first_sample: usize,
    pub histograms: u32,
    pub exemplars: u32,
    /// A problem found while scanning (too many labels, samples out of order); the
    /// label checks of [`validate`] come on top.
    pub defect: Option<InvalidSeries>,
}

impl<'a> SeriesView<'a, '_> {
    /// The float samples as (timestamp ms, value), in wire order.
    pub fn samples(&self) -> impl Iterator<Item = (i64, f64)> + 'a {
        let from = self.first_sample;
        let mut r = Reader::new(&self.raw[from..], self.offset + from);
        std::iter::from_fn(move || loop {
            if r.done() {
                return None;
            }
            // The scanner already checked the whole message, so errors cannot happen here.
            let (field, wt) = r.key().ok()?;
            if field == 2 && wt == LEN {
                return parse_sample(Reader::new(r.bytes().ok()?, 0)).ok();
            }
            r.skip(wt).ok()?;
        })
    }

    /// The value of a label, if present.
    pub fn label(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.labels.iter().find(|l| l.name == name).map(|l| l.value)
    }
}

/// A MetricMetadata entry, borrowed from the body.
#[derive(Debug, Clone, Copy)]
pub struct MetadataView<'a> {
    pub raw: &'a [u8],
    pub family: &'a str,
    /// MetricType: 0 unknown, 1 counter, 2 gauge, 3 histogram, ...
    pub kind: u64,
}

/// An item of the request in wire order.
pub enum Item<'a, 's> {
    Series(SeriesView<'a, 's>),
    Metadata(MetadataView<'a>),
}

/// Streams the items of a WriteRequest body.
pub struct Request<'a> {
    r: Reader<'a>,
    limits: Limits,
    series_seen: usize,
    scratch: Vec<Label<'a>>,
    canon: Vec<u8>,
}

/// Starts scanning a decompressed WriteRequest body.
pub fn scan(body: &[u8], limits: Limits) -> Request<'_> {
    Request {
        r: Reader::new(body, 0),
        limits,
        series_seen: 0,
        scratch: Vec::with_capacity(limits.max_labels_per_series.min(64)),
        canon: Vec::new(),
    }
}

impl<'a> Request<'a> {
    /// The next series or metadata entry, `None` at the end of the body.
    ///
    /// # Errors
    /// A [`DecodeError`] when the body is malformed anywhere up to here, or holds more
    /// series than the limit; the caller must then forward nothing.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Item<'a, '_>>, DecodeError> {
        while !self.r.done() {
            let (field, wt) = self.r.key()?;
            match (field, wt) {
                (1, LEN) => {
                    self.series_seen += 1;
                    if self.series_seen > self.limits.max_series_per_request {
                        return Err(DecodeError::TooManySeries {
                            limit: self.limits.max_series_per_request,
                        });
                    }
                    let raw = self.r.bytes()?;
                    let offset = self.r.base + self.r.pos - raw.len();
                    return self.series(raw, offset).map(|s| Some(Item::Series(s)));
                }
                (3, LEN) => {
                    let raw = self.r.bytes()?;
                    let at = self.r.base + self.r.pos - raw.len();
                    return metadata(raw, at).map(|m| Some(Item::Metadata(m)));
                }
                (4 | 5, LEN) => return Err(DecodeError::RemoteWrite2),
                (1 | 3, _) => return Err(self.r.err("field has the wrong wire type").into()),
                (_, wt) => self.r.skip(wt)?,
            }
        }
        Ok(None)
    }

    fn series(&mut self, raw: &'a [u8], offset: usize) -> Result<SeriesView<'a, '_>, DecodeError> {
        self.scratch.clear();
        let mut r = Reader::new(raw, offset);
        let (mut samples, mut histograms, mut exemplars) = (0u32, 0u32, 0u32);
        let mut defect = None;
        let mut last_ts = i64::MIN;
        let mut first_sample = raw.len();
        // Label fields must be contiguous and canonically encoded for the fast hash.
        let (mut span_start, mut span_end, mut canonical) = (usize::MAX, 0usize, true);
        while !r.done() {
            let field_start = r.pos;
            let (field, wt) = r.key()?;
            match (field, wt) {
                (1, LEN) => {
                    let m = r.bytes()?;
                    let (label, canon_label) = parse_label(m, r.base + r.pos - m.len())?;
                    canonical &= canon_label
                        && r.pos - field_start == 1 + proto::varint_len(m.len() as u64) + m.len();
                    if span_start == usize::MAX {
                        span_start = field_start;
                    } else if field_start != span_end {
                        canonical = false;
                    }
                    span_end = r.pos;
                    if self.scratch.len() < self.limits.max_labels_per_series {
                        self.scratch.push(label);
                    } else {
                        defect = Some(InvalidSeries::TooManyLabels);
                    }
                }
                (2, LEN) => {
                    first_sample = first_sample.min(field_start);
                    let at = r.base + r.pos;
                    let (ts, _) = parse_sample(Reader::new(r.bytes()?, at))?;
                    if defect.is_none() {
                        if ts < 0 || ts > self.limits.max_timestamp_ms {
                            defect = Some(InvalidSeries::TimestampOutOfRange);
                        } else if ts <= last_ts {
                            defect = Some(InvalidSeries::OutOfOrderSamples);
                        }
                    }
                    last_ts = ts;
                    samples += 1;
                }
                (3, LEN) => {
                    let at = r.base + r.pos;
                    check(r.bytes()?, at, EXEMPLAR)?;
                    exemplars += 1;
                }
                (4, LEN) => {
                    let at = r.base + r.pos;
                    check(r.bytes()?, at, HISTOGRAM)?;
                    histograms += 1;
                }
                (1..=4, _) => return Err(r.err("field has the wrong wire type").into()),
                (_, wt) => r.skip(wt)?,
            }
        }
        let encoded_labels =
            (canonical && defect != Some(InvalidSeries::TooManyLabels)).then(|| {
                if span_start == usize::MAX {
                    &raw[..0]
                } else {
                    &raw[span_start..span_end]
                }
            });
        let hash = match encoded_labels {
            Some(fields) => xxhash_rust::xxh3::xxh3_64(fields),
            None => canonical_hash(&self.scratch, &mut self.canon),
        };
        Ok(SeriesView {
            raw,
            offset,
            labels: &self.scratch,
            hash,
            encoded_labels,
            samples,
            first_sample,
            histograms,
            exemplars,
            defect,
        })
    }
}

/// The hash of the canonical encoding of a label set (what Prometheus sends).
pub fn canonical_hash(labels: &[Label<'_>], buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    for l in labels {
        let inner = 2
            + proto::varint_len(l.name.len() as u64)
            + l.name.len()
            + proto::varint_len(l.value.len() as u64)
            + l.value.len();
        buf.push(0x0a);
        proto::put_varint(buf, inner as u64);
        buf.push(0x0a);
        proto::put_varint(buf, l.name.len() as u64);
        buf.extend_from_slice(l.name);
        buf.push(0x12);
        proto::put_varint(buf, l.value.len() as u64);
        buf.extend_from_slice(l.value);
    }
    xxhash_rust::xxh3::xxh3_64(buf)
}

/// Parses a Label message; also says whether it is canonically encoded.
#[inline]
fn parse_label(m: &[u8], base: usize) -> Result<(Label<'_>, bool), DecodeError> {
    // The canonical encoding with name and value shorter than 128 bytes (one-byte lengths):
    // what Prometheus sends, read without the general loop.
    if let [0x0a, n, rest @ ..] = m {
        if let Some((name, [0x12, v, value @ ..])) = rest.split_at_checked(usize::from(*n)) {
            if *n < 0x80 && *v < 0x80 && value.len() == usize::from(*v) {
                return Ok((Label { name, value }, true));
            }
        }
    }
    let mut r = Reader::new(m, base);
    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
    let mut fields = 0u32;
    while !r.done() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => name = r.bytes()?,
            (2, LEN) => value = r.bytes()?,
            (1 | 2, _) => return Err(r.err("field has the wrong wire type").into()),
            (_, wt) => r.skip(wt)?,
        }
        fields += 1;
    }
    let len_len = |n: usize| proto::varint_len(n as u64);
    let name_end = 1 + len_len(name.len()) + name.len();
    let canonical = fields == 2
        && m.first() == Some(&0x0a)
        && m.len() == name_end + 1 + len_len(value.len()) + value.len()
        && m[name_end] == 0x12;
    Ok((Label { name, value }, canonical))
}

/// Parses a Sample message: (timestamp ms, value).
#[inline]
fn parse_sample(mut r: Reader<'_>) -> Result<(i64, f64), DecodeError> {
    let (mut ts, mut value) = (0i64, 0f64);
    // Value then timestamp, as Prometheus encodes them, read without the loop; any field
    // after them still goes through it.
    if let Some(&[0x09, v0, v1, v2, v3, v4, v5, v6, v7, 0x10]) = r.buf.get(r.pos..r.pos + 10) {
        value = f64::from_bits(u64::from_le_bytes([v0, v1, v2, v3, v4, v5, v6, v7]));
        r.pos += 10;
        ts = r.varint()? as i64;
    }
    while !r.done() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, I64) => value = f64::from_bits(r.fixed64()?),
            (2, VARINT) => ts = r.varint()? as i64,
            (1 | 2, _) => return Err(r.err("field has the wrong wire type").into()),
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok((ts, value))
}

fn metadata(raw: &[u8], at: usize) -> Result<MetadataView<'_>, DecodeError> {
    check(raw, at, METADATA)?;
    let mut r = Reader::new(raw, at);
    let (mut family, mut kind) = ("", 0u64);
    while !r.done() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, VARINT) => kind = r.varint()?,
            // `check` verified UTF-8 already.
            (2, LEN) => family = std::str::from_utf8(r.bytes()?).unwrap_or(""),
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(MetadataView { raw, family, kind })
}

/// Checks a series' labels against the data model and the limits. Labels must be sorted
/// by name with no duplicates, names valid, values non-empty UTF-8, `__name__` present.
///
/// # Errors
/// The first problem found.
pub fn validate(labels: &[Label<'_>], limits: &Limits) -> Result<(), InvalidSeries> {
    if labels.len() > limits.max_labels_per_series {
        return Err(InvalidSeries::TooManyLabels);
    }
    let mut has_name = false;
    let mut prev: Option<&[u8]> = None;
    for l in labels {
        if l.name.len() > limits.max_label_name_length {
            return Err(InvalidSeries::LabelNameTooLong);
        }
        if l.value.len() > limits.max_label_value_length {
            return Err(InvalidSeries::LabelValueTooLong);
        }
        if let Some(p) = prev {
            match p.cmp(l.name) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(InvalidSeries::DuplicateLabel),
                std::cmp::Ordering::Greater => return Err(InvalidSeries::UnsortedLabels),
            }
        }
        prev = Some(l.name);
        if l.value.is_empty() {
            return Err(InvalidSeries::EmptyLabelValue);
        }
        if l.name == b"__name__" {
            has_name = true;
            if !valid_metric_name(l.value) {
                return Err(InvalidSeries::InvalidMetricName);
            }
        } else {
            if !valid_label_name(l.name) {
                return Err(InvalidSeries::InvalidLabelName);
            }
            if std::str::from_utf8(l.value).is_err() {
                return Err(InvalidSeries::InvalidUtf8);
            }
        }
    }
    if has_name {
        Ok(())
    } else {
        Err(InvalidSeries::NoMetricName)
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
