//! The remote-write 1.0 wire format, by hand: a zero-copy scanner that validates a
//! `prometheus.WriteRequest` and borrows every series from the request buffer, and a
//! writer that appends series to an outgoing request. This is omen's hot path; the prost
//! types in [`crate::proto`] are the reference these are tested against.

mod names;
mod proto;
mod scan;
mod write;

pub use names::{valid_label_name, valid_metric_name};
pub use scan::{
    canonical_hash, scan, validate, DecodeError, InvalidSeries, Item, Label, Limits, MetadataView,
    Request, SeriesView,
};
pub use write::{label_field_len, LabelRun, RequestWriter};

/// The stale-marker NaN (`0x7ff0000000000002`); compare bits, never `is_nan`.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
