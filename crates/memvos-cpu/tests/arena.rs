//! Streams' arenas (`memvos_cpu::pool::Arena`): the maps made and dropped inside an arena reuse
//! its buffers, apart from other arenas and from the process's pool; the arena a thread was in
//! comes back when an inner one is left. One test in its own process: the pool is process-wide.

use memvos_cpu::{Nhwc, pool};
use pool::Arena;

#[test]
fn each_arena_reuses_its_own_buffers() {
    let (n, h, w, c) = (1, 64, 64, 80); // 327,680 values: above pool::MIN_VALUES
    let len = n * h * w * c;
    let (a, b) = (Arena::new(), Arena::new());
    // A map dropped inside `a` stays in `a`, not in the process's pool.
    let first = a.enter(|| {
        let m = Nhwc::zeros(n, h, w, c);
        m.data.as_ptr() as usize
    });
    assert_eq!(a.kept_bytes(), 4 * len);
    assert_eq!(pool::kept_bytes(), 0, "the process's pool took a buffer dropped inside an arena");
    // `b` does not see it: its map is a fresh buffer, which `b` keeps.
    let other = b.enter(|| {
        let m = Nhwc::for_overwrite(n, h, w, c);
        m.data.as_ptr() as usize
    });
    assert_ne!(other, first, "one arena served another's buffer");
    assert_eq!((a.kept_bytes(), b.kept_bytes()), (4 * len, 4 * len));
    // `a`'s next map of that size is its buffer again.
    let again = a.enter(|| {
        let m = Nhwc::for_overwrite(n, h, w, c);
        assert_eq!(a.kept_bytes(), 0);
        m.data.as_ptr() as usize
    });
    assert_eq!(again, first, "the arena did not reuse its buffer");
    // Nested: inside `b` within `a`, maps are `b`'s; after it, `a`'s again.
    a.enter(|| {
        b.enter(|| drop(Nhwc::zeros(n, h, w, 2 * c)));
        drop(Nhwc::zeros(n, h, w, 3 * c));
    });
    assert_eq!(b.kept_bytes(), 4 * 2 * len, "the inner arena's map went elsewhere");
    assert_eq!(a.kept_bytes(), 4 * 3 * len, "the outer arena was not back after the inner one");
    // Outside every arena: the process's pool.
    drop(Nhwc::zeros(n, h, w, c));
    assert_eq!(pool::kept_bytes(), 4 * len);
    // An arena left by a panic is left all the same.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.enter(|| panic!("inside"))));
    assert!(caught.is_err());
    let outside = Nhwc::zeros(n, h, w, c);
    assert_eq!(pool::kept_bytes(), 0, "a panic left the thread inside the arena");
    drop(outside);
    assert_eq!((pool::kept_bytes(), a.kept_bytes()), (4 * len, 4 * 3 * len));
}
