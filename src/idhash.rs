//! A pass-through hasher for maps whose keys are already 64-bit hashes (label-set and
//! series keys from xxh3): hashing them again, with SipHash by default, would only cost time.

use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a `u64` key to itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used with this hasher; fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The `BuildHasher` for [`IdHasher`].
pub type BuildIdHasher = BuildHasherDefault<IdHasher>;
