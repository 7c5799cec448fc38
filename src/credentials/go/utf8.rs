//! Go's `unicode/utf8`, which decides how many U+FFFD an invalid sequence becomes.

/// `utf8.DecodeRune`: the first rune of `b` and its length. Any invalid or truncated sequence
/// is (U+FFFD, 1), one replacement per bad byte, where Rust's lossy conversion replaces a
/// whole maximal prefix at once. `b` is never empty here (Go would answer (U+FFFD, 0)).
pub fn decode_rune(b: &[u8]) -> (char, usize) {
    let end = b.len().min(4);
    let valid = match std::str::from_utf8(&b[..end]) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
    };
    match valid.chars().next() {
        Some(c) => (c, c.len_utf8()),
        None => (char::REPLACEMENT_CHARACTER, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_invalid_byte_is_one_replacement_character() {
        let cases: &[(&[u8], (char, usize))] = &[
            (b"a", ('a', 1)),
            ("\u{e9}x".as_bytes(), ('\u{e9}', 2)),
            ("\u{1F600}".as_bytes(), ('\u{1F600}', 4)),
            // a truncated four-byte sequence
            (b"\xf0\x9f\x98", (char::REPLACEMENT_CHARACTER, 1)),
            (b"\xff", (char::REPLACEMENT_CHARACTER, 1)),
            // an encoded surrogate is not a rune
            (b"\xed\xa0\x80", (char::REPLACEMENT_CHARACTER, 1)),
        ];
        for (input, want) in cases {
            assert_eq!(decode_rune(input), *want, "{input:?}");
        }
    }
}
