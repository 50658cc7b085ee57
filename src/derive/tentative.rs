//! A request's tentative model updates ([`Tentative`]): made while the request is built,
//! committed or discarded with it, and their buffers reused by a later request.

use super::store::Entry;
use crate::fit::{Fed, FedSeries};
use crate::idhash::{IdMap, ShardOrder};

/// Updates made while building one request; committed or discarded with it. Made by
/// [`Models::tentative`](super::Models::tentative): a committed request's buffers are
/// reused by a later request.
#[derive(Default)]
pub struct Tentative {
    pub(super) updates: Vec<Update>,
    /// Index into `updates` per key, so a series repeated within a request continues
    /// from its own tentative state.
    pub(super) index: IdMap<u32>,
    pub(super) newest_ms: i64,
    pub(super) derived_samples: u64,
    /// Samples taken by the models, for the fit histories, and the index into `updates`
    /// each belongs to.
    pub(super) fed: Vec<Fed>,
    pub(super) fed_update: Vec<u32>,
    /// The commit's buffers: which updates it applied, the shard order, the fed series.
    pub(super) applied: Vec<bool>,
    pub(super) order: ShardOrder,
    pub(super) fed_series: Vec<FedSeries>,
}

impl std::fmt::Debug for Tentative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tentative")
            .field("updates", &self.updates.len())
            .field("fed", &self.fed.len())
            .field("newest_ms", &self.newest_ms)
            .field("derived_samples", &self.derived_samples)
            .finish_non_exhaustive()
    }
}

impl Tentative {
    /// Empties it for another request, keeping the allocations.
    pub(super) fn clear(&mut self) {
        self.updates.clear();
        self.index.clear();
        self.newest_ms = 0;
        self.derived_samples = 0;
        self.fed.clear();
        self.fed_update.clear();
        self.applied.clear();
        self.fed_series.clear();
    }

    /// Whether its buffers are small enough to keep for another request.
    pub(super) fn retainable(&self) -> bool {
        self.updates.capacity() <= RETAIN_UPDATES && self.fed.capacity() <= RETAIN_UPDATES
    }
}

/// Series (and fed samples) a spare [`Tentative`]'s buffers may hold: Prometheus sends
/// 2,000 samples per request by default; a far larger request's buffers are freed.
const RETAIN_UPDATES: usize = 4096;

/// Spare [`Tentative`]s kept (about 0.5 MiB each for a request of 2,000 series): enough
/// for the requests a few cores build at once; a burst of more in flight (up to
/// `server.max_concurrent_requests`) allocates the rest, and their buffers are freed.
pub(super) const SPARE_TENTATIVES: usize = 16;

/// One series' tentative update.
#[derive(Debug)]
pub(super) struct Update {
    pub(super) key: u64,
    /// Last timestamp of the committed model it started from.
    pub(super) base: Option<i64>,
    /// The store slot that model was found in: the commit checks it still holds `key`
    /// before looking the key up again.
    pub(super) slot: Option<u32>,
    pub(super) entry: Entry,
}
