//! Mergeable latency sketches: DDSketch-style logarithmic buckets with 1 % relative error.
//!
//! A value `v` (milliseconds) falls in bucket `i = ceil(ln(v) / ln(γ))` with
//! `γ = (1 + α) / (1 − α)`, `α = 0.01`; bucket `i` answers `2γ^i / (γ + 1)`, which is
//! within `α` of every value in `(γ^(i−1), γ^i]`. Values below [`MIN_INDEXABLE_MS`]
//! count in a zero bucket. Counts are integers, so merging is exactly associative and
//! commutative, and merging minute sketches gives bit-for-bit the sketch of all values.
//!
//! We keep our own implementation rather than a crate because the bucket mapping is part
//! of the storage contract: the compact encoding ([`LatencySketch::encode`]) is what the
//! stores persist, and the PostgreSQL backend's SQL merges the same buckets for Grafana.

use thiserror::Error;

/// Relative accuracy α of every quantile answered from a sketch.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Values below this (ms) fall in the zero bucket and are answered as 0.
pub const MIN_INDEXABLE_MS: f64 = 0.01;
/// The estimator named in API answers.
pub const ESTIMATOR: &str = "ddsketch";
const ENCODING_VERSION: u8 = 1;
/// Bucket indexes are clamped to ±this (γ^20000 ≈ e^400: far beyond any latency).
const MAX_INDEX: i32 = 20_000;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// The bucket index of a value ≥ [`MIN_INDEXABLE_MS`].
pub fn bucket_index(value_ms: f64) -> i32 {
    (value_ms.ln() / gamma().ln()).ceil() as i32
}

/// The value a bucket answers with.
pub fn bucket_value(index: i32) -> f64 {
    let gamma = gamma();
    2.0 * gamma.powi(index) / (gamma + 1.0)
}

/// A sketch of non-negative values (milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencySketch {
    zero_count: u64,
    /// The non-empty buckets as `(index, count)`, ascending by index. Sparse: a minute's
    /// sketch of a series holds a handful of values spread over the hundred or so buckets
    /// between its fastest and slowest, and ingest keeps tens of thousands of such sketches
    /// pending; a dense array over that span was mostly zeros (BENCHMARKS.md).
    buckets: Vec<(i32, u64)>,
    count: u64,
}

/// Below this many buckets, a merge adds the other sketch's buckets one by one (a search
/// each); from it on, it merges the two ascending lists in one pass into a new one.
const MERGE_BY_SEARCH: usize = 8;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("sketch encoding is truncated")]
    Truncated,
    #[error("sketch encoding version {0} is not known")]
    UnknownVersion(u8),
    #[error("sketch encoding is corrupt: {0}")]
    Corrupt(&'static str),
}

impl LatencySketch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds one value. Negative and non-finite values are a caller bug (validation
    /// refuses them) and are counted in the zero bucket rather than panicking.
    pub fn add(&mut self, value_ms: f64) {
        self.add_many(value_ms, 1);
    }

    fn add_many(&mut self, value_ms: f64, times: u64) {
        if times == 0 {
            return;
        }
        self.count = self.count.saturating_add(times);
        if value_ms.is_nan() || value_ms < MIN_INDEXABLE_MS || value_ms.is_infinite() {
            self.zero_count = self.zero_count.saturating_add(times);
            return;
        }
        let index = bucket_index(value_ms);
        self.add_to_bucket(index, times);
    }

    /// Adds `times` (> 0) to bucket `index` (clamped like added values).
    fn add_to_bucket(&mut self, index: i32, times: u64) {
        let slot = self.bucket_slot(index);
        *slot = slot.saturating_add(times);
    }

    /// The count of bucket `index` (clamped), made (at 0) when it is not there yet; the
    /// caller adds to it at once, so no bucket stays at 0.
    fn bucket_slot(&mut self, index: i32) -> &mut u64 {
        let index = index.clamp(-MAX_INDEX, MAX_INDEX);
        let position = match self.buckets.last() {
            // Values of one series often come in rising runs: appending needs no search.
            None => 0,
            Some(&(last, _)) if last < index => self.buckets.len(),
            _ => match self.buckets.binary_search_by_key(&index, |&(i, _)| i) {
                Ok(found) => return &mut self.buckets[found].1,
                Err(position) => position,
            },
        };
        self.buckets.insert(position, (index, 0));
        &mut self.buckets[position].1
    }

    /// A sketch from its zero-bucket count and `(index, count)` buckets in any order (as
    /// a store keeps them); indexes are clamped like added values.
    pub fn from_buckets(zero_count: u64, buckets: impl IntoIterator<Item = (i32, u64)>) -> LatencySketch {
        let mut sketch = LatencySketch { zero_count, count: zero_count, ..LatencySketch::default() };
        for (index, times) in buckets {
            if times > 0 {
                sketch.count = sketch.count.saturating_add(times);
                sketch.add_to_bucket(index, times);
            }
        }
        sketch
    }

    /// Adds every value of `other` to `self`. Counts saturate at `u64::MAX` rather than
    /// overflow: no real traffic gets there, but a stored sketch read back can say anything.
    pub fn merge(&mut self, other: &LatencySketch) {
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        self.count = self.count.saturating_add(other.zero_count);
        for &(_, times) in &other.buckets {
            self.count = self.count.saturating_add(times);
        }
        if self.buckets.is_empty() {
            self.buckets.clone_from(&other.buckets);
        } else if other.buckets.len() < MERGE_BY_SEARCH {
            for &(index, times) in &other.buckets {
                self.add_to_bucket(index, times);
            }
        } else {
            self.buckets = merge_ascending(&self.buckets, &other.buckets);
        }
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) within [`RELATIVE_ACCURACY`] of the exact value at
    /// rank `floor(q × (count − 1))`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * (self.count - 1) as f64;
        let mut seen = self.zero_count;
        if seen as f64 > rank {
            return Some(0.0);
        }
        for &(index, times) in &self.buckets {
            seen += times;
            if seen as f64 > rank {
                return Some(bucket_value(index));
            }
        }
        self.buckets.last().map(|&(index, _)| bucket_value(index))
    }

    /// Non-empty buckets as `(index, count)`, ascending; the zero bucket is separate.
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.buckets.iter().copied()
    }

    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }

    /// Compact encoding: version byte, zero count, bucket count, then per non-empty
    /// bucket the index delta (zig-zag) and the count, all LEB128 varints.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.buckets.len() * 3);
        out.push(ENCODING_VERSION);
        put_varint(&mut out, self.zero_count);
        put_varint(&mut out, self.buckets.len() as u64);
        let mut previous = 0i64;
        for (index, times) in self.buckets() {
            let delta = index as i64 - previous;
            put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
            put_varint(&mut out, times);
            previous = index as i64;
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<LatencySketch, DecodeError> {
        let (&version, mut rest) = bytes.split_first().ok_or(DecodeError::Truncated)?;
        if version != ENCODING_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let mut sketch = LatencySketch::new();
        let zero = take_varint(&mut rest)?;
        sketch.zero_count = zero;
        sketch.count = zero;
        let buckets = take_varint(&mut rest)?;
        let mut index = 0i64;
        for _ in 0..buckets {
            let zigzag = take_varint(&mut rest)?;
            let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
            index = index.checked_add(delta).ok_or(DecodeError::Corrupt("index out of range"))?;
            let times = take_varint(&mut rest)?;
            if !(-(MAX_INDEX as i64)..=MAX_INDEX as i64).contains(&index) {
                return Err(DecodeError::Corrupt("index out of range"));
            }
            sketch.count = sketch.count.checked_add(times).ok_or(DecodeError::Corrupt("count overflows"))?;
            if times > 0 {
                let slot = sketch.bucket_slot(index as i32);
                *slot = slot.checked_add(times).ok_or(DecodeError::Corrupt("count overflows"))?;
            }
        }
        if !rest.is_empty() {
            return Err(DecodeError::Corrupt("trailing bytes"));
        }
        Ok(sketch)
    }
}

/// Two ascending bucket lists as one, the counts of a bucket in both added (saturating).
fn merge_ascending(a: &[(i32, u64)], b: &[(i32, u64)]) -> Vec<(i32, u64)> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(&&(i, x)), Some(&&(j, y))) if i == j => {
                a.next();
                b.next();
                (i, x.saturating_add(y))
            }
            (Some(&&(i, _)), Some(&&(j, _))) if j < i => *b.next().expect("peeked"),
            (Some(_), _) => *a.next().expect("peeked"),
            (None, Some(_)) => *b.next().expect("peeked"),
            (None, None) => return merged,
        };
        merged.push(next);
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(DecodeError::Truncated)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::Corrupt("varint longer than 64 bits"))
}
