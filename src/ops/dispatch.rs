//! Reaching the concrete backends from generic code (the CPU kernels; `conv_gemm`'s
//! autodiff node on the GPU backends).
//!
//! Burn 0.21 has no hook for backend-specific versions of a module's operation, and making
//! every model generic over a backend-extension trait would put a second bound on every
//! generic function of the crate. Instead the operations in this module's siblings compare
//! the backend's type with the concrete backends they know (`TypeId`, a constant per
//! monomorphisation) and, on a match, move tensor primitives to the concrete type with a
//! checked `Any` downcast — no `unsafe`. Unknown backends get a generic fallback.

use std::any::{Any, TypeId};
use std::borrow::Cow;

use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

/// Which CPU backend a generic `B` is, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CpuBackend {
    /// `Autodiff<Flex>` (training on the default CPU device).
    FlexAutodiff,
    /// `Autodiff<NdArray>`.
    NdArrayAutodiff,
    /// `Flex` (inference).
    Flex,
    /// `NdArray` (inference).
    NdArray,
}

impl CpuBackend {
    pub(crate) fn of<B: Backend>() -> Option<Self> {
        if same::<B, Autodiff<Flex>>() {
            Some(Self::FlexAutodiff)
        } else if same::<B, Autodiff<NdArray>>() {
            Some(Self::NdArrayAutodiff)
        } else if same::<B, Flex>() {
            Some(Self::Flex)
        } else if same::<B, NdArray>() {
            Some(Self::NdArray)
        } else {
            None
        }
    }

    /// The CPU backend of `x`'s type when `x` holds f32 values (the host kernels' type).
    pub(crate) fn of_f32<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Option<Self> {
        if x.dtype() == DType::F32 {
            Self::of::<B>()
        } else {
            None
        }
    }
}

/// Whether `T` and `U` are the same type.
pub(crate) fn same<T: 'static, U: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<U>()
}

/// Moves a value between two names of the same type (checked with [`CpuBackend::of`]).
pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> U {
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<U>() {
        Ok(v) => *v,
        Err(_) => panic!("CPU backend dispatch reached a mismatched tensor type"),
    }
}

/// The float primitive of a tensor of backend `B`, renamed as backend `I`'s.
pub(crate) fn primitive<I: Backend, B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<I> {
    cast(t.into_primitive().tensor())
}

/// A tensor of backend `B` from backend `I`'s primitive (the same type).
pub(crate) fn tensor<I: Backend, B: Backend, const D: usize>(p: FloatTensor<I>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(cast(p)))
}

/// CPU backends whose tensors the host kernels read and write.
pub(crate) trait HostBackend: Backend {
    /// The values of an f32 tensor in row-major order, borrowed when the layout allows.
    fn host<const D: usize>(tensor: &FloatTensor<Self>) -> Cow<'_, [f32]>;
}

impl HostBackend for Flex {
    fn host<const D: usize>(tensor: &FlexTensor) -> Cow<'_, [f32]> {
        match tensor.as_slice::<f32>() {
            Some(values) => Cow::Borrowed(values),
            None => Cow::Owned(owned_values(tensor.to_contiguous().into_data())),
        }
    }
}

impl HostBackend for NdArray {
    fn host<const D: usize>(tensor: &FloatTensor<Self>) -> Cow<'_, [f32]> {
        let t = Tensor::<NdArray, D>::from_primitive(TensorPrimitive::Float(tensor.clone()));
        Cow::Owned(owned_values(t.into_data()))
    }
}

/// The values of f32 tensor data.
pub(crate) fn owned_values(data: TensorData) -> Vec<f32> {
    data.into_vec::<f32>()
        .expect("host kernels: the dtype was checked to be f32")
}

/// A backend tensor holding `values` with shape `dims`.
pub(crate) fn from_host<I: Backend>(
    values: Vec<f32>,
    dims: &[usize],
    device: &I::Device,
) -> FloatTensor<I> {
    I::float_from_data(TensorData::new(values, dims.to_vec()), device)
}
