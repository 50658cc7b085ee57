//! The coarse per-series seasonal profile: 24 interpolated buckets over the fine season (a day)
//! and 7 step buckets over the coarse one (a week), stored as i16 in a per-series unit.

use super::params::Params;

/// Buckets of the fine profile (interpolated linearly between bucket centres).
pub const FINE_BUCKETS: usize = 24;
/// Buckets of the coarse profile (a step function, e.g. one per weekday).
pub const COARSE_BUCKETS: usize = 7;

/// Largest stored magnitude before the unit is doubled (leaves headroom below `i16::MAX`).
const HIGH: f64 = 30_000.0;
/// Below this largest magnitude the unit may be halved again to regain precision.
const LOW: i32 = 4_000;

/// Additive seasonal offsets, in multiples of `unit`. A zero unit means "nothing learnt yet".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub(super) unit: f32,
    pub(super) fine: [i16; FINE_BUCKETS],
    pub(super) coarse: [i16; COARSE_BUCKETS],
}

/// Where a timestamp falls in the profile: two fine buckets with weights, one coarse bucket.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    i0: usize,
    i1: usize,
    w1: f64,
    fine: bool,
    coarse: Option<usize>,
}

impl Phase {
    /// The phase of `ts_ms` under the season lengths of `p`.
    pub fn of(p: &Params, ts_ms: i64) -> Phase {
        let (mut i0, mut i1, mut w1, mut fine) = (0, 0, 0.0, false);
        if p.season_fine_ms > 0 {
            let pos = ts_ms.rem_euclid(p.season_fine_ms) as f64 / p.season_fine_ms as f64;
            let x = pos * FINE_BUCKETS as f64 - 0.5;
            let fl = x.floor();
            // Sharpness 0 interpolates linearly between bucket centres; 1 is a step at the
            // bucket boundary (hour edges, where cron-like patterns switch).
            let sharp = p.fine_sharpness.clamp(0.0, 0.999);
            w1 = ((x - fl - 0.5) / (1.0 - sharp) + 0.5).clamp(0.0, 1.0);
            i0 = (fl as i64).rem_euclid(FINE_BUCKETS as i64) as usize;
            i1 = (i0 + 1) % FINE_BUCKETS;
            fine = true;
        }
        let coarse = (p.season_coarse_ms > 0).then(|| {
            let pos = ts_ms.rem_euclid(p.season_coarse_ms) as f64 / p.season_coarse_ms as f64;
            ((pos * COARSE_BUCKETS as f64) as usize).min(COARSE_BUCKETS - 1)
        });
        Phase {
            i0,
            i1,
            w1,
            fine,
            coarse,
        }
    }
}

impl Profile {
    /// An empty profile (all offsets zero).
    pub const EMPTY: Profile = Profile {
        unit: 0.0,
        fine: [0; FINE_BUCKETS],
        coarse: [0; COARSE_BUCKETS],
    };

    /// The seasonal offset at `ph`.
    #[inline]
    pub fn value(&self, ph: &Phase) -> f64 {
        let unit = self.unit as f64;
        let mut v = 0.0;
        if ph.fine {
            v += (1.0 - ph.w1) * self.fine[ph.i0] as f64 + ph.w1 * self.fine[ph.i1] as f64;
        }
        if let Some(c) = ph.coarse {
            v += self.coarse[c] as f64;
        }
        v * unit
    }

    /// Moves the offsets at `ph` by `fine_delta` (spread over the two fine buckets by their
    /// weights) and `coarse_delta`. `unit_hint` sets the unit the first time (a fraction of the
    /// series' error scale, so increments are representable).
    #[inline]
    pub fn add(&mut self, ph: &Phase, fine_delta: f64, coarse_delta: f64, unit_hint: f64) {
        if self.unit == 0.0 {
            if !(unit_hint > 0.0) {
                return;
            }
            self.unit = unit_hint as f32;
        }
        let unit = self.unit as f64;
        let mut targets = [(0usize, 0.0f64, false); 3];
        if ph.fine {
            targets[0] = (
                ph.i0,
                self.fine[ph.i0] as f64 + (1.0 - ph.w1) * fine_delta / unit,
                true,
            );
            targets[1] = (
                ph.i1,
                self.fine[ph.i1] as f64 + ph.w1 * fine_delta / unit,
                true,
            );
        }
        if let Some(c) = ph.coarse {
            targets[2] = (c, self.coarse[c] as f64 + coarse_delta / unit, true);
        }
        if targets.iter().any(|t| t.2 && t.1.abs() > HIGH) {
            self.coarsen();
            return self.add(ph, fine_delta, coarse_delta, unit_hint);
        }
        if ph.fine {
            self.fine[targets[0].0] = targets[0].1.round() as i16;
            self.fine[targets[1].0] = targets[1].1.round() as i16;
        }
        if ph.coarse.is_some() {
            self.coarse[targets[2].0] = targets[2].1.round() as i16;
        }
    }

    /// Regains precision when the unit has become coarse next to the error scale: halves the
    /// unit if every offset still fits. O(31); the model calls it now and then, not per sample.
    pub fn refine(&mut self, unit_hint: f64) {
        while self.unit as f64 > 4.0 * unit_hint && unit_hint > 0.0 && self.max_abs() < LOW {
            self.unit *= 0.5;
            self.fine.iter_mut().for_each(|b| *b *= 2);
            self.coarse.iter_mut().for_each(|b| *b *= 2);
        }
    }

    fn coarsen(&mut self) {
        self.unit *= 2.0;
        self.fine.iter_mut().for_each(|b| *b /= 2);
        self.coarse.iter_mut().for_each(|b| *b /= 2);
    }

    fn max_abs(&self) -> i32 {
        self.fine
            .iter()
            .chain(self.coarse.iter())
            .map(|b| (*b as i32).abs())
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_between_bucket_centres() {
        let p = Params::default();
        let mut prof = Profile::EMPTY;
        let hour = 3_600_000;
        // Bucket 2 is centred at 02:30; put +10 there.
        prof.add(&Phase::of(&p, 2 * hour + hour / 2), 10.0, 0.0, 0.01);
        let at = |ts| {
            prof.value(&Phase::of(&p, ts))
                - prof.coarse[Phase::of(&p, ts).coarse.unwrap()] as f64 * 0.01
        };
        assert!((at(2 * hour + hour / 2) - 10.0).abs() < 0.01);
        assert!((at(3 * hour) - 5.0).abs() < 0.01);
        assert!(at(4 * hour).abs() < 0.01);
    }

    #[test]
    fn keeps_large_offsets_by_coarsening_the_unit() {
        let p = Params::default();
        let mut prof = Profile::EMPTY;
        let ph = Phase::of(&p, 1_000);
        for _ in 0..100 {
            prof.add(&ph, 0.0, 1.0e6, 1.0);
        }
        let coarse_only = prof.value(&ph) - prof.fine[ph.i0] as f64 * prof.unit as f64;
        assert!((coarse_only - 1.0e8).abs() / 1.0e8 < 1e-3, "{coarse_only}");
        let coarse_unit = prof.unit;
        prof.add(&ph, 0.0, -1.0e8, 1.0);
        assert!(prof.value(&ph).abs() < 1.0e8 * 1e-3, "{prof:?}");
        prof.refine(1.0);
        assert!(prof.unit < coarse_unit / 64.0, "{prof:?}");
    }
}
