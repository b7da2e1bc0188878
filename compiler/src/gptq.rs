//! Error-compensating rounding of weights (GPTQ-style).
//!
//! Rounding every weight to its nearest code independently minimises the error of the
//! weights, not of what the layer computes. With the second moments `H = E[x xᵀ]` of a
//! matrix's input, measured on calibration text, the error of the outputs is
//! `Σ_rows δᵀ H δ` for a row error `δ`. Quantizing the columns one at a time and
//! spreading each column's rounding error over the columns not yet quantized, weighted
//! by the Cholesky factor of `H⁻¹`, minimises that error greedily (Frantar et al.,
//! "GPTQ", 2022). The codes this produces are still ordinary codes of the same format:
//! only which code each weight gets changes, so the chip and the golden model are
//! unaffected.

/// The second moments `Σ x xᵀ` of one matrix input over calibration text.
#[derive(Clone, Debug, PartialEq)]
pub struct Gram {
    /// Input length.
    pub n: usize,
    /// `n × n`, row-major.
    pub sum: Vec<f64>,
    /// Vectors added.
    pub count: u64,
}

impl Gram {
    /// An empty sum for inputs of length `n`.
    pub fn new(n: usize) -> Self {
        Gram {
            n,
            sum: vec![0.0; n * n],
            count: 0,
        }
    }

    /// Adds one input vector.
    pub fn add(&mut self, x: &[f32]) {
        for (i, &a) in x.iter().enumerate().take(self.n) {
            let a = a as f64;
            let row = &mut self.sum[i * self.n..(i + 1) * self.n];
            for (s, &b) in row.iter_mut().zip(x) {
                *s += a * b as f64;
            }
        }
        self.count += 1;
    }

    /// Adds another sum over inputs of the same length.
    pub fn merge(&mut self, other: &Gram) {
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a += b;
        }
        self.count += other.count;
    }
}

/// The second moments of every matrix input of a model, per layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    /// RMSNorm output feeding `wq`, `wk`, `wv`.
    pub xn_att: Vec<Gram>,
    /// Attention output feeding `wo`.
    pub att_out: Vec<Gram>,
    /// RMSNorm output feeding `w1`, `w3`.
    pub xn_ffn: Vec<Gram>,
    /// `silu(h1) · h3` feeding `w2`.
    pub hb: Vec<Gram>,
    /// Final RMSNorm output feeding the classifier.
    pub xn_final: Gram,
}

impl Moments {
    /// Empty sums for a model of `layers` layers.
    pub fn new(layers: usize, dim: usize, hidden: usize) -> Self {
        Moments {
            xn_att: vec![Gram::new(dim); layers],
            att_out: vec![Gram::new(dim); layers],
            xn_ffn: vec![Gram::new(dim); layers],
            hb: vec![Gram::new(hidden); layers],
            xn_final: Gram::new(dim),
        }
    }

    /// Adds the sums of another run.
    pub fn merge(&mut self, other: &Moments) {
        let pairs = self
            .xn_att
            .iter_mut()
            .zip(&other.xn_att)
            .chain(self.att_out.iter_mut().zip(&other.att_out))
            .chain(self.xn_ffn.iter_mut().zip(&other.xn_ffn))
            .chain(self.hb.iter_mut().zip(&other.hb));
        for (a, b) in pairs {
            a.merge(b);
        }
        self.xn_final.merge(&other.xn_final);
    }
}

/// Relative dampening added to the diagonal of `H` (a fraction of its mean), which
/// keeps the inverse well conditioned when calibration text leaves directions unseen.
const DAMPENING: f64 = 0.01;

/// The upper Cholesky factor `U` of `H⁻¹` (`H⁻¹ = Uᵀ U`), `n × n` row-major, with
/// `H = gram / count` dampened; `None` when `H` is not positive definite even then.
pub fn inverse_factor(gram: &Gram) -> Option<Vec<f64>> {
    let n = gram.n;
    let count = gram.count.max(1) as f64;
    let mut h: Vec<f64> = gram.sum.iter().map(|v| v / count).collect();
    let mean_diag = (0..n).map(|i| h[i * n + i]).sum::<f64>() / n.max(1) as f64;
    let damp = DAMPENING * mean_diag.max(1e-12);
    for i in 0..n {
        if h[i * n + i] <= 0.0 {
            // An input that is always zero: any weight is as good as another.
            h[i * n + i] = 1.0;
        }
        h[i * n + i] += damp;
    }
    let l = cholesky_lower(&h, n)?;
    // H⁻¹ = L⁻ᵀ L⁻¹; its upper factor is the Cholesky factor of H⁻¹ itself.
    let linv = lower_inverse(&l, n);
    let mut hinv = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            hinv[i * n + j] = (i.max(j)..n)
                .map(|k| linv[k * n + i] * linv[k * n + j])
                .sum();
        }
    }
    let lh = cholesky_lower(&hinv, n)?;
    let mut u = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            u[i * n + j] = lh[j * n + i];
        }
    }
    Some(u)
}

fn cholesky_lower(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Some(l)
}

fn lower_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0 / l[i * n + i];
        for j in 0..i {
            let s: f64 = (j..i).map(|k| l[i * n + k] * inv[k * n + j]).sum();
            inv[i * n + j] = -s / l[i * n + i];
        }
    }
    inv
}

/// Rounds one row left to right through `round(j, w)`, which returns the dequantized
/// value chosen for `w[j]` (and sees the row as updated so far, where a group's scale
/// is chosen), feeding each rounding error forward to the columns after it through
/// the factor `u` of [`inverse_factor`].
pub fn round_row(row: &[f64], u: &[f64], mut round: impl FnMut(usize, &[f64]) -> f64) {
    let n = row.len();
    let mut w = row.to_vec();
    for j in 0..n {
        let q = round(j, &w);
        let err = (w[j] - q) / u[j * n + j];
        for k in j + 1..n {
            w[k] -= err * u[j * n + k];
        }
    }
}
