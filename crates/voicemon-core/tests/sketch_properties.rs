//! Properties of the latency sketch: the 1 % error bound on realistic latency
//! distributions, exact merging, and a decoder that never panics.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use voicemon_core::sketch::{DecodeError, LatencySketch, MIN_INDEXABLE_MS, RELATIVE_ACCURACY};

const QUANTILES: [f64; 3] = [0.50, 0.95, 0.99];

/// Slack for floating point at bucket boundaries; the bound itself is RELATIVE_ACCURACY.
const FLOAT_SLACK: f64 = 1e-9;

// ---------------------------------------------------------------------------------------
// Sample generators (seeded, no extra crates).

#[derive(Debug, Clone, Copy)]
enum Distribution {
    /// Latency-like: median ~600 ms, σ = 0.5 in log space.
    LogNormal,
    /// 70 % fast turns around 300 ms, 30 % slow ones (tool calls) around 2500 ms.
    Bimodal,
    /// Pareto with x_min = 200 ms and shape 1.5: a heavy tail.
    HeavyTail,
    /// Uniform between 20 ms and 3000 ms.
    Uniform,
}

/// A standard normal deviate by Box-Muller.
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1], so ln is finite
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn log_normal(rng: &mut StdRng, median_ms: f64, sigma: f64) -> f64 {
    (median_ms.ln() + sigma * standard_normal(rng)).exp()
}

fn sample(distribution: Distribution, rng: &mut StdRng) -> f64 {
    match distribution {
        Distribution::LogNormal => log_normal(rng, 600.0, 0.5),
        Distribution::Bimodal => {
            if rng.random::<f64>() < 0.7 {
                log_normal(rng, 300.0, 0.3)
            } else {
                log_normal(rng, 2500.0, 0.4)
            }
        }
        Distribution::HeavyTail => {
            let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
            200.0 / u.powf(1.0 / 1.5)
        }
        Distribution::Uniform => rng.random_range(20.0..3000.0),
    }
}

fn samples(distribution: Distribution, seed: u64, n: usize) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| sample(distribution, &mut rng)).collect()
}

fn sketch_of(values: &[f64]) -> LatencySketch {
    let mut sketch = LatencySketch::new();
    for &value in values {
        sketch.add(value);
    }
    sketch
}

/// The exact value the sketch promises to approximate: rank floor(q × (n − 1)).
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
    sorted[rank]
}

fn assert_quantiles_within_relative_accuracy(
    distribution: Distribution,
    values: &[f64],
) -> Result<(), TestCaseError> {
    let sketch = sketch_of(values);
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    for q in QUANTILES {
        let exact = exact_quantile(&sorted, q);
        let estimate = sketch.quantile(q).expect("a sketch with values answers every quantile");
        let relative_error = (estimate - exact).abs() / exact;
        prop_assert!(
            relative_error <= RELATIVE_ACCURACY + FLOAT_SLACK,
            "{distribution:?} n={} q={q}: estimate {estimate} vs exact {exact} (relative error {relative_error})",
            values.len()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Error bound.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn lognormal_latency_quantiles_are_within_one_percent(seed in any::<u64>(), n in 1usize..5000) {
        let values = samples(Distribution::LogNormal, seed, n);
        assert_quantiles_within_relative_accuracy(Distribution::LogNormal, &values)?;
    }

    #[test]
    fn bimodal_latency_quantiles_are_within_one_percent(seed in any::<u64>(), n in 1usize..5000) {
        let values = samples(Distribution::Bimodal, seed, n);
        assert_quantiles_within_relative_accuracy(Distribution::Bimodal, &values)?;
    }

    #[test]
    fn heavy_tailed_latency_quantiles_are_within_one_percent(seed in any::<u64>(), n in 1usize..5000) {
        let values = samples(Distribution::HeavyTail, seed, n);
        assert_quantiles_within_relative_accuracy(Distribution::HeavyTail, &values)?;
    }

    #[test]
    fn uniform_latency_quantiles_are_within_one_percent(seed in any::<u64>(), n in 1usize..5000) {
        let values = samples(Distribution::Uniform, seed, n);
        assert_quantiles_within_relative_accuracy(Distribution::Uniform, &values)?;
    }

    #[test]
    fn every_quantile_of_arbitrary_latencies_is_within_one_percent(
        values in prop::collection::vec(MIN_INDEXABLE_MS..600_000.0f64, 1..500),
        q in 0.0f64..=1.0,
    ) {
        let sketch = sketch_of(&values);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let exact = exact_quantile(&sorted, q);
        let estimate = sketch.quantile(q).unwrap();
        prop_assert!((estimate - exact).abs() <= exact * (RELATIVE_ACCURACY + FLOAT_SLACK),
            "q={q}: estimate {estimate} vs exact {exact}");
    }

    #[test]
    fn the_count_is_the_number_of_values_added(values in latencies(0..300)) {
        let sketch = sketch_of(&values);
        prop_assert_eq!(sketch.count(), values.len() as u64);
        let in_buckets: u64 = sketch.buckets().map(|(_, times)| times).sum();
        prop_assert_eq!(sketch.zero_count() + in_buckets, values.len() as u64);
    }
}

/// The same seeds every run, so a regression in the bound shows without proptest luck.
#[test]
fn quantiles_of_ten_thousand_turns_of_each_distribution_are_within_one_percent() {
    for distribution in
        [Distribution::LogNormal, Distribution::Bimodal, Distribution::HeavyTail, Distribution::Uniform]
    {
        let values = samples(distribution, 20261127, 10_000);
        assert_quantiles_within_relative_accuracy(distribution, &values).unwrap();
    }
}

#[test]
fn lognormal_samples_have_a_median_near_600_ms() {
    // Guards the generator itself: a broken Box-Muller would make the bound tests vacuous.
    let mut values = samples(Distribution::LogNormal, 7, 20_000);
    values.sort_by(f64::total_cmp);
    let median = exact_quantile(&values, 0.5);
    assert!((570.0..630.0).contains(&median), "median {median}");
}

#[test]
fn bimodal_samples_have_both_modes() {
    let values = samples(Distribution::Bimodal, 7, 20_000);
    let fast = values.iter().filter(|&&v| v < 600.0).count();
    let slow = values.iter().filter(|&&v| v > 1500.0).count();
    assert!((13_000..15_000).contains(&fast), "fast {fast}");
    assert!((5_000..7_000).contains(&slow), "slow {slow}");
}

// ---------------------------------------------------------------------------------------
// Empty sketches and zeros.

#[test]
fn an_empty_sketch_has_no_quantile() {
    let sketch = LatencySketch::new();
    assert!(sketch.is_empty());
    assert_eq!(sketch.count(), 0);
    for q in [0.0, 0.5, 0.99, 1.0] {
        assert_eq!(sketch.quantile(q), None, "q={q}");
    }
}

#[test]
fn zero_latencies_are_answered_as_zero() {
    let sketch = sketch_of(&[0.0, 0.0, 0.0]);
    assert_eq!(sketch.count(), 3);
    assert_eq!(sketch.zero_count(), 3);
    for q in [0.0, 0.5, 1.0] {
        assert_eq!(sketch.quantile(q), Some(0.0), "q={q}");
    }
}

#[test]
fn values_below_the_indexable_minimum_count_as_zero() {
    let sketch = sketch_of(&[MIN_INDEXABLE_MS / 2.0, 0.0]);
    assert_eq!(sketch.zero_count(), 2);
    assert_eq!(sketch.quantile(1.0), Some(0.0));
}

#[test]
fn zeros_below_the_median_leave_the_upper_quantiles_to_the_buckets() {
    let sketch = sketch_of(&[0.0, 0.0, 500.0, 500.0, 500.0]);
    assert_eq!(sketch.quantile(0.0), Some(0.0));
    let p50 = sketch.quantile(0.5).unwrap();
    assert!((p50 - 500.0).abs() <= 500.0 * RELATIVE_ACCURACY, "p50 {p50}");
}

#[test]
fn negative_and_non_finite_values_count_in_the_zero_bucket_instead_of_panicking() {
    let sketch = sketch_of(&[-5.0, f64::NAN, f64::INFINITY]);
    assert_eq!(sketch.count(), 3);
    assert_eq!(sketch.zero_count(), 3);
    assert_eq!(sketch.quantile(0.5), Some(0.0));
}

#[test]
fn a_single_value_answers_every_quantile_within_one_percent() {
    let sketch = sketch_of(&[812.5]);
    for q in [0.0, 0.5, 0.99, 1.0] {
        let estimate = sketch.quantile(q).unwrap();
        assert!((estimate - 812.5).abs() <= 812.5 * RELATIVE_ACCURACY, "q={q}: {estimate}");
    }
}

// ---------------------------------------------------------------------------------------
// Merging.

/// Latencies as workers report them: mostly positive, some exact zeros, some sub-minimum.
fn latency() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 0.05f64..20_000.0,
        1 => Just(0.0),
        1 => 0.0f64..MIN_INDEXABLE_MS,
    ]
}

fn latencies(size: std::ops::Range<usize>) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(latency(), size)
}

fn merged(left: &LatencySketch, right: &LatencySketch) -> LatencySketch {
    let mut out = left.clone();
    out.merge(right);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merge_is_commutative(a in latencies(0..200), b in latencies(0..200)) {
        let (a, b) = (sketch_of(&a), sketch_of(&b));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in latencies(0..200), b in latencies(0..200), c in latencies(0..200)) {
        let (a, b, c) = (sketch_of(&a), sketch_of(&b), sketch_of(&c));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    #[test]
    fn merging_an_empty_sketch_changes_nothing(values in latencies(0..200)) {
        let sketch = sketch_of(&values);
        prop_assert_eq!(merged(&sketch, &LatencySketch::new()), sketch.clone());
        prop_assert_eq!(merged(&LatencySketch::new(), &sketch), sketch);
    }

    #[test]
    fn merging_minute_sketches_gives_the_sketch_of_all_values(
        values_and_minutes in prop::collection::vec((latency(), 0usize..10), 0..1000),
        merge_order_seed in any::<u64>(),
    ) {
        let mut minutes = vec![LatencySketch::new(); 10];
        for &(value, minute) in &values_and_minutes {
            minutes[minute].add(value);
        }
        // Merge the minutes in a random order: the result must not depend on it.
        let mut rng = StdRng::seed_from_u64(merge_order_seed);
        let mut order: Vec<usize> = (0..minutes.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut total = LatencySketch::new();
        for minute in order {
            total.merge(&minutes[minute]);
        }
        let all: Vec<f64> = values_and_minutes.iter().map(|&(value, _)| value).collect();
        prop_assert_eq!(total, sketch_of(&all));
    }

    #[test]
    fn merged_sketches_answer_quantiles_within_one_percent_of_all_values(
        seed in any::<u64>(),
        n in 1usize..3000,
        groups in 1usize..20,
    ) {
        let values = samples(Distribution::Bimodal, seed, n);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let mut parts = vec![LatencySketch::new(); groups];
        for &value in &values {
            parts[rng.random_range(0..groups)].add(value);
        }
        let mut total = LatencySketch::new();
        for part in &parts {
            total.merge(part);
        }
        prop_assert_eq!(total.count(), n as u64);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in QUANTILES {
            let exact = exact_quantile(&sorted, q);
            let estimate = total.quantile(q).unwrap();
            prop_assert!((estimate - exact).abs() <= exact * (RELATIVE_ACCURACY + FLOAT_SLACK),
                "q={q}: estimate {estimate} vs exact {exact}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Encoding.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decoding_an_encoding_gives_an_equal_sketch(values in latencies(0..500)) {
        let sketch = sketch_of(&values);
        prop_assert_eq!(LatencySketch::decode(&sketch.encode()), Ok(sketch));
    }

    #[test]
    fn decoding_a_merged_sketch_gives_an_equal_sketch(a in latencies(0..200), b in latencies(0..200)) {
        let sketch = merged(&sketch_of(&a), &sketch_of(&b));
        prop_assert_eq!(LatencySketch::decode(&sketch.encode()), Ok(sketch));
    }

    #[test]
    fn every_truncation_of_an_encoding_is_refused(values in latencies(1..100)) {
        let bytes = sketch_of(&values).encode();
        for cut in 0..bytes.len() {
            prop_assert!(LatencySketch::decode(&bytes[..cut]).is_err(), "cut at {cut} of {}", bytes.len());
        }
    }

    #[test]
    fn an_encoding_with_bytes_appended_is_refused(values in latencies(0..100), extra in prop::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = sketch_of(&values).encode();
        bytes.extend(extra);
        prop_assert!(LatencySketch::decode(&bytes).is_err());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = LatencySketch::decode(&bytes);
    }

    #[test]
    fn decoding_arbitrary_bytes_after_a_valid_version_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut input = vec![1u8];
        input.extend(bytes);
        let _ = LatencySketch::decode(&input);
    }

    #[test]
    fn decoding_varint_shaped_garbage_never_panics(
        // Long runs of continuation bytes reach the large values that overflow counters.
        varints in prop::collection::vec(prop_oneof![Just(0xffu8), Just(0x80u8), Just(0x01u8), any::<u8>()], 0..64),
    ) {
        let mut input = vec![1u8];
        input.extend(varints);
        let _ = LatencySketch::decode(&input);
    }
}

fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

fn zigzag(delta: i64) -> u64 {
    ((delta << 1) ^ (delta >> 63)) as u64
}

/// An encoding assembled by hand: version, zero count, then (index delta, count) pairs.
fn encoding(zero_count: u64, buckets: &[(i64, u64)]) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend(varint(zero_count));
    out.extend(varint(buckets.len() as u64));
    for &(delta, times) in buckets {
        out.extend(varint(zigzag(delta)));
        out.extend(varint(times));
    }
    out
}

#[test]
fn a_hand_assembled_encoding_decodes_to_the_sketch_it_describes() {
    let mut expected = LatencySketch::new();
    expected.add(0.0);
    expected.add(600.0);
    expected.add(600.0);
    let index = voicemon_core::sketch::bucket_index(600.0) as i64;
    assert_eq!(LatencySketch::decode(&encoding(1, &[(index, 2)])), Ok(expected.clone()));
    assert_eq!(expected.encode(), encoding(1, &[(index, 2)]));
}

#[test]
fn an_empty_sketch_round_trips() {
    let empty = LatencySketch::new();
    assert_eq!(LatencySketch::decode(&empty.encode()), Ok(empty));
}

#[test]
fn decoding_nothing_is_truncated() {
    assert_eq!(LatencySketch::decode(&[]), Err(DecodeError::Truncated));
}

#[test]
fn decoding_an_unknown_version_is_refused_naming_it() {
    assert_eq!(LatencySketch::decode(&[2, 0, 0]), Err(DecodeError::UnknownVersion(2)));
    assert_eq!(LatencySketch::decode(&[0]), Err(DecodeError::UnknownVersion(0)));
}

#[test]
fn decoding_a_varint_longer_than_64_bits_is_corrupt() {
    let mut bytes = vec![1u8];
    bytes.extend([0xff; 10]);
    bytes.push(0x01);
    assert!(matches!(LatencySketch::decode(&bytes), Err(DecodeError::Corrupt(_))));
}

#[test]
fn decoding_a_bucket_index_far_out_of_range_is_corrupt() {
    assert!(matches!(LatencySketch::decode(&encoding(0, &[(30_000, 1)])), Err(DecodeError::Corrupt(_))));
    assert!(matches!(LatencySketch::decode(&encoding(0, &[(-30_000, 1)])), Err(DecodeError::Corrupt(_))));
}

#[test]
fn decoding_trailing_bytes_is_corrupt() {
    let mut bytes = encoding(0, &[(500, 3)]);
    bytes.push(0);
    assert!(matches!(LatencySketch::decode(&bytes), Err(DecodeError::Corrupt(_))));
}

/// Decodes, turning a panic into `Err(panic message)` so a failure says what happened.
fn decode_catching_panics(bytes: &[u8]) -> Result<Result<LatencySketch, DecodeError>, String> {
    std::panic::catch_unwind(|| LatencySketch::decode(bytes)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!("decode panicked: {message}")
    })
}

#[test]
fn decoding_counts_whose_total_overflows_is_refused_without_panicking() {
    // A zero count of u64::MAX plus one value in a bucket: the total does not fit in u64.
    let outcome = decode_catching_panics(&encoding(u64::MAX, &[(0, 1)]));
    assert!(matches!(outcome, Ok(Err(DecodeError::Corrupt(_)))), "expected Err(Corrupt), got {outcome:?}");
}

#[test]
fn decoding_the_same_bucket_twice_with_overflowing_counts_is_refused_without_panicking() {
    let half = u64::MAX / 2 + 1;
    let outcome = decode_catching_panics(&encoding(0, &[(100, half), (0, half)]));
    assert!(matches!(outcome, Ok(Err(DecodeError::Corrupt(_)))), "expected Err(Corrupt), got {outcome:?}");
}

#[test]
fn decoding_an_index_delta_that_overflows_is_refused_without_panicking() {
    // 20 000 is in range; adding i64::MAX to it overflows before the range check.
    let outcome = decode_catching_panics(&encoding(0, &[(20_000, 1), (i64::MAX, 1)]));
    assert!(matches!(outcome, Ok(Err(DecodeError::Corrupt(_)))), "expected Err(Corrupt), got {outcome:?}");
}

/// Fuzzing (`fuzz/fuzz_targets/latency_sketch.rs`) found this stored sketch, whose count is
/// near `u64::MAX`: merged with itself, the counts overflowed (a panic with overflow
/// checks, a wrapped count without). They saturate now.
#[test]
fn merging_sketches_whose_counts_near_u64_max_saturates_instead_of_overflowing() {
    let crash = [0x01, 0xba, 0xba, 0xba, 0xff, 0xff, 0xe5, 0xe5, 0xff, 0xb5, 0x01, 0x00];
    let sketch = LatencySketch::decode(&crash).expect("a sketch whose counts are near u64::MAX");
    let mut merged = sketch.clone();
    merged.merge(&sketch);
    assert_eq!(merged.count(), u64::MAX);
    assert!(merged.quantile(0.5).is_some());
}
