//! Bad weights and bad streams give clear errors; weights round-trip through safetensors and
//! burnpack; the module's state_dict names equal those of the published `stcn.pth`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use memvos_data::{Frame, LabelMap};
use memvos_model::stcn::{key_renames as stcn_key_renames, key_renames_inverse as stcn_key_renames_inverse};
use memvos_model::weights::{WeightError, formula};
use memvos_model::{Method, Propagator, PropagatorConfig, PropagatorError, Stcn, load_stcn, save_stcn, write_formula_stcn};
use ndarray::Array2;
use serde_json::Value;

fn manifest_entries() -> Vec<(String, Vec<usize>)> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/stcn-parity/manifest.json");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    m["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect()))
        .collect()
}

#[test]
fn module_names_are_the_published_state_dict_names() {
    let ours = formula::state_dict_entries(&Stcn::new(&Device::flex()), &stcn_key_renames_inverse());
    let mut theirs: Vec<(String, Vec<usize>)> = manifest_entries().into_iter().filter(|(n, _)| !n.ends_with("num_batches_tracked")).collect();
    theirs.sort();
    assert_eq!(ours, theirs);
    // And the rename tables are inverses of each other on every name.
    for (name, _) in &theirs {
        let there = memvos_model::weights::rename(name, &stcn_key_renames());
        assert_eq!(&memvos_model::weights::rename(&there, &stcn_key_renames_inverse()), name);
    }
}

fn write(entries: &[(String, Vec<usize>)], dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    formula::write_state_dict(entries, &p).unwrap();
    p
}

#[test]
fn missing_unexpected_and_misshapen_tensors_are_one_error() {
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let mut entries = manifest_entries();
    entries.retain(|(n, _)| n != "decoder.pred.bias");
    entries.push(("decoder.extra.weight".into(), vec![4, 4, 3, 3]));
    for e in entries.iter_mut() {
        if e.0 == "key_comp.weight" {
            e.1 = vec![256, 1024, 3, 3];
        }
    }
    let p = write(&entries, dir.path(), "bad.safetensors");
    let err = load_stcn(&p, &d).unwrap_err();
    match &err {
        WeightError::Mismatch { missing, unexpected, shapes, .. } => {
            assert_eq!(missing, &vec!["decoder.pred.bias".to_string()]);
            assert_eq!(unexpected, &vec!["decoder.extra.weight".to_string()]);
            assert_eq!(shapes.len(), 1);
            assert!(shapes[0].contains("key_comp.weight"), "{shapes:?}");
        }
        other => panic!("expected a mismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("bad.safetensors") && msg.contains("1 missing") && msg.contains("1 unexpected") && msg.contains("1 shape mismatch"), "{msg}");
}

#[test]
fn weights_of_another_method_are_refused_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let mivos = vec![
        ("mask_rgb_encoder.conv1.weight".to_string(), vec![64, 5, 7, 7]),
        ("rgb_encoder.conv1.weight".to_string(), vec![64, 3, 7, 7]),
        ("kv_m_f16.key_proj.weight".to_string(), vec![128, 1024, 3, 3]),
    ];
    let p = write(&mivos, dir.path(), "propagation_model.safetensors");
    let err = load_stcn(&p, &Device::flex()).unwrap_err();
    assert!(matches!(err, WeightError::WrongMethod { found: Method::Mivos, expected: Method::Stcn, .. }), "{err}");
    let missing = dir.path().join("nope.pth");
    assert!(matches!(load_stcn(&missing, &Device::flex()).unwrap_err(), WeightError::Read { .. }));
    let garbage = dir.path().join("garbage.pth");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    assert!(matches!(load_stcn(&garbage, &Device::flex()).unwrap_err(), WeightError::Read { .. }));
    // A file that exists but whose extension is not a weights format (not "no such file").
    let onnx = dir.path().join("w.onnx");
    std::fs::write(&onnx, b"\x08\x07onnx").unwrap();
    let err = load_stcn(&onnx, &Device::flex()).unwrap_err();
    assert!(matches!(err, WeightError::Read { .. }) && err.to_string().contains("unknown extension \"onnx\""), "{err}");
    // A safetensors file with half-precision tensors is refused, naming them.
    let f16 = dir.path().join("half.safetensors");
    let data = vec![0u8; 2 * 4];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![4], &data).unwrap();
    std::fs::write(&f16, safetensors::serialize(vec![("key_proj.key_proj.bias".to_string(), view)], None).unwrap()).unwrap();
    let err = load_stcn(&f16, &Device::flex()).unwrap_err().to_string();
    assert!(err.contains("float32") && err.contains("key_proj.key_proj.bias (F16)"), "{err}");
}

fn small_video() -> (Vec<Frame>, LabelMap) {
    let frames = (0..3).map(|t| Frame { rgb: ndarray::Array3::from_shape_fn((32, 48, 3), |(y, x, c)| ((x * 5 + y * 3 + c * 40 + t * 7) % 256) as u8) }).collect();
    let mask = LabelMap::new(Array2::from_shape_fn((32, 48), |(y, x)| if (8..20).contains(&y) && (10..30).contains(&x) { 1 } else { 0 }));
    (frames, mask)
}

#[test]
fn stream_errors_and_save_load_round_trips() {
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let formula_path = dir.path().join("formula.safetensors");
    write_formula_stcn(&formula_path, &d).unwrap();
    let net = load_stcn(&formula_path, &d).unwrap();
    let (frames, mask) = small_video();

    let run = |net: &Stcn| -> Vec<f32> {
        let mut p = Propagator::new(std::sync::Arc::new(net.clone()), PropagatorConfig::davis(), &d).unwrap();
        p.step(&frames[0], Some(&mask)).unwrap();
        p.step(&frames[1], None).unwrap().unwrap().probs.iter().copied().collect()
    };
    let reference = run(&net);
    for name in ["again.safetensors", "again.bpk"] {
        let path = dir.path().join(name);
        save_stcn(&net, &path).unwrap();
        let back = load_stcn(&path, &d).unwrap();
        assert_eq!(run(&back), reference, "{name}");
    }
    assert!(save_stcn(&net, &dir.path().join("x.pth")).is_err());

    let mut p = Propagator::new(std::sync::Arc::new(net.clone()), PropagatorConfig::davis(), &d).unwrap();
    assert!(p.step(&frames[0], None).unwrap().is_none(), "nothing to track before the first mask");
    let out = p.step(&frames[1], Some(&mask)).unwrap().unwrap();
    assert_eq!(out.index, 1);
    assert_eq!(out.ids, vec![0, 1]);
    let err = p.step(&frames[2], Some(&mask)).unwrap_err();
    assert!(matches!(err, PropagatorError::AlreadyTracked { id: 1, frame: 2 }), "{err}");
    let bigger = Frame::filled(40, 48, [0, 0, 0]);
    assert!(matches!(p.step(&bigger, None).unwrap_err(), PropagatorError::FrameSizeChanged { frame: 2, .. }));
    let bad_mask = LabelMap::zeros(31, 48);
    assert!(matches!(p.step(&frames[2], Some(&bad_mask)).unwrap_err(), PropagatorError::MaskSize { .. }));
    assert!(Propagator::new(std::sync::Arc::new(net.clone()), { let mut c = PropagatorConfig::davis(); c.policy.every = 0; c }, &d).is_err());
}

#[test]
fn objects_entering_mid_video_get_their_own_memory() {
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.safetensors");
    write_formula_stcn(&path, &d).unwrap();
    let net = load_stcn(&path, &d).unwrap();
    let (frames, mask) = small_video();
    let second = LabelMap::new(Array2::from_shape_fn((32, 48), |(y, x)| if y > 24 && x > 30 { 7 } else { 0 }));
    let mut p = Propagator::new(std::sync::Arc::new(net.clone()), PropagatorConfig::youtube(), &d).unwrap();
    p.step(&frames[0], Some(&mask)).unwrap();
    let out = p.step(&frames[1], Some(&second)).unwrap().unwrap();
    assert_eq!(out.ids, vec![0, 1, 7]);
    // The new object's pixels are its own on its first frame.
    assert!((25..32).all(|y| (31..48).all(|x| out.labels.labels[[y, x]] == 7)));
    let out = p.step(&frames[2], None).unwrap().unwrap();
    assert_eq!(out.probs.dim(), (3, 32, 48));
    let sums: Vec<f32> = (0..32).flat_map(|y| (0..48).map(move |x| (y, x))).map(|(y, x)| (0..3).map(|c| out.probs[[c, y, x]]).sum()).collect();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-4));
}

/// Flips one byte at `at` (a fraction of the file's length).
fn flip(path: &Path, at: f64) {
    let mut b = std::fs::read(path).unwrap();
    let i = ((b.len() as f64) * at) as usize;
    b[i] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

fn one_line_naming_damage(err: &WeightError, path: &Path) {
    let msg = err.to_string();
    assert!(matches!(err, WeightError::Corrupt { .. }), "{msg}");
    assert!(msg.contains("damaged") && msg.contains(&path.display().to_string()), "{msg}");
    assert!(!msg.contains('\n') && !msg.contains("ValidationError") && !msg.contains(" {"), "not one human line: {msg}");
}

#[test]
fn a_flipped_byte_in_a_pth_is_named_as_damage() {
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<(String, Vec<usize>)> = manifest_entries().into_iter().filter(|(n, _)| !n.ends_with("num_batches_tracked")).collect();
    let good = write(&entries, dir.path(), "stcn.pth");
    assert!(memvos_model::weights::verify(&good).is_ok());
    // In the tensor data (the zip entry's CRC-32 no longer matches) and near the end, where
    // the pickle and the zip directory are.
    for at in [0.5, 0.999] {
        let p = dir.path().join(format!("flipped-{at}.pth"));
        std::fs::copy(&good, &p).unwrap();
        flip(&p, at);
        let err = load_stcn(&p, &d).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("ValidationError") && !msg.contains('\n'), "{msg}");
        if at == 0.5 {
            one_line_naming_damage(&err, &p);
        }
    }
}

#[test]
fn a_truncated_safetensors_is_not_reported_as_whole() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/memvos-small-stcn.safetensors");
    let full = memvos_model::weights::verify(&shipped).unwrap();
    assert!(full.tensors > 100 && full.data_bytes > 1_000_000, "{full:?}");
    let half = dir.path().join("half.safetensors");
    let bytes = std::fs::read(&shipped).unwrap();
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    // The header alone would still list every tensor; verify reads them.
    one_line_naming_damage(&memvos_model::weights::verify(&half).unwrap_err(), &half);
}
