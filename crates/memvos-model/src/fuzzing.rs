//! The byte-level entry points of memvos's readers, as the fuzz targets in `fuzz/` drive them
//! (`cargo +nightly fuzz run <target>`) and as `tests/fuzz_corpus.rs` replays the committed corpus
//! on stable. Each must return — an error is fine — for any input: no panic, no abort, no
//! allocation a hostile header asks for.

use std::io::Cursor;
use std::path::Path;

use memvos_data::MaskEncoding;

const NAME: &str = "fuzz-input";

/// Palette-PNG and mask decoding (both encodings).
pub fn mask(data: &[u8]) {
    let p = Path::new(NAME);
    let _ = memvos_data::io::decode_mask(data, p, MaskEncoding::Labels);
    let _ = memvos_data::io::decode_mask(data, p, MaskEncoding::Binary);
}

/// Frame decoding (JPEG, PNG and whatever the image crate recognises).
pub fn frame(data: &[u8]) {
    let _ = memvos_data::io::decode_frame(data, Path::new(NAME));
}

/// `meta.json` and DAVIS image-set parsing.
pub fn layout(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let p = Path::new(NAME);
    let _ = memvos_data::layout::YouTubeMeta::parse(text, p);
    let _ = memvos_data::layout::davis::parse_image_set(text, p);
}

/// The `.pth` reader's header path: the zip (or legacy) container and the pickle, up to the
/// tensor list (tensor data is read lazily and not touched).
pub fn pth(data: &[u8]) {
    if let Ok(reader) = pytorch_reader::PytorchReader::from_reader(Cursor::new(data), None) {
        let _ = reader.keys();
    }
}

/// The `.safetensors` header path (the JSON header, dtypes, metadata).
pub fn safetensors(data: &[u8]) {
    let _ = crate::weights::safetensors_header_of_bytes(Path::new(NAME), data);
}

/// The `.bpk` (burnpack) header path.
pub fn burnpack(data: &[u8]) {
    use burn::store::{BurnpackStore, ModuleStore};
    let bytes = burn::tensor::Bytes::from_bytes_vec(data.to_vec());
    let _ = BurnpackStore::from_bytes(Some(bytes)).keys();
}

/// Tensor data of every weight format: every tensor read in full and checked against the file's
/// own record (`weights::verify`: zip CRCs, byte counts, offsets).
pub fn tensors(data: &[u8]) {
    use crate::weights::{Format, verify_bytes};
    let p = Path::new(NAME);
    for format in [Format::Pytorch, Format::Safetensors, Format::Burnpack] {
        let _ = verify_bytes(p, format, data.to_vec());
    }
}

/// Every target by name (the optimiser-state target is `memvos_train::fuzzing::optimiser`: it
/// needs burn's optimisers, which this crate does not build).
pub const TARGETS: [(&str, fn(&[u8])); 7] = [
    ("mask", mask),
    ("frame", frame),
    ("layout", layout),
    ("pth", pth),
    ("safetensors", safetensors),
    ("burnpack", burnpack),
    ("tensors", tensors),
];
