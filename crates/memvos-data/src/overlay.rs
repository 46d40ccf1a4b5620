//! Overlays of label maps on frames, and animated GIFs of them, for a person to look at.

use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, RgbaImage};

use crate::error::{DataError, Result};
use crate::frame::{Frame, LabelMap};
use crate::io::{Palette, write_atomic};

/// Blends each object's palette colour over the frame with opacity `alpha`, and darkens
/// object borders so neighbouring objects stay distinguishable.
pub fn overlay(frame: &Frame, labels: &LabelMap, palette: &Palette, alpha: f32) -> Result<Frame> {
    let (h, w) = (frame.height(), frame.width());
    labels.expect_size(h, w, Path::new("overlay"))?;
    let mut out = frame.clone();
    for y in 0..h {
        for x in 0..w {
            let l = labels.labels[[y, x]];
            if l == 0 {
                continue;
            }
            let border = [(0i32, 1i32), (1, 0), (0, -1), (-1, 0)].iter().any(|&(dy, dx)| {
                let (yy, xx) = (y as i32 + dy, x as i32 + dx);
                yy < 0 || xx < 0 || yy >= h as i32 || xx >= w as i32 || labels.labels[[yy as usize, xx as usize]] != l
            });
            let c = palette.colour(l).unwrap_or([255, 255, 255]);
            for k in 0..3 {
                let v = out.rgb[[y, x, k]] as f32;
                let blended = if border { c[k] as f32 * 0.6 } else { v * (1.0 - alpha) + c[k] as f32 * alpha };
                out.rgb[[y, x, k]] = blended.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(out)
}

/// Encodes frames as a looping GIF (`delay_ms` per frame), atomically.
pub fn write_gif(path: &Path, frames: &[Frame], delay_ms: u32) -> Result<()> {
    let err = |e: image::ImageError| DataError::Encode { path: path.to_path_buf(), reason: e.to_string() };
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite).map_err(err)?;
        for f in frames {
            let (h, w) = (f.height() as u32, f.width() as u32);
            let rgba = RgbaImage::from_fn(w, h, |x, y| {
                let (x, y) = (x as usize, y as usize);
                image::Rgba([f.rgb[[y, x, 0]], f.rgb[[y, x, 1]], f.rgb[[y, x, 2]], 255])
            });
            let frame = image::Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(delay_ms, 1));
            enc.encode_frame(frame).map_err(err)?;
        }
    }
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn overlay_colours_objects_and_gif_is_written() {
        let f = Frame::filled(8, 8, [100, 100, 100]);
        let l = LabelMap::new(Array2::from_shape_fn((8, 8), |(y, x)| (y > 1 && y < 6 && x > 1 && x < 6) as u8));
        let o = overlay(&f, &l, &Palette::davis(), 0.5).unwrap();
        assert_eq!(o.rgb[[0, 0, 0]], 100);
        assert_eq!(o.rgb[[3, 3, 0]], 114); // 100 * 0.5 + 128 * 0.5
        assert!(overlay(&f, &LabelMap::zeros(7, 8), &Palette::davis(), 0.5).is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.gif");
        write_gif(&p, &[f, o], 100).unwrap();
        assert_eq!(&std::fs::read(&p).unwrap()[..3], b"GIF");
    }
}
