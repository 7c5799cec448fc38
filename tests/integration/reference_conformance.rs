//! Conformance of `pullcheck::reference` with distribution/reference v0.6.0, the kubelet and
//! containerd, against `../shared/vectors/reference_cases.json` (outputs of the upstream Go code).
//!
//! Every one of the 22 upstream tables is checked, as is every `by_input` and
//! `extra_inputs_not_in_upstream_tables` entry for `Parse`, `ParseNormalizedNamed`,
//! `ParseDockerRef`, `ParseAnyReference` and the `kubelet` view. Only the
//! `rust_oci_spec_0_10_Reference` view is not checked: it records what a different parser
//! (the oci-spec crate) does, which pullcheck deliberately does not imitate.
//!
//! Digest algorithms (go-digest only accepts registered ones):
//! * the tables and the `by_input` `Parse*` views come from a binary that registers sha256
//!   only (`by_input` `validname@sha512:…` is `unsupported digest algorithm` there), so they are
//!   checked with `DigestAlgorithms::SHA256_ONLY`;
//! * the `kubelet` views were computed with sha256 and sha512 registered, as the kubelet does,
//!   and are checked with `DigestAlgorithms::KUBELET` (the library default);
//! * the `extra_inputs` `Parse*` views: `how_to_read` says sha256 only, but the data accept
//!   `busybox@sha384:…` and `busybox@sha512:…` and call a 97-hex sha384 a length error, which
//!   only happens with sha384/sha512 registered. The data are the real Go output, so these
//!   views are checked with `DigestAlgorithms::KUBELET`.
//!
//! All mismatches are collected and reported together.

use crate::common::vectors::{self, Checker};
use pullcheck::reference::{
    self, default_pull_policy, grammar, kubelet_cri_image, validate_digest, DigestAlgorithms,
    ImageRef, ParsedReference, ReferenceError,
};
use serde_json::{json, Map, Value};

const UPSTREAM: DigestAlgorithms = DigestAlgorithms::SHA256_ONLY;

fn load_vectors() -> Option<Value> {
    vectors::load("reference_cases.json")
}

fn s<'a>(case: &'a Value, key: &str) -> &'a str {
    case.get(key).and_then(Value::as_str).unwrap_or("")
}

fn opt<'a>(case: &'a Value, key: &str) -> Option<&'a str> {
    case.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

/// The Go error text a table case expects, if any.
fn expected_error(case: &Value) -> Option<&str> {
    case.get("err").map(|e| s(e, "error"))
}

fn error_text<T>(r: &Result<T, ReferenceError>) -> Option<String> {
    r.as_ref().err().map(ToString::to_string)
}

// ---------------------------------------------------------------------------------------------
// Upstream helpers that are not part of the library (they exist only in upstream tests or are
// not used by the kubelet), composed from the library's public pieces.

/// `ParseNamed`: `ParseNormalizedNamed` that must already be canonical.
fn parse_named(input: &str) -> Result<ImageRef, String> {
    let r = ImageRef::parse_normalized_with(input, UPSTREAM).map_err(|e| e.to_string())?;
    if r.to_string() == input {
        Ok(r)
    } else {
        Err("repository name must be canonical".to_owned())
    }
}

enum AnyRef {
    Digest(String),
    Named(ImageRef),
}

/// `ParseAnyReference`: a bare 64-hex identifier or a valid digest is a digest-only reference.
fn parse_any(input: &str, algorithms: DigestAlgorithms) -> Result<AnyRef, ReferenceError> {
    if grammar::is_identifier(input) {
        return Ok(AnyRef::Digest(format!("sha256:{input}")));
    }
    if validate_digest(input, algorithms).is_ok() {
        return Ok(AnyRef::Digest(input.to_owned()));
    }
    ImageRef::parse_normalized_with(input, algorithms).map(AnyRef::Named)
}

/// Go's `path.Match` (enough of it: `*`, `?`, classes with ranges and `^`, `\` escapes).
fn path_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => {
                let mut i = 0;
                loop {
                    if go(rest, &s[i..]) {
                        return true;
                    }
                    if i == s.len() || s[i] == '/' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some(('?', rest)) => s.first().is_some_and(|&c| c != '/') && go(rest, &s[1..]),
            Some(('[', rest)) => {
                let Some((&c, s_rest)) = s.split_first() else {
                    return false;
                };
                let (negated, mut q) = match rest.split_first() {
                    Some(('^', q)) => (true, q),
                    _ => (false, rest),
                };
                let mut matched = false;
                loop {
                    match q {
                        [']', tail @ ..] => {
                            q = tail;
                            break;
                        }
                        [lo, '-', hi, tail @ ..] if *hi != ']' => {
                            matched |= (*lo..=*hi).contains(&c);
                            q = tail;
                        }
                        [x, tail @ ..] => {
                            matched |= *x == c;
                            q = tail;
                        }
                        [] => return false,
                    }
                }
                matched != negated && go(q, s_rest)
            }
            Some(('\\', rest)) => match rest.split_first() {
                Some((lit, rest)) => s.first() == Some(lit) && go(rest, &s[1..]),
                None => false,
            },
            Some((lit, rest)) => s.first() == Some(lit) && go(rest, &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// `FamiliarMatch`: the pattern against `FamiliarString`, then against `FamiliarName`.
fn familiar_match(pattern: &str, r: &AnyRef) -> bool {
    match r {
        AnyRef::Digest(d) => path_match(pattern, d),
        AnyRef::Named(r) => {
            path_match(pattern, &r.familiar_string()) || path_match(pattern, r.familiar_name())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The JSON shapes of the by_input views.

fn ref_type(tag: Option<&str>, digest: Option<&str>) -> &'static str {
    match (tag, digest) {
        (None, None) => "name_only",
        (Some(_), None) => "tagged",
        (None, Some(_)) => "digested",
        (Some(_), Some(_)) => "tagged_and_digested",
    }
}

#[allow(clippy::too_many_arguments)]
fn named_view(
    string: String,
    name: &str,
    domain: &str,
    path: &str,
    tag: Option<&str>,
    digest: Option<&str>,
    familiar_name: &str,
    familiar_string: String,
) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(ref_type(tag, digest)));
    m.insert("string".into(), json!(string));
    m.insert("name".into(), json!(name));
    m.insert("domain".into(), json!(domain));
    m.insert("path".into(), json!(path));
    if let Some(tag) = tag {
        m.insert("tag".into(), json!(tag));
    }
    if let Some(digest) = digest {
        m.insert("digest".into(), json!(digest));
    }
    m.insert("familiar_name".into(), json!(familiar_name));
    m.insert("familiar_string".into(), json!(familiar_string));
    Value::Object(m)
}

fn image_view(r: &ImageRef) -> Value {
    named_view(
        r.to_string(),
        r.name_str(),
        r.domain(),
        r.path(),
        r.tag(),
        r.digest(),
        r.familiar_name(),
        r.familiar_string(),
    )
}

fn parsed_view(r: &ParsedReference) -> Value {
    named_view(
        r.to_string(),
        r.name(),
        r.domain(),
        r.path(),
        r.tag(),
        r.digest(),
        r.familiar_name(),
        r.familiar_string(),
    )
}

fn error_view(e: &ReferenceError) -> Value {
    json!({ "error": e.to_string() })
}

fn any_view(r: &Result<AnyRef, ReferenceError>) -> Value {
    match r {
        Ok(AnyRef::Digest(d)) => json!({
            "type": "digest_only", "string": d, "digest": d, "familiar_string": d,
        }),
        Ok(AnyRef::Named(r)) => image_view(r),
        Err(e) => error_view(e),
    }
}

fn kubelet_view(input: &str) -> Value {
    let policy = default_pull_policy(input).as_str();
    match (kubelet_cri_image(input), ImageRef::parse_normalized(input)) {
        (Ok(cri_image), Ok(r)) => {
            // containerd parses the CRI image string, not the pod's.
            let pulled = ImageRef::parse_normalized(&cri_image);
            json!({
                "containerd_pull_ref": pulled.as_ref().map_or_else(|e| e.to_string(), ImageRef::docker_ref_string),
                "cri_image": cri_image,
                "default_pull_policy": policy,
                "digest": r.digest().unwrap_or(""),
                "registry_host": pulled.as_ref().map_or("", ImageRef::containerd_hostname),
                "repo_to_pull": r.name(),
                "repository": pulled.as_ref().map_or("", ImageRef::repository),
                "tag": r.defaulted_tag().unwrap_or(""),
            })
        }
        (Err(e), _) | (_, Err(e)) => json!({
            "default_pull_policy": policy,
            "kubelet_result": "InvalidImageName",
            "parse_image_name_error": e.kubelet_message(),
        }),
    }
}

/// Checks one by_input or extra entry against every view except oci-spec's.
fn check_entry(c: &mut Checker, section: &str, entry: &Value, algorithms: DigestAlgorithms) {
    let input = s(entry, "input");
    let ctx = |view: &str| format!("{section} {input:?} {view}");

    let parsed = reference::parse_with(input, algorithms);
    let got = parsed.as_ref().map_or_else(error_view, parsed_view);
    c.eq(&ctx("Parse"), &got, &entry["Parse"]);

    let normalized = ImageRef::parse_normalized_with(input, algorithms);
    let got = normalized.as_ref().map_or_else(error_view, image_view);
    c.eq(
        &ctx("ParseNormalizedNamed"),
        &got,
        &entry["ParseNormalizedNamed"],
    );

    let docker = normalized.clone().map(|r| r.docker_ref());
    let got = docker.as_ref().map_or_else(error_view, image_view);
    c.eq(&ctx("ParseDockerRef"), &got, &entry["ParseDockerRef"]);
    if let Ok(r) = &normalized {
        c.eq(
            &ctx("ParseDockerRef string"),
            r.docker_ref_string(),
            r.docker_ref().to_string(),
        );
    }

    c.eq(
        &ctx("ParseAnyReference"),
        &any_view(&parse_any(input, algorithms)),
        &entry["ParseAnyReference"],
    );

    let want = &entry["kubelet"];
    c.eq(&ctx("kubelet"), &kubelet_view(input), want);

    // The vectors name the host as containerd's reference spec does; containerd then contacts
    // Docker Hub at registry-1.docker.io. The manifest reference is what follows the name in
    // containerd's pull ref.
    if let (Ok(r), Some(host), Some(pull_ref)) = (
        ImageRef::parse_normalized(input),
        want.get("registry_host").and_then(Value::as_str),
        want.get("containerd_pull_ref").and_then(Value::as_str),
    ) {
        let want_host = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        c.eq(&ctx("registry_host()"), r.registry_host(), want_host);
        let want_ref = pull_ref
            .split_once('@')
            .map(|(_, d)| d)
            .unwrap_or_else(|| pull_ref.rsplit_once(':').map_or("", |(_, t)| t));
        c.eq(
            &ctx("manifest_reference()"),
            r.manifest_reference(),
            want_ref,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The upstream tables.

fn check_table(c: &mut Checker, table: &Value) -> bool {
    let test = s(table, "test");
    let var = s(table, "table_var");
    let cases = table["cases"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if cases.is_empty() {
        c.fail(&format!("{test}/{var}"), "table has no cases");
    }
    for (i, case) in cases.iter().enumerate() {
        let ctx = format!(
            "{test}/{var}[{i}] {}",
            serde_json::to_string(case).unwrap_or_default()
        );
        match (test, var) {
            ("TestReferenceParse", _) => {
                let r = reference::parse_with(s(case, "input"), UPSTREAM);
                match (expected_error(case), &r) {
                    (Some(want), _) => c.eq(&ctx, error_text(&r).as_deref(), Some(want)),
                    (None, Ok(r)) => {
                        c.eq(&ctx, r.name(), s(case, "repository"));
                        c.eq(&ctx, r.domain(), s(case, "domain"));
                        c.eq(&ctx, r.tag(), opt(case, "tag"));
                        c.eq(&ctx, r.digest(), opt(case, "digest"));
                    }
                    (None, Err(e)) => c.fail(&ctx, e),
                }
            }
            ("TestWithNameFailure", _) => {
                let r = reference::with_name(s(case, "input"));
                c.eq(&ctx, error_text(&r).as_deref(), expected_error(case));
            }
            ("TestDomainAndPath", _) => match reference::with_name(s(case, "input")) {
                Ok(r) => c.eq(
                    &ctx,
                    (r.domain(), r.path()),
                    (s(case, "domain"), s(case, "path")),
                ),
                Err(e) => c.fail(&ctx, e),
            },
            ("TestSerialization", _) => {
                // An absent input is the empty JSON string.
                let r = reference::parse_with(s(case, "input"), UPSTREAM);
                match (expected_error(case), &r) {
                    (Some(want), _) => c.eq(&ctx, error_text(&r).as_deref(), Some(want)),
                    (None, Ok(r)) => c.eq(
                        &ctx,
                        (r.name(), r.tag(), r.digest()),
                        (s(case, "name"), opt(case, "tag"), opt(case, "digest")),
                    ),
                    (None, Err(e)) => c.fail(&ctx, e),
                }
            }
            ("TestWithTag", _) | ("TestWithDigest", _) => {
                let tag_last = test == "TestWithTag";
                let combined = reference::with_name(s(case, "name")).and_then(|mut r| {
                    if !tag_last {
                        if let Some(tag) = opt(case, "tag") {
                            r = r.with_tag(tag)?;
                        }
                    }
                    if let Some(digest) = opt(case, "digest") {
                        r = r.with_digest(digest)?;
                    }
                    if tag_last {
                        r = r.with_tag(s(case, "tag"))?;
                    }
                    Ok(r.to_string())
                });
                c.eq(
                    &ctx,
                    combined.map_err(|e| e.to_string()),
                    Ok(s(case, "combined").to_owned()),
                );
            }
            ("TestParseNamed", _) => {
                let r = parse_named(s(case, "input"));
                match (expected_error(case), &r) {
                    (Some(want), _) => c.eq(&ctx, r.as_ref().err().map(String::as_str), Some(want)),
                    (None, Ok(r)) => c.eq(
                        &ctx,
                        (r.domain(), r.path()),
                        (s(case, "domain"), s(case, "path")),
                    ),
                    (None, Err(e)) => c.fail(&ctx, e),
                }
            }
            ("TestValidateReferenceName" | "TestValidateRemoteName", var) => {
                let input = case.as_str().unwrap_or_default();
                let valid = var.starts_with("valid");
                let r = ImageRef::parse_normalized_with(input, UPSTREAM);
                c.eq(
                    &ctx,
                    r.as_ref().map(|_| ()).map_err(|e| e.to_string()).is_ok(),
                    valid,
                );
            }
            ("TestParseRepositoryInfo", _) => {
                for key in ["FamiliarName", "FullName", "AmbiguousName"] {
                    let Some(input) = opt(case, key) else {
                        continue;
                    };
                    let ctx = format!("{ctx} via {key}");
                    match ImageRef::parse_normalized_with(input, UPSTREAM) {
                        Ok(r) => c.eq(
                            &ctx,
                            (r.familiar_name(), r.to_string(), r.domain(), r.path()),
                            (
                                s(case, "FamiliarName"),
                                s(case, "FullName").to_owned(),
                                s(case, "Domain"),
                                s(case, "RemoteName"),
                            ),
                        ),
                        Err(e) => c.fail(&ctx, e),
                    }
                }
            }
            ("TestParseAnyReference", _) => match parse_any(s(case, "Reference"), UPSTREAM) {
                Ok(r) => {
                    let string = match &r {
                        AnyRef::Digest(d) => d.clone(),
                        AnyRef::Named(n) => n.to_string(),
                    };
                    c.eq(&ctx, string.as_str(), s(case, "Equivalent"));
                    if let Some(expected) = case.get("Expected") {
                        let digest = match &r {
                            AnyRef::Digest(d) => Some(d.as_str()),
                            AnyRef::Named(_) => None,
                        };
                        c.eq(&ctx, digest, Some(s(expected, "digestReference")));
                    }
                }
                Err(e) => c.fail(&ctx, e),
            },
            ("TestNormalizedSplitHostname", _) => {
                match ImageRef::parse_normalized_with(s(case, "input"), UPSTREAM) {
                    Ok(r) => c.eq(
                        &ctx,
                        (r.domain(), r.path()),
                        (s(case, "domain"), s(case, "path")),
                    ),
                    Err(e) => c.fail(&ctx, e),
                }
            }
            ("TestMatch", _) => match parse_any(s(case, "reference"), UPSTREAM) {
                Ok(r) => c.eq(
                    &ctx,
                    familiar_match(s(case, "pattern"), &r),
                    case["expected"].as_bool().unwrap_or(false),
                ),
                Err(e) => c.fail(&ctx, e),
            },
            ("TestParseDockerRef", _) => {
                let r = ImageRef::parse_normalized_with(s(case, "input"), UPSTREAM);
                c.eq(
                    &ctx,
                    r.map(|r| r.docker_ref_string()).map_err(|e| e.to_string()),
                    Ok(s(case, "expected").to_owned()),
                );
            }
            ("TestDomainRegexp", _) => c.eq(
                &ctx,
                grammar::is_domain_and_port(s(case, "input")),
                case["match"].as_bool().unwrap_or(false),
            ),
            ("TestFullNameRegexp", _) => {
                let got = grammar::split_name(s(case, "input"));
                c.eq(
                    &ctx,
                    got.is_some(),
                    case["match"].as_bool().unwrap_or(false),
                );
                if let (Some((domain, path)), Some(subs)) = (got, case.get("subs")) {
                    c.eq(&ctx, json!([domain, path]), subs.clone());
                }
            }
            ("TestReferenceRegexp", _) => {
                let got = grammar::match_reference(s(case, "input"));
                c.eq(
                    &ctx,
                    got.is_some(),
                    case["match"].as_bool().unwrap_or(false),
                );
                if let (Some(m), Some(subs)) = (got, case.get("subs")) {
                    let got = json!([m.name, m.tag.unwrap_or(""), m.digest.unwrap_or("")]);
                    c.eq(&ctx, got, subs.clone());
                }
            }
            ("TestIdentifierRegexp", _) => c.eq(
                &ctx,
                grammar::is_identifier(s(case, "input")),
                case["match"].as_bool().unwrap_or(false),
            ),
            ("TestParseReferenceWithTagAndDigest", _) => {
                match ImageRef::parse_normalized_with(s(case, "input"), UPSTREAM) {
                    Ok(r) => {
                        c.eq(&ctx, r.to_string(), s(case, "expected_string").to_owned());
                        c.eq(
                            &ctx,
                            r.familiar_string(),
                            s(case, "expected_familiar_string").to_owned(),
                        );
                        c.eq(
                            &ctx,
                            (r.tag().is_some(), r.digest().is_some()),
                            (true, true),
                        );
                    }
                    Err(e) => c.fail(&ctx, e),
                }
            }
            ("TestInvalidReferenceComponents", _) => {
                let failed = if let Some(input) = opt(case, "input") {
                    ImageRef::parse_normalized_with(input, UPSTREAM).is_err()
                } else {
                    let named = reference::with_name(s(case, "name"));
                    match (named, opt(case, "with_tag"), opt(case, "with_digest")) {
                        (Ok(n), Some(tag), _) => n.with_tag(tag).is_err(),
                        (Ok(n), None, Some(digest)) => n.with_digest(digest).is_err(),
                        _ => false,
                    }
                };
                c.eq(
                    &ctx,
                    failed,
                    case["expect_error"].as_bool().unwrap_or(false),
                );
            }
            _ => {
                c.fail(&format!("{test}/{var}"), "table not handled by this test");
                return false;
            }
        }
    }
    true
}

#[test]
fn upstream_tables_all_pass() {
    let Some(data) = load_vectors() else { return };
    let tables = data["tables"].as_array().expect("tables");
    let mut c = Checker::default();
    let handled = tables.iter().filter(|t| check_table(&mut c, t)).count();
    c.eq("number of tables handled", handled, 22);
    c.finish("upstream tables");
}

#[test]
fn every_by_input_entry_matches_upstream_and_kubelet() {
    let Some(data) = load_vectors() else { return };
    let entries = data["by_input"].as_array().expect("by_input");
    let mut c = Checker::default();
    c.eq("number of by_input entries", entries.len(), 278);
    for entry in entries {
        check_entry(&mut c, "by_input", entry, UPSTREAM);
    }
    c.finish("by_input");
}

#[test]
fn every_extra_input_matches_upstream_and_kubelet() {
    let Some(data) = load_vectors() else { return };
    let entries = data["extra_inputs_not_in_upstream_tables"]
        .as_array()
        .expect("extra_inputs_not_in_upstream_tables");
    let mut c = Checker::default();
    c.eq("number of extra entries", entries.len(), 28);
    for entry in entries {
        check_entry(&mut c, "extra", entry, DigestAlgorithms::KUBELET);
    }
    c.finish("extra inputs");
}

#[test]
fn go_path_match_helper_behaves_like_go() {
    // The TestMatch table leans on this helper; pin its own behaviour.
    assert!(path_match("foo/*/ba[rz]", "foo/a/bar"));
    assert!(!path_match("foo/*/ba[rz]", "foo/a/b/bar"));
    assert!(!path_match("foo/*/ba[rz]", "foo/a/bat"));
    assert!(path_match("a?c", "abc"));
    assert!(!path_match("a?c", "a/c"));
    assert!(path_match("[^a-c]x", "dx"));
    assert!(!path_match("[^a-c]x", "bx"));
    assert!(path_match("a\\*", "a*"));
}
