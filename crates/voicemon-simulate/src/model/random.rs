//! The model's random distributions, all drawn from its one seeded generator.

use rand::rngs::StdRng;
use rand::Rng;

/// Weights `1 / rank^exponent`: the first few take most, a long tail shares the rest.
pub(super) fn zipf_weights(count: usize, exponent: f64) -> Vec<f64> {
    (1..=count).map(|rank| 1.0 / (rank as f64).powf(exponent)).collect()
}

/// An index drawn in proportion to `weights`.
pub(super) fn pick_weighted(rng: &mut StdRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = rng.random::<f64>() * total;
    for (index, weight) in weights.iter().enumerate() {
        if target < *weight {
            return index;
        }
        target -= weight;
    }
    weights.len().saturating_sub(1)
}

/// Uniform in `[low, high)`.
pub(super) fn uniform(rng: &mut StdRng, low: f64, high: f64) -> f64 {
    low + (high - low) * rng.random::<f64>()
}

/// Box–Muller: one standard normal draw.
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Lognormal with the given median; `sigma` is the spread of its logarithm.
pub(super) fn lognormal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    median * (sigma * standard_normal(rng)).exp()
}

/// Exponential with the given mean: the gaps of a Poisson process.
pub(super) fn exponential(rng: &mut StdRng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}
