//! Go's `net/url.Parse` (`url.go`), reduced to what `url.Parse("https://" + key)` needs, and
//! `net.SplitHostPort`: the kubelet parses every registry key and every image name this way,
//! and drops a key Go rejects. The `url` crate follows WHATWG instead: it lowercases hosts,
//! applies IDNA and drops default ports, where the kubelet compares hosts and ports as written.
//!
//! `url.Parse` is reproduced as current kubelets have it (Go 1.24.8+/1.25.2+ security fixes):
//! a `[` anywhere but at the start of the host is invalid, a bracketed host must be an IPv6
//! address, and the port is what follows the last colon (Go 1.25; a Go 1.26 build with
//! `urlstrictcolons=1` would also reject hosts with several colons, which no image can name).
//! Kubelets built with older Go accepted `[...]` inside a host; with them
//! `reg[0-9].example.com` is a working glob, here (as with current kubelets) it is dropped.

use std::borrow::Cow;

/// What the keyring reads of a parsed URL.
pub struct Url<'a> {
    /// `URL.Host` (unescaped, port included).
    pub host: Cow<'a, [u8]>,
    /// `URL.Path` (unescaped).
    pub path: Cow<'a, [u8]>,
}

/// `url.Parse("https://" + s)`, given `s`; `None` where Go returns an error.
pub fn parse_https(s: &[u8]) -> Option<Url<'_>> {
    let (url, fragment) = match s.iter().position(|&b| b == b'#') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    if url.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let questions = url.iter().filter(|&&b| b == b'?').count();
    let rest = if questions == 1 && url.ends_with(b"?") {
        &url[..url.len() - 1]
    } else {
        match url.iter().position(|&b| b == b'?') {
            Some(i) => &url[..i],
            None => url,
        }
    };
    let (authority, raw_path) = match rest.iter().position(|&b| b == b'/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, &b""[..]),
    };
    let host = parse_authority(authority)?;
    let path = unescape(raw_path, Mode::Path)?;
    if let Some(fragment) = fragment {
        unescape(fragment, Mode::Fragment)?;
    }
    Some(Url { host, path })
}

fn parse_authority(authority: &[u8]) -> Option<Cow<'_, [u8]>> {
    let at = authority.iter().rposition(|&b| b == b'@');
    let host = parse_host(match at {
        Some(i) => &authority[i + 1..],
        None => authority,
    })?;
    if let Some(i) = at {
        let userinfo = &authority[..i];
        let valid = userinfo
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b));
        if !valid {
            return None;
        }
        match userinfo.iter().position(|&b| b == b':') {
            Some(c) => {
                unescape(&userinfo[..c], Mode::UserPassword)?;
                unescape(&userinfo[c + 1..], Mode::UserPassword)?;
            }
            None => {
                unescape(userinfo, Mode::UserPassword)?;
            }
        }
    }
    Some(host)
}

fn parse_host(host: &[u8]) -> Option<Cow<'_, [u8]>> {
    match host.iter().rposition(|&b| b == b'[') {
        // Only a whole IP-literal may use brackets.
        Some(open) if open > 0 => None,
        Some(_) => {
            let close = host.iter().rposition(|&b| b == b']')?;
            let colon_port = &host[close + 1..];
            if !valid_optional_port(colon_port) {
                return None;
            }
            let hostname = &host[1..close];
            let mut unescaped = Vec::with_capacity(hostname.len() + 2 + colon_port.len());
            unescaped.push(b'[');
            match hostname.windows(3).position(|w| w == b"%25") {
                Some(zone) => {
                    unescaped.extend_from_slice(&unescape(&hostname[..zone], Mode::Host)?);
                    unescaped.extend_from_slice(&unescape(&hostname[zone..], Mode::Zone)?);
                }
                None => unescaped.extend_from_slice(&unescape(hostname, Mode::Host)?),
            }
            if !is_ipv6_literal(&unescaped[1..]) {
                return None;
            }
            unescaped.push(b']');
            unescaped.extend_from_slice(colon_port);
            Some(Cow::Owned(unescaped))
        }
        None => {
            if let Some(colon) = host.iter().rposition(|&b| b == b':') {
                if !valid_optional_port(&host[colon..]) {
                    return None;
                }
            }
            unescape(host, Mode::Host)
        }
    }
}

fn valid_optional_port(colon_port: &[u8]) -> bool {
    match colon_port.split_first() {
        None => true,
        Some((&b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// `netip.ParseAddr` succeeds and the address is not IPv4.
fn is_ipv6_literal(s: &[u8]) -> bool {
    // ParseAddr picks IPv4 or IPv6 by whichever of '.', ':' or '%' comes first.
    if s.iter().find(|&&b| matches!(b, b'.' | b':' | b'%')) != Some(&b':') {
        return false;
    }
    let address = match s.iter().position(|&b| b == b'%') {
        Some(i) if i + 1 == s.len() => return false,
        Some(i) => &s[..i],
        None => s,
    };
    std::str::from_utf8(address)
        .ok()
        .and_then(|a| a.parse::<std::net::Ipv6Addr>().ok())
        .is_some()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    Fragment,
}

/// Characters a host may hold unescaped (Go's `shouldEscape(c, encodeHost)` is false).
fn host_allows(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&c)
}

fn unhex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Go's `url.unescape`: `%XX` must be well formed; a host may only escape non-ASCII bytes
/// (and `%25`), and may not hold other characters that need escaping.
fn unescape(s: &[u8], mode: Mode) -> Option<Cow<'_, [u8]>> {
    let host_like = matches!(mode, Mode::Host | Mode::Zone);
    let mut escapes = 0;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'%' {
            if i + 2 >= s.len() || !s[i + 1].is_ascii_hexdigit() || !s[i + 2].is_ascii_hexdigit() {
                return None;
            }
            let is_25 = &s[i..i + 3] == b"%25";
            if mode == Mode::Host && unhex(s[i + 1]) < 8 && !is_25 {
                return None;
            }
            if mode == Mode::Zone {
                let v = (unhex(s[i + 1]) << 4) | unhex(s[i + 2]);
                if !is_25 && v != b' ' && !host_allows(v) {
                    return None;
                }
            }
            escapes += 1;
            i += 3;
        } else {
            if host_like && c < 0x80 && !host_allows(c) {
                return None;
            }
            i += 1;
        }
    }
    if escapes == 0 {
        return Some(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len() - 2 * escapes);
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            out.push((unhex(s[i + 1]) << 4) | unhex(s[i + 2]));
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(Cow::Owned(out))
}

/// `net.SplitHostPort`: `None` without a port, with too many colons or with stray brackets.
/// The port is whatever follows the last colon, digits or not, empty or not.
pub fn split_host_port(hp: &[u8]) -> Option<(&[u8], &[u8])> {
    let last_colon = hp.iter().rposition(|&b| b == b':')?;
    let (host, no_open_from, no_close_from) = if hp.first() == Some(&b'[') {
        let end = hp.iter().position(|&b| b == b']')?;
        if end + 1 != last_colon {
            return None;
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..last_colon];
        if host.contains(&b':') {
            return None;
        }
        (host, 0, 0)
    };
    if hp[no_open_from..].contains(&b'[') || hp[no_close_from..].contains(&b']') {
        return None;
    }
    Some((host, &hp[last_colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_port_follows_net_split_host_port() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("ghcr.io:5000", Some(("ghcr.io", "5000"))),
            ("ghcr.io:", Some(("ghcr.io", ""))),
            ("ghcr.io:abc", Some(("ghcr.io", "abc"))),
            ("[fd00::1]:5000", Some(("fd00::1", "5000"))),
            ("ghcr.io", None),
            ("[fd00::1]", None),
            ("a:b:5000", None),
            ("[a]b:5000", None),
        ];
        for (input, want) in cases {
            let want = want.map(|(host, port)| (host.as_bytes(), port.as_bytes()));
            assert_eq!(split_host_port(input.as_bytes()), want, "{input}");
        }
    }
}
