//! Mutations: byte-level ones for every input, gzip-aware ones (the compressed bytes, the
//! payload under them, several members) and structural edits of safetensors files that keep
//! the header length right, so that a mutant gets past the first check of the parser.

use std::io::{Read, Write};

use serde_json::{Map, Value};

use crate::rng::Rng;

/// Mutants never grow past this, to keep cases fast.
pub const MAX_LEN: usize = 1 << 16;

/// Bytes that often sit on a boundary of a check.
const BYTES: [u8; 4] = [0, 0xff, 0x7f, 0x80];

/// Integers on the boundaries of 32- and 64-bit arithmetic, written as 4 or 8 bytes.
const INTS: [u64; 12] =
    [0, 1, 2, 0x7f, 0xff, 1 << 24, 0x7fff_ffff, 0x8000_0000, u32::MAX as u64, 1 << 32, i64::MAX as u64, u64::MAX];

/// Applies 1 to 4 byte-level mutations to `data`; `other` is another corpus entry to splice.
pub fn bytes(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        byte_once(rng, data, other);
    }
    data.truncate(MAX_LEN);
}

/// An offset into `len` bytes, half the time within the first 32 (where headers are).
fn offset(rng: &mut Rng, len: usize) -> usize {
    if rng.one_in(2) {
        rng.below(len.min(32))
    } else {
        rng.below(len)
    }
}

fn byte_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.below(13) {
        0 if len > 0 => {
            let at = offset(rng, len);
            data[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = offset(rng, len);
            data[at] = rng.pick(&BYTES);
        }
        2 if len > 0 => {
            let at = offset(rng, len);
            data[at] = rng.next_u64() as u8;
        }
        3 if len > 0 => {
            let at = offset(rng, len);
            data[at] = data[at].wrapping_add(rng.pick(&[1u8, 2, 0xff, 0xfe, 16]));
        }
        4 if len >= 4 => {
            let at = offset(rng, len - 3);
            let v = rng.pick(&INTS) as u32;
            let b = if rng.one_in(2) { v.to_be_bytes() } else { v.to_le_bytes() };
            data[at..at + 4].copy_from_slice(&b);
        }
        5 if len >= 8 => {
            let at = offset(rng, len - 7);
            let v = rng.pick(&INTS);
            let b = if rng.one_in(2) { v.to_be_bytes() } else { v.to_le_bytes() };
            data[at..at + 8].copy_from_slice(&b);
        }
        6 => data.truncate(rng.below(len + 1)),
        7 => {
            let most = if rng.one_in(4) { 4096 } else { 64 };
            let n = 1 + rng.below(most);
            data.resize(len + n, 0);
        }
        8 => {
            let n = 1 + rng.below(64);
            data.extend(rng.bytes(n));
        }
        9 if len > 0 => {
            let (start, n) = chunk(rng, len);
            let copy = data[start..start + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, copy);
        }
        10 if len > 0 => {
            let (start, n) = chunk(rng, len);
            data.drain(start..start + n);
        }
        11 if !other.is_empty() => {
            let (cut, from) = (rng.below(len + 1), rng.below(other.len()));
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        12 if !other.is_empty() => {
            let (start, n) = chunk(rng, other.len());
            let at = rng.below(len + 1);
            data.splice(at..at, other[start..start + n].iter().copied());
        }
        _ => data.push(rng.pick(&BYTES)),
    }
}

/// A chunk of `len` bytes: its start and length (at least 1).
fn chunk(rng: &mut Rng, len: usize) -> (usize, usize) {
    let start = rng.below(len);
    let most = if rng.one_in(4) { len } else { 16 };
    let n = 1 + rng.below((len - start).min(most));
    (start, n)
}

/// Whether `data` starts with the gzip magic bytes (what the loaders test).
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

/// The payload of the first gzip member of `data`, if it decodes within [`MAX_LEN`] bytes.
pub fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).take(MAX_LEN as u64).read_to_end(&mut out).ok()?;
    Some(out)
}

/// `data` as one gzip member.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Mutates a gzip input: its compressed bytes, or its payload (re-compressed), or appends a
/// second member.
pub fn gzip_aware(rng: &mut Rng, data: &[u8], other: &[u8]) -> Vec<u8> {
    let payload = gunzip(data);
    if rng.one_in(256) {
        if let Some(mut payload) = payload {
            // A gzip bomb: 16 to 128 MiB of zeros after the payload, a few hundred times smaller
            // compressed, which a loader must refuse without holding it all.
            payload.resize(payload.len() + ((16 + rng.below(113)) << 20), 0);
            return gzip(&payload);
        }
    }
    let other_payload = if is_gzip(other) { gunzip(other) } else { Some(other.to_vec()) };
    match (rng.below(10), payload) {
        (0..=4, Some(mut payload)) => {
            bytes(rng, &mut payload, other_payload.as_deref().unwrap_or_default());
            gzip(&payload)
        }
        (5 | 6, Some(payload)) => {
            // A second member: the loaders read the first one only, or all; either must hold.
            let mut tail = other_payload.unwrap_or(payload);
            if rng.one_in(2) {
                bytes(rng, &mut tail, &[]);
            }
            let mut out = data.to_vec();
            out.extend(gzip(&tail));
            out
        }
        _ => {
            let mut out = data.to_vec();
            bytes(rng, &mut out, other);
            out
        }
    }
}

/// A safetensors file taken apart: header metadata and tensors with their data, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct Safetensors {
    /// `__metadata__`, when present.
    pub metadata: Option<Map<String, Value>>,
    /// Name, header entry (dtype, shape, data offsets) and data of each tensor.
    pub tensors: Vec<(String, Map<String, Value>, Vec<u8>)>,
}

impl Safetensors {
    /// Parses `bytes`, or `None` when the header or an offset does not fit.
    pub fn parse(bytes: &[u8]) -> Option<Safetensors> {
        let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
        let header: Map<String, Value> = serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
        let data = &bytes[8 + n..];
        let mut metadata = None;
        let mut tensors = Vec::new();
        for (name, value) in header {
            let Value::Object(info) = value else { return None };
            if name == "__metadata__" {
                metadata = Some(info);
                continue;
            }
            let offsets = info.get("data_offsets")?.as_array()?;
            let (start, end) = (offsets.first()?.as_u64()? as usize, offsets.get(1)?.as_u64()? as usize);
            tensors.push((start, name, info.clone(), data.get(start..end)?.to_vec()));
        }
        tensors.sort_by_key(|t| t.0);
        Some(Safetensors { metadata, tensors: tensors.into_iter().map(|(_, n, i, d)| (n, i, d)).collect() })
    }

    /// The file: tensors laid out one after the other in order, offsets and header length
    /// recomputed, the header padded to 8 bytes as safetensors writes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = Map::new();
        if let Some(metadata) = &self.metadata {
            header.insert("__metadata__".into(), Value::Object(metadata.clone()));
        }
        let mut at = 0;
        for (name, info, data) in &self.tensors {
            let mut info = info.clone();
            info.insert("data_offsets".into(), Value::from(vec![at, at + data.len()]));
            at += data.len();
            header.insert(name.clone(), Value::Object(info));
        }
        let mut json = serde_json::to_vec(&Value::Object(header)).expect("a JSON map serialises");
        json.resize(json.len().next_multiple_of(8), b' ');
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend(json);
        for (_, _, data) in &self.tensors {
            out.extend_from_slice(data);
        }
        out
    }
}

/// Metadata keys the loaders read.
const KEYS: [&str; 13] = [
    "cnn.learning_rate",
    "optimizer.step",
    "cnn.noise_step",
    "cnn.noise_seed",
    "cnn.epoch",
    "cnn.step",
    "cnn.seed",
    "cnn.kind",
    "cnn.optimizer",
    "cnn.model",
    "cnn.version",
    "optimizer.exp_avg",
    "optimizer.unknown",
];

/// Values that test a number's parser and the range checks after it.
const VALUES: [&str; 22] = [
    "NaN",
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "-0",
    "1",
    "1e39",
    "3.4e38",
    "1e-45",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "",
    " 1",
    "0x10",
    "checkpoint",
    "weights",
    "Adam(lr=0.001)",
    "Sgd(lr=0.1)",
];

/// Dtypes of the safetensors format, and one that is not.
const DTYPES: [&str; 11] = ["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "I8", "BOOL", "F8_E4M3", "Q4"];

/// Tensor names worth creating or deleting.
const NAMES: [&str; 6] = [
    "optimizer.momentum_buffer",
    "optimizer.exp_avg",
    "optimizer.exp_avg_sq",
    "optimizer.step",
    "1.num_batches_tracked",
    "0.weight",
];

/// Special `f32` values written into tensor data.
const FLOATS: [f32; 9] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -f32::MAX, 1e38, -0.0, 1e-45, -1.0];

/// Special `i64` values written into integer tensors.
const COUNTS: [i64; 7] = [-1, 0, 1 << 24, (1 << 24) + 1, i64::MAX, i64::MIN, 1 << 53];

/// Mutates a safetensors file structurally (1 to 3 edits of its header or tensors, written back
/// with a consistent header length), and sometimes its bytes as well; falls back to byte
/// mutations when the file does not parse.
pub fn safetensors(rng: &mut Rng, data: &[u8], other: &[u8]) -> Vec<u8> {
    let Some(mut file) = Safetensors::parse(data).filter(|_| !rng.one_in(5)) else {
        let mut out = data.to_vec();
        bytes(rng, &mut out, other);
        return out;
    };
    for _ in 0..1 + rng.below(3) {
        edit(rng, &mut file, Safetensors::parse(other).as_ref());
    }
    let mut out = file.to_bytes();
    if rng.one_in(8) {
        // Bytes of the data only, so the header still parses.
        let n = u64::from_le_bytes(out[..8].try_into().expect("8 bytes")) as usize + 8;
        let mut tail = out.split_off(n);
        bytes(rng, &mut tail, &[]);
        out.extend(tail);
    }
    out
}

fn dtype_size(dtype: &str) -> usize {
    match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        _ => 1,
    }
}

fn elements(info: &Map<String, Value>) -> Option<usize> {
    info.get("shape")?.as_array()?.iter().try_fold(1usize, |n, d| n.checked_mul(d.as_u64()? as usize))
}

fn edit(rng: &mut Rng, file: &mut Safetensors, other: Option<&Safetensors>) {
    let count = file.tensors.len();
    match rng.below(12) {
        0..=2 => {
            let key = match file.metadata.as_ref().filter(|m| !m.is_empty() && rng.one_in(2)) {
                Some(m) => m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default(),
                None => rng.pick(&KEYS).to_string(),
            };
            let value = if rng.one_in(10) { Value::from(1.5) } else { Value::from(rng.pick(&VALUES)) };
            file.metadata.get_or_insert_with(Map::new).insert(key, value);
        }
        3 => match &mut file.metadata {
            Some(m) if !m.is_empty() && !rng.one_in(8) => {
                let key = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
                m.remove(&key);
            }
            _ => file.metadata = None,
        },
        4 if count > 0 => {
            // Deleting optimizer state is the interesting case: a loader must not keep the old.
            let state: Vec<usize> = (0..count).filter(|&i| file.tensors[i].0.starts_with("optimizer.")).collect();
            let i = if !state.is_empty() && rng.one_in(2) { rng.pick(&state) } else { rng.below(count) };
            file.tensors.remove(i);
        }
        5 if count > 0 => {
            let i = rng.below(count);
            let info = &mut file.tensors[i].1;
            let mut shape: Vec<u64> = info
                .get("shape")
                .and_then(Value::as_array)
                .map(|s| s.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            match rng.below(5) {
                0 if !shape.is_empty() => {
                    let d = rng.below(shape.len());
                    shape[d] =
                        rng.pick(&[0, 1, shape[d].saturating_add(1), shape[d].saturating_sub(1), 1 << 32, u64::MAX]);
                }
                1 => shape.push(1),
                2 => {
                    shape.pop();
                }
                3 => shape.reverse(),
                _ => shape = vec![shape.iter().fold(1u64, |n, d| n.saturating_mul(*d))],
            }
            info.insert("shape".into(), Value::from(shape));
            resize_data(rng, &mut file.tensors[i]);
        }
        6 if count > 0 => {
            let i = rng.below(count);
            file.tensors[i].1.insert("dtype".into(), Value::from(rng.pick(&DTYPES)));
            resize_data(rng, &mut file.tensors[i]);
        }
        7 if count > 0 => {
            let i = rng.below(count);
            let (_, info, data) = &mut file.tensors[i];
            let is_int = info.get("dtype").and_then(Value::as_str) == Some("I64");
            for _ in 0..1 + rng.below(3) {
                if is_int && data.len() >= 8 {
                    let at = 8 * rng.below(data.len() / 8);
                    data[at..at + 8].copy_from_slice(&rng.pick(&COUNTS).to_le_bytes());
                } else if data.len() >= 4 {
                    let at = 4 * rng.below(data.len() / 4);
                    data[at..at + 4].copy_from_slice(&rng.pick(&FLOATS).to_le_bytes());
                }
            }
        }
        8 if count > 0 => {
            let i = rng.below(count);
            file.tensors[i].0 = rng.pick(&NAMES).to_string();
            dedup(file);
        }
        9 if count > 0 => {
            let mut copy = file.tensors[rng.below(count)].clone();
            copy.0 = rng.pick(&NAMES).to_string();
            let at = rng.below(count + 1);
            file.tensors.insert(at, copy);
            dedup(file);
        }
        10 => {
            if let Some(other) = other.filter(|o| !o.tensors.is_empty()) {
                // A tensor or the metadata of another file.
                if rng.one_in(2) {
                    let t = other.tensors[rng.below(other.tensors.len())].clone();
                    file.tensors.retain(|(name, ..)| *name != t.0);
                    let at = rng.below(file.tensors.len() + 1);
                    file.tensors.insert(at, t);
                } else {
                    file.metadata = other.metadata.clone();
                }
            }
        }
        _ if count > 1 => {
            let (a, b) = (rng.below(count), rng.below(count));
            file.tensors.swap(a, b);
        }
        _ => {}
    }
}

/// Resizes a tensor's data to what its dtype and shape need (so the file stays valid), unless
/// that would be large; then leaves it, and the file fails safetensors' own check.
fn resize_data(rng: &mut Rng, tensor: &mut (String, Map<String, Value>, Vec<u8>)) {
    let size = dtype_size(tensor.1.get("dtype").and_then(Value::as_str).unwrap_or_default());
    if let Some(n) = elements(&tensor.1).and_then(|n| n.checked_mul(size)).filter(|&n| n <= MAX_LEN) {
        if !rng.one_in(8) {
            let fill = if rng.one_in(2) { 0 } else { 0x3f };
            tensor.2.resize(n, fill);
        }
    }
}

/// Keeps the first of tensors that share a name, as a JSON object would.
fn dedup(file: &mut Safetensors) {
    let mut seen = std::collections::HashSet::new();
    file.tensors.retain(|(name, ..)| seen.insert(name.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_and_mutants_stay_bounded() {
        let payload = b"0123456789".repeat(20);
        assert_eq!(gunzip(&gzip(&payload)), Some(payload.clone()));
        let mut rng = Rng::new(1);
        let mut data = payload.clone();
        for _ in 0..2000 {
            bytes(&mut rng, &mut data, &payload);
            assert!(data.len() <= MAX_LEN);
        }
    }

    #[test]
    fn safetensors_parse_and_write_back_agree() {
        let file = Safetensors {
            metadata: Some(Map::from_iter([("cnn.kind".to_string(), Value::from("weights"))])),
            tensors: vec![
                (
                    "b".into(),
                    Map::from_iter([("dtype".into(), "F32".into()), ("shape".into(), vec![1].into())]),
                    vec![1, 2, 3, 4],
                ),
                (
                    "a".into(),
                    Map::from_iter([("dtype".into(), "U8".into()), ("shape".into(), vec![2].into())]),
                    vec![5, 6],
                ),
            ],
        };
        let bytes = file.to_bytes();
        let back = Safetensors::parse(&bytes).expect("parses");
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.tensors[0].2, vec![1, 2, 3, 4]);
        assert_eq!(back.tensors[1].2, vec![5, 6]);
        // Structural mutants keep a header length that matches their header.
        let mut rng = Rng::new(3);
        let parsed = (0..500).filter(|_| Safetensors::parse(&safetensors(&mut rng, &bytes, &bytes)).is_some()).count();
        assert!(parsed > 250, "{parsed} of 500 mutants parse");
    }
}
