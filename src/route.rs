//! Per-series routing: is a series forwarded (whitelist), and which model rule applies?
//! The decision is a function of the label set, so it is cached by label-set hash in a
//! bounded, sharded LRU and the selectors' regexes run once per series, not per sample.

use std::sync::Mutex;

use crate::idhash::{shard_of, IdMap, ShardOrder, SHARDS};
use crate::recency::{Linked, Links, Recency, NIL};
use crate::selector::Selector;
use crate::wire::Label;

/// What happens to one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    shards: Vec<Mutex<Shard>>,
}

/// One shard of the route cache: an LRU whose hits promote lazily. Relinking an entry on
/// every hit costs several cache misses per sample on a large cache (it was a third of
/// omen's pass-through CPU), so a hit only promotes an entry that has drifted into the older
/// half of the recency order, judged by a stamp. Hot entries thus never reach the eviction
/// end, and eviction stays least-recently-used in effect.
///
/// A hit reads only the index: route and stamp sit in the map next to the key, so a lookup
/// costs one bucket of an [`IdMap`] and nothing else (a linked node per entry, as in the
/// `lru` crate, was one more cache miss per series, the largest part of the lookup's time),
/// and [`Router::cached_many`] prefetches those buckets for many series at once. The
/// recency list lives apart, in a slab of links touched only on insertion and promotion.
struct Shard {
    index: IdMap<Cached>,
    links: Vec<Link>,
    /// Most and least recently moved to the front.
    list: Recency,
    /// Counts insertions and promotions; an entry's stamp is the tick it was last moved to
    /// the front at.
    tick: u32,
    half: u32,
    capacity: usize,
}

/// A cached decision, its stamp and its place in the recency list.
#[derive(Clone, Copy, Default)]
struct Cached {
    route: Route,
    stamp: u32,
    link: u32,
}

/// An entry's place in the recency list.
struct Link {
    hash: u64,
    links: Links,
}

impl Linked for Link {
    fn links(&self) -> Links {
        self.links
    }
    fn links_mut(&mut self) -> &mut Links {
        &mut self.links
    }
}

impl Shard {
    fn new(capacity: usize) -> Shard {
        let capacity = capacity.clamp(1, NIL as usize);
        Shard {
            index: IdMap::new(),
            links: Vec::new(),
            list: Recency::EMPTY,
            tick: 0,
            half: u32::try_from(capacity / 2).unwrap_or(u32::MAX),
            capacity,
        }
    }

    fn get(&mut self, hash: u64) -> Option<Route> {
        let cached = self.index.get_mut(hash)?;
        let route = cached.route;
        if self.tick.wrapping_sub(cached.stamp) > self.half {
            self.tick = self.tick.wrapping_add(1);
            cached.stamp = self.tick;
            let link = cached.link;
            self.list.unlink(&mut self.links, link);
            self.list.link_front(&mut self.links, link);
        }
        Some(route)
    }

    fn put(&mut self, hash: u64, route: Route) {
        self.tick = self.tick.wrapping_add(1);
        let stamp = self.tick;
        if let Some(cached) = self.index.get_mut(hash) {
            *cached = Cached {
                route,
                stamp,
                ..*cached
            };
            let link = cached.link;
            self.list.unlink(&mut self.links, link);
            self.list.link_front(&mut self.links, link);
            return;
        }
        let link = if self.index.len() >= self.capacity {
            let link = self.list.tail;
            self.list.unlink(&mut self.links, link);
            self.index.remove(self.links[link as usize].hash);
            self.links[link as usize].hash = hash;
            link
        } else {
            self.links.push(Link {
                hash,
                links: Links::NONE,
            });
            (self.links.len() - 1) as u32
        };
        self.list.link_front(&mut self.links, link);
        self.index.insert(hash, Cached { route, stamp, link });
    }
}

impl Router {
    /// A router for a whitelist (empty = keep all) and the model rules' selectors, with a
    /// cache of about `cache_size` entries in total.
    pub fn new(whitelist: Vec<Selector>, rules: Vec<Selector>, cache_size: usize) -> Router {
        let per_shard = cache_size.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(Shard::new(per_shard)))
            .collect();
        Router {
            whitelist,
            rules,
            shards,
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        &self.shards[shard_of(hash)]
    }

    /// The cached route of a series, if any.
    pub fn cached(&self, hash: u64) -> Option<Route> {
        let mut shard = self.shard(hash).lock().unwrap_or_else(|p| p.into_inner());
        shard.get(hash)
    }

    /// The cached routes of many series (`None` for a miss), shard by shard, with the
    /// buckets of all of them prefetched before the first is read, so their cache misses
    /// overlap instead of queueing one per series.
    pub fn cached_many(
        &self,
        hashes: &[u64],
        order: &mut ShardOrder,
        out: &mut Vec<Option<Route>>,
    ) {
        out.clear();
        out.resize(hashes.len(), None);
        order.sort(hashes.iter().enumerate().map(|(i, &h)| (i as u32, h)));
        // All buckets are requested before any is read, so the whole chunk's misses overlap.
        for (shard, run) in order.runs() {
            let shard = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
            for &i in run {
                shard.index.prefetch(hashes[i as usize]);
            }
        }
        for (shard, run) in order.runs() {
            let mut shard = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
            for &i in run {
                out[i as usize] = shard.get(hashes[i as usize]);
            }
        }
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
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).index.len())
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
    fn hot_series_survive_eviction_and_cold_ones_go() {
        // Small hashes all land in shard 0: 8 entries there, promotion past 4 ticks.
        let router = Router::new(vec![], vec![], 8 * SHARDS);
        let ls = labels(&[("__name__", "x")]);
        router.decide(1, &ls); // hot
        router.decide(2, &ls); // cold
        for h in 100..1000u64 {
            router.decide(h, &ls);
            assert!(
                router.cached(1).is_some(),
                "the hot series is still cached after {h}"
            );
        }
        assert_eq!(router.cached(2), None, "the cold series was evicted");
    }

    #[test]
    fn bound_is_exact_and_the_oldest_goes() {
        // Small hashes all land in shard 0: 8 entries there.
        let router = Router::new(vec![], vec![], 8 * SHARDS);
        let ls = labels(&[("__name__", "x")]);
        for h in 0..20u64 {
            router.decide(h, &ls);
        }
        assert_eq!(router.cache_len(), 8);
        let kept: Vec<u64> = (0..20).filter(|&h| router.cached(h).is_some()).collect();
        assert_eq!(kept, (12..20).collect::<Vec<_>>());
        // Deciding a cached series again replaces it in place.
        router.decide(12, &ls);
        assert_eq!(router.cache_len(), 8);
        router.decide(20, &ls);
        assert_eq!(
            router.cached(13),
            None,
            "the oldest after 12's renewal went"
        );
        assert!(router.cached(12).is_some());
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
