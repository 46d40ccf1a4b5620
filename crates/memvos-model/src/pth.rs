//! Writes a `state_dict` as PyTorch's `torch.save` zip format (what `torch.load` and burn-store's
//! `PytorchStore` read), so memvos can produce `.pth` files in the published checkpoints' own
//! format — for instance the formula-filled checkpoints of the parity fixtures. Only what a
//! `state_dict` needs: an `OrderedDict` of contiguous float32 / int64 CPU tensors.
//!
//! Layout: `archive/data.pkl` (a protocol-2 pickle whose tensors are persistent references
//! `('storage', torch.FloatStorage, key, 'cpu', numel)` rebuilt by
//! `torch._utils._rebuild_tensor_v2`), one `archive/data/<key>` per storage (raw little-endian
//! bytes), `archive/version` and `archive/byteorder`.

use std::io::{Cursor, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;

/// The data of one tensor.
#[derive(Clone, Debug)]
pub enum PthData {
    /// float32 values.
    F32(Vec<f32>),
    /// int64 values (`num_batches_tracked`).
    I64(Vec<i64>),
}

impl PthData {
    fn len(&self) -> usize {
        match self {
            PthData::F32(v) => v.len(),
            PthData::I64(v) => v.len(),
        }
    }

    fn storage(&self) -> &'static str {
        match self {
            PthData::F32(_) => "FloatStorage",
            PthData::I64(_) => "LongStorage",
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            PthData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            PthData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A minimal pickle (protocol 2) emitter.
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, b: u8) {
        self.0.push(b);
    }

    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn string(&mut self, s: &str) {
        self.op(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, v: u64) {
        if v < 256 {
            self.op(b'K');
            self.op(v as u8);
        } else if v < (1 << 31) {
            self.op(b'J');
            self.0.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            // LONG1: 8 little-endian bytes (sign bit clear for v < 2^63).
            self.op(0x8a);
            self.op(8);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn tuple(&mut self, items: &[u64]) {
        if items.is_empty() {
            self.op(b')');
            return;
        }
        self.op(b'(');
        for &i in items {
            self.int(i);
        }
        self.op(b't');
    }

    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b')');
        self.op(b'R');
    }
}

/// Serialises `entries` (name, shape, data; in this order) as a `.pth` file in memory.
pub fn to_bytes(entries: &[(String, Vec<usize>, PthData)]) -> Result<Vec<u8>, String> {
    let mut p = Pickle(vec![0x80, 2]);
    p.empty_ordered_dict();
    p.op(b'(');
    for (key, (name, shape, data)) in entries.iter().enumerate() {
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            return Err(format!("{name}: shape {shape:?} holds {numel} values, data has {}", data.len()));
        }
        p.string(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b'(');
        // Persistent id of the storage.
        p.op(b'(');
        p.string("storage");
        p.global("torch", data.storage());
        p.string(&key.to_string());
        p.string("cpu");
        p.int(numel as u64);
        p.op(b't');
        p.op(b'Q');
        p.int(0); // storage offset
        p.tuple(&shape.iter().map(|&s| s as u64).collect::<Vec<_>>());
        let mut stride = vec![1u64; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * shape[i + 1] as u64;
        }
        p.tuple(&stride);
        p.op(0x89); // requires_grad = False
        p.empty_ordered_dict(); // backward hooks
        p.op(b't');
        p.op(b'R');
    }
    p.op(b'u');
    p.op(b'.');

    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).with_alignment(64);
    let err = |e: &dyn std::fmt::Display| e.to_string();
    zip.start_file("archive/data.pkl", stored).map_err(|e| err(&e))?;
    zip.write_all(&p.0).map_err(|e| err(&e))?;
    zip.start_file("archive/byteorder", stored).map_err(|e| err(&e))?;
    zip.write_all(b"little").map_err(|e| err(&e))?;
    for (key, (_, _, data)) in entries.iter().enumerate() {
        zip.start_file(format!("archive/data/{key}"), stored).map_err(|e| err(&e))?;
        zip.write_all(&data.bytes()).map_err(|e| err(&e))?;
    }
    zip.start_file("archive/version", stored).map_err(|e| err(&e))?;
    zip.write_all(b"3\n").map_err(|e| err(&e))?;
    let cursor = zip.finish().map_err(|e| err(&e))?;
    Ok(cursor.into_inner())
}

/// Writes `entries` as a `.pth` file, atomically.
pub fn write(path: &Path, entries: &[(String, Vec<usize>, PthData)]) -> Result<(), String> {
    let bytes = to_bytes(entries)?;
    memvos_data::write_atomic(path, &bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorch_reader_reads_back_what_we_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sd.pth");
        let a: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let entries = vec![
            ("layer.weight".to_string(), vec![2, 3, 2, 2], PthData::F32(a.clone())),
            ("layer.bias".to_string(), vec![2], PthData::F32(vec![1.5, -2.0])),
            ("bn.num_batches_tracked".to_string(), vec![], PthData::I64(vec![0])),
            ("big.weight".to_string(), vec![300, 2], PthData::F32(vec![0.25; 600])),
        ];
        write(&path, &entries).unwrap();
        let reader = pytorch_reader::PytorchReader::new(&path).unwrap();
        let mut keys = reader.keys();
        keys.sort();
        assert_eq!(keys, vec!["big.weight", "bn.num_batches_tracked", "layer.bias", "layer.weight"]);
        let t = reader.get("layer.weight").unwrap();
        assert_eq!(t.shape(), &[2, 3, 2, 2]);
        let bytes = t.read().unwrap();
        let got: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(got, a);
        assert_eq!(reader.get("big.weight").unwrap().shape(), &[300, 2]);
        assert!(to_bytes(&[("x".into(), vec![3], PthData::F32(vec![1.0]))]).is_err());
    }
}
