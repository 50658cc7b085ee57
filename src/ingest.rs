//! From an HTTP write request to a decoded protobuf buffer: content type and encoding,
//! the body-size cap, and snappy block decompression with the declared length checked
//! before anything is allocated. Every refusal is an [`IngestError`] that knows its status.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::StatusCode;

use crate::wire::{DecodeError, InvalidSeries};

/// Why a write request is refused or only partly accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("snappy: {0}")]
    Snappy(String),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("reading the body: {0}")]
    Body(String),
    /// Some series were dropped; the valid rest was delivered.
    #[error("invalid series dropped ({}): {detail}", .reason.reason())]
    InvalidSeries {
        reason: InvalidSeries,
        detail: String,
    },
}

impl IngestError {
    /// The HTTP status omen answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::TooLarge(_) | IngestError::Decode(DecodeError::TooManySeries { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::Snappy(_)
            | IngestError::Decode(_)
            | IngestError::Body(_)
            | IngestError::InvalidSeries { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// The `reason` label of `omen_bad_requests_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::TooLarge(_) => "too_large",
            IngestError::Snappy(_) => "snappy",
            IngestError::Decode(DecodeError::TooManySeries { .. }) => "too_many_series",
            IngestError::Decode(DecodeError::RemoteWrite2) => "remote_write_2",
            IngestError::Decode(_) => "protobuf",
            IngestError::Body(_) => "body",
            IngestError::InvalidSeries { .. } => "invalid_series",
        }
    }
}

/// Checks `Content-Type` and `Content-Encoding`. Missing headers read as remote-write
/// 1.0 with snappy, as Prometheus's own receiver does.
///
/// # Errors
/// 415 for another type (including remote-write 2.0, not supported yet) or encoding.
pub fn check_headers(headers: &HeaderMap) -> Result<(), IngestError> {
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let mut parts = ct.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return Err(IngestError::UnsupportedMediaType(format!(
                "unsupported Content-Type {ct:?}: expected application/x-protobuf (remote-write 1.0)"
            )));
        }
        for p in parts {
            if let Some(proto) = p.strip_prefix("proto=") {
                if proto != "prometheus.WriteRequest" {
                    return Err(IngestError::UnsupportedMediaType(format!(
                        "unsupported remote-write message {proto:?}: omen accepts prometheus.WriteRequest (1.0)"
                    )));
                }
            }
        }
    }
    if let Some(ce) = headers.get(CONTENT_ENCODING) {
        let ce = ce.to_str().unwrap_or("");
        if !ce.eq_ignore_ascii_case("snappy") {
            return Err(IngestError::UnsupportedMediaType(format!(
                "unsupported Content-Encoding {ce:?}: expected snappy"
            )));
        }
    }
    Ok(())
}

/// Reads the compressed body, refusing anything over `max` bytes without reading past it.
///
/// # Errors
/// 413 when the declared or actual length exceeds `max`; 400 when the body breaks off.
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    max: usize,
) -> Result<Bytes, IngestError> {
    if let Some(len) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(IngestError::TooLarge(format!(
                "body of {len} bytes exceeds the limit of {max} bytes"
            )));
        }
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(IngestError::TooLarge(format!(
                "body exceeds the limit of {max} bytes"
            )))
        }
        Err(e) => Err(IngestError::Body(e.to_string())),
    }
}

/// Decompresses a snappy block body, checking the declared length against `max` first.
///
/// # Errors
/// 413 when the declared length exceeds `max`; 400 for a corrupt or empty body.
pub fn decompress(body: &[u8], max: usize) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::new();
    let n = decompress_into(body, max, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// [`decompress`] into a buffer reused across requests: `out` is grown (zero-filled) only
/// when it is shorter than the decoded length, never shrunk. Returns the decoded length:
/// the body is `out[..n]`.
pub fn decompress_into(body: &[u8], max: usize, out: &mut Vec<u8>) -> Result<usize, IngestError> {
    if body.is_empty() {
        return Err(IngestError::Snappy("empty body".into()));
    }
    let len = snap::raw::decompress_len(body).map_err(|e| IngestError::Snappy(e.to_string()))?;
    if len > max {
        return Err(IngestError::TooLarge(format!(
            "decoded body of {len} bytes exceeds the limit of {max} bytes"
        )));
    }
    if out.len() < len {
        out.resize(len, 0);
    }
    snap::raw::Decoder::new()
        .decompress(body, &mut out[..len])
        .map_err(|e| IngestError::Snappy(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(ct: Option<&str>, ce: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = ct {
            h.insert(CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
        }
        if let Some(v) = ce {
            h.insert(CONTENT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn media_types() {
        let cases = [
            (None, None, true),
            (Some("application/x-protobuf"), Some("snappy"), true),
            (
                Some("application/x-protobuf;proto=prometheus.WriteRequest"),
                Some("snappy"),
                true,
            ),
            (
                Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
                Some("snappy"),
                false,
            ),
            (Some("application/json"), Some("snappy"), false),
            (Some("application/x-protobuf"), Some("gzip"), false),
        ];
        for (ct, ce, ok) in cases {
            let got = check_headers(&headers(ct, ce));
            assert_eq!(got.is_ok(), ok, "{ct:?} {ce:?}");
            if let Err(e) = got {
                assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
        }
    }

    #[test]
    fn snappy_limits() {
        let raw = vec![7u8; 10_000];
        let compressed = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert_eq!(decompress(&compressed, 10_000).unwrap(), raw);
        let e = decompress(&compressed, 9_999).unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // A header declaring 4 GiB is refused before allocating.
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert_eq!(
            decompress(&huge, 32 << 20).unwrap_err().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        // Corrupt and truncated bodies are 400.
        assert_eq!(
            decompress(&compressed[..compressed.len() / 2], 10_000)
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            decompress(b"", 10).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        // Framed snappy (stream identifier chunk) is not the block format.
        let framed = b"\xff\x06\x00\x00sNaPpY";
        assert_eq!(
            decompress(framed, 32 << 20).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
