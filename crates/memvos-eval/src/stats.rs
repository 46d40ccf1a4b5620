//! Per-object statistics of the DAVIS toolkit (`db_statistics`): Mean, Recall and Decay, with
//! numpy's pairwise summation so the numbers agree to the last bits.

/// numpy's `pairwise_sum` for float64 (blocks of 128, eight accumulators).
fn pairwise(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise(&a[..n2]) + pairwise(&a[n2..])
    }
}

/// `np.sum` of a 1-D float64 array: the first element, plus the pairwise sum of the rest.
pub fn numpy_sum(a: &[f64]) -> f64 {
    match a.split_first() {
        None => 0.0,
        Some((first, rest)) => first + pairwise(rest),
    }
}

/// `np.mean`: NaN for an empty slice.
pub fn mean(a: &[f64]) -> f64 {
    numpy_sum(a) / a.len() as f64
}

/// `np.nanmean`: NaN values are left out (replaced by 0 in the sum and not counted).
pub fn nanmean(a: &[f64]) -> f64 {
    let cleaned: Vec<f64> = a.iter().map(|&v| if v.is_nan() { 0.0 } else { v }).collect();
    let count = a.iter().filter(|v| !v.is_nan()).count();
    numpy_sum(&cleaned) / count as f64
}

/// The five decay bin edges of the toolkit: `round(linspace(1, n, 5) + 1e-10) − 1`, which in
/// integers is `(i·(n − 1) + 2) div 4`. Unlike the toolkit we keep them in `usize`, so
/// sequences of 256 or more scored frames get the right bins (the toolkit's `uint8` overflows).
pub fn decay_bin_ids(n: usize) -> [usize; 5] {
    let m = n.saturating_sub(1);
    [0, 1, 2, 3, 4].map(|i| (i * m + 2) / 4)
}

/// Mean, Recall and Decay of one object's per-frame values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Statistics {
    /// Mean of the values.
    pub mean: f64,
    /// Fraction of frames strictly above 0.5.
    pub recall: f64,
    /// Mean of the first quarter minus mean of the last quarter (adjacent bins share a frame).
    pub decay: f64,
}

impl Statistics {
    /// The statistics of per-frame values.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let above: Vec<f64> = values.iter().map(|&v| (v > 0.5) as u8 as f64).collect();
        let ids = decay_bin_ids(n);
        let bin = |i: usize| {
            if n == 0 {
                &values[..0]
            } else {
                &values[ids[i]..(ids[i + 1] + 1).min(n)]
            }
        };
        Statistics {
            mean: nanmean(values),
            recall: nanmean(&above),
            decay: nanmean(bin(0)) - nanmean(bin(3)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_of_the_readme() {
        assert_eq!(decay_bin_ids(1), [0, 0, 0, 0, 0]);
        assert_eq!(decay_bin_ids(2), [0, 0, 1, 1, 1]);
        assert_eq!(decay_bin_ids(256), [0, 64, 128, 191, 255]);
        assert_eq!(decay_bin_ids(300), [0, 75, 150, 224, 299]);
    }

    #[test]
    fn pairwise_is_exact_on_integers() {
        let v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        assert_eq!(numpy_sum(&v), 499500.0);
        assert_eq!(mean(&[1.0, 2.0]), 1.5);
        assert_eq!(nanmean(&[1.0, f64::NAN, 3.0]), 2.0);
    }
}
