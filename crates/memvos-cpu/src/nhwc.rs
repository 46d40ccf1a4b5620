//! Feature maps as `N × H × W × C` float32 buffers: channels innermost, so a pixel's channels
//! are one contiguous vector (what 1×1 convolutions and Winograd transforms read).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use rayon::prelude::*;

/// Values another owner keeps (a burn tensor's storage, say) that a map reads without a copy.
pub trait SharedFloats: Send + Sync {
    /// The values.
    fn floats(&self) -> &[f32];
}

/// A map's values: its own, or another owner's read in place ([`SharedFloats`]). Reading is the
/// same either way (`Deref` to `[f32]`); the first write to shared values copies them
/// (copy-on-write), so the owner never sees a change.
#[derive(Clone)]
pub enum Floats {
    /// Values the map owns.
    Owned(Vec<f32>),
    /// Values read in place.
    Shared(Arc<dyn SharedFloats>),
}

impl Floats {
    /// Whether the values are read in place from another owner.
    pub fn is_shared(&self) -> bool {
        matches!(self, Floats::Shared(_))
    }

    /// The values as a vector (a copy only when they are shared).
    pub fn into_vec(mut self) -> Vec<f32> {
        match &mut self {
            Floats::Owned(v) => std::mem::take(v),
            Floats::Shared(s) => s.floats().to_vec(),
        }
    }
}

impl Drop for Floats {
    /// A large buffer of the map's own goes back to the [`pool`] serving this thread (its
    /// stream's arena, else the process's) for the next map of its size.
    fn drop(&mut self) {
        if let Floats::Owned(v) = self {
            pool::put(std::mem::take(v));
        }
    }
}

/// Buffers of maps that were dropped, kept for the next map of their size (or one up to an
/// eighth smaller, when none of its own size is kept): a streamed video asks for the same sizes
/// every frame, so its maps reuse buffers whose pages are already mapped instead of faulting in
/// (and zeroing) fresh ones.
///
/// Each stream has its own [`Arena`] (memvos-model's `Propagator` holds one and enters it for
/// each step): maps made and dropped on a thread inside [`Arena::enter`] take and give back that
/// arena's buffers, which are freed with it; elsewhere (a network called directly, a map
/// dropped outside any arena) the process's pool serves. Each is bounded by [`KEPT_BYTES`];
/// buffers under [`MIN_VALUES`] are left to the allocator.
pub mod pool {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// Smallest buffer kept: 256 K values (1 MiB).
    pub const MIN_VALUES: usize = 1 << 18;
    /// Most bytes an arena (or the process's pool) keeps at once (128 MiB); a buffer that would
    /// pass it is freed.
    pub const KEPT_BYTES: usize = 128 << 20;

    /// A buffer serves maps down to this fraction smaller than it (1/8): a larger one would
    /// hold memory the map does not use while it lives (taking any larger buffer raised the
    /// peak memory with 3 objects by 40–150 MiB, IMSFR's above PyTorch's).
    const SLACK: usize = 8;

    #[derive(Default)]
    struct Pool {
        /// Kept buffers by capacity (in values).
        by_len: HashMap<usize, Vec<Vec<f32>>>,
        bytes: usize,
    }

    impl Pool {
        /// A kept buffer for `len` values (stale contents), if there is one: the smallest of
        /// a capacity from `len` to [`SLACK`] more. When none holds `len`, kept buffers are
        /// freed first until `len` values' worth is (the caller is about to allocate that
        /// much): memory the pool keeps is then never added on top of a new allocation, so it
        /// does not raise the process's peak.
        fn take(&mut self, len: usize) -> Option<Vec<f32>> {
            let fit = self.by_len.iter().filter(|(cap, bufs)| (len..=len + len / SLACK).contains(*cap) && !bufs.is_empty()).map(|(&cap, _)| cap).min();
            if let Some(mut v) = fit.and_then(|cap| self.by_len.get_mut(&cap)).and_then(Vec::pop) {
                self.bytes -= 4 * v.capacity();
                // Values past the old length (only when it was shorter) are written as zeros.
                v.resize(len, 0.0);
                return Some(v);
            }
            let mut freed = 0;
            while freed < 4 * len && self.bytes > 0 {
                let Some(cap) = self.by_len.iter().find(|(_, bufs)| !bufs.is_empty()).map(|(&cap, _)| cap) else { break };
                if let Some(v) = self.by_len.get_mut(&cap).and_then(Vec::pop) {
                    self.bytes -= 4 * cap;
                    freed += 4 * cap;
                    drop(v);
                }
            }
            None
        }

        /// Keeps `v` while there is room.
        fn put(&mut self, v: Vec<f32>) {
            let cap = v.capacity();
            if self.bytes + 4 * cap <= KEPT_BYTES {
                self.bytes += 4 * cap;
                self.by_len.entry(cap).or_default().push(v);
            }
        }
    }

    /// The process's pool: maps made outside any arena.
    static POOL: Mutex<Option<Pool>> = Mutex::new(None);

    thread_local! {
        /// The arena this thread is inside ([`Arena::enter`]), if any.
        static CURRENT: RefCell<Option<Arc<Arena>>> = const { RefCell::new(None) };
    }

    /// A stream's own buffers: the maps its steps drop serve its next frames' maps, apart from
    /// every other stream's, and are freed when the arena is (with its stream).
    #[derive(Default)]
    pub struct Arena {
        pool: Mutex<Pool>,
    }

    impl std::fmt::Debug for Arena {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Arena").field("kept_bytes", &self.kept_bytes()).finish()
        }
    }

    impl Arena {
        /// An empty arena.
        pub fn new() -> Arc<Arena> {
            Arc::new(Arena::default())
        }

        /// Runs `f` with this arena serving the maps this thread makes and drops (nested
        /// arenas: the innermost; the previous one is back when `f` returns or unwinds).
        pub fn enter<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
            struct Restore(Option<Arc<Arena>>);
            impl Drop for Restore {
                fn drop(&mut self) {
                    let previous = self.0.take();
                    CURRENT.with(|c| *c.borrow_mut() = previous);
                }
            }
            let _restore = Restore(CURRENT.with(|c| c.borrow_mut().replace(Arc::clone(self))));
            f()
        }

        /// Bytes this arena keeps now.
        pub fn kept_bytes(&self) -> usize {
            self.pool.lock().unwrap_or_else(|e| e.into_inner()).bytes
        }
    }

    /// `f` on the pool serving this thread: its arena's, else the process's.
    fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
        match CURRENT.with(|c| c.borrow().clone()) {
            Some(arena) => f(&mut arena.pool.lock().unwrap_or_else(|e| e.into_inner())),
            None => f(POOL.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Pool::default)),
        }
    }

    /// A kept buffer for `len` values (stale contents) from the pool serving this thread, if
    /// it has one ([`Pool::take`]).
    pub(crate) fn take(len: usize) -> Option<Vec<f32>> {
        if len < MIN_VALUES {
            return None;
        }
        with_pool(|p| p.take(len))
    }

    /// Keeps `v` (of capacity ≥ [`MIN_VALUES`]) in the pool serving this thread while it has
    /// room.
    pub(crate) fn put(v: Vec<f32>) {
        if v.capacity() >= MIN_VALUES {
            with_pool(|p| p.put(v));
        }
    }

    /// Bytes the process's pool (outside any arena) keeps now.
    pub fn kept_bytes() -> usize {
        POOL.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |p| p.bytes)
    }
}

impl Deref for Floats {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Floats::Owned(v) => v,
            Floats::Shared(s) => s.floats(),
        }
    }
}

impl DerefMut for Floats {
    fn deref_mut(&mut self) -> &mut [f32] {
        if let Floats::Shared(s) = self {
            *self = Floats::Owned(s.floats().to_vec());
        }
        match self {
            Floats::Owned(v) => v,
            Floats::Shared(_) => unreachable!("made owned above"),
        }
    }
}

impl From<Vec<f32>> for Floats {
    fn from(v: Vec<f32>) -> Self {
        Floats::Owned(v)
    }
}

impl<'a> IntoIterator for &'a Floats {
    type Item = &'a f32;
    type IntoIter = std::slice::Iter<'a, f32>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Floats {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Floats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_shared() { "shared" } else { "owned" };
        write!(f, "{kind} ")?;
        f.debug_list().entries(self.iter().take(8)).finish()?;
        if self.len() > 8 {
            write!(f, " … ({} values)", self.len())?;
        }
        Ok(())
    }
}

/// A feature map, `[N, H, W, C]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Nhwc {
    /// Batch size.
    pub n: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// The values, `[n][h][w][c]` row-major.
    pub data: Floats,
}

/// `len` zeros, a map buffer the pool did not have. A large one is zeroed by all the threads:
/// the allocator may hand back used memory that `calloc` zeroes on the calling thread alone
/// (glibc serves blocks up to its adaptive mmap threshold, up to 32 MiB, from its heap), and
/// fresh pages are faulted in by all threads instead of one.
fn zeroed(len: usize) -> Vec<f32> {
    if len < pool::MIN_VALUES {
        return vec![0.0; len];
    }
    let mut v = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len].par_chunks_mut(1 << 16).for_each(|c| c.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: the first `len` values were written just above.
    unsafe { v.set_len(len) };
    v
}

impl Nhwc {
    /// A map of zeros.
    pub fn zeros(n: usize, h: usize, w: usize, c: usize) -> Self {
        let len = n * h * w * c;
        let data = match pool::take(len) {
            Some(mut v) => {
                v.fill(0.0);
                v
            }
            None => zeroed(len),
        };
        Nhwc { n, h, w, c, data: data.into() }
    }

    /// A map whose every value the caller writes before anything reads it: a kept buffer of
    /// its size ([`pool`]) with stale contents, else zeros. (Debug builds fill a kept buffer
    /// with NaN, so a value left unwritten shows in the tests.)
    pub fn for_overwrite(n: usize, h: usize, w: usize, c: usize) -> Self {
        let len = n * h * w * c;
        let data = match pool::take(len) {
            Some(mut v) => {
                if cfg!(debug_assertions) {
                    v.fill(f32::NAN);
                }
                v
            }
            None => zeroed(len),
        };
        Nhwc { n, h, w, c, data: data.into() }
    }

    /// Pixels (`N·H·W`).
    pub fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }

    /// From an `[N, C, H, W]` buffer.
    pub fn from_nchw(src: &[f32], n: usize, c: usize, h: usize, w: usize) -> Self {
        let hw = h * w;
        let mut data = vec![0.0f32; n * hw * c];
        if data.is_empty() {
            return Nhwc { n, h, w, c, data: data.into() };
        }
        data.par_chunks_mut(w * c).enumerate().for_each(|(row, out)| {
            let (b, y) = (row / h, row % h);
            let base = b * c * hw + y * w;
            for x in 0..w {
                let o = &mut out[x * c..(x + 1) * c];
                for (ch, v) in o.iter_mut().enumerate() {
                    *v = src[base + ch * hw + x];
                }
            }
        });
        Nhwc { n, h, w, c, data: data.into() }
    }

    /// As an `[N, C, H, W]` buffer. Each task writes the planes of a block of 16 channels, so
    /// every pixel's read is one 64-byte stretch (one pass over the map, not one per channel).
    pub fn to_nchw(&self) -> Vec<f32> {
        const BLOCK: usize = 16;
        let (n, h, w, c) = (self.n, self.h, self.w, self.c);
        let hw = h * w;
        let mut out = vec![0.0f32; n * c * hw];
        if hw == 0 || c == 0 {
            return out;
        }
        for (b, image) in out.chunks_mut(c * hw).enumerate() {
            let src = &self.data[b * hw * c..(b + 1) * hw * c];
            image.par_chunks_mut(BLOCK * hw).enumerate().for_each(|(blk, dst)| {
                let (c0, cb) = (blk * BLOCK, dst.len() / hw);
                for p in 0..hw {
                    for (j, &v) in src[p * c + c0..p * c + c0 + cb].iter().enumerate() {
                        dst[j * hw + p] = v;
                    }
                }
            });
        }
        out
    }

    /// Channel-wise concatenation of two maps of one size.
    pub fn concat(a: &Nhwc, b: &Nhwc) -> Nhwc {
        assert_eq!((a.n, a.h, a.w), (b.n, b.h, b.w), "concatenated maps differ in size");
        let c = a.c + b.c;
        let mut data = vec![0.0f32; a.pixels() * c];
        data.par_chunks_mut(c).enumerate().for_each(|(p, o)| {
            o[..a.c].copy_from_slice(&a.data[p * a.c..(p + 1) * a.c]);
            o[a.c..].copy_from_slice(&b.data[p * b.c..(p + 1) * b.c]);
        });
        Nhwc { n: a.n, h: a.h, w: a.w, c, data: data.into() }
    }

    /// Batch `i` of the map (a copy).
    pub fn batch(&self, i: usize) -> Nhwc {
        let len = self.h * self.w * self.c;
        Nhwc { n: 1, h: self.h, w: self.w, c: self.c, data: self.data[i * len..(i + 1) * len].to_vec().into() }
    }

    /// Repeats a batch-1 map `k` times.
    pub fn repeat(&self, k: usize) -> Nhwc {
        let mut data = Vec::with_capacity(self.data.len() * k);
        for _ in 0..k {
            data.extend_from_slice(&self.data);
        }
        Nhwc { n: self.n * k, h: self.h, w: self.w, c: self.c, data: data.into() }
    }

    /// `self += other`, element by element.
    pub fn add_assign(&mut self, other: &Nhwc) {
        assert_eq!(self.data.len(), other.data.len(), "added maps differ in size");
        self.data.par_chunks_mut(4096).zip(other.data.par_chunks(4096)).for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, y)| *x += y));
    }

    /// `self[b] += other[0]` for every batch row `b` (`other` of one row), or `self += other`.
    pub fn add_broadcast(&mut self, other: &Nhwc) {
        if other.n == self.n {
            return self.add_assign(other);
        }
        assert!(other.n == 1 && (other.h, other.w, other.c) == (self.h, self.w, self.c), "broadcast maps differ in size");
        if other.data.is_empty() {
            return;
        }
        self.data.par_chunks_mut(other.data.len()).for_each(|row| {
            row.par_chunks_mut(4096).zip(other.data.par_chunks(4096)).for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, y)| *x += y))
        });
    }

    /// The first `c` channels and the rest, as two maps.
    pub fn split_channels(&self, c: usize) -> (Nhwc, Nhwc) {
        assert!(c <= self.c, "split past the channels");
        let (mut a, mut b) = (Nhwc::zeros(self.n, self.h, self.w, c), Nhwc::zeros(self.n, self.h, self.w, self.c - c));
        for ((px, x), y) in self.data.chunks(self.c).zip(a.data.chunks_mut(c.max(1))).zip(b.data.chunks_mut((self.c - c).max(1))) {
            x.copy_from_slice(&px[..c]);
            y.copy_from_slice(&px[c..]);
        }
        (a, b)
    }

    /// `max(x, 0)` in place.
    pub fn relu(&mut self) {
        self.data.par_chunks_mut(4096).for_each(|a| a.iter_mut().for_each(|x| *x = x.max(0.0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_convert_both_ways_by_the_definition() {
        // Channel counts below, at and across the 16-channel blocks; batches; empty maps.
        for (n, c, h, w) in [(1, 1, 1, 1), (2, 3, 4, 5), (1, 16, 3, 7), (3, 37, 5, 2), (1, 0, 2, 2), (2, 5, 0, 3)] {
            let src: Vec<f32> = (0..n * c * h * w).map(|i| i as f32 * 0.5 - 3.0).collect();
            let x = Nhwc::from_nchw(&src, n, c, h, w);
            for b in 0..n {
                for ch in 0..c {
                    for p in 0..h * w {
                        assert_eq!(x.data[(b * h * w + p) * c + ch], src[(b * c + ch) * h * w + p], "{n}×{c}×{h}×{w}");
                    }
                }
            }
            assert_eq!(x.to_nchw(), src, "{n}×{c}×{h}×{w} round trip");
        }
    }
}
