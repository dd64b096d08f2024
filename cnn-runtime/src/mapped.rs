//! Loading the weights of a PyTorch model that is not a `Sequential` by module structure and
//! shape: [`load_mapped`] and [`load_mapped_with`], re-exported by [`crate::io`].

use core::fmt;
use std::collections::HashMap;
use std::path::Path;

use crate::data::file_error;
use crate::io::{decode, parse, read_file, Options, Parsed};
use crate::limit::Budget;
use crate::{Limit, Network, Result, TensorInfo, TensorKind};

/// The metadata key under which a file lists its tensors in the order of PyTorch's
/// `state_dict`: a JSON array of every tensor name, each once, such as
/// `["conv1.weight", "bn1.weight", ...]` (in Python, `json.dumps(list(state_dict))`).
pub const ORDER_KEY: &str = "state_dict_order";

/// How [`load_mapped_with`] matches and reads; [`MapOptions::DEFAULT`] is what [`load_mapped`]
/// uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapOptions {
    /// The most memory the load may allocate, as [`Options::limit`].
    pub limit: Limit,
    /// Whether values that are not finite may be loaded, as [`Options::allow_non_finite`].
    pub allow_non_finite: bool,
    /// Whether a partial match loads: the modules matched are loaded, the model's other tensors
    /// keep their values and the file's others are skipped, all listed in the [`Mapping`]. When
    /// `false` (the default) a partial match is an `Err` that says what differs.
    pub allow_partial: bool,
}

impl MapOptions {
    /// A limit of [`Limit::DEFAULT`], non-finite values refused, and only a complete match.
    pub const DEFAULT: MapOptions = MapOptions { limit: Limit::DEFAULT, allow_non_finite: false, allow_partial: false };
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions::DEFAULT
    }
}

/// One of the model's tensors and the file's tensor it was loaded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedTensor {
    /// The model's tensor (its name, such as `4.body.0.weight`, its shape and kind).
    pub ours: TensorInfo,
    /// The name of the file's tensor, such as `layer1.0.conv1.weight`.
    pub theirs: String,
}

/// A tensor of the file that was not loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTensor {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// What [`load_mapped`] loaded: each of the model's tensors with the file's tensor it came from,
/// and, for a partial match, what was kept and what was skipped. `Display` shows it as a table,
/// one row per module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The tensors loaded, in the model's order.
    pub loaded: Vec<MappedTensor>,
    /// The model's tensors that no tensor of the file matched, left as they were (only with
    /// [`MapOptions::allow_partial`]).
    pub kept: Vec<TensorInfo>,
    /// The file's tensors that matched none of the model's, not loaded (only with
    /// [`MapOptions::allow_partial`]), in the file's order.
    pub skipped: Vec<FileTensor>,
    /// Whether the modules were matched by the file's order ([`ORDER_KEY`]); if not, by their
    /// unique kinds and shapes.
    pub by_order: bool,
}

impl Mapping {
    /// Whether every tensor of the model and of the file was loaded.
    pub fn is_complete(&self) -> bool {
        self.kept.is_empty() && self.skipped.is_empty()
    }

    /// The name of the file's tensor that the model's tensor `ours` was loaded from.
    pub fn theirs(&self, ours: &str) -> Option<&str> {
        self.loaded.iter().find(|t| t.ours.name == ours).map(|t| t.theirs.as_str())
    }
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One row per pair of modules: (ours, theirs, their tensors).
        let mut rows: Vec<(&str, &str, Tensors<'_>)> = Vec::new();
        for t in &self.loaded {
            let ((ours, suffix), theirs) = (split(t.ours.name), split(&t.theirs).0);
            match rows.last_mut() {
                Some((o, th, tensors)) if *o == ours && *th == theirs => tensors.push((suffix, t.ours.shape)),
                _ => rows.push((ours, theirs, vec![(suffix, t.ours.shape)])),
            }
        }
        let how = if self.by_order {
            format!("by the file's order (metadata `{ORDER_KEY}`)")
        } else {
            format!("by unique kinds and shapes (no `{ORDER_KEY}` metadata)")
        };
        writeln!(
            f,
            "{} tensors of {} modules loaded, matched {how}; {} of the model's kept, {} of the file's skipped",
            self.loaded.len(),
            rows.len(),
            self.kept.len(),
            self.skipped.len()
        )?;
        let kept = by_module(self.kept.iter().map(|t| (t.name, t.shape)));
        let skipped = by_module(self.skipped.iter().map(|t| (t.name.as_str(), t.shape.as_slice())));
        let first = rows.iter().map(|r| r.0).chain(kept.iter().chain(&skipped).map(|m| m.0));
        let ours_width = first.map(str::len).chain([5]).max().unwrap_or(5);
        let theirs_width = rows.iter().map(|r| r.1.len()).chain([4]).max().unwrap_or(4);
        writeln!(f, "  {:ours_width$}  {:theirs_width$}  tensors", "model", "file")?;
        for (ours, theirs, tensors) in &rows {
            writeln!(f, "  {ours:ours_width$}  {theirs:theirs_width$}  {}", describe(tensors))?;
        }
        if !kept.is_empty() {
            writeln!(f, "kept as they were (no match in the file):")?;
            for (module, tensors) in &kept {
                writeln!(f, "  {module:ours_width$}  {}", describe(tensors))?;
            }
        }
        if !skipped.is_empty() {
            writeln!(f, "skipped (in the file, matching nothing of the model):")?;
            for (module, tensors) in &skipped {
                writeln!(f, "  {module:ours_width$}  {}", describe(tensors))?;
            }
        }
        Ok(())
    }
}

/// Loads the weights of a PyTorch model whose module names differ from the `cnn!` model's, by
/// module structure and shape, with [`MapOptions::DEFAULT`] (a partial match refused); see
/// [`load_mapped_with`].
pub fn load_mapped<M: Network>(model: &mut M, path: &Path) -> Result<Mapping> {
    load_mapped_with(model, path, MapOptions::DEFAULT)
}

/// Loads into `model` the tensors of the safetensors file at `path` that match its modules by
/// structure and shape, and says which came from where: the weights of a PyTorch model that is
/// not a `Sequential`, such as torchvision's ResNet-18 (`conv1.weight`,
/// `layer1.0.bn1.running_mean`, `layer2.0.downsample.0.weight`, ...), into the `cnn!` model of
/// the same layers, whose names are those of a `Sequential` (`0.weight`, `1.running_mean`,
/// `8.shortcut.0.weight`, ...).
///
/// # Matching
///
/// A module is a tensor name up to its last dot (`layer1.0.bn1` for
/// `layer1.0.bn1.running_mean`), and its tensors are told apart by what follows the dot
/// (`weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`). The model's modules
/// are those of its [`TENSORS`](crate::Network::TENSORS), in their order. A module of the model
/// matches a module of the file when both hold tensors of the same kinds with the same shapes;
/// names play no other part. The modules are paired in one of two ways:
///
/// - **By order**, when the file's metadata lists its tensors in the order of the `state_dict`
///   under [`ORDER_KEY`] (`state_dict_order`: a JSON array of every tensor name, each once).
///   A safetensors file sorts its tensors by name, which loses that order (`bn1` sorts before
///   `conv1`, `layer10` before `layer2`), hence the metadata. The two lists of modules are
///   aligned in order, pairing as many matching modules as an alignment can (their longest
///   common subsequence). The match is **ambiguous** when two such alignments pair some module
///   differently, as for a model with one block fewer than the file in a stage of identical
///   blocks, which could take either block's weights. Lists that agree module for module are
///   paired one for one, never ambiguously.
/// - **By unique kinds and shapes**, without the metadata: a module of the model is paired with
///   the file's module of the same kinds and shapes when each side holds exactly one such
///   module. Kinds and shapes found on both sides and more than once on either are
///   **ambiguous**: every ResNet repeats its batch normalisations, so its file needs the order.
///
/// An ambiguous match is an `Err` whatever the options: no rule says which weights are meant. A
/// match that leaves modules of either side unpaired is **partial**: an `Err` that says which
/// modules differ and how, unless [`MapOptions::allow_partial`] is set, in which case the paired
/// modules are loaded, the model's others keep their values (a new classifier, for transfer
/// learning) and the file's others are skipped. A file of which no module matches is an `Err` in
/// any case.
///
/// # Errors
///
/// Everything is checked before the model changes, and on any `Err`, which names the file and
/// what is wrong, the model is left as it was: besides the matches above, malformed
/// [`ORDER_KEY`] metadata, a tensor of another dtype than `f32` (`i64` or `f32` for
/// `num_batches_tracked`), a value that is not finite (unless
/// [`MapOptions::allow_non_finite`]), or a file or decoded tensors beyond
/// [`MapOptions::limit`].
///
/// # Example
///
/// Written by PyTorch, with the order:
///
/// ```python
/// import json, torchvision
/// from safetensors.torch import save_file
///
/// sd = torchvision.models.resnet18(weights="DEFAULT").state_dict()
/// save_file({k: v.contiguous() for k, v in sd.items()}, "resnet18.safetensors",
///           metadata={"state_dict_order": json.dumps(list(sd))})
/// ```
///
/// loaded into the `ResNet18` of `examples/resnet18.rs` with `load_mapped(&mut model, path)?`.
/// Here, a file of this crate (without the order, each module's shapes unique), loaded into the
/// same model and into one with another head:
///
/// ```
/// use cnn::io::{load_mapped, load_mapped_with, save_weights, MapOptions};
/// use cnn::{cnn, Network};
///
/// cnn! { struct Tiny < input(4) fc(8) relu fc(3) softmax > }
/// cnn! { struct NewHead < input(4) fc(8) relu fc(5) softmax > }
///
/// let path = std::env::temp_dir().join(format!("mapped-{}.safetensors", std::process::id()));
/// save_weights(&Tiny::with_seed(1), &path)?;
///
/// let mut copy = Tiny::new();
/// let mapping = load_mapped(&mut copy, &path)?;
/// assert!(mapping.is_complete());
/// assert_eq!(mapping.theirs("2.weight"), Some("2.weight"));
/// assert_eq!(copy.params(), Tiny::with_seed(1).params());
///
/// // Another head: refused, unless a partial match is allowed, which keeps the new head's values.
/// let mut other = NewHead::with_seed(2);
/// assert!(load_mapped(&mut other, &path).is_err());
/// let partial = MapOptions { allow_partial: true, ..MapOptions::DEFAULT };
/// let mapping = load_mapped_with(&mut other, &path, partial)?;
/// assert_eq!((mapping.loaded.len(), mapping.kept.len(), mapping.skipped.len()), (2, 2, 2));
/// println!("{mapping}");
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), cnn::Error>(())
/// ```
pub fn load_mapped_with<M: Network>(model: &mut M, path: &Path, options: MapOptions) -> Result<Mapping> {
    let mut budget = Budget::new(options.limit);
    let bytes = read_file(path, &mut budget)?;
    let parsed = parse(path.into(), &bytes, &mut budget)?;
    let order = file_order(path, &parsed, &mut budget)?;
    let by_order = order.is_some();
    let names = match order {
        Some(names) => names,
        None => parsed.names(),
    };
    let mut theirs_list = Vec::with_capacity(names.len());
    for name in &names {
        let info = parsed.header.info(name).ok_or_else(|| file_error(path, format!("tensor `{name}` is missing")))?;
        theirs_list.push((name.as_str(), info.shape.as_slice()));
    }
    let ours = modules(M::TENSORS.iter().map(|t| (t.name, t.shape)));
    let theirs = modules(theirs_list.iter().copied());
    let (ours_ids, theirs_ids) = signatures(&ours, &theirs);
    let pairs = if by_order {
        align(path, &ours, &theirs, &ours_ids, &theirs_ids, &mut budget)?
    } else {
        unique_pairs(path, &ours, &theirs, &ours_ids, &theirs_ids)?
    };

    let matched = pairs.len();
    if matched < ours.len().max(theirs.len()) {
        if matched == 0 && !ours.is_empty() {
            let why = explain(&ours, &theirs, &pairs, by_order);
            return Err(file_error(path, format!("none of the file's modules matches one of the model's:\n{why}")));
        }
        if !options.allow_partial {
            let how =
                if by_order { format!("by the order in `{ORDER_KEY}`") } else { "by unique kinds and shapes".into() };
            return Err(file_error(
                path,
                format!(
                    "the file matches the model only in part ({matched} of the model's {} modules and of the file's \
                     {} paired, {how}):\n{}\nload the modules that match with MapOptions {{ allow_partial: true, .. }}",
                    ours.len(),
                    theirs.len(),
                    explain(&ours, &theirs, &pairs, by_order)
                ),
            ));
        }
    }

    // Decoded into copies, so that the model changes only once everything is read.
    let io_options = Options { limit: options.limit, allow_non_finite: options.allow_non_finite };
    budget.take_values(path, M::PARAM_COUNT, 4, "the parameters")?;
    budget.take_values(path, M::BUFFER_COUNT, 4, "the buffers")?;
    let (mut params, mut buffers) = (model.params().to_vec(), model.buffers().to_vec());
    let mut loaded = Vec::new();
    let mut ours_done = vec![false; ours.len()];
    let mut theirs_done = vec![false; theirs.len()];
    for &(o, t) in &pairs {
        ours_done[o] = true;
        theirs_done[t] = true;
        for &(suffix, _, index) in &ours[o].tensors {
            let info = M::TENSORS[index];
            let &(_, _, their_index) = theirs[t]
                .tensors
                .iter()
                .find(|(s, _, _)| *s == suffix)
                .ok_or_else(|| file_error(path, format!("tensor `{}.{suffix}` is missing", theirs[t].name)))?;
            let their_name = theirs_list[their_index].0;
            let into = if info.kind.is_param() { &mut params } else { &mut buffers };
            let tensor = (their_name, info.shape, info.kind == TensorKind::Count);
            decode(path.into(), &parsed, tensor, io_options, &mut into[info.offset..info.offset + info.len()])?;
            loaded.push((index, MappedTensor { ours: info, theirs: their_name.to_string() }));
        }
    }
    loaded.sort_by_key(|(index, _)| *index);
    let loaded = loaded.into_iter().map(|(_, t)| t).collect();
    let kept = ours
        .iter()
        .zip(&ours_done)
        .filter(|(_, done)| !**done)
        .flat_map(|(m, _)| m.tensors.iter().map(|&(_, _, index)| M::TENSORS[index]))
        .collect();
    let skipped = theirs
        .iter()
        .zip(&theirs_done)
        .filter(|(_, done)| !**done)
        .flat_map(|(m, _)| m.tensors.iter())
        .map(|&(_, shape, index)| FileTensor { name: theirs_list[index].0.to_string(), shape: shape.to_vec() })
        .collect();
    model.params_mut().copy_from_slice(&params);
    model.buffers_mut().copy_from_slice(&buffers);
    Ok(Mapping { loaded, kept, skipped, by_order })
}

/// What one byte of the [`ORDER_KEY`] metadata is counted as once parsed: a name of `n` bytes
/// takes at least `n + 3` bytes of JSON and becomes `n` bytes and a 24-byte `String`.
const ORDER_COST: u64 = 16;

/// The file's tensor names in the order its [`ORDER_KEY`] metadata gives, or `None` without it;
/// an `Err` unless the metadata lists every tensor of the file once and nothing else.
fn file_order(path: &Path, parsed: &Parsed<'_>, budget: &mut Budget) -> Result<Option<Vec<String>>> {
    let Some(text) = parsed.metadata(ORDER_KEY) else { return Ok(None) };
    budget.take(path, (text.len() as u64).saturating_mul(ORDER_COST), "the tensor order in the file's metadata")?;
    let bad = |reason: String| file_error(path, format!("metadata `{ORDER_KEY}` {reason}"));
    let order: Vec<String> = serde_json::from_str(text).map_err(|e| {
        bad(format!("is not a JSON array of tensor names ({e}), as `json.dumps(list(state_dict))` writes"))
    })?;
    let mut sorted: Vec<&str> = order.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    if let Some(twice) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(format!("lists tensor `{}` twice", twice[0])));
    }
    if let Some(absent) = sorted.iter().find(|n| parsed.header.info(n).is_none()) {
        return Err(bad(format!("lists tensor `{absent}`, which the file does not hold")));
    }
    let names = parsed.names();
    if let Some(unlisted) = names.iter().find(|n| sorted.binary_search(&n.as_str()).is_err()) {
        return Err(bad(format!("does not list the file's tensor `{unlisted}`")));
    }
    Ok(Some(order))
}

/// Tensors by suffix (`weight`, `running_mean`, ...) and shape.
type Tensors<'a> = Vec<(&'a str, &'a [usize])>;

/// A module: the name of its tensors up to the last dot, and each tensor's suffix, shape and
/// index in the list it was made from.
struct Module<'a> {
    name: &'a str,
    tensors: Vec<(&'a str, &'a [usize], usize)>,
}

/// A tensor name split at its last dot into module and suffix (the module is empty without a
/// dot).
fn split(name: &str) -> (&str, &str) {
    name.rsplit_once('.').unwrap_or(("", name))
}

/// The modules of a list of tensors, in the order of their first tensor.
fn modules<'a>(tensors: impl Iterator<Item = (&'a str, &'a [usize])>) -> Vec<Module<'a>> {
    let mut out: Vec<Module<'a>> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for (index, (name, shape)) in tensors.enumerate() {
        let (module, suffix) = split(name);
        let k = *at.entry(module).or_insert_with(|| {
            out.push(Module { name: module, tensors: Vec::new() });
            out.len() - 1
        });
        out[k].tensors.push((suffix, shape, index));
    }
    out
}

/// For the modules of both sides, a number per module that two modules share exactly when they
/// hold tensors of the same suffixes with the same shapes.
fn signatures<'a>(ours: &[Module<'a>], theirs: &[Module<'a>]) -> (Vec<usize>, Vec<usize>) {
    let mut ids: HashMap<Vec<(&'a str, &'a [usize])>, usize> = HashMap::new();
    let mut id = |m: &Module<'a>| {
        let mut key: Vec<(&'a str, &'a [usize])> = m.tensors.iter().map(|&(s, shape, _)| (s, shape)).collect();
        key.sort_unstable();
        let next = ids.len();
        *ids.entry(key).or_insert(next)
    };
    let ours_ids = ours.iter().map(&mut id).collect();
    let theirs_ids = theirs.iter().map(&mut id).collect();
    (ours_ids, theirs_ids)
}

/// The pairs (ours, theirs) of an order-preserving alignment of the two module lists that pairs
/// the most modules of equal signature; an `Err` when another alignment of as many pairs pairs
/// some module differently.
fn align(
    path: &Path,
    ours: &[Module<'_>],
    theirs: &[Module<'_>],
    a: &[usize],
    b: &[usize],
    budget: &mut Budget,
) -> Result<Vec<(usize, usize)>> {
    if a == b {
        return Ok((0..a.len()).map(|i| (i, i)).collect());
    }
    let (n, m) = (a.len(), b.len());
    let cells = (n + 1).saturating_mul(m + 1);
    budget.take_values(path, cells.saturating_mul(2), 4, "the alignment of the modules")?;
    // forward[i][j]: the most pairs of a[..i] and b[..j]; backward[i][j]: of a[i..] and b[j..].
    let at = |i: usize, j: usize| i * (m + 1) + j;
    let (mut forward, mut backward) = (vec![0u32; cells], vec![0u32; cells]);
    for i in 1..=n {
        for j in 1..=m {
            forward[at(i, j)] = if a[i - 1] == b[j - 1] {
                forward[at(i - 1, j - 1)] + 1
            } else {
                forward[at(i - 1, j)].max(forward[at(i, j - 1)])
            };
        }
    }
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            backward[at(i, j)] = if a[i] == b[j] {
                backward[at(i + 1, j + 1)] + 1
            } else {
                backward[at(i + 1, j)].max(backward[at(i, j + 1)])
            };
        }
    }
    let best = forward[at(n, m)];
    // The pairs found in some alignment of `best` pairs: exactly `best` of them when that
    // alignment is the only one, more when two alignments differ.
    let mut candidates = Vec::new();
    for i in 0..n {
        for j in 0..m {
            if a[i] == b[j] && forward[at(i, j)] + 1 + backward[at(i + 1, j + 1)] == best {
                candidates.push((i, j));
            }
        }
    }
    if candidates.len() == best as usize {
        return Ok(candidates);
    }
    let ambiguous = (0..n)
        .map(|i| (i, candidates.iter().filter(|c| c.0 == i).map(|c| c.1).collect::<Vec<_>>()))
        .find(|(_, js)| js.len() > 1);
    let reason = match ambiguous {
        Some((i, js)) => format!(
            "the model's `{}` ({}) could be loaded from any of the file's {}",
            ours[i].name,
            describe_module(&ours[i]),
            names_of(theirs, &js, "or")
        ),
        None => {
            let (j, is) = (0..m)
                .map(|j| (j, candidates.iter().filter(|c| c.1 == j).map(|c| c.0).collect::<Vec<_>>()))
                .find(|(_, is)| is.len() > 1)
                .unwrap_or((0, Vec::new()));
            format!(
                "the file's `{}` ({}) could be loaded into any of the model's {}",
                theirs.get(j).map_or("", |t| t.name),
                theirs.get(j).map_or(String::new(), describe_module),
                names_of(ours, &is, "or")
            )
        }
    };
    Err(file_error(
        path,
        format!(
            "ambiguous match: the model's {n} modules and the file's {m} can be aligned in order in more than one \
             way pairing {best} of them, and {reason}; nothing was loaded"
        ),
    ))
}

/// The pairs (ours, theirs) of modules whose signature occurs once on each side; an `Err` when
/// a signature found on both sides occurs more than once on one.
fn unique_pairs(
    path: &Path,
    ours: &[Module<'_>],
    theirs: &[Module<'_>],
    a: &[usize],
    b: &[usize],
) -> Result<Vec<(usize, usize)>> {
    let mut count: HashMap<usize, (usize, usize)> = HashMap::new();
    a.iter().for_each(|id| count.entry(*id).or_default().0 += 1);
    b.iter().for_each(|id| count.entry(*id).or_default().1 += 1);
    let mut first: HashMap<usize, usize> = HashMap::new();
    b.iter().enumerate().rev().for_each(|(j, id)| _ = first.insert(*id, j));
    let mut pairs = Vec::new();
    for (i, id) in a.iter().enumerate() {
        match (count.get(id).copied().unwrap_or_default(), first.get(id)) {
            (_, None) => {}
            ((1, 1), Some(&j)) => pairs.push((i, j)),
            _ => {
                let same_ours: Vec<usize> = (0..a.len()).filter(|&k| a[k] == *id).collect();
                let same_theirs: Vec<usize> = (0..b.len()).filter(|&k| b[k] == *id).collect();
                return Err(file_error(
                    path,
                    format!(
                        "ambiguous match: without the order of its tensors (metadata `{ORDER_KEY}`), modules of \
                         the same kinds and shapes cannot be told apart, and the model's {} and the file's {} all \
                         hold {}; write the state_dict's order in the file, as \
                         `save_file(tensors, path, metadata={{\"{ORDER_KEY}\": json.dumps(list(state_dict))}})`; \
                         nothing was loaded",
                        names_of(ours, &same_ours, "and"),
                        names_of(theirs, &same_theirs, "and"),
                        describe_module(&ours[i])
                    ),
                ));
            }
        }
    }
    Ok(pairs)
}

/// The most modules an explanation lists one by one.
const EXPLAINED: usize = 12;

/// What keeps the modules outside `pairs` from pairing, one line each: for a module of the model
/// and one of the file in the same place of the order (between the same pairs), how they differ;
/// otherwise what each side holds that the other has not.
fn explain(ours: &[Module<'_>], theirs: &[Module<'_>], pairs: &[(usize, usize)], by_order: bool) -> String {
    let mut lines = Vec::new();
    if by_order {
        // The gaps between consecutive pairs, with one before the first and one after the last.
        let mut bounds: Vec<(usize, usize)> = vec![(0, 0)];
        bounds.extend(pairs.iter().map(|&(i, j)| (i + 1, j + 1)));
        let ends: Vec<(usize, usize)> = pairs.iter().copied().chain([(ours.len(), theirs.len())]).collect();
        for (&(i0, j0), &(i1, j1)) in bounds.iter().zip(&ends) {
            if i1 - i0 == 1 && j1 - j0 == 1 {
                lines.push(format!(
                    "  the model's `{}` and the file's `{}`, in the same place, differ: {}",
                    ours[i0].name,
                    theirs[j0].name,
                    difference(&ours[i0], &theirs[j0])
                ));
                continue;
            }
            lines.extend((i0..i1).map(|i| unmatched_ours(&ours[i])));
            lines.extend((j0..j1).map(|j| unmatched_theirs(&theirs[j])));
        }
    } else {
        lines.extend((0..ours.len()).filter(|i| !pairs.iter().any(|p| p.0 == *i)).map(|i| unmatched_ours(&ours[i])));
        lines.extend(
            (0..theirs.len()).filter(|j| !pairs.iter().any(|p| p.1 == *j)).map(|j| unmatched_theirs(&theirs[j])),
        );
    }
    let more = lines.len().saturating_sub(EXPLAINED);
    lines.truncate(EXPLAINED);
    if more > 0 {
        lines.push(format!("  and {more} more"));
    }
    lines.join("\n")
}

fn unmatched_ours(m: &Module<'_>) -> String {
    format!("  the model's `{}` ({}) has no match in the file", m.name, describe_module(m))
}

fn unmatched_theirs(m: &Module<'_>) -> String {
    format!("  the file's `{}` ({}) matches nothing of the model", m.name, describe_module(m))
}

/// How the file's module `theirs` differs from the model's `ours`: tensors missing, extra, or
/// of another shape.
fn difference(ours: &Module<'_>, theirs: &Module<'_>) -> String {
    let mut parts = Vec::new();
    for &(suffix, shape, _) in &ours.tensors {
        match theirs.tensors.iter().find(|t| t.0 == suffix) {
            None => parts.push(format!("the file has no `{}.{suffix}` (the model's is {shape:?})", theirs.name)),
            Some(&(_, their_shape, _)) if their_shape != shape => parts.push(format!(
                "`{}.{suffix}` has shape {their_shape:?}, the model's `{}.{suffix}` {shape:?}",
                theirs.name, ours.name
            )),
            Some(_) => {}
        }
    }
    for &(suffix, shape, _) in &theirs.tensors {
        if !ours.tensors.iter().any(|t| t.0 == suffix) {
            parts.push(format!("the file's `{}.{suffix}` {shape:?} has no counterpart in the model", theirs.name));
        }
    }
    parts.join("; ")
}

/// The names of `modules[indices]`, quoted, separated by commas and the last by `last_by`.
fn names_of(modules: &[Module<'_>], indices: &[usize], last_by: &str) -> String {
    let names: Vec<String> = indices.iter().map(|&i| format!("`{}`", modules[i].name)).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} {last_by} {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

fn describe_module(m: &Module<'_>) -> String {
    describe(&m.tensors.iter().map(|&(s, shape, _)| (s, shape)).collect::<Vec<_>>())
}

/// Tensors as `weight [64, 3, 7, 7]`, consecutive ones of one shape sharing it:
/// `weight, bias, running_mean, running_var [64], num_batches_tracked []`.
fn describe(tensors: &[(&str, &[usize])]) -> String {
    let mut out = String::new();
    for (k, (suffix, shape)) in tensors.iter().enumerate() {
        out.push_str(suffix);
        if tensors.get(k + 1).is_some_and(|next| next.1 == *shape) {
            out.push_str(", ");
        } else {
            out.push_str(&format!(" {shape:?}"));
            if k + 1 < tensors.len() {
                out.push_str(", ");
            }
        }
    }
    out
}

/// Tensors grouped by module, in order: (module, [(suffix, shape)]).
fn by_module<'a>(tensors: impl Iterator<Item = (&'a str, &'a [usize])>) -> Vec<(&'a str, Tensors<'a>)> {
    let mut out: Vec<(&str, Tensors<'_>)> = Vec::new();
    for (name, shape) in tensors {
        let (module, suffix) = split(name);
        match out.last_mut() {
            Some((m, list)) if *m == module => list.push((suffix, shape)),
            _ => out.push((module, vec![(suffix, shape)])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module<'a>(name: &'a str, tensors: &[(&'a str, &'a [usize])]) -> Module<'a> {
        Module { name, tensors: tensors.iter().enumerate().map(|(i, &(s, shape))| (s, shape, i)).collect() }
    }

    fn pairs_of(a: &[usize], b: &[usize]) -> Result<Vec<(usize, usize)>> {
        let names: Vec<String> = (0..a.len().max(b.len())).map(|i| format!("m{i}")).collect();
        let ours: Vec<Module<'_>> = a.iter().enumerate().map(|(i, _)| module(&names[i], &[])).collect();
        let theirs: Vec<Module<'_>> = b.iter().enumerate().map(|(j, _)| module(&names[j], &[])).collect();
        align(Path::new("f"), &ours, &theirs, a, b, &mut Budget::new(Limit::DEFAULT))
    }

    #[test]
    fn an_alignment_pairs_the_most_modules_in_order_and_refuses_a_choice() {
        assert_eq!(pairs_of(&[1, 2, 3], &[1, 2, 3]).unwrap(), [(0, 0), (1, 1), (2, 2)]);
        // A new head: the rest pairs in place.
        assert_eq!(pairs_of(&[1, 2, 3, 4], &[1, 2, 3, 5]).unwrap(), [(0, 0), (1, 1), (2, 2)]);
        // A module the file has in addition, and one the model has.
        assert_eq!(pairs_of(&[1, 2, 3], &[1, 9, 2, 3]).unwrap(), [(0, 0), (1, 2), (2, 3)]);
        assert_eq!(pairs_of(&[1, 7, 2, 3], &[1, 2, 3]).unwrap(), [(0, 0), (2, 1), (3, 2)]);
        // Repeated modules that line up one for one are no choice...
        assert_eq!(pairs_of(&[1, 1, 2], &[1, 1, 2, 5]).unwrap(), [(0, 0), (1, 1), (2, 2)]);
        // ...but one of two identical blocks to drop is.
        let e = pairs_of(&[1, 2, 3], &[1, 2, 1, 2, 3]).unwrap_err().to_string();
        assert!(e.contains("ambiguous") && e.contains("`m0`") && e.contains("`m0` or `m2`"), "{e}");
        let e = pairs_of(&[4, 4], &[4]).unwrap_err().to_string();
        assert!(e.contains("the file's `m0`") && e.contains("`m0` or `m1`"), "{e}");
        assert_eq!(pairs_of(&[1], &[2]).unwrap(), []);
    }

    #[test]
    fn modules_group_tensors_by_the_name_before_the_last_dot_in_first_order() {
        let shapes: [&[usize]; 4] = [&[4, 3], &[4], &[2], &[]];
        let list = [("layer1.0.conv1.weight", shapes[0]), ("bn.weight", shapes[1]), ("layer1.0.conv1.bias", shapes[1])];
        let ms = modules(list.into_iter().chain([("count", shapes[3])]));
        let names: Vec<&str> = ms.iter().map(|m| m.name).collect();
        assert_eq!(names, ["layer1.0.conv1", "bn", ""]);
        assert_eq!(ms[0].tensors, [("weight", shapes[0], 0), ("bias", shapes[1], 2)]);
        assert_eq!(describe_module(&ms[0]), "weight [4, 3], bias [4]");
        let bn = module(
            "bn",
            &[
                ("weight", shapes[2]),
                ("bias", shapes[2]),
                ("running_mean", shapes[2]),
                ("num_batches_tracked", shapes[3]),
            ],
        );
        assert_eq!(describe_module(&bn), "weight, bias, running_mean [2], num_batches_tracked []");
    }

    #[test]
    fn signatures_ignore_names_and_order_but_not_kinds_or_shapes() {
        let (s4, s5): (&[usize], &[usize]) = (&[4], &[5]);
        let ours = [module("0", &[("weight", s4), ("bias", s4)]), module("1", &[("weight", s4)])];
        let theirs = [
            module("fc", &[("bias", s4), ("weight", s4)]),
            module("bn", &[("weight", s4), ("running_mean", s4)]),
            module("x", &[("weight", s5)]),
            module("y", &[("weight", s4)]),
        ];
        let (a, b) = signatures(&ours, &theirs);
        assert_eq!(a[0], b[0]);
        assert_ne!(a[0], b[1]);
        assert_ne!(a[1], b[2]);
        assert_eq!(a[1], b[3]);
        assert_eq!(
            difference(&ours[0], &theirs[1]),
            "the file has no `bn.bias` (the model's is [4]); the file's `bn.running_mean` [4] has no counterpart \
             in the model"
        );
        assert_eq!(difference(&ours[1], &theirs[2]), "`x.weight` has shape [5], the model's `1.weight` [4]");
        assert_eq!(unique_pairs(Path::new("f"), &ours, &theirs, &a, &b).unwrap(), [(0, 0), (1, 3)]);
    }
}
