//! Sampling settings: `run.c`'s (temperature, top-p, seed, normalized as its `main`
//! does) and the chip's integers for them (the GENERATE command's fields).

/// Sampling settings, already normalized as `run.c`'s `main` normalizes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Nucleus mass; values outside (0, 1) mean plain multinomial sampling.
    pub topp: f32,
    /// RNG seed (never 0 once normalized).
    pub seed: u64,
}

impl SamplingParams {
    /// Applies `run.c`'s parameter rules to command-line values: a negative
    /// temperature becomes 0, a top-p outside [0, 1] becomes 0.9, and a seed of 0
    /// becomes the current Unix time. Values are parsed as C's `atof` does (to double)
    /// and then stored in floats, as `run.c` does.
    pub fn from_cli(temperature: f64, topp: f64, seed: u64) -> Self {
        let mut temperature = temperature as f32;
        let mut topp = topp as f32;
        if (temperature as f64) < 0.0 {
            temperature = 0.0;
        }
        if (topp as f64) < 0.0 || 1.0 < topp as f64 {
            topp = 0.9;
        }
        // As in run.c, a seed of 0 means "now".
        let mut seed = seed;
        if seed == 0 {
            seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as u32 as u64)
                .unwrap_or(1);
        }
        SamplingParams {
            temperature,
            topp,
            seed,
        }
    }
}

/// Sampling settings as the chip receives them in a GENERATE command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChipSampling {
    /// `round(256 / temperature)` (Q8.8); 0 means greedy.
    pub inv_temp: u16,
    /// `round(top_p · 65536)`; 0 means no nucleus (sample from all tokens).
    pub topp: u16,
    /// Initial RNG state (the user's seed mixed by [`ChipSampling::seed_state`]); 0 is
    /// replaced by [`ChipSampling::ZERO_SEED`].
    pub seed: u64,
}

impl ChipSampling {
    /// The RNG state used for a seed of 0 (xorshift must not start at 0).
    pub const ZERO_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

    /// The RNG state for a user's seed: the splitmix64 finalizer, computed by the host
    /// so that the chip's generator needs no multiplier, and so that neighbouring seeds
    /// (1, 2, 3, …) start far apart in the xorshift sequence.
    pub fn seed_state(seed: u64) -> u64 {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Converts `run.c`-style parameters: temperature 0 is greedy, top-p outside
    /// (0, 1) disables the nucleus, the seed is mixed by [`ChipSampling::seed_state`].
    pub fn from_params(p: &SamplingParams) -> Self {
        let inv_temp = if p.temperature <= 0.0 {
            0
        } else {
            (256.0 / p.temperature as f64).round().clamp(1.0, 65535.0) as u16
        };
        let topp = if p.topp <= 0.0 || p.topp >= 1.0 {
            0
        } else {
            (p.topp as f64 * 65536.0).round().clamp(1.0, 65535.0) as u16
        };
        ChipSampling {
            inv_temp,
            topp,
            seed: Self::seed_state(p.seed),
        }
    }
}
