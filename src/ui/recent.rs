//! `Recent`: serve mode's bounded record of the values omen derived (value, forecast band,
//! score per scored sample), fed by one call per modeled series of a request from
//! [`crate::derive`]. Bounded by `ui.max_series` × `ui.points`; a series that is not tracked
//! costs one shard lock and one hash lookup, and allocates nothing.
//!
//! Values are recorded while the request is built, before downstream answered: a request
//! that is then retried records nothing twice (a point is only appended after the newest
//! one), and its retry derives the same values.

use crate::model::Kind;
use crate::wire::SeriesView;

use super::tracks::{Point, TrackMeta, Tracks};

/// The derived values of one series in one request, as the model produced them:
/// (timestamp, value) columns of the scored samples, in order.
pub struct Scored<'s> {
    pub score: &'s [(i64, f64)],
    pub forecast: &'s [(i64, f64)],
    pub lower: &'s [(i64, f64)],
    pub upper: &'s [(i64, f64)],
}

/// Recent derived values per series, bounded.
pub struct Recent {
    tracks: Tracks,
}

impl Recent {
    /// Room for `max_series` series of `points` points.
    pub fn new(max_series: usize, points: usize) -> Recent {
        Recent {
            tracks: Tracks::new(max_series, points),
        }
    }

    /// The tracks, for the page.
    pub fn tracks(&self) -> &Tracks {
        &self.tracks
    }

    /// Records the scored samples of `series` (model key `key`).
    #[inline]
    pub fn record(&self, key: u64, series: &SeriesView<'_, '_>, kind: Kind, scored: Scored<'_>) {
        if scored.score.is_empty() {
            return;
        }
        let peak = || {
            scored
                .score
                .iter()
                .map(|&(_, s)| s as f32)
                .filter(|s| s.is_finite())
                .fold(0.0, f32::max)
        };
        self.tracks.with(
            key,
            peak,
            || meta(series, kind),
            |track| {
                let mut j = 0;
                for (ts, raw) in series.samples() {
                    let value = track.value_of(ts, raw);
                    // Scored timestamps are a subsequence of the sample timestamps.
                    while j < scored.score.len() && scored.score[j].0 < ts {
                        j += 1;
                    }
                    if j >= scored.score.len() || scored.score[j].0 != ts {
                        continue;
                    }
                    let score = scored.score[j].1;
                    if score.is_finite() {
                        track.push(Point {
                            ts,
                            value: value as f32,
                            forecast: scored.forecast[j].1 as f32,
                            lower: scored.lower[j].1 as f32,
                            upper: scored.upper[j].1 as f32,
                            score: score as f32,
                        });
                    }
                    j += 1;
                }
            },
        );
    }
}

fn meta(series: &SeriesView<'_, '_>, kind: Kind) -> TrackMeta {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut labels: Vec<(String, String)> = series
        .labels
        .iter()
        .filter(|l| l.name != b"__name__")
        .map(|l| (text(l.name), text(l.value)))
        .collect();
    labels.sort();
    TrackMeta {
        name: series.label(b"__name__").map(text).unwrap_or_default(),
        labels,
        counter: kind == Kind::Counter,
    }
}
