//! Conformance of `pullcheck::credentials::{dockerconfig, keyring}` with the kubelet's
//! `pkg/credentialprovider` (`keyring.go`, `config.go`, `secrets/secrets.go`), against
//! `../shared/vectors/keyring_cases.json` (outputs of the upstream Go code).
//!
//! Every table is checked:
//! * `lookup_cases`: the secrets go through the same path as a pod's (type gate, payload
//!   parse, one keyring for all secrets in order), then the lookup. The keyring error, the
//!   index (de-duplicated keys in order) and the credentials tried, in order, are compared.
//!   Where a derived case names the pod's `image`, the repository passed to the lookup is
//!   `ImageRef::name()` of it, as in production, and must equal the vector's `lookup_key`.
//! * `upstream_TestURLsMatch` and `upstream_TestIsDefaultRegistryMatch`.
//! * `docker_config_entry_decode` and `decode_auth_field`, by wrapping the entry (or the
//!   `auth` value) in a `.dockercfg` payload.
//!
//! Nondeterminism: within one secret, two entries that normalize to the same key are
//! appended in Go map order. In the expected matches such credentials form a run with the same
//! key and the same secret (only one secret's entries can do that), so each such run is
//! compared as a multiset.
//!
//! Passwords are compared through `Credential::fingerprint` and never printed.
//!
//! Go version: the vectors were produced with Go 1.19. Since Go 1.24 (every kubelet since
//! 1.33), `encoding/json` keeps the field path of a type error raised inside
//! `DockerConfigEntry.UnmarshalJSON` and puts the outer path in front of it, so the message
//! names the entry's field too. The cases whose text differs for that reason are listed in
//! `GO_1_24_MESSAGES`; the test checks that the vectors still hold the old text (so the list
//! is noticed when the vectors are regenerated) and expects the new one.

use std::collections::BTreeMap;

use crate::common::vectors::{self, Checker};
use base64::Engine;
use pullcheck::credentials::dockerconfig::{self, SecretKind};
use pullcheck::credentials::keyring::{self, Keyring};
use pullcheck::credentials::Credential;
use pullcheck::reference::ImageRef;
use serde_json::Value;

/// (case id, message in the vectors (Go 1.19), message of a Go 1.24+ kubelet).
const GO_1_24_MESSAGES: &[(&str, &str, &str)] = &[(
    "parse.email_wrong_type",
    "json: cannot unmarshal bool into Go struct field DockerConfigJSON.auths of type string",
    "json: cannot unmarshal bool into Go struct field DockerConfigJSON.auths.email of type string",
)];

fn load_vectors() -> Option<Value> {
    vectors::load("keyring_cases.json")
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("vectors: {key} is not an array"))
}

fn string<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("vectors: {key} is not a string in {v}"))
}

fn opt_string<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn boolean(v: &Value, key: &str) -> bool {
    v.get(key)
        .and_then(Value::as_bool)
        .unwrap_or_else(|| panic!("vectors: {key} is not a bool in {v}"))
}

/// A Secret of the vectors: `data_decoded` holds the payload as text, `data` (if a vector
/// uses it) base64 as in a Secret object.
fn secret_data(secret: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut data = BTreeMap::new();
    if let Some(decoded) = secret.get("data_decoded").and_then(Value::as_object) {
        for (k, v) in decoded {
            let text = v.as_str().expect("data_decoded values are strings");
            data.insert(k.clone(), text.as_bytes().to_vec());
        }
    }
    if let Some(encoded) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in encoded {
            let text = v.as_str().expect("data values are strings");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("data values are base64");
            data.insert(k.clone(), bytes);
        }
    }
    data
}

/// What one tried credential is compared on (the password only by fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Tried {
    key: String,
    source: String,
    username: String,
    secret: String,
}

impl Tried {
    fn new(key: &str, credential: &Credential) -> Tried {
        Tried {
            key: key.to_string(),
            source: credential.source().to_string(),
            username: credential.username().to_string(),
            secret: format!("{:?}", credential.fingerprint()),
        }
    }
}

fn check_lookup_case(c: &mut Checker, case: &Value) {
    let id = string(case, "id");
    let expected = case.get("expected").expect("expected");

    // The repository the kubelet looks up: ImageRef::name() of the pod's image.
    let lookup_key = string(case, "lookup_key");
    let repo = match opt_string(case, "image") {
        Some(image) => match ImageRef::parse_normalized(image) {
            Ok(reference) => {
                let name = reference.name().to_string();
                c.eq(
                    &format!("{id}: ImageRef::name()"),
                    name.as_str(),
                    lookup_key,
                );
                name
            }
            Err(e) => {
                c.fail(id, format!("image {image:?} does not parse: {e}"));
                return;
            }
        },
        None => lookup_key.to_string(),
    };

    // MakeDockerKeyring: skip what is not a pull secret, fail on the first bad payload.
    let mut ring = Keyring::new();
    let mut keyring_error = None;
    for secret in array(case, "secrets") {
        let name = string(secret, "name");
        let data = secret_data(secret);
        let Ok((kind, payload)) =
            dockerconfig::pull_secret_payload(opt_string(secret, "type"), &data)
        else {
            continue;
        };
        match dockerconfig::parse(kind, payload) {
            Ok(entries) => ring.add(name, &entries),
            Err(e) => {
                keyring_error = Some(e.to_string());
                break;
            }
        }
    }

    let mut want_error = opt_string(expected, "keyring_error").map(str::to_string);
    if let Some((_, old, new)) = GO_1_24_MESSAGES.iter().find(|(case, _, _)| *case == id) {
        c.eq(
            &format!("{id}: vector message (Go 1.19)"),
            want_error.as_deref(),
            Some(*old),
        );
        want_error = Some(new.to_string());
    }
    c.eq(
        &format!("{id}: keyring error"),
        keyring_error.clone(),
        want_error,
    );

    let (got_index, got_tried) = if keyring_error.is_some() {
        (Vec::new(), Vec::new())
    } else {
        let mut index: Vec<String> = Vec::new();
        for (key, _) in ring.keys() {
            if index.last() != Some(&key) {
                index.push(key);
            }
        }
        let tried: Vec<Tried> = ring
            .lookup(&repo)
            .iter()
            .map(|m| Tried::new(&m.key, &m.credential))
            .collect();
        (index, tried)
    };

    let want_index: Vec<String> = array(expected, "keyring_index")
        .iter()
        .map(|k| k.as_str().expect("index keys are strings").to_string())
        .collect();
    c.eq(&format!("{id}: keyring index"), got_index, want_index);

    let want_tried: Vec<Tried> = array(expected, "matches")
        .iter()
        .map(|m| {
            let source = string(m, "source_secret");
            let credential = Credential::new(string(m, "username"), string(m, "password"), source);
            Tried::new(string(m, "matched_key"), &credential)
        })
        .collect();
    c.eq(
        &format!("{id}: ok"),
        !got_tried.is_empty(),
        boolean(expected, "ok"),
    );
    compare_tried(c, id, got_tried, want_tried);
}

/// Order matters, except inside a run of the same key from the same secret (Go map order).
fn compare_tried(c: &mut Checker, id: &str, got: Vec<Tried>, want: Vec<Tried>) {
    if got.len() != want.len() {
        c.eq(&format!("{id}: credentials tried"), got, want);
        return;
    }
    let mut start = 0;
    while start < want.len() {
        let mut end = start + 1;
        while end < want.len()
            && want[end].key == want[start].key
            && want[end].source == want[start].source
        {
            end += 1;
        }
        let mut got_run = got[start..end].to_vec();
        let mut want_run = want[start..end].to_vec();
        if end - start > 1 {
            got_run.sort();
            want_run.sort();
        }
        c.eq(
            &format!("{id}: credentials tried [{start}..{end}]"),
            got_run,
            want_run,
        );
        start = end;
    }
}

/// One entry, decoded as the only entry of a `.dockercfg` payload.
fn decode_single_entry(entry_json: &str) -> Result<dockerconfig::DockerConfigEntry, String> {
    let payload = format!("{{\"registry.example\":{entry_json}}}");
    match dockerconfig::parse(SecretKind::DockerCfg, payload.as_bytes()) {
        Ok(mut entries) if entries.len() == 1 => Ok(entries.remove(0)),
        Ok(entries) => Err(format!("{} entries instead of 1", entries.len())),
        Err(e) => Err(e.to_string()),
    }
}

fn check_entry(
    c: &mut Checker,
    id: &str,
    got: Result<dockerconfig::DockerConfigEntry, String>,
    case: &Value,
) {
    let fail = boolean(case, "fail");
    match got {
        Err(e) if !fail => c.fail(id, format!("unexpected error: {e}")),
        Ok(_) if fail => c.fail(id, "decoded, but the kubelet fails"),
        Err(_) => c.pass(),
        Ok(entry) => {
            c.eq(
                &format!("{id}: username"),
                entry.username.as_str(),
                string(case, "username"),
            );
            // Compared without printing either password.
            let same_password = entry.password == string(case, "password");
            c.eq(&format!("{id}: password matches"), same_password, true);
            if let Some(email) = opt_string(case, "email") {
                c.eq(&format!("{id}: email"), entry.email.as_str(), email);
            }
        }
    }
}

#[test]
fn keyring_lookups_match_the_kubelet() {
    let Some(v) = load_vectors() else { return };
    let cases = array(&v, "lookup_cases");
    let mut c = Checker::default();
    for case in cases {
        check_lookup_case(&mut c, case);
    }
    // At least the index, the error and one comparison per case.
    c.finish_at_least("lookup_cases", cases.len() * 3);
}

#[test]
fn urls_match_follows_upstream_table() {
    let Some(v) = load_vectors() else { return };
    let cases = array(&v, "upstream_TestURLsMatch");
    let mut c = Checker::default();
    for case in cases {
        let glob = string(case, "glob");
        let target = string(case, "target");
        c.eq(
            &format!("URLsMatchStr({glob:?}, {target:?})"),
            keyring::urls_match(glob, target),
            boolean(case, "match"),
        );
    }
    c.finish_at_least("upstream_TestURLsMatch", cases.len());
}

#[test]
fn default_registry_match_follows_upstream_table() {
    let Some(v) = load_vectors() else { return };
    let cases = array(&v, "upstream_TestIsDefaultRegistryMatch");
    let mut c = Checker::default();
    for case in cases {
        let image = string(case, "image");
        c.eq(
            &format!("isDefaultRegistryMatch({image:?})"),
            keyring::is_default_registry_match(image),
            boolean(case, "expected"),
        );
    }
    c.finish_at_least("upstream_TestIsDefaultRegistryMatch", cases.len());
}

#[test]
fn config_entries_decode_like_the_kubelet() {
    let Some(v) = load_vectors() else { return };
    let mut c = Checker::default();
    let entries = array(&v, "docker_config_entry_decode");
    for case in entries {
        let id = string(case, "id");
        check_entry(
            &mut c,
            id,
            decode_single_entry(string(case, "input_json")),
            case,
        );
    }
    let auths = array(&v, "decode_auth_field");
    for case in auths {
        let id = string(case, "id");
        let auth = serde_json::to_string(string(case, "auth")).expect("json string");
        check_entry(
            &mut c,
            id,
            decode_single_entry(&format!("{{\"auth\":{auth}}}")),
            case,
        );
    }
    c.finish_at_least("config decode tables", entries.len() + auths.len());
}
