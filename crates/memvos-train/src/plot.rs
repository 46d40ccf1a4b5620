//! The loss curve as a PNG beside the checkpoints: the per-iteration loss (light) and its
//! running mean (dark) against the iteration, with the axes' ranges written on the image.

use std::path::Path;

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};

use crate::trainer::IterationStats;

const W: u32 = 800;
const H: u32 = 450;
const LEFT: u32 = 70;
const BOTTOM: u32 = 40;
const TOP: u32 = 30;
const RIGHT: u32 = 20;

fn text(img: &mut RgbImage, x: u32, y: u32, s: &str, colour: Rgb<u8>) {
    for (i, ch) in s.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(ch) else { continue };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let (px, py) = (x + i as u32 * 8 + col, y + row as u32);
                    if px < W && py < H {
                        img.put_pixel(px, py, colour);
                    }
                }
            }
        }
    }
}

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), colour: Rgb<u8>) {
    // At most a few points per pixel of the image, however far (or non-finite) the ends are:
    // a history with absurd iterations draws a clipped line instead of looping for ever.
    if !(x0.is_finite() && y0.is_finite() && x1.is_finite() && y1.is_finite()) {
        return;
    }
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil().min(4.0 * (W + H) as f64) as usize).max(1);
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
        if x >= 0.0 && y >= 0.0 && (x as u32) < W && (y as u32) < H {
            img.put_pixel(x as u32, y as u32, colour);
        }
    }
}

/// Writes the curve of `history` to `path` (atomically).
pub fn write_loss_curve(path: &Path, history: &[IterationStats]) -> Result<(), String> {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let axis = Rgb([60, 60, 60]);
    let (x0, x1, y0, y1) = (LEFT as f64, (W - RIGHT) as f64, (H - BOTTOM) as f64, TOP as f64);
    line(&mut img, (x0, y0), (x1, y0), axis);
    line(&mut img, (x0, y0), (x0, y1), axis);
    text(&mut img, LEFT, 8, "training loss (light: per iteration, dark: mean of 50)", axis);
    if !history.is_empty() {
        let first = history[0].iteration as f64;
        let last = history[history.len() - 1].iteration.max(history[0].iteration.saturating_add(1)) as f64;
        let finite: Vec<f64> = history.iter().map(|s| s.loss).filter(|l| l.is_finite()).collect();
        let max = finite.iter().cloned().fold(f64::MIN, f64::max).max(1e-9);
        let px = |it: f64| x0 + (it - first) / (last - first) * (x1 - x0);
        let py = |l: f64| y0 - (l / max).clamp(0.0, 1.0) * (y0 - y1);
        let raw: Vec<(f64, f64)> = history.iter().filter(|s| s.loss.is_finite()).map(|s| (px(s.iteration as f64), py(s.loss))).collect();
        for w in raw.windows(2) {
            line(&mut img, w[0], w[1], Rgb([170, 200, 235]));
        }
        let mut mean = Vec::with_capacity(history.len());
        let mut sum = 0.0;
        for (i, s) in history.iter().enumerate() {
            sum += s.loss;
            if i >= 50 {
                sum -= history[i - 50].loss;
            }
            mean.push((px(s.iteration as f64), py(sum / (i + 1).min(50) as f64)));
        }
        for w in mean.windows(2) {
            line(&mut img, w[0], w[1], Rgb([20, 60, 160]));
        }
        text(&mut img, 4, TOP, &format!("{max:.3}"), axis);
        text(&mut img, 4, H - BOTTOM - 8, "0", axis);
        text(&mut img, LEFT, H - BOTTOM + 8, &format!("{}", history[0].iteration), axis);
        let end = format!("{}", last as usize);
        text(&mut img, W - RIGHT - 8 * end.len() as u32, H - BOTTOM + 8, &end, axis);
        text(&mut img, W / 2 - 36, H - BOTTOM + 22, "iteration", axis);
    }
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).map_err(|e| e.to_string())?;
    memvos_data::write_atomic(path, &bytes).map_err(|e| e.to_string())
}
