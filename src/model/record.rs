//! A model's online state as plain named fields, for snapshots and imports: the one place
//! that knows how [`Model`] and its seasonal profile are laid out. A child of `state`, so
//! it can see the private fields; change it whenever `Model` gains or loses a field (and
//! bump the snapshot schema version in `persist`).

use super::Model;
use crate::model::season::Profile;
use crate::model::{COARSE_BUCKETS, FINE_BUCKETS};

/// Every field of a [`Model`], bit for bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelRecord {
    pub last_ts: i64,
    pub level: f64,
    pub prev_raw: f64,
    pub trend: f32,
    pub band: f32,
    pub err_season: f32,
    pub err_plain: f32,
    pub shock: f32,
    pub step: f32,
    pub range_low: f32,
    pub range_high: f32,
    pub range_seen: u16,
    pub surprise_min: u32,
    pub repeats: u16,
    pub same: u8,
    pub seen: u32,
    pub run: i8,
    pub flags: u8,
    pub profile_unit: f32,
    pub profile_fine: [i16; FINE_BUCKETS],
    pub profile_coarse: [i16; COARSE_BUCKETS],
}

impl Model {
    /// The state as a record.
    pub fn to_record(&self) -> ModelRecord {
        ModelRecord {
            last_ts: self.last_ts,
            level: self.level,
            prev_raw: self.prev_raw,
            trend: self.trend,
            band: self.band,
            err_season: self.err_season,
            err_plain: self.err_plain,
            shock: self.shock,
            step: self.step,
            range_low: self.range_low,
            range_high: self.range_high,
            range_seen: self.range_seen,
            surprise_min: self.surprise_min,
            repeats: self.repeats,
            same: self.same,
            seen: self.seen,
            run: self.run,
            flags: self.flags,
            profile_unit: self.profile.unit,
            profile_fine: self.profile.fine,
            profile_coarse: self.profile.coarse,
        }
    }

    /// The model a record describes.
    pub fn from_record(r: &ModelRecord) -> Model {
        Model {
            last_ts: r.last_ts,
            level: r.level,
            prev_raw: r.prev_raw,
            trend: r.trend,
            band: r.band,
            err_season: r.err_season,
            err_plain: r.err_plain,
            shock: r.shock,
            step: r.step,
            range_low: r.range_low,
            range_high: r.range_high,
            range_seen: r.range_seen,
            surprise_min: r.surprise_min,
            repeats: r.repeats,
            same: r.same,
            seen: r.seen,
            run: r.run,
            flags: r.flags,
            profile: Profile {
                unit: r.profile_unit,
                fine: r.profile_fine,
                coarse: r.profile_coarse,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, ModelSettings, Params};

    #[test]
    fn record_round_trip_is_exact() {
        let params = Params::new(&ModelSettings::default());
        let mut m = Model::new(Kind::Counter);
        for i in 0..500i64 {
            let v = (i * 7) as f64 + (i as f64 / 30.0).sin() * 50.0;
            m.update(&params, 1_700_000_000_000 + i * 15_000, v);
        }
        let back = Model::from_record(&m.to_record());
        assert_eq!(back, m);
        assert_eq!(back.to_record(), m.to_record());
    }
}
