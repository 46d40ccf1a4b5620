//! Thin-plate-spline warps (methods.md §4.2), solved here rather than through a package.
//!
//! A TPS maps the plane onto itself so that control points `p_i` land exactly on targets
//! `q_i` while bending as little as possible:
//! `f(x) = a_0 + a_x·x + a_y·y + Σ_i w_i U(‖x − p_i‖)` with `U(r) = r² ln r`, where the
//! weights and the affine part solve `[K P; Pᵀ 0] [w; a] = [q; 0]` (one system per output
//! coordinate, `K_ij = U(‖p_i − p_j‖)`, `P_i = (1, x_i, y_i)`). Affine targets give `w = 0`,
//! so the map is exactly that affine map; targets equal to the points give the identity.

use ndarray::{Array2, Array3, ArrayView3};
use rand::Rng;

use super::geometry::{Interp, remap};
use super::normal;
use crate::error::{DataError, Result};

/// A fitted thin-plate spline from the plane to the plane.
#[derive(Clone, Debug)]
pub struct ThinPlateSpline {
    points: Vec<[f64; 2]>,
    /// Per control point, the weights of the two output coordinates.
    weights: Vec<[f64; 2]>,
    /// Affine part: rows (1, x, y), columns (out x, out y).
    affine: [[f64; 2]; 3],
}

fn kernel(r2: f64) -> f64 {
    // U(r) = r² ln r = ½ r² ln r², with U(0) = 0.
    if r2 <= 0.0 { 0.0 } else { 0.5 * r2 * r2.ln() }
}

impl ThinPlateSpline {
    /// Fits the spline with `f(points[i]) = targets[i]`. Needs at least 3 points that are not
    /// all on one line; duplicate points are an error.
    pub fn fit(points: &[[f64; 2]], targets: &[[f64; 2]]) -> Result<Self> {
        let n = points.len();
        if n < 3 || targets.len() != n {
            return Err(DataError::InvalidArgument(format!(
                "a thin-plate spline needs >= 3 points and as many targets (got {n} and {})",
                targets.len()
            )));
        }
        let m = n + 3;
        let mut a = Array2::<f64>::zeros((m, m));
        let mut b = Array2::<f64>::zeros((m, 2));
        for i in 0..n {
            for j in 0..n {
                let dx = points[i][0] - points[j][0];
                let dy = points[i][1] - points[j][1];
                a[[i, j]] = kernel(dx * dx + dy * dy);
            }
            let p = [1.0, points[i][0], points[i][1]];
            for k in 0..3 {
                a[[i, n + k]] = p[k];
                a[[n + k, i]] = p[k];
            }
            b[[i, 0]] = targets[i][0];
            b[[i, 1]] = targets[i][1];
        }
        let x = solve(a, b).ok_or_else(|| {
            DataError::InvalidArgument(
                "thin-plate spline control points are degenerate (duplicates or collinear)".into(),
            )
        })?;
        Ok(ThinPlateSpline {
            points: points.to_vec(),
            weights: (0..n).map(|i| [x[[i, 0]], x[[i, 1]]]).collect(),
            affine: [0, 1, 2].map(|k| [x[[n + k, 0]], x[[n + k, 1]]]),
        })
    }

    /// Evaluates the spline at `p`.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        let mut out = [0.0; 2];
        for c in 0..2 {
            out[c] = self.affine[0][c] + self.affine[1][c] * p[0] + self.affine[2][c] * p[1];
        }
        for (q, w) in self.points.iter().zip(&self.weights) {
            let (dx, dy) = (p[0] - q[0], p[1] - q[1]);
            let u = kernel(dx * dx + dy * dy);
            out[0] += w[0] * u;
            out[1] += w[1] * u;
        }
        out
    }

    /// The non-affine weights (all zero for an affine fit).
    pub fn bending_weights(&self) -> &[[f64; 2]] {
        &self.weights
    }
}

/// Gaussian elimination with partial pivoting; `None` for a singular system.
fn solve(mut a: Array2<f64>, mut b: Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1.0);
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[[i, col]].abs().total_cmp(&a[[j, col]].abs()))?;
        if a[[piv, col]].abs() < 1e-12 * scale {
            return None;
        }
        if piv != col {
            for k in 0..n {
                a.swap([piv, k], [col, k]);
            }
            for k in 0..b.ncols() {
                b.swap([piv, k], [col, k]);
            }
        }
        for row in col + 1..n {
            let f = a[[row, col]] / a[[col, col]];
            if f != 0.0 {
                for k in col..n {
                    a[[row, k]] -= f * a[[col, k]];
                }
                for k in 0..b.ncols() {
                    b[[row, k]] -= f * b[[col, k]];
                }
            }
        }
    }
    let mut x = Array2::<f64>::zeros(b.dim());
    for k in 0..b.ncols() {
        for row in (0..n).rev() {
            let s: f64 = (row + 1..n).map(|j| a[[row, j]] * x[[j, k]]).sum();
            x[[row, k]] = (b[[row, k]] - s) / a[[row, row]];
        }
    }
    Some(x)
}

/// Random control points and jittered targets as the reference draws them: `n` rows and `n`
/// columns chosen without replacement, normalised by the size; targets = points + N(0, σ).
/// Coordinates are `(x / w, y / h)`.
pub fn random_control_points<R: Rng>(
    rng: &mut R,
    height: usize,
    width: usize,
    n: usize,
    sigma: f64,
) -> Result<(Vec<[f64; 2]>, Vec<[f64; 2]>)> {
    if n > height || n > width {
        return Err(DataError::InvalidArgument(format!(
            "{n} control points need an image of at least {n}x{n}, got {height}x{width}"
        )));
    }
    let ys = rand::seq::index::sample(rng, height, n);
    let xs = rand::seq::index::sample(rng, width, n);
    let points: Vec<[f64; 2]> = xs
        .iter()
        .zip(ys.iter())
        .map(|(x, y)| [x as f64 / width as f64, y as f64 / height as f64])
        .collect();
    let targets = points
        .iter()
        .map(|p| [p[0] + sigma * normal(rng), p[1] + sigma * normal(rng)])
        .collect();
    Ok((points, targets))
}

/// Warps an `H × W × C` image so that the content at `points` moves to `targets` (normalised
/// coordinates): each output pixel samples the source at `f(output)`, with `f` the spline from
/// the targets back to the points.
pub fn tps_warp(
    img: ArrayView3<f32>,
    points: &[[f64; 2]],
    targets: &[[f64; 2]],
    interp: Interp,
    fill: &[f32],
) -> Result<Array3<f32>> {
    let (h, w, _) = img.dim();
    let back = ThinPlateSpline::fit(targets, points)?;
    Ok(remap(img, h, w, interp, fill, |x, y| {
        let s = back.apply([x as f64 / w as f64, y as f64 / h as f64]);
        ((s[0] * w as f64) as f32, (s[1] * h as f64) as f32)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn grid_points() -> Vec<[f64; 2]> {
        vec![[0.1, 0.2], [0.8, 0.15], [0.5, 0.5], [0.2, 0.9], [0.9, 0.85], [0.35, 0.6], [0.7, 0.3]]
    }

    #[test]
    fn zero_jitter_is_identity() {
        let p = grid_points();
        let tps = ThinPlateSpline::fit(&p, &p).unwrap();
        for q in [[0.0, 0.0], [0.33, 0.77], [1.0, 1.0], [0.5, 0.1]] {
            let r = tps.apply(q);
            assert!((r[0] - q[0]).abs() < 1e-9 && (r[1] - q[1]).abs() < 1e-9);
        }
        // And a warp with zero jitter leaves the image untouched.
        let img = Array3::from_shape_fn((16, 20, 1), |(y, x, _)| (y * 20 + x) as f32);
        let out = tps_warp(img.view(), &p, &p, Interp::Nearest, &[0.0]).unwrap();
        assert_eq!(out, img);
    }

    #[test]
    fn control_points_map_onto_targets() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (p, t) = random_control_points(&mut rng, 384, 384, 12, 0.02).unwrap();
        let tps = ThinPlateSpline::fit(&p, &t).unwrap();
        for (a, b) in p.iter().zip(&t) {
            let r = tps.apply(*a);
            assert!((r[0] - b[0]).abs() < 1e-9 && (r[1] - b[1]).abs() < 1e-9, "{r:?} vs {b:?}");
        }
        assert!(tps.bending_weights().iter().any(|w| w[0].abs() > 1e-6));
    }

    #[test]
    fn affine_targets_give_that_affine_map() {
        let affine = |q: [f64; 2]| [0.9 * q[0] - 0.2 * q[1] + 0.05, 0.1 * q[0] + 1.1 * q[1] - 0.03];
        let p = grid_points();
        let t: Vec<_> = p.iter().map(|&q| affine(q)).collect();
        let tps = ThinPlateSpline::fit(&p, &t).unwrap();
        for w in tps.bending_weights() {
            assert!(w[0].abs() < 1e-9 && w[1].abs() < 1e-9);
        }
        for q in [[0.0, 0.0], [2.0, -1.0], [0.42, 0.13]] {
            let (r, e) = (tps.apply(q), affine(q));
            assert!((r[0] - e[0]).abs() < 1e-9 && (r[1] - e[1]).abs() < 1e-9);
        }
    }

    #[test]
    fn degenerate_points_are_an_error() {
        let line = vec![[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]];
        assert!(ThinPlateSpline::fit(&line, &line).is_err());
        let dup = vec![[0.1, 0.2], [0.1, 0.2], [0.5, 0.9], [0.7, 0.1]];
        assert!(ThinPlateSpline::fit(&dup, &dup).is_err());
        assert!(ThinPlateSpline::fit(&line[..2], &line[..2]).is_err());
    }
}
