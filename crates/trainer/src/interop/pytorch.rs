//! Exchanging weights with PyTorch as the state dict of the equivalent module: the
//! tutorial's `Net` for an MLP (`fcK.weight` shaped `[out, in]`, `fcK.bias`), the
//! README's `Cnn` for a CNN (`convK.*`, `bnK.*`, then `fcK.*`), renamed to and from
//! the [`Network`]'s own layer names ([`NetworkConfig::layer_names`]), with the
//! transposing left to burn-store's PyTorch adapters so that neither side needs
//! hand-written serialisation. An export carries its network config as safetensors
//! metadata, which a CNN needs to be imported back: its padding and pooling are in no
//! weight's shape.

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::path::Path;

use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot,
    ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::DType;
use model::{Activation, Network, NetworkConfig, Normalization};
use safetensors::tensor::Metadata;

use super::InteropError;
use crate::TrainerError;

/// Writes `model`, built from `config`, as a safetensors file holding the state dict of
/// the PyTorch `Net` with the same layers, so that `Net().load_state_dict(load_file(out))`
/// takes it. An existing file at `out` is replaced once the new one is complete.
pub fn export_safetensors(
    model: &Network,
    config: &NetworkConfig,
    out: &Path,
) -> Result<(), InteropError> {
    let activations =
        std::iter::once(config.activation).chain(config.conv.iter().map(|b| b.activation));
    if let Some(other) = activations.into_iter().find(|&a| a != Activation::Relu) {
        return Err(InteropError::NotExportable(format!(
            "its layers use {other:?} but the PyTorch modules it maps to (the tutorial's Net, the README's Cnn) apply ReLU, so PyTorch would compute other outputs"
        )));
    }
    let remapper = config.layer_names().into_iter().try_fold(
        KeyRemapper::new(),
        |remapper, (burn, pytorch)| {
            remapper.add_pattern(
                format!(r"^{}\.", burn.replace('.', r"\.")),
                format!("{pytorch}."),
            )
        },
    );
    let write_error = |reason: String| TrainerError::Write {
        path: out.to_path_buf(),
        error: std::io::Error::other(reason),
    };
    // PyTorch's `Net` takes pixels in [0, 1]: an MLP's standardisation moves into
    // fc1. A CNN's first convolution pads with zeros, which a standardisation moved
    // into it would shift: its weights go as they are, and the metadata states the
    // per-channel standardisation to apply first, as torchvision's `Normalize`.
    let (folded, standardized) = match model.clone().with_normalization_folded() {
        Some(folded) => (
            folded,
            config.clone().with_normalization(Normalization::Unit),
        ),
        None => (model.clone(), config.clone()),
    };
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        // What the exported weights compute.
        .metadata(NETWORK_KEY, standardized.to_string())
        .remap(remapper.map_err(|e| write_error(e.to_string()))?);
    let (key, value) = super::input_metadata(&standardized);
    store = store.metadata(key, value);
    folded
        .save_into(&mut store)
        .map_err(|e| write_error(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| write_error(e.to_string()))?;
    let bytes = with_batches_tracked(&bytes, config).map_err(|e| write_error(e.to_string()))?;
    // Written like every other output: atomically, and readable by all.
    Ok(crate::fs::write_atomically(out, &bytes)?)
}

/// The safetensors metadata key of the exported network's config.
const NETWORK_KEY: &str = "network";

/// PyTorch's `BatchNorm2d` also keeps `num_batches_tracked`, which
/// `load_state_dict` insists on and Burn has no counterpart of: each is added as 0,
/// which changes nothing unless the module is built with `momentum=None`.
fn with_batches_tracked(
    bytes: &[u8],
    config: &NetworkConfig,
) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let norms: Vec<String> = config
        .layer_names()
        .into_iter()
        .filter(|(burn, _)| burn.ends_with(".norm"))
        .map(|(_, pytorch)| format!("{pytorch}.num_batches_tracked"))
        .collect();
    if norms.is_empty() {
        return Ok(bytes.to_vec());
    }
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)?;
    let file = safetensors::SafeTensors::deserialize(bytes)?;
    let zero = 0i64.to_le_bytes();
    let mut tensors = file.tensors();
    for name in norms {
        tensors.push((
            name,
            safetensors::tensor::TensorView::new(safetensors::Dtype::I64, Vec::new(), &zero)?,
        ));
    }
    safetensors::serialize(tensors, header.metadata().clone())
}

/// Reads a PyTorch state dict from a safetensors or `.pt` file, recognised by content,
/// as the network `network` describes, or, without it, the one the file's metadata
/// names (an export of ours), or else the MLP the tensors' shapes describe (the
/// tutorial's `Net`, or one with other widths or more layers). Weights of any float
/// type are converted to f32.
pub fn import_state_dict(
    path: &Path,
    network: Option<NetworkConfig>,
    device: &Device,
) -> Result<(NetworkConfig, Network), InteropError> {
    let import_error = |reason: String| InteropError::Import {
        path: path.to_path_buf(),
        reason,
    };
    let (tensors, exported) = read_tensors(path).map_err(import_error)?;
    let config = match network.or(exported) {
        Some(config) => config,
        None => network_of(&tensors).map_err(import_error)?,
    };
    config
        .feature_maps()
        .map_err(|e| import_error(format!("its network: model.{e}")))?;
    check_fits_in_memory(&config).map_err(import_error)?;
    let mut model = config.init(device);
    check_shapes(&tensors, &model, &config).map_err(import_error)?;
    let prefixes: BTreeMap<String, String> = config
        .layer_names()
        .into_iter()
        .map(|(burn, pytorch)| (pytorch, burn))
        .collect();
    let renamed: Vec<PackTensor> = tensors
        .into_iter()
        .filter(|(name, _)| !name.ends_with(".num_batches_tracked"))
        .map(|(name, mut tensor)| {
            // A name of no layer is left as it is, to be reported unused.
            if let Some((layer, param)) = name.split_once('.')
                && let Some(burn) = prefixes.get(layer)
            {
                tensor.name = format!("{burn}.{param}");
            }
            tensor
        })
        .collect();
    let adapter: Box<dyn ModuleAdapter> =
        Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)));
    let result = model.apply(renamed, None, Some(adapter), true);
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(import_error(result.to_string().trim().replace('\n', "; ")));
    }
    if let Some(bad) = crate::weights::first_non_finite(&model) {
        // Named as the file names it: `hidden.1.weight` is the file's `fc2.weight`.
        let pytorch = prefixes
            .iter()
            .find(|(_, burn)| bad.tensor.starts_with(&format!("{burn}.")))
            .map_or_else(
                || bad.tensor.clone(),
                |(pytorch, burn)| format!("{pytorch}{}", &bad.tensor[burn.len()..]),
            );
        return Err(import_error(format!(
            "its tensor {pytorch} holds {}; weights must be finite numbers (no NaN or infinity)",
            bad.value
        )));
    }
    Ok((config, model))
}

/// Refuses a network too large to build and fill in the memory available: it is
/// built before any weight is read, and an allocation failure would end the process.
fn check_fits_in_memory(config: &NetworkConfig) -> Result<(), String> {
    let Some(available) = data::available_memory() else {
        return Ok(());
    };
    // Its parameters as f32, and as many bytes of weights read into them.
    let needed = crate::config::parameter_count(config) * 8;
    if needed <= u128::from(available) {
        return Ok(());
    }
    Err(format!(
        "its network {} needs about {} MB of memory to import, but {} MB is available",
        config.architecture(),
        needed / 1_000_000,
        available / 1_000_000
    ))
}

/// Refuses tensors whose shapes are not those of `model` (built from `config`), by
/// the names and shapes the file declares, before any tensor's data is read: a
/// header can declare gigabytes under a layer's name, and they would be read in full
/// before Burn compared shapes. Tensors that name no parameter are never read; the
/// import reports them.
fn check_shapes(
    tensors: &BTreeMap<String, PackTensor>,
    model: &Network,
    config: &NetworkConfig,
) -> Result<(), String> {
    let layers = config.layer_names();
    let expected: BTreeMap<String, Vec<usize>> = model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .filter_map(|tensor| {
            let (burn, pytorch) = layers
                .iter()
                .find(|(burn, _)| tensor.name.starts_with(&format!("{burn}.")))?;
            let name = format!("{pytorch}{}", &tensor.name[burn.len()..]);
            Some((name, tensor.shape.to_vec()))
        })
        .collect();
    for (name, tensor) in tensors {
        let declared = tensor.shape.to_vec();
        if let Some(shape) = expected.get(name)
            && *shape != declared
        {
            return Err(format!(
                "its tensor {name} is {declared:?}, but the network {} takes {shape:?}",
                config.architecture()
            ));
        }
    }
    Ok(())
}

/// The layer number (from 1) and parameter name of a state-dict key `fc<N>.<param>`.
fn pytorch_param(name: &str) -> Option<(usize, &str)> {
    let (layer, param) = name.strip_prefix("fc")?.split_once('.')?;
    let number = layer.parse::<usize>().ok().filter(|&n| n >= 1)?;
    Some((number, param))
}

/// The file's tensors by name, and the network its metadata names, if any. A
/// safetensors file starts with the length of its JSON header and then the header's
/// `{`; anything else is handed to the PyTorch reader, which knows every layout
/// `torch.save` has written. Tensors are read lazily: only those a parameter takes,
/// when it takes them.
fn read_tensors(
    path: &Path,
) -> Result<(BTreeMap<String, PackTensor>, Option<NetworkConfig>), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut start = [0u8; 9];
    file.read_exact(&mut start).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "the file is too short to hold any tensor".to_string(),
        _ => e.to_string(),
    })?;
    if start[8] != b'{' {
        let mut store = PytorchStore::from_file(path);
        let tensors = store
            .get_all_tensors()
            .cloned()
            .map_err(|e| e.to_string())?;
        return Ok((tensors, None));
    }
    let header = read_header(&mut file)?;
    let network = header
        .metadata()
        .as_ref()
        .and_then(|metadata| metadata.get(NETWORK_KEY))
        .map(|json| {
            NetworkConfig::load_binary(json.as_bytes())
                .map_err(|e| format!("its `{NETWORK_KEY}` metadata is not a network config: {e}"))
        })
        .transpose()?;
    // The file mapped, not read: each tensor's bytes are copied out when applied.
    let mut store = SafetensorsStore::from_file(path);
    let tensors = store
        .get_all_tensors()
        .cloned()
        .map_err(|e| e.to_string())?;
    Ok((tensors, network))
}

/// The most bytes a safetensors header may take, as the format's reference reader
/// has it.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The header of the safetensors file `file`, read alone: its length (8 bytes,
/// little-endian), then the JSON declaring each tensor's type, shape and place in the
/// data after it. The file must be exactly as long as the header says: anything past
/// the declared tensors (gigabytes of nothing after a valid header) is refused unread.
fn read_header(file: &mut std::fs::File) -> Result<Metadata, String> {
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut len = [0u8; 8];
    file.rewind()
        .and_then(|()| file.read_exact(&mut len))
        .map_err(|e| e.to_string())?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER_BYTES.min(file_len.saturating_sub(8)) {
        return Err(format!(
            "its header claims {header_len} bytes, more than the file holds or the format allows ({MAX_HEADER_BYTES})"
        ));
    }
    let mut json = Vec::new();
    file.take(header_len)
        .read_to_end(&mut json)
        .map_err(|e| e.to_string())?;
    let header: Metadata = serde_json::from_slice(&json)
        .map_err(|e| format!("its header is not a safetensors header: {e}"))?;
    let declared = 8 + header_len + header.data_len() as u64;
    match file_len.cmp(&declared) {
        std::cmp::Ordering::Equal => Ok(header),
        std::cmp::Ordering::Greater => Err(format!(
            "it is {file_len} bytes long, but its header accounts for {declared}; a safetensors file holds its tensors and nothing after them"
        )),
        std::cmp::Ordering::Less => Err(format!(
            "it is {file_len} bytes long, but its header declares {declared}; the file is truncated"
        )),
    }
}

/// The network a state dict describes: its tensors must be `fc1` to `fcN`, each with
/// a weight `[out, in]` and a bias `[out]`, each layer taking the previous one's output.
fn network_of(tensors: &BTreeMap<String, PackTensor>) -> Result<NetworkConfig, String> {
    let mut weights = BTreeMap::new();
    let mut biases = BTreeMap::new();
    for (name, tensor) in tensors {
        let shape = tensor.shape.to_vec();
        match pytorch_param(name) {
            Some((layer, "weight")) => weights.insert(layer, shape),
            Some((layer, "bias")) => biases.insert(layer, shape),
            _ if name.starts_with("conv") => {
                return Err(format!(
                    "it holds `{name}`, a convolution, whose padding and pooling no weight records; give the network's config (its model section, with kind \"cnn\" and conv)"
                ));
            }
            _ => {
                return Err(format!(
                    "it holds `{name}`, which is not fc<N>.weight or fc<N>.bias"
                ));
            }
        };
    }
    let layers = weights.len();
    if layers == 0 {
        return Err("it holds no fc1.weight".into());
    }
    let mut widths = Vec::with_capacity(layers + 1);
    for layer in 1..=layers {
        let weight = weights
            .get(&layer)
            .ok_or_else(|| format!("it has {layers} weights but no fc{layer}.weight: layers must be numbered fc1 to fc{layers}"))?;
        let &[out, inputs] = weight.as_slice() else {
            return Err(format!(
                "fc{layer}.weight has shape {weight:?}; a Linear weight is [out, in]"
            ));
        };
        if out == 0 || inputs == 0 {
            return Err(format!(
                "fc{layer}.weight has shape {weight:?}, an empty layer"
            ));
        }
        match widths.last() {
            None => widths.push(inputs),
            Some(&previous) if previous != inputs => {
                return Err(format!(
                    "fc{layer}.weight takes {inputs} inputs but fc{}.weight gives {previous} outputs",
                    layer - 1
                ));
            }
            Some(_) => {}
        }
        widths.push(out);
        match biases.get(&layer) {
            Some(bias) if bias.as_slice() == [out] => {}
            Some(bias) => {
                return Err(format!(
                    "fc{layer}.bias has shape {bias:?}; it should be [{out}]"
                ));
            }
            None => return Err(format!("it has no fc{layer}.bias")),
        }
    }
    if let Some(extra) = biases.keys().find(|&&layer| layer > layers) {
        return Err(format!("it has fc{extra}.bias but no fc{extra}.weight"));
    }
    Ok(NetworkConfig::new()
        .with_input_size(widths[0])
        .with_hidden_sizes(widths[1..layers].to_vec())
        .with_num_classes(widths[layers]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::store::burn_pack::Bytes;

    fn tensor(shape: &[usize]) -> PackTensor {
        let count: usize = shape.iter().product();
        PackTensor::new(
            String::new(),
            DType::F32,
            shape.to_vec(),
            None,
            Bytes::from_bytes_vec(vec![0; count * 4]),
        )
    }

    fn state_dict(entries: &[(&str, &[usize])]) -> BTreeMap<String, PackTensor> {
        entries
            .iter()
            .map(|(name, shape)| (name.to_string(), tensor(shape)))
            .collect()
    }

    #[test]
    fn the_tutorial_state_dict_is_the_default_network() {
        let tensors = state_dict(&[
            ("fc1.weight", &[64, 784]),
            ("fc1.bias", &[64]),
            ("fc2.weight", &[64, 64]),
            ("fc2.bias", &[64]),
            ("fc3.weight", &[10, 64]),
            ("fc3.bias", &[10]),
        ]);
        let config = network_of(&tensors).expect("the tutorial's network");
        assert_eq!(
            (config.input_size, config.hidden_sizes, config.num_classes),
            (784, vec![64, 64], 10)
        );
    }

    #[test]
    fn layers_are_ordered_by_number_not_by_name() {
        let mut entries: Vec<(String, Vec<usize>)> = Vec::new();
        for layer in 1..=10 {
            let (out, inputs) = if layer == 10 {
                (3, 5)
            } else {
                (5, if layer == 1 { 7 } else { 5 })
            };
            entries.push((format!("fc{layer}.weight"), vec![out, inputs]));
            entries.push((format!("fc{layer}.bias"), vec![out]));
        }
        let tensors = entries
            .iter()
            .map(|(name, shape)| (name.clone(), tensor(shape)))
            .collect();
        let config = network_of(&tensors).expect("ten layers");
        assert_eq!(
            (
                config.input_size,
                config.hidden_sizes.len(),
                config.num_classes
            ),
            (7, 9, 3)
        );
    }

    #[test]
    fn inconsistent_state_dicts_are_explained() {
        // The tensors' names and shapes, and what the refusal says.
        type Case<'a> = (&'a [(&'a str, &'a [usize])], &'a str);
        let cases: [Case; 7] = [
            (&[], "no fc1.weight"),
            (
                &[("conv1.weight", &[4, 1, 3, 3]), ("fc1.weight", &[10, 784])],
                "whose padding and pooling no weight records",
            ),
            (
                &[
                    ("fc1.weight", &[4, 8]),
                    ("fc1.bias", &[4]),
                    ("head.weight", &[2, 4]),
                ],
                "`head.weight`",
            ),
            (
                &[
                    ("fc1.weight", &[4, 8]),
                    ("fc1.bias", &[4]),
                    ("fc3.weight", &[2, 4]),
                    ("fc3.bias", &[2]),
                ],
                "no fc2.weight",
            ),
            (
                &[
                    ("fc1.weight", &[4, 8]),
                    ("fc1.bias", &[4]),
                    ("fc2.weight", &[2, 5]),
                    ("fc2.bias", &[2]),
                ],
                "takes 5 inputs",
            ),
            (&[("fc1.weight", &[4, 8])], "no fc1.bias"),
            (
                &[("fc1.weight", &[4, 8]), ("fc1.bias", &[8])],
                "should be [4]",
            ),
        ];
        for (entries, expected) in cases {
            let err = network_of(&state_dict(entries)).expect_err(expected);
            assert!(err.contains(expected), "{err} (wanted {expected})");
        }
    }
}
