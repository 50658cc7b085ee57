//! Is a series a counter? By the metadata Prometheus sends for its family, or else by
//! the naming convention (`_total`, `_count`, `_sum`). Metadata arrives in separate
//! requests about once a minute, so the family types are remembered in a bounded map.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::model::Kind;

/// MetricType values of remote-write metadata.
const COUNTER: u64 = 1;
const HISTOGRAM: u64 = 3;
const SUMMARY: u64 = 5;

/// Family types seen in metadata, bounded: when full, new families fall back to the naming
/// convention (so a hostile sender cannot grow it).
pub struct FamilyKinds {
    map: RwLock<HashMap<String, u64>>,
    capacity: usize,
}

impl FamilyKinds {
    pub fn new(capacity: usize) -> FamilyKinds {
        FamilyKinds {
            map: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// Records a metadata entry.
    pub fn record(&self, family: &str, kind: u64) {
        let known = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(family)
            == Some(&kind);
        if known {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() < self.capacity || map.contains_key(family) {
            map.insert(family.to_string(), kind);
        }
    }

    /// How a series with this metric name is modeled.
    pub fn kind_of(&self, name: &str) -> Kind {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let family = ["_total", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s));
        if let Some(&t) = map.get(name) {
            return if t == COUNTER {
                Kind::Counter
            } else {
                Kind::Gauge
            };
        }
        match family {
            // `_count` and `_sum` of histograms and summaries only grow; of a gauge
            // histogram they do not.
            Some(f) => match map.get(f) {
                Some(&t) if !matches!(t, COUNTER | HISTOGRAM | SUMMARY) => Kind::Gauge,
                _ => Kind::Counter,
            },
            None => Kind::Gauge,
        }
    }
}

/// Classic-histogram bucket series are forwarded but not modeled unless a rule asks.
pub fn is_bucket(name: &[u8]) -> bool {
    name.ends_with(b"_bucket")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let k = FamilyKinds::new(2);
        assert_eq!(k.kind_of("http_requests_total"), Kind::Counter);
        assert_eq!(k.kind_of("rpc_duration_seconds_count"), Kind::Counter);
        assert_eq!(k.kind_of("go_goroutines"), Kind::Gauge);
        k.record("bytes_read", COUNTER);
        assert_eq!(
            k.kind_of("bytes_read"),
            Kind::Counter,
            "metadata says counter without the suffix"
        );
        k.record("queue_total", 2);
        assert_eq!(
            k.kind_of("queue_total"),
            Kind::Gauge,
            "metadata says gauge despite the suffix"
        );
        k.record("third", COUNTER);
        assert_eq!(
            k.kind_of("third"),
            Kind::Gauge,
            "the map is full: convention decides"
        );
        assert!(is_bucket(b"rpc_duration_seconds_bucket"));
    }
}
