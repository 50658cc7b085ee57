//! Protobuf wire primitives: varints, field keys, and a schema-driven validator for the
//! nested messages omen forwards without interpreting (exemplars, native histograms,
//! metadata), so a malformed body is refused instead of being passed on.

/// Wire types of the protobuf encoding.
pub const VARINT: u8 = 0;
pub const I64: u8 = 1;
pub const LEN: u8 = 2;
pub const I32: u8 = 5;

/// A wire-level error with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub offset: usize,
    pub what: &'static str,
}

pub type WireResult<T> = Result<T, WireError>;

/// A cursor over a protobuf message; `base` is the message's offset in the whole body,
/// for error messages.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    pub base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn err(&self, what: &'static str) -> WireError {
        WireError {
            offset: self.base + self.pos,
            what,
        }
    }

    #[inline(always)]
    pub fn varint(&mut self) -> WireResult<u64> {
        // Fast path, inlined into every caller: one byte (tags, lengths of short strings).
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_long()
    }

    #[inline(never)]
    fn varint_long(&mut self) -> WireResult<u64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    /// Reads a field key: (field number, wire type).
    #[inline]
    pub fn key(&mut self) -> WireResult<(u32, u8)> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(self.err("invalid field number"));
        }
        Ok((field as u32, (k & 7) as u8))
    }

    #[inline]
    pub fn bytes(&mut self) -> WireResult<&'a [u8]> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("length-delimited field runs past the end of its message"))?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    #[inline]
    pub fn fixed64(&mut self) -> WireResult<u64> {
        let end = self.pos + 8;
        let Some(b) = self.buf.get(self.pos..end) else {
            return Err(self.err("truncated fixed64"));
        };
        self.pos = end;
        Ok(u64::from_le_bytes(b.try_into().expect("slice of 8 bytes")))
    }

    /// Skips a field's value of the given wire type.
    pub fn skip(&mut self, wire_type: u8) -> WireResult<()> {
        match wire_type {
            VARINT => self.varint().map(drop),
            I64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            I32 => {
                if self.pos + 4 > self.buf.len() {
                    return Err(self.err("truncated fixed32"));
                }
                self.pos += 4;
                Ok(())
            }
            _ => Err(self.err("unsupported wire type (groups are not allowed)")),
        }
    }
}

/// What a known field of a forwarded-but-uninterpreted message must look like.
#[derive(Clone, Copy)]
pub enum Kind {
    Varint,
    Fixed64,
    Str,
    Msg(&'static [(u32, Kind)]),
    /// A repeated scalar: packed (LEN) or one value per field.
    PackedVarint,
    PackedFixed64,
}

const LABEL: &[(u32, Kind)] = &[(1, Kind::Str), (2, Kind::Str)];
pub const EXEMPLAR: &[(u32, Kind)] =
    &[(1, Kind::Msg(LABEL)), (2, Kind::Fixed64), (3, Kind::Varint)];
const BUCKET_SPAN: &[(u32, Kind)] = &[(1, Kind::Varint), (2, Kind::Varint)];
pub const HISTOGRAM: &[(u32, Kind)] = &[
    (1, Kind::Varint),
    (2, Kind::Fixed64),
    (3, Kind::Fixed64),
    (4, Kind::Varint),
    (5, Kind::Fixed64),
    (6, Kind::Varint),
    (7, Kind::Fixed64),
    (8, Kind::Msg(BUCKET_SPAN)),
    (9, Kind::PackedVarint),
    (10, Kind::PackedFixed64),
    (11, Kind::Msg(BUCKET_SPAN)),
    (12, Kind::PackedVarint),
    (13, Kind::PackedFixed64),
    (14, Kind::Varint),
    (15, Kind::Varint),
    (16, Kind::PackedFixed64),
];
pub const METADATA: &[(u32, Kind)] = &[
    (1, Kind::Varint),
    (2, Kind::Str),
    (4, Kind::Str),
    (5, Kind::Str),
];

/// Validates a message against a schema: known fields must have their wire type and
/// well-formed contents (UTF-8 strings, nested messages); unknown fields must be
/// well-formed, and are allowed as protobuf requires.
pub fn check(buf: &[u8], base: usize, schema: &'static [(u32, Kind)]) -> WireResult<()> {
    let mut r = Reader::new(buf, base);
    while !r.done() {
        let (field, wt) = r.key()?;
        let Some(&(_, kind)) = schema.iter().find(|(f, _)| *f == field) else {
            r.skip(wt)?;
            continue;
        };
        match (kind, wt) {
            (Kind::Varint | Kind::PackedVarint, VARINT) => drop(r.varint()?),
            (Kind::Fixed64 | Kind::PackedFixed64, I64) => drop(r.fixed64()?),
            (Kind::Str, LEN) => {
                let at = r.base + r.pos;
                let s = r.bytes()?;
                if std::str::from_utf8(s).is_err() {
                    return Err(WireError {
                        offset: at,
                        what: "string field is not valid UTF-8",
                    });
                }
            }
            (Kind::Msg(inner), LEN) => {
                let at = r.base + r.pos;
                let m = r.bytes()?;
                check(m, at, inner)?;
            }
            (Kind::PackedVarint, LEN) => {
                let at = r.base + r.pos;
                let mut p = Reader::new(r.bytes()?, at);
                while !p.done() {
                    p.varint()?;
                }
            }
            (Kind::PackedFixed64, LEN) => {
                if r.bytes()?.len() % 8 != 0 {
                    return Err(r.err("packed fixed64 field length is not a multiple of 8"));
                }
            }
            _ => return Err(r.err("field has the wrong wire type")),
        }
    }
    Ok(())
}

/// Appends a varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes a varint takes.
#[inline]
pub fn varint_len(v: u64) -> usize {
    // Most lengths and tags are below 128: one byte, without the division.
    if v < 0x80 {
        return 1;
    }
    (64 - v.leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut r = Reader::new(&out, 0);
            assert_eq!(r.varint(), Ok(v));
            assert!(r.done());
        }
    }

    #[test]
    fn bad_varints() {
        let mut r = Reader::new(&[0x80, 0x80], 0);
        assert_eq!(r.varint().unwrap_err().what, "truncated varint");
        let mut r = Reader::new(&[0xff; 11], 0);
        assert!(r.varint().is_err());
    }

    #[test]
    fn schema_check() {
        // Exemplar{labels: [{name: "a", value: "b"}], value: 1.0, timestamp: 5}
        let mut ok = vec![0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', 0x11];
        ok.extend_from_slice(&1.0f64.to_le_bytes());
        ok.extend_from_slice(&[0x18, 5]);
        assert_eq!(check(&ok, 0, EXEMPLAR), Ok(()));
        // timestamp sent as fixed64: wrong wire type
        let bad = [0x19, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            check(&bad, 0, EXEMPLAR).unwrap_err().what,
            "field has the wrong wire type"
        );
        // label value not UTF-8
        let bad = [0x0a, 6, 0x0a, 1, b'a', 0x12, 1, 0xff];
        assert_eq!(
            check(&bad, 0, EXEMPLAR).unwrap_err().what,
            "string field is not valid UTF-8"
        );
        // unknown field 9 (varint) is skipped
        assert_eq!(check(&[0x48, 1], 0, EXEMPLAR), Ok(()));
    }
}
