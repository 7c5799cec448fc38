//! `WWW-Authenticate` challenges (RFC 7235 / RFC 6750), as registries send them.
//!
//! A registry may send several challenges; like containerd we prefer Bearer over Basic.
//! Parameters are `key="value"` or `key=token` pairs; values may be empty and a quoted value
//! may contain commas (a `scope` with several actions), so a naive split on `,` is wrong.

use std::collections::HashMap;

/// The longest realm or service a challenge may name.
const MAX_REALM: usize = 2048;

/// How much of a challenge's `scope` and `error` is kept.
const MAX_QUOTED: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Token auth (distribution `docs/spec/auth/token.md`): fetch a token at `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
        /// `insufficient_scope` / `invalid_token` on a repeated 401 mean the credentials are
        /// not good enough (containerd `invalidAuthorization`).
        error: Option<String>,
    },
    /// Plain HTTP Basic with the pull secret's username and password.
    Basic,
}

impl Challenge {
    /// What is worth remembering per registry: where and how to authenticate, without this
    /// response's repository `scope` (we always ask for pull on the repository at hand) and
    /// `error` parameter.
    pub fn for_registry(&self) -> Challenge {
        match self {
            Challenge::Bearer { realm, service, .. } => Challenge::Bearer {
                realm: realm.clone(),
                service: service.clone(),
                scope: None,
                error: None,
            },
            Challenge::Basic => Challenge::Basic,
        }
    }

    /// Roughly how many bytes this holds, for the cache's weigher.
    pub fn approximate_size(&self) -> usize {
        match self {
            Challenge::Bearer {
                realm,
                service,
                scope,
                error,
            } => {
                64 + realm.len()
                    + [service, scope, error]
                        .iter()
                        .map(|v| v.as_ref().map_or(0, String::len))
                        .sum::<usize>()
            }
            Challenge::Basic => 16,
        }
    }

    /// `insufficient_scope`, `invalid_token`, ... when the registry said why.
    pub fn error(&self) -> Option<&str> {
        match self {
            Challenge::Bearer { error, .. } => error.as_deref(),
            Challenge::Basic => None,
        }
    }
}

/// Picks the challenge to answer from all `WWW-Authenticate` header values.
/// Returns `None` when none is usable (no header, unknown schemes, Bearer without a realm).
pub fn select<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = false;
    for value in headers {
        for (scheme, params) in parse_header(value) {
            if scheme.eq_ignore_ascii_case("bearer") {
                // A realm or service is sent back (and cached): one longer than any URL a token
                // service needs is not one. The scope is never used and the error is only
                // quoted, so they are cut instead.
                let usable = |v: &&String| !v.is_empty() && v.len() <= MAX_REALM;
                let service = params.get("service");
                if let Some(realm) = params.get("realm").filter(usable) {
                    if service.is_some_and(|s| s.len() > MAX_REALM) {
                        continue;
                    }
                    return Some(Challenge::Bearer {
                        realm: realm.clone(),
                        service: service.cloned(),
                        scope: params.get("scope").map(|s| crate::text::cap(s, MAX_QUOTED)),
                        error: params
                            .get("error")
                            .map(|e| crate::text::clean(e, MAX_QUOTED)),
                    });
                }
            } else if scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

/// Splits one header value into `(scheme, params)` challenges.
fn parse_header(value: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let token_end = rest.find([' ', '\t', ',', '=']).unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = &rest[token_end..];
        if after.trim_start().starts_with('=') {
            // A parameter of the current challenge.
            let eq = after.find('=').unwrap_or(0);
            let Some((val, remaining)) = parse_value(&after[eq + 1..]) else {
                // An unterminated quote: the header is malformed and nothing in it is trusted.
                return Vec::new();
            };
            if let Some((_, params)) = out.last_mut() {
                params.insert(token.to_ascii_lowercase(), val);
            }
            rest = remaining;
        } else {
            // A new scheme.
            out.push((token.to_string(), HashMap::new()));
            rest = after;
        }
    }
    out
}

/// Parses a quoted-string or a token at the start of `s`; returns the value and the rest, or
/// `None` for a quoted-string that never ends.
fn parse_value(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if let Some(quoted) = s.strip_prefix('"') {
        let mut val = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        val.push(escaped);
                    }
                }
                '"' => return Some((val, &quoted[i + 1..])),
                _ => val.push(c),
            }
        }
        None
    } else {
        let end = s.find([',', ' ', '\t']).unwrap_or(s.len());
        Some((s[..end].to_string(), &s[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
            error: None,
        }
    }

    #[test]
    fn parses_challenges_as_registries_send_them() {
        let cases: Vec<(Vec<&str>, Option<Challenge>)> = vec![
            (
                vec![
                    r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
                ],
                Some(bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:samalba/my-app:pull,push"),
                )),
            ),
            (
                vec![r#"Basic realm="Registry Realm""#],
                Some(Challenge::Basic),
            ),
            (vec![r#"basic realm=x"#], Some(Challenge::Basic)),
            // Bearer wins over Basic, in one header or across several.
            (
                vec![r#"Basic realm="r", Bearer realm="https://a/t",service="s""#],
                Some(bearer("https://a/t", Some("s"), None)),
            ),
            (
                vec![r#"Basic realm="r""#, r#"Bearer realm="https://a/t""#],
                Some(bearer("https://a/t", None, None)),
            ),
            // Empty values are allowed; unquoted tokens too.
            (
                vec![r#"Bearer realm=https://a/t,service="",scope="#],
                Some(bearer("https://a/t", Some(""), Some(""))),
            ),
            // A realm-less Bearer cannot be answered; falls back to Basic if offered.
            (vec![r#"Bearer service="s""#], None),
            (
                vec![r#"Bearer service="s", Basic realm="r""#],
                Some(Challenge::Basic),
            ),
            (vec![], None),
            (vec!["Negotiate"], None),
            (vec!["garbage \"unterminated"], None),
            // An unterminated quote makes the whole header untrustworthy.
            (vec![r#"Bearer realm="https://a/t"#], None),
            (vec![r#"Bearer realm="https://a/t,service="#], None),
        ];
        for (headers, want) in cases {
            assert_eq!(select(headers.iter().copied()), want, "headers {headers:?}");
        }
    }

    #[test]
    fn keeps_the_error_parameter_of_a_repeated_challenge() {
        let got = select([
            r#"Bearer realm="https://a/t",service="s",scope="repository:x:pull",error="insufficient_scope""#,
        ]);
        match got {
            Some(Challenge::Bearer { error, .. }) => {
                assert_eq!(error.as_deref(), Some("insufficient_scope"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unescapes_quoted_pairs() {
        let got = select([r#"Bearer realm="https://a/t?x=\"y\"""#]);
        assert_eq!(got, Some(bearer(r#"https://a/t?x="y""#, None, None)));
    }

    #[test]
    fn oversized_realms_are_refused_and_errors_bounded() {
        let long = "x".repeat(4000);
        let huge_realm = format!("Bearer realm=\"https://auth.example/{long}\",service=\"r\"");
        assert_eq!(select([huge_realm.as_str()]), None);
        let huge_error =
            format!("Bearer realm=\"https://auth.example/token\",error=\"bad\u{1b}[2J{long}\"");
        match select([huge_error.as_str()]) {
            Some(Challenge::Bearer { error: Some(e), .. }) => {
                // One escaped control character grows by a few characters; the rest is cut.
                assert!(e.chars().count() <= MAX_QUOTED + 10, "{}", e.len());
                assert!(!e.contains('\u{1b}'), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}
