//! Bad results give typed errors naming the sequence and frame; also the DAVIS-2016 protocol,
//! a sequence longer than 255 scored frames, and YouTube-VOS packaging and local scoring.

use std::fs;
use std::path::Path;

use memvos_data::layout::{Davis, YouTube};
use memvos_data::{LabelMap, Palette, write_mask};
use memvos_eval::youtube::{check_submission, holdout, package_submission, score_videos, submission_path};
use memvos_eval::{EvalError, EvalOptions, Protocol, evaluate, evaluate_sequence};
use ndarray::Array2;

fn square(h: usize, w: usize, id: u8, y0: usize, x0: usize, size: usize) -> LabelMap {
    LabelMap::new(Array2::from_shape_fn((h, w), |(y, x)| {
        if (y0..y0 + size).contains(&y) && (x0..x0 + size).contains(&x) { id } else { 0 }
    }))
}

/// A DAVIS root with one sequence `seq` of `t` frames (a square moving right), and results
/// equal to the ground truth.
fn make_root(dir: &Path, t: usize) {
    fs::create_dir_all(dir.join("ImageSets/2017")).unwrap();
    fs::write(dir.join("ImageSets/2017/val.txt"), "seq\n").unwrap();
    let pal = Palette::davis();
    for i in 0..t {
        let m = square(24, 40, 1, 5, (i % 20) + 2, 8);
        write_mask(&dir.join(format!("Annotations/480p/seq/{i:05}.png")), &m, &pal).unwrap();
        write_mask(&dir.join(format!("results/seq/{i:05}.png")), &m, &pal).unwrap();
    }
}

fn open(dir: &Path) -> memvos_data::Dataset {
    Davis::new(dir, 2017, "val").open().unwrap()
}

#[test]
fn missing_results_folder() {
    let dir = tempfile::tempdir().unwrap();
    make_root(dir.path(), 5);
    fs::remove_dir_all(dir.path().join("results/seq")).unwrap();
    let err = evaluate(&open(dir.path()), &dir.path().join("results"), &EvalOptions::default(), |_| {}).unwrap_err();
    assert!(matches!(err, EvalError::MissingResults { ref sequence, .. } if sequence == "seq"), "{err}");
    let err = evaluate(&open(dir.path()), &dir.path().join("nowhere"), &EvalOptions::default(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
}

#[test]
fn missing_scored_frame() {
    let dir = tempfile::tempdir().unwrap();
    make_root(dir.path(), 5);
    // The first and last frames are never read, so their absence is fine...
    fs::remove_file(dir.path().join("results/seq/00000.png")).unwrap();
    fs::remove_file(dir.path().join("results/seq/00004.png")).unwrap();
    let ds = open(dir.path());
    evaluate(&ds, &dir.path().join("results"), &EvalOptions::default(), |_| {}).unwrap();
    // ...but a scored one missing is an error naming sequence and frame.
    fs::remove_file(dir.path().join("results/seq/00002.png")).unwrap();
    let err = evaluate(&ds, &dir.path().join("results"), &EvalOptions::default(), |_| {}).unwrap_err();
    assert!(matches!(err, EvalError::MissingFrame { ref sequence, ref frame, .. } if sequence == "seq" && frame == "00002"), "{err}");
}

#[test]
fn result_of_another_size() {
    let dir = tempfile::tempdir().unwrap();
    make_root(dir.path(), 5);
    write_mask(&dir.path().join("results/seq/00003.png"), &LabelMap::zeros(24, 41), &Palette::davis()).unwrap();
    let err = evaluate(&open(dir.path()), &dir.path().join("results"), &EvalOptions::default(), |_| {}).unwrap_err();
    assert!(matches!(err, EvalError::SizeMismatch { ref frame, got_w: 41, want_w: 40, .. } if frame == "00003"), "{err}");
    assert!(err.to_string().contains("seq"));
}

#[test]
fn label_the_ground_truth_does_not_have() {
    let dir = tempfile::tempdir().unwrap();
    make_root(dir.path(), 5);
    write_mask(&dir.path().join("results/seq/00001.png"), &square(24, 40, 2, 0, 0, 3), &Palette::davis()).unwrap();
    let err = evaluate(&open(dir.path()), &dir.path().join("results"), &EvalOptions::default(), |_| {}).unwrap_err();
    assert!(matches!(err, EvalError::UnknownLabel { label: 2, num_objects: 1, ref frame, .. } if frame == "00001"), "{err}");
}

#[test]
fn corrupt_result_png() {
    let dir = tempfile::tempdir().unwrap();
    make_root(dir.path(), 5);
    fs::write(dir.path().join("results/seq/00001.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
    let err = evaluate(&open(dir.path()), &dir.path().join("results"), &EvalOptions::default(), |_| {}).unwrap_err();
    assert!(matches!(err, EvalError::Data(_)) && err.to_string().contains("00001.png"), "{err}");
}

#[test]
fn too_short_sequence() {
    let dir = tempfile::tempdir().unwrap();
    make_root(dir.path(), 2);
    let err = evaluate(&open(dir.path()), &dir.path().join("results"), &EvalOptions::default(), |_| {}).unwrap_err();
    assert!(matches!(err, EvalError::TooShort { frames: 2, .. }), "{err}");
}

#[test]
fn long_sequence_decay_is_computed_without_overflow() {
    // 302 frames -> 300 scored. The prediction drifts more and more, so J falls over time; the
    // toolkit would return NaN here (uint8 bins), we give the mean of the first quarter
    // minus the mean of the last.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("ImageSets/2017")).unwrap();
    fs::write(root.join("ImageSets/2017/val.txt"), "long\n").unwrap();
    let pal = Palette::davis();
    for i in 0..302 {
        let gt = square(16, 64, 1, 4, 10, 8);
        let pred = square(16, 64, 1, 4, 10 + i / 40, 8);
        write_mask(&root.join(format!("Annotations/480p/long/{i:05}.png")), &gt, &pal).unwrap();
        write_mask(&root.join(format!("results/long/{i:05}.png")), &pred, &pal).unwrap();
    }
    let ds = Davis::new(root, 2017, "val").open().unwrap();
    let objs = evaluate_sequence(&ds.videos[0], &root.join("results"), &EvalOptions::default()).unwrap();
    let j = &objs[0].j;
    assert_eq!(j.len(), 300);
    let first: Vec<f64> = j[0..=75].to_vec();
    let last: Vec<f64> = j[224..=299].to_vec();
    let m = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let want = m(&first) - m(&last);
    assert!(want > 0.3);
    assert!((objs[0].j_stats.decay - want).abs() < 1e-12, "{} vs {want}", objs[0].j_stats.decay);
}

#[test]
fn davis_2016_protocol_scores_every_object_as_one() {
    let dir = tempfile::tempdir().unwrap();
    make_root(dir.path(), 5);
    // The prediction splits the object into labels 1 and 2: wrong for 2017, fine for 2016.
    for i in 0..5 {
        let mut m = square(24, 40, 1, 5, (i % 20) + 2, 8);
        for y in 5..9 {
            for x in 0..40 {
                if m.labels[[y, x]] == 1 {
                    m.labels[[y, x]] = 2;
                }
            }
        }
        write_mask(&dir.path().join(format!("results/seq/{i:05}.png")), &m, &Palette::davis()).unwrap();
    }
    fs::create_dir_all(dir.path().join("ImageSets/2016")).unwrap();
    fs::write(dir.path().join("ImageSets/2016/val.txt"), "seq\n").unwrap();
    let ds16 = Davis::new(dir.path(), 2016, "val").open().unwrap();
    let opts = EvalOptions { protocol: Protocol::Davis2016, ..Default::default() };
    let e = evaluate(&ds16, &dir.path().join("results"), &opts, |_| {}).unwrap();
    assert_eq!(e.objects.len(), 1);
    assert_eq!(e.global.j_mean, 1.0);
    assert!(evaluate(&open(dir.path()), &dir.path().join("results"), &EvalOptions::default(), |_| {}).is_err());
}

/// A YouTube-VOS style root: video `v` with object 3 from frame 00000 and object 7 from 00010.
fn make_youtube(root: &Path) {
    let pal = Palette::davis();
    let frame = memvos_data::Frame::filled(20, 30, [0, 0, 0]);
    for f in ["00000", "00005", "00010", "00015"] {
        memvos_data::io::write_frame(&root.join(format!("train/JPEGImages/v/{f}.jpg")), &frame, 90).unwrap();
        let mut m = square(20, 30, 3, 2, 2, 6);
        if f >= "00010" {
            for y in 10..16 {
                for x in 15..25 {
                    m.labels[[y, x]] = 7;
                }
            }
        }
        write_mask(&root.join(format!("train/Annotations/v/{f}.png")), &m, &pal).unwrap();
    }
    fs::write(
        root.join("train/meta.json"),
        r#"{"videos": {"v": {"objects": {"3": {"category": "cat", "frames": ["00000", "00005", "00010", "00015"]},
                                          "7": {"category": "dog", "frames": ["00010", "00015"]}}}}}"#,
    )
    .unwrap();
}

#[test]
fn youtube_local_scoring_and_packaging() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_youtube(root);
    let ds = YouTube::new(root, "train").open().unwrap();
    let sub = root.join("sub");
    let pal = Palette::davis();
    for (i, f) in ["00000", "00005", "00010", "00015"].iter().enumerate() {
        let gt = ds.videos[0].read_annotation(i, None).unwrap().unwrap();
        write_mask(&submission_path(&sub, "v", f), &gt, &pal).unwrap();
    }
    let scores = score_videos(&ds, "train", &["v".to_string()], &sub, 0.008).unwrap();
    // Object 3 scored on 00005, 00010, 00015; object 7 (first seen at 00010) on 00015 only.
    let shape: Vec<(u8, usize)> = scores.objects.iter().map(|o| (o.id, o.j.len())).collect();
    assert_eq!(shape, vec![(3, 3), (7, 1)]);
    assert_eq!(scores.global.jf_mean, 1.0);

    let report = check_submission(&ds, &sub).unwrap();
    assert_eq!(report.frames, 4);
    let zip_path = root.join("submission.zip");
    package_submission(&ds, &sub, &zip_path).unwrap();
    let mut archive = zip::ZipArchive::new(fs::File::open(&zip_path).unwrap()).unwrap();
    let mut names: Vec<String> = archive.file_names().map(|n| n.unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names, ["Annotations/v/00000.png", "Annotations/v/00005.png", "Annotations/v/00010.png", "Annotations/v/00015.png"]);
    let mut entry = archive.by_name("Annotations/v/00015.png").unwrap();
    let mut png = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut png).unwrap();
    assert_eq!(png, fs::read(submission_path(&sub, "v", "00015")).unwrap());
    drop(entry);

    // A missing required frame, and a label the ground truth lacks, are named errors.
    fs::remove_file(submission_path(&sub, "v", "00010")).unwrap();
    let err = check_submission(&ds, &sub).unwrap_err();
    assert!(matches!(err, EvalError::MissingSubmissionFrame { ref frame, .. } if frame == "00010"), "{err}");
    assert!(matches!(score_videos(&ds, "train", &["v".into()], &sub, 0.008).unwrap_err(), EvalError::MissingFrame { .. }));
    write_mask(&submission_path(&sub, "v", "00010"), &square(20, 30, 9, 0, 0, 2), &pal).unwrap();
    let err = score_videos(&ds, "train", &["v".into()], &sub, 0.008).unwrap_err();
    assert!(matches!(err, EvalError::UnknownLabel { label: 9, .. }), "{err}");
    assert!(score_videos(&ds, "train", &[], &sub, 0.008).is_err());
    assert!(score_videos(&ds, "train", &["nope".into()], &sub, 0.008).is_err());
}

#[test]
fn holdout_is_deterministic_and_sized() {
    let names: Vec<String> = (0..50).map(|i| format!("vid{i:03}")).collect();
    let a = holdout(&names, 10, 1).unwrap();
    assert_eq!(a.len(), 10);
    assert_eq!(a, holdout(&names, 10, 1).unwrap());
    assert_ne!(a, holdout(&names, 10, 2).unwrap());
    // Holding out more videos than the split has, or none, is an error, not a quiet smaller set.
    let err = holdout(&names[..4], 10, 0).unwrap_err().to_string();
    assert!(err.contains("--score 10") && err.contains("4 video(s)"), "{err}");
    assert!(holdout(&names, 0, 0).is_err());
}

#[test]
fn scoring_refuses_a_split_without_full_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_youtube(root);
    // A validation-like split: only the first-appearance masks are public.
    for f in ["00005", "00015"] {
        fs::remove_file(root.join(format!("train/Annotations/v/{f}.png"))).unwrap();
    }
    let ds = YouTube::new(root, "train").open().unwrap();
    let err = score_videos(&ds, "valid", &["v".into()], &root.join("sub"), 0.008).unwrap_err();
    assert!(matches!(err, EvalError::IncompleteGroundTruth { annotated: 2, frames: 4, .. }), "{err}");
    assert!(err.to_string().contains("split valid"), "{err}");
}

#[test]
fn the_submission_check_decodes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_youtube(root);
    let ds = YouTube::new(root, "train").open().unwrap();
    let pal = Palette::davis();
    let sub = root.join("sub");
    let write_all = || {
        for (i, f) in ["00000", "00005", "00010", "00015"].iter().enumerate() {
            let gt = ds.videos[0].read_annotation(i, None).unwrap().unwrap();
            write_mask(&submission_path(&sub, "v", f), &gt, &pal).unwrap();
        }
    };
    write_all();
    check_submission(&ds, &sub).unwrap();
    let target = submission_path(&sub, "v", "00005");
    // A text file.
    fs::write(&target, b"not an image").unwrap();
    let err = check_submission(&ds, &sub).unwrap_err();
    assert!(matches!(err, EvalError::BadSubmissionFile { .. }) && err.to_string().contains("not a PNG"), "{err}");
    // An RGB PNG.
    image::RgbImage::new(30, 20).save(&target).unwrap();
    let err = check_submission(&ds, &sub).unwrap_err().to_string();
    assert!(err.contains("Rgb") && err.contains("palette"), "{err}");
    // A palette PNG of another size.
    write_mask(&target, &square(100, 200, 3, 0, 0, 2), &pal).unwrap();
    let err = check_submission(&ds, &sub).unwrap_err().to_string();
    assert!(err.contains("200x100") && err.contains("30x20"), "{err}");
    // A label the video does not have.
    write_mask(&target, &square(20, 30, 9, 0, 0, 2), &pal).unwrap();
    let err = check_submission(&ds, &sub).unwrap_err().to_string();
    assert!(err.contains("label 9") && err.contains("3, 7"), "{err}");
    // Extra frames and an extra video are reported, not dropped.
    write_all();
    write_mask(&submission_path(&sub, "v", "00001"), &square(20, 30, 3, 0, 0, 2), &pal).unwrap();
    write_mask(&submission_path(&sub, "w", "00000"), &square(20, 30, 3, 0, 0, 2), &pal).unwrap();
    let err = check_submission(&ds, &sub).unwrap_err();
    assert!(matches!(err, EvalError::ExtraSubmissionFiles { count: 2, .. }), "{err}");
    assert!(err.to_string().contains("00001.png") && err.to_string().contains("w/00000.png"), "{err}");
}
