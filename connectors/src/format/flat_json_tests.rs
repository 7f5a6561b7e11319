//! Tests of [`FlatJsonDecoder`]: every line, decoded alone or in bulk, gives what Arrow's
//! decoder (as [`JsonDecoder`] builds it) gives, and [`LineReader`] names bad lines with it.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Fields, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use super::flat_json::{supports, FlatJsonDecoder};
use super::json::{JsonDecoder, JsonOptions};
use super::lines::{LineReader, ReadError, RecordDecoder};

/// A column of every kind; `n` is NOT NULL when `required`.
fn schema(required: bool) -> SchemaRef {
    let tz = DataType::Timestamp(TimeUnit::Microsecond, Some("+02:00".into()));
    Arc::new(Schema::new(vec![
        Field::new("s", DataType::Utf8, true),
        Field::new("i8", DataType::Int8, true),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("n", DataType::Int64, !required),
        Field::new("f", DataType::Float32, true),
        Field::new("d", DataType::Float64, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("tz", tz, true),
    ]))
}

fn arrow_decoder(schema: &SchemaRef, batch_size: usize) -> JsonDecoder {
    JsonDecoder::new(Arc::clone(schema), batch_size, &JsonOptions::default()).unwrap()
}

fn flat_decoder(schema: &SchemaRef, batch_size: usize) -> FlatJsonDecoder {
    FlatJsonDecoder::new(Arc::clone(schema), batch_size).unwrap()
}

/// Decodes `line` alone, as `LineReader` does with a line it suspects.
fn alone(decoder: &mut dyn RecordDecoder, line: &[u8]) -> Result<Option<RecordBatch>, ArrowError> {
    decoder.reset()?;
    let consumed = decoder.decode(line)?;
    assert_eq!(consumed, line.len(), "{:?}", String::from_utf8_lossy(line));
    decoder.flush()
}

/// Asserts both decoders agree on `line` alone; returns the rows Arrow made of it.
fn assert_same(flat: &mut FlatJsonDecoder, arrow: &mut JsonDecoder, line: &[u8]) -> usize {
    let text = String::from_utf8_lossy(line);
    match (alone(flat, line), alone(arrow, line)) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "line {text:?}");
            b.map_or(0, |b| b.num_rows())
        }
        (Err(_), Err(_)) => {
            assert_eq!(flat.failed_record(), arrow.failed_record(), "line {text:?}");
            0
        }
        (a, b) => panic!("line {text:?}: flat {a:?}, arrow {b:?}"),
    }
}

const HAND_WRITTEN: &[&str] = &[
    r#"{"s":"a","i8":-128,"i16":32767,"i32":-2147483648,"n":9223372036854775807}"#,
    r#"{"f":1.5,"d":-2.5e-3,"b":true,"ts":1699999998790,"tz":-1}"#,
    r#"{"i8":128}"#,
    r#"{"i8":1.0}"#,
    r#"{"i32":1e3}"#,
    r#"{"n":9223372036854775808}"#,
    r#"{"n":"12"}"#,
    r#"{"f":3.4028236e38}"#,
    r#"{"d":1e400,"f":-0}"#,
    r#"{"d":1-2}"#,
    r#"{"s":1-2e,"b":false}"#,
    r#"{"s":-0.50E+3}"#,
    r#"{"s":true,"d":null}"#,
    r#"{"s":"x","s":"y"}"#,
    r#"{"s":null,"s":"y"}"#,
    r#"{"s":"a\"b","n":1}"#,
    r#"{"s":"\u00e9\ud83d\ude00"}"#,
    r#"{"s":"\uD840\uDC00","n":1}"#,
    r#"{"s":"a\\b\/c\u0041\n","n":1}"#,
    r#"{"x":"skipped \"quoted\" \u00e9","s":"\t","n":1}"#,
    r#"{"s":"bad \q escape"}"#,
    "{\"s\":\"tab\there\"}",
    "{\"s\":\"caf\u{e9} \u{65e5}\u{672c}\"}",
    r#"{"ts":"2023-11-14T22:13:20Z","tz":"2023-11-14 22:13:20"}"#,
    r#"{"ts":1.5e3}"#,
    r#"{"b":1}"#,
    r#"{"s":{"a":1}}"#,
    r#"{"x":{"a":[1,{"b":null}],"c":"d"},"n":2}"#,
    r#"{"x":[1 2],"n":2}"#,
    r#"{"x":[1,,2],"n":2}"#,
    r#"{"x":[],"y":{},"n":2}"#,
    r#"{"n":1,}"#,
    r#"{,"n":1}"#,
    r#"{"n":1 "s":"a"}"#,
    r#"{"n" 1}"#,
    r#"{"n":1}{"n":2}"#,
    r#"{"n":1} {"n":2} {"n":3}"#,
    r#"{"n":1} x"#,
    r#"{"n":tru}"#,
    r#"{"n":nul}"#,
    r#"{"n":1"#,
    r#"{"n":"#,
    r#"{"s":"abc"#,
    r#"{"s":"\x"}"#,
    r#"{"s":"a"}"#,
    r#"{ "s" : "a" , "n" : 1 }"#,
    "\t {\"n\":1}\t \r",
    "{}",
    "{ }",
    "[1,2]",
    "null",
    "1",
    "\"x\"",
    "",
    "   ",
    "\r",
    "\u{c}",
    "{\"\":1,\"n\":3}",
    "{\"s \":1,\"N\":3}",
];

#[test]
fn hand_written_lines_decode_alone_as_arrow_decodes_them() {
    for required in [false, true] {
        let schema = schema(required);
        let (mut flat, mut arrow) = (flat_decoder(&schema, 16), arrow_decoder(&schema, 16));
        for line in HAND_WRITTEN {
            for ending in ["", "\n", "\r\n"] {
                assert_same(&mut flat, &mut arrow, format!("{line}{ending}").as_bytes());
            }
        }
        let bad_utf8 = [b"{\"s\":\"a".as_slice(), &[0xff], b"\"}\n"].concat();
        assert_same(&mut flat, &mut arrow, &bad_utf8);
        let bad_key = [b"{\"".as_slice(), &[0xc3], b"\":1,\"n\":1}\n"].concat();
        assert_same(&mut flat, &mut arrow, &bad_key);
        let deep = format!("{{\"x\":{}1{},\"n\":1}}", "[".repeat(100), "]".repeat(100));
        assert_same(&mut flat, &mut arrow, deep.as_bytes());
    }
}

#[test]
fn a_schema_of_no_columns_counts_rows() {
    let schema: SchemaRef = Arc::new(Schema::empty());
    let (mut flat, mut arrow) = (flat_decoder(&schema, 4), arrow_decoder(&schema, 4));
    for line in [
        r#"{"a":1,"b":[{}]}"#,
        "{}",
        r#"{"a":"\n"}"#,
        "{\"a\":1}\n{}\n\n{}",
    ] {
        assert_same(&mut flat, &mut arrow, line.as_bytes());
    }
    let buf = b"{}\n{\"a\":1}\n{\"a\":\"\\n\"}\n{}\n{}\n";
    assert_eq!(bulk(&mut flat, buf, 4), bulk(&mut arrow, buf, 4));
}

#[test]
fn random_lines_decode_alone_as_arrow_decodes_them() {
    for required in [false, true] {
        let schema = schema(required);
        let (mut flat, mut arrow) = (flat_decoder(&schema, 64), arrow_decoder(&schema, 64));
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let rows: usize = (0..5000)
            .map(|_| assert_same(&mut flat, &mut arrow, &random_line(&mut rng)))
            .sum();
        assert!(rows > 1000, "only {rows} lines decoded");
    }
}

#[test]
fn valid_lines_decode_in_bulk_as_arrow_decodes_them() {
    let schema = schema(false);
    let mut arrow = arrow_decoder(&schema, 64);
    let mut rng = Rng(0x0b01_c0de);
    let mut buf = Vec::new();
    while buf.len() < 300_000 {
        let mut line = random_line(&mut rng);
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        let blank = line.iter().all(u8::is_ascii_whitespace);
        if blank || alone(&mut arrow, &line).is_ok_and(|b| b.is_some_and(|b| b.num_rows() == 1)) {
            buf.extend_from_slice(&line);
        }
    }
    for batch_size in [1, 7, 1000, 100_000] {
        let flat = bulk(&mut flat_decoder(&schema, batch_size), &buf, batch_size);
        let arrow = bulk(&mut arrow_decoder(&schema, batch_size), &buf, batch_size);
        assert_eq!(flat.len(), arrow.len());
        for (a, b) in flat.iter().zip(&arrow) {
            assert_eq!(a, b, "batch size {batch_size}");
        }
    }
}

/// Decodes `buf` in bulk as `LineReader` does when all goes well.
fn bulk(decoder: &mut dyn RecordDecoder, buf: &[u8], batch_size: usize) -> Vec<RecordBatch> {
    let (mut batches, mut pos) = (Vec::new(), 0);
    while pos < buf.len() {
        let consumed = decoder.decode(&buf[pos..]).unwrap();
        assert!(consumed > 0 || decoder.buffered_rows() >= batch_size);
        pos += consumed;
        if decoder.buffered_rows() >= batch_size {
            batches.extend(decoder.flush().unwrap());
        }
    }
    batches.extend(decoder.flush().unwrap());
    batches
}

#[test]
fn a_record_must_end_on_its_line() {
    let schema = schema(false);
    let line = b"{\"n\":\n1}\n";
    assert!(alone(&mut flat_decoder(&schema, 8), line).is_err());
    assert!(alone(&mut arrow_decoder(&schema, 8), line).is_ok());
}

#[test]
fn supports_flat_schemas_only() {
    assert!(supports(&schema(true)));
    let row = DataType::Struct(Fields::from(vec![Field::new("a", DataType::Utf8, true)]));
    for other in [
        row,
        DataType::LargeUtf8,
        DataType::Decimal128(10, 2),
        DataType::Date32,
    ] {
        assert!(!supports(&Schema::new(vec![Field::new("x", other, true)])));
    }
    let twice = Schema::new(vec![
        Field::new("x", DataType::Utf8, true),
        Field::new("x", DataType::Int64, true),
    ]);
    assert!(!supports(&twice));
}

fn line_reader(text: &str, ignore: bool) -> LineReader<Cursor<Vec<u8>>> {
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    let decoder = Box::new(FlatJsonDecoder::new(Arc::clone(&schema), 7).unwrap());
    LineReader::new(
        Cursor::new(text.as_bytes().to_vec()),
        decoder,
        schema,
        7,
        ignore,
    )
}

fn numbers(reader: &mut LineReader<Cursor<Vec<u8>>>) -> Result<Vec<Option<i64>>, ReadError> {
    let mut out = Vec::new();
    while let Some(batch) = reader.next_batch()? {
        out.extend(batch.column(0).as_primitive::<Int64Type>().iter());
    }
    Ok(out)
}

#[test]
fn line_reader_names_a_malformed_line_and_skips_it_when_told() {
    let mut text: String = (0..300).map(|n| format!("{{\"n\": {n}}}\n")).collect();
    text.push_str("{\"n\": oops}\n{\"n\": 1}");
    match numbers(&mut line_reader(&text, false)) {
        Err(ReadError::Malformed { line, .. }) => assert_eq!(line, 301),
        other => panic!("expected a malformed line, got {other:?}"),
    }
    let mut reader = line_reader(&text, true);
    assert_eq!(numbers(&mut reader).unwrap().len(), 301);
    assert_eq!(reader.take_dropped(), 1);
}

#[test]
fn line_reader_finds_a_type_conflict_among_lines_arrow_decodes() {
    // Escapes and a float for an integer go to Arrow; the string for a number fails there.
    let text = "{\"n\":1}\n\n{\"s\":\"\\\"\",\"n\":2}\n{\"n\":3.0}\n{\"n\":\"x\"}\n{\"n\":5}\n";
    match numbers(&mut line_reader(text, false)) {
        Err(ReadError::Malformed { line, .. }) => assert_eq!(line, 5),
        other => panic!("expected a malformed line, got {other:?}"),
    }
    let mut reader = line_reader(text, true);
    let expected = [1, 2, 3, 5].map(Some);
    assert_eq!(numbers(&mut reader).unwrap(), expected);
    assert_eq!(reader.take_dropped(), 1);
}

/// A small seeded generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const COLUMNS: &[&str] = &["s", "i8", "i16", "i32", "n", "f", "d", "b", "ts", "tz"];
const OTHER_KEYS: &[&str] = &["tx_hash", "x", "caf\u{e9}", "N", "", "s ", "block"];
const ODD_NUMBERS: &[&str] = &[
    "127",
    "128",
    "-128",
    "-129",
    "32768",
    "2147483648",
    "9223372036854775807",
    "9223372036854775808",
    "123456789012345678901234567890",
    "1e3",
    "-2.5E-3",
    "1e+2",
    "1E400",
    "-0",
    "0.0",
    "1.0",
    "1.",
    "01",
    "1-2",
    "-",
    "1e",
    "--1",
    "1..2",
    "3.4028236e38",
    "1.0000001",
    "0.1",
    "5e-324",
];
const STRING_PIECES: &[&[u8]] = &[
    b"abc",
    b"BTC",
    b"caf\xc3\xa9",
    b"\xe6\x97\xa5",
    b"\\n",
    b"\\\"",
    b"\\u00e9",
    b"\\/",
    b"\\ud83d\\ude00",
    b"\\uD840\\uDC00",
    b"\\udc00",
    b"\\ud800x",
    b"\\u00E9\\u0000",
    b"\\b\\f\\r\\t\\\\",
    b"\\u12",
    b"\\uZZZZ",
    b"\t",
    b"\xff",
    b"\xc3",
    b"\\x",
    b"2023-11-14T22:13:20Z",
    b"12",
    b"true",
    b" ",
    b"",
];

fn ws(rng: &mut Rng) -> &'static str {
    if rng.chance(85) {
        return "";
    }
    rng.pick(&[" ", "\t", "  \r", "\r", " \t "])
}

fn number(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => (rng.below(200) as i64 - 100).to_string(),
        1 => (rng.next() as i64 >> rng.below(64)).to_string(),
        2 => format!("{}.{}", rng.below(1000) as i64 - 500, rng.below(100_000)),
        3 => format!("{}e{}", rng.below(100), rng.below(40) as i64 - 20),
        _ => rng.pick(ODD_NUMBERS).to_string(),
    }
}

fn string(rng: &mut Rng) -> Vec<u8> {
    let mut s = vec![b'"'];
    for _ in 0..rng.below(4) {
        let piece = match rng.chance(70) {
            true => rng.pick(&STRING_PIECES[..4]),
            false => rng.pick(STRING_PIECES),
        };
        s.extend_from_slice(piece);
    }
    s.push(b'"');
    s
}

fn value(rng: &mut Rng, depth: usize) -> Vec<u8> {
    match rng.below(20) {
        0..=6 => number(rng).into_bytes(),
        7..=11 => string(rng),
        12 => b"true".to_vec(),
        13 => b"false".to_vec(),
        14 | 15 => b"null".to_vec(),
        _ if depth > 2 => b"0".to_vec(),
        16 | 17 => {
            let items: Vec<Vec<u8>> = (0..rng.below(4)).map(|_| value(rng, depth + 1)).collect();
            [b"[".to_vec(), items.join(&b","[..]), b"]".to_vec()].concat()
        }
        _ => {
            let members: Vec<Vec<u8>> = (0..rng.below(4))
                .map(|_| [string(rng), b":".to_vec(), value(rng, depth + 1)].concat())
                .collect();
            [b"{".to_vec(), members.join(&b","[..]), b"}".to_vec()].concat()
        }
    }
}

/// A value that fits column `name` most of the time.
fn column_value(rng: &mut Rng, name: &str) -> Vec<u8> {
    if rng.chance(10) {
        return value(rng, 0);
    }
    match name {
        "s" => string(rng),
        "b" => rng.pick(&["true", "false"]).as_bytes().to_vec(),
        "f" | "d" => format!("{}.{}", rng.below(2000) as i64 - 1000, rng.below(10_000)).into(),
        "i8" => (rng.below(256) as i64 - 128).to_string().into_bytes(),
        "i16" | "i32" => (rng.below(60_000) as i64 - 30_000).to_string().into_bytes(),
        _ => (rng.next() as i64 >> 20).to_string().into_bytes(),
    }
}

fn record(rng: &mut Rng) -> Vec<u8> {
    let mut keys: Vec<&str> = COLUMNS.iter().copied().filter(|_| rng.chance(60)).collect();
    keys.extend((0..rng.below(3)).map(|_| rng.pick(OTHER_KEYS)));
    if rng.chance(5) {
        keys.push(rng.pick(COLUMNS));
    }
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i + 1));
    }
    let mut line = format!("{}{{{}", ws(rng), ws(rng)).into_bytes();
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            line.extend(format!("{},{}", ws(rng), ws(rng)).bytes());
        }
        line.extend(format!("\"{key}\"{}:{}", ws(rng), ws(rng)).bytes());
        line.extend(column_value(rng, key));
    }
    line.extend(format!("{}}}{}", ws(rng), ws(rng)).bytes());
    line
}

/// Breaks a record: a byte dropped, inserted or the line cut short (never a line break).
fn mutate(rng: &mut Rng, mut line: Vec<u8>) -> Vec<u8> {
    let at = rng.below(line.len() + 1);
    match rng.below(3) {
        0 if at < line.len() => {
            line.remove(at);
        }
        1 => line.insert(at, rng.pick(b"{}[],:\"\\ x0-.e")),
        _ => line.truncate(at),
    }
    line
}

fn random_line(rng: &mut Rng) -> Vec<u8> {
    let mut line = match rng.below(100) {
        0..=4 => rng.pick(&["", " ", "\t \r", "\r"]).as_bytes().to_vec(),
        5..=19 => {
            let record = record(rng);
            mutate(rng, record)
        }
        20..=22 => [record(rng), record(rng)].concat(),
        _ => record(rng),
    };
    line.extend_from_slice(rng.pick(&[&b"\n"[..], b"\n", b"\n", b"\r\n", b""]));
    line
}
