//! A memory bank: one entry per stored frame, holding a key (shared by the bank's objects, or
//! one per object) and one value per object; plus an optional temporary entry (the previous
//! frame) that the next write replaces. Entries are kept apart so a policy can evict any of
//! them; reads concatenate the entries asked for.

use burn::tensor::Tensor;

use crate::affinity::{self, Selection, Similarity, softmax_memory, topk_softmax};
use crate::policy::StoredFrame;

/// Shape errors of memory writes and reads.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("memory {what}: expected {expected}, got {got:?}")]
    Shape { what: &'static str, expected: String, got: Vec<usize> },
    #[error("memory read before any frame was written")]
    Empty,
    #[error("memory entry {position} does not exist ({stored} stored)")]
    NoEntry { position: usize, stored: usize },
}

#[derive(Clone, Debug)]
struct Entry {
    frame: usize,
    quality: Option<f32>,
    /// `[B, C_k, h·w]`, `B` = 1 or K.
    key: Tensor<3>,
    /// `[K, C_v, h·w]`.
    value: Tensor<3>,
}

/// How a bank compares and reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReadConfig {
    pub similarity: Similarity,
    pub selection: Selection,
    /// Memory positions per chunk of the read ([`affinity::read_chunked`]); `None` reads in one
    /// piece.
    pub chunk: Option<usize>,
}

impl ReadConfig {
    /// STCN: L2 affinity, top-k.
    pub fn stcn(top_k: Option<usize>) -> Self {
        ReadConfig { similarity: Similarity::L2, selection: top_k.map(Selection::TopK).unwrap_or(Selection::Full), chunk: None }
    }
}

/// The stored frames of one group of objects.
#[derive(Clone, Debug)]
pub struct MemoryBank {
    entries: Vec<Entry>,
    temp: Option<Entry>,
    pub read: ReadConfig,
}

impl MemoryBank {
    pub fn new(read: ReadConfig) -> Self {
        MemoryBank { entries: Vec::new(), temp: None, read }
    }

    /// Number of permanently stored frames.
    pub fn frames(&self) -> usize {
        self.entries.len()
    }

    /// The permanently stored frames, in storage order (what a policy decides on).
    pub fn stored(&self) -> Vec<StoredFrame> {
        self.entries.iter().map(|e| StoredFrame { frame: e.frame, quality: e.quality }).collect()
    }

    /// Whether a temporary entry is held.
    pub fn has_temporary(&self) -> bool {
        self.temp.is_some()
    }

    /// Number of objects whose values are stored.
    pub fn objects(&self) -> usize {
        self.entries.first().or(self.temp.as_ref()).map(|e| e.value.dims()[0]).unwrap_or(0)
    }

    /// Memory positions held (permanent and temporary).
    pub fn positions(&self) -> usize {
        self.entries.iter().chain(&self.temp).map(|e| e.key.dims()[2]).sum()
    }

    fn entry(&self, frame: usize, quality: Option<f32>, key: Tensor<4>, value: Tensor<4>) -> Result<Entry, MemoryError> {
        let [kb, ck, h, w] = key.dims();
        let [k, cv, vh, vw] = value.dims();
        if (kb != 1 && kb != k) || (vh, vw) != (h, w) {
            return Err(MemoryError::Shape { what: "value", expected: format!("[K, C_v, {h}, {w}] with a key of batch 1 or K = {kb}"), got: vec![k, cv, vh, vw] });
        }
        if let Some(e) = self.entries.first().or(self.temp.as_ref()) {
            let [ek, ecv, _] = e.value.dims();
            let [ekb, eck, _] = e.key.dims();
            if (ek, ecv) != (k, cv) {
                return Err(MemoryError::Shape { what: "value", expected: format!("[{ek}, {ecv}, …] like the stored values"), got: vec![k, cv, vh, vw] });
            }
            if (ekb, eck) != (kb, ck) {
                return Err(MemoryError::Shape { what: "key", expected: format!("[{ekb}, {eck}, …] like the stored keys"), got: vec![kb, ck, h, w] });
            }
        }
        Ok(Entry { frame, quality, key: key.reshape([kb, ck, h * w]), value: value.reshape([k, cv, h * w]) })
    }

    /// Stores frame `frame`: key `[1 or K, C_k, h, w]`, values `[K, C_v, h, w]`; drops the
    /// temporary entry.
    pub fn push(&mut self, frame: usize, quality: Option<f32>, key: Tensor<4>, value: Tensor<4>) -> Result<(), MemoryError> {
        let e = self.entry(frame, quality, key, value)?;
        self.temp = None;
        self.entries.push(e);
        Ok(())
    }

    /// Holds a frame as the temporary entry, read with the permanent ones until the next
    /// write replaces it. With nothing stored yet it is stored permanently instead (a bank's
    /// first frame always stays, as in STCN's bank).
    pub fn set_temporary(&mut self, frame: usize, key: Tensor<4>, value: Tensor<4>) -> Result<(), MemoryError> {
        let e = self.entry(frame, None, key, value)?;
        if self.entries.is_empty() {
            self.entries.push(e);
        } else {
            self.temp = Some(e);
        }
        Ok(())
    }

    /// Drops the temporary entry.
    pub fn clear_temporary(&mut self) {
        self.temp = None;
    }

    /// Removes the permanent entries at these positions (as [`Self::stored`] lists them).
    pub fn evict(&mut self, positions: &[usize]) -> Result<(), MemoryError> {
        let mut p = positions.to_vec();
        p.sort_unstable();
        p.dedup();
        if let Some(&bad) = p.iter().find(|&&i| i >= self.entries.len()) {
            return Err(MemoryError::NoEntry { position: bad, stored: self.entries.len() });
        }
        for i in p.into_iter().rev() {
            self.entries.remove(i);
        }
        Ok(())
    }

    /// Keys and values of the entries at `positions` (all when `None`), then the temporary one.
    fn contents(&self, positions: Option<&[usize]>) -> Result<(Tensor<3>, Tensor<3>), MemoryError> {
        let mut picked: Vec<&Entry> = match positions {
            None => self.entries.iter().collect(),
            Some(ps) => ps
                .iter()
                .map(|&i| self.entries.get(i).ok_or(MemoryError::NoEntry { position: i, stored: self.entries.len() }))
                .collect::<Result<_, _>>()?,
        };
        picked.extend(&self.temp);
        if picked.is_empty() {
            return Err(MemoryError::Empty);
        }
        let keys = Tensor::cat(picked.iter().map(|e| e.key.clone()).collect(), 2);
        let values = Tensor::cat(picked.iter().map(|e| e.value.clone()).collect(), 2);
        Ok((keys, values))
    }

    fn query(&self, query_key: Tensor<4>) -> Tensor<3> {
        let [b, ck, h, w] = query_key.dims();
        query_key.reshape([b, ck, h * w])
    }

    /// The dense affinity weights `[B, N, M]` of a query key `[B, C_k, h, w]` over the whole
    /// memory (for inspection; reads do not build this matrix for top-k).
    pub fn affinity(&self, query_key: Tensor<4>) -> Result<Tensor<3>, MemoryError> {
        let (mk, _) = self.contents(None)?;
        let [_, _, n] = mk.dims();
        let a = self.read.similarity.affinity(mk, self.query(query_key));
        Ok(match self.read.selection {
            Selection::Full => softmax_memory(a),
            Selection::TopK(k) => topk_softmax(a, k.min(n)),
            Selection::Kernelized { k, sigma, h, w } => topk_softmax(affinity::kernelized_scores(a, h, w, sigma), k.min(n)),
        })
    }

    /// Reads the memory for a query key `[B, C_k, h, w]` (`B` as the stored keys): values
    /// `[K, C_v, h, w]`. `positions` picks the permanent entries to read (a policy's
    /// [`crate::MemoryPolicy::read`]); `None` reads all of them.
    pub fn read(&self, query_key: Tensor<4>, positions: Option<&[usize]>) -> Result<Tensor<4>, MemoryError> {
        let [_, _, h, w] = query_key.dims();
        let (mk, mv) = self.contents(positions)?;
        let [k, cv, _] = mv.dims();
        let q = self.query(query_key);
        let ReadConfig { similarity, selection, chunk } = self.read;
        let r = match chunk {
            Some(c) => affinity::read_chunked(mk, mv, q, similarity, selection, c),
            None => affinity::read(mk, mv, q, similarity, selection),
        };
        Ok(r.reshape([k, cv, h, w]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn grows_evicts_and_reads_with_temporary_entries() {
        let d = Device::flex();
        let mut bank = MemoryBank::new(ReadConfig::stcn(Some(3)));
        assert!(matches!(bank.read(Tensor::zeros([1, 8, 2, 3], &d), None), Err(MemoryError::Empty)));
        let key = || Tensor::<4>::random([1, 8, 2, 3], Distribution::Normal(0.0, 1.0), &d);
        let val = || Tensor::<4>::random([2, 16, 2, 3], Distribution::Normal(0.0, 1.0), &d);
        bank.set_temporary(0, key(), val()).unwrap();
        assert_eq!((bank.frames(), bank.has_temporary()), (1, false), "a first temporary frame is kept");
        bank.set_temporary(1, key(), val()).unwrap();
        assert_eq!(bank.affinity(key()).unwrap().dims(), [1, 12, 6]);
        bank.push(2, Some(0.5), key(), val()).unwrap();
        assert!(!bank.has_temporary(), "the temporary entry is gone");
        assert_eq!(bank.affinity(key()).unwrap().dims(), [1, 12, 6]);
        assert_eq!(bank.read(key(), None).unwrap().dims(), [2, 16, 2, 3]);
        assert_eq!(bank.read(key(), Some(&[1, 1])).unwrap().dims(), [2, 16, 2, 3]);
        assert_eq!(bank.stored().iter().map(|s| s.frame).collect::<Vec<_>>(), vec![0, 2]);
        assert!(matches!(bank.read(key(), Some(&[2])), Err(MemoryError::NoEntry { position: 2, .. })));
        assert!(bank.push(3, None, key(), Tensor::zeros([3, 16, 2, 3], &d)).is_err());
        assert!(bank.push(3, None, key(), Tensor::zeros([2, 16, 3, 3], &d)).is_err());
        assert!(bank.push(3, None, Tensor::zeros([1, 4, 2, 3], &d), val()).is_err());
        bank.evict(&[0]).unwrap();
        assert_eq!(bank.stored()[0].frame, 2);
        assert!(bank.evict(&[5]).is_err());
        assert_eq!(bank.positions(), 6);
    }
}
