//! Run-time device choice for the example binaries: `--device cpu|cuda[:N]|wgpu[:N]|auto`.
//!
//! `auto` (the default) takes CUDA device 0 when memvos was built with the `cuda` feature and a
//! GPU answers; else the first wgpu adapter that is real hardware (not a software rasterizer such
//! as Mesa's lavapipe) when built with the `wgpu` feature; else burn's flex CPU backend. Asking
//! for a device that is not available is an error, never a panic at the first tensor operation,
//! and nothing falls back to the CPU unasked: `--device wgpu` on a machine whose only Vulkan
//! adapter is lavapipe runs on lavapipe (slowly, but on the GPU code path), and says so.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 when built with `cuda` and a GPU answers, else the first hardware wgpu
    /// adapter when built with `wgpu`, else the CPU.
    #[default]
    Auto,
    /// burn's flex CPU backend.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
    /// wgpu adapter N, in the order [`wgpu_adapters`] lists them.
    Wgpu(usize),
}

/// Why a device could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Not a device name.
    #[error("invalid device {0:?}: expected cpu, cuda, cuda:N, wgpu, wgpu:N or auto")]
    Parse(String),
    /// A backend asked for that this build does not have.
    #[error("{backend} device {index} asked for, but memvos was built without the `{feature}` feature (rebuild with `--features {feature}`)")]
    NotBuilt {
        /// "CUDA" or "wgpu".
        backend: &'static str,
        /// The cargo feature that adds it.
        feature: &'static str,
        /// The device index asked for.
        index: usize,
    },
    /// No device of that index.
    #[error("{backend} device {asked} asked for, but {found} {backend} device(s) answered{hint}")]
    NotFound {
        /// "CUDA" or "wgpu".
        backend: &'static str,
        /// The device index asked for.
        asked: usize,
        /// Devices that answered.
        found: usize,
        /// What to install when none answered.
        hint: &'static str,
    },
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let indexed = |prefix: &str| -> Option<usize> {
            let rest = lower.strip_prefix(prefix)?;
            if rest.is_empty() { Some(0) } else { rest.strip_prefix(':')?.parse().ok() }
        };
        match lower.as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            "gpu" => Ok(DeviceChoice::Cuda(0)),
            _ => indexed("cuda")
                .map(DeviceChoice::Cuda)
                .or_else(|| indexed("wgpu").map(DeviceChoice::Wgpu))
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
            DeviceChoice::Wgpu(i) => write!(f, "wgpu:{i}"),
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

/// One wgpu adapter as the driver describes it.
#[derive(Clone, Debug)]
pub struct WgpuAdapter {
    /// burn's device for it.
    pub device: Device,
    /// The adapter's name ("llvmpipe (LLVM 15.0.6, 256 bits)", "NVIDIA GeForce RTX 4090").
    pub name: String,
    /// The driver and its version ("llvmpipe, Mesa 22.3.6"), as far as the driver says.
    pub driver: String,
    /// The graphics API it runs on (Vulkan, Metal, Dx12, Gl).
    pub api: String,
    /// A software rasterizer on the CPU (lavapipe, llvmpipe, WARP), not a GPU.
    pub software: bool,
}

impl fmt::Display for WgpuAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.software { "software rasterizer on the CPU" } else { "hardware" };
        write!(f, "{} ({}; driver {}; {kind})", self.name, self.api, if self.driver.is_empty() { "unknown" } else { &self.driver })
    }
}

/// The wgpu adapters burn can run on, in the order `--device wgpu:N` counts them (burn's own
/// enumeration: the adapters of the graphics API burn settles on). Empty when built without the
/// `wgpu` feature or when no adapter answers (no Vulkan loader or driver).
pub fn wgpu_adapters() -> Vec<WgpuAdapter> {
    #[cfg(feature = "wgpu")]
    {
        wgpu_probe::adapters()
    }
    #[cfg(not(feature = "wgpu"))]
    {
        Vec::new()
    }
}

#[cfg(feature = "wgpu")]
mod wgpu_probe {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use burn::tensor::wgpu::wgpu;
    use burn::tensor::{Device, DeviceType};

    use super::WgpuAdapter;

    /// Native wgpu resolves its futures at once; poll until it does.
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::yield_now();
        }
    }

    pub(super) fn adapters() -> Vec<WgpuAdapter> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::PRIMARY | wgpu::Backends::GL,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let infos: Vec<wgpu::AdapterInfo> = block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY | wgpu::Backends::GL)).iter().map(|a| a.get_info()).collect();
        Device::enumerate(DeviceType::Wgpu)
            .into_iter()
            .map(|device| {
                let identity = device.identity();
                let name = identity.as_ref().map(|i| i.name.clone()).unwrap_or_else(|| "unnamed adapter".into());
                // burn names the adapter; the driver's own description says the rest.
                let info = infos.iter().find(|i| i.name == name);
                let software = match info {
                    Some(i) => i.device_type == wgpu::DeviceType::Cpu,
                    None => identity.as_ref().is_none_or(|i| i.physical.is_none()),
                };
                let driver = info.map(|i| [i.driver.as_str(), i.driver_info.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(", ")).unwrap_or_default();
                let api = info.map(|i| format!("{:?}", i.backend)).unwrap_or_else(|| "unknown API".into());
                WgpuAdapter { device, name, driver, api, software }
            })
            .collect()
    }
}

/// Resolves a choice to a device.
pub fn select(choice: DeviceChoice) -> Result<Selected, DeviceError> {
    let cpu = |why: &str| Selected { device: Device::flex(), description: format!("memvos: running on the CPU (burn flex backend){why}") };
    match choice {
        DeviceChoice::Cpu => Ok(cpu("")),
        DeviceChoice::Auto => {
            if cfg!(feature = "cuda") && cuda_device_count() > 0 {
                return Ok(Selected { device: cuda(0), description: "memvos: running on CUDA device 0".into() });
            }
            let mut why = Vec::new();
            why.push(if cfg!(feature = "cuda") { "no CUDA device answered" } else { "built without the `cuda` feature" });
            if cfg!(feature = "wgpu") {
                let adapters = wgpu_adapters();
                if let Some((i, a)) = adapters.iter().enumerate().find(|(_, a)| !a.software) {
                    return Ok(Selected { device: a.device.clone(), description: format!("memvos: running on wgpu device {i}: {a}") });
                }
                why.push(if adapters.is_empty() { "no wgpu adapter answered" } else { "the only wgpu adapters are software rasterizers (ask for them with --device wgpu)" });
            } else {
                why.push("built without the `wgpu` feature");
            }
            Ok(cpu(&format!(": {}", why.join(", "))))
        }
        DeviceChoice::Cuda(i) => {
            if !cfg!(feature = "cuda") {
                return Err(DeviceError::NotBuilt { backend: "CUDA", feature: "cuda", index: i });
            }
            let found = cuda_device_count();
            if i >= found {
                return Err(DeviceError::NotFound { backend: "CUDA", asked: i, found, hint: "" });
            }
            Ok(Selected { device: cuda(i), description: format!("memvos: running on CUDA device {i}") })
        }
        DeviceChoice::Wgpu(i) => {
            if !cfg!(feature = "wgpu") {
                return Err(DeviceError::NotBuilt { backend: "wgpu", feature: "wgpu", index: i });
            }
            let adapters = wgpu_adapters();
            let hint = " (install a Vulkan driver: on Debian, `mesa-vulkan-drivers` and `libvulkan1` give the software one, lavapipe)";
            let found = adapters.len();
            let a = adapters.into_iter().nth(i).ok_or(DeviceError::NotFound { backend: "wgpu", asked: i, found, hint: if found == 0 { hint } else { "" } })?;
            Ok(Selected { description: format!("memvos: running on wgpu device {i}: {a}"), device: a.device })
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
        assert_eq!("wgpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Wgpu(0));
        assert_eq!("WGPU:2".parse::<DeviceChoice>().unwrap(), DeviceChoice::Wgpu(2));
        assert_eq!("AUTO".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        for bad in ["cuda:x", "tpu", "wgpu:", "wgpux", "cuda1", "wgpu:-1"] {
            assert!(bad.parse::<DeviceChoice>().is_err(), "{bad}");
        }
        assert_eq!(DeviceChoice::Wgpu(1).to_string().parse::<DeviceChoice>().unwrap(), DeviceChoice::Wgpu(1));
    }

    #[test]
    fn auto_never_panics_and_cpu_works() {
        let s = select(DeviceChoice::Auto).unwrap();
        assert!(s.description.starts_with("memvos: running on"));
        let cpu = select(DeviceChoice::Cpu).unwrap();
        let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &cpu.device);
        assert_eq!(t.sum().into_scalar::<f32>(), 3.0);
    }

    #[test]
    fn auto_never_picks_a_software_rasterizer() {
        let s = select(DeviceChoice::Auto).unwrap();
        if wgpu_adapters().iter().all(|a| a.software) && cuda_device_count() == 0 {
            assert_eq!(s.device, Device::flex(), "{}", s.description);
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_an_error() {
        let e = select(DeviceChoice::Cuda(0)).unwrap_err();
        assert!(matches!(e, DeviceError::NotBuilt { feature: "cuda", index: 0, .. }), "{e}");
    }

    #[cfg(not(feature = "wgpu"))]
    #[test]
    fn wgpu_without_the_feature_is_an_error() {
        let e = select(DeviceChoice::Wgpu(1)).unwrap_err();
        assert!(e.to_string().contains("--features wgpu"), "{e}");
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn a_missing_wgpu_index_is_an_error_naming_what_answered() {
        let n = wgpu_adapters().len();
        let e = select(DeviceChoice::Wgpu(n + 3)).unwrap_err();
        assert!(matches!(e, DeviceError::NotFound { backend: "wgpu", found, .. } if found == n), "{e}");
    }
}
