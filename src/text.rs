//! Bounded, printable text from untrusted sources.
//!
//! Registries, token services and image references are written by whoever a tenant chooses;
//! their words end up in denial messages, `Warning` headers, logs and `explain` output. Control
//! characters would forge lines in a terminal or a log and are not valid in an HTTP `Warning`
//! header, and a long answer would be copied into every review that meets it.

/// `text` with control characters escaped (`\u{1b}`) and cut to at most `max` characters,
/// with `…` marking the cut.
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for (count, c) in text.chars().enumerate() {
        if count >= max {
            out.push('…');
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` cut to at most `max` characters (no escaping), marking a cut with `…`.
pub fn cap(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_length_is_bounded() {
        let cases = [
            ("plain words", 100, "plain words"),
            ("bell\u{7} esc\u{1b}[31m", 100, "bell\\u{7} esc\\u{1b}[31m"),
            ("line\r\nforged: yes", 100, "line\\u{d}\\u{a}forged: yes"),
            ("abcdef", 3, "abc…"),
            ("ünïcödé", 4, "ünïc…"),
            ("", 3, ""),
        ];
        for (input, max, want) in cases {
            assert_eq!(clean(input, max), want, "{input:?}");
        }
    }

    #[test]
    fn cap_cuts_on_character_boundaries() {
        assert_eq!(cap("ünïcödé", 3), "ünï…");
        assert_eq!(cap("short", 10), "short");
    }
}
