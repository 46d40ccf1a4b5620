//! Per-frame region similarity J and boundary F-measure, exactly as the DAVIS-2017 toolkit
//! (`davis2017/metrics.py`, `bound_th = 0.008`) computes them, on bit-packed masks.

use ndarray::ArrayView2;

use crate::bitmask::BitMask;
use crate::error::{EvalError, Result};

/// The toolkit's default boundary tolerance, a fraction of the image diagonal.
pub const BOUND_TH: f64 = 0.008;

/// The largest boundary radius accepted, in pixels (a radius past the image's diagonal means
/// the same as the diagonal).
pub const MAX_BOUND_RADIUS: f64 = 10_000.0;

/// Checks a `bound_th` option before any image is read: a fraction of the diagonal in (0, 1), or
/// a whole number of pixels up to [`MAX_BOUND_RADIUS`].
pub fn check_bound_th(bound_th: f64) -> Result<()> {
    if !(bound_th > 0.0) || !bound_th.is_finite() {
        return Err(EvalError::InvalidOption(format!("bound_th must be positive, got {bound_th}")));
    }
    if bound_th >= 1.0 && (bound_th.fract() != 0.0 || bound_th > MAX_BOUND_RADIUS) {
        return Err(EvalError::InvalidOption(format!(
            "bound_th {bound_th}: a radius in pixels must be a whole number up to {MAX_BOUND_RADIUS} (or give a fraction of the diagonal below 1)"
        )));
    }
    Ok(())
}

/// Radius of the boundary tolerance disk: `⌈bound_th · √(H² + W²)⌉` for `bound_th < 1`, and
/// `bound_th` itself (which must then be a whole number) otherwise; never more than the
/// diagonal (a larger disk covers the same pixels).
pub fn boundary_radius(height: usize, width: usize, bound_th: f64) -> Result<usize> {
    check_bound_th(bound_th)?;
    let diag = ((height * height + width * width) as f64).sqrt();
    let cap = (diag.ceil() as usize).max(1);
    if bound_th >= 1.0 {
        return Ok((bound_th as usize).min(cap));
    }
    Ok(((bound_th * diag).ceil() as usize).min(cap))
}

/// Region similarity: `|G ∩ P| / |G ∪ P|`, and 1 when both are empty.
pub fn jaccard(gt: &BitMask, pred: &BitMask) -> f64 {
    let (inter, union) = gt.intersection_union(pred);
    if union == 0 { 1.0 } else { inter as f64 / union as f64 }
}

/// Boundary F-measure with the toolkit's special cases: no predicted boundary but some in the
/// ground truth gives P = 1, R = 0; the reverse P = 0, R = 1; neither P = R = 1;
/// `F = 2PR / (P + R)`, or 0 when `P + R = 0`.
pub fn f_measure(gt: &BitMask, pred: &BitMask, radius: usize) -> f64 {
    let bg = gt.boundary();
    let bp = pred.boundary();
    let n_gt = bg.count();
    let n_fg = bp.count();
    let (precision, recall) = match (n_fg, n_gt) {
        (0, 0) => (1.0, 1.0),
        (0, _) => (1.0, 0.0),
        (_, 0) => (0.0, 1.0),
        _ => {
            let fg_match = bg.dilated_overlap(&bp, radius);
            let gt_match = bp.dilated_overlap(&bg, radius);
            (fg_match as f64 / n_fg as f64, gt_match as f64 / n_gt as f64)
        }
    };
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// J and F of objects `1..=num_objects` on one frame; `gt` must already have void turned into
/// background. Returns one `(J, F)` per object.
pub fn frame_scores(gt: ArrayView2<u8>, pred: ArrayView2<u8>, num_objects: u8, radius: usize) -> Vec<(f64, f64)> {
    let g = BitMask::split_labels(gt, num_objects);
    let p = BitMask::split_labels(pred, num_objects);
    g.iter()
        .zip(&p)
        .map(|(g, p)| (jaccard(g, p), f_measure(g, p, radius)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radii_of_the_readme() {
        for ((h, w), r) in [((480, 854), 8), ((120, 200), 2), ((97, 131), 2), ((61, 97), 1), ((33, 47), 1), ((720, 1280), 12), ((240, 427), 4), ((64, 64), 1)] {
            assert_eq!(boundary_radius(h, w, BOUND_TH).unwrap(), r, "{h}x{w}");
        }
        assert_eq!(boundary_radius(10, 10, 3.0).unwrap(), 3);
        assert!(boundary_radius(10, 10, 2.5).is_err());
        assert!(boundary_radius(10, 10, 0.0).is_err());
    }

    #[test]
    fn full_frame_gt_with_empty_prediction() {
        let full = BitMask::from_fn(33, 47, |_, _| true);
        let empty = BitMask::zeros(33, 47);
        assert_eq!(jaccard(&full, &empty), 0.0);
        assert_eq!(f_measure(&full, &empty, 1), 1.0);
        assert_eq!(jaccard(&empty, &empty), 1.0);
        assert_eq!(f_measure(&empty, &empty, 1), 1.0);
    }
}
