//! Every kind of bad input gives a typed error that names the file, and nothing panics.

use std::fs;
use std::path::Path;

use memvos_data::layout::{Davis, YouTube, generic, video_folder};
use memvos_data::{DataError, Frame, LabelMap, Palette, io};
use ndarray::Array2;

fn names(err: &DataError, path: &Path) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg:?} does not name {}", path.display());
}

#[test]
fn missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nope");
    let err = Davis::new(&root, 2017, "val").open().unwrap_err();
    assert!(matches!(err, DataError::MissingFolder { .. }));
    names(&err, &root);
    let err = generic(&root).unwrap_err();
    assert!(matches!(err, DataError::MissingFolder { .. }));
    let err = video_folder("v", dir.path(), Some(&root)).unwrap_err();
    names(&err, &root);
}

#[test]
fn listed_video_missing_and_missing_image_set() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("Annotations/480p/a")).unwrap();
    let err = Davis::new(root, 2017, "val").open().unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err}");
    fs::create_dir_all(root.join("ImageSets/2017")).unwrap();
    fs::write(root.join("ImageSets/2017/val.txt"), "a\nb\n").unwrap();
    io::write_mask(&root.join("Annotations/480p/a/00000.png"), &LabelMap::zeros(4, 4), &Palette::davis()).unwrap();
    let err = Davis::new(root, 2017, "val").open().unwrap_err();
    assert!(matches!(err, DataError::ListedVideoMissing { ref video, .. } if video == "b"), "{err}");
}

#[test]
fn unreadable_and_truncated_images() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.jpg");
    fs::write(&garbage, b"this is not an image").unwrap();
    let err = io::read_frame(&garbage).unwrap_err();
    assert!(matches!(err, DataError::Decode { .. }));
    names(&err, &garbage);

    let good = dir.path().join("good.jpg");
    let frame = Frame { rgb: ndarray::Array3::from_shape_fn((64, 64, 3), |(y, x, c)| ((x * 3 + y * 5 + c * 7) % 256) as u8) };
    io::write_frame(&good, &frame, 90).unwrap();
    let bytes = fs::read(&good).unwrap();
    let cut = dir.path().join("cut.jpg");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = io::read_frame(&cut).unwrap_err();
    assert!(matches!(err, DataError::Decode { .. }), "{err}");
    names(&err, &cut);

    let png = dir.path().join("m.png");
    io::write_mask(&png, &LabelMap::zeros(32, 32), &Palette::davis()).unwrap();
    let bytes = fs::read(&png).unwrap();
    let cut_png = dir.path().join("cut.png");
    fs::write(&cut_png, &bytes[..bytes.len() - 20]).unwrap();
    let err = io::read_mask(&cut_png).unwrap_err();
    assert!(matches!(err, DataError::Decode { .. }), "{err}");
    names(&err, &cut_png);

    let missing = dir.path().join("absent.png");
    let err = io::read_mask(&missing).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    names(&err, &missing);
    // A JPEG given as a mask is refused too.
    assert!(matches!(io::read_mask(&good).unwrap_err(), DataError::Decode { .. }));
}

#[test]
fn mask_size_differs_from_frame() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    let masks = dir.path().join("masks");
    io::write_frame(&frames.join("00000.jpg"), &Frame::filled(20, 30, [1, 2, 3]), 90).unwrap();
    let mask_path = masks.join("00000.png");
    io::write_mask(&mask_path, &LabelMap::zeros(20, 31), &Palette::davis()).unwrap();
    let v = video_folder("v", &frames, Some(&masks)).unwrap();
    let err = v.read_pair(0).unwrap_err();
    assert!(matches!(err, DataError::SizeMismatch { got_w: 31, want_w: 30, .. }), "{err}");
    names(&err, &mask_path);
}

#[test]
fn rgb_mask_with_a_colour_outside_the_palette() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rgb.png");
    let mut img = image::RgbImage::from_pixel(4, 3, image::Rgb([0, 0, 0]));
    img.put_pixel(2, 1, image::Rgb([1, 2, 3]));
    img.save(&p).unwrap();
    let err = io::read_mask(&p).unwrap_err();
    assert!(matches!(err, DataError::ColourNotInPalette { x: 2, y: 1, r: 1, g: 2, b: 3, .. }), "{err}");
    names(&err, &p);
}

#[test]
fn empty_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    fs::create_dir_all(&frames).unwrap();
    fs::write(frames.join("notes.txt"), "no images here").unwrap();
    let err = video_folder("empty", &frames, None).unwrap_err();
    assert!(matches!(err, DataError::EmptyVideo { ref video, .. } if video == "empty"), "{err}");
    names(&err, &frames);
}

#[test]
fn meta_json_that_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("valid/JPEGImages")).unwrap();
    fs::create_dir_all(root.join("valid/Annotations")).unwrap();
    let meta = root.join("valid/meta.json");
    fs::write(&meta, "{\"videos\": {\"a\": ").unwrap();
    let err = YouTube::new(root, "valid").open().unwrap_err();
    assert!(matches!(err, DataError::Parse { .. }), "{err}");
    names(&err, &meta);
    fs::write(&meta, r#"{"videos": {"a": {"objects": {"x": {"frames": ["00000"]}}}}}"#).unwrap();
    fs::create_dir_all(root.join("valid/JPEGImages/a")).unwrap();
    io::write_frame(&root.join("valid/JPEGImages/a/00000.jpg"), &Frame::filled(4, 4, [0, 0, 0]), 90).unwrap();
    let err = YouTube::new(root, "valid").open().unwrap_err();
    assert!(matches!(err, DataError::Parse { .. }) && err.to_string().contains("\"x\""), "{err}");
}

#[test]
fn bad_frame_index_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    io::write_frame(&dir.path().join("a.jpg"), &Frame::filled(4, 4, [0, 0, 0]), 90).unwrap();
    let v = video_folder("v", dir.path(), None).unwrap();
    assert!(v.read_frame(3).is_err());
    assert_eq!(v.read_annotation(0, None).unwrap(), None);
    let m = LabelMap::new(Array2::zeros((2, 2)));
    assert!(m.expect_size(2, 3, dir.path()).is_err());
}
