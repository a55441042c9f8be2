//! What the flex kernels share: a tensor's values as one slice to read or write.

use burn::backend::flex::FlexTensor;

/// `tensor` with its elements contiguous: itself when they are, else a copy.
pub(crate) fn contiguous(tensor: FlexTensor) -> FlexTensor {
    if tensor.layout().contiguous_offsets().is_some() {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// The values of a contiguous f32 tensor (none for another dtype).
pub(crate) fn values(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().unwrap_or_default()
}

/// The values of a contiguous f32 tensor to write, copied first if another tensor
/// shares them.
pub(crate) fn values_mut(tensor: &mut FlexTensor) -> &mut [f32] {
    let (start, end) = tensor.layout().contiguous_offsets().unwrap_or_default();
    &mut tensor.storage_mut::<f32>()[start..end]
}
