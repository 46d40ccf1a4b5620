//! # memvos-model
//!
//! The memory networks ([`stcn`]) built from shared [`blocks`], their weight import and export
//! ([`weights`]), soft aggregation ([`aggregate`]), and the [`Propagator`]: the streaming engine
//! users embed, fed one frame at a time with optional new object masks.

pub mod aggregate;
pub mod blocks;
pub mod propagator;
pub mod stcn;
pub mod weights;

pub use propagator::{Propagator, PropagatorConfig, PropagatorError, StepOutput};
pub use stcn::Stcn;
pub use weights::WeightError;

use std::path::Path;

/// Loads an STCN network from `stcn.pth` (s012 or s03), a safetensors file with the same names,
/// or a burnpack file written by [`save_stcn`].
pub fn load_stcn(path: &Path, device: &burn::tensor::Device) -> Result<Stcn, WeightError> {
    let mut net = Stcn::new(device);
    weights::load(&mut net, path, "STCN", &weights::stcn_key_renames())?;
    Ok(net)
}

/// Saves an STCN network: `.safetensors` with the PyTorch names of `stcn.pth`, or `.bpk`
/// (burn's burnpack).
pub fn save_stcn(net: &Stcn, path: &Path) -> Result<(), WeightError> {
    match weights::Format::of(path)? {
        weights::Format::Burnpack => weights::save_burnpack(net, path),
        weights::Format::Safetensors => weights::save_safetensors(net, path, &weights::stcn_key_renames_inverse()),
        weights::Format::Pytorch => Err(WeightError::Write { path: path.to_path_buf(), reason: "writing .pth is not supported; use .safetensors".into() }),
    }
}

/// Writes an STCN checkpoint filled by the parity fixtures' formula (`WEIGHTS-FORMULA.md`) as a
/// safetensors file with the `stcn.pth` names: deterministic weights for demos and tests,
/// loadable with [`load_stcn`] exactly like a converted checkpoint.
pub fn write_formula_stcn(path: &Path, device: &burn::tensor::Device) -> Result<(), WeightError> {
    let entries = weights::formula::state_dict_entries(&Stcn::new(device), &weights::stcn_key_renames_inverse());
    weights::formula::write_state_dict(&entries, path)
}
