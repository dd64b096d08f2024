//! The few protobuf messages of an ONNX file, written by hand: varints, 32-bit floats and
//! length-delimited fields, with the field numbers of `onnx.proto`.

use crate::Shape;

/// `TensorProto.DataType` of 32-bit floats.
pub(crate) const FLOAT: i64 = 1;
/// `TensorProto.DataType` of 64-bit integers.
pub(crate) const INT64: i64 = 7;
/// `TensorProto.DataType` of unsigned 8-bit integers.
pub(crate) const UINT8: i64 = 2;
/// `TensorProto.DataType` of signed 8-bit integers.
pub(crate) const INT8: i64 = 3;
/// `TensorProto.DataType` of 32-bit integers.
pub(crate) const INT32: i64 = 6;

/// Wire types.
const VARINT: u32 = 0;
const FIXED32: u32 = 5;
const LEN: u32 = 2;

/// A protobuf message being written, field after field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Message(Vec<u8>);

impl Message {
    /// An empty message.
    pub(crate) fn new() -> Self {
        Message(Vec::new())
    }

    /// The encoded bytes.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    /// An `int64` or `int32` field (a negative value takes ten bytes, as protobuf writes it).
    pub(crate) fn int(mut self, field: u32, v: i64) -> Self {
        self.key(field, VARINT);
        self.varint(v as u64);
        self
    }

    /// A `float` field.
    pub(crate) fn float(mut self, field: u32, v: f32) -> Self {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `bytes` field.
    pub(crate) fn bytes(mut self, field: u32, bytes: &[u8]) -> Self {
        self.key(field, LEN);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
        self
    }

    /// A `string` field.
    pub(crate) fn string(self, field: u32, text: &str) -> Self {
        self.bytes(field, text.as_bytes())
    }

    /// An embedded message.
    pub(crate) fn message(self, field: u32, message: &Message) -> Self {
        self.bytes(field, &message.0)
    }

    /// A repeated embedded message, one field per item.
    pub(crate) fn messages<'a>(self, field: u32, items: impl IntoIterator<Item = &'a Message>) -> Self {
        items.into_iter().fold(self, |m, item| m.message(field, item))
    }
}

/// A node attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Attr {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOAT`.
    Float(f32),
}

/// An `AttributeProto`: name 1, f 2, i 3, ints 8, type 20.
pub(crate) fn attribute(name: &str, value: &Attr) -> Message {
    let m = Message::new().string(1, name);
    match value {
        Attr::Float(f) => m.float(2, *f).int(20, 1),
        Attr::Int(i) => m.int(3, *i).int(20, 2),
        Attr::Ints(ints) => ints.iter().fold(m, |m, &i| m.int(8, i)).int(20, 7),
    }
}

/// A `NodeProto`: input 1, output 2, name 3, op_type 4, attribute 5.
pub(crate) fn node(name: &str, op: &str, inputs: &[String], output: &str, attrs: &[(&str, Attr)]) -> Message {
    let m = inputs.iter().fold(Message::new(), |m, i| m.string(1, i));
    let m = m.string(2, output).string(3, name).string(4, op);
    attrs.iter().fold(m, |m, (name, value)| m.message(5, &attribute(name, value)))
}

/// A float `TensorProto`, its values in `raw_data` (dims 1, data_type 2, name 8, raw_data 9).
pub(crate) fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let m = dims.iter().fold(Message::new(), |m, &d| m.int(1, d as i64));
    m.int(2, FLOAT).string(8, name).bytes(9, &raw)
}

/// A `TensorProto` of `data_type` whose values are the little-endian bytes `raw`.
pub(crate) fn raw_tensor(name: &str, dims: &[usize], data_type: i64, raw: &[u8]) -> Message {
    let m = dims.iter().fold(Message::new(), |m, &d| m.int(1, d as i64));
    m.int(2, data_type).string(8, name).bytes(9, raw)
}

/// A 64-bit integer `TensorProto`, its values in `raw_data`.
pub(crate) fn int_tensor(name: &str, dims: &[usize], values: &[i64]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let m = dims.iter().fold(Message::new(), |m, &d| m.int(1, d as i64));
    m.int(2, INT64).string(8, name).bytes(9, &raw)
}

/// A `ValueInfoProto` of a float tensor of `shape` per sample, after a batch dimension named
/// `N`: `[N, d, h, w]` for a volume, `[N, n]` for a vector.
pub(crate) fn value_info(name: &str, shape: Shape) -> Message {
    let per_sample = if shape.flat { vec![shape.len()] } else { vec![shape.d, shape.h, shape.w] };
    let batch = Message::new().string(2, "N");
    let dims = per_sample.iter().map(|&d| Message::new().int(1, d as i64));
    let shape = dims.fold(Message::new().message(1, &batch), |m, dim| m.message(1, &dim));
    let tensor = Message::new().int(1, FLOAT).message(2, &shape);
    Message::new().string(1, name).message(2, &Message::new().message(1, &tensor))
}

/// A `StringStringEntryProto`: key 1, value 2.
pub(crate) fn entry(key: &str, value: &str) -> Message {
    Message::new().string(1, key).string(2, value)
}

/// An `OperatorSetIdProto`: domain 1, version 2.
pub(crate) fn opset(domain: &str, version: i64) -> Message {
    Message::new().string(1, domain).int(2, version)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One field of a message: its number and, by wire type, its value.
    #[derive(Debug, PartialEq)]
    pub(crate) enum Field<'a> {
        Varint(u64),
        Fixed32(u32),
        Bytes(&'a [u8]),
    }

    fn read_varint(bytes: &[u8], at: &mut usize) -> u64 {
        let mut v = 0;
        for shift in (0..64).step_by(7) {
            let b = bytes[*at];
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
        }
        v
    }

    /// The fields of an encoded message, in order.
    pub(crate) fn fields(bytes: &[u8]) -> Vec<(u32, Field<'_>)> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < bytes.len() {
            let key = read_varint(bytes, &mut at);
            let field = match key & 7 {
                0 => Field::Varint(read_varint(bytes, &mut at)),
                5 => {
                    at += 4;
                    Field::Fixed32(u32::from_le_bytes(bytes[at - 4..at].try_into().unwrap()))
                }
                2 => {
                    let len = read_varint(bytes, &mut at) as usize;
                    at += len;
                    Field::Bytes(&bytes[at - len..at])
                }
                wire => panic!("wire type {wire}"),
            };
            out.push(((key >> 3) as u32, field));
        }
        out
    }

    #[test]
    fn varints_follow_protobuf() {
        let bytes = Message::new().int(1, 1).int(2, 300).int(3, -1).into_bytes();
        assert_eq!(&bytes[..5], &[0x08, 0x01, 0x10, 0xac, 0x02]);
        assert_eq!(bytes[5], 0x18);
        assert_eq!(&bytes[6..], &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(fields(&bytes)[2], (3, Field::Varint(u64::MAX)));
    }

    #[test]
    fn attributes_carry_their_type() {
        let ints = attribute("pads", &Attr::Ints(vec![1, 0, 1, 0])).into_bytes();
        let f = fields(&ints);
        assert_eq!(f[0], (1, Field::Bytes(b"pads")));
        assert_eq!(f[1..5].iter().map(|(n, _)| *n).collect::<Vec<_>>(), [8, 8, 8, 8]);
        assert_eq!(f[5], (20, Field::Varint(7)));
        let alpha = attribute("alpha", &Attr::Float(0.5)).into_bytes();
        assert_eq!(fields(&alpha)[1..], [(2, Field::Fixed32(0.5f32.to_bits())), (20, Field::Varint(1))]);
    }

    #[test]
    fn tensors_hold_little_endian_values() {
        let t = float_tensor("w", &[2, 1], &[1.0, -2.0]).into_bytes();
        let f = fields(&t);
        assert_eq!(
            f[..4],
            [(1, Field::Varint(2)), (1, Field::Varint(1)), (2, Field::Varint(1)), (8, Field::Bytes(b"w"))]
        );
        let raw: Vec<u8> = [1.0f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(f[4], (9, Field::Bytes(&raw)));
    }

    #[test]
    fn value_infos_name_the_batch_dimension() {
        let info = value_info("input", Shape::volume(5, 4, 3)).into_bytes();
        let f = fields(&info);
        assert_eq!(f[0], (1, Field::Bytes(b"input")));
        let Field::Bytes(ty) = f[1].1 else { panic!() };
        let Field::Bytes(tensor) = fields(ty)[0].1 else { panic!() };
        let tensor = fields(tensor);
        assert_eq!(tensor[0], (1, Field::Varint(1)));
        let Field::Bytes(shape) = tensor[1].1 else { panic!() };
        let dims: Vec<_> = fields(shape).into_iter().map(|(_, d)| d).collect();
        let Field::Bytes(batch) = dims[0] else { panic!() };
        assert_eq!(fields(batch), [(2, Field::Bytes(b"N"))]);
        let sizes: Vec<_> =
            dims[1..].iter().map(|d| if let Field::Bytes(d) = d { fields(d) } else { panic!() }).collect();
        assert_eq!(sizes, [[(1, Field::Varint(3))], [(1, Field::Varint(4))], [(1, Field::Varint(5))]]);
    }
}
