//! The sweep file: the base config, the config keys to vary with the values or
//! ranges each takes, and how the trials are chosen.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the trials are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Method {
    /// Every combination of the listed values.
    #[default]
    Grid,
    /// `trials` draws, each value picked at random from its list or range.
    Random,
}

/// The values one config field takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Domain {
    /// These values (any JSON: numbers, strings, lists).
    Values(Vec<Value>),
    /// A number drawn from a range (random sweeps only).
    Range(Range),
}

/// A number between `min` and `max`: uniform, or with `log` log-uniform; with
/// `integer`, a whole number, each equally likely.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Range {
    pub(crate) min: f64,
    pub(crate) max: f64,
    #[serde(default)]
    pub(crate) log: bool,
    #[serde(default)]
    pub(crate) integer: bool,
}

/// A sweep file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SweepSpec {
    /// The config every trial starts from: a path (relative to the sweep file) or an
    /// inline config object; the built-in defaults if absent.
    #[serde(default)]
    pub(crate) base: Option<Value>,
    #[serde(default)]
    pub(crate) method: Method,
    /// How many trials a random sweep draws.
    #[serde(default)]
    pub(crate) trials: Option<usize>,
    /// Seed of a random sweep's draws.
    #[serde(default)]
    pub(crate) seed: u64,
    /// Train every configuration once with each of these values of the config's
    /// `seed`, and rank configurations by the median of their validation accuracies:
    /// differences smaller than the spread between seeds are noise.
    #[serde(default)]
    pub(crate) seeds: Vec<u64>,
    /// Dotted config keys (`lr`, `optimizer.name`, `model.dropout`, ...) and the values
    /// each takes.
    pub(crate) parameters: BTreeMap<String, Domain>,
}
