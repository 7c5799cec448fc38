//! Go's `encoding/json` (`scanner.go`, `decode.go`, `fold.go`) as the kubelet's
//! `json.Unmarshal` of a docker config runs it: the syntax check over the whole input, then
//! walking objects member by member with strings decoded as Go decodes them. serde_json
//! differs where it matters: it rejects invalid UTF-8 and lone surrogates that Go replaces with
//! U+FFFD, and it has no case-insensitive field matching.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::utf8;

/// Whether an object key names a struct field (`decode.go`, `object`): by exact name, else by
/// `bytes.EqualFold`, which is ASCII case folding plus the two non-ASCII runes whose fold
/// orbit holds an ASCII letter (U+017F ſ with s, U+212A Kelvin sign with k).
pub fn field_matches(key: &str, field: &str) -> bool {
    let mut key_chars = key.chars();
    for f in field.chars() {
        let Some(k) = key_chars.next() else {
            return false;
        };
        let k = match k {
            '\u{17F}' => 'S',
            '\u{212A}' => 'K',
            c => c.to_ascii_uppercase(),
        };
        if k != f.to_ascii_uppercase() {
            return false;
        }
    }
    key_chars.next().is_none()
}

// ---------------------------------------------------------------------------------------------
// The syntax check (`scanner.go`), iterative so nesting cannot exhaust the stack.

/// Go's `maxNestingDepth`.
const MAX_NESTING_DEPTH: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ScanState {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// Inside `\u`, with this many hex digits read.
    InStringEscU(u8),
    Neg,
    Zero,
    One,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// Inside `true`/`false`/`null`, with this many bytes of the word read.
    Literal(&'static str, usize),
}

struct Scanner {
    state: ScanState,
    stack: Vec<Container>,
}

fn is_json_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scanner {
    /// Feeds one byte; `Err` carries Go's context phrase.
    fn step(&mut self, c: u8) -> Result<(), String> {
        use ScanState::*;
        match self.state {
            BeginValue => self.begin_value(c),
            BeginValueOrEmpty => {
                if is_json_space(c) {
                    Ok(())
                } else if c == b']' {
                    self.end_value(c)
                } else {
                    self.begin_value(c)
                }
            }
            BeginStringOrEmpty => {
                if is_json_space(c) {
                    Ok(())
                } else if c == b'}' {
                    if let Some(top) = self.stack.last_mut() {
                        *top = Container::ObjectValue;
                    }
                    self.end_value(c)
                } else {
                    self.begin_string(c)
                }
            }
            BeginString => self.begin_string(c),
            EndValue => self.end_value(c),
            EndTop => {
                if is_json_space(c) {
                    Ok(())
                } else {
                    Err("after top-level value".into())
                }
            }
            InString => {
                match c {
                    b'"' => self.state = EndValue,
                    b'\\' => self.state = InStringEsc,
                    c if c < 0x20 => return Err("in string literal".into()),
                    _ => {}
                }
                Ok(())
            }
            InStringEsc => {
                match c {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => self.state = InString,
                    b'u' => self.state = InStringEscU(0),
                    _ => return Err("in string escape code".into()),
                }
                Ok(())
            }
            InStringEscU(n) => {
                if !c.is_ascii_hexdigit() {
                    return Err("in \\u hexadecimal character escape".into());
                }
                self.state = if n == 3 {
                    InString
                } else {
                    InStringEscU(n + 1)
                };
                Ok(())
            }
            Neg => {
                match c {
                    b'0' => self.state = Zero,
                    b'1'..=b'9' => self.state = One,
                    _ => return Err("in numeric literal".into()),
                }
                Ok(())
            }
            One if c.is_ascii_digit() => Ok(()),
            One | Zero => match c {
                b'.' => {
                    self.state = Dot;
                    Ok(())
                }
                b'e' | b'E' => {
                    self.state = E;
                    Ok(())
                }
                _ => self.end_value(c),
            },
            Dot => {
                if !c.is_ascii_digit() {
                    return Err("after decimal point in numeric literal".into());
                }
                self.state = Dot0;
                Ok(())
            }
            Dot0 => match c {
                b'0'..=b'9' => Ok(()),
                b'e' | b'E' => {
                    self.state = E;
                    Ok(())
                }
                _ => self.end_value(c),
            },
            E if c == b'+' || c == b'-' => {
                self.state = ESign;
                Ok(())
            }
            E | ESign => {
                if !c.is_ascii_digit() {
                    return Err("in exponent of numeric literal".into());
                }
                self.state = E0;
                Ok(())
            }
            E0 => {
                if c.is_ascii_digit() {
                    Ok(())
                } else {
                    self.end_value(c)
                }
            }
            Literal(word, read) => {
                let want = word.as_bytes().get(read).copied().unwrap_or(b' ');
                if c != want {
                    return Err(format!(
                        "in literal {word} (expecting '{}')",
                        char::from(want)
                    ));
                }
                self.state = if read + 1 == word.len() {
                    EndValue
                } else {
                    Literal(word, read + 1)
                };
                Ok(())
            }
        }
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        use ScanState::*;
        if is_json_space(c) {
            return Ok(());
        }
        self.state = match c {
            b'{' => return self.push(BeginStringOrEmpty, Container::ObjectKey),
            b'[' => return self.push(BeginValueOrEmpty, Container::ArrayValue),
            b'"' => InString,
            b'-' => Neg,
            b'0' => Zero,
            b'1'..=b'9' => One,
            b't' => Literal("true", 1),
            b'f' => Literal("false", 1),
            b'n' => Literal("null", 1),
            _ => return Err("looking for beginning of value".into()),
        };
        Ok(())
    }

    fn push(&mut self, next: ScanState, container: Container) -> Result<(), String> {
        self.state = next;
        self.stack.push(container);
        if self.stack.len() > MAX_NESTING_DEPTH {
            return Err("exceeded max depth".into());
        }
        Ok(())
    }

    fn begin_string(&mut self, c: u8) -> Result<(), String> {
        if is_json_space(c) {
            return Ok(());
        }
        if c == b'"' {
            self.state = ScanState::InString;
            return Ok(());
        }
        Err("looking for beginning of object key string".into())
    }

    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(top) = self.stack.last().copied() else {
            self.state = ScanState::EndTop;
            return self.step(c);
        };
        if is_json_space(c) {
            self.state = ScanState::EndValue;
            return Ok(());
        }
        match (top, c) {
            (Container::ObjectKey, b':') => {
                self.set_top(Container::ObjectValue);
                self.state = ScanState::BeginValue;
                Ok(())
            }
            (Container::ObjectKey, _) => Err("after object key".into()),
            (Container::ObjectValue, b',') => {
                self.set_top(Container::ObjectKey);
                self.state = ScanState::BeginString;
                Ok(())
            }
            (Container::ObjectValue, b'}') | (Container::ArrayValue, b']') => {
                self.stack.pop();
                self.state = if self.stack.is_empty() {
                    ScanState::EndTop
                } else {
                    ScanState::EndValue
                };
                Ok(())
            }
            (Container::ObjectValue, _) => Err("after object key:value pair".into()),
            (Container::ArrayValue, b',') => {
                self.state = ScanState::BeginValue;
                Ok(())
            }
            (Container::ArrayValue, _) => Err("after array element".into()),
        }
    }

    fn set_top(&mut self, container: Container) {
        if let Some(top) = self.stack.last_mut() {
            *top = container;
        }
    }
}

/// Why a payload is not one JSON value, as Go's `SyntaxError` says it, less the character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxError {
    /// Go: `unexpected end of JSON input`.
    UnexpectedEnd,
    /// Go: `invalid character 'x' <context>`, here with the offending byte's offset instead of
    /// the byte, which may belong to a password.
    InvalidCharacter { offset: usize, context: String },
}

/// `checkValid`: `Unmarshal` scans the whole input before it decodes anything, so a syntax
/// error anywhere wins over every type error.
pub fn check_valid(b: &[u8]) -> Result<(), SyntaxError> {
    let mut scanner = Scanner {
        state: ScanState::BeginValue,
        stack: Vec::new(),
    };
    for (offset, &c) in b.iter().enumerate() {
        scanner
            .step(c)
            .map_err(|context| SyntaxError::InvalidCharacter { offset, context })?;
    }
    // Go's scanner.eof: a value that a following space would complete is complete.
    if scanner.state == ScanState::EndTop {
        return Ok(());
    }
    scanner
        .step(b' ')
        .map_err(|context| SyntaxError::InvalidCharacter {
            offset: b.len(),
            context,
        })?;
    if scanner.state == ScanState::EndTop {
        Ok(())
    } else {
        Err(SyntaxError::UnexpectedEnd)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a payload that has passed `check_valid`, one level at a time, as the decoder asks
// for it. Whatever no caller asks for is skipped without recursion.

/// The JSON kind of a value, which a Go type mismatch names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    /// The `Value` Go puts in an `UnmarshalTypeError`.
    pub fn go_name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "bool",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }
}

/// A syntax-checked payload.
#[derive(Clone, Copy)]
pub struct Doc<'a> {
    b: &'a [u8],
}

impl<'a> Doc<'a> {
    /// `b` must have passed [`check_valid`]; reading anything else gives unspecified values
    /// (never a panic).
    pub fn new(b: &'a [u8]) -> Self {
        Doc { b }
    }

    fn byte(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    pub fn ws(&self, mut i: usize) -> usize {
        while i < self.b.len() && is_json_space(self.b[i]) {
            i += 1;
        }
        i
    }

    pub fn kind(&self, i: usize) -> Kind {
        match self.byte(i) {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'"' => Kind::String,
            b't' | b'f' => Kind::Bool,
            b'n' => Kind::Null,
            _ => Kind::Number,
        }
    }

    /// Index just past the string starting at `i` (a `"`).
    fn skip_string(&self, i: usize) -> usize {
        let mut j = i + 1;
        while j < self.b.len() {
            match self.b[j] {
                b'\\' => j += 2,
                b'"' => return j + 1,
                _ => j += 1,
            }
        }
        self.b.len()
    }

    /// Index just past the value starting at `i`.
    fn skip_value(&self, i: usize) -> usize {
        match self.byte(i) {
            b'"' => self.skip_string(i),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut j = i;
                while j < self.b.len() {
                    match self.b[j] {
                        b'"' => {
                            j = self.skip_string(j);
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                return j + 1;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                self.b.len()
            }
            _ => {
                let mut j = i;
                while j < self.b.len()
                    && (self.b[j].is_ascii_alphanumeric()
                        || matches!(self.b[j], b'+' | b'-' | b'.'))
                {
                    j += 1;
                }
                j
            }
        }
    }

    /// Go's `unquoteBytes` for the string at `i`, and the index past it.
    pub fn string(&self, i: usize) -> (String, usize) {
        let end = self.skip_string(i);
        let inner = self.b.get(i + 1..end.saturating_sub(1)).unwrap_or(&[]);
        (unquote(inner), end)
    }

    pub fn members(&self, i: usize) -> Members<'a> {
        Members {
            doc: *self,
            pos: i,
            done: self.byte(i) != b'{',
        }
    }
}

/// The members of an object, in document order, as (decoded key, value start).
pub struct Members<'a> {
    doc: Doc<'a>,
    /// At the opening `{` or at the `,` after the previous member.
    pos: usize,
    done: bool,
}

impl Iterator for Members<'_> {
    type Item = (String, usize);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let doc = self.doc;
        let i = doc.ws(self.pos + 1);
        if doc.byte(i) != b'"' {
            self.done = true;
            return None;
        }
        let (key, after_key) = doc.string(i);
        let colon = doc.ws(after_key);
        let value_at = doc.ws(colon + 1);
        let after_value = doc.ws(doc.skip_value(value_at));
        self.pos = after_value;
        if doc.byte(after_value) != b',' {
            self.done = true;
        }
        Some((key, value_at))
    }
}

/// A JSON object decoded into a Go `map[string]V` (`decode.go`, `object`): each member is
/// stored with `m[key] = value`, so a key written twice keeps its last value. A Go map has no
/// order; this one keeps the order keys first appear in, so results are stable. Each store is
/// one hash lookup, keeping a pull secret's cost linear in its number of keys.
pub struct ObjectMap<V> {
    values: Vec<V>,
    positions: HashMap<String, usize>,
}

impl<V> Default for ObjectMap<V> {
    fn default() -> Self {
        ObjectMap {
            values: Vec::new(),
            positions: HashMap::new(),
        }
    }
}

impl<V> ObjectMap<V> {
    /// A repeated key overwrites the earlier value in its first position.
    pub fn insert(&mut self, key: String, value: V) {
        match self.positions.entry(key) {
            Entry::Occupied(seen) => self.values[*seen.get()] = value,
            Entry::Vacant(new) => {
                new.insert(self.values.len());
                self.values.push(value);
            }
        }
    }

    /// A `null` for the whole map: Go sets it to nil, and a later object starts a new map.
    pub fn clear(&mut self) {
        self.values.clear();
        self.positions.clear();
    }

    pub fn into_values(self) -> Vec<V> {
        self.values
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 6 || b[0] != b'\\' || b[1] != b'u' {
        return None;
    }
    let text = std::str::from_utf8(&b[2..6]).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// The body of a JSON string (between the quotes, already syntax-checked) decoded as Go does:
/// escapes resolved, a surrogate pair combined, anything else that is not valid UTF-8
/// (lone surrogates, bad bytes) replaced by U+FFFD, one per bad byte.
fn unquote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut r = 0;
    while r < s.len() {
        let c = s[r];
        if c == b'\\' {
            let Some(&e) = s.get(r + 1) else { break };
            let simple = match e {
                b'"' => Some('"'),
                b'\\' => Some('\\'),
                b'/' => Some('/'),
                b'\'' => Some('\''),
                b'b' => Some('\u{8}'),
                b'f' => Some('\u{c}'),
                b'n' => Some('\n'),
                b'r' => Some('\r'),
                b't' => Some('\t'),
                _ => None,
            };
            if let Some(ch) = simple {
                out.push(ch);
                r += 2;
                continue;
            }
            let Some(first) = hex4(&s[r..]) else { break };
            r += 6;
            if (0xD800..0xE000).contains(&first) {
                if let Some(second) = hex4(&s[r..]) {
                    if (0xD800..0xDC00).contains(&first) && (0xDC00..0xE000).contains(&second) {
                        let combined = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        out.push(char::from_u32(combined).unwrap_or(char::REPLACEMENT_CHARACTER));
                        r += 6;
                        continue;
                    }
                }
                out.push(char::REPLACEMENT_CHARACTER);
                continue;
            }
            out.push(char::from_u32(first).unwrap_or(char::REPLACEMENT_CHARACTER));
            continue;
        }
        if c < 0x80 {
            out.push(char::from(c));
            r += 1;
            continue;
        }
        let (ch, n) = utf8::decode_rune(&s[r..]);
        out.push(ch);
        r += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_valid_fails_where_go_does() {
        let invalid = |offset: usize, context: &str| SyntaxError::InvalidCharacter {
            offset,
            context: context.into(),
        };
        let cases: &[(&str, Result<(), SyntaxError>)] = &[
            ("{}", Ok(())),
            (" [1, -2.5e+3, \"x\", true, null] \n", Ok(())),
            // a bare number is complete at the end of the input
            ("12", Ok(())),
            ("", Err(SyntaxError::UnexpectedEnd)),
            (r#"{"a":{"b":"c"#, Err(SyntaxError::UnexpectedEnd)),
            (
                r#"{"a":{"b":c}}"#,
                Err(invalid(10, "looking for beginning of value")),
            ),
            (
                r#"{"a":{},}"#,
                Err(invalid(8, "looking for beginning of object key string")),
            ),
            ("{} x", Err(invalid(3, "after top-level value"))),
            (
                r#"{"a":tru"#,
                Err(invalid(8, "in literal true (expecting 'e')")),
            ),
            ("{\"a\":\"x\u{1}\"}", Err(invalid(7, "in string literal"))),
            (
                r#"{"a":1.}"#,
                Err(invalid(7, "after decimal point in numeric literal")),
            ),
            (r#"{"a":"\x"}"#, Err(invalid(7, "in string escape code"))),
            (r#"{"a" 1}"#, Err(invalid(5, "after object key"))),
        ];
        for (payload, want) in cases {
            assert_eq!(check_valid(payload.as_bytes()), *want, "{payload:?}");
        }
    }

    #[test]
    fn deep_nesting_is_rejected_without_recursion() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(20_000), "]".repeat(20_000));
        // the 10,000th '[' is one level too deep
        assert_eq!(
            check_valid(deep.as_bytes()),
            Err(SyntaxError::InvalidCharacter {
                offset: 4 + 10_000,
                context: "exceeded max depth".into(),
            })
        );
        // deep but allowed nesting in a member nobody reads is skipped iteratively
        let ok = format!(
            "{{\"x\":{}{},\"auths\":{{}}}}",
            "[".repeat(9_000),
            "]".repeat(9_000)
        );
        assert_eq!(check_valid(ok.as_bytes()), Ok(()));
        let keys: Vec<_> = Doc::new(ok.as_bytes())
            .members(0)
            .map(|(key, _)| key)
            .collect();
        assert_eq!(keys, ["x", "auths"]);
    }

    #[test]
    fn strings_decode_like_go() {
        let cases: &[(&[u8], &str)] = &[
            (br#""\u0041\u00e9\ud83d\ude00""#, "A\u{e9}\u{1F600}"),
            // a lone surrogate becomes U+FFFD and the next escape is read on its own
            (br#""\ud800\u0041""#, "\u{FFFD}A"),
            (br#""\ude00""#, "\u{FFFD}"),
            // every invalid byte is its own U+FFFD (Go), not one per sequence (Rust lossy)
            (b"\"\xf0\x9f\x98\"", "\u{FFFD}\u{FFFD}\u{FFFD}"),
            (br#""a\/b\\c\"d""#, "a/b\\c\"d"),
        ];
        for (raw, want) in cases {
            let (got, end) = Doc::new(raw).string(0);
            assert_eq!(got, *want, "{raw:?}");
            assert_eq!(end, raw.len(), "{raw:?}");
        }
    }

    #[test]
    fn field_names_fold_like_go() {
        let cases: &[(&str, &str, bool)] = &[
            ("auths", "auths", true),
            ("AUTHS", "auths", true),
            ("UserName", "username", true),
            // U+017F folds to 's' and the Kelvin sign to 'k'
            ("u\u{17F}ername", "username", true),
            ("\u{212A}ey", "key", true),
            // no other non-ASCII folding: U+0130 is not 'i'
            ("\u{130}d", "id", false),
            ("user", "username", false),
            ("usernames", "username", false),
        ];
        for (key, field, want) in cases {
            assert_eq!(field_matches(key, field), *want, "{key:?} vs {field:?}");
        }
    }

    #[test]
    fn object_map_keeps_first_positions_and_last_values() {
        let mut m = ObjectMap::default();
        for (key, value) in [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)] {
            m.insert(key.to_string(), value);
        }
        assert_eq!(m.into_values(), [3, 5, 4]);
        let mut m = ObjectMap::default();
        m.insert("a".to_string(), 1);
        m.clear();
        m.insert("b".to_string(), 2);
        m.insert("a".to_string(), 3);
        assert_eq!(m.into_values(), [2, 3]);
    }
}
