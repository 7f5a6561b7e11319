//! A fast decoder of JSON lines into flat records: every column a string, an integer, a
//! float, a boolean or a timestamp (no `ROW`s or arrays), as most event streams are.
//!
//! Arrow's JSON decoder first writes every token of a batch to a tape, then builds the
//! columns from the tape, which for a flat record costs about as much again as the parsing.
//! This decoder parses each line straight into its columns instead, and decodes only the
//! common case itself: one object on one line, strict JSON, strings without escapes,
//! numbers in range; escapes in values, but not in keys, and no UTF-16 surrogate pairs
//! (Arrow joins some of those wrongly, and this decoder must agree with it). Any other line
//! (a type conflict, a syntax error, a duplicate key...) is handed whole to an Arrow decoder built as [`JsonDecoder`](super::json) builds
//! it, so every line decodes, or fails, exactly as Arrow decodes it alone. The one difference:
//! a record must end on the line it starts on (as Flink reads JSON lines), where Arrow would
//! read on across line breaks.
//!
//! It is used only without `json.fail-on-missing-field`, whose check it does not make.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch,
    RecordBatchOptions, StringBuilder,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::reader::Decoder;

use super::json::build_decoder;
use super::lines::RecordDecoder;

/// Nesting deeper than this, in the value of a key that is not a column, is left to Arrow.
const MAX_DEPTH: u32 = 64;

/// How many members of a record the key cache remembers.
const MAX_LEARNED: usize = 256;

/// The bytes of a JSON number as Arrow's tokenizer takes them: a '-' or digit, then these.
const NUMBER: [bool; 256] = number_bytes();

const fn number_bytes() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        table[b as usize] = true;
        b += 1;
    }
    table[b'-' as usize] = true;
    table[b'+' as usize] = true;
    table[b'.' as usize] = true;
    table[b'e' as usize] = true;
    table[b'E' as usize] = true;
    table
}

/// Whether every column of `schema` is of a type the decoder reads (and the names differ).
pub fn supports(schema: &Schema) -> bool {
    let fields = schema.fields();
    let unique = fields
        .iter()
        .enumerate()
        .all(|(i, f)| fields[..i].iter().all(|g| g.name() != f.name()));
    unique && fields.iter().all(|f| kind(f.data_type()).is_some())
}

/// How a column's values are parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    I8,
    I16,
    I32,
    /// 64-bit integers and timestamps, as Arrow reads both from a number.
    I64,
    F32,
    F64,
    Bool,
}

fn kind(data_type: &DataType) -> Option<Kind> {
    Some(match data_type {
        DataType::Utf8 => Kind::Str,
        DataType::Int8 => Kind::I8,
        DataType::Int16 => Kind::I16,
        DataType::Int32 => Kind::I32,
        DataType::Int64 | DataType::Timestamp(_, _) => Kind::I64,
        DataType::Float32 => Kind::F32,
        DataType::Float64 => Kind::F64,
        DataType::Boolean => Kind::Bool,
        _ => return None,
    })
}

/// A column's value in the row being parsed.
#[derive(Debug, Clone, Copy)]
enum Slot<'a> {
    Absent,
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(&'a str),
    /// A string with escapes, decoded into the line's scratch text at this range.
    Unescaped(u32, u32),
}

/// The builder of a column; integers and floats are cast to the column's type at the end
/// (exactly: they were parsed in that type).
enum Builder {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
}

impl Builder {
    fn new(kind: Kind, capacity: usize) -> Self {
        match kind {
            Kind::Str => Builder::Str(StringBuilder::with_capacity(capacity, capacity * 8)),
            Kind::I8 | Kind::I16 | Kind::I32 | Kind::I64 => {
                Builder::Int(Int64Builder::with_capacity(capacity))
            }
            Kind::F32 | Kind::F64 => Builder::Float(Float64Builder::with_capacity(capacity)),
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
        }
    }

    fn append(&mut self, slot: Slot<'_>, scratch: &str) {
        match (self, slot) {
            (Builder::Str(b), Slot::Text(v)) => b.append_value(v),
            (Builder::Str(b), Slot::Unescaped(from, to)) => {
                b.append_value(&scratch[from as usize..to as usize])
            }
            (Builder::Int(b), Slot::Int(v)) => b.append_value(v),
            (Builder::Float(b), Slot::Float(v)) => b.append_value(v),
            (Builder::Bool(b), Slot::Bool(v)) => b.append_value(v),
            (Builder::Str(b), _) => b.append_null(),
            (Builder::Int(b), _) => b.append_null(),
            (Builder::Float(b), _) => b.append_null(),
            (Builder::Bool(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Str(b) => ArrayBuilder::finish(b),
            Builder::Int(b) => ArrayBuilder::finish(b),
            Builder::Float(b) => ArrayBuilder::finish(b),
            Builder::Bool(b) => ArrayBuilder::finish(b),
        }
    }
}

/// A member of the previous records: its key, and the column it names (None: not one).
/// Records of a stream mostly list their keys in the same order, so a key is first compared
/// with the key at its position in the record before, which needs no search for its end.
struct Learned {
    quoted: Vec<u8>,
    column: Option<usize>,
}

/// The column names and the keys learned.
struct Keys {
    names: Vec<Vec<u8>>,
    order: Vec<Learned>,
}

impl Keys {
    /// Remembers the key of the `member`-th member, with its closing quote.
    fn learn(&mut self, member: usize, key: &[u8], column: Option<usize>) {
        if let Some(learned) = self.order.get_mut(member) {
            learned.quoted.clear();
            learned.quoted.extend_from_slice(key);
            learned.quoted.push(b'"');
            learned.column = column;
        } else if member == self.order.len() && member < MAX_LEARNED {
            let quoted = [key, b"\""].concat();
            self.order.push(Learned { quoted, column });
        }
    }
}

/// Whether `a` equals `b`: for short keys, faster than a call to `memcmp`.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes JSON lines of flat records into batches of a schema that [`supports`] accepts.
pub struct FlatJsonDecoder {
    schema: SchemaRef,
    batch_size: usize,
    kinds: Vec<Kind>,
    /// The columns that must not be NULL, if any.
    required: Vec<usize>,
    keys: Keys,
    builders: Vec<Builder>,
    /// Rows in `builders`.
    built_rows: usize,
    /// Batches finished before the rows in `builders`, in order.
    segments: Vec<RecordBatch>,
    segment_rows: usize,
    /// Decodes the lines the fast path leaves; built when first needed.
    fallback: Option<Decoder>,
    failed_record: Option<usize>,
    /// The decoded text of the current line's strings with escapes.
    scratch: String,
}

impl FlatJsonDecoder {
    pub fn new(schema: SchemaRef, batch_size: usize) -> Result<Self, ArrowError> {
        if !supports(&schema) {
            return Err(ArrowError::InvalidArgumentError(
                "the flat JSON decoder reads only strings, numbers, booleans and timestamps".into(),
            ));
        }
        let fields = schema.fields();
        let kinds: Vec<Kind> = fields.iter().filter_map(|f| kind(f.data_type())).collect();
        let batch_size = batch_size.max(1);
        Ok(Self {
            builders: kinds.iter().map(|&k| Builder::new(k, batch_size)).collect(),
            required: (0..fields.len())
                .filter(|&i| !fields[i].is_nullable())
                .collect(),
            keys: Keys {
                names: fields
                    .iter()
                    .map(|f| f.name().as_bytes().to_vec())
                    .collect(),
                order: Vec::new(),
            },
            kinds,
            schema,
            batch_size,
            built_rows: 0,
            segments: Vec::new(),
            segment_rows: 0,
            fallback: None,
            failed_record: None,
            scratch: String::new(),
        })
    }

    /// Decodes the line at `buf[start..]` on the fast path; returns where the next line
    /// starts, or None when the line must be left to Arrow.
    fn fast_line<'a>(
        &mut self,
        buf: &'a [u8],
        start: usize,
        slots: &mut [Slot<'a>],
    ) -> Option<usize> {
        self.scratch.clear();
        let mut parser = Parser {
            buf,
            pos: start,
            slots,
            kinds: &self.kinds,
            keys: &mut self.keys,
            scratch: &mut self.scratch,
        };
        parser.skip_ws();
        if parser.at_line_end() {
            return Some(parser.line_end());
        }
        parser.slots.fill(Slot::Absent);
        parser.record()?;
        parser.skip_ws();
        if !parser.at_line_end() {
            return None;
        }
        let end = parser.line_end();
        let missing = |&i: &usize| matches!(slots[i], Slot::Absent | Slot::Null);
        if self.required.iter().any(missing) {
            return None;
        }
        for (builder, slot) in self.builders.iter_mut().zip(slots.iter()) {
            builder.append(*slot, &self.scratch);
        }
        self.built_rows += 1;
        Some(end)
    }

    /// Decodes the line at `buf[start..]` with Arrow; returns where the next line starts.
    fn fallback_line(&mut self, buf: &[u8], start: usize) -> Result<usize, ArrowError> {
        let end = memchr::memchr(b'\n', &buf[start..]).map_or(buf.len(), |i| start + i + 1);
        if let Err(error) = self.decode_with_arrow(&buf[start..end]) {
            let at = self.fallback.as_ref().map_or(0, Decoder::len);
            self.failed_record = Some(self.buffered_rows() + at.max(1));
            self.fallback = None;
            return Err(error);
        }
        Ok(end)
    }

    fn decode_with_arrow(&mut self, mut line: &[u8]) -> Result<(), ArrowError> {
        loop {
            let decoder = match &mut self.fallback {
                Some(decoder) => decoder,
                None => self
                    .fallback
                    .insert(build_decoder(&self.schema, self.batch_size)?),
            };
            let consumed = decoder.decode(line)?;
            line = &line[consumed..];
            if let Some(batch) = decoder.flush()? {
                self.finish_builders(0)?;
                self.segment_rows += batch.num_rows();
                self.segments.push(batch);
            }
            if line.is_empty() {
                return Ok(());
            }
        }
    }

    /// Moves the rows in the builders to a segment; the next builders start with room for
    /// `capacity` rows.
    fn finish_builders(&mut self, capacity: usize) -> Result<(), ArrowError> {
        if self.built_rows == 0 {
            return Ok(());
        }
        let mut columns = Vec::with_capacity(self.builders.len());
        for ((builder, &kind), field) in self
            .builders
            .iter_mut()
            .zip(&self.kinds)
            .zip(self.schema.fields())
        {
            let array = std::mem::replace(builder, Builder::new(kind, capacity)).finish();
            columns.push(match array.data_type() == field.data_type() {
                true => array,
                false => cast(&array, field.data_type())?,
            });
        }
        // The row count makes a batch of no columns (a count of rows) too.
        let rows = std::mem::take(&mut self.built_rows);
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let schema = Arc::clone(&self.schema);
        self.segments.push(RecordBatch::try_new_with_options(
            schema, columns, &options,
        )?);
        self.segment_rows += rows;
        Ok(())
    }
}

impl RecordDecoder for FlatJsonDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError> {
        let mut slots = vec![Slot::Absent; self.kinds.len()];
        let mut pos = 0;
        while pos < buf.len() && self.buffered_rows() < self.batch_size {
            pos = match self.fast_line(buf, pos, &mut slots) {
                Some(next) => next,
                None => self.fallback_line(buf, pos)?,
            };
        }
        Ok(pos)
    }

    fn buffered_rows(&self) -> usize {
        self.segment_rows + self.built_rows
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        self.finish_builders(self.batch_size)?;
        self.segment_rows = 0;
        let mut segments = std::mem::take(&mut self.segments);
        match segments.len() {
            0 | 1 => Ok(segments.pop()),
            _ => concat_batches(&self.schema, &segments).map(Some),
        }
    }

    fn reset(&mut self) -> Result<(), ArrowError> {
        // The builders hold whole rows only (a line is appended once it has parsed), so
        // empty ones are clean: the reader resets after every chunk, mostly after a flush.
        if self.built_rows > 0 {
            for (builder, &kind) in self.builders.iter_mut().zip(&self.kinds) {
                *builder = Builder::new(kind, self.batch_size);
            }
        }
        self.built_rows = 0;
        self.segments.clear();
        self.segment_rows = 0;
        self.failed_record = None;
        Ok(())
    }

    fn failed_record(&self) -> Option<usize> {
        self.failed_record
    }
}

/// Parses one line on the fast path; every method returns None where it must give up.
struct Parser<'a, 'd> {
    buf: &'a [u8],
    pos: usize,
    slots: &'d mut [Slot<'a>],
    kinds: &'d [Kind],
    keys: &'d mut Keys,
    scratch: &'d mut String,
}

impl<'a> Parser<'a, '_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    /// Whitespace within a line: a line break ends the record.
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn at_line_end(&self) -> bool {
        matches!(self.peek(), None | Some(b'\n'))
    }

    /// Where the next line starts, at the end of this one.
    fn line_end(&self) -> usize {
        (self.pos + 1).min(self.buf.len())
    }

    /// An object whose members fill the slots.
    fn record(&mut self) -> Option<()> {
        self.expect(b'{')?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(());
        }
        let mut member = 0;
        loop {
            self.expect(b'"')?;
            let column = self.key(member)?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            match column {
                Some(column) => self.value(column)?,
                None => self.skip_value(0)?,
            }
            self.skip_ws();
            match self.next()? {
                b',' => self.skip_ws(),
                b'}' => return Some(()),
                _ => return None,
            }
            member += 1;
        }
    }

    /// After a key's opening quote: the column the key names, if any.
    fn key(&mut self, member: usize) -> Option<Option<usize>> {
        if let Some(learned) = self.keys.order.get(member) {
            let end = self.pos + learned.quoted.len();
            if self
                .buf
                .get(self.pos..end)
                .is_some_and(|b| same(b, &learned.quoted))
            {
                self.pos = end;
                return Some(learned.column);
            }
        }
        let key = self.string()?;
        let column = self.keys.names.iter().position(|name| same(name, key));
        self.keys.learn(member, key, column);
        Some(column)
    }

    /// A value for `column`, which must not have one yet.
    fn value(&mut self, column: usize) -> Option<()> {
        if !matches!(self.slots[column], Slot::Absent) {
            return None;
        }
        let kind = self.kinds[column];
        self.slots[column] = match self.peek()? {
            b'"' if kind == Kind::Str => {
                self.pos += 1;
                match self.string() {
                    Some(text) => Slot::Text(std::str::from_utf8(text).ok()?),
                    None => {
                        let (from, to) = self.unescaped()?;
                        Slot::Unescaped(u32::try_from(from).ok()?, u32::try_from(to).ok()?)
                    }
                }
            }
            b'-' | b'0'..=b'9' => number(kind, self.number())?,
            b't' => self.literal(b"true").and_then(|()| boolean(kind, true))?,
            b'f' => self.literal(b"false").and_then(|()| boolean(kind, false))?,
            b'n' => self.literal(b"null").map(|()| Slot::Null)?,
            _ => return None,
        };
        Some(())
    }

    /// Steps over the value of a key that is not a column, checking it is strict JSON.
    fn skip_value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                if self.string().is_none() {
                    let (from, _) = self.unescaped()?;
                    self.scratch.truncate(from);
                }
                Some(())
            }
            b'-' | b'0'..=b'9' => {
                self.number();
                Some(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'{' if depth < MAX_DEPTH => self.skip_container(b'}', true, depth + 1),
            b'[' if depth < MAX_DEPTH => self.skip_container(b']', false, depth + 1),
            _ => None,
        }
    }

    /// Steps over an object (with `keyed`) or an array, at its opening bracket.
    fn skip_container(&mut self, close: u8, keyed: bool, depth: u32) -> Option<()> {
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Some(());
        }
        loop {
            if keyed {
                self.expect(b'"')?;
                self.string()?;
                self.skip_ws();
                self.expect(b':')?;
                self.skip_ws();
            }
            self.skip_value(depth)?;
            self.skip_ws();
            match self.next()? {
                b',' => self.skip_ws(),
                b if b == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// After an opening quote: the string's bytes, up to its closing quote. The fast path
    /// takes strings without escapes and control bytes only, and in valid UTF-8.
    fn string(&mut self) -> Option<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        let len = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[len] != b'"' {
            return None;
        }
        let text = &rest[..len];
        // Branch-free, so that it vectorises: bit 7 for a byte >= 0x80, bit 0 for a control.
        let flags = text
            .iter()
            .fold(0u8, |acc, &b| acc | (b & 0x80) | u8::from(b < 0x20));
        if flags & 1 != 0 || (flags != 0 && std::str::from_utf8(text).is_err()) {
            return None;
        }
        self.pos += len + 1;
        Some(text)
    }

    /// After an opening quote, a string with escapes (or one [`Parser::string`] refused):
    /// decodes it onto the scratch text and returns its range there. Escapes decode as
    /// Arrow decodes them; surrogate pairs, control bytes and malformed escapes are left to
    /// Arrow. Each stretch between escapes is checked as UTF-8 on its own, which is the same
    /// as checking the whole, since an escape always writes whole characters.
    fn unescaped(&mut self) -> Option<(usize, usize)> {
        let from = self.scratch.len();
        loop {
            let rest = &self.buf[self.pos..];
            let len = memchr::memchr2(b'"', b'\\', rest)?;
            let raw = &rest[..len];
            if raw.iter().any(|&b| b < 0x20) {
                return None;
            }
            self.scratch.push_str(std::str::from_utf8(raw).ok()?);
            self.pos += len + 1;
            if rest[len] == b'"' {
                return Some((from, self.scratch.len()));
            }
            let decoded = match self.next()? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                // None for a surrogate: a pair, or a lone half, is Arrow's to decode.
                b'u' => char::from_u32(self.hex4()?)?,
                _ => return None,
            };
            self.scratch.push(decoded);
        }
    }

    /// Four hexadecimal digits of a `\u` escape.
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.buf.get(self.pos..self.pos + 4)?;
        let mut value = 0;
        for &d in digits {
            value = value << 4 | char::from(d).to_digit(16)?;
        }
        self.pos += 4;
        Some(value)
    }

    /// A number token, at its first byte ('-' or a digit).
    fn number(&mut self) -> &'a [u8] {
        let start = self.pos;
        let rest = &self.buf[start + 1..];
        let len = rest
            .iter()
            .position(|&b| !NUMBER[b as usize])
            .unwrap_or(rest.len());
        self.pos = start + 1 + len;
        &self.buf[start..self.pos]
    }

    fn literal(&mut self, literal: &[u8]) -> Option<()> {
        let end = self.pos + literal.len();
        (self.buf.get(self.pos..end)? == literal).then(|| self.pos = end)
    }
}

/// A number token's value for a column of `kind`: as Arrow parses it, where the first
/// parse Arrow tries succeeds.
fn number(kind: Kind, token: &[u8]) -> Option<Slot<'_>> {
    use lexical_core::parse;
    Some(match kind {
        Kind::Str => Slot::Text(std::str::from_utf8(token).ok()?),
        Kind::I8 => Slot::Int(parse::<i8>(token).ok()?.into()),
        Kind::I16 => Slot::Int(parse::<i16>(token).ok()?.into()),
        Kind::I32 => Slot::Int(parse::<i32>(token).ok()?.into()),
        Kind::I64 => Slot::Int(parse::<i64>(token).ok()?),
        Kind::F32 => Slot::Float(parse::<f32>(token).ok()?.into()),
        Kind::F64 => Slot::Float(parse::<f64>(token).ok()?),
        Kind::Bool => return None,
    })
}

/// `true` or `false` for a column of `kind`: a string column takes it as its text.
fn boolean(kind: Kind, value: bool) -> Option<Slot<'static>> {
    match kind {
        Kind::Bool => Some(Slot::Bool(value)),
        Kind::Str => Some(Slot::Text(if value { "true" } else { "false" })),
        _ => None,
    }
}
