//! The imported series (`models.import`): per-series parameter overrides and the state a
//! series starts from when omen has no model for it. Read on the write path through one
//! lock-free load per series; replaced as a whole when the import is reloaded.

use std::collections::HashMap;

use crate::idhash::BuildIdHasher;
use crate::model::{Model, Params};
use crate::persist::SeriesParams;

/// One imported series.
#[derive(Debug, Clone, Copy)]
pub struct Imported {
    /// Overrides of the rule's parameters (unset ones keep the rule's).
    pub params: SeriesParams,
    /// The state to start from when omen has no model for the series.
    pub model: Model,
}

impl Imported {
    /// The parameters to model the series with under `rule`.
    pub fn params(&self, rule: &Params) -> Params {
        self.params.apply(rule)
    }
}

/// Every imported series by model key, and how many files they came from.
#[derive(Debug, Default)]
pub struct Imports {
    map: HashMap<u64, Imported, BuildIdHasher>,
    files: usize,
}

impl Imports {
    /// A table read from `files` files.
    pub fn new(map: HashMap<u64, Imported, BuildIdHasher>, files: usize) -> Imports {
        Imports { map, files }
    }

    /// The imported series `key`, if the import lists it.
    pub fn get(&self, key: u64) -> Option<&Imported> {
        if self.map.is_empty() {
            return None;
        }
        self.map.get(&key)
    }

    /// Series imported.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is imported.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Files the import was read from.
    pub fn files(&self) -> usize {
        self.files
    }
}
