//! Whether a network's weights are all numbers: a model holding a NaN or an infinity
//! answers nonsense for every image, so it is refused where it enters the program.

use burn::store::ModuleSnapshot;
use burn::tensor::DType;
use model::Network;

/// A weight that is not a finite number.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NonFinite {
    /// The tensor's path in the network, e.g. `hidden.1.weight`.
    pub(crate) tensor: String,
    pub(crate) value: f32,
}

/// The first weight of `network` that is NaN or infinite, if any.
pub(crate) fn first_non_finite(network: &Network) -> Option<NonFinite> {
    network
        .collect(None, None, false)
        .into_iter()
        .filter(|tensor| tensor.dtype == DType::F32)
        .find_map(|tensor| {
            let bytes = tensor.to_bytes().ok()?;
            let value = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .find(|value| !value.is_finite())?;
            Some(NonFinite {
                tensor: tensor.name,
                value,
            })
        })
}
