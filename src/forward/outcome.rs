//! The status table of DESIGN §2, decided in one place.

use hyper::header::HeaderValue;
use hyper::StatusCode;

/// What became of a downstream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: stored (202 included: an HA replica Cortex chose not to store).
    Delivered,
    /// 400 or another 4xx that retrying cannot fix: downstream kept the valid rest.
    Rejected { status: u16, reason: String },
    /// 401/403/404 or a redirect: omen is misconfigured; Prometheus must keep the data.
    Misconfigured { status: u16, reason: String },
    /// 429: downstream asks to slow down.
    RateLimited { retry_after: Option<HeaderValue> },
    /// 5xx, timeout or connection error.
    Unavailable { reason: String },
}

/// Retry-After omen sends when it has no better figure (seconds).
pub const DEFAULT_RETRY_AFTER: &str = "1";

impl Outcome {
    /// Classifies a downstream answer.
    pub fn from_response(
        status: StatusCode,
        reason: String,
        retry_after: Option<HeaderValue>,
    ) -> Outcome {
        let code = status.as_u16();
        match code {
            200..=299 => Outcome::Delivered,
            401 | 403 | 404 | 405 | 407 | 300..=399 => Outcome::Misconfigured {
                status: code,
                reason,
            },
            429 => Outcome::RateLimited { retry_after },
            400..=499 => Outcome::Rejected {
                status: code,
                reason,
            },
            _ => Outcome::Unavailable {
                reason: format!("downstream answered {code}: {reason}"),
            },
        }
    }

    /// Whether tentative model updates commit: the data reached downstream's storage
    /// decision (stored, or refused as bad data that a retry would not fix).
    pub fn commits(&self) -> bool {
        matches!(self, Outcome::Delivered | Outcome::Rejected { .. })
    }

    /// The status omen answers Prometheus with.
    pub fn status(&self) -> StatusCode {
        match self {
            Outcome::Delivered => StatusCode::NO_CONTENT,
            Outcome::Rejected { .. } => StatusCode::BAD_REQUEST,
            Outcome::Misconfigured { .. } => StatusCode::BAD_GATEWAY,
            Outcome::RateLimited { .. } | Outcome::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The one-line body of omen's answer (empty on success).
    pub fn message(&self) -> String {
        match self {
            Outcome::Delivered => String::new(),
            Outcome::Rejected { status, reason } => {
                format!("downstream refused the data ({status}): {reason}")
            }
            Outcome::Misconfigured { status, reason } => {
                format!("downstream answered {status}, check omen's downstream settings: {reason}")
            }
            Outcome::RateLimited { .. } => "downstream is rate limiting (429); retry later".into(),
            Outcome::Unavailable { reason } => reason.clone(),
        }
    }

    /// The Retry-After header for omen's answer, if any.
    pub fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            Outcome::RateLimited { retry_after } => Some(
                retry_after
                    .clone()
                    .unwrap_or(HeaderValue::from_static(DEFAULT_RETRY_AFTER)),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        // (downstream status, omen's answer, commits)
        let table = [
            (200, 204, true),
            (202, 204, true),
            (204, 204, true),
            (400, 400, true),
            (409, 400, true),
            (413, 400, true),
            (401, 502, false),
            (403, 502, false),
            (404, 502, false),
            (301, 502, false),
            (429, 503, false),
            (500, 503, false),
            (502, 503, false),
            (503, 503, false),
        ];
        for (down, want, commits) in table {
            let o = Outcome::from_response(StatusCode::from_u16(down).unwrap(), "why".into(), None);
            assert_eq!(o.status().as_u16(), want, "downstream {down}");
            assert_eq!(o.commits(), commits, "downstream {down}");
        }
    }

    #[test]
    fn retry_after() {
        let o = Outcome::from_response(
            StatusCode::TOO_MANY_REQUESTS,
            String::new(),
            Some(HeaderValue::from_static("7")),
        );
        assert_eq!(o.retry_after(), Some(HeaderValue::from_static("7")));
        let o = Outcome::from_response(StatusCode::TOO_MANY_REQUESTS, String::new(), None);
        assert_eq!(
            o.retry_after(),
            Some(HeaderValue::from_static(DEFAULT_RETRY_AFTER))
        );
        assert_eq!(Outcome::Delivered.retry_after(), None);
        let rejected =
            Outcome::from_response(StatusCode::BAD_REQUEST, "out of order sample".into(), None);
        assert!(rejected.message().contains("out of order sample"));
    }
}
