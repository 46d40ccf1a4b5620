//! On memvos's CPU path a streamed frame's tensors are not copied between burn's `[N, C, H, W]`
//! tensors and the kernels' NHWC maps: the query's features, the memory bank's keys and values
//! and the readout are read where they lie. Only the input frame (made by burn) is converted,
//! and a stream's maps reuse its own arena's buffers. One test in its own binary: the
//! conversion counter is process-wide.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use memvos_cpu::Nhwc;
use memvos_data::synth::{SynthConfig, generate_video};
use memvos_model::cpu::{conversions, to_nhwc, to_tensor};
use memvos_model::{Benchmark, InferenceCore, Method, Model, ModelOptions, ModelSource, PropagatorConfig, SharedNetwork};

mod wrappers;
use wrappers::EditV16;

#[test]
fn a_streamed_frame_copies_only_its_input() {
    // Maps made by the path become tensors and come back without a copy: the same buffer.
    let device = Device::flex();
    let x = Nhwc { n: 2, h: 3, w: 5, c: 7, data: (0..210).map(|i| i as f32 * 0.25 - 9.0).collect::<Vec<f32>>().into() };
    let (ptr, values) = (x.data.as_ptr(), x.data.to_vec());
    let before = conversions::counts();
    let t = to_tensor(x, &device);
    assert_eq!(t.dims(), [2, 7, 3, 5]);
    let back = to_nhwc(t.clone());
    assert!(back.data.is_shared() && back.data.as_ptr() == ptr, "the round trip copied the map");
    assert_eq!(conversions::counts() - before, conversions::Conversions::default());
    // burn sees the values in [N, C, H, W] order.
    let nchw = t.clone().into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(nchw, Nhwc { n: 2, h: 3, w: 5, c: 7, data: values.clone().into() }.to_nchw());
    // A tensor burn's ops made (here contiguous [N, C, H, W]) is converted, counted, by definition.
    let edited = to_nhwc(t.add_scalar(1.0));
    assert!(!edited.data.is_shared());
    assert_eq!(edited.data.to_vec(), values.iter().map(|v| v + 1.0).collect::<Vec<_>>());
    let plain = to_nhwc(Tensor::<4>::from_data(TensorData::new(nchw, [2, 7, 3, 5]), &device));
    assert_eq!(plain.data.to_vec(), values);
    assert_eq!((conversions::counts() - before).count, 2);

    // A stream of the shipped STCN, 2 objects: after each step, only frame-sized 3-channel
    // tensors (the input frame for the query and, on memory frames, the memory encoder) were
    // converted — no feature map, key, value or readout.
    let (h, w) = (96, 128);
    let v = generate_video(&SynthConfig { videos: 1, frames: 7, height: h, width: w, min_objects: 2, max_objects: 2, entry_probability: 0.0, seed: 3, ..Default::default() }, 0).unwrap();
    let model = Model::load(ModelSource::Default, &ModelOptions::default()).unwrap();
    assert!(model.on_cpu_kernels());
    let stream = |net: SharedNetwork| -> Vec<conversions::Conversions> {
        let cfg = PropagatorConfig::for_method(Method::Stcn, Benchmark::YouTube);
        let mut core = InferenceCore::new(net, cfg, None, &device).unwrap();
        v.frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let before = conversions::counts();
                core.step(f, (i == 0).then_some(&v.masks[0])).unwrap().unwrap();
                conversions::counts() - before
            })
            .collect()
    };
    let frame = (3 * h * w) as u64;
    for (i, c) in stream(model.shared()).iter().enumerate() {
        assert!(c.count >= 1 && c.values == c.count * frame, "frame {i}: {} conversions of {} values, not only {frame}-value frames", c.count, c.values);
    }
    // The stream's maps reuse buffers of its own arena (maps of ≥ 1 MiB: a larger frame).
    let big = generate_video(&SynthConfig { videos: 1, frames: 3, height: 384, width: 640, min_objects: 1, max_objects: 1, entry_probability: 0.0, seed: 4, ..Default::default() }, 0).unwrap();
    let mut core = InferenceCore::new(model.shared(), PropagatorConfig::default(), None, &device).unwrap();
    for (i, f) in big.frames.iter().enumerate() {
        core.step(f, (i == 0).then_some(&big.masks[0])).unwrap().unwrap();
    }
    assert!(core.propagator().arena().kept_bytes() > 0, "the stream's arena kept no buffer");
    let other = InferenceCore::new(model.shared(), PropagatorConfig::default(), None, &device).unwrap();
    assert_eq!(other.propagator().arena().kept_bytes(), 0, "a new stream shares another's arena");

    // The counter sees copies: a wrapper's edited v16 (made by burn's ops) is converted.
    let edited = stream(Arc::new(EditV16(model.shared())));
    assert!(edited[1..].iter().all(|c| c.values % frame != 0), "the edited v16 was not converted: {edited:?}");
}
