//! A protobuf wire-format reader for the few OTLP trace fields the ingest reads.
//!
//! Fields with an unexpected wire type are skipped as unknown fields (what the Python
//! protobuf runtime does with them); groups and truncated input are errors.

pub type Bad = &'static str;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const FIXED32: u8 = 5;

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    #[inline]
    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64, Bad> {
        let mut out: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            if shift < 64 {
                out |= ((b & 0x7f) as u64) << shift;
            }
            if b & 0x80 == 0 {
                return Ok(out);
            }
            shift += 7;
            if shift >= 70 {
                return Err("varint too long");
            }
        }
    }

    /// (field number, wire type) of the next field.
    #[inline]
    pub fn tag(&mut self) -> Result<(u32, u8), Bad> {
        let t = self.varint()?;
        let field = (t >> 3) as u32;
        if field == 0 {
            return Err("field number 0");
        }
        Ok((field, (t & 7) as u8))
    }

    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], Bad> {
        let n = self.varint()? as usize;
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        if end > self.buf.len() {
            return Err("truncated field");
        }
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    #[inline]
    pub fn fixed64(&mut self) -> Result<u64, Bad> {
        let end = self.pos + 8;
        if end > self.buf.len() {
            return Err("truncated fixed64");
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.buf[self.pos..end]);
        self.pos = end;
        Ok(u64::from_le_bytes(a))
    }

    #[inline]
    pub fn skip(&mut self, wt: u8) -> Result<(), Bad> {
        match wt {
            VARINT => self.varint().map(|_| ()),
            FIXED64 => {
                self.fixed64()?;
                Ok(())
            }
            LEN => self.bytes().map(|_| ()),
            FIXED32 => {
                if self.pos + 4 > self.buf.len() {
                    return Err("truncated fixed32");
                }
                self.pos += 4;
                Ok(())
            }
            _ => Err("group or bad wire type"),
        }
    }
}

/// An attribute value as the Python reader sees it (`otlp_values.any_value`), scalars only.
#[derive(Clone, Copy, Debug)]
pub enum Val<'a> {
    None,
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Double(f64),
    Bytes(&'a [u8]),
    /// an array or key-value list: the request goes to the Python path
    Complex,
}

impl<'a> Val<'a> {
    /// Python truthiness of the value `any_value` would give.
    pub fn truthy(&self) -> bool {
        match *self {
            Val::None => false,
            Val::Str(s) => !s.is_empty(),
            Val::Int(i) => i != 0,
            Val::Bool(b) => b,
            Val::Double(d) => d != 0.0,
            Val::Bytes(b) => !b.is_empty(),
            Val::Complex => true,
        }
    }
}

pub fn utf8(b: &[u8]) -> Result<&str, Bad> {
    std::str::from_utf8(b).map_err(|_| "invalid UTF-8")
}

/// Fold one encoded `AnyValue` into `v` (a repeated field merges; the last oneof member wins).
pub fn any_value<'a>(buf: &'a [u8], v: &mut Val<'a>) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (f, wt) = r.tag()?;
        match (f, wt) {
            (1, LEN) => *v = Val::Str(utf8(r.bytes()?)?),
            (2, VARINT) => *v = Val::Bool(r.varint()? != 0),
            (3, VARINT) => *v = Val::Int(r.varint()? as i64),
            (4, FIXED64) => *v = Val::Double(f64::from_bits(r.fixed64()?)),
            (5, LEN) | (6, LEN) => {
                r.bytes()?;
                *v = Val::Complex
            }
            (7, LEN) => *v = Val::Bytes(r.bytes()?),
            _ => r.skip(wt)?,
        }
    }
    Ok(())
}

/// The key of one encoded `KeyValue` (the last one given wins, as in protobuf).
pub fn kv_key(buf: &[u8]) -> Result<&[u8], Bad> {
    let mut r = Reader::new(buf);
    let mut key: &[u8] = b"";
    while !r.done() {
        let (f, wt) = r.tag()?;
        if (f, wt) == (1, LEN) {
            key = r.bytes()?;
        } else {
            r.skip(wt)?;
        }
    }
    Ok(key)
}

/// The value of one encoded `KeyValue` (every occurrence merged in order).
pub fn kv_value(buf: &[u8]) -> Result<Val<'_>, Bad> {
    let mut r = Reader::new(buf);
    let mut v = Val::None;
    while !r.done() {
        let (f, wt) = r.tag()?;
        if (f, wt) == (2, LEN) {
            any_value(r.bytes()?, &mut v)?;
        } else {
            r.skip(wt)?;
        }
    }
    Ok(v)
}
