//! Go's `encoding/base64` decoder (`base64.go`), which the kubelet runs over a docker config's
//! `auth` field. It is more lenient than the `base64` crate (line breaks skipped anywhere,
//! non-zero trailing bits accepted) and its error offsets are what the kubelet reports.

const BASE64_INVALID: u8 = 0xff;

fn base64_value(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => BASE64_INVALID,
    }
}

/// `base64.StdEncoding.DecodeString` (`padded`) or `RawStdEncoding.DecodeString`. `\r` and
/// `\n` are skipped anywhere; trailing bits need not be zero. The error is Go's
/// `CorruptInputError` offset.
pub fn decode(src: &[u8], padded: bool) -> Result<Vec<u8>, usize> {
    let is_newline = |c: u8| c == b'\n' || c == b'\r';
    let mut out = Vec::with_capacity(src.len() / 4 * 3 + 3);
    let mut si = 0;
    while si < src.len() {
        // One quantum of up to four symbols (Go's decodeQuantum).
        let mut dbuf = [0u8; 4];
        let mut dlen = 4;
        let mut trailing_garbage = None;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                if j == 1 || padded {
                    return Err(si - j);
                }
                dlen = j;
                break;
            }
            let c = src[si];
            si += 1;
            let v = base64_value(c);
            if v != BASE64_INVALID {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if is_newline(c) {
                continue;
            }
            if !padded || c != b'=' {
                return Err(si - 1);
            }
            match j {
                0 | 1 => return Err(si - 1),
                2 => {
                    // "==" is required; the first '=' is consumed.
                    while si < src.len() && is_newline(src[si]) {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(src.len());
                    }
                    if src[si] != b'=' {
                        return Err(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && is_newline(src[si]) {
                si += 1;
            }
            if si < src.len() {
                trailing_garbage = Some(si);
            }
            dlen = j;
            break;
        }
        let val = (u32::from(dbuf[0]) << 18)
            | (u32::from(dbuf[1]) << 12)
            | (u32::from(dbuf[2]) << 6)
            | u32::from(dbuf[3]);
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
        if let Some(offset) = trailing_garbage {
            return Err(offset);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_fails_where_go_does() {
        // (input, padded decoder, Ok(bytes) or Err(CorruptInputError offset))
        type Case<'a> = (&'a str, bool, Result<&'a [u8], usize>);
        let cases: &[Case] = &[
            ("Zm9vOmJhcg==", true, Ok(b"foo:bar")),
            ("Zm9vOmJhcg", false, Ok(b"foo:bar")),
            ("", true, Ok(b"")),
            // Go skips newlines inside base64
            ("Zm9v\nOmJh\r\ncg==", true, Ok(b"foo:bar")),
            // non-canonical trailing bits are accepted (Go's decoder is not strict)
            ("Zm9vOmJhch==", true, Ok(b"foo:bar")),
            ("pants", false, Err(4)),
            // the padded decoder needs "==" after two symbols: the error is at the end
            ("Zm9vOmJhcg=", true, Err(11)),
            // and refuses a missing padding at the end of the input
            ("Zm9vOmJhcg", true, Err(8)),
            // the unpadded decoder rejects '=' anywhere
            ("Zm9v=mJhcg", false, Err(4)),
            // garbage after the padding
            ("Zm9vOmJhcg==Zg==", true, Err(12)),
            // a single trailing symbol cannot be decoded
            ("Zm9vO", false, Err(4)),
        ];
        for (input, padded, want) in cases {
            assert_eq!(
                decode(input.as_bytes(), *padded),
                want.map(<[u8]>::to_vec),
                "{input:?} padded={padded}"
            );
        }
    }
}
