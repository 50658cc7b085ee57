//! Derived series in the write path (DESIGN §1 steps 4–7, §3): the per-series models,
//! kept in a bounded LRU keyed by (tenant, series); tentative updates made while a request
//! is built; and the commit that makes them permanent only when downstream took the data.
//!
//! The model arithmetic lives in [`crate::model`]; this module owns state, keys, labels
//! and emission; [`store`] the bounded store of one shard.

mod imports;
mod kinds;
mod labels;
mod store;
mod tentative;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

pub use imports::{Imported, Imports};
pub use kinds::{is_bucket, FamilyKinds};
use store::{Entry, Store};
pub use tentative::Tentative;
use tentative::{Update, SPARE_TENTATIVES};

use crate::config::{ModelsConfig, Outputs};
use crate::fit::{Fed, FedSeries, Fitter};
use crate::idhash::{shard_of, ShardOrder, SHARDS};
use crate::metrics::Metrics;
use crate::model::{Model, ModelSettings, Outcome, Params};
use crate::wire::{Label, LabelRun, RequestWriter, SeriesView, STALE_NAN_BITS};

/// Metadata families remembered for counter detection.
const FAMILY_CAPACITY: usize = 100_000;

/// One rule in runtime form.
#[derive(Debug, Clone)]
struct Rule {
    params: Params,
    outputs: Outputs,
    buckets: bool,
}

/// Names of the derived series, as bytes for the writer.
#[derive(Debug, Clone)]
struct Names {
    score: Vec<u8>,
    forecast: Vec<u8>,
    lower: Vec<u8>,
    upper: Vec<u8>,
    label: Vec<u8>,
}

/// Rules and names: replaced as a whole on config reload.
#[derive(Debug, Clone)]
struct Settings {
    rules: Vec<Rule>,
    names: Names,
}

/// All models of this omen. Shared by requests; survives config reloads.
pub struct Models {
    shards: Vec<Mutex<Store>>,
    settings: arc_swap::ArcSwap<Settings>,
    families: FamilyKinds,
    /// The newest sample timestamp committed: the model clock for retiring stale models.
    newest_ms: AtomicI64,
    metrics: Metrics,
    /// Histories and fitted parameters (background fitting, DESIGN §3.4).
    fitter: Arc<Fitter>,
    /// The page's record of recent derived values (`ui:`), if enabled.
    recent: Option<std::sync::Arc<crate::ui::Recent>>,
    /// Imported per-series parameters and start states (`models.import`).
    imports: arc_swap::ArcSwap<Imports>,
    /// Committed requests' emptied [`Tentative`]s, for [`Models::tentative`].
    spare: Mutex<Vec<Tentative>>,
}

/// A series' committed model, looked up by [`Models::stage`] ahead of [`Models::derive`].
#[derive(Debug, Clone, Copy)]
pub struct Staged(Option<(u32, Entry)>);

/// Per-request state of [`Models::derive`]: the rules and the import in force, loaded once
/// per request (a reload applies from the next request), and buffers reused across the
/// series of a request. Made by [`Models::scratch`].
pub struct Scratch {
    settings: Arc<Settings>,
    imports: Arc<Imports>,
    labels: Vec<Label<'static>>,
    runs: Vec<LabelRun<'static>>,
    score: Vec<(i64, f64)>,
    forecast: Vec<(i64, f64)>,
    lower: Vec<(i64, f64)>,
    upper: Vec<(i64, f64)>,
}

impl Models {
    /// Models with the `models:` section's limits, rules and names.
    pub fn new(config: &ModelsConfig, metrics: Metrics) -> Models {
        let per_shard = config.max_series.div_ceil(SHARDS).max(1);
        Models {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Store::new(per_shard)))
                .collect(),
            settings: arc_swap::ArcSwap::from_pointee(settings(config)),
            families: FamilyKinds::new(FAMILY_CAPACITY),
            newest_ms: AtomicI64::new(i64::MIN),
            fitter: Arc::new(Fitter::new(&config.fit, metrics.clone())),
            metrics,
            recent: None,
            imports: arc_swap::ArcSwap::from_pointee(Imports::default()),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// Records the derived values of every modeled series into `recent` (the page's).
    pub fn with_recent(mut self, recent: std::sync::Arc<crate::ui::Recent>) -> Models {
        self.recent = Some(recent);
        self
    }

    /// Takes new rules and names (config reload). Models whose rule index changed restart
    /// on their next sample; `max_series` applies from the next restart.
    pub fn reconfigure(&self, config: &ModelsConfig) {
        self.settings.store(std::sync::Arc::new(settings(config)));
    }

    /// Puts a new import in force: from the next request on, its series are modeled with
    /// its parameters, and those without a model start from its state.
    pub fn set_imports(&self, imports: Imports) {
        self.imports.store(Arc::new(imports));
    }

    /// Series the import in force lists.
    pub fn imported_series(&self) -> usize {
        self.imports.load().len()
    }

    /// The fit histories and results, for the fitting threads.
    pub fn fitter(&self) -> &Arc<Fitter> {
        &self.fitter
    }

    /// Remembers a metadata entry's type, for counter detection.
    pub fn record_metadata(&self, family: &str, kind: u64) {
        self.families.record(family, kind);
    }

    /// The key of a series for a tenant: tenants never share state.
    pub fn key(tenant: Option<&[u8]>, series_hash: u64) -> u64 {
        match tenant {
            None => series_hash,
            Some(t) => xxhash_rust::xxh3::xxh3_64_with_seed(t, series_hash),
        }
    }

    /// An empty [`Tentative`] for one request, with the buffers of an earlier one if spare
    /// (growing them anew for every request was a copy of every update made so far).
    pub fn tentative(&self) -> Tentative {
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        spare.pop().unwrap_or_default()
    }

    /// The scratch for one request's [`Models::derive`] calls.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            settings: self.settings.load_full(),
            imports: self.imports.load_full(),
            labels: Vec::new(),
            runs: Vec::new(),
            score: Vec::new(),
            forecast: Vec::new(),
            lower: Vec::new(),
            upper: Vec::new(),
        }
    }

    /// Whether any rule models series (else no series is ever modeled).
    pub fn has_rules(&self) -> bool {
        !self.settings.load().rules.is_empty()
    }

    /// Whether [`Models::derive`] models `series` under rule `rule_index`: it has float
    /// samples, the rule exists, and it is no histogram bucket unless the rule asks for them.
    pub fn models(scratch: &Scratch, rule_index: u16, series: &SeriesView<'_, '_>) -> bool {
        Models::rule_for(&scratch.settings, rule_index, series).is_some()
    }

    fn rule_for<'s>(
        settings: &'s Settings,
        rule_index: u16,
        series: &SeriesView<'_, '_>,
    ) -> Option<&'s Rule> {
        if series.samples == 0 {
            return None;
        }
        let rule = settings.rules.get(usize::from(rule_index))?;
        (!is_bucket(series.label(b"__name__").unwrap_or_default()) || rule.buckets).then_some(rule)
    }

    /// Looks up the committed models of a batch of series (index, key) ahead of their
    /// [`Models::derive`], into `out[index]`: first requesting every index bucket, then
    /// every model, then copying them, so the cache misses of the batch overlap instead of
    /// queueing one per series. Marks them used.
    pub fn stage(&self, batch: &[(u32, u64)], order: &mut ShardOrder, out: &mut [Option<Staged>]) {
        order.sort(
            batch
                .iter()
                .enumerate()
                .map(|(j, &(_, key))| (j as u32, key)),
        );
        // Three sweeps over the shards (a lock each time; a prefetch is only a hint, so
        // nothing found in one sweep is trusted in the next): request every index bucket,
        // then every model those buckets point to, then copy the models out.
        let lock = |s: usize| self.shards[s].lock().unwrap_or_else(|p| p.into_inner());
        for (shard, run) in order.runs() {
            let shard = lock(shard);
            for &i in run {
                shard.prefetch(i_key(batch, i));
            }
        }
        for (shard, run) in order.runs() {
            let shard = lock(shard);
            for &i in run {
                shard.prefetch_model(i_key(batch, i));
            }
        }
        for (shard, run) in order.runs() {
            let mut shard = lock(shard);
            for &i in run {
                let found = shard.get(i_key(batch, i));
                out[batch[i as usize].0 as usize] = Some(Staged(found));
            }
        }
    }

    /// Models one series of a request under `rule`: updates its model tentatively and
    /// appends the derived series to `out`. `staged` is its committed model if
    /// [`Models::stage`] looked it up already.
    #[allow(clippy::too_many_arguments)]
    pub fn derive<'a>(
        &self,
        key: u64,
        rule_index: u16,
        series: &SeriesView<'a, '_>,
        staged: Option<Staged>,
        out: &mut RequestWriter,
        tentative: &mut Tentative,
        scratch: &mut Scratch,
    ) {
        let settings: &Settings = &scratch.settings;
        let Some(rule) = Models::rule_for(settings, rule_index, series) else {
            return;
        };
        let import = scratch.imports.get(key);
        let slot = match tentative.index.get(key) {
            Some(&i) => i as usize,
            None => {
                let found = match staged {
                    Some(Staged(found)) => found,
                    None => self
                        .shard(key)
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(key),
                };
                let committed = found.map(|(_, e)| e);
                let entry = match committed {
                    Some(e) if e.rule == rule_index => e,
                    // No model yet (or one built under another rule): an imported series
                    // starts from the imported state, with no warm-up.
                    _ => Entry {
                        model: import.map_or_else(
                            || Model::new(self.families.kind_of(name_of(series))),
                            |i| i.model,
                        ),
                        rule: rule_index,
                    },
                };
                let base = committed.and_then(|e| e.model.last_timestamp());
                tentative.updates.push(Update {
                    key,
                    base,
                    slot: found.map(|(s, _)| s),
                    entry,
                });
                tentative
                    .index
                    .insert(key, (tentative.updates.len() - 1) as u32);
                tentative.updates.len() - 1
            }
        };
        // An imported series is modeled with the imported parameters (they win over a
        // background fit while the import lists the series); a fitted one with its fitted
        // parameters (adopted at a commit, so a retry of this request sees the same ones).
        let params = match import {
            Some(i) => Some(i.params(&rule.params)),
            None => self.fitter.params(key, &rule.params),
        };
        let params = params.as_ref().unwrap_or(&rule.params);
        let model = &mut tentative.updates[slot].entry.model;
        let (fed, fed_update) = (&mut tentative.fed, &mut tentative.fed_update);
        let (score, forecast, lower, upper) = (
            &mut scratch.score,
            &mut scratch.forecast,
            &mut scratch.lower,
            &mut scratch.upper,
        );
        score.clear();
        forecast.clear();
        lower.clear();
        upper.clear();
        for (ts, value) in series.samples() {
            let outcome = model.update(params, ts, value);
            if outcome != Outcome::Ignored {
                let score = match outcome {
                    Outcome::Scored(f) => f.score as f32,
                    _ => f32::NAN,
                };
                fed.push(Fed { ts, value, score });
                fed_update.push(slot as u32);
            }
            match outcome {
                Outcome::Scored(f) => {
                    score.push((ts, f.score));
                    forecast.push((ts, f.forecast));
                    lower.push((ts, f.lower));
                    upper.push((ts, f.upper));
                }
                Outcome::Stale => {
                    let stale = f64::from_bits(STALE_NAN_BITS);
                    for v in [&mut *score, &mut *forecast, &mut *lower, &mut *upper] {
                        v.push((ts, stale));
                    }
                }
                Outcome::Warming | Outcome::Ignored => continue,
            }
            tentative.newest_ms = tentative.newest_ms.max(ts);
        }
        if let Some(recent) = &self.recent {
            let scored = crate::ui::Scored {
                score,
                forecast,
                lower,
                upper,
            };
            recent.record(key, series, model.kind(), scored);
        }
        if score.is_empty() {
            return;
        }
        let names = &settings.names;
        let mut labels = recycle(std::mem::take(&mut scratch.labels));
        let mut runs = recycle(std::mem::take(&mut scratch.runs));
        let o = rule.outputs;
        let outputs = [
            (o.score, &names.score, &*score),
            (o.forecast, &names.forecast, &*forecast),
            (o.bounds, &names.lower, &*lower),
            (o.bounds, &names.upper, &*upper),
        ];
        for (on, name, samples) in outputs {
            if on {
                labels::derived_runs(
                    series.labels,
                    series.encoded_labels,
                    name,
                    &names.label,
                    &mut labels,
                    &mut runs,
                );
                out.push_series_runs(&runs, samples);
                tentative.derived_samples += samples.len() as u64;
            }
        }
        scratch.labels = recycle(labels);
        scratch.runs = recycle(runs);
    }

    /// Makes a request's tentative updates permanent. A model that another request
    /// committed meanwhile keeps that request's state (the later writer does not win
    /// blindly), so concurrent retries cannot double-apply samples.
    ///
    /// Updates are applied shard by shard, each shard locked once, with the slots of all of
    /// its updates requested before the first is written, so their cache misses overlap.
    pub fn commit(&self, mut tentative: Tentative) {
        let mut evicted = 0u64;
        let settings = self.settings.load();
        let imports = self.imports.load();
        let (mut applied, mut order, mut fed) = (
            std::mem::take(&mut tentative.applied),
            std::mem::take(&mut tentative.order),
            std::mem::take(&mut tentative.fed_series),
        );
        applied.resize(tentative.updates.len(), false);
        order.sort((tentative.updates.iter().enumerate()).map(|(i, u)| (i as u32, u.key)));
        for (shard, run) in order.runs() {
            let mut shard = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
            for &i in run {
                let u = &tentative.updates[i as usize];
                shard.prefetch_slot(u.key, u.slot);
            }
            for &i in run {
                let i = i as usize;
                let u = &tentative.updates[i];
                let (key, entry) = (u.key, &u.entry);
                // A background fit waits while the import lists the series (imported wins);
                // it is adopted at the first commit after the import dropped the series.
                let imported = imports.get(key).is_some();
                let adopt = |model: &mut Model| {
                    if imported {
                        return;
                    }
                    if let Some(rule) = settings.rules.get(usize::from(entry.rule)) {
                        self.fitter.adopt(key, model, &rule.params);
                    }
                };
                if let Some(s) = shard.find(key, u.slot) {
                    // `derive` already marked it used; update in place, unless another request
                    // committed this model meanwhile.
                    if shard.model(s).last_timestamp() == u.base {
                        let mut model = entry.model;
                        adopt(&mut model);
                        shard.set(s, Entry { model, ..*entry });
                        applied[i] = true;
                    }
                    continue;
                }
                let mut model = entry.model;
                adopt(&mut model);
                applied[i] = true;
                if shard.push(key, Entry { model, ..*entry }).is_some() {
                    evicted += 1;
                }
            }
        }
        // The committed samples go to the fit histories, one run of a series at a time.
        let mut start = 0;
        for run in tentative.fed_update.chunk_by(|a, b| a == b) {
            let (i, end) = (run[0] as usize, start + run.len());
            if applied[i] {
                let u = &tentative.updates[i];
                fed.push(FedSeries {
                    key: u.key,
                    kind: u.entry.model.kind(),
                    samples: start..end,
                    fit: imports.get(u.key).is_none(),
                });
            }
            start = end;
        }
        self.fitter.feed_many(&fed, &tentative.fed, &mut order);
        self.metrics.model_evictions.inc_by(evicted);
        self.metrics
            .derived_samples
            .inc_by(tentative.derived_samples);
        self.newest_ms
            .fetch_max(tentative.newest_ms, Ordering::Relaxed);
        (tentative.applied, tentative.order, tentative.fed_series) = (applied, order, fed);
        self.recycle(tentative);
    }

    /// Keeps a committed request's [`Tentative`] for a later request.
    fn recycle(&self, mut tentative: Tentative) {
        if !tentative.retainable() {
            return;
        }
        tentative.clear();
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < SPARE_TENTATIVES {
            spare.push(tentative);
        }
    }

    /// Drops models that have been stale for their grace period, by model time (the newest
    /// committed sample timestamp). Returns how many were retired.
    pub fn retire_stale(&self) -> usize {
        let now = self.newest_ms.load(Ordering::Relaxed);
        let settings = self.settings.load();
        let mut retired = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            retired += shard.retain(|e| {
                settings
                    .rules
                    .get(usize::from(e.rule))
                    .is_some_and(|r| !e.model.retire_due(&r.params, now))
            });
        }
        self.metrics.models_retired.inc_by(retired as u64);
        retired
    }

    /// Number of shards, for [`Models::entries`].
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// A copy of one shard's models as (key, rule, model), least recently used first, so
    /// that re-inserting them in this order restores the recency order. Holds the shard's
    /// lock only while copying.
    pub fn entries(&self, shard: usize) -> Vec<(u64, u16, Model)> {
        let shard = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
        shard
            .iter_oldest_first()
            .map(|(k, e)| (k, e.rule, e.model))
            .collect()
    }

    /// Inserts a restored or imported model as the most recently used.
    pub fn insert(&self, key: u64, rule: u16, model: Model) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if shard.push(key, Entry { model, rule }).is_some() {
            self.metrics.model_evictions.inc();
        }
        if let Some(ts) = model.last_timestamp() {
            self.newest_ms.fetch_max(ts, Ordering::Relaxed);
        }
    }

    /// Drops every model (a restore that failed half-way starts empty).
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Models in memory.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether no model is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: u64) -> &Mutex<Store> {
        &self.shards[shard_of(key)]
    }
}

/// The key of the `i`-th pair of a batch (`i` from a [`ShardOrder`] run).
fn i_key(batch: &[(u32, u64)], i: u32) -> u64 {
    batch[i as usize].1
}

/// A series' metric name ("" if absent or not UTF-8).
fn name_of<'a>(series: &SeriesView<'a, '_>) -> &'a str {
    series
        .label(b"__name__")
        .and_then(|n| std::str::from_utf8(n).ok())
        .unwrap_or("")
}

/// Reuses a vector's allocation for borrows of another lifetime (the in-place collect of
/// an emptied vector keeps its buffer).
fn recycle<T, U: Borrowed>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| U::EMPTY).collect()
}

/// The scratch vectors' items: borrows with an empty value.
trait Borrowed {
    const EMPTY: Self;
}

impl Borrowed for Label<'_> {
    const EMPTY: Self = Label {
        name: &[],
        value: &[],
    };
}

impl Borrowed for LabelRun<'_> {
    const EMPTY: Self = LabelRun::Encoded(&[]);
}

fn settings(config: &ModelsConfig) -> Settings {
    let rules = config
        .rules
        .iter()
        .map(|r| Rule {
            params: Params::new(&ModelSettings::from(r)),
            outputs: r.outputs,
            buckets: r.histogram_buckets,
        })
        .collect();
    let n = &config.names;
    let names = Names {
        score: n.score.clone().into_bytes(),
        forecast: n.forecast.clone().into_bytes(),
        lower: n.lower.clone().into_bytes(),
        upper: n.upper.clone().into_bytes(),
        label: n.label.clone().into_bytes(),
    };
    Settings { rules, names }
}
