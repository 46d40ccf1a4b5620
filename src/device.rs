//! Run-time device choice for the example binaries: `--device cpu|cuda[:N]|auto`.
//!
//! `auto` (the default) takes CUDA device 0 when memvos was built with the `cuda` feature and a
//! GPU answers, and burn's flex CPU backend otherwise. Asking for CUDA where it is not
//! available is an error, never a panic at the first tensor operation.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 when built with `cuda` and a GPU answers, else the CPU.
    #[default]
    Auto,
    /// burn's flex CPU backend.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

/// Why a device could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Not a device name.
    #[error("invalid device {0:?}: expected cpu, cuda, cuda:N or auto")]
    Parse(String),
    /// CUDA asked for without the `cuda` feature.
    #[error("CUDA device {0} asked for, but memvos was built without the `cuda` feature (rebuild with `--features cuda`)")]
    NotBuilt(usize),
    /// No CUDA device of that index.
    #[error("CUDA device {asked} asked for, but {found} CUDA device(s) answered")]
    NotFound {
        /// The device index asked for.
        asked: usize,
        /// Devices that answered.
        found: usize,
    },
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| DeviceError::Parse(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// A chosen device and a one-line description of the choice.
#[derive(Clone, Debug)]
pub struct Selected {
    /// The device.
    pub device: Device,
    /// One line saying which device was chosen and why.
    pub description: String,
}

/// Number of CUDA devices that answer (0 when built without the `cuda` feature).
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "cuda")]
    {
        Device::enumerate(burn::tensor::DeviceType::Cuda).len()
    }
    #[cfg(not(feature = "cuda"))]
    {
        0
    }
}

fn cuda(index: usize) -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(index)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = index;
        Device::flex()
    }
}

/// Resolves a choice to a device.
pub fn select(choice: DeviceChoice) -> Result<Selected, DeviceError> {
    let built = cfg!(feature = "cuda");
    let cpu = |why: &str| Selected {
        device: Device::flex(),
        description: format!("memvos: running on the CPU (burn flex backend){why}"),
    };
    match choice {
        DeviceChoice::Cpu => Ok(cpu("")),
        DeviceChoice::Auto => {
            if !built {
                Ok(cpu(": built without the `cuda` feature"))
            } else if cuda_device_count() == 0 {
                Ok(cpu(": no CUDA device answered"))
            } else {
                Ok(Selected {
                    device: cuda(0),
                    description: "memvos: running on CUDA device 0".into(),
                })
            }
        }
        DeviceChoice::Cuda(i) => {
            if !built {
                return Err(DeviceError::NotBuilt(i));
            }
            let found = cuda_device_count();
            if i >= found {
                return Err(DeviceError::NotFound { asked: i, found });
            }
            Ok(Selected {
                device: cuda(i),
                description: format!("memvos: running on CUDA device {i}"),
            })
        }
    }
}

/// [`select`], printing the one-line description to stdout (for the example binaries).
pub fn select_and_announce(choice: DeviceChoice) -> Result<Device, DeviceError> {
    let selected = select(choice)?;
    println!("{}", selected.description);
    Ok(selected.device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_flags() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!("cuda".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(3));
        assert_eq!("AUTO".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn auto_never_panics_and_cpu_works() {
        let s = select(DeviceChoice::Auto).unwrap();
        assert!(s.description.starts_with("memvos: running on"));
        let cpu = select(DeviceChoice::Cpu).unwrap();
        let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &cpu.device);
        assert_eq!(t.sum().into_scalar::<f32>(), 3.0);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_an_error() {
        assert!(matches!(select(DeviceChoice::Cuda(0)), Err(DeviceError::NotBuilt(0))));
    }
}
