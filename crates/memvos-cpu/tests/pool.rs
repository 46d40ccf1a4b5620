//! The pool of map buffers (`memvos_cpu::pool`): a dropped map's buffer serves the next map of
//! its size (or one up to an eighth smaller), zeroed when asked for zeros; a request it cannot serve frees what it keeps first, so
//! the pool never sits on top of a new allocation. One test in its own process: the pool is
//! process-wide.

use memvos_cpu::{Nhwc, pool};

#[test]
fn dropped_buffers_serve_the_next_map_of_their_size() {
    let (n, h, w, c) = (1, 64, 64, 80); // 327,680 values: above pool::MIN_VALUES
    let len = n * h * w * c;
    assert!(len >= pool::MIN_VALUES);
    let mut a = Nhwc::zeros(n, h, w, c);
    a.data.iter_mut().for_each(|v| *v = 3.0);
    let ptr = a.data.as_ptr();
    drop(a);
    assert_eq!(pool::kept_bytes(), 4 * len);
    // The same size again: the same buffer, its stale values overwritten by the caller (debug
    // builds fill it with NaN first, so a value a kernel forgets shows up).
    let b = Nhwc::for_overwrite(n, h, w, c);
    assert_eq!(b.data.as_ptr(), ptr, "the kept buffer was not reused");
    assert_eq!(pool::kept_bytes(), 0);
    if cfg!(debug_assertions) {
        assert!(b.data.iter().all(|v| v.is_nan()));
    }
    drop(b);
    // Zeros from a kept buffer are zeros.
    let z = Nhwc::zeros(n, h, w, c);
    assert_eq!(z.data.as_ptr(), ptr);
    assert!(z.data.iter().all(|&v| v == 0.0));
    drop(z);
    // Another size: nothing kept fits, so the kept buffer is freed before the new allocation.
    assert_eq!(pool::kept_bytes(), 4 * len);
    let other = Nhwc::zeros(n, h, w, 2 * c);
    assert_eq!(pool::kept_bytes(), 0, "the pool kept its buffer beside a new allocation");
    drop(other);
    // Small maps are left to the allocator.
    drop(Nhwc::zeros(1, 4, 4, 4));
    assert_eq!(pool::kept_bytes(), 4 * 2 * len);
    // A map much smaller than a kept buffer does not take it (it would hold memory it does not
    // use): the buffer is freed before the allocation.
    let smaller = Nhwc::zeros(n, h, w, c);
    assert_eq!(pool::kept_bytes(), 0, "a buffer twice the map's size was kept beside it");
    drop(smaller);
    assert_eq!(pool::kept_bytes(), 4 * len);
    // A slightly smaller one (within an eighth) takes it, zeroed when asked, and gives it back
    // whole.
    let mut near = Nhwc::zeros(n, h, w, c - 5);
    assert_eq!(pool::kept_bytes(), 0, "the kept buffer did not serve a map 1/16 smaller");
    assert!(near.data.len() == len / 16 * 15 && near.data.iter().all(|&v| v == 0.0));
    let last = near.data.len() - 1;
    near.data[last] = 5.0;
    drop(near);
    assert_eq!(pool::kept_bytes(), 4 * len);
    let again = Nhwc::zeros(n, h, w, c);
    assert!(again.data.iter().all(|&v| v == 0.0), "the values past the smaller map's are zeros too");
    drop(again);
    // A map's values handed out (into_vec) leave the pool out.
    let v = Nhwc::zeros(n, h, w, c).data.into_vec();
    assert_eq!(v.len(), len);
    drop(v);
    assert_eq!(pool::kept_bytes(), 0, "a vector handed out is not the pool's");
    // The bound: at most KEPT_BYTES at once.
    let big: Vec<Nhwc> = (0..(pool::KEPT_BYTES / (4 * len)) + 3).map(|_| Nhwc::zeros(n, h, w, c)).collect();
    drop(big);
    assert!(pool::kept_bytes() <= pool::KEPT_BYTES);
}
