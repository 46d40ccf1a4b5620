//! A memory bank: keys shared by its objects and one value per object, both flattened over
//! time and space; plus an optional temporary entry (the previous frame) that the next write
//! replaces.

use burn::tensor::Tensor;

use crate::affinity::{l2_affinity, readout, topk_softmax};

/// Shape errors of memory writes and reads.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("memory {what}: expected {expected}, got {got:?}")]
    Shape { what: &'static str, expected: String, got: Vec<usize> },
    #[error("memory read before any frame was written")]
    Empty,
}

/// Keys `[1, C_k, N]` and values `[K, C_v, N]` of the stored frames.
#[derive(Clone, Debug)]
pub struct MemoryBank {
    keys: Option<Tensor<3>>,
    values: Option<Tensor<3>>,
    temp: Option<(Tensor<3>, Tensor<3>)>,
    frames: usize,
    /// Top-k of the affinity softmax; `None` is the full softmax.
    pub top_k: Option<usize>,
}

impl MemoryBank {
    pub fn new(top_k: Option<usize>) -> Self {
        MemoryBank { keys: None, values: None, temp: None, frames: 0, top_k }
    }

    /// Number of permanently stored frames.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Number of objects whose values are stored.
    pub fn objects(&self) -> usize {
        self.values.as_ref().map(|v| v.dims()[0]).unwrap_or(0)
    }

    fn flatten(key: Tensor<4>, value: Tensor<4>) -> Result<(Tensor<3>, Tensor<3>), MemoryError> {
        let [kb, ck, h, w] = key.dims();
        let [k, cv, vh, vw] = value.dims();
        if kb != 1 || (vh, vw) != (h, w) {
            return Err(MemoryError::Shape { what: "value", expected: format!("[K, C_v, {h}, {w}] with a key of batch 1"), got: vec![k, cv, vh, vw] });
        }
        Ok((key.reshape([1, ck, h * w]), value.reshape([k, cv, h * w])))
    }

    /// Stores a frame: key `[1, C_k, h, w]`, values `[K, C_v, h, w]`. A temporary frame is
    /// read with the permanent ones until the next `add` (of either kind) replaces it.
    pub fn add(&mut self, key: Tensor<4>, value: Tensor<4>, temporary: bool) -> Result<(), MemoryError> {
        let (k, v) = Self::flatten(key, value)?;
        if let Some(existing) = &self.values {
            let [n, cv, _] = existing.dims();
            let [vk, vcv, _] = v.dims();
            if (n, cv) != (vk, vcv) {
                return Err(MemoryError::Shape { what: "value", expected: format!("[{n}, {cv}, …] like the stored values"), got: v.dims().to_vec() });
            }
        }
        self.temp = None;
        // As STCN's bank: the very first frame is always stored permanently.
        if temporary && self.keys.is_some() {
            self.temp = Some((k, v));
            return Ok(());
        }
        self.keys = Some(match self.keys.take() {
            Some(old) => Tensor::cat(vec![old, k], 2),
            None => k,
        });
        self.values = Some(match self.values.take() {
            Some(old) => Tensor::cat(vec![old, v], 2),
            None => v,
        });
        self.frames += 1;
        Ok(())
    }

    /// All keys and values to read (permanent, then temporary).
    fn contents(&self) -> Result<(Tensor<3>, Tensor<3>), MemoryError> {
        let (mut k, mut v) = match (&self.keys, &self.values) {
            (Some(k), Some(v)) => (k.clone(), v.clone()),
            _ => match &self.temp {
                Some((k, v)) => return Ok((k.clone(), v.clone())),
                None => return Err(MemoryError::Empty),
            },
        };
        if let Some((tk, tv)) = &self.temp {
            k = Tensor::cat(vec![k, tk.clone()], 2);
            v = Tensor::cat(vec![v, tv.clone()], 2);
        }
        Ok((k, v))
    }

    /// The affinity `[1, N, M]` of a query key `[1, C_k, h, w]` (STCN L2, top-k softmax).
    pub fn affinity(&self, query_key: Tensor<4>) -> Result<Tensor<3>, MemoryError> {
        let (mk, _) = self.contents()?;
        let [_, ck, h, w] = query_key.dims();
        let a = l2_affinity(mk, query_key.reshape([1, ck, h * w]));
        let n = a.dims()[1];
        Ok(topk_softmax(a, self.top_k.unwrap_or(n)))
    }

    /// Reads the memory for a query key `[1, C_k, h, w]`: values `[K, C_v, h, w]`.
    pub fn read(&self, query_key: Tensor<4>) -> Result<Tensor<4>, MemoryError> {
        let [_, _, h, w] = query_key.dims();
        let aff = self.affinity(query_key)?;
        let (_, mv) = self.contents()?;
        let [k, cv, _] = mv.dims();
        Ok(readout(aff, mv).reshape([k, cv, h, w]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn grows_and_reads_with_temporary_entries() {
        let d = Device::flex();
        let mut bank = MemoryBank::new(Some(3));
        assert!(matches!(bank.read(Tensor::zeros([1, 8, 2, 3], &d)), Err(MemoryError::Empty)));
        let key = || Tensor::<4>::random([1, 8, 2, 3], Distribution::Normal(0.0, 1.0), &d);
        let val = || Tensor::<4>::random([2, 16, 2, 3], Distribution::Normal(0.0, 1.0), &d);
        bank.add(key(), val(), false).unwrap();
        bank.add(key(), val(), true).unwrap();
        assert_eq!(bank.frames(), 1);
        assert_eq!(bank.affinity(key()).unwrap().dims(), [1, 12, 6]);
        bank.add(key(), val(), false).unwrap();
        assert_eq!(bank.affinity(key()).unwrap().dims(), [1, 12, 6], "the temporary entry is gone");
        assert_eq!(bank.read(key()).unwrap().dims(), [2, 16, 2, 3]);
        assert!(bank.add(key(), Tensor::zeros([3, 16, 2, 3], &d), false).is_err());
        assert!(bank.add(key(), Tensor::zeros([2, 16, 3, 3], &d), false).is_err());
    }
}
