//! The one place that maps the compiled-in backend feature to a Burn [`Device`].
//! A GPU feature wins over the CPU default when both are enabled.

use burn::prelude::*;

/// The backend compiled in: a GPU feature wins over the CPU default.
pub const COMPILED_BACKEND: &str = if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "wgpu") {
    "wgpu"
} else if cfg!(feature = "flex") {
    "flex"
} else {
    "ndarray"
};

/// The backend this binary was built with and the device it computes on.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The cargo feature that selected it: `cuda`, `wgpu`, `flex` or `ndarray`.
    pub name: &'static str,
    pub device: Device,
}

impl Backend {
    /// Whether the backend syncs gradients between devices with collective operations
    /// (all-reduce), for Burn's DDP: in Burn 0.22.1 only cuda does, through NCCL; the
    /// servers of wgpu and flex have no device transport.
    pub(crate) fn has_collectives(&self) -> bool {
        self.name == "cuda"
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backend {}, device {:?}", self.name, self.device)
    }
}

/// The compiled-in backend cannot provide a device.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(
        "wgpu found no usable adapter for device `{spec}` ({reason}); install a Vulkan, Metal or DX12 driver (on Linux without a GPU: Mesa's `mesa-vulkan-drivers`), pick another device, or build without `--features wgpu`"
    )]
    NoAdapter { spec: String, reason: String },
    #[error(
        "cuda found no CUDA device; install the NVIDIA driver, or build without `--features cuda`"
    )]
    NoCudaDevice,
    #[error(
        "unknown device `{0}`; use `default`, `discrete[:N]`, `integrated[:N]`, `virtual[:N]` or `cpu` (wgpu), or an index (cuda)"
    )]
    BadDeviceSpec(String),
    #[error(
        "device `{spec}` is not supported by the `{backend}` backend, which has a single device"
    )]
    NoDeviceChoice { spec: String, backend: &'static str },
}

/// Opens the device of the compiled-in backend. `spec` picks among several devices
/// where the backend has them (wgpu adapters, CUDA indices); `None` is the default.
pub fn open(spec: Option<&str>) -> Result<Backend, BackendError> {
    #[cfg(feature = "cuda")]
    {
        return cuda(spec);
    }
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    {
        return wgpu(spec);
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        cpu(spec)
    }
}

#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
fn cpu(spec: Option<&str>) -> Result<Backend, BackendError> {
    let name = COMPILED_BACKEND;
    #[cfg(feature = "flex")]
    let device = Device::flex();
    #[cfg(all(feature = "ndarray", not(feature = "flex")))]
    #[allow(deprecated)] // kept for users comparing against Burn's older CPU backend
    let device = Device::ndarray();
    match spec {
        None | Some("default" | "cpu") => Ok(Backend { name, device }),
        Some(spec) => Err(BackendError::NoDeviceChoice {
            spec: spec.to_string(),
            backend: name,
        }),
    }
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
fn wgpu(spec: Option<&str>) -> Result<Backend, BackendError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    // Burn initialises a wgpu adapter once per process and refuses a second
    // initialisation, so opened devices are kept for the next caller.
    static OPENED: OnceLock<Mutex<HashMap<DeviceKind, Device>>> = OnceLock::new();

    let spec = spec.unwrap_or("default");
    let kind = parse_wgpu_kind(spec)?;
    let mut opened = OPENED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let device = match opened.get(&kind) {
        Some(device) => device.clone(),
        None => {
            let device = Device::wgpu_options()
                .device_kind(kind.clone())
                .init()
                .map_err(|e| BackendError::NoAdapter {
                    spec: spec.to_string(),
                    reason: e.to_string(),
                })?;
            opened.insert(kind, device.clone());
            device
        }
    };
    Ok(Backend {
        name: "wgpu",
        device,
    })
}

/// What a data-parallel spec names: a count of workers on the default device, or
/// each device in a comma-separated list.
enum DeviceSpec<'a> {
    Count(usize),
    List(Vec<&'a str>),
}

impl<'a> DeviceSpec<'a> {
    fn parse(spec: &'a str) -> Self {
        match spec.trim().parse::<usize>() {
            Ok(count) => Self::Count(count),
            Err(_) => Self::List(spec.split(',').map(str::trim).collect()),
        }
    }
}

/// How many devices `spec` (see [`open_all`]) names, without opening them; 0 for a
/// spec that names none.
pub(crate) fn device_count(spec: &str) -> usize {
    match DeviceSpec::parse(spec) {
        DeviceSpec::Count(count) => count,
        DeviceSpec::List(parts) => parts.iter().filter(|part| !part.is_empty()).count(),
    }
}

/// Opens the devices of a data-parallel run: `N` is N workers on the default device
/// (the CPU backends have one device, whose workers share its cores), a comma-separated
/// list names each (`discrete:0,discrete:1`, cuda `0,1`). A device that is not there is
/// the error that names it.
pub(crate) fn open_all(spec: &str) -> Result<Vec<Device>, BackendError> {
    match DeviceSpec::parse(spec) {
        DeviceSpec::Count(count) => Ok(vec![open(None)?.device; count]),
        DeviceSpec::List(parts) => parts
            .into_iter()
            .map(|part| open(Some(part)).map(|backend| backend.device))
            .collect(),
    }
}

/// Parses `default`, `cpu`, or `discrete`, `integrated`, `virtual` with an optional
/// `:N` adapter index.
#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
fn parse_wgpu_kind(spec: &str) -> Result<DeviceKind, BackendError> {
    let bad = || BackendError::BadDeviceSpec(spec.to_string());
    let (kind, index) = match spec.split_once(':') {
        Some((kind, index)) => (kind, index.parse::<usize>().map_err(|_| bad())?),
        None => (spec, 0),
    };
    match kind {
        "default" if !spec.contains(':') => Ok(DeviceKind::DefaultDevice),
        "cpu" if !spec.contains(':') => Ok(DeviceKind::Cpu),
        "discrete" => Ok(DeviceKind::DiscreteGpu(index)),
        "integrated" => Ok(DeviceKind::IntegratedGpu(index)),
        "virtual" => Ok(DeviceKind::VirtualGpu(index)),
        _ => Err(bad()),
    }
}

#[cfg(feature = "cuda")]
fn cuda(spec: Option<&str>) -> Result<Backend, BackendError> {
    use burn::tensor::DeviceType;
    let index = match spec {
        None | Some("default") => 0,
        Some(spec) => spec
            .parse::<usize>()
            .map_err(|_| BackendError::BadDeviceSpec(spec.to_string()))?,
    };
    if Device::enumerate(DeviceType::Cuda).len() <= index {
        return Err(BackendError::NoCudaDevice);
    }
    Ok(Backend {
        name: "cuda",
        device: Device::cuda(index),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wgpu_device_specs_parse() {
        assert_eq!(
            parse_wgpu_kind("default").ok(),
            Some(DeviceKind::DefaultDevice)
        );
        assert_eq!(parse_wgpu_kind("cpu").ok(), Some(DeviceKind::Cpu));
        assert_eq!(
            parse_wgpu_kind("discrete").ok(),
            Some(DeviceKind::DiscreteGpu(0))
        );
        assert_eq!(
            parse_wgpu_kind("integrated:1").ok(),
            Some(DeviceKind::IntegratedGpu(1))
        );
        assert!(parse_wgpu_kind("gpu").is_err());
        assert!(parse_wgpu_kind("discrete:x").is_err());
        assert!(parse_wgpu_kind("cpu:1").is_err());
    }

    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    #[test]
    fn cpu_backend_opens_and_refuses_device_choices() {
        assert!(open(None).is_ok());
        assert!(matches!(
            open(Some("discrete:1")),
            Err(BackendError::NoDeviceChoice { .. })
        ));
    }
}
