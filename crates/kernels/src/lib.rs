//! Every hand-written loop of the project, each tested against Burn's own ops:
//!
//! - Burn backend extensions, each with its backward pass where it is differentiated:
//!   [`linear`] (a layer's product, bias and ReLU), [`conv`] (a convolution, direct or Winograd's),
//!   [`norm_relu_pool`] (a CNN block's batch norm, ReLU and max pooling), [`adam`] (Adam's step in one pass) and
//!   [`cross_entropy`] (the loss from logits). On flex they run kernels of their
//!   own; other backends run Burn's ops, the same arithmetic.
//! - Loops over plain slices: [`gather`] (pixel bytes to a batch's floats),
//!   [`planes`] (decoded pictures to the channel planes a network takes),
//!   [`augment`] (a training image's random warp) and [`dense`] (an MLP's or a CNN's
//!   inference).
//!
//! The loops are compiled for each instruction set [`pulp`] detects at run time, so
//! that they run in the widest vectors the CPU has (AVX-512 where it has it).
// Burn 0.22.1 deprecates ndarray, which the `ndarray` feature keeps for users
// comparing against it; the code generated for it names it too.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

/// An extension trait routed by Burn's `#[backend_extension]`: flex runs the
/// implementation written for it, ndarray and Cube (wgpu, cuda) the trait's generic
/// path, and autodiff the implementation with its own backward pass.
macro_rules! differentiable_extension {
    ($(#[$meta:meta])* pub trait $name:ident: Backend { $($body:tt)* }) => {
        $(#[$meta])*
        #[burn::backend::backend_extension(
            Flex: cfg(feature = "flex"),
            NdArray: cfg(feature = "ndarray"),
            Cube: cfg(any(feature = "wgpu", feature = "cuda")),
            Autodiff,
        )]
        pub trait $name: Backend { $($body)* }
    };
}

/// The backends without kernels of their own (ndarray; wgpu and cuda through Cube)
/// take each named extension trait's generic path: Burn's own ops.
macro_rules! generic_paths {
    ($($extension:path),+ $(,)?) => {
        $(
            #[cfg(feature = "ndarray")]
            impl $extension for burn::backend::NdArray {}
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            impl $extension for burn::backend::Cube {}
        )+
    };
}

pub mod adam;
pub mod augment;
pub mod conv;
pub mod cross_entropy;
pub mod dense;
#[cfg(feature = "flex")]
mod flex;
pub mod gather;
pub mod linear;
pub mod norm_relu_pool;
pub mod planes;
