//! The runners the examples use: bad inputs (a masks folder with no mask, a mask whose size
//! differs from its frame) and a short end-to-end run with formula weights, resizing included.

use memvos::data::layout::video_folder;
use memvos::data::synth::{SynthConfig, generate_video};
use memvos::data::{DataError, Palette, io, write_mask};
use memvos::device::DeviceChoice;
use memvos::eval::FpsMeter;
use memvos::model::{PropagatorConfig, write_formula_stcn};
use memvos::model::{Benchmark, Method};
use memvos::runner::{Annotations, MethodChoice, ModelArgs, RunError, load_video, run_video};

fn write_video(dir: &std::path::Path, frames: usize) -> memvos::data::synth::SynthVideo {
    let cfg = SynthConfig { videos: 1, frames, height: 48, width: 64, min_objects: 2, max_objects: 2, entry_probability: 0.0, seed: 5, ..Default::default() };
    let v = generate_video(&cfg, 0).unwrap();
    for (t, f) in v.frames.iter().enumerate() {
        io::write_frame(&dir.join(format!("frames/{t:05}.jpg")), f, 95).unwrap();
    }
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    v
}

/// The runners' options with their defaults, on the CPU.
fn model_args(weights: std::path::PathBuf, method: MethodChoice) -> ModelArgs {
    ModelArgs { device: DeviceChoice::Cpu, ..ModelArgs::new(Some(weights), method) }
}

#[test]
fn a_masks_folder_with_no_mask_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_video(dir.path(), 3);
    let video = video_folder("v", &dir.path().join("frames"), Some(&dir.path().join("masks"))).unwrap();
    let err = load_video(&video, Annotations::Every).err().unwrap();
    assert!(matches!(err, RunError::NoMask { ref video, .. } if video == "v"), "{err}");
}

#[test]
fn a_mask_of_another_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let v = write_video(dir.path(), 3);
    let mut small = v.masks[0].clone();
    small.labels = small.labels.slice(ndarray::s![..47, ..]).to_owned();
    let path = dir.path().join("masks/00000.png");
    write_mask(&path, &small, &Palette::davis()).unwrap();
    let video = video_folder("v", &dir.path().join("frames"), Some(&dir.path().join("masks"))).unwrap();
    let err = load_video(&video, Annotations::Every).err().unwrap();
    assert!(matches!(err, RunError::Data(DataError::SizeMismatch { .. })), "{err}");
    assert!(err.to_string().contains("00000.png"));
}

#[test]
fn runs_a_video_with_a_late_object_and_resizing() {
    let dir = tempfile::tempdir().unwrap();
    let v = write_video(dir.path(), 4);
    // Object 1 from frame 0; the other object only from frame 2 (its mask there).
    let mut first = v.masks[0].clone();
    first.labels.mapv_inplace(|l| (l == 1) as u8);
    write_mask(&dir.path().join("masks/00000.png"), &first, &Palette::davis()).unwrap();
    write_mask(&dir.path().join("masks/00002.png"), &v.masks[2], &Palette::davis()).unwrap();
    let weights = dir.path().join("w.safetensors");
    write_formula_stcn(&weights, &burn::tensor::Device::flex()).unwrap();
    let args = ModelArgs { mem_every: Some(2), include_last: true, ..model_args(weights, MethodChoice::Stcn) };
    let loaded = args.load().unwrap();
    let video = video_folder("v", &dir.path().join("frames"), Some(&dir.path().join("masks"))).unwrap();
    let frames = load_video(&video, Annotations::Every).unwrap();
    let mut fps = FpsMeter::new();
    let cfg = args.schedule_for(Method::Stcn, Benchmark::YouTube).unwrap();
    assert_eq!((cfg.policy.every, cfg.top_k, cfg.policy.include_last), (2, Some(20), true));
    let out = run_video(&loaded, &cfg, &frames, Some(32), &mut fps).unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(fps.frames(), 4);
    for (_, labels) in &out {
        assert_eq!((labels.height(), labels.width()), (48, 64), "outputs come back at the frame size");
    }
    // Object 1 is segmented from frame 0; the object that appears in frame 2's mask joins there.
    let late: Vec<u8> = v.masks[2].object_ids().into_iter().filter(|&i| i != 1).collect();
    assert!(!late.is_empty(), "the test video must have an object besides 1 in frame 2");
    assert!(out[0].1.object_ids().iter().all(|&i| i == 1), "frames 0-1 know only object 1");
    assert!(out[1].1.object_ids().iter().all(|&i| i == 1));
    for (t, labels) in &out[2..] {
        let ids = labels.object_ids();
        assert!(late.iter().any(|l| ids.contains(l)), "frame {t}: the late object is missing from {ids:?}");
        assert!(ids.iter().all(|i| v.masks[2].object_ids().contains(i)), "frame {t}: unknown labels {ids:?}");
    }
}

use memvos::burn;

#[test]
fn every_policy_runs_and_bounded_ones_stay_bounded() {
    use memvos::memory::PolicyKind;
    use memvos::model::{Propagator, load_stcn};
    let dir = tempfile::tempdir().unwrap();
    let v = write_video(dir.path(), 14);
    let weights = dir.path().join("w.safetensors");
    let d = burn::tensor::Device::flex();
    write_formula_stcn(&weights, &d).unwrap();
    let net = load_stcn(&weights, &d).unwrap();
    for kind in PolicyKind::ALL {
        let mut cfg = PropagatorConfig::youtube().with_policy(kind);
        cfg.policy.every = 1;
        if kind == PolicyKind::Qdmn {
            cfg.policy.threshold = Some(1e-6); // accept every frame the rule allows
        }
        if kind.bounded() {
            cfg.policy.capacity = Some(3);
        }
        cfg.chunk = Some(50);
        let mut prop = Propagator::new(std::sync::Arc::new(net.clone()), cfg, &d).unwrap();
        assert_eq!(prop.policy().name(), kind.name());
        let mut most = 0;
        for (t, f) in v.frames.iter().enumerate() {
            let out = prop.step(f, (t == 0).then_some(&v.masks[0])).unwrap().unwrap();
            assert_eq!(out.ids[1..], v.masks[0].object_ids()[..], "{kind}");
            most = most.max(prop.memory_frames());
        }
        if kind.bounded() {
            assert_eq!(most, 3, "{kind} keeps at most its capacity");
        } else {
            assert_eq!(most, 13, "{kind} stores every frame but the last");
        }
    }
    // A bad capacity is a configuration error, not a panic.
    let mut cfg = PropagatorConfig::davis().with_policy(PolicyKind::Fifo);
    cfg.policy.capacity = Some(0);
    assert!(Propagator::new(std::sync::Arc::new(net.clone()), cfg, &d).err().unwrap().to_string().contains("capacity"));
}

#[test]
fn long_video_checkpoints_show_bounded_and_growing_memory() {
    use memvos::long_video::{run_long_video, synthetic_clip};
    use memvos::memory::PolicyKind;
    use memvos::model::Stcn;
    let d = burn::tensor::Device::flex();
    let net = Stcn::new(&d);
    let clip = synthetic_clip(32, 48, 10, 1).unwrap();
    let run = |kind: PolicyKind| {
        let mut cfg = PropagatorConfig::youtube().with_policy(kind);
        cfg.policy.every = 2;
        cfg.policy.capacity = kind.bounded().then_some(4);
        let mut seen = 0;
        let r = run_long_video(std::sync::Arc::new(net.clone()), cfg, &d, &clip, 40, &[20, 40], 5, |t| seen = t).unwrap();
        assert_eq!(seen, 40);
        r
    };
    let fifo = run(PolicyKind::Fifo);
    assert_eq!(fifo.iter().map(|c| (c.frame, c.memory_frames)).collect::<Vec<_>>(), vec![(20, 4), (40, 4)]);
    assert!(fifo.iter().all(|c| c.ms_per_frame > 0.0 && c.rss_mb.is_none_or(|m| m > 0.0)));
    let every = run(PolicyKind::EveryN);
    assert_eq!(every.iter().map(|c| c.memory_frames).collect::<Vec<_>>(), vec![10, 20]);
}

#[test]
fn flags_a_method_cannot_take_are_errors_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    write_formula_stcn(&weights, &burn::tensor::Device::flex()).unwrap();
    // --kernel with an explicit method that has none: refused before anything is loaded.
    let a = ModelArgs { kernel: true, ..model_args(dir.path().join("absent.pth"), MethodChoice::Stcn) };
    let err = a.load().err().unwrap();
    assert!(err.to_string().starts_with("--kernel: ") && err.to_string().contains("STCN has none"), "{err}");
    // --kernel with auto on an STCN file: refused when the method is known.
    let a = ModelArgs { kernel: true, ..model_args(weights.clone(), MethodChoice::Auto) };
    let loaded = a.load().unwrap();
    let err = a.schedule_for(loaded.method(), Benchmark::Davis2017).unwrap_err();
    assert!(err.to_string().starts_with("--kernel: "), "{err}");
    // A quality threshold outside (0, 1], or on a policy that has none.
    for t in [0.0, -1.0, 1.5] {
        let a = ModelArgs { quality_threshold: Some(t), ..model_args(weights.clone(), MethodChoice::Qdmn) };
        let err = a.load().err().unwrap();
        assert!(err.to_string().starts_with("--quality-threshold: ") && err.to_string().contains("outside (0, 1]"), "{err}");
    }
    let a = ModelArgs { quality_threshold: Some(0.5), ..model_args(weights.clone(), MethodChoice::Stcn) };
    let err = a.schedule_for(Method::Stcn, Benchmark::Davis2017).unwrap_err();
    assert!(err.to_string().contains("--quality-threshold") && err.to_string().contains("only the qdmn policy"), "{err}");
    let a = ModelArgs { quality_threshold: Some(0.5), policy: Some(memvos::memory::PolicyKind::Qdmn), ..model_args(weights.clone(), MethodChoice::Stcn) };
    assert_eq!(a.schedule_for(Method::Stcn, Benchmark::Davis2017).unwrap().policy.threshold, Some(0.5));
    // A capacity below 2 names --capacity; a top-k of 0 names --top-k.
    let a = ModelArgs { capacity: Some(1), policy: Some(memvos::memory::PolicyKind::Reservoir), ..model_args(weights.clone(), MethodChoice::Stcn) };
    assert!(a.schedule_for(Method::Stcn, Benchmark::Davis2017).unwrap_err().to_string().starts_with("--capacity: "));
    let a = ModelArgs { top_k: Some(0), ..model_args(weights.clone(), MethodChoice::Stcn) };
    assert!(a.load().err().unwrap().to_string().starts_with("--top-k: "));
    // An STCN checkpoint given as QDMN: both named, with the file.
    let a = model_args(weights.clone(), MethodChoice::Qdmn);
    let msg = memvos::cli::report(&a.load().err().unwrap());
    assert!(msg.contains("w.safetensors") && msg.contains("holds STCN weights, not QDMN weights"), "{msg}");
}

#[test]
fn weights_by_published_name_come_from_the_cache_folder() {
    let cache = tempfile::tempdir().unwrap();
    // SAFETY: no other test of this binary reads or writes MEMVOS_CACHE.
    unsafe { std::env::set_var("MEMVOS_CACHE", cache.path()) };
    // Not downloaded: one error that says which command fetches it.
    let Err(err) = model_args("stcn".into(), MethodChoice::Auto).load() else { panic!("loaded weights that are not downloaded") };
    let err = err.to_string();
    assert!(err.contains("--weights") && err.contains("weights -- download stcn") && err.contains("stcn.pth"), "{err}");
    // Downloaded (here: formula weights in the published format): found by name.
    write_formula_stcn(&cache.path().join("stcn.pth"), &memvos::burn::tensor::Device::flex()).unwrap();
    let loaded = model_args("STCN".into(), MethodChoice::Auto).load().unwrap();
    assert_eq!(loaded.method(), Method::Stcn);
    assert!(loaded.describe().contains("published stcn weights"), "{}", loaded.describe());
    unsafe { std::env::remove_var("MEMVOS_CACHE") };
}
