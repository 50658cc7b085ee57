//! Building the downstream WriteRequest: forwarded series are copied byte for byte from
//! the incoming body; derived series are encoded here from labels and samples.

use super::proto::put_varint;
use super::scan::Label;

/// An outgoing `prometheus.WriteRequest` under construction.
#[derive(Debug, Default)]
pub struct RequestWriter {
    buf: Vec<u8>,
    series: usize,
}

impl RequestWriter {
    /// A writer whose buffer starts with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        RequestWriter {
            buf: Vec::with_capacity(capacity),
            series: 0,
        }
    }

    /// A writer reusing `buf`'s allocation (emptied), with room for `capacity` bytes.
    pub fn reuse(mut buf: Vec<u8>, capacity: usize) -> Self {
        buf.clear();
        buf.reserve(capacity);
        RequestWriter { buf, series: 0 }
    }

    /// The buffer, for reuse by the next request's writer.
    pub fn into_buf(self) -> Vec<u8> {
        self.buf
    }

    /// Appends an encoded TimeSeries message unchanged.
    pub fn push_raw_series(&mut self, raw: &[u8]) {
        self.buf.push(0x0a);
        put_varint(&mut self.buf, raw.len() as u64);
        self.buf.extend_from_slice(raw);
        self.series += 1;
    }

    /// Appends an encoded MetricMetadata message unchanged.
    pub fn push_raw_metadata(&mut self, raw: &[u8]) {
        self.buf.push(0x1a);
        put_varint(&mut self.buf, raw.len() as u64);
        self.buf.extend_from_slice(raw);
    }

    /// Appends a TimeSeries with these labels (already sorted) and float samples
    /// (timestamp ms, value). The encoding is the canonical one Prometheus uses.
    pub fn push_series(&mut self, labels: &[Label<'_>], samples: &[(i64, f64)]) {
        let label_len = |l: &Label<'_>| field_len(l.name.len()) + field_len(l.value.len());
        let sample_len = |&(ts, v): &(i64, f64)| sample_body_len(ts, v);
        let body: usize = labels
            .iter()
            .map(|l| field_len(label_len(l)))
            .sum::<usize>()
            + samples
                .iter()
                .map(|s| field_len(sample_len(s)))
                .sum::<usize>();
        self.buf.push(0x0a);
        put_varint(&mut self.buf, body as u64);
        for l in labels {
            self.buf.push(0x0a);
            put_varint(&mut self.buf, label_len(l) as u64);
            self.buf.push(0x0a);
            put_varint(&mut self.buf, l.name.len() as u64);
            self.buf.extend_from_slice(l.name);
            self.buf.push(0x12);
            put_varint(&mut self.buf, l.value.len() as u64);
            self.buf.extend_from_slice(l.value);
        }
        for &(ts, v) in samples {
            self.buf.push(0x12);
            put_varint(&mut self.buf, sample_body_len(ts, v) as u64);
            // proto3 omits zero-valued fields (Go and prost both treat -0.0 as zero); NaNs are kept.
            if v != 0.0 {
                self.buf.push(0x09);
                self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            if ts != 0 {
                self.buf.push(0x10);
                put_varint(&mut self.buf, ts as u64);
            }
        }
        self.series += 1;
    }

    /// Series written so far.
    pub fn series(&self) -> usize {
        self.series
    }

    /// Whether nothing (no series, no metadata) was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoded request.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Bytes of a length-delimited field (key + length + payload) with a payload of `len`.
fn field_len(len: usize) -> usize {
    1 + super::proto::varint_len(len as u64) + len
}

fn sample_body_len(ts: i64, v: f64) -> usize {
    (if v != 0.0 { 9 } else { 0 })
        + (if ts != 0 {
            1 + super::proto::varint_len(ts as u64)
        } else {
            0
        })
}
