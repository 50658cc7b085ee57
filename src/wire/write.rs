//! Building the downstream WriteRequest: forwarded series are copied byte for byte from
//! the incoming body; derived series are encoded here from labels and samples.

use super::proto::put_varint;
use super::scan::Label;

/// Labels of a series to write, in order: one label, encoded by the writer, or a run of
/// label fields already in the canonical encoding (as the scanner's
/// [`SeriesView::encoded_labels`](super::SeriesView::encoded_labels)), copied as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelRun<'a> {
    Label(Label<'a>),
    Encoded(&'a [u8]),
}

impl LabelRun<'_> {
    /// Bytes the run takes in a TimeSeries message.
    fn len(&self) -> usize {
        match self {
            LabelRun::Label(l) => label_field_len(l),
            LabelRun::Encoded(fields) => fields.len(),
        }
    }
}

/// Bytes a label takes in a TimeSeries message, canonically encoded (key and length
/// included): where the next label starts in an encoded run.
pub fn label_field_len(l: &Label<'_>) -> usize {
    field_len(label_len(l))
}

/// Bytes of a Label message's body (name and value fields).
fn label_len(l: &Label<'_>) -> usize {
    field_len(l.name.len()) + field_len(l.value.len())
}

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
        self.push(labels.iter().map(|&l| LabelRun::Label(l)), samples);
    }

    /// [`RequestWriter::push_series`] with the labels given as runs: the same bytes as the
    /// labels the runs stand for, with encoded runs copied as they are.
    pub fn push_series_runs(&mut self, labels: &[LabelRun<'_>], samples: &[(i64, f64)]) {
        self.push(labels.iter().copied(), samples);
    }

    fn push<'l>(
        &mut self,
        labels: impl Iterator<Item = LabelRun<'l>> + Clone,
        samples: &[(i64, f64)],
    ) {
        let body: usize = labels.clone().map(|r| r.len()).sum::<usize>()
            + samples
                .iter()
                .map(|&(ts, v)| field_len(sample_body_len(ts, v)))
                .sum::<usize>();
        // Sized once, then written through a cursor: no capacity check per byte.
        let start = self.buf.len();
        self.buf.resize(start + field_len(body), 0);
        let mut w = Cursor {
            out: &mut self.buf[start..],
            pos: 0,
        };
        w.byte(0x0a);
        w.varint(body as u64);
        for run in labels {
            match run {
                LabelRun::Label(l) => {
                    w.byte(0x0a);
                    w.varint(label_len(&l) as u64);
                    w.byte(0x0a);
                    w.varint(l.name.len() as u64);
                    w.bytes(l.name);
                    w.byte(0x12);
                    w.varint(l.value.len() as u64);
                    w.bytes(l.value);
                }
                LabelRun::Encoded(fields) => w.bytes(fields),
            }
        }
        for &(ts, v) in samples {
            w.byte(0x12);
            w.varint(sample_body_len(ts, v) as u64);
            // proto3 omits zero-valued fields (Go and prost both treat -0.0 as zero); NaNs are kept.
            if v != 0.0 {
                w.byte(0x09);
                w.bytes(&v.to_bits().to_le_bytes());
            }
            if ts != 0 {
                w.byte(0x10);
                w.varint(ts as u64);
            }
        }
        debug_assert_eq!(w.pos, w.out.len(), "the computed length was written");
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

/// Writes into a slice sized beforehand.
struct Cursor<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl Cursor<'_> {
    #[inline]
    fn byte(&mut self, b: u8) {
        self.out[self.pos] = b;
        self.pos += 1;
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        self.out[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }

    #[inline]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }
}

fn sample_body_len(ts: i64, v: f64) -> usize {
    (if v != 0.0 { 9 } else { 0 })
        + (if ts != 0 {
            1 + super::proto::varint_len(ts as u64)
        } else {
            0
        })
}
