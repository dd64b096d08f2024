//! What a model file says about the model's use: how its inputs were prepared in training and
//! what its outputs are called ([`Meta`]).

use crate::prelude::*;

use core::fmt::Write;

use serde_json::Value;

/// The preprocessing a model's inputs had in training and the names of its outputs, stored as
/// plain values (JSON numbers, strings and arrays, never code) in the metadata of its
/// safetensors and ONNX files:
///
/// | key | value | example |
/// |---|---|---|
/// | `cnn.input.channels` | `grey`, `rgb` or `bgr`: what the input's channels hold, in order | `"grey"` |
/// | `cnn.input.range` | the range raw values (an 8-bit pixel `p` as `p / 255`) were mapped to first | `[0, 1]` |
/// | `cnn.input.mean` | per channel, subtracted next | `[0.1307]` |
/// | `cnn.input.std` | per channel, divided by last | `[0.3081]` |
/// | `cnn.classes` | the name of each output | `["0", "1", ...]` |
///
/// A model's input is laid out channel by channel, row by row (PyTorch's `C×H×W`). Every key
/// is optional; a reader applies the steps whose keys are present. In Python:
///
/// ```python
/// import json
/// from safetensors import safe_open
/// meta = safe_open("lenet5.safetensors", "np").metadata()
/// mean, std = json.loads(meta["cnn.input.mean"]), json.loads(meta["cnn.input.std"])
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    /// What the input's channels hold, in order.
    pub channels: Option<Channels>,
    /// The range raw values in `[0, 1]` (an 8-bit pixel `p` as `p / 255`) were mapped to,
    /// linearly, before standardising.
    pub range: Option<[f32; 2]>,
    /// Per channel (or one for all), subtracted after the range.
    pub mean: Vec<f32>,
    /// Per channel (or one for all), divided by after the mean; empty when `mean` is.
    pub std: Vec<f32>,
    /// The name of each output, in order.
    pub classes: Vec<String>,
}

/// What an input's channels hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channels {
    /// One grey level.
    Grey,
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red.
    Bgr,
}

impl Channels {
    /// The name stored in files: `grey`, `rgb` or `bgr`.
    pub fn name(self) -> &'static str {
        match self {
            Channels::Grey => "grey",
            Channels::Rgb => "rgb",
            Channels::Bgr => "bgr",
        }
    }

    /// How many channels it is.
    pub fn count(self) -> usize {
        match self {
            Channels::Grey => 1,
            Channels::Rgb | Channels::Bgr => 3,
        }
    }
}

/// Metadata keys.
pub(crate) const CHANNELS_KEY: &str = "cnn.input.channels";
pub(crate) const RANGE_KEY: &str = "cnn.input.range";
pub(crate) const MEAN_KEY: &str = "cnn.input.mean";
pub(crate) const STD_KEY: &str = "cnn.input.std";
pub(crate) const CLASSES_KEY: &str = "cnn.classes";

impl Meta {
    /// Checks that the values fit a model of `depth` input channels and `outputs` outputs (0:
    /// not checked), and are usable: finite, a non-empty range, positive deviations.
    pub fn check(&self, depth: usize, outputs: usize) -> Result<(), String> {
        if let Some(channels) = self.channels {
            if channels.count() != depth {
                return Err(format!(
                    "{} input has {} channels, the model reads {depth}",
                    channels.name(),
                    channels.count()
                ));
            }
        }
        if let Some([lo, hi]) = self.range {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(format!("input range [{lo}, {hi}] is not an increasing pair of finite numbers"));
            }
        }
        if self.mean.len() != self.std.len() {
            return Err(format!("{} means but {} standard deviations", self.mean.len(), self.std.len()));
        }
        if !(self.mean.is_empty() || self.mean.len() == 1 || self.mean.len() == depth) {
            return Err(format!("{} means for an input of {depth} channels (give 1 or {depth})", self.mean.len()));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(format!("mean {m} is not finite"));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("standard deviation {s} is not a positive finite number"));
        }
        if outputs != 0 && !self.classes.is_empty() && self.classes.len() != outputs {
            return Err(format!("{} class names for {outputs} outputs", self.classes.len()));
        }
        Ok(())
    }

    /// The metadata entries, keys and JSON values, of what is set.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut entries = Vec::new();
        if let Some(channels) = self.channels {
            entries.push((CHANNELS_KEY.to_string(), format!("\"{}\"", channels.name())));
        }
        if let Some(range) = self.range {
            entries.push((RANGE_KEY.to_string(), numbers(&range)));
        }
        if !self.mean.is_empty() {
            entries.push((MEAN_KEY.to_string(), numbers(&self.mean)));
            entries.push((STD_KEY.to_string(), numbers(&self.std)));
        }
        if !self.classes.is_empty() {
            let names: Vec<Value> = self.classes.iter().map(|c| Value::String(c.clone())).collect();
            entries.push((CLASSES_KEY.to_string(), Value::Array(names).to_string()));
        }
        entries
    }

    /// Reads the entries `get` finds (by key), each checked to be the JSON value its key holds.
    pub fn from_entries<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Meta, String> {
        let json = |key: &str| -> Result<Option<Value>, String> {
            get(key)
                .map(|text| {
                    serde_json::from_str(text).map_err(|e| format!("metadata `{key}` is not JSON ({e}): {text:?}"))
                })
                .transpose()
        };
        let floats = |key: &str| -> Result<Vec<f32>, String> {
            let Some(value) = json(key)? else { return Ok(Vec::new()) };
            let bad = || format!("metadata `{key}` is not an array of numbers: {value}");
            let items = value.as_array().ok_or_else(bad)?;
            items.iter().map(|v| v.as_f64().map(|f| f as f32).ok_or_else(bad)).collect()
        };
        let channels = match json(CHANNELS_KEY)? {
            None => None,
            Some(Value::String(name)) => Some(match name.as_str() {
                "grey" | "gray" => Channels::Grey,
                "rgb" => Channels::Rgb,
                "bgr" => Channels::Bgr,
                other => {
                    return Err(format!("metadata `{CHANNELS_KEY}` is {other:?}, not \"grey\", \"rgb\" or \"bgr\""))
                }
            }),
            Some(other) => return Err(format!("metadata `{CHANNELS_KEY}` is {other}, not a string")),
        };
        let range = match floats(RANGE_KEY)?.as_slice() {
            [] if get(RANGE_KEY).is_none() => None,
            &[lo, hi] => Some([lo, hi]),
            other => return Err(format!("metadata `{RANGE_KEY}` holds {} numbers, not 2", other.len())),
        };
        let classes = match json(CLASSES_KEY)? {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(format!("metadata `{CLASSES_KEY}` holds {other}, not a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("metadata `{CLASSES_KEY}` is {other}, not an array of strings")),
        };
        let meta = Meta { channels, range, mean: floats(MEAN_KEY)?, std: floats(STD_KEY)?, classes };
        meta.check(meta.mean.len().max(meta.channels.map_or(1, Channels::count)), 0)?;
        Ok(meta)
    }

    /// Prepares raw values in `[0, 1]`, laid out channel by channel (`depth` channels), as the
    /// model was trained: mapped to [`range`](Meta::range), then standardised per channel.
    pub fn prepare(&self, x: &mut [f32], depth: usize) {
        let area = x.len() / depth.max(1);
        for (c, plane) in x.chunks_mut(area.max(1)).enumerate() {
            let (lo, hi) = self.range.map_or((0.0, 1.0), |[lo, hi]| (lo, hi));
            let pick = |v: &[f32], default: f32| v.get(c).or(v.first()).copied().unwrap_or(default);
            let (mean, std) = (pick(&self.mean, 0.0), pick(&self.std, 1.0));
            for v in plane {
                *v = (lo + *v * (hi - lo) - mean) / std;
            }
        }
    }
}

/// Numbers as a JSON array, each written as the shortest text that reads back to it.
fn numbers(values: &[f32]) -> String {
    let mut text = String::from("[");
    for (i, v) in values.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(text, "{sep}{v}");
    }
    text.push(']');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lenet() -> Meta {
        Meta {
            channels: Some(Channels::Grey),
            range: Some([0.0, 1.0]),
            mean: vec![0.1307],
            std: vec![0.3081],
            classes: (0..10).map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn entries_read_back_to_the_same_values() {
        let meta = lenet();
        let entries = meta.entries();
        assert_eq!(entries[2], (MEAN_KEY.to_string(), "[0.1307]".to_string()));
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(Meta::from_entries(get).unwrap(), meta);
        let quoted = Meta { classes: vec!["a \"b\"".into(), "ü".into()], ..Meta::default() };
        let entries = quoted.entries();
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(Meta::from_entries(get).unwrap(), quoted);
        assert_eq!(Meta::from_entries(|_| None).unwrap(), Meta::default());
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        let cases = [
            (MEAN_KEY, "[0.1, \"x\"]", "cnn.input.mean"),
            (RANGE_KEY, "[0, 1, 2]", "3 numbers"),
            (CHANNELS_KEY, "\"cmyk\"", "cmyk"),
            (CLASSES_KEY, "[1, 2]", "not a string"),
            (STD_KEY, "not json", "not JSON"),
        ];
        for (key, value, expected) in cases {
            let error = Meta::from_entries(|k| (k == key).then_some(value)).unwrap_err();
            assert!(error.contains(expected), "{key}: {error}");
        }
        let std_zero = Meta { mean: vec![0.0], std: vec![0.0], ..Meta::default() };
        assert!(std_zero.check(1, 0).unwrap_err().contains("positive"));
        assert!(lenet().check(3, 10).unwrap_err().contains("channels"));
        assert!(lenet().check(1, 5).unwrap_err().contains("10 class names for 5"));
        lenet().check(1, 10).unwrap();
    }

    #[test]
    fn preparing_maps_the_range_then_standardises_each_channel() {
        let meta = Meta { range: Some([-1.0, 1.0]), mean: vec![0.0, 0.5], std: vec![2.0, 0.5], ..Meta::default() };
        let mut x = [0.0, 1.0, 0.5, 1.0];
        meta.prepare(&mut x, 2);
        assert_eq!(x, [-0.5, 0.5, -1.0, 1.0]);
    }
}
