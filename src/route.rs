//! Per-series routing: is a series forwarded (whitelist), and which model rule applies?
//! The decision is a function of the label set, so it is cached by label-set hash in a
//! bounded, sharded LRU and the selectors' regexes run once per series, not per sample.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::idhash::BuildIdHasher;
use crate::selector::Selector;
use crate::wire::Label;

const SHARDS: usize = 16;

/// What happens to one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Forwarded downstream (whitelisted).
    pub forward: bool,
    /// Index of the first model rule that matches, for forwarded series only.
    pub rule: Option<u16>,
}

/// Decides and caches routes. Cheap to share: lookups lock one of 16 shards briefly.
pub struct Router {
    whitelist: Vec<Selector>,
    rules: Vec<Selector>,
    shards: Vec<Mutex<LruCache<u64, Route, BuildIdHasher>>>,
}

impl Router {
    /// A router for a whitelist (empty = keep all) and the model rules' selectors, with a
    /// cache of about `cache_size` entries in total.
    pub fn new(whitelist: Vec<Selector>, rules: Vec<Selector>, cache_size: usize) -> Router {
        let per_shard = NonZeroUsize::new(cache_size.div_ceil(SHARDS).max(1)).expect("at least 1");
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(LruCache::with_hasher(per_shard, BuildIdHasher::default())))
            .collect();
        Router {
            whitelist,
            rules,
            shards,
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<LruCache<u64, Route, BuildIdHasher>> {
        // Middle bits: the maps inside a shard use the low bits (bucket) and the top
        // seven (control byte) of the hash.
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    /// The cached route of a series, if any.
    pub fn cached(&self, hash: u64) -> Option<Route> {
        let mut shard = self.shard(hash).lock().unwrap_or_else(|p| p.into_inner());
        shard.get(&hash).copied()
    }

    /// Decides the route of a series whose labels were validated, and caches it.
    pub fn decide(&self, hash: u64, labels: &[Label<'_>]) -> Route {
        let pairs = labels.iter().map(|l| {
            (
                std::str::from_utf8(l.name).unwrap_or(""),
                std::str::from_utf8(l.value).unwrap_or(""),
            )
        });
        let forward =
            self.whitelist.is_empty() || self.whitelist.iter().any(|s| s.matches(pairs.clone()));
        let rule = if forward {
            self.rules
                .iter()
                .position(|s| s.matches(pairs.clone()))
                .map(|i| i as u16)
        } else {
            None
        };
        let route = Route { forward, rule };
        let mut shard = self.shard(hash).lock().unwrap_or_else(|p| p.into_inner());
        shard.put(hash, route);
        route
    }

    /// Whether metadata of this metric family is forwarded: some whitelist selector may
    /// match a series of the family.
    pub fn keeps_family(&self, family: &str) -> bool {
        self.whitelist.is_empty() || self.whitelist.iter().any(|s| s.may_match_family(family))
    }

    /// Entries in the route cache.
    pub fn cache_len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<Label<'a>> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.as_bytes(),
                value: v.as_bytes(),
            })
            .collect()
    }

    fn sel(s: &[&str]) -> Vec<Selector> {
        s.iter().map(|t| Selector::parse(t).unwrap()).collect()
    }

    #[test]
    fn routes() {
        let router = Router::new(
            sel(&["up", r#"{__name__=~"http_.*", job="api"}"#]),
            sel(&[r#"{__name__="http_requests_total"}"#, r#"{job="api"}"#]),
            100,
        );
        let cases: &[(&[(&str, &str)], Route)] = &[
            (
                &[("__name__", "up"), ("job", "api")],
                Route {
                    forward: true,
                    rule: Some(1),
                },
            ),
            (
                &[("__name__", "up"), ("job", "web")],
                Route {
                    forward: true,
                    rule: None,
                },
            ),
            (
                &[("__name__", "http_requests_total"), ("job", "api")],
                Route {
                    forward: true,
                    rule: Some(0),
                },
            ),
            (
                &[("__name__", "http_requests_total"), ("job", "web")],
                Route {
                    forward: false,
                    rule: None,
                },
            ),
            (
                &[("__name__", "go_goroutines"), ("job", "api")],
                Route {
                    forward: false,
                    rule: None,
                },
            ),
        ];
        for (i, (pairs, want)) in cases.iter().enumerate() {
            let ls = labels(pairs);
            assert_eq!(router.cached(i as u64), None);
            assert_eq!(router.decide(i as u64, &ls), *want, "{pairs:?}");
            assert_eq!(router.cached(i as u64), Some(*want), "cached {pairs:?}");
        }
        assert_eq!(router.cache_len(), cases.len());
    }

    #[test]
    fn empty_whitelist_keeps_all_and_cache_is_bounded() {
        let router = Router::new(vec![], vec![], 32);
        let ls = labels(&[("__name__", "anything")]);
        for h in 0..10_000u64 {
            assert!(
                router
                    .decide(h.wrapping_mul(0x9e37_79b9_7f4a_7c15), &ls)
                    .forward
            );
        }
        assert!(
            router.cache_len() <= 32,
            "cache holds {}",
            router.cache_len()
        );
        assert!(router.keeps_family("anything"));
    }
}
