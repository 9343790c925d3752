//! Run-time choice of the compute backend.
//!
//! Every computation is written once, generic over `B: AutodiffBackend`; [`dispatch`]
//! monomorphises it for the backend named on the command line (`--device`). The CPU
//! backends (Burn's `flex`, the default, and `ndarray`) are always compiled; GPU backends
//! come with cargo features.
//!
//! Each task the binary runs has a non-generic `run_on(DeviceSpec)` beside it
//! (`PreparedRun`, `ModelBench`, `SmokeRun`, `ImportTask`) that calls [`dispatch`]: the task
//! is then compiled for every backend once, in the library, and the binary and the
//! integration tests link that copy (our crate is built at opt-level 1, where rustc shares
//! generic instances between crates). Measured in `docs/architecture.md`.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};
use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;

/// A device as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// Burn's `flex` CPU backend (default).
    #[default]
    Cpu,
    /// Burn's `ndarray` CPU backend.
    NdArray,
    /// An NVIDIA GPU by index.
    Cuda(usize),
    /// The default wgpu adapter (Vulkan, Metal, DirectX or a software Vulkan driver).
    Wgpu,
    /// wgpu restricted to Apple's Metal.
    Metal,
    /// wgpu restricted to Vulkan.
    Vulkan,
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "cpu" | "flex" => DeviceSpec::Cpu,
            "ndarray" => DeviceSpec::NdArray,
            "cuda" => DeviceSpec::Cuda(0),
            "wgpu" => DeviceSpec::Wgpu,
            "metal" => DeviceSpec::Metal,
            "vulkan" => DeviceSpec::Vulkan,
            other => match other.strip_prefix("cuda:") {
                Some(index) => DeviceSpec::Cuda(index.parse().map_err(|_| {
                    anyhow::anyhow!("device {s:?}: expected cuda:N with N a GPU index")
                })?),
                None => bail!(
                    "unknown device {s:?}; expected one of cpu, ndarray, cuda[:N], wgpu, metal, vulkan"
                ),
            },
        })
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::NdArray => write!(f, "ndarray"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Wgpu => write!(f, "wgpu"),
            DeviceSpec::Metal => write!(f, "metal"),
            DeviceSpec::Vulkan => write!(f, "vulkan"),
        }
    }
}

impl serde::Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The devices this binary was compiled with.
pub fn compiled_devices() -> Vec<&'static str> {
    let mut names = vec!["cpu", "ndarray"];
    if cfg!(feature = "cuda") {
        names.push("cuda[:N]");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "metal") {
        names.push("metal");
    }
    if cfg!(feature = "vulkan") {
        names.push("vulkan");
    }
    names
}

/// A computation to run on whichever backend the user picked.
pub trait BackendTask {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Self::Output>;

    /// Run on several devices of one backend (data-parallel training; the first device is
    /// the main one). Tasks that use one device say so when given more.
    fn run_on_devices<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<Self::Output>
    where
        Self: Sized,
    {
        match <[B::Device; 1]>::try_from(devices) {
            Ok([device]) => self.run::<B>(device),
            Err(devices) => bail!(
                "this command runs on one device, not {} (--devices is for training)",
                devices.len()
            ),
        }
    }
}

/// Run `task` on the backend named by `spec`, or say which cargo feature it needs.
pub fn dispatch<T: BackendTask>(spec: DeviceSpec, task: T) -> Result<T::Output> {
    dispatch_on(&[spec], task)
}

/// Run `task` on the devices `specs` name, all of one backend: several GPUs of one kind
/// (`cuda:0,cuda:1`), or one CPU backend named more than once — CPU "devices" share the
/// machine's cores, which makes them a test of the multi-device path, not a speed-up.
pub fn dispatch_on<T: BackendTask>(specs: &[DeviceSpec], task: T) -> Result<T::Output> {
    let Some(&first) = specs.first() else {
        bail!("no device given");
    };
    if let Some(other) = specs
        .iter()
        .find(|s| std::mem::discriminant(*s) != std::mem::discriminant(&first))
    {
        bail!(
            "devices {first} and {other} are different backends: several devices must be of one backend"
        );
    }
    let n = specs.len();
    if n > 1
        && matches!(
            first,
            DeviceSpec::Wgpu | DeviceSpec::Metal | DeviceSpec::Vulkan
        )
    {
        bail!(
            "device {first}: one device only (wgpu uses its default adapter); several GPUs: cuda:0,cuda:1,…"
        );
    }
    match first {
        DeviceSpec::Cpu => task.run_on_devices::<Autodiff<burn::backend::Flex>>(vec![
            burn::backend::flex::FlexDevice;
            n
        ]),
        DeviceSpec::NdArray => task.run_on_devices::<Autodiff<burn::backend::NdArray>>(vec![
                burn::backend::ndarray::NdArrayDevice::Cpu;
                n
            ]),
        DeviceSpec::Cuda(_) => {
            let indices: Vec<usize> = specs
                .iter()
                .filter_map(|s| match s {
                    DeviceSpec::Cuda(i) => Some(*i),
                    _ => None,
                })
                .collect();
            if let Some(i) = indices
                .iter()
                .enumerate()
                .find_map(|(k, i)| indices[..k].contains(i).then_some(i))
            {
                bail!("device cuda:{i} is named twice");
            }
            run_cuda(indices, task)
        }
        DeviceSpec::Wgpu => run_wgpu(task),
        DeviceSpec::Metal => run_metal(task),
        DeviceSpec::Vulkan => run_vulkan(task),
    }
}

fn not_compiled(device: &str, feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "device {device:?} is not compiled into this binary; rebuild with `--features {feature}` \
         (compiled devices: {})",
        compiled_devices().join(", ")
    )
}

#[cfg(feature = "cuda")]
fn run_cuda<T: BackendTask>(indices: Vec<usize>, task: T) -> Result<T::Output> {
    use burn::backend::Cuda;
    use burn::backend::cuda::CudaDevice;
    let devices: Vec<CudaDevice> = indices.iter().map(|&i| CudaDevice::new(i)).collect();
    for (device, index) in devices.iter().zip(&indices) {
        probe::<Cuda>(device, &format!("cuda:{index}"))?;
    }
    task.run_on_devices::<Autodiff<Cuda>>(devices)
}

#[cfg(not(feature = "cuda"))]
fn run_cuda<T: BackendTask>(indices: Vec<usize>, _task: T) -> Result<T::Output> {
    Err(not_compiled(
        &format!("cuda:{}", indices.first().copied().unwrap_or_default()),
        "cuda",
    ))
}

#[cfg(feature = "wgpu")]
fn run_wgpu<T: BackendTask>(task: T) -> Result<T::Output> {
    use burn::backend::Wgpu;
    use burn::backend::wgpu::WgpuDevice;
    let device = WgpuDevice::DefaultDevice;
    probe::<Wgpu>(&device, "wgpu")?;
    task.run::<Autodiff<Wgpu>>(device)
}

#[cfg(not(feature = "wgpu"))]
fn run_wgpu<T: BackendTask>(_task: T) -> Result<T::Output> {
    Err(not_compiled("wgpu", "wgpu"))
}

#[cfg(feature = "metal")]
fn run_metal<T: BackendTask>(task: T) -> Result<T::Output> {
    use burn::backend::Metal;
    use burn::backend::wgpu::WgpuDevice;
    let device = WgpuDevice::DefaultDevice;
    probe::<Metal>(&device, "metal")?;
    task.run::<Autodiff<Metal>>(device)
}

#[cfg(not(feature = "metal"))]
fn run_metal<T: BackendTask>(_task: T) -> Result<T::Output> {
    Err(not_compiled("metal", "metal"))
}

#[cfg(feature = "vulkan")]
fn run_vulkan<T: BackendTask>(task: T) -> Result<T::Output> {
    use burn::backend::Vulkan;
    use burn::backend::wgpu::WgpuDevice;
    let device = WgpuDevice::DefaultDevice;
    probe::<Vulkan>(&device, "vulkan")?;
    task.run::<Autodiff<Vulkan>>(device)
}

#[cfg(not(feature = "vulkan"))]
fn run_vulkan<T: BackendTask>(_task: T) -> Result<T::Output> {
    Err(not_compiled("vulkan", "vulkan"))
}

/// Run one tiny kernel on a GPU backend before any real work.
///
/// GPU runtimes load their driver lazily and panic on a device thread when it is missing
/// (e.g. "Unable to dynamically load the cuda shared library"); this turns that into an
/// error naming the device. The panic hook is silenced only for the duration of the probe.
#[cfg(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "metal",
    feature = "vulkan"
))]
fn probe<B: burn::tensor::backend::Backend>(device: &B::Device, name: &str) -> Result<()> {
    use burn::tensor::Tensor;
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let t = Tensor::<B, 1>::ones([1], device).add_scalar(1.0);
        t.into_data()
            .to_vec::<f32>()
            .ok()
            .and_then(|v| v.first().copied())
    }));
    std::panic::set_hook(previous_hook);
    match outcome {
        Ok(Some(value)) if (value - 2.0).abs() < f32::EPSILON => Ok(()),
        Ok(_) => bail!("device {name}: a test computation returned a wrong result"),
        Err(payload) => {
            let reason = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown failure");
            bail!(
                "device {name} is not usable on this machine: {reason}\n\
                 (is a GPU present and its driver installed? for CUDA, libcuda and NVRTC must be \
                 loadable: set LD_LIBRARY_PATH to their directories)"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_device_name() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!(
            "ndarray".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::NdArray
        );
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("WGPU".parse::<DeviceSpec>().unwrap(), DeviceSpec::Wgpu);
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn mixed_backends_and_repeated_gpus_are_refused() {
        struct Count;
        impl BackendTask for Count {
            type Output = usize;
            fn run<B: AutodiffBackend>(self, _device: B::Device) -> Result<usize> {
                Ok(1)
            }
            fn run_on_devices<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<usize> {
                Ok(devices.len())
            }
        }
        let cpu2 = [DeviceSpec::Cpu, DeviceSpec::Cpu];
        assert_eq!(dispatch_on(&cpu2, Count).unwrap(), 2);
        let mixed = dispatch_on(&[DeviceSpec::Cpu, DeviceSpec::NdArray], Count).unwrap_err();
        assert!(mixed.to_string().contains("different backends"), "{mixed}");
        let twice = dispatch_on(&[DeviceSpec::Cuda(1), DeviceSpec::Cuda(1)], Count).unwrap_err();
        assert!(
            twice.to_string().contains("cuda:1 is named twice"),
            "{twice}"
        );
        let wgpu = dispatch_on(&[DeviceSpec::Wgpu, DeviceSpec::Wgpu], Count).unwrap_err();
        assert!(wgpu.to_string().contains("one device only"), "{wgpu}");
    }

    #[test]
    fn a_single_device_task_refuses_several() {
        struct One;
        impl BackendTask for One {
            type Output = ();
            fn run<B: AutodiffBackend>(self, _device: B::Device) -> Result<()> {
                Ok(())
            }
        }
        let err = dispatch_on(&[DeviceSpec::Cpu, DeviceSpec::Cpu], One).unwrap_err();
        assert!(
            err.to_string().contains("runs on one device, not 2"),
            "{err}"
        );
        assert!(dispatch(DeviceSpec::Cpu, One).is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_backend_names_its_feature() {
        struct Nothing;
        impl BackendTask for Nothing {
            type Output = ();
            fn run<B: AutodiffBackend>(self, _device: B::Device) -> Result<()> {
                Ok(())
            }
        }
        let err = dispatch(DeviceSpec::Cuda(0), Nothing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
