//! Image and mask files: JPEG/PNG frames, palette PNG masks read and written with their
//! palette kept, the DAVIS (PASCAL VOC) palette, and atomic file writes.

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use image::ImageEncoder;
use ndarray::Array2;

use crate::error::{DataError, Result};
use crate::frame::{Frame, LabelMap};

/// An RGB palette of up to 256 entries, as stored in a PNG `PLTE` chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Palette {
    bytes: Vec<u8>,
}

impl Palette {
    /// The DAVIS / PASCAL VOC colour map (256 entries): for label `i` and `j = 0..7`, bit `7 − j`
    /// of R, G, B is bit 0, 1, 2 of `i >> 3j`. 1 → (128, 0, 0), 2 → (0, 128, 0), 3 → (128, 128, 0).
    pub fn davis() -> Self {
        let mut bytes = Vec::with_capacity(768);
        for i in 0..256u32 {
            let (mut r, mut g, mut b) = (0u8, 0u8, 0u8);
            let mut c = i;
            for j in 0..8 {
                r |= ((c & 1) as u8) << (7 - j);
                g |= (((c >> 1) & 1) as u8) << (7 - j);
                b |= (((c >> 2) & 1) as u8) << (7 - j);
                c >>= 3;
            }
            bytes.extend_from_slice(&[r, g, b]);
        }
        Palette { bytes }
    }

    /// A palette from `PLTE` bytes (RGB triples, 1..=256 entries).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        if bytes.is_empty() || bytes.len() % 3 != 0 || bytes.len() > 768 {
            return Err(DataError::InvalidPalette { len: bytes.len() });
        }
        Ok(Palette { bytes })
    }

    /// The `PLTE` bytes (RGB triples).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.bytes.len() / 3
    }

    /// Whether it has no entry.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The colour of entry `i`, or `None` past the end.
    pub fn colour(&self, i: u8) -> Option<[u8; 3]> {
        let o = i as usize * 3;
        self.bytes.get(o..o + 3).map(|c| [c[0], c[1], c[2]])
    }

    /// The first entry with this colour.
    pub fn index_of(&self, rgb: [u8; 3]) -> Option<u8> {
        self.bytes
            .chunks_exact(3)
            .position(|c| c == rgb)
            .map(|i| i as u8)
    }
}

impl Default for Palette {
    fn default() -> Self {
        Palette::davis()
    }
}

/// A mask read from a PNG: its labels, and the palette it carried (for palette PNGs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    /// The labels.
    pub labels: LabelMap,
    /// The palette of a palette PNG (`None` for greyscale or RGB masks).
    pub palette: Option<Palette>,
    /// The `tRNS` chunk of a palette PNG, kept so that a rewrite is faithful.
    pub transparency: Option<Vec<u8>>,
}

/// How the pixel values of a mask file turn into labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaskEncoding {
    /// Palette PNGs hold the label as the index (DAVIS 2017, YouTube-VOS, BL30K). A greyscale
    /// PNG holding only 0 and 255 reads as label 1 (a DAVIS-2016 mask); other greyscale values
    /// are labels; RGB masks are mapped back through the DAVIS palette.
    #[default]
    Labels,
    /// Any non-zero pixel is object 1 (DAVIS 2016 annotations, static image sets).
    Binary,
}

/// Writes a file atomically: the bytes go to a temporary file beside `path`, which is then
/// renamed over it, so a reader never sees a half-written file and a crash loses nothing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(DataError::io(path, e));
    }
    Ok(())
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| DataError::io(path, e))
}

fn decode_err(path: &Path, reason: impl ToString) -> DataError {
    DataError::Decode {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads a JPEG or PNG frame as RGB. Truncated files are an error, never a grey half-frame.
pub fn read_frame(path: &Path) -> Result<Frame> {
    let bytes = read_bytes(path)?;
    decode_frame(&bytes, path)
}

/// Decodes frame bytes (`path` only names the source in errors).
pub fn decode_frame(bytes: &[u8], path: &Path) -> Result<Frame> {
    let format = image::guess_format(bytes).map_err(|e| decode_err(path, e))?;
    if format == image::ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(decode_err(path, "truncated JPEG (no end-of-image marker)"));
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(8192);
    limits.max_image_height = Some(8192);
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| decode_err(path, e))?;
    let rgb = img.into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Frame::from_raw(h, w, rgb.into_raw())
}

/// JPEG decoders fill a truncated scan with grey instead of failing; a complete file ends with
/// the EOI marker (possibly followed by padding).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Encodes a frame as JPEG (quality 0..=100) or PNG, chosen by the file extension, atomically.
pub fn write_frame(path: &Path, frame: &Frame, jpeg_quality: u8) -> Result<()> {
    let (h, w) = (frame.height() as u32, frame.width() as u32);
    let data = frame
        .rgb
        .as_standard_layout()
        .into_owned()
        .into_raw_vec_and_offset()
        .0;
    let mut out = Vec::new();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let enc_err = |e: image::ImageError| DataError::Encode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if ext == "png" {
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&data, w, h, image::ExtendedColorType::Rgb8)
            .map_err(enc_err)?;
    } else {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, jpeg_quality)
            .encode(&data, w, h, image::ExtendedColorType::Rgb8)
            .map_err(enc_err)?;
    }
    write_atomic(path, &out)
}

/// Reads a mask PNG with [`MaskEncoding::Labels`].
pub fn read_mask(path: &Path) -> Result<Mask> {
    read_mask_with(path, MaskEncoding::Labels)
}

/// Reads a mask PNG: palette (1/2/4/8-bit indices), greyscale (8-bit; 16-bit read exactly, a
/// value above 255 refused) or RGB(A).
pub fn read_mask_with(path: &Path, encoding: MaskEncoding) -> Result<Mask> {
    let bytes = read_bytes(path)?;
    decode_mask(&bytes, path, encoding)
}

/// The most pixels of a mask or frame memvos decodes (8192 × 8192): a header claiming more is
/// refused before anything is allocated.
pub const MAX_PIXELS: u64 = 8192 * 8192;

/// Decodes mask bytes (`path` only names the source in errors).
pub fn decode_mask(bytes: &[u8], path: &Path, encoding: MaskEncoding) -> Result<Mask> {
    if image::guess_format(bytes).ok() != Some(image::ImageFormat::Png) {
        return Err(decode_err(path, "not a PNG file"));
    }
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    let header = decoder.read_header_info().map_err(|e| decode_err(path, e))?;
    if header.width as u64 * header.height as u64 > MAX_PIXELS {
        return Err(decode_err(path, format!("{}x{} pixels is more than the {MAX_PIXELS} memvos decodes", header.width, header.height)));
    }
    let indexed = header.color_type == png::ColorType::Indexed;
    // 16-bit greyscale label maps are read exactly (stripping to the high byte would turn labels
    // 1..=255 into 0); 16-bit colour masks are colours, for which the high byte suffices.
    let grey16 = header.bit_depth == png::BitDepth::Sixteen
        && matches!(header.color_type, png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha);
    decoder.set_transformations(if indexed || grey16 {
        png::Transformations::IDENTITY
    } else {
        png::Transformations::EXPAND | png::Transformations::STRIP_16
    });
    let mut reader = decoder.read_info().map_err(|e| decode_err(path, e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| decode_err(path, "image too large"))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| decode_err(path, e))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let stride = info.line_size;
    let png_info = reader.info();
    let palette = png_info
        .palette
        .as_ref()
        .map(|p| Palette::from_bytes(p.to_vec()))
        .transpose()
        .map_err(|_| decode_err(path, "invalid PLTE chunk"))?;
    let transparency = png_info.trns.as_ref().map(|t| t.to_vec());

    let mut labels = Array2::<u8>::zeros((h, w));
    match info.color_type {
        png::ColorType::Indexed if info.bit_depth == png::BitDepth::Eight => {
            // The common case: one byte per pixel, copied row by row.
            for (y, mut out) in labels.rows_mut().into_iter().enumerate() {
                if let Some(dst) = out.as_slice_mut() {
                    dst.copy_from_slice(&buf[y * stride..y * stride + w]);
                }
            }
        }
        png::ColorType::Indexed => {
            let bits = info.bit_depth as usize;
            for y in 0..h {
                let row = &buf[y * stride..(y + 1) * stride];
                for x in 0..w {
                    labels[[y, x]] = if bits == 8 {
                        row[x]
                    } else {
                        let per_byte = 8 / bits;
                        let byte = row[x / per_byte];
                        let shift = 8 - bits * (x % per_byte + 1);
                        (byte >> shift) & ((1u8 << bits) - 1)
                    };
                }
            }
        }
        png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha if grey16 => {
            let ch = info.color_type.samples();
            let value = |y: usize, x: usize| {
                let o = y * stride + x * ch * 2;
                u16::from_be_bytes([buf[o], buf[o + 1]])
            };
            // Only 0 and 65535: a binary mask saved at 16 bits, object 1 as for 0/255.
            let binary = (0..h).all(|y| (0..w).all(|x| matches!(value(y, x), 0 | 65535)));
            for y in 0..h {
                for x in 0..w {
                    let v = value(y, x);
                    labels[[y, x]] = match v {
                        0..=255 => v as u8,
                        65535 if binary => 1,
                        _ => {
                            return Err(DataError::UnsupportedMask {
                                path: path.to_path_buf(),
                                reason: format!("16-bit label {v} at (x={x}, y={y}) is above 255, the most labels memvos reads"),
                            });
                        }
                    };
                }
            }
        }
        png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => {
            let ch = info.color_type.samples();
            for y in 0..h {
                for x in 0..w {
                    labels[[y, x]] = buf[y * stride + x * ch];
                }
            }
            let binary_255 = labels.iter().all(|&v| v == 0 || v == 255);
            if binary_255 && encoding == MaskEncoding::Labels {
                labels.mapv_inplace(|v| (v != 0) as u8);
            }
        }
        png::ColorType::Rgb | png::ColorType::Rgba => {
            let ch = info.color_type.samples();
            let pal = palette.clone().unwrap_or_default();
            for y in 0..h {
                for x in 0..w {
                    let o = y * stride + x * ch;
                    let rgb = [buf[o], buf[o + 1], buf[o + 2]];
                    labels[[y, x]] = match pal.index_of(rgb) {
                        Some(i) => i,
                        None if encoding == MaskEncoding::Binary => (rgb != [0, 0, 0]) as u8,
                        None => {
                            return Err(DataError::ColourNotInPalette {
                                path: path.to_path_buf(),
                                r: rgb[0],
                                g: rgb[1],
                                b: rgb[2],
                                x,
                                y,
                            });
                        }
                    };
                }
            }
        }
    }
    if encoding == MaskEncoding::Binary {
        labels.mapv_inplace(|v| (v != 0) as u8);
    }
    Ok(Mask {
        labels: LabelMap::new(labels),
        palette: if indexed { palette } else { None },
        transparency: if indexed { transparency } else { None },
    })
}

/// Encodes a label map as an 8-bit palette PNG with the given palette (and `tRNS`, if any).
pub fn encode_palette_png(
    labels: &LabelMap,
    palette: &Palette,
    transparency: Option<&[u8]>,
    path: &Path,
) -> Result<Vec<u8>> {
    let (h, w) = labels.labels.dim();
    let mut out = Vec::new();
    let enc_err = |e: png::EncodingError| DataError::Encode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(palette.as_bytes().to_vec());
        if let Some(t) = transparency {
            enc.set_trns(t.to_vec());
        }
        let mut writer = enc.write_header().map_err(enc_err)?;
        let data = labels.labels.as_standard_layout();
        writer
            .write_image_data(data.as_slice().unwrap_or(&[]))
            .map_err(enc_err)?;
        writer.finish().map_err(enc_err)?;
    }
    Ok(out)
}

/// Writes a label map as an 8-bit palette PNG, atomically.
pub fn write_mask(path: &Path, labels: &LabelMap, palette: &Palette) -> Result<()> {
    write_atomic(path, &encode_palette_png(labels, palette, None, path)?)
}

/// Writes a mask back with the palette (and transparency) it was read with.
pub fn write_mask_like(path: &Path, mask: &Mask) -> Result<()> {
    let pal = mask.palette.clone().unwrap_or_default();
    let bytes = encode_palette_png(&mask.labels, &pal, mask.transparency.as_deref(), path)?;
    write_atomic(path, &bytes)
}

/// Writes a single-object mask as an 8-bit greyscale PNG with values {0, 255} (DAVIS-2016
/// results): every non-zero label becomes 255.
pub fn write_binary_mask(path: &Path, labels: &LabelMap) -> Result<()> {
    let (h, w) = labels.labels.dim();
    let data: Vec<u8> = labels
        .labels
        .iter()
        .map(|&v| if v != 0 { 255 } else { 0 })
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&data, w as u32, h as u32, image::ExtendedColorType::L8)
        .map_err(|e| DataError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    write_atomic(path, &out)
}

/// Reads only the size `(height, width)` of an image file from its header.
pub fn image_size(path: &Path) -> Result<(usize, usize)> {
    let (w, h) = image::image_dimensions(path).map_err(|e| decode_err(path, e))?;
    Ok((h as usize, w as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn davis_palette_first_entries() {
        let p = Palette::davis();
        assert_eq!(p.len(), 256);
        assert_eq!(p.colour(0), Some([0, 0, 0]));
        assert_eq!(p.colour(1), Some([128, 0, 0]));
        assert_eq!(p.colour(2), Some([0, 128, 0]));
        assert_eq!(p.colour(3), Some([128, 128, 0]));
        assert_eq!(p.colour(4), Some([0, 0, 128]));
        assert_eq!(p.colour(255), Some([224, 224, 192]));
    }

    #[test]
    fn palette_rejects_bad_lengths() {
        assert!(Palette::from_bytes(vec![1, 2]).is_err());
        assert!(Palette::from_bytes(vec![0; 771]).is_err());
        assert!(Palette::from_bytes(vec![]).is_err());
    }
}
