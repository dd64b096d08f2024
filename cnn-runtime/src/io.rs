//! Weights and checkpoints in safetensors format, with the tensor names and layouts of the
//! equivalent `torch.nn.Sequential`, so that files move both ways between this crate and
//! PyTorch (`model.load_state_dict(safetensors.torch.load_file(path))`).
//!
//! Every file carries metadata: the model's layer list (`cnn.model`), the crate version and,
//! for checkpoints, the optimizer, its state, the epoch, the step and the seed. The bytes written
//! depend only on what is saved, so identical runs write identical files. Writes go to a
//! temporary file of their own (`.NAME.PID.COUNTER.tmp`) that is synced and renamed over the
//! target, so a crash while saving leaves the previous file intact; the next save to the same
//! file removes the temporary a crashed save left. Loading checks everything before it changes
//! the model.
//!
//! Every function takes its arguments in one order: what is saved or loaded into (the model,
//! then for a checkpoint the optimizer and the [`Progress`]), then the file's path, then, in the
//! `_with` forms, the [`Options`]:
//!
//! ```
//! use cnn::io::{load_checkpoint, load_weights, save_checkpoint, save_weights, Progress};
//! use cnn::{cnn, Model, Network, Sgd};
//!
//! cnn! { struct Tiny < input(4) fc(8) relu fc(3) softmax > }
//!
//! // Any directory will do; the process id keeps simultaneous runs of this example apart.
//! let dir = std::env::temp_dir();
//! let weights = dir.join(format!("tiny-{}.safetensors", std::process::id()));
//! let checkpoint = dir.join(format!("tiny-checkpoint-{}.safetensors", std::process::id()));
//!
//! let mut model = Tiny::with_seed(1);
//! let mut opt = Sgd::new(0.1, 0.9)?;
//! model.train_step(&mut opt, &[0.5, -1.0, 0.25, 2.0], &[2])?;
//! save_weights(&model, &weights)?;
//! save_checkpoint(&model, &opt, Progress { epoch: 1, step: 1, seed: 7 }, &checkpoint)?;
//!
//! let mut copy = Tiny::new();
//! load_weights(&mut copy, &weights)?;
//! assert_eq!(copy.params(), model.params());
//!
//! // Resuming: the same model and optimizer, with the momentum and progress of the run.
//! let (mut resumed, mut resumed_opt) = (Tiny::new(), Sgd::new(0.1, 0.9)?);
//! let progress = load_checkpoint(&mut resumed, &mut resumed_opt, &checkpoint)?;
//! assert_eq!(progress.epoch, 1);
//! # std::fs::remove_file(&weights).ok();
//! # std::fs::remove_file(&checkpoint).ok();
//! # Ok::<(), cnn::Error>(())
//! ```

#[cfg(feature = "std")]
use alloc::collections::BTreeMap;
#[cfg(feature = "std")]
use core::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "std")]
use std::ffi::{OsStr, OsString};
#[cfg(feature = "std")]
use std::fs;
#[cfg(feature = "std")]
use std::io::{Read, Write};
#[cfg(feature = "std")]
use std::path::Path;
#[cfg(feature = "std")]
use std::time::Duration;

use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensors};

#[cfg(feature = "std")]
use crate::data::file_error;
use crate::limit::{Budget, Origin};
#[cfg(feature = "std")]
pub use crate::mapped::{load_mapped, load_mapped_with, FileTensor, MapOptions, MappedTensor, Mapping, ORDER_KEY};
pub use crate::meta::{Channels, Meta};
use crate::optim::first_non_finite;
#[cfg(feature = "std")]
use crate::optim::{check_count, check_learning_rate};
use crate::prelude::*;
use crate::{Error, Limit, Network, Result, TensorKind};
#[cfg(feature = "std")]
use crate::{Noise, Optimizer};

/// Metadata key of the model's layer list.
pub const MODEL_KEY: &str = "cnn.model";
#[cfg(feature = "std")]
const VERSION_KEY: &str = "cnn.version";
const KIND_KEY: &str = "cnn.kind";
const OPTIMIZER_PREFIX: &str = "optimizer.";

/// How a save or a load treats what it writes or reads; [`Options::DEFAULT`] is what
/// [`save_weights`], [`load_weights`], [`save_checkpoint`] and [`load_checkpoint`] use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The most memory one load may allocate: the file's bytes, its parsed header and the
    /// `f32` buffers made from them, each counted before it is allocated. Saves do not use it.
    pub limit: Limit,
    /// Whether parameters, buffers and optimizer state that are NaN or infinite may be saved
    /// and loaded. When `false` (the default) they are an `Err` naming the first tensor and
    /// index: they are what a diverged run leaves, and a model holding them predicts nothing.
    /// An optimizer's state must be finite to load in any case
    /// ([`Optimizer::load_state`] refuses it).
    pub allow_non_finite: bool,
}

impl Options {
    /// A limit of [`Limit::DEFAULT`], and non-finite values refused.
    pub const DEFAULT: Options = Options { limit: Limit::DEFAULT, allow_non_finite: false };
}

impl Default for Options {
    fn default() -> Self {
        Options::DEFAULT
    }
}

/// Where training stands, saved with a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// The seed that, with the epoch, determines the data order and augmentation of every
    /// epoch to come: the state of the training loop's random generator.
    pub seed: u64,
}

/// A tensor to write: its name, its shape and its values, stored as `dtype` (`F32`, or `I64`
/// for a count).
#[cfg(feature = "std")]
struct Entry<'a> {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    values: &'a [f32],
}

/// The model's tensors as safetensors bytes, with `extra` tensors and `metadata` added; an
/// `Err` for `path` at the first value that is not finite unless `options` allow them.
#[cfg(feature = "std")]
fn to_bytes<M: Network>(
    path: &Path,
    model: &M,
    extra: &[(String, &[f32])],
    mut metadata: BTreeMap<String, String>,
    options: Options,
) -> Result<Vec<u8>> {
    metadata.insert(MODEL_KEY.into(), M::DSL.into());
    metadata.insert(VERSION_KEY.into(), env!("CARGO_PKG_VERSION").into());
    let (params, buffers) = (model.params(), model.buffers());
    let mut entries: Vec<Entry<'_>> = M::TENSORS
        .iter()
        .map(|t| {
            let (name, shape, range) = (t.name.to_string(), t.shape.to_vec(), t.offset..t.offset + t.len());
            match t.kind {
                TensorKind::Count => Entry { name, dtype: Dtype::I64, shape, values: &buffers[range] },
                TensorKind::Statistic => Entry { name, dtype: Dtype::F32, shape, values: &buffers[range] },
                _ => Entry { name, dtype: Dtype::F32, shape, values: &params[range] },
            }
        })
        .collect();
    entries.extend(extra.iter().map(|(name, values)| Entry {
        name: name.clone(),
        dtype: Dtype::F32,
        shape: vec![values.len()],
        values,
    }));
    if !options.allow_non_finite {
        for entry in &entries {
            check_finite(path.into(), &entry.name, entry.values, "saved")?;
        }
    }
    Ok(encode(&mut entries, &metadata))
}

/// Fails for `path` unless every value of tensor `name` is finite; `done` says what is refused
/// (`saved`, `loaded`).
fn check_finite(at: Origin<'_>, name: &str, values: &[f32], done: &str) -> Result<()> {
    match first_non_finite(values) {
        None => Ok(()),
        Some(i) => Err(at.error(format!(
            "tensor `{name}` holds {} at index {i}: values that are not finite (what a diverged run leaves) \
             are not {done} unless io::Options::allow_non_finite is set",
            values[i]
        ))),
    }
}

/// The safetensors file of `entries` and `metadata`, whose bytes depend only on their content
/// (the `safetensors` crate writes its metadata map in hash order, which changes from run to
/// run). The layout, as the format defines it:
///
/// - the length `N` of the header, a little-endian `u64`;
/// - the header, `N` bytes of JSON padded with spaces to a multiple of 8:
///   `{"__metadata__":{"KEY":"VALUE",...},"NAME":{"dtype":"F32","shape":[...],"data_offsets":[BEGIN,END]},...}`,
///   the metadata keys in sorted order and the tensors in the order of their data;
/// - the tensors' little-endian values, one after the other, at their offsets from the end of
///   the header.
///
/// The tensors are ordered as the `safetensors` crate orders them (by dtype, `I64` before `F32`,
/// then by name), so that every tensor is aligned to its size, and the JSON is spelled as its writer
/// spells it: the file is the one `safetensors::serialize` would write with sorted metadata.
#[cfg(feature = "std")]
fn encode(entries: &mut [Entry<'_>], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    entries.sort_by(|a, b| b.dtype.cmp(&a.dtype).then_with(|| a.name.cmp(&b.name)));
    let mut header = String::from("{");
    if !metadata.is_empty() {
        header.push_str("\"__metadata__\":{");
        for (i, (key, value)) in metadata.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            push_json_string(&mut header, key);
            header.push(':');
            push_json_string(&mut header, value);
        }
        header.push('}');
    }
    let mut offset = 0;
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 || !metadata.is_empty() {
            header.push(',');
        }
        push_json_string(&mut header, &entry.name);
        let shape = entry.shape.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        let end = offset + entry.values.len() * entry.dtype.bitsize() / 8;
        let dtype = if entry.dtype == Dtype::I64 { "I64" } else { "F32" };
        header.push_str(&format!(":{{\"dtype\":\"{dtype}\",\"shape\":[{shape}],\"data_offsets\":[{offset},{end}]}}"));
        offset = end;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = Vec::with_capacity(8 + header.len() + offset);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for entry in entries.iter() {
        match entry.dtype {
            Dtype::I64 => entry.values.iter().for_each(|&v| bytes.extend_from_slice(&(v as i64).to_le_bytes())),
            _ => entry.values.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
        }
    }
    bytes
}

/// Appends `text` as a JSON string, escaped as `serde_json` escapes it.
#[cfg(feature = "std")]
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Saves since the process started, to give each temporary file a name of its own.
#[cfg(feature = "std")]
static SAVES: AtomicU64 = AtomicU64::new(0);

/// How long a temporary file must have gone unmodified before a save takes it for one that a
/// crashed save left behind.
#[cfg(feature = "std")]
const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// Writes `bytes` to `path` through a temporary file in the same directory: written, synced to
/// disk, renamed over `path`, and the directory synced where the system allows, so that a crash
/// leaves either the previous file or the new one.
///
/// The temporary is `.NAME.PID.COUNTER.tmp` beside the target `NAME`: unique to this process
/// (`PID`) and to this save within it (`COUNTER`), so that saves from several threads or
/// processes never write into one another's temporary. Each save first removes the temporaries
/// of its own target that a crashed save left behind (see [`remove_stale_temporaries`]).
#[cfg(feature = "std")]
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().ok_or_else(|| file_error(path, "not a file name"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    remove_stale_temporaries(dir, name);
    let tmp = dir.join(temporary_name(name, std::process::id(), SAVES.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(file_error(path, format!("cannot write: {e}")));
    }
    // Makes the rename durable. Not every system can open a directory for this (Windows
    // cannot, and renames there are durable by themselves), hence no error.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The name of the temporary file of save `counter` of process `pid` to the file `name`.
#[cfg(feature = "std")]
fn temporary_name(name: &OsStr, pid: u32, counter: u64) -> OsString {
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{pid}.{counter}.tmp"));
    tmp
}

/// The process id in `file` when it is a temporary name of a save to `target`, as
/// [`temporary_name`] makes them.
#[cfg(feature = "std")]
fn temporary_pid(file: &OsStr, target: &OsStr) -> Option<u32> {
    let rest = file.as_encoded_bytes().strip_prefix(b".")?;
    let rest = rest.strip_prefix(target.as_encoded_bytes())?.strip_prefix(b".")?.strip_suffix(b".tmp")?;
    let text = std::str::from_utf8(rest).ok()?;
    let (pid, counter) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(counter) {
        return None;
    }
    counter.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Removes the temporaries of saves to `target` in `dir` that no save can still be writing: a
/// temporary is removed when it has not been modified for [`STALE_AFTER`] (15 minutes) and,
/// where the system lists its processes under `/proc`, the process that wrote it has ended.
/// A live save writes its temporary, syncs it and renames it within moments, so neither rule
/// alone removes it, and the age rule still guards where process ids do not tell (another pid
/// namespace sharing the directory). A pid that was reused keeps its temporary, erring on the
/// safe side. Temporaries of other targets, other names
/// and anything that cannot be read are left alone; failures here never fail the save.
/// Loads never remove anything: a reader may run while another process saves.
#[cfg(feature = "std")]
fn remove_stale_temporaries(dir: &Path, target: &OsStr) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Some(pid) = temporary_pid(&entry.file_name(), target) else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta.modified().ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age >= STALE_AFTER);
        if meta.is_file() && old && !may_be_running(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` may still be running: this process is; elsewhere, where `/proc` lists
/// the processes (Linux), whether `/proc/PID` exists; where it does not, `false`, and the age
/// of a temporary decides alone.
#[cfg(feature = "std")]
fn may_be_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    proc.join("self").exists() && proc.join(pid.to_string()).exists()
}

/// Saves the model's parameters and buffers to `path`, with [`Options::DEFAULT`].
#[cfg(feature = "std")]
pub fn save_weights<M: Network>(model: &M, path: &Path) -> Result<()> {
    save_weights_with(model, path, Options::DEFAULT)
}

/// Saves the model's parameters and buffers to `path`. Unless `options` allow them, a value
/// that is not finite is an `Err` naming its tensor and index, and nothing is written.
#[cfg(feature = "std")]
pub fn save_weights_with<M: Network>(model: &M, path: &Path, options: Options) -> Result<()> {
    write_weights(model, path, options, Vec::new())
}

/// Writes a weights file of `model` with `entries` added to its metadata.
#[cfg(feature = "std")]
fn write_weights<M: Network>(model: &M, path: &Path, options: Options, entries: Vec<(String, String)>) -> Result<()> {
    let mut metadata = BTreeMap::from([(KIND_KEY.to_string(), "weights".to_string())]);
    metadata.extend(entries);
    write_atomic(path, &to_bytes(path, model, &[], metadata, options)?)
}

/// What the parsed header of a file is counted as, per byte of the header: parsing makes a
/// string, a shape vector and two map entries of each tensor, and a number as short as two
/// bytes (`1,`) becomes an 8-byte value in a vector that grows by doubling.
const HEADER_COST: u64 = 16;

/// The bytes of `path`, counted against `budget` before they are allocated: the size the
/// file's metadata gives, and at most one byte past what is left of the budget, in case the
/// file grows while it is read.
#[cfg(feature = "std")]
pub(crate) fn read_file(path: &Path, budget: &mut Budget) -> Result<Vec<u8>> {
    let cannot_read = |e: std::io::Error| file_error(path, format!("cannot read: {e}"));
    let file = fs::File::open(path).map_err(cannot_read)?;
    let size = file.metadata().map_err(cannot_read)?.len();
    budget.take(path, size, "the file")?;
    let mut bytes = Vec::new();
    usize::try_from(size)
        .ok()
        .and_then(|len| bytes.try_reserve_exact(len).ok())
        .ok_or_else(|| file_error(path, format!("cannot allocate {size} bytes to read it")))?;
    (&file).take(size.saturating_add(budget.left()).saturating_add(1)).read_to_end(&mut bytes).map_err(cannot_read)?;
    if bytes.len() as u64 > size {
        budget.take(path, bytes.len() as u64 - size, "the file, which grew while it was read,")?;
    }
    Ok(bytes)
}

/// A parsed file: its header and the bytes of its tensors.
pub(crate) struct Parsed<'a> {
    pub(crate) header: Metadata,
    data: &'a [u8],
}

impl Parsed<'_> {
    /// The value of metadata `key`.
    pub(crate) fn metadata(&self, key: &str) -> Option<&str> {
        self.header.metadata().as_ref()?.get(key).map(String::as_str)
    }

    /// Every metadata key.
    #[cfg(feature = "std")]
    fn metadata_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.header.metadata().iter().flat_map(|m| m.keys().map(String::as_str)).collect();
        keys.sort();
        keys
    }

    /// Every tensor name, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.header.tensors().into_keys().collect();
        names.sort();
        names
    }
}

/// Parses `bytes`, read from `path`, counting the parsed header against `budget` first.
pub(crate) fn parse<'a>(at: Origin<'_>, bytes: &'a [u8], budget: &mut Budget) -> Result<Parsed<'a>> {
    let not_safetensors = |e: safetensors::SafeTensorError| at.error(format!("not a safetensors file: {e}"));
    // A header cannot be longer than the file; a longer length is refused by the parser.
    let length = bytes.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    budget.take(at, length.min(bytes.len() as u64).saturating_mul(HEADER_COST), "the file's parsed header")?;
    let (n, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
    Ok(Parsed { header, data: &bytes[8 + n..] })
}

/// Decodes tensor `name` into `into`, checked to be of `shape` and `f32` (a count: `i64`, as
/// PyTorch stores `num_batches_tracked`, or `f32`), and finite unless `options` allow it.
pub(crate) fn decode(
    at: Origin<'_>,
    parsed: &Parsed<'_>,
    (name, shape, count): (&str, &[usize], bool),
    options: Options,
    into: &mut [f32],
) -> Result<()> {
    let info = parsed.header.info(name).ok_or_else(|| at.error(format!("tensor `{name}` is missing")))?;
    if info.shape != shape {
        return Err(at.error(format!("tensor `{name}` has shape {:?}, the model expects {shape:?}", info.shape)));
    }
    let data = &parsed.data[info.data_offsets.0..info.data_offsets.1];
    match info.dtype {
        Dtype::F32 => {
            for (v, b) in into.iter_mut().zip(data.chunks_exact(4)) {
                *v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
            }
        }
        Dtype::I64 if count => {
            for (v, b) in into.iter_mut().zip(data.chunks_exact(8)) {
                let n = i64::from_le_bytes(b.try_into().expect("8 bytes"));
                if !(0..=1 << 24).contains(&n) {
                    return Err(at.error(format!("tensor `{name}` counts {n} batches, not a count this model keeps")));
                }
                *v = n as f32;
            }
        }
        other => {
            let want = if count { "I64 or F32" } else { "F32" };
            return Err(at.error(format!("tensor `{name}` holds {other:?} values, expected {want}")));
        }
    }
    if !options.allow_non_finite {
        check_finite(at, name, into, "loaded")?;
    }
    Ok(())
}

/// Reads and checks the model's tensors (and no others outside `allowed_extra`) from a parsed
/// file, without touching the model.
fn read_params<M: Network>(
    at: Origin<'_>,
    parsed: &Parsed<'_>,
    allowed_extra: &str,
    options: Options,
    budget: &mut Budget,
) -> Result<(Vec<f32>, Vec<f32>)> {
    // A file written for another layer list still loads when every tensor fits (a dropout rate
    // or an activation may differ); when one does not, both models are shown.
    let other_model = |error: Error| match parsed.metadata(MODEL_KEY) {
        Some(written_for) if written_for != M::DSL => {
            at.error(format!("the file was written for the model\n    {written_for}\nnot for this one\n    {}", M::DSL))
        }
        _ => error,
    };
    budget.take_values(at, M::PARAM_COUNT, 4, "the parameters")?;
    budget.take_values(at, M::BUFFER_COUNT, 4, "the buffers")?;
    let (mut params, mut buffers) = (vec![0.0; M::PARAM_COUNT], vec![0.0; M::BUFFER_COUNT]);
    for t in M::TENSORS {
        let into = if t.kind.is_param() { &mut params } else { &mut buffers };
        let tensor = (t.name, t.shape, t.kind == TensorKind::Count);
        decode(at, parsed, tensor, options, &mut into[t.offset..t.offset + t.len()]).map_err(other_model)?;
    }
    if let Some(extra) = parsed.names().into_iter().find(|n| {
        !M::TENSORS.iter().any(|t| t.name == *n) && (allowed_extra.is_empty() || !n.starts_with(allowed_extra))
    }) {
        let error = at.error(format!("unexpected tensor `{extra}`: the model has no such parameter"));
        return Err(other_model(error));
    }
    Ok((params, buffers))
}

/// Saves the weights as [`save_weights`] does, with `meta` (the preprocessing the model was
/// trained with and its class names) in the file's metadata, checked against the model first:
/// one value or one per input channel, one class name per output.
#[cfg(feature = "std")]
pub fn save_model<M: Network>(model: &M, meta: &Meta, path: &Path) -> Result<()> {
    meta.check(model_depth::<M>(), model_outputs::<M>()).map_err(|e| file_error(path, format!("cannot save: {e}")))?;
    write_weights(model, path, Options::DEFAULT, meta.entries())
}

/// The input channels of model `M` (1 for a vector).
#[cfg(feature = "std")]
pub(crate) fn model_depth<M: Network>() -> usize {
    if M::INPUT.flat {
        1
    } else {
        M::INPUT.d
    }
}

/// The outputs of model `M`, or 0 for a model with heads.
#[cfg(feature = "std")]
pub(crate) fn model_outputs<M: Network>() -> usize {
    match M::GRAPH.last() {
        Some(node) if !matches!(node.op, crate::graph::Op::Heads { .. }) => node.output.len(),
        _ => 0,
    }
}

/// The [`Meta`] stored in a model file (empty where it stores none), with
/// [`Options::DEFAULT`]'s limit on what is read.
#[cfg(feature = "std")]
pub fn read_meta(path: &Path) -> Result<Meta> {
    let mut budget = Budget::new(Options::DEFAULT.limit);
    let bytes = read_file(path, &mut budget)?;
    let parsed = parse(path.into(), &bytes, &mut budget)?;
    Meta::from_entries(|key| parsed.metadata(key)).map_err(|e| file_error(path, e))
}

/// Loads parameters saved by [`save_weights`] (or [`save_checkpoint`]) or by PyTorch, with
/// [`Options::DEFAULT`]; see [`load_weights_with`].
#[cfg(feature = "std")]
pub fn load_weights<M: Network>(model: &mut M, path: &Path) -> Result<()> {
    load_weights_with(model, path, Options::DEFAULT)
}

/// Loads parameters saved by [`save_weights`] (or [`save_checkpoint`]) or by PyTorch (a
/// `state_dict` of the equivalent `Sequential` saved with `safetensors.torch.save_file`). Every
/// tensor must be present, with its name, shape and dtype, and finite unless `options` allow
/// otherwise; the file and what is decoded from it must fit in `options.limit`. On any error
/// the model is left as it was.
#[cfg(feature = "std")]
pub fn load_weights_with<M: Network>(model: &mut M, path: &Path, options: Options) -> Result<()> {
    let mut budget = Budget::new(options.limit);
    let bytes = read_file(path, &mut budget)?;
    load_parsed(model, path.into(), &bytes, options, &mut budget)
}

/// Loads parameters from the bytes of a safetensors file, with [`Options::DEFAULT`]; see
/// [`load_weights_from_bytes_with`].
pub fn load_weights_from_bytes<M: Network>(model: &mut M, bytes: &[u8]) -> Result<()> {
    load_weights_from_bytes_with(model, bytes, Options::DEFAULT)
}

/// Loads parameters from the bytes of a safetensors file, as [`load_weights_with`] loads them
/// from a file: for weights embedded in a program (`include_bytes!`) or received by other means,
/// and without the `std` feature. The bytes themselves are not counted against
/// `options.limit`, since they are given; what is decoded from them is. Errors are
/// [`Error::Bytes`]; on any error the model is left as it was.
///
/// ```
/// use cnn::cnn;
/// use cnn::io::{load_weights_from_bytes, read_meta_from_bytes};
///
/// cnn! { struct LeNet5 = "../models/lenet5.safetensors" }
///
/// // In a program: `include_bytes!` of the file.
/// let bytes = std::fs::read("../models/lenet5.safetensors")?;
/// let mut model = LeNet5::new();
/// load_weights_from_bytes(&mut model, &bytes)?;
/// assert_eq!(read_meta_from_bytes(&bytes)?.mean, [0.1307]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_weights_from_bytes_with<M: Network>(model: &mut M, bytes: &[u8], options: Options) -> Result<()> {
    load_parsed(model, Origin::BYTES, bytes, options, &mut Budget::new(options.limit))
}

/// The [`Meta`] stored in the bytes of a model file (empty where it stores none), as
/// [`read_meta`] reads it from a file.
pub fn read_meta_from_bytes(bytes: &[u8]) -> Result<Meta> {
    let mut budget = Budget::new(Options::DEFAULT.limit);
    let parsed = parse(Origin::BYTES, bytes, &mut budget)?;
    Meta::from_entries(|key| parsed.metadata(key)).map_err(|e| Origin::BYTES.error(e))
}

/// Loads the model's tensors from `bytes`, the contents of `at`, into `model`, or leaves it as
/// it was on an error.
fn load_parsed<M: Network>(
    model: &mut M,
    at: Origin<'_>,
    bytes: &[u8],
    options: Options,
    budget: &mut Budget,
) -> Result<()> {
    let parsed = parse(at, bytes, budget)?;
    // A checkpoint's optimizer state is not a parameter; it is skipped here.
    let checkpoint = parsed.metadata(KIND_KEY) == Some("checkpoint");
    let extra = if checkpoint { OPTIMIZER_PREFIX } else { "" };
    let (params, buffers) = read_params::<M>(at, &parsed, extra, options, budget)?;
    model.params_mut().copy_from_slice(&params);
    model.buffers_mut().copy_from_slice(&buffers);
    Ok(())
}

/// Saves a checkpoint with [`Options::DEFAULT`]; see [`save_checkpoint_with`].
#[cfg(feature = "std")]
pub fn save_checkpoint<M: Network, O: Optimizer + ?Sized>(
    model: &M,
    opt: &O,
    progress: Progress,
    path: &Path,
) -> Result<()> {
    save_checkpoint_with(model, opt, progress, path, Options::DEFAULT)
}

/// Saves a checkpoint: parameters, buffers, the optimizer's state and description, where the
/// dropout masks stand, and `progress`. Unless `options` allow them, a value that is not finite
/// is an `Err` naming its tensor and index, and nothing is written.
#[cfg(feature = "std")]
pub fn save_checkpoint_with<M: Network, O: Optimizer + ?Sized>(
    model: &M,
    opt: &O,
    progress: Progress,
    path: &Path,
    options: Options,
) -> Result<()> {
    let state = opt.state();
    let extra: Vec<(String, &[f32])> =
        state.iter().map(|(name, values)| (format!("{OPTIMIZER_PREFIX}{name}"), *values)).collect();
    let noise = model.noise();
    let mut metadata = BTreeMap::from([
        (KIND_KEY.to_string(), "checkpoint".to_string()),
        ("cnn.noise_seed".to_string(), noise.seed.to_string()),
        ("cnn.noise_step".to_string(), noise.step.to_string()),
        ("cnn.optimizer".to_string(), opt.describe()),
        ("cnn.learning_rate".to_string(), opt.learning_rate().to_string()),
        ("cnn.epoch".to_string(), progress.epoch.to_string()),
        ("cnn.step".to_string(), progress.step.to_string()),
        ("cnn.seed".to_string(), progress.seed.to_string()),
    ]);
    for (name, value) in opt.counters() {
        metadata.insert(format!("{OPTIMIZER_PREFIX}{name}"), value.to_string());
    }
    write_atomic(path, &to_bytes(path, model, &extra, metadata, options)?)
}

/// Loads a checkpoint with [`Options::DEFAULT`]; see [`load_checkpoint_with`].
#[cfg(feature = "std")]
pub fn load_checkpoint<M: Network, O: Optimizer + ?Sized>(model: &mut M, opt: &mut O, path: &Path) -> Result<Progress> {
    load_checkpoint_with(model, opt, path, Options::DEFAULT)
}

/// Loads a checkpoint written by [`save_checkpoint`] into `model` and `opt` and returns the
/// progress it recorded.
///
/// The optimizer must be of the same kind with the same hyperparameters (momentum, Nesterov,
/// betas, eps, weight decay, L1), except the learning rate: the checkpoint's rate is restored,
/// as a schedule left it, and a resumed run that wants another calls
/// [`Optimizer::set_learning_rate`] after the load. The file must make sense as well as parse:
/// a learning rate that is finite and positive, step counts and the dropout pass count no larger
/// than [`MAX_STEPS`](crate::optim::MAX_STEPS), finite parameters and state (unless `options`
/// allow non-finite values; state must be finite in any case), every state buffer the optimizer
/// keeps once the file's step count or the optimizer's own counter is above 0, and every
/// counter it keeps. A file with no optimizer state at step 0 leaves the optimizer as newly
/// built ([`Optimizer::reset`]), not with the state it held before.
///
/// Everything is checked before anything changes: on any error neither the model nor the
/// optimizer changes.
#[cfg(feature = "std")]
pub fn load_checkpoint_with<M: Network, O: Optimizer + ?Sized>(
    model: &mut M,
    opt: &mut O,
    path: &Path,
    options: Options,
) -> Result<Progress> {
    let mut budget = Budget::new(options.limit);
    let bytes = read_file(path, &mut budget)?;
    let parsed = parse(path.into(), &bytes, &mut budget)?;
    if parsed.metadata(KIND_KEY) != Some("checkpoint") {
        return Err(file_error(
            path,
            "not a checkpoint (no `cnn.kind = checkpoint` in its metadata): load it with load_weights",
        ));
    }
    let (params, buffers) = read_params::<M>(path.into(), &parsed, OPTIMIZER_PREFIX, options, &mut budget)?;
    let text = |key: &str| parsed.metadata(key).ok_or_else(|| file_error(path, format!("metadata `{key}` is missing")));
    let number = |key: &str| -> Result<u64> {
        let text = text(key)?;
        text.parse().map_err(|_| file_error(path, format!("metadata `{key}` is `{text}`, not a whole number")))
    };
    let count = |key: &str| -> Result<u64> {
        let value = number(key)?;
        check_count("step count", value).map_err(|e| file_error(path, format!("metadata `{key}`: {e}")))?;
        Ok(value)
    };
    let progress = Progress { epoch: count("cnn.epoch")?, step: count("cnn.step")?, seed: number("cnn.seed")? };
    let noise = Noise { seed: number("cnn.noise_seed")?, step: count("cnn.noise_step")? };
    let lr_text = text("cnn.learning_rate")?;
    let lr: f32 = lr_text
        .parse()
        .map_err(|_| file_error(path, format!("metadata `cnn.learning_rate` is `{lr_text}`, not a number")))?;
    check_learning_rate(lr).map_err(|e| file_error(path, format!("metadata `cnn.learning_rate`: {e}")))?;

    let (saved, current) = (text("cnn.optimizer")?, opt.describe());
    check_same_optimizer(saved, &current).map_err(|reason| file_error(path, reason))?;
    let mut counters = Vec::new();
    let known = opt.counter_names();
    for key in parsed.metadata_keys() {
        if let Some(name) = key.strip_prefix(OPTIMIZER_PREFIX) {
            if !known.contains(&name) {
                return Err(file_error(path, format!("the optimizer {current} has no counter `{name}`")));
            }
            counters.push((name, count(key)?));
        }
    }
    if let Some(name) = known.iter().find(|name| !counters.iter().any(|(n, _)| n == *name)) {
        return Err(file_error(path, format!("metadata `{OPTIMIZER_PREFIX}{name}` of {current} is missing")));
    }
    let known = opt.state_names();
    let mut state = Vec::new();
    for name in parsed.names() {
        if let Some(key) = name.strip_prefix(OPTIMIZER_PREFIX) {
            let Some(&key) = known.iter().find(|k| **k == key) else {
                return Err(file_error(path, format!("the optimizer {current} has no state `{key}`")));
            };
            budget.take_values(path, M::PARAM_COUNT, 4, "the optimizer state")?;
            let mut values = vec![0.0; M::PARAM_COUNT];
            // The optimizer refuses state that is not finite, whatever the options.
            decode(path.into(), &parsed, (&name, &[M::PARAM_COUNT], false), Options::DEFAULT, &mut values)?;
            state.push((key, values));
        }
    }
    let stepped = progress.step > 0 || counters.iter().any(|&(_, v)| v > 0);
    if !state.is_empty() || stepped {
        if let Some(name) = known.iter().find(|name| !state.iter().any(|(n, _)| n == *name)) {
            let when = if stepped { "after a step" } else { "with the rest of its state" };
            return Err(file_error(
                path,
                format!("tensor `{OPTIMIZER_PREFIX}{name}` is missing: {current} keeps it {when}"),
            ));
        }
    }

    // Everything is checked: the optimizer takes the state, and is put back as it was should
    // it refuse any (an optimizer of the caller's may have rules of its own).
    let held: Vec<(&'static str, Vec<f32>)> = opt.state().into_iter().map(|(n, v)| (n, v.to_vec())).collect();
    budget.take_values(path, held.iter().map(|(_, v)| v.len()).sum(), 4, "a copy of the optimizer's state")?;
    budget.take_values(path, state.len() * M::PARAM_COUNT, 4, "the optimizer's own copy of the state")?;
    let held_counters = opt.counters();
    let held_lr = opt.learning_rate();
    let loaded = restore(opt, &state, &counters, lr);
    if let Err(e) = loaded {
        let held_state: Vec<(&str, Vec<f32>)> = held.into_iter().collect();
        let _ = restore(opt, &held_state, &held_counters, held_lr);
        return Err(file_error(path, e.to_string()));
    }
    model.params_mut().copy_from_slice(&params);
    model.buffers_mut().copy_from_slice(&buffers);
    model.set_noise(noise);
    Ok(progress)
}

/// Resets `opt`, then gives it `state`, `counters` and the learning rate `lr`.
#[cfg(feature = "std")]
fn restore<O: Optimizer + ?Sized>(
    opt: &mut O,
    state: &[(&str, Vec<f32>)],
    counters: &[(&str, u64)],
    lr: f32,
) -> Result<()> {
    opt.reset();
    for (name, values) in state {
        opt.load_state(name, values)?;
    }
    for (name, value) in counters {
        opt.load_counter(name, *value)?;
    }
    opt.set_learning_rate(lr)
}

/// Fails, saying what differs, unless the optimizer described by `saved` (a checkpoint's) and
/// by `current` are of one kind with the same hyperparameters, the learning rate aside.
#[cfg(feature = "std")]
fn check_same_optimizer(saved: &str, current: &str) -> core::result::Result<(), String> {
    let (saved_kind, saved_params) = hyperparameters(saved);
    let (kind, params) = hyperparameters(current);
    if saved_kind != kind {
        return Err(format!("the checkpoint was written by {saved}, not by {current}"));
    }
    if saved_params == params {
        return Ok(());
    }
    let differences: Vec<String> = saved_params
        .iter()
        .filter(|p| !params.contains(p))
        .map(|p| {
            let key = p.split('=').next().unwrap_or(p);
            let here = params.iter().find(|q| q.split('=').next() == Some(key)).map_or("none", |q| q);
            format!("{p} in the checkpoint, {here} here")
        })
        .chain(
            params
                .iter()
                .filter(|q| {
                    let key = q.split('=').next();
                    !saved_params.iter().any(|p| p.split('=').next() == key)
                })
                .map(|q| format!("{q} here, none in the checkpoint")),
        )
        .collect();
    Err(format!(
        "the checkpoint was written by {saved}, whose hyperparameters differ from this optimizer's ({}): \
         build the optimizer as the run that wrote it did (only the learning rate may differ)",
        differences.join("; ")
    ))
}

/// The kind and the hyperparameters other than the learning rate of an optimizer described as
/// `Kind(lr=0.05, momentum=0.9, betas=(0.9, 0.999), ...)`.
#[cfg(feature = "std")]
fn hyperparameters(description: &str) -> (&str, Vec<&str>) {
    let (kind, rest) = description.split_once('(').unwrap_or((description, ""));
    let inner = rest.strip_suffix(')').unwrap_or(rest);
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(inner[start..].trim());
    parts.retain(|p| !p.is_empty() && !p.starts_with("lr="));
    (kind.trim(), parts)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn entries<'a>(a: &'a [f32], b: &'a [f32], count: &'a [f32]) -> Vec<Entry<'a>> {
        vec![
            Entry { name: "1.weight".into(), dtype: Dtype::F32, shape: vec![2, 3], values: a },
            Entry { name: "0.num_batches_tracked".into(), dtype: Dtype::I64, shape: vec![], values: count },
            Entry { name: "0.bias".into(), dtype: Dtype::F32, shape: vec![3], values: b },
        ]
    }

    #[test]
    fn the_written_layout_is_what_safetensors_writes_with_sorted_metadata() {
        let (a, b, count) = ([1.0, -2.5, 3.0, 0.0, 1e-30, -0.0], [0.5, 7.0, -1.0], [12.0]);
        // One metadata key, so that the crate's hash order cannot differ from the sorted one;
        // the value needs every kind of JSON escape.
        let value = "a \"quoted\" \\ path\nnext\tline \u{1} \u{8}\u{c}\r é";
        let mine = encode(&mut entries(&a, &b, &count), &BTreeMap::from([("k".to_string(), value.to_string())]));
        let bytes: Vec<Vec<u8>> =
            [&a[..], &b[..]].iter().map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
        let count_bytes = 12i64.to_le_bytes();
        let views = vec![
            ("1.weight", safetensors::tensor::TensorView::new(Dtype::F32, vec![2, 3], &bytes[0]).unwrap()),
            ("0.num_batches_tracked", safetensors::tensor::TensorView::new(Dtype::I64, vec![], &count_bytes).unwrap()),
            ("0.bias", safetensors::tensor::TensorView::new(Dtype::F32, vec![3], &bytes[1]).unwrap()),
        ];
        let theirs =
            safetensors::serialize(views, Some(HashMap::from([("k".to_string(), value.to_string())]))).unwrap();
        assert_eq!(String::from_utf8_lossy(&mine), String::from_utf8_lossy(&theirs));
        assert_eq!(mine, theirs);
        // Without metadata too.
        let bare = safetensors::serialize(
            vec![("x", safetensors::tensor::TensorView::new(Dtype::F32, vec![3], &bytes[1]).unwrap())],
            None::<HashMap<String, String>>,
        )
        .unwrap();
        let x = Entry { name: "x".into(), dtype: Dtype::F32, shape: vec![3], values: &b };
        assert_eq!(encode(&mut [x], &BTreeMap::new()), bare);
    }

    #[test]
    fn temporary_names_are_recognised_for_their_own_target_only() {
        let target = OsStr::new("ckpt.safetensors");
        let name = temporary_name(target, 4321, 7);
        assert_eq!(name, ".ckpt.safetensors.4321.7.tmp");
        assert_eq!(temporary_pid(&name, target), Some(4321));
        for other in [
            ".ckpt.safetensors.tmp",
            ".ckpt.safetensors.4321.tmp",
            ".ckpt.safetensors.x.7.tmp",
            ".ckpt.safetensors.4321.7.8.tmp",
            ".ckpt.safetensors.4321.-7.tmp",
            ".ckpt.safetensors.99999999999.7.tmp",
            "ckpt.safetensors.4321.7.tmp",
            ".ckpt.safetensors.4321.7.tmp.bak",
            ".other.safetensors.4321.7.tmp",
            ".ckpt.4321.7.tmp",
        ] {
            assert_eq!(temporary_pid(OsStr::new(other), target), None, "{other}");
        }
    }

    #[test]
    fn the_bytes_depend_only_on_the_content() {
        let (a, b, count) = ([1.0; 6], [2.0; 3], [3.0]);
        let metadata: BTreeMap<String, String> = (0..20).map(|i| (format!("key{i}"), format!("value {i}"))).collect();
        let first = encode(&mut entries(&a, &b, &count), &metadata);
        let mut reversed = entries(&a, &b, &count);
        reversed.reverse();
        assert_eq!(encode(&mut reversed, &metadata.clone().into_iter().rev().collect()), first);
        let (_, read) = SafeTensors::read_metadata(&first).unwrap();
        assert_eq!(read.metadata().as_ref().unwrap(), &metadata.into_iter().collect::<HashMap<_, _>>());
        let tensors = SafeTensors::deserialize(&first).unwrap();
        assert_eq!(tensors.tensor("0.num_batches_tracked").unwrap().data(), &3i64.to_le_bytes());
    }
}
