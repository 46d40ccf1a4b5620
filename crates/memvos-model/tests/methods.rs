//! The five methods behind one trait: each checkpoint is recognised by its keys (`--method
//! auto`), every checkpoint given as another method is refused with both methods named and the
//! keys that differ, configurations a method cannot take are refused, and each method's formula
//! weights round-trip through safetensors with memvos's metadata.

use burn::tensor::Device;
use memvos_model::weights::{self, WeightError, formula};
use memvos_model::{AnyNetwork, Benchmark, Method, PropagatorConfig, load_network, published_names};

/// A file with a method's published names (each tensor `[1]`: only names matter here).
fn names_file(method: Method, dir: &std::path::Path) -> std::path::PathBuf {
    let entries: Vec<(String, Vec<usize>)> = published_names(method).into_iter().map(|n| (n, vec![1])).collect();
    let p = dir.join(format!("{}.safetensors", method.id()));
    formula::write_state_dict(&entries, &p).unwrap();
    p
}

#[test]
fn every_checkpoint_is_recognised_and_every_mismatch_refused() {
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(Method, std::path::PathBuf)> = Method::ALL.iter().map(|&m| (m, names_file(m, dir.path()))).collect();
    for (held, path) in &files {
        assert_eq!(weights::detect(path).unwrap(), *held, "{}", path.display());
        for asked in Method::ALL.into_iter().filter(|m| m != held) {
            let err = load_network(path, Some(asked), &d).unwrap_err();
            let WeightError::WrongMethod { expected, found, missing, unexpected, .. } = &err else { panic!("{held} as {asked}: {err}") };
            assert_eq!((*expected, *found), (asked, *held));
            assert!(!(missing.is_empty() && unexpected.is_empty()), "{held} as {asked}: no key differs?");
            let msg = err.to_string();
            assert!(msg.contains(held.name()) && msg.contains(asked.name()) && msg.contains(&format!("--method {}", asked.id())), "{msg}");
            assert!(!msg.contains('\n') && msg.len() < 4000, "one line, long lists cut: {msg}");
        }
    }
}

#[test]
fn a_gsfm_checkpoint_as_stcn_names_the_keys_and_the_method() {
    let dir = tempfile::tempdir().unwrap();
    let gsfm = names_file(Method::Gsfm, dir.path());
    let err = load_network(&gsfm, Some(Method::Stcn), &Device::flex()).unwrap_err();
    let WeightError::WrongMethod { missing, unexpected, .. } = &err else { panic!("{err}") };
    // GSFM has everything STCN has plus its spectral modules, boundary head and key-encoder biases.
    assert!(missing.is_empty(), "{missing:?}");
    for key in ["lfm.conv1.weight", "decoder.hfm.conv2.bias", "decoder.boundary_1.weight", "key_encoder.conv1.bias"] {
        assert!(unexpected.iter().any(|k| k == key), "{key} not listed as unexpected");
    }
    let msg = err.to_string();
    assert!(msg.contains("holds GSFM weights, not STCN weights") && msg.contains("unexpected: ") && msg.contains("more"), "{msg}");
    // And the other way round: STCN's file lacks GSFM's modules.
    let stcn = names_file(Method::Stcn, dir.path());
    let err = load_network(&stcn, Some(Method::Gsfm), &Device::flex()).unwrap_err();
    let WeightError::WrongMethod { missing, .. } = &err else { panic!("{err}") };
    assert!(missing.iter().any(|k| k == "lfm.conv1.weight"), "{err}");
}

#[test]
fn unknown_files_and_metadata_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("other.safetensors");
    formula::write_state_dict(&[("fc.weight".to_string(), vec![2, 2])], &p).unwrap();
    let err = load_network(&p, None, &Device::flex()).unwrap_err();
    assert!(matches!(err, WeightError::UnknownMethod { .. }), "{err}");
    assert!(err.to_string().contains("pass --method") && err.to_string().contains("fc.weight"), "{err}");
    let err = load_network(&dir.path().join("missing.pth"), None, &Device::flex()).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
}

#[test]
fn configurations_a_method_cannot_take_are_refused() {
    for m in Method::ALL {
        for b in [Benchmark::Davis2017, Benchmark::Davis2016, Benchmark::YouTube] {
            let cfg = PropagatorConfig::for_method(m, b);
            cfg.validate(m).unwrap();
            cfg.policy.build().unwrap();
            let mut k = cfg.clone();
            k.kernel = Some(5.6);
            assert_eq!(k.validate(m).is_ok(), m.supports_kernel(), "{m} kernel");
        }
    }
    let mut c = PropagatorConfig::for_method(Method::Stcn, Benchmark::Davis2017);
    c.kernel = Some(5.6);
    assert!(c.validate(Method::Stcn).unwrap_err().contains("STCN has none"));
    let mut q = PropagatorConfig::for_method(Method::Qdmn, Benchmark::Davis2017);
    for t in [0.0, -0.5, 1.5, f32::NAN] {
        q.policy.threshold = Some(t);
        assert!(q.policy.build().err().unwrap().contains("outside (0, 1]"), "{t}");
    }
}

#[test]
fn formula_weights_save_and_load_with_metadata() {
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mivos.safetensors");
    memvos_model::write_formula(Method::Mivos, &f, &d).unwrap();
    let net = load_network(&f, None, &d).unwrap();
    assert_eq!(net.method(), Method::Mivos);
    let saved = dir.path().join("saved.safetensors");
    net.save(&saved, None).unwrap();
    assert_eq!(weights::read_metadata(&saved).unwrap().get(weights::METHOD_KEY).map(String::as_str), Some("mivos"));
    assert!(matches!(load_network(&saved, None, &d).unwrap(), AnyNetwork::Mivos(_)));
    assert!(net.save(&dir.path().join("x.onnx"), None).is_err());
}
