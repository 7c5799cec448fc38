//! Go's `path/filepath.Match` on Unix (`match.go`), byte for byte: the kubelet matches each
//! label of a registry key's host against the image's with it, so `*.example.com` and
//! `reg?.example.com` are patterns. Go's classes are `[^...]` (not `[!...]`), a bad pattern is
//! an error rather than a literal, and `?` and classes take one UTF-8 rune, not one byte.

use super::utf8;

/// Go's `ErrBadPattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// `filepath.Match(pattern, name)`: `*` (not across `/`), `?`, `[...]` with ranges and `^`
/// negation, `\` escapes. A malformed pattern is an error even where the name already failed
/// to match, as in Go.
pub fn matches(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest unless it holds a separator.
            return Ok(!name.contains(&b'/'));
        }
        match match_chunk(chunk, name) {
            Ok(Some(t)) if t.is_empty() || !pattern.is_empty() => {
                name = t;
                continue;
            }
            Err(e) => return Err(e),
            _ => {}
        }
        if star {
            // Let the star take one more byte at a time, never a separator.
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                match match_chunk(chunk, &name[i + 1..]) {
                    Ok(Some(t)) => {
                        if pattern.is_empty() && !t.is_empty() {
                            i += 1;
                            continue;
                        }
                        name = t;
                        continue 'pattern;
                    }
                    Err(e) => return Err(e),
                    Ok(None) => {}
                }
                i += 1;
            }
        }
        // No match; Go still reports a malformed rest of the pattern.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off the leading stars and the chunk up to the next star outside a class.
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while pattern.first() == Some(&b'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            // An escape takes the next byte with it (checked in match_chunk).
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches `chunk` (no stars) against the start of `s`: `Ok(Some(rest))` on a match,
/// `Ok(None)` on none. The whole chunk is always read so a malformed one is reported.
fn match_chunk<'s>(mut chunk: &[u8], mut s: &'s [u8]) -> Result<Option<&'s [u8]>, BadPattern> {
    let mut failed = false;
    while let Some(&c) = chunk.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            b'[' => {
                let mut r = 0u32;
                if !failed {
                    let (ch, n) = utf8::decode_rune(s);
                    r = u32::from(ch);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&b'-') {
                        let (h, rest) = class_char(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = utf8::decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                if c == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return Err(BadPattern);
                    }
                }
                if !failed {
                    if chunk[0] != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// Go's `getEsc`: one possibly escaped character of a class, which must not end the pattern.
fn class_char(chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(BadPattern),
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return Err(BadPattern);
            }
        }
        _ => {}
    }
    let (ch, n) = utf8::decode_rune(chunk);
    let rest = &chunk[n..];
    if (ch == char::REPLACEMENT_CHARACTER && n == 1) || rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((u32::from(ch), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_labels_follow_filepath_match() {
        let cases: &[(&str, &str, Result<bool, BadPattern>)] = &[
            ("*", "anything", Ok(true)),
            ("*", "", Ok(true)),
            ("a*c", "abbbc", Ok(true)),
            ("a*c", "abbbd", Ok(false)),
            ("?", "a", Ok(true)),
            ("?", "", Ok(false)),
            ("??", "a", Ok(false)),
            ("reg?", "reg1", Ok(true)),
            ("reg[0-9]", "reg7", Ok(true)),
            ("reg[0-9]", "regx", Ok(false)),
            ("reg[^0-9]", "regx", Ok(true)),
            ("reg[^0-9]", "reg7", Ok(false)),
            // '!' is not negation in Go, just a member of the class
            ("[!a]", "!", Ok(true)),
            ("[!a]", "b", Ok(false)),
            ("[a-cx]", "x", Ok(true)),
            ("[a-cx]", "d", Ok(false)),
            ("\\*", "*", Ok(true)),
            ("\\*", "a", Ok(false)),
            ("é", "é", Ok(true)),
            ("[é]", "é", Ok(true)),
            // malformed patterns are errors (no match for the keyring)
            ("[", "a", Err(BadPattern)),
            ("[]", "a", Err(BadPattern)),
            ("[a-]", "a", Err(BadPattern)),
            ("a\\", "a", Err(BadPattern)),
            ("x[", "a", Err(BadPattern)),
            // Go reports a bad rest of the pattern even after a mismatch
            ("b*[", "a", Err(BadPattern)),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                matches(pattern.as_bytes(), name.as_bytes()),
                *want,
                "{pattern:?} vs {name:?}"
            );
        }
    }
}
