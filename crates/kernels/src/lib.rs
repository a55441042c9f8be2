//! Every hand-written loop of the project, each tested against Burn's own ops:
//!
//! - Burn backend extensions, each with its backward pass where it is differentiated:
//!   [`linear`] (a layer's product, bias and ReLU), [`conv`] (a convolution as one
//!   matrix product per pass), [`adam`] (Adam's step in one pass) and
//!   [`cross_entropy`] (the loss from logits). On flex they run kernels of their
//!   own; other backends run Burn's ops, the same arithmetic.
//! - Loops over plain slices: [`gather`] (pixel bytes to a batch's floats) and
//!   [`dense`] (an MLP's inference).
//!
//! The loops are compiled for each instruction set [`pulp`] detects at run time, so
//! that they run in the widest vectors the CPU has (AVX-512 where it has it).
// Burn 0.22.1 deprecates ndarray, which the `ndarray` feature keeps for users
// comparing against it; the code generated for it names it too.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

pub mod adam;
pub mod conv;
pub mod cross_entropy;
pub mod dense;
#[cfg(feature = "flex")]
mod flex;
pub mod gather;
pub mod linear;
