//! Reading the real layouts: the DAVIS-2017 fixture root in `tests/fixtures/davis-metrics`,
//! the real DAVIS sequences in `../shared/data/davis-real` (skipped, with a message, where
//! that folder is absent), YouTube-VOS, generic and static roots built here.

use std::fs;
use std::path::{Path, PathBuf};

use memvos_data::layout::{Davis, YouTube, generic, video_folder, StaticImages};
use memvos_data::writer::{DavisWriter, YouTubeWriter};
use memvos_data::{Frame, LabelMap, MaskEncoding, Palette, io};
use ndarray::Array2;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared/data/davis-real`; absent, a test using it is skipped with a message — but in CI
/// (`CI` set) its absence is a failure.
fn davis_real() -> Option<PathBuf> {
    let p = repo().join("../shared/data/davis-real");
    if p.is_dir() {
        return Some(p);
    }
    assert!(std::env::var_os("CI").is_none(), "CI is set but {} is absent", p.display());
    eprintln!("SKIPPED: {} is absent (real DAVIS data is not redistributed)", p.display());
    None
}

#[test]
fn reads_the_davis_metrics_fixture_root_without_images() {
    let root = repo().join("tests/fixtures/davis-metrics");
    let ds = Davis::new(&root, 2017, "val").open().unwrap();
    let names: Vec<_> = ds.videos.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["s1-perfect", "s2-empty-pred", "s3-appear-disappear", "s4-thin", "s5-long-shift", "s6-border-tiny", "s7-full-frame"]
    );
    let s3 = ds.video("s3-appear-disappear").unwrap();
    assert_eq!(s3.len(), 12);
    assert!(s3.frames.iter().all(|f| f.image.is_none() && f.annotation.is_some()));
    let m0 = s3.read_annotation(0, None).unwrap().unwrap();
    assert_eq!((m0.height(), m0.width()), (97, 131));
    assert_eq!(m0.object_ids(), vec![1, 3]);
    // Void (255) survives reading; it is the evaluator's business.
    let m4 = s3.read_annotation(4, None).unwrap().unwrap();
    assert!(m4.labels.iter().any(|&v| v == 255));
}

#[test]
fn reads_real_davis_sequences() {
    let Some(root) = davis_real() else { return };
    let ds = Davis::new(&root, 2017, "val").open().unwrap();
    let lens: Vec<_> = ds.videos.iter().map(|v| (v.name.as_str(), v.len())).collect();
    assert_eq!(lens, [("blackswan", 50), ("car-shadow", 40), ("dog", 60)]);
    for v in &ds.videos {
        let (frame, mask) = v.read_pair(0).unwrap();
        assert_eq!((frame.height(), frame.width()), (480, 854));
        let mask = mask.expect("DAVIS annotates every trainval frame");
        assert_eq!(mask.object_ids(), vec![1]);
        // The palette of a real DAVIS annotation is the one we generate.
        let m = io::read_mask(v.frames[0].annotation.as_ref().unwrap()).unwrap();
        assert_eq!(m.palette.as_ref().unwrap(), &Palette::davis());
    }
}

#[test]
fn reads_a_davis_2016_root() {
    // DAVIS 2016 is read from the 2017 trainval root with the legacy ImageSets/2016 list and
    // binary (0/255 greyscale) annotations; build one from the real sequences where they exist,
    // from generated frames otherwise.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (h, w) = (24, 40);
    for (v, n) in [("bear", 3), ("camel", 2)] {
        for t in 0..n {
            let frame = Frame::filled(h, w, [t as u8 * 40, 90, 200]);
            io::write_frame(&root.join(format!("JPEGImages/480p/{v}/{t:05}.jpg")), &frame, 90).unwrap();
            let labels = LabelMap::new(Array2::from_shape_fn((h, w), |(y, x)| (y > 5 + t && x > 10) as u8));
            io::write_binary_mask(&root.join(format!("Annotations/480p/{v}/{t:05}.png")), &labels).unwrap();
        }
    }
    // The legacy 2016 list names image and annotation paths, one pair per frame.
    let mut list = String::new();
    for (v, n) in [("bear", 3), ("camel", 2)] {
        for t in 0..n {
            list.push_str(&format!("/JPEGImages/480p/{v}/{t:05}.jpg /Annotations/480p/{v}/{t:05}.png\n"));
        }
    }
    fs::create_dir_all(root.join("ImageSets/2016")).unwrap();
    fs::write(root.join("ImageSets/2016/val.txt"), list).unwrap();
    let ds = Davis::new(root, 2016, "val").open().unwrap();
    let names: Vec<(&str, usize)> = ds.videos.iter().map(|v| (v.name.as_str(), v.len())).collect();
    assert_eq!(names, [("bear", 3), ("camel", 2)]);
    let (frame, mask) = ds.videos[0].read_pair(2).unwrap();
    assert_eq!((frame.height(), frame.width()), (h, w));
    let mask = mask.unwrap();
    assert_eq!(mask.object_ids(), vec![1], "a 0/255 mask reads as object 1");
    assert_eq!(mask.labels[[8, 11]], 1);
    assert_eq!(mask.labels[[7, 11]], 0);
    // Without the 2016 list the root is refused for 2016, naming the list.
    fs::remove_file(root.join("ImageSets/2016/val.txt")).unwrap();
    let err = Davis::new(root, 2016, "val").open().unwrap_err().to_string();
    assert!(err.contains("2016"), "{err}");
}

#[test]
fn palette_pngs_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut sources: Vec<PathBuf> = fs::read_dir(repo().join("tests/fixtures/davis-metrics/Annotations/480p/s6-border-tiny"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if let Some(root) = davis_real() {
        sources.push(root.join("Annotations/480p/dog/00010.png"));
        sources.push(root.join("results/osvos/car-shadow/00003.png"));
    }
    sources.sort();
    for src in sources {
        let m = io::read_mask(&src).unwrap();
        let out = dir.path().join("x.png");
        io::write_mask_like(&out, &m).unwrap();
        let back = io::read_mask(&out).unwrap();
        assert_eq!(back, m, "{}", src.display());
    }
    // A custom palette is kept, not replaced by DAVIS's.
    let pal = Palette::from_bytes(vec![1, 2, 3, 40, 50, 60, 7, 8, 9]).unwrap();
    let labels = LabelMap::new(Array2::from_shape_fn((5, 7), |(y, x)| ((y + x) % 3) as u8));
    let p = dir.path().join("custom.png");
    io::write_mask(&p, &labels, &pal).unwrap();
    let back = io::read_mask(&p).unwrap();
    assert_eq!(back.labels, labels);
    assert_eq!(back.palette, Some(pal));
}

#[test]
fn davis_2016_masks_and_grey_0_255_read_as_label_1() {
    let dir = tempfile::tempdir().unwrap();
    let labels = LabelMap::new(Array2::from_shape_fn((6, 9), |(y, x)| (y > 2 && x > 3) as u8));
    let p = dir.path().join("00000.png");
    io::write_binary_mask(&p, &labels).unwrap();
    let raw = image::open(&p).unwrap().into_luma8();
    assert_eq!(raw.get_pixel(8, 5).0, [255]);
    assert_eq!(io::read_mask(&p).unwrap().labels, labels);
    // Binary encoding collapses every object to 1.
    let multi = LabelMap::new(Array2::from_shape_fn((4, 4), |(y, _)| y as u8));
    io::write_mask(&p, &multi, &Palette::davis()).unwrap();
    let b = io::read_mask_with(&p, MaskEncoding::Binary).unwrap();
    assert_eq!(b.labels.object_ids(), vec![1]);
}

#[test]
fn low_bit_depth_palette_pngs_unpack() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.png");
    // A 2-bit palette PNG, 5 pixels wide (indices 0..3), written by hand with the png crate.
    let idx: Vec<u8> = vec![0, 1, 2, 3, 1, 3, 2, 1, 0, 0];
    let mut packed = Vec::new();
    for row in idx.chunks(5) {
        let mut bytes = vec![0u8; 2];
        for (x, &v) in row.iter().enumerate() {
            bytes[x / 4] |= v << (6 - 2 * (x % 4));
        }
        packed.extend(bytes);
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, 5, 2);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Two);
        enc.set_palette(Palette::davis().as_bytes()[..12].to_vec());
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&packed).unwrap();
    }
    fs::write(&p, out).unwrap();
    let m = io::read_mask(&p).unwrap();
    assert_eq!(m.labels.labels.iter().copied().collect::<Vec<_>>(), idx);
}

#[test]
fn rgb_masks_map_through_the_palette() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rgb.png");
    let pal = Palette::davis();
    let mut img = image::RgbImage::new(3, 1);
    for (x, id) in [0u8, 1, 2].into_iter().enumerate() {
        img.put_pixel(x as u32, 0, image::Rgb(pal.colour(id).unwrap()));
    }
    img.save(&p).unwrap();
    assert_eq!(io::read_mask(&p).unwrap().labels.labels.iter().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
}

#[test]
fn youtube_layout_with_mid_video_objects() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let frame = Frame::filled(16, 24, [10, 20, 30]);
    let dense: Vec<String> = (0..11).map(|i| format!("{i:05}")).collect();
    for name in &dense {
        io::write_frame(&root.join(format!("all_frames/valid_all_frames/JPEGImages/vid1/{name}.jpg")), &frame, 90).unwrap();
    }
    for name in dense.iter().step_by(5) {
        io::write_frame(&root.join(format!("valid/JPEGImages/vid1/{name}.jpg")), &frame, 90).unwrap();
    }
    let first = LabelMap::new(Array2::from_elem((16, 24), 2));
    io::write_mask(&root.join("valid/Annotations/vid1/00000.png"), &first, &Palette::davis()).unwrap();
    let later = LabelMap::new(Array2::from_elem((16, 24), 5));
    io::write_mask(&root.join("valid/Annotations/vid1/00005.png"), &later, &Palette::davis()).unwrap();
    fs::write(
        root.join("valid/meta.json"),
        r#"{"videos": {"vid1": {"objects": {"2": {"frames": ["00000", "00005", "00010"]},
                                             "5": {"frames": ["00005", "00010"]}}}}}"#,
    )
    .unwrap();
    let ds = YouTube::new(root, "valid").open().unwrap();
    let v = &ds.videos[0];
    assert_eq!(v.len(), 3);
    assert_eq!(v.annotated(), vec![0, 1]);
    assert_eq!(v.objects.iter().map(|o| (o.id, o.first_frame.as_str())).collect::<Vec<_>>(), [(2, "00000"), (5, "00005")]);
    let dense_ds = YouTube::new(root, "valid").all_frames(true).open().unwrap();
    let dv = &dense_ds.videos[0];
    assert_eq!(dv.len(), 11);
    assert_eq!(dv.annotated(), vec![0, 5], "annotations pair with dense frames by name");
    // The submission writer writes only what meta.json asks for, unless told to write all.
    let out = root.join("sub");
    let w = YouTubeWriter::new(&out);
    assert!(w.write(dv, "00005", &later).unwrap().is_some());
    assert!(w.write(dv, "00006", &later).unwrap().is_none());
    assert!(YouTubeWriter::new(&out).write_all(true).write(dv, "00006", &later).unwrap().is_some());
    assert!(out.join("Annotations/vid1/00005.png").is_file());
}

#[test]
fn generic_folder_static_set_and_davis_writer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let frame = Frame::filled(8, 8, [200, 0, 0]);
    for i in 0..3 {
        io::write_frame(&root.join(format!("JPEGImages/clip/f{i}.png")), &frame, 90).unwrap();
    }
    io::write_mask(&root.join("Annotations/clip/f0.png"), &LabelMap::new(Array2::from_elem((8, 8), 1)), &Palette::davis()).unwrap();
    let ds = generic(root).unwrap();
    assert_eq!(ds.videos[0].annotated(), vec![0]);
    let v = video_folder("clip", &root.join("JPEGImages/clip"), Some(&root.join("Annotations/clip"))).unwrap();
    assert_eq!(v.frames[2].name, "f2");

    io::write_frame(&root.join("static/DUTS-TR/a.jpg"), &frame, 90).unwrap();
    image::GrayImage::from_pixel(8, 8, image::Luma([255])).save(root.join("static/DUTS-TR/a.png")).unwrap();
    io::write_frame(&root.join("static/fss/cat/1.jpg"), &frame, 90).unwrap();
    image::GrayImage::from_pixel(8, 8, image::Luma([0])).save(root.join("static/fss/cat/1.png")).unwrap();
    let st = StaticImages::open(&root.join("static")).unwrap();
    assert_eq!(st.samples.len(), 2);
    let (f, m) = st.samples[0].read().unwrap();
    assert_eq!((f.height(), m.dim()), (8, (8, 8)));

    let w = DavisWriter::new(root.join("out17"), 2017);
    let labels = LabelMap::new(Array2::from_shape_fn((8, 8), |(y, _)| (y % 3) as u8));
    let p = w.write("clip", "00000", &labels).unwrap();
    assert_eq!(io::read_mask(&p).unwrap().labels, labels);
    let p16 = DavisWriter::new(root.join("out16"), 2016).write("clip", "00000", &labels).unwrap();
    assert_eq!(image::open(&p16).unwrap().into_luma8().get_pixel(0, 1).0, [255]);
    // No temporary files are left behind by the atomic writes.
    let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1);
}
