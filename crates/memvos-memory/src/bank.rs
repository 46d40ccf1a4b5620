//! A memory bank: one entry per stored frame, holding a key (shared by the bank's objects, or
//! one per object), one value per object and optionally a second ("auxiliary") value per object
//! that some networks read from some entries (IMSFR's `v_pe`); plus an optional temporary entry
//! (the previous frame) that the next write replaces. Entries are kept apart so a policy can
//! evict any of them; reads concatenate the entries asked for.

use burn_tensor::Tensor;

use crate::affinity::{self, Selection, Similarity, softmax_memory, topk_softmax};
use crate::policy::{StoredFrame, Usage};

/// Shape errors of memory writes and reads.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("memory {what}: expected {expected}, got {got:?}")]
    /// A tensor of the wrong shape.
    Shape {
        /// Which tensor.
        what: &'static str,
        /// The shape expected.
        expected: String,
        /// The shape given.
        got: Vec<usize>,
    },
    #[error("memory read before any frame was written")]
    /// Nothing to read.
    Empty,
    #[error("memory entry {position} does not exist ({stored} stored)")]
    /// A position past the stored entries.
    NoEntry {
        /// The position asked for.
        position: usize,
        /// Entries stored.
        stored: usize,
    },
    #[error("memory entry of frame {frame} has no auxiliary value")]
    /// An auxiliary value read from an entry without one.
    NoAux {
        /// The entry's frame.
        frame: usize,
    },
    #[error("memory read: {0}")]
    /// A kernel refused its inputs.
    Read(#[from] crate::affinity::KernelError),
    #[error("memory usage: cannot read the weights back: {0}")]
    /// Weights could not be read back from the device.
    Data(String),
}

#[derive(Clone, Debug)]
struct Entry {
    frame: usize,
    quality: Option<f32>,
    /// `[B, C_k, h, w]`, `B` = 1 or K: the tensor as written (whatever its storage's layout,
    /// so a kernel of one's own can read it in place).
    key: Tensor<4>,
    /// `[K, C_v, h, w]`.
    value: Tensor<4>,
    /// `[K, C_v', h, w]`.
    aux: Option<Tensor<4>>,
    /// How much queries have read it ([`MemoryBank::record_usage`]).
    usage: Usage,
}

impl Entry {
    /// Memory positions (`h·w`).
    fn positions(&self) -> usize {
        let [_, _, h, w] = self.key.dims();
        h * w
    }
}

/// Which value of the entries a read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueSlot {
    /// The value written with each entry.
    Value,
    /// The auxiliary value ([`MemoryBank::push_with_aux`]).
    Aux,
}

/// A read of chosen entries with a chosen selection ([`MemoryBank::read_with`]).
#[derive(Clone, Copy, Debug)]
pub struct ReadSpec<'a> {
    /// Permanent entries to read (`None`: all).
    pub positions: Option<&'a [usize]>,
    /// Also read the temporary entry, if one is held.
    pub temporary: bool,
    /// Which affinities are kept.
    pub selection: Selection,
    /// Which values are read.
    pub slot: ValueSlot,
}

/// How a bank compares and reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReadConfig {
    /// How keys are compared.
    pub similarity: Similarity,
    /// Which affinities are kept.
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
    /// How the bank compares and reads.
    pub read: ReadConfig,
}

impl MemoryBank {
    /// An empty bank.
    pub fn new(read: ReadConfig) -> Self {
        MemoryBank { entries: Vec::new(), temp: None, read }
    }

    /// Number of permanently stored frames.
    pub fn frames(&self) -> usize {
        self.entries.len()
    }

    /// The permanently stored frames, in storage order (what a policy decides on).
    pub fn stored(&self) -> Vec<StoredFrame> {
        self.entries.iter().map(|e| StoredFrame::new(e.frame, e.quality).with_usage(e.usage)).collect()
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
        self.entries.iter().chain(&self.temp).map(Entry::positions).sum()
    }

    fn entry(&self, frame: usize, quality: Option<f32>, key: Tensor<4>, value: Tensor<4>, aux: Option<Tensor<4>>) -> Result<Entry, MemoryError> {
        let [kb, ck, h, w] = key.dims();
        let [k, cv, vh, vw] = value.dims();
        if (kb != 1 && kb != k) || (vh, vw) != (h, w) {
            return Err(MemoryError::Shape { what: "value", expected: format!("[K, C_v, {h}, {w}] with a key of batch 1 or K = {kb}"), got: vec![k, cv, vh, vw] });
        }
        if let Some(a) = &aux {
            let [ak, ac, ah, aw] = a.dims();
            if (ak, ah, aw) != (k, h, w) {
                return Err(MemoryError::Shape { what: "auxiliary value", expected: format!("[{k}, C, {h}, {w}] like the value"), got: vec![ak, ac, ah, aw] });
            }
        }
        if let Some(e) = self.entries.first().or(self.temp.as_ref()) {
            let [ek, ecv, _, _] = e.value.dims();
            let [ekb, eck, _, _] = e.key.dims();
            if (ek, ecv) != (k, cv) {
                return Err(MemoryError::Shape { what: "value", expected: format!("[{ek}, {ecv}, …] like the stored values"), got: vec![k, cv, vh, vw] });
            }
            if (ekb, eck) != (kb, ck) {
                return Err(MemoryError::Shape { what: "key", expected: format!("[{ekb}, {eck}, …] like the stored keys"), got: vec![kb, ck, h, w] });
            }
        }
        Ok(Entry { frame, quality, key, value, aux, usage: Usage::default() })
    }

    /// Stores frame `frame`: key `[1 or K, C_k, h, w]`, values `[K, C_v, h, w]`; drops the
    /// temporary entry.
    pub fn push(&mut self, frame: usize, quality: Option<f32>, key: Tensor<4>, value: Tensor<4>) -> Result<(), MemoryError> {
        self.push_with_aux(frame, quality, key, value, None)
    }

    /// [`Self::push`] with an auxiliary value `[K, C, h, w]` read by [`ValueSlot::Aux`].
    pub fn push_with_aux(&mut self, frame: usize, quality: Option<f32>, key: Tensor<4>, value: Tensor<4>, aux: Option<Tensor<4>>) -> Result<(), MemoryError> {
        let e = self.entry(frame, quality, key, value, aux)?;
        self.temp = None;
        self.entries.push(e);
        Ok(())
    }

    /// Holds a frame as the temporary entry, read with the permanent ones until the next
    /// write replaces it. With nothing stored yet it is stored permanently instead (a bank's
    /// first frame always stays, as in STCN's bank).
    pub fn set_temporary(&mut self, frame: usize, key: Tensor<4>, value: Tensor<4>) -> Result<(), MemoryError> {
        self.set_temporary_with_aux(frame, key, value, None)
    }

    /// [`Self::set_temporary`] with an auxiliary value.
    pub fn set_temporary_with_aux(&mut self, frame: usize, key: Tensor<4>, value: Tensor<4>, aux: Option<Tensor<4>>) -> Result<(), MemoryError> {
        let e = self.entry(frame, None, key, value, aux)?;
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

    /// How this bank compares and reads.
    pub fn config(&self) -> ReadConfig {
        self.read
    }

    /// The keys `[B, C_k, N]` and values `[K, C_v, N]` a read of `positions` (all when `None`),
    /// plus the temporary entry when `temporary`, goes through: for kernels of one's own.
    pub fn contents(&self, positions: Option<&[usize]>, temporary: bool, slot: ValueSlot) -> Result<(Tensor<3>, Tensor<3>), MemoryError> {
        let picked = self.frames_read(positions, temporary, slot)?;
        let flat = |t: Tensor<4>| {
            let [b, c, h, w] = t.dims();
            t.reshape([b, c, h * w])
        };
        let keys = Tensor::cat(picked.iter().map(|(k, _)| flat(k.clone())).collect(), 2);
        Ok((keys, Tensor::cat(picked.into_iter().map(|(_, v)| flat(v)).collect(), 2)))
    }

    /// The tensors a read of `positions` (all when `None`), plus the temporary entry when
    /// `temporary`, goes through, frame by frame as they were written: key `[B, C_k, h, w]`
    /// and value (of `slot`) `[K, C_v, h, w]` — for kernels that read each frame's storage where
    /// it lies instead of joining them ([`Self::contents`]).
    pub fn frames_read(&self, positions: Option<&[usize]>, temporary: bool, slot: ValueSlot) -> Result<Vec<(Tensor<4>, Tensor<4>)>, MemoryError> {
        let mut picked: Vec<&Entry> = match positions {
            None => self.entries.iter().collect(),
            Some(ps) => ps
                .iter()
                .map(|&i| self.entries.get(i).ok_or(MemoryError::NoEntry { position: i, stored: self.entries.len() }))
                .collect::<Result<_, _>>()?,
        };
        if temporary {
            picked.extend(&self.temp);
        }
        if picked.is_empty() {
            return Err(MemoryError::Empty);
        }
        picked
            .into_iter()
            .map(|e| {
                let value = match slot {
                    ValueSlot::Value => e.value.clone(),
                    ValueSlot::Aux => e.aux.clone().ok_or(MemoryError::NoAux { frame: e.frame })?,
                };
                Ok((e.key.clone(), value))
            })
            .collect()
    }

    /// A query key `[B, C_k, h, w]` as `[B', C_k, h·w]`, checked against the stored keys
    /// (`C_k` equal; a batch-1 query is broadcast over per-object keys).
    fn query(&self, query_key: Tensor<4>, stored: &Tensor<3>) -> Result<Tensor<3>, MemoryError> {
        let [b, ck, h, w] = query_key.dims();
        let [sb, sck, _] = stored.dims();
        if ck != sck || (b != sb && b != 1) {
            return Err(MemoryError::Shape { what: "query key", expected: format!("[1 or {sb}, {sck}, h, w] like the stored keys"), got: vec![b, ck, h, w] });
        }
        let q = query_key.reshape([b, ck, h * w]);
        Ok(if b != sb { q.expand([sb, ck, h * w]) } else { q })
    }

    /// The dense affinity weights `[B, N, M]` of a query key `[B, C_k, h, w]` over the whole
    /// memory (for inspection; reads do not build this matrix for top-k).
    pub fn affinity(&self, query_key: Tensor<4>) -> Result<Tensor<3>, MemoryError> {
        self.affinity_with(query_key, None, true, self.read.selection)
    }

    /// [`Self::affinity`] of chosen entries with a chosen selection.
    pub fn affinity_with(&self, query_key: Tensor<4>, positions: Option<&[usize]>, temporary: bool, selection: Selection) -> Result<Tensor<3>, MemoryError> {
        let (mk, _) = self.contents(positions, temporary, ValueSlot::Value)?;
        let [_, _, n] = mk.dims();
        let q = self.query(query_key, &mk)?;
        let a = self.read.similarity.affinity(mk, q);
        Ok(match selection {
            Selection::Full => softmax_memory(a),
            Selection::TopK(k) => topk_softmax(a, k.clamp(1, n))?,
            Selection::Kernelized { k, sigma, h, w } => topk_softmax(affinity::kernelized_scores(a, h, w, sigma)?, k.clamp(1, n))?,
        })
    }

    /// Measures how much a query key `[B, C_k, h, w]` reads each permanent entry at `positions`
    /// (all when `None`; the temporary entry takes part in the softmax but is not recorded):
    /// the entry's share of the read weights, averaged over query positions and objects, is
    /// added to its [`Usage`]. Entries not read get a `last` share of 0. Returns the shares in
    /// the order of `positions`.
    pub fn record_usage(&mut self, query_key: Tensor<4>, positions: Option<&[usize]>) -> Result<Vec<f32>, MemoryError> {
        let all: Vec<usize> = (0..self.entries.len()).collect();
        let positions = positions.unwrap_or(&all);
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let weights = self.affinity_with(query_key, Some(positions), self.temp.is_some(), self.read.selection)?;
        let [b, n, m] = weights.dims();
        // Per memory position, the mean weight over the batch and the query positions.
        let per_position: Vec<f32> = crate::transfers::download(weights.sum_dim(2).sum_dim(0).reshape::<1, _>([n])).try_to_vec::<f32>().map_err(|e| MemoryError::Data(format!("{e:?}")))?;
        let scale = 1.0 / (b * m).max(1) as f32;
        let mut shares = Vec::with_capacity(positions.len());
        let mut offset = 0;
        for &p in positions {
            let size = self.entries[p].positions();
            shares.push(per_position[offset..offset + size].iter().sum::<f32>() * scale);
            offset += size;
        }
        for e in &mut self.entries {
            e.usage.last = 0.0;
        }
        // A frame read twice (a repeated position) is recorded once with both shares.
        let mut merged: Vec<(usize, f32)> = Vec::new();
        for (&p, &share) in positions.iter().zip(&shares) {
            match merged.iter_mut().find(|(q, _)| *q == p) {
                Some((_, s)) => *s += share,
                None => merged.push((p, share)),
            }
        }
        for (p, share) in merged {
            self.entries[p].usage.record(share);
        }
        Ok(shares)
    }

    /// Reads the memory for a query key `[B, C_k, h, w]` (`B` as the stored keys, or 1):
    /// values `[K, C_v, h, w]`. `positions` picks the permanent entries to read (a policy's
    /// [`crate::MemoryPolicy::read`]); `None` reads all of them. The temporary entry is read too.
    pub fn read(&self, query_key: Tensor<4>, positions: Option<&[usize]>) -> Result<Tensor<4>, MemoryError> {
        self.read_with(query_key, ReadSpec { positions, temporary: true, selection: self.read.selection, slot: ValueSlot::Value })
    }

    /// Reads chosen entries with a chosen selection and value slot (IMSFR reads the first frame
    /// with a full softmax and the newest with its auxiliary values, besides the top-k read).
    pub fn read_with(&self, query_key: Tensor<4>, spec: ReadSpec<'_>) -> Result<Tensor<4>, MemoryError> {
        let [_, _, h, w] = query_key.dims();
        let (mk, mv) = self.contents(spec.positions, spec.temporary, spec.slot)?;
        let [k, cv, _] = mv.dims();
        let q = self.query(query_key, &mk)?;
        let r = match self.read.chunk {
            Some(c) => affinity::read_chunked(mk, mv, q, self.read.similarity, spec.selection, c)?,
            None => affinity::read(mk, mv, q, self.read.similarity, spec.selection)?,
        };
        Ok(r.reshape([k, cv, h, w]))
    }

    /// The frame index of the permanent entry at `position`.
    pub fn frame_at(&self, position: usize) -> Option<usize> {
        self.entries.get(position).map(|e| e.frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_tensor::{Device, Distribution};

    #[test]
    fn usage_records_each_frames_share_of_the_read() {
        let d = Device::flex();
        let mut bank = MemoryBank::new(ReadConfig::stcn(None));
        // Three frames of 2×3 positions, keys far apart; the query is frame 1's key.
        let keys: Vec<Tensor<4>> = (0..3).map(|i| Tensor::<4>::ones([1, 4, 2, 3], &d).mul_scalar(i as f32 * 4.0 - 4.0)).collect();
        for (i, k) in keys.iter().enumerate() {
            bank.push(i, None, k.clone(), Tensor::zeros([1, 2, 2, 3], &d)).unwrap();
        }
        let shares = bank.record_usage(keys[1].clone(), None).unwrap();
        assert_eq!(shares.len(), 3);
        assert!((shares.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{shares:?}");
        assert!(shares[1] > 0.99, "the query's own frame takes the read: {shares:?}");
        // Only frames 0 and 2 read (frame 2 twice): frame 1 keeps its count, its `last` is 0.
        let shares = bank.record_usage(keys[2].clone(), Some(&[0, 2, 2])).unwrap();
        assert!((shares.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{shares:?}");
        let stored = bank.stored();
        assert_eq!(stored.iter().map(|s| s.usage.reads).collect::<Vec<_>>(), [2, 1, 2]);
        assert_eq!(stored[1].usage.last, 0.0);
        assert!((stored[2].usage.last - (shares[1] + shares[2])).abs() < 1e-6);
        assert!(stored[1].usage.mean() > 0.99 && stored[0].usage.mean() < 0.01);
        assert!(matches!(bank.record_usage(keys[0].clone(), Some(&[5])), Err(MemoryError::NoEntry { position: 5, .. })));
    }

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
