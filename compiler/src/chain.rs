//! The dependency limit: how many cycles one token needs when every independent
//! operation runs at once and only the chain of dependent work remains.
//!
//! Each step of the forward pass waits for the one before it: the norm needs the whole
//! residual stream, the matrices need the norm, the scores need the rotated queries
//! and keys, the softmax needs every score, and so on to the classifier's argmax. A
//! chip with unbounded lanes would still take the depth of that chain. Counted here at
//! one level per cycle: a multiply, an adder-tree level, a requantization, a table
//! lookup (rsqrt, exp, reciprocal, sigmoid) or an add each take one cycle; a
//! reduction over `n` values takes `ceil(log2 n)` levels. `etch sim --profile` prints
//! it beside the measured cycles, so the distance to the limit stays visible
//! (`docs/PERFORMANCE.md`).

use crate::Config;

/// `ceil(log2 n)`: the levels of a binary reduction tree over `n` values.
fn levels(n: usize) -> u64 {
    n.max(1).next_power_of_two().trailing_zeros() as u64
}

/// The steps of one token's chain, in order, with their depth in cycles, for a token
/// at `position` (attending to `position + 1` keys).
pub fn dependency_chain(config: &Config, position: usize) -> Vec<(&'static str, u64)> {
    let dim = levels(config.dim);
    let keys = levels(position + 1);
    // Multiply, reduce, requantize.
    let matvec = |inputs: u64| 1 + inputs + 1;
    // Square, reduce, rsqrt, scale, requantize.
    let norm = 1 + dim + 1 + 1 + 1;
    let mut chain = vec![("embedding", 1)];
    for _ in 0..config.n_layers {
        chain.extend([
            ("rmsnorm", norm),
            ("q, k, v", matvec(dim)),
            // Multiply, add the rotated pair, requantize.
            ("rope", 3),
            ("scores", matvec(levels(config.head_size()))),
            ("max", keys),
            // Subtract the max, exp.
            ("exp", 2),
            ("sum", keys),
            ("reciprocal", 1),
            // Weigh the values, reduce over the keys, normalize, requantize.
            ("weighted sum", 1 + keys + 1 + 1),
            ("wo", matvec(dim)),
            ("residual add", 1),
            ("rmsnorm", norm),
            ("w1, w3", matvec(dim)),
            // Sigmoid, two multiplies, requantize.
            ("swiglu", 4),
            ("w2", matvec(levels(config.hidden_dim))),
            ("residual add", 1),
        ]);
    }
    chain.extend([
        ("rmsnorm", norm),
        ("classifier", matvec(dim)),
        ("argmax", levels(config.vocab_size)),
    ]);
    chain
}

/// The chain's length in cycles for a token at `position`.
pub fn dependency_cycles(config: &Config, position: usize) -> u64 {
    dependency_chain(config, position).iter().map(|s| s.1).sum()
}

/// The chain's mean length over the forward passes at `positions` (a story's).
pub fn mean_dependency_cycles(config: &Config, positions: std::ops::Range<usize>) -> f64 {
    let n = positions.len().max(1) as f64;
    positions.map(|p| dependency_cycles(config, p)).sum::<u64>() as f64 / n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stories260k() -> Config {
        crate::synthetic::STORIES260K
    }

    #[test]
    fn reductions_take_log2_levels() {
        assert_eq!(levels(1), 0);
        assert_eq!(levels(2), 1);
        assert_eq!(levels(64), 6);
        assert_eq!(levels(65), 7);
        assert_eq!(levels(172), 8);
    }

    #[test]
    fn stories260k_chain_is_about_five_hundred_cycles() {
        let c = stories260k();
        // Per layer 74 + 3·ceil(log2 keys); embedding, final norm, classifier, argmax 28.
        assert_eq!(dependency_cycles(&c, 0), 5 * 74 + 28);
        assert_eq!(dependency_cycles(&c, 127), 5 * (74 + 3 * 7) + 28);
        assert_eq!(dependency_cycles(&c, 511), 5 * (74 + 3 * 9) + 28);
        // Longer contexts only add the attention's reductions.
        assert!(dependency_cycles(&c, 300) > dependency_cycles(&c, 100));
        let mean = mean_dependency_cycles(&c, 0..239);
        assert!((398.0..533.0).contains(&mean), "{mean}");
    }
}
