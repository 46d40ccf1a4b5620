//! Frames and masks read as a person means them: numeric names in numeric order, one file per
//! frame, masks in their own folder, 16-bit label maps read exactly.

use std::fs;
use std::path::Path;

use memvos_data::layout::{Davis, video_folder};
use memvos_data::{DataError, Frame, LabelMap, Palette, io};
use ndarray::Array2;

fn frame(path: &Path) {
    io::write_frame(path, &Frame::filled(8, 8, [10, 20, 30]), 90).unwrap();
}

#[test]
fn numeric_names_are_processed_in_numeric_order() {
    let dir = tempfile::tempdir().unwrap();
    let (frames, masks) = (dir.path().join("f"), dir.path().join("m"));
    fs::create_dir_all(&frames).unwrap();
    fs::create_dir_all(&masks).unwrap();
    for i in 0..12 {
        frame(&frames.join(format!("{i}.jpg")));
    }
    io::write_mask(&masks.join("0.png"), &LabelMap::zeros(8, 8), &Palette::davis()).unwrap();
    io::write_mask(&masks.join("10.png"), &LabelMap::zeros(8, 8), &Palette::davis()).unwrap();
    let v = video_folder("v", &frames, Some(&masks)).unwrap();
    let names: Vec<&str> = v.frames.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]);
    assert_eq!(v.annotated(), [0, 10]);

    // An annotations-only DAVIS root lists its frames in the same order.
    let root = dir.path().join("davis");
    fs::create_dir_all(root.join("ImageSets/2017")).unwrap();
    fs::write(root.join("ImageSets/2017/val.txt"), "seq\n").unwrap();
    for i in [0, 1, 2, 9, 10, 11] {
        io::write_mask(&root.join(format!("Annotations/480p/seq/{i}.png")), &LabelMap::zeros(4, 4), &Palette::davis()).unwrap();
    }
    let d = Davis::new(&root, 2017, "val").open().unwrap();
    let names: Vec<&str> = d.videos[0].frames.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["0", "1", "2", "9", "10", "11"]);
}

#[test]
fn one_frame_in_two_files_is_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["00002.jpg", "00003.jpg", "00003.png"] {
        frame(&dir.path().join(name));
    }
    let err = video_folder("v", dir.path(), None).unwrap_err();
    assert!(matches!(err, DataError::Ambiguous { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("00003.jpg") && msg.contains("00003.png"), "{msg}");
}

#[test]
fn masks_folder_equal_to_frames_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    frame(&dir.path().join("00000.jpg"));
    io::write_mask(&dir.path().join("00000.png"), &LabelMap::zeros(8, 8), &Palette::davis()).unwrap();
    fs::create_dir_all(dir.path().join("sub")).unwrap();
    // The same folder written two ways.
    let err = video_folder("v", dir.path(), Some(&dir.path().join("sub/.."))).unwrap_err();
    assert!(matches!(err, DataError::Ambiguous { .. }), "{err}");
    assert!(err.to_string().contains("--masks"), "{err}");
}

fn write_grey16(path: &Path, values: &[u16], w: u32, h: u32) {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Sixteen);
        let mut writer = enc.write_header().unwrap();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        writer.write_image_data(&bytes).unwrap();
    }
    fs::write(path, out).unwrap();
}

#[test]
fn sixteen_bit_label_maps_are_read_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.png");
    write_grey16(&p, &[0, 1, 2, 3, 255, 7], 3, 2);
    let m = io::read_mask(&p).unwrap();
    assert_eq!(m.labels.labels, Array2::from_shape_vec((2, 3), vec![0, 1, 2, 3, 255, 7]).unwrap());
    // A binary mask saved at 16 bits is object 1, as at 8 bits.
    write_grey16(&p, &[0, 65535, 65535, 0], 2, 2);
    assert_eq!(io::read_mask(&p).unwrap().labels.object_ids(), [1]);
    // A label memvos cannot hold is named, not truncated.
    write_grey16(&p, &[0, 1, 300, 2], 2, 2);
    let err = io::read_mask(&p).unwrap_err().to_string();
    assert!(err.contains("300") && err.contains("m.png"), "{err}");
}
