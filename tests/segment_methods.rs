//! What `segment --method M --weights formula.pth` does, on each method's parity fixture: its
//! three frames written as PNG files and its first-frame mask as a palette PNG, the formula
//! checkpoint written as a `torch.save`-format `.pth` with the published names, then the
//! runner's own loop (`ModelArgs::load`, `load_video`, `run_video`) with the flags that give
//! the fixture's configuration. The label maps must be the reference's except at its near ties
//! (two largest probabilities within 1e-4), and for IMSFR, whose reference is noisy even
//! between two of its own runs (see its fixture), at most ten times the 8 pixels that moved
//! between those runs.

use std::path::{Path, PathBuf};

use memvos::data::io::write_frame;
use memvos::data::{Frame, LabelMap, Palette, write_mask};
use memvos::device::DeviceChoice;
use memvos::eval::FpsMeter;
use memvos::model::weights::formula;
use memvos::model::{Benchmark, Method};
use memvos::runner::{Annotations, MethodChoice, ModelArgs, load_video, run_video};
use ndarray::Array2;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

struct Golden(std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>);

impl Golden {
    fn load(dir: &Path) -> Self {
        let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        Golden(
            st.tensors()
                .into_iter()
                .map(|(n, v)| (n, (v.shape().to_vec(), v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        &self.0[name]
    }
}

/// Writes the fixture's frames and first mask as a folder `segment` reads, and its formula
/// checkpoint as `.pth`; returns (frames dir, masks dir, weights).
fn prepare(name: &str, out: &Path) -> (PathBuf, PathBuf, PathBuf, Golden) {
    let dir = fixture(name);
    let g = Golden::load(&dir);
    let (s, raw) = g.get("input.frames_u8");
    let (t, h, w) = (s[0], s[1], s[2]);
    let frames = out.join("frames");
    for i in 0..t {
        let f = Frame::from_raw(h, w, raw[i * h * w * 3..(i + 1) * h * w * 3].iter().map(|&x| x as u8).collect()).unwrap();
        write_frame(&frames.join(format!("{i:05}.png")), &f, 100).unwrap();
    }
    let (ms, m) = g.get("input.first_masks");
    let k = ms[0];
    let labels = LabelMap::new(Array2::from_shape_fn((h, w), |(y, x)| (0..k).find(|&o| m[o * h * w + y * w + x] > 0.5).map(|o| o as u8 + 1).unwrap_or(0)));
    let masks = out.join("masks");
    write_mask(&masks.join("00000.png"), &labels, &Palette::davis()).unwrap();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let entries: Vec<(String, Vec<usize>)> = manifest["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect()))
        .filter(|(n, _): &(String, Vec<usize>)| !n.ends_with("num_batches_tracked"))
        .collect();
    let weights = out.join("formula.pth");
    formula::write_state_dict(&entries, &weights).unwrap();
    (frames, masks, weights, g)
}

/// The runners' options with their defaults, on the CPU.
fn args(weights: std::path::PathBuf, method: MethodChoice) -> ModelArgs {
    ModelArgs { device: DeviceChoice::Cpu, ..ModelArgs::new(Some(weights), method) }
}

/// Runs the segment loop and returns, over the frames, (labels differing from the reference
/// outside near ties, labels differing in all).
fn segment(name: &str, method: Method, choice: MethodChoice, tune: impl Fn(&mut ModelArgs)) -> (usize, usize) {
    let tmp = tempfile::tempdir().unwrap();
    let (frames, masks, weights, g) = prepare(name, tmp.path());
    let mut a = args(weights, choice);
    tune(&mut a);
    let loaded = a.load().unwrap();
    assert_eq!(loaded.method(), method, "{name}");
    let video = memvos::data::layout::video_folder(name, &frames, Some(&masks)).unwrap();
    let v = load_video(&video, Annotations::Every).unwrap();
    let cfg = a.schedule_for(loaded.method(), Benchmark::YouTube).unwrap();
    let out = run_video(&loaded, &cfg, &v, None, &mut FpsMeter::new()).unwrap();
    assert_eq!(out.len(), 3);
    let (ms, masks_ref) = g.get("out.masks");
    let (h, w) = (ms[1], ms[2]);
    let (mut bad, mut all) = (0, 0);
    for (t, labels) in &out {
        let (ps, p) = g.get(&format!("f{t}.prob"));
        let k = ps[0];
        for y in 0..h {
            for x in 0..w {
                let reference = masks_ref[t * h * w + y * w + x] as u8;
                if labels.labels[[y, x]] != reference {
                    all += 1;
                    let mut v: Vec<f32> = (0..k).map(|c| p[c * h * w + y * w + x]).collect();
                    v.sort_by(|a, b| b.total_cmp(a));
                    bad += (v[0] - v[1] >= 1e-4) as usize;
                }
            }
        }
    }
    eprintln!("{name}: {all} labels differ, {bad} outside near ties");
    (bad, all)
}

#[test]
fn segment_reproduces_the_mivos_and_qdmn_label_maps() {
    assert_eq!(segment("stm-mivos-parity", Method::Mivos, MethodChoice::Mivos, |_| {}).0, 0);
    assert_eq!(segment("qdmn-parity", Method::Qdmn, MethodChoice::Auto, |_| {}).0, 0);
}

#[test]
fn segment_reproduces_the_gsfm_and_imsfr_label_maps() {
    assert_eq!(segment("gsfm-parity", Method::Gsfm, MethodChoice::Gsfm, |a| a.include_last = true).0, 0);
    let (bad, _) = segment("imsfr-parity", Method::Imsfr, MethodChoice::Auto, |a| {
        a.mem_every = Some(1);
        a.top_k = Some(4);
    });
    assert!(bad <= 80, "{bad} IMSFR labels differ outside near ties");
}
