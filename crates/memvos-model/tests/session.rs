//! Interactive sessions on a synthetic video with the shipped model: annotations at any frame,
//! runs in both directions, objects added later, stopping and continuing, permanent memory.

use memvos_data::synth::{SynthConfig, SynthVideo, generate_video};
use memvos_data::{Frame, LabelMap, Palette};
use memvos_memory::PolicyKind;
use memvos_model::{Benchmark, Direction, Frames, MemoryNetwork, Model, ModelOptions, ModelSource, PropagatorConfig, Session, SessionError, Until};

fn video(frames: usize, objects: usize, seed: u64) -> SynthVideo {
    let cfg = SynthConfig { videos: 1, frames, height: 64, width: 96, min_objects: objects, max_objects: objects, entry_probability: 0.0, seed, ..Default::default() };
    generate_video(&cfg, 0).unwrap()
}

fn session_with(frames: Vec<Frame>, cfg: Option<PropagatorConfig>) -> Session {
    let model = Model::load(ModelSource::Default, &ModelOptions::default()).unwrap();
    let cfg = cfg.unwrap_or_else(|| PropagatorConfig::for_method(model.method(), Benchmark::YouTube));
    Session::new(model.shared(), cfg, Box::new(Frames::memory(frames)), &burn::tensor::Device::flex()).unwrap()
}

fn run_all(s: &mut Session, from: usize, d: Direction, until: Until) -> Vec<usize> {
    s.propagate(from, d, until).unwrap().map(|r| r.unwrap().0).collect()
}

fn only(labels: &LabelMap, keep: &[u8]) -> LabelMap {
    let mut l = labels.clone();
    l.labels.mapv_inplace(|v| if keep.contains(&v) { v } else { 0 });
    l
}

#[test]
fn a_correction_changes_what_follows_and_nothing_before() {
    let v = video(30, 2, 21);
    let mut s = session_with(v.frames.clone(), None);
    s.annotate(0, v.masks[0].clone()).unwrap();
    assert_eq!(run_all(&mut s, 0, Direction::Forward, Until::NextAnnotation), (1..30).collect::<Vec<_>>());
    let before: Vec<LabelMap> = (0..30).map(|i| s.labels(i).unwrap().clone()).collect();
    // Correct frame 20 and propagate again from it.
    s.annotate(20, v.masks[20].clone()).unwrap();
    assert_eq!(s.labels(20), Some(&v.masks[20]));
    assert_eq!(run_all(&mut s, 20, Direction::Forward, Until::NextAnnotation), (21..30).collect::<Vec<_>>());
    assert_eq!(s.labels(20), Some(&v.masks[20]), "frame 20 is its annotation");
    for (i, b) in before.iter().enumerate().take(20) {
        assert_eq!(s.labels(i), Some(b), "frame {i} before the correction changed");
    }
    let changed = (21..30).filter(|&i| s.labels(i) != Some(&before[i])).count();
    assert!(changed > 0, "no frame after the correction changed");
    // A forward run from 0 now stops before the annotated frame 20.
    assert_eq!(run_all(&mut s, 0, Direction::Forward, Until::NextAnnotation).last(), Some(&19));
}

#[test]
fn an_object_added_at_frame_10_exists_from_frame_10_on() {
    let v = video(16, 2, 5);
    let ids = v.masks[0].object_ids();
    assert_eq!(ids.len(), 2);
    let (a, b) = (ids[0], ids[1]);
    let mut s = session_with(v.frames.clone(), None);
    s.annotate(0, only(&v.masks[0], &[a])).unwrap();
    s.annotate(10, only(&v.masks[10], &[a, b])).unwrap();
    assert_eq!(s.objects(), vec![a, b]);
    assert_eq!(run_all(&mut s, 0, Direction::Forward, Until::Through), (1..16).collect::<Vec<_>>());
    for i in 0..16 {
        let has = s.labels(i).unwrap().labels.iter().any(|&x| x == b);
        assert_eq!(has, i >= 10, "frame {i}: object {b} {}", if has { "present" } else { "absent" });
        assert!(s.labels(i).unwrap().labels.iter().any(|&x| x == a), "frame {i} lost object {a}");
    }
    // remove_object takes it out of annotations and results alike.
    s.remove_object(b);
    assert!((0..16).all(|i| s.labels(i).unwrap().labels.iter().all(|&x| x != b)));
}

#[test]
fn backward_is_forward_on_the_reversed_video() {
    let v = video(12, 2, 8);
    let n = v.frames.len();
    let mut back = session_with(v.frames.clone(), None);
    back.annotate(n - 1, v.masks[n - 1].clone()).unwrap();
    assert_eq!(run_all(&mut back, n - 1, Direction::Backward, Until::NextAnnotation), (0..n - 1).rev().collect::<Vec<_>>());
    let reversed: Vec<Frame> = v.frames.iter().rev().cloned().collect();
    let mut fwd = session_with(reversed, None);
    fwd.annotate(0, v.masks[n - 1].clone()).unwrap();
    run_all(&mut fwd, 0, Direction::Forward, Until::NextAnnotation);
    for i in 0..n {
        let (x, y) = (back.labels(i).unwrap(), fwd.labels(n - 1 - i).unwrap());
        assert!(x.labels.as_slice() == y.labels.as_slice(), "frame {i}: backward differs from forward on the reversed video");
    }
    // Only annotated on its last frame, the whole video is filled backwards.
    assert!((0..n).all(|i| back.labels(i).is_some()));
}

#[test]
fn both_directions_meet_at_the_nearest_annotation() {
    let v = video(11, 1, 3);
    let mut s = session_with(v.frames.clone(), None);
    s.annotate(0, v.masks[0].clone()).unwrap();
    s.annotate(10, v.masks[10].clone()).unwrap();
    run_all(&mut s, 0, Direction::Forward, Until::NextAnnotation);
    run_all(&mut s, 10, Direction::Backward, Until::NextAnnotation);
    for i in 1..10 {
        let f = &s.result(i, Direction::Forward).unwrap().labels;
        let b = &s.result(i, Direction::Backward).unwrap().labels;
        let want = if 10 - i < i { b } else { f };
        assert_eq!(s.labels(i), Some(want), "frame {i}: the nearest annotation's run wins (ties forward)");
    }
    // Changing an annotation drops the results that came from it.
    s.annotate(10, v.masks[9].clone()).unwrap();
    assert!((1..10).all(|i| s.result(i, Direction::Backward).is_none()));
    assert!((1..10).all(|i| s.result(i, Direction::Forward).is_some()));
}

#[test]
fn a_stopped_run_keeps_its_frames_and_can_be_continued() {
    let v = video(14, 1, 9);
    let mut s = session_with(v.frames.clone(), None);
    s.annotate(0, v.masks[0].clone()).unwrap();
    {
        let mut p = s.propagate(0, Direction::Forward, Until::NextAnnotation).unwrap();
        for _ in 0..5 {
            p.next().unwrap().unwrap();
        }
        let pr = p.progress();
        assert_eq!((pr.done, pr.total), (5, 13));
    } // stopped: dropped after frame 5
    assert!((1..=5).all(|i| s.labels(i).is_some()) && (6..14).all(|i| s.labels(i).is_none()));
    // Continued from the last frame done (its result starts the run).
    assert_eq!(run_all(&mut s, 5, Direction::Forward, Until::NextAnnotation), (6..14).collect::<Vec<_>>());
    assert!((0..14).all(|i| s.labels(i).is_some()));
    assert_eq!(s.result(9, Direction::Forward).unwrap().source, 0, "the continued run still comes from frame 0's annotation");
    // Until a frame.
    assert_eq!(run_all(&mut s, 0, Direction::Forward, Until::Frame(3)), vec![1, 2, 3]);
}

#[test]
fn annotations_are_permanent_memory_even_under_fifo_of_one() {
    let v = video(16, 1, 2);
    let mut cfg = PropagatorConfig::youtube().with_policy(PolicyKind::Fifo);
    cfg.policy.capacity = Some(1);
    cfg.policy.every = 1;
    let mut s = session_with(v.frames.clone(), Some(cfg));
    s.annotate(0, v.masks[0].clone()).unwrap();
    s.annotate(10, v.masks[10].clone()).unwrap();
    let mut run = s.start(0, Direction::Forward, Until::Through).unwrap();
    while let Some(r) = run.step(&mut s) {
        r.unwrap();
    }
    // Stream index = frame here (forward from 0): frames 0 and 10 are in memory, nothing else.
    assert_eq!(run.memory(), vec![vec![0, 10]]);
}

#[test]
fn export_writes_every_frame_and_errors_name_the_frame() {
    let v = video(6, 2, 4);
    let mut s = session_with(v.frames.clone(), None);
    let err = s.annotate(2, LabelMap::zeros(10, 10)).unwrap_err();
    assert!(matches!(err, SessionError::AnnotationSize { frame: 2, .. }) && err.to_string().contains("00002"), "{err}");
    assert!(matches!(s.start(3, Direction::Forward, Until::NextAnnotation), Err(SessionError::NothingToStartFrom { frame: 3, .. })));
    assert!(matches!(s.start(99, Direction::Forward, Until::NextAnnotation), Err(SessionError::NoFrame { frame: 99, .. })));
    s.annotate(0, v.masks[0].clone()).unwrap();
    run_all(&mut s, 0, Direction::Forward, Until::NextAnnotation);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(s.export(dir.path(), &Palette::davis()).unwrap(), 6);
    for i in 0..6 {
        let m = memvos_data::read_mask(&dir.path().join(format!("{i:05}.png"))).unwrap();
        assert_eq!(Some(&m.labels), s.labels(i));
    }
    s.clear(0);
    assert!(s.labels(0).is_none() && s.labels(3).is_none(), "clearing an annotation drops its results");
    s.annotate(0, v.masks[0].clone()).unwrap();
    s.reset();
    assert!(s.annotated().is_empty() && s.labels(0).is_none());
}
