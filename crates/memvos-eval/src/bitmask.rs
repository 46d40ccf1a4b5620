//! Bit-packed binary masks: the data structure behind fast J and F.
//!
//! A mask is stored as rows of 64-bit words (bit `x % 64` of word `x / 64` is column `x`), so
//! intersections, unions, boundary maps and dilations are word operations and popcounts.

use ndarray::ArrayView2;

/// A binary `H × W` mask, one bit per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitMask {
    height: usize,
    width: usize,
    words_per_row: usize,
    words: Vec<u64>,
}

impl BitMask {
    /// An all-false mask.
    pub fn zeros(height: usize, width: usize) -> Self {
        let words_per_row = width.div_ceil(64);
        BitMask {
            height,
            width,
            words_per_row,
            words: vec![0; height * words_per_row],
        }
    }

    /// A mask with `f(y, x)` at each pixel.
    pub fn from_fn(height: usize, width: usize, f: impl Fn(usize, usize) -> bool) -> Self {
        let mut m = BitMask::zeros(height, width);
        for y in 0..height {
            for x in 0..width {
                if f(y, x) {
                    m.set(y, x);
                }
            }
        }
        m
    }

    /// One mask per object id `1..=num_objects`, built in one pass over the label map.
    /// Labels outside that range (background, void, unknown ids) belong to no mask.
    pub fn split_labels(labels: ArrayView2<u8>, num_objects: u8) -> Vec<BitMask> {
        let (h, w) = labels.dim();
        let n = num_objects as usize;
        let mut masks = vec![BitMask::zeros(h, w); n];
        if n == 0 {
            return masks;
        }
        let wpr = w.div_ceil(64);
        let mut row_buf = vec![0u8; wpr * 64];
        for (y, row) in labels.rows().into_iter().enumerate() {
            // Copy into a zero-padded buffer (0 never matches an object id).
            match row.as_slice() {
                Some(s) => row_buf[..w].copy_from_slice(s),
                None => row_buf.iter_mut().zip(row.iter()).for_each(|(d, &s)| *d = s),
            }
            for (c, chunk) in row_buf.chunks_exact(64).enumerate() {
                let lanes: [u64; 8] = std::array::from_fn(|g| u64::from_le_bytes(chunk[8 * g..8 * g + 8].try_into().unwrap_or([0; 8])));
                if lanes.iter().all(|&l| l == 0) {
                    continue;
                }
                for (k, mask) in masks.iter_mut().enumerate() {
                    let pattern = 0x0101_0101_0101_0101u64 * (k as u64 + 1);
                    let mut word = 0u64;
                    for (g, &lane) in lanes.iter().enumerate() {
                        word |= byte_eq_bits(lane, pattern) << (8 * g);
                    }
                    mask.words[y * wpr + c] = word;
                }
            }
        }
        masks
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The bit at row `y`, column `x`.
    pub fn get(&self, y: usize, x: usize) -> bool {
        (self.words[y * self.words_per_row + x / 64] >> (x % 64)) & 1 == 1
    }

    /// Sets the bit at row `y`, column `x`.
    pub fn set(&mut self, y: usize, x: usize) {
        self.words[y * self.words_per_row + x / 64] |= 1 << (x % 64);
    }

    fn row(&self, y: usize) -> &[u64] {
        &self.words[y * self.words_per_row..(y + 1) * self.words_per_row]
    }

    /// Number of set pixels.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// `(|self ∩ other|, |self ∪ other|)`.
    pub fn intersection_union(&self, other: &BitMask) -> (u64, u64) {
        self.words.iter().zip(&other.words).fold((0, 0), |(i, u), (a, b)| {
            (i + (a & b).count_ones() as u64, u + (a | b).count_ones() as u64)
        })
    }

    /// The boundary map of the DAVIS toolkit's `_seg2bmap`: `(m ⊕ e) | (m ⊕ s) | (m ⊕ se)` with
    /// `e`, `s`, `se` the mask read one pixel east, south and south-east (0 past the image); the
    /// last row is `m ⊕ e` only, the last column `m ⊕ s` only, the bottom-right pixel 0.
    pub fn boundary(&self) -> BitMask {
        let (h, w, n) = (self.height, self.width, self.words_per_row);
        let mut out = BitMask::zeros(h, w);
        if h == 0 || w == 0 {
            return out;
        }
        let last_word = (w - 1) / 64;
        let last_bit = 1u64 << ((w - 1) % 64);
        let mut east = vec![0u64; n];
        let mut east_below = vec![0u64; n];
        shift_east(self.row(0), &mut east);
        for y in 0..h {
            let m = self.row(y);
            let o = &mut out.words[y * n..(y + 1) * n];
            if y + 1 < h {
                let s = self.row(y + 1);
                shift_east(s, &mut east_below);
                for i in 0..n {
                    o[i] = (m[i] ^ east[i]) | (m[i] ^ s[i]) | (m[i] ^ east_below[i]);
                }
                // Last column: m ⊕ s only.
                o[last_word] = (o[last_word] & !last_bit) | ((m[last_word] ^ s[last_word]) & last_bit);
                std::mem::swap(&mut east, &mut east_below);
            } else {
                for i in 0..n {
                    o[i] = m[i] ^ east[i];
                }
                o[last_word] &= !last_bit;
            }
        }
        out
    }

    /// `|other ∩ dilate(self, r)|`: how many pixels of `other` lie within the disk
    /// `{dy² + dx² ≤ r²}` of some pixel of `self` (pixels outside the image contribute nothing,
    /// as with OpenCV's `dilate`).
    pub fn dilated_overlap(&self, other: &BitMask, radius: usize) -> u64 {
        let (h, n) = (self.height, self.words_per_row);
        if h == 0 || n == 0 {
            return 0;
        }
        let r = radius as isize;
        // Half-widths of the disk's rows, dy = 0..=r.
        let half: Vec<usize> = (0..=radius).map(|dy| isqrt(radius * radius - dy * dy)).collect();
        let kmax = half[0];
        let stride = (kmax + 1) * n;
        // Horizontal dilations by 0..=kmax of the non-empty rows of `self` that some non-empty
        // row of `other` can reach, packed into one buffer.
        let row_set = |m: &BitMask| -> Vec<bool> { (0..h).map(|y| m.row(y).iter().any(|&w| w != 0)).collect() };
        let (src_rows, dst_rows) = (row_set(self), row_set(other));
        let mut slot = vec![usize::MAX; h];
        let mut used = 0;
        for y in 0..h {
            let y0 = (y as isize - r).max(0) as usize;
            let y1 = ((y as isize + r) as usize).min(h - 1);
            if src_rows[y] && dst_rows[y0..=y1].contains(&true) {
                slot[y] = used;
                used += 1;
            }
        }
        let mut hd = vec![0u64; used * stride];
        for y in 0..h {
            if slot[y] != usize::MAX {
                horizontal_dilations(self.row(y), kmax, &mut hd[slot[y] * stride..(slot[y] + 1) * stride]);
            }
        }
        let mut acc = vec![0u64; n];
        let mut total = 0u64;
        for y in (0..h).filter(|&y| dst_rows[y]) {
            acc.fill(0);
            let y0 = (y as isize - r).max(0) as usize;
            let y1 = ((y as isize + r) as usize).min(h - 1);
            for yy in y0..=y1 {
                if slot[yy] == usize::MAX {
                    continue;
                }
                let k = half[(yy as isize - y as isize).unsigned_abs()];
                let base = slot[yy] * stride + k * n;
                for (a, s) in acc.iter_mut().zip(&hd[base..base + n]) {
                    *a |= s;
                }
            }
            total += acc.iter().zip(other.row(y)).map(|(a, t)| (a & t).count_ones() as u64).sum::<u64>();
        }
        total
    }
}

/// Bit `j` is set iff byte `j` of `lane` equals byte `j` of `pattern` (SWAR: eight pixels
/// compared with a handful of integer operations).
#[inline]
fn byte_eq_bits(lane: u64, pattern: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let x = lane ^ pattern; // zero bytes where equal
    let zero_high = !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7); // high bit set iff the byte is 0
    // Gather the high bits (bits 8j + 7) into bits 0..8: bit 8j times 2^(56 - 7j) lands on 56 + j,
    // every cross term falls below bit 56 or past bit 63, on distinct positions (no carries).
    (zero_high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Reads the row one pixel to the east: `out[x] = row[x + 1]`.
fn shift_east(row: &[u64], out: &mut [u64]) {
    let n = row.len();
    for i in 0..n {
        let next = if i + 1 < n { row[i + 1] << 63 } else { 0 };
        out[i] = (row[i] >> 1) | next;
    }
}

/// Writes the horizontal dilations of one row by `0..=kmax` columns into `out`
/// (`(kmax + 1) · row.len()` words): `out_k[x] = OR of row[x − k ..= x + k]`.
fn horizontal_dilations(row: &[u64], kmax: usize, out: &mut [u64]) {
    let n = row.len();
    out[..n].copy_from_slice(row);
    for k in 1..=kmax {
        let (prev, cur) = out.split_at_mut(k * n);
        let prev = &prev[(k - 1) * n..];
        let cur = &mut cur[..n];
        // One more column each way: OR the previous dilation with itself shifted by one.
        for i in 0..n {
            let p = prev[i];
            let from_lower = (p << 1) | if i > 0 { prev[i - 1] >> 63 } else { 0 };
            let from_higher = (p >> 1) | if i + 1 < n { prev[i + 1] << 63 } else { 0 };
            cur[i] = p | from_lower | from_higher;
        }
    }
}

fn isqrt(v: usize) -> usize {
    let mut r = (v as f64).sqrt() as usize;
    while r * r > v {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= v {
        r += 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive_dilated_overlap(a: &BitMask, b: &BitMask, r: usize) -> u64 {
        let (h, w) = (a.height(), a.width());
        let r2 = (r * r) as isize;
        let mut n = 0;
        for y in 0..h {
            for x in 0..w {
                if !b.get(y, x) {
                    continue;
                }
                let hit = (-(r as isize)..=r as isize).any(|dy| {
                    (-(r as isize)..=r as isize).any(|dx| {
                        let (yy, xx) = (y as isize + dy, x as isize + dx);
                        dy * dy + dx * dx <= r2 && yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w && a.get(yy as usize, xx as usize)
                    })
                });
                n += hit as u64;
            }
        }
        n
    }

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn dilation_matches_a_naive_disk_on_random_masks() {
        let mut seed = 42;
        for (h, w) in [(7, 9), (33, 130), (20, 64), (5, 200)] {
            for r in [0, 1, 2, 3, 8] {
                let a = BitMask::from_fn(h, w, |_, _| false);
                let mut a = a;
                let mut b = BitMask::zeros(h, w);
                for y in 0..h {
                    for x in 0..w {
                        if lcg(&mut seed) % 17 == 0 {
                            a.set(y, x);
                        }
                        if lcg(&mut seed) % 5 == 0 {
                            b.set(y, x);
                        }
                    }
                }
                assert_eq!(a.dilated_overlap(&b, r), naive_dilated_overlap(&a, &b, r), "{h}x{w} r={r}");
            }
        }
    }

    #[test]
    fn split_labels_matches_per_pixel_comparison() {
        let labels = Array2::from_shape_fn((13, 150), |(y, x)| ((x * 7 + y * 3) % 5) as u8);
        let masks = BitMask::split_labels(labels.view(), 3);
        for (k, m) in masks.iter().enumerate() {
            for y in 0..13 {
                for x in 0..150 {
                    assert_eq!(m.get(y, x), labels[[y, x]] == (k + 1) as u8);
                }
            }
        }
        // Non-contiguous views work too.
        let t = labels.t();
        let masks_t = BitMask::split_labels(t, 2);
        assert_eq!(masks_t[1].get(149, 12), t[[149, 12]] == 2);
    }

    #[test]
    fn boundary_of_full_and_single_pixel_masks() {
        let full = BitMask::from_fn(4, 5, |_, _| true);
        assert_eq!(full.boundary().count(), 0, "the image border is never a boundary");
        let dot = BitMask::from_fn(7, 9, |y, x| (y, x) == (3, 4));
        let b = dot.boundary();
        let set: Vec<_> = (0..7).flat_map(|y| (0..9).map(move |x| (y, x))).filter(|&(y, x)| b.get(y, x)).collect();
        assert_eq!(set, vec![(2, 3), (2, 4), (3, 3), (3, 4)]);
    }
}
