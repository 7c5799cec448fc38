//! Pull-secret payloads read exactly as the kubelet reads them.
//!
//! The kubelet (`pkg/credentialprovider/secrets/secrets.go`, `config.go`) runs Go's
//! `encoding/json` over the payload into `DockerConfigJSON` (`{"auths": {...}}`) or the bare
//! `DockerConfig` map, and each entry through `DockerConfigEntry.UnmarshalJSON`, which decodes
//! `auth`. Anything that differs from Go here changes which credentials a pod gets, so the
//! payload is read with Go's rules (`go::json`, `go::base64`) rather than serde, into the
//! kubelet's types as this module has them:
//!
//! * a syntax check over the whole payload before anything is decoded (Go's `checkValid`);
//! * struct fields matched case-insensitively with Go's folding (`"Auths"`, `"USERNAME"` and
//!   `"uſername"` all count), unknown fields ignored, later duplicates winning, a second
//!   `"auths"` object merging into the first and a `null` one emptying it;
//! * JSON strings decoded as Go does (invalid UTF-8 and lone surrogates become U+FFFD);
//! * type mismatches remembered and reported only after decoding finishes, while an error
//!   from an entry (its own type errors, or its `auth`) stops decoding at once, with Go's
//!   message text as Go 1.24+ writes it (`json: cannot unmarshal bool into Go struct field
//!   DockerConfigJSON.auths.email of type string`);
//! * `auth` decoded with Go's base64 decoder (newlines skipped, non-canonical trailing bits
//!   accepted, `illegal base64 data at input byte N`).
//!
//! Error messages never contain bytes of the payload: a Go syntax error names the offending
//! character, ours gives its byte offset instead, because that character may belong to a
//! password.

use std::collections::BTreeMap;
use std::fmt;

use super::go::base64;
use super::go::json::{self, Doc, Kind, ObjectMap};

/// Secret type whose `.dockerconfigjson` the kubelet reads (`v1.SecretTypeDockerConfigJson`).
pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// Secret type whose `.dockercfg` the kubelet reads (`v1.SecretTypeDockercfg`).
pub const DOCKER_CFG_TYPE: &str = "kubernetes.io/dockercfg";
/// Data key of a `kubernetes.io/dockerconfigjson` secret.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// Data key of a `kubernetes.io/dockercfg` secret.
pub const DOCKER_CFG_KEY: &str = ".dockercfg";

/// Which of the two pull-secret layouts a payload uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// `{"auths": {<registry>: entry}}` (also the node's `config.json`).
    DockerConfigJson,
    /// The legacy bare map `{<registry>: entry}`.
    DockerCfg,
}

impl SecretKind {
    /// The Secret `type` that selects this layout.
    pub fn secret_type(self) -> &'static str {
        match self {
            SecretKind::DockerConfigJson => DOCKER_CONFIG_JSON_TYPE,
            SecretKind::DockerCfg => DOCKER_CFG_TYPE,
        }
    }

    /// The `data` key the payload is read from.
    pub fn data_key(self) -> &'static str {
        match self {
            SecretKind::DockerConfigJson => DOCKER_CONFIG_JSON_KEY,
            SecretKind::DockerCfg => DOCKER_CFG_KEY,
        }
    }
}

/// Why the kubelet does not use a referenced Secret as a pull secret. It skips such a secret
/// silently, so the pod pulls as if the reference were not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAPullSecret {
    /// Only the two docker-config types count; an `Opaque` secret holding a
    /// `.dockerconfigjson` is ignored.
    #[error(
        "its type is {}, and the kubelet only uses secrets of type kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg",
        display_type(.secret_type)
    )]
    WrongType { secret_type: Option<String> },
    /// The type is right but the data key that type requires is absent.
    #[error("it is of type {} but has no {} key", .kind.secret_type(), .kind.data_key())]
    MissingKey { kind: SecretKind },
    /// The data key is present but empty.
    #[error("its {} is empty", .kind.data_key())]
    EmptyPayload { kind: SecretKind },
}

fn display_type(secret_type: &Option<String>) -> String {
    match secret_type.as_deref() {
        None | Some("") => "not set".to_string(),
        Some(t) => t.to_string(),
    }
}

/// The kubelet's secret type gate (`secretsToTrackedDockerConfigs`): a secret counts only as
/// `kubernetes.io/dockerconfigjson` with a non-empty `.dockerconfigjson`, or as
/// `kubernetes.io/dockercfg` with a non-empty `.dockercfg`. `data` holds the already
/// base64-decoded values of the Secret's `data` map.
pub fn pull_secret_payload<'a>(
    secret_type: Option<&str>,
    data: &'a BTreeMap<String, Vec<u8>>,
) -> Result<(SecretKind, &'a [u8]), NotAPullSecret> {
    let kind = match secret_type {
        Some(DOCKER_CONFIG_JSON_TYPE) => SecretKind::DockerConfigJson,
        Some(DOCKER_CFG_TYPE) => SecretKind::DockerCfg,
        other => {
            return Err(NotAPullSecret::WrongType {
                secret_type: other.map(str::to_string),
            })
        }
    };
    match data.get(kind.data_key()) {
        None => Err(NotAPullSecret::MissingKey { kind }),
        Some(bytes) if bytes.is_empty() => Err(NotAPullSecret::EmptyPayload { kind }),
        Some(bytes) => Ok((kind, bytes.as_slice())),
    }
}

/// One registry entry of a docker config, after `auth` has been applied.
#[derive(Clone, PartialEq, Eq)]
pub struct DockerConfigEntry {
    /// The registry key exactly as written (`https://index.docker.io/v1/`, `ghcr.io`, ...).
    pub key: String,
    pub username: String,
    pub password: String,
    /// Carried along by the kubelet but never used for a pull.
    pub email: String,
}

impl fmt::Debug for DockerConfigEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfigEntry")
            .field("key", &self.key)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("email", &self.email)
            .finish()
    }
}

/// What the kubelet would report for a payload it cannot decode. With any of these in any
/// referenced pull secret, `MakeDockerKeyring` fails and every image of the pod fails to pull.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    /// Go: `unexpected end of JSON input`.
    #[error("unexpected end of JSON input")]
    UnexpectedEnd,
    /// Go: `invalid character 'x' <context>`; the character is replaced by its offset so no
    /// payload byte reaches a message.
    #[error("invalid character at byte offset {offset} {context}")]
    Syntax { offset: usize, context: String },
    /// Go: `json: cannot unmarshal <value> into Go ...`.
    #[error("{0}")]
    Type(JsonTypeError),
    /// Go's `base64.CorruptInputError` from the `auth` field of entry `key`.
    #[error("illegal base64 data at input byte {offset}")]
    AuthBase64 { key: String, offset: usize },
    /// The decoded `auth` field of entry `key` has no `:`.
    #[error("unable to parse auth field, must be formatted as base64(username:password)")]
    AuthNoColon { key: String },
}

impl From<json::SyntaxError> for DockerConfigError {
    fn from(e: json::SyntaxError) -> Self {
        match e {
            json::SyntaxError::UnexpectedEnd => DockerConfigError::UnexpectedEnd,
            json::SyntaxError::InvalidCharacter { offset, context } => {
                DockerConfigError::Syntax { offset, context }
            }
        }
    }
}

impl DockerConfigError {
    /// The registry key of the entry at fault, when the error belongs to one entry.
    pub fn entry_key(&self) -> Option<&str> {
        match self {
            DockerConfigError::AuthBase64 { key, .. } | DockerConfigError::AuthNoColon { key } => {
                Some(key)
            }
            DockerConfigError::Type(t) => t.entry_key.as_deref(),
            DockerConfigError::UnexpectedEnd | DockerConfigError::Syntax { .. } => None,
        }
    }
}

/// Go's `json.UnmarshalTypeError`, with the Go names the kubelet's types have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonTypeError {
    /// The JSON kind found: `string`, `number`, `bool`, `array` or `object`.
    pub value: &'static str,
    /// Go struct context (`DockerConfigJSON`), when Go reports one.
    pub go_struct: Option<&'static str>,
    /// Go's field path below `go_struct` (`["auths", "email"]`), joined with `.` in the message.
    pub field: Vec<&'static str>,
    /// The Go type that was expected (`string`, `credentialprovider.DockerConfig`, ...).
    pub go_type: &'static str,
    /// The registry key of the entry at fault, when inside one (not part of Go's message).
    pub entry_key: Option<String>,
}

impl fmt::Display for JsonTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.go_struct.is_some() || !self.field.is_empty() {
            write!(
                f,
                "json: cannot unmarshal {} into Go struct field {}.{} of type {}",
                self.value,
                self.go_struct.unwrap_or(""),
                self.field.join("."),
                self.go_type
            )
        } else {
            write!(
                f,
                "json: cannot unmarshal {} into Go value of type {}",
                self.value, self.go_type
            )
        }
    }
}

/// Parses a pull secret's payload as the kubelet does. Entries come back in the order their
/// keys first appear; a key written twice keeps its last value (Go map semantics).
pub fn parse(
    kind: SecretKind,
    payload: &[u8],
) -> Result<Vec<DockerConfigEntry>, DockerConfigError> {
    json::check_valid(payload)?;
    let doc = Doc::new(payload);
    let start = doc.ws(0);
    match kind {
        SecretKind::DockerConfigJson => decode_config_json(doc, start),
        SecretKind::DockerCfg => decode_docker_cfg(doc, start),
    }
}

/// A plain docker `config.json` file (the node keyring, `--docker-config`): the kubelet reads
/// it with the same `DockerConfigJSON` type as a `.dockerconfigjson` secret.
pub fn parse_config_json(bytes: &[u8]) -> Result<Vec<DockerConfigEntry>, DockerConfigError> {
    parse(SecretKind::DockerConfigJson, bytes)
}

// ---------------------------------------------------------------------------------------------
// Decoding into the kubelet's types.

const GO_DOCKER_CONFIG_JSON: &str = "DockerConfigJSON";
const GO_ENTRY_WITH_AUTH: &str = "dockerConfigEntryWithAuth";

/// Go keeps the first type mismatch and keeps decoding (`decodeState.saveError`).
#[derive(Default)]
struct Saved(Option<DockerConfigError>);

impl Saved {
    fn type_error(
        &mut self,
        found: Kind,
        go_struct: Option<&'static str>,
        field: Option<&'static str>,
        go_type: &'static str,
    ) {
        if self.0.is_none() {
            self.0 = Some(DockerConfigError::Type(JsonTypeError {
                value: found.go_name(),
                go_struct,
                field: field.into_iter().collect(),
                go_type,
                entry_key: None,
            }));
        }
    }
}

/// `DockerConfigJSON{Auths DockerConfig "auths"; HTTPHeaders map[string]string "HttpHeaders"}`.
fn decode_config_json(
    doc: Doc<'_>,
    at: usize,
) -> Result<Vec<DockerConfigEntry>, DockerConfigError> {
    let mut saved = Saved::default();
    let mut auths = ObjectMap::default();
    match doc.kind(at) {
        Kind::Null => {}
        Kind::Object => {
            for (name, value_at) in doc.members(at) {
                if json::field_matches(&name, "auths") {
                    match doc.kind(value_at) {
                        // A null map field is set to nil, dropping what an earlier "auths" added.
                        Kind::Null => auths.clear(),
                        Kind::Object => {
                            for (key, entry_at) in doc.members(value_at) {
                                // The entry's own error stops decoding; Go then puts a type
                                // error under the outer field (`DockerConfigJSON.auths.email`).
                                let entry = decode_entry(doc, key, entry_at)
                                    .map_err(|e| with_context(e, GO_DOCKER_CONFIG_JSON, "auths"))?;
                                auths.insert(entry.key.clone(), entry);
                            }
                        }
                        other => saved.type_error(
                            other,
                            Some(GO_DOCKER_CONFIG_JSON),
                            Some("auths"),
                            "credentialprovider.DockerConfig",
                        ),
                    }
                } else if json::field_matches(&name, "HttpHeaders") {
                    // Ignored for pulls, but still decoded, so a wrong type is still an error.
                    match doc.kind(value_at) {
                        Kind::Null => {}
                        Kind::Object => {
                            for (_, header_at) in doc.members(value_at) {
                                match doc.kind(header_at) {
                                    Kind::String | Kind::Null => {}
                                    other => saved.type_error(
                                        other,
                                        Some(GO_DOCKER_CONFIG_JSON),
                                        Some("HttpHeaders"),
                                        "string",
                                    ),
                                }
                            }
                        }
                        other => saved.type_error(
                            other,
                            Some(GO_DOCKER_CONFIG_JSON),
                            Some("HttpHeaders"),
                            "map[string]string",
                        ),
                    }
                }
                // Every other member (credsStore, credHelpers, ...) is not a field: skipped.
            }
        }
        other => saved.type_error(other, None, None, "credentialprovider.DockerConfigJSON"),
    }
    match saved.0 {
        Some(e) => Err(e),
        None => Ok(auths.into_values()),
    }
}

/// `DockerConfig map[string]DockerConfigEntry`, the `.dockercfg` layout.
fn decode_docker_cfg(doc: Doc<'_>, at: usize) -> Result<Vec<DockerConfigEntry>, DockerConfigError> {
    let mut saved = Saved::default();
    let mut entries = ObjectMap::default();
    match doc.kind(at) {
        Kind::Null => {}
        Kind::Object => {
            for (key, entry_at) in doc.members(at) {
                // A bare map has no struct context: the entry's error is returned as is.
                let entry = decode_entry(doc, key, entry_at)?;
                entries.insert(entry.key.clone(), entry);
            }
        }
        other => saved.type_error(other, None, None, "credentialprovider.DockerConfig"),
    }
    match saved.0 {
        Some(e) => Err(e),
        None => Ok(entries.into_values()),
    }
}

/// `DockerConfigEntry.UnmarshalJSON`: decode into `dockerConfigEntryWithAuth` (username,
/// password, email, auth: nothing else), then let a non-empty `auth` replace username and
/// password.
fn decode_entry(
    doc: Doc<'_>,
    key: String,
    at: usize,
) -> Result<DockerConfigEntry, DockerConfigError> {
    let mut saved = Saved::default();
    let mut fields: [String; 4] = Default::default();
    const NAMES: [&str; 4] = ["username", "password", "email", "auth"];
    match doc.kind(at) {
        // UnmarshalJSON("null") decodes nothing: an entry with empty credentials.
        Kind::Null => {}
        Kind::Object => {
            for (name, value_at) in doc.members(at) {
                let Some(index) = NAMES.iter().position(|f| json::field_matches(&name, f)) else {
                    continue;
                };
                match doc.kind(value_at) {
                    Kind::String => fields[index] = doc.string(value_at).0,
                    // null leaves a string field as it was.
                    Kind::Null => {}
                    other => saved.type_error(
                        other,
                        Some(GO_ENTRY_WITH_AUTH),
                        Some(NAMES[index]),
                        "string",
                    ),
                }
            }
        }
        other => saved.type_error(
            other,
            None,
            None,
            "credentialprovider.dockerConfigEntryWithAuth",
        ),
    }
    if let Some(mut e) = saved.0 {
        if let DockerConfigError::Type(t) = &mut e {
            t.entry_key = Some(key);
        }
        return Err(e);
    }
    let [mut username, mut password, email, auth] = fields;
    if !auth.is_empty() {
        (username, password) = decode_auth(&key, &auth)?;
    }
    Ok(DockerConfigEntry {
        key,
        username,
        password,
        email,
    })
}

/// Go's `addErrorContext` at the end of the outer `json.Unmarshal`: a type error coming out of
/// an entry takes the outer struct, and the outer field path goes in front of the entry's own
/// field (Go 1.24+, as every kubelet since 1.33 is built with; Go 1.23 and older replaced the
/// entry's field, giving `DockerConfigJSON.auths` instead of `DockerConfigJSON.auths.email`).
fn with_context(
    e: DockerConfigError,
    go_struct: &'static str,
    field: &'static str,
) -> DockerConfigError {
    match e {
        DockerConfigError::Type(mut t) => {
            t.go_struct = Some(go_struct);
            t.field.insert(0, field);
            DockerConfigError::Type(t)
        }
        other => other,
    }
}

/// `decodeDockerConfigFieldAuth`: padded decoding if the *trimmed* field ends in `=`, else
/// unpadded, always over the *untrimmed* field; split on the first `:`; nothing trimmed.
fn decode_auth(key: &str, field: &str) -> Result<(String, String), DockerConfigError> {
    let padded = field.trim().ends_with('=');
    let decoded = base64::decode(field.as_bytes(), padded).map_err(|offset| {
        DockerConfigError::AuthBase64 {
            key: key.to_string(),
            offset,
        }
    })?;
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return Err(DockerConfigError::AuthNoColon {
            key: key.to_string(),
        });
    };
    // Go keeps arbitrary bytes in a string; a credential here must be UTF-8, so invalid
    // sequences become U+FFFD (such a password could not have matched anyway).
    Ok((
        String::from_utf8_lossy(&decoded[..colon]).into_owned(),
        String::from_utf8_lossy(&decoded[colon + 1..]).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_entries(payload: &str) -> Result<Vec<DockerConfigEntry>, DockerConfigError> {
        parse(SecretKind::DockerConfigJson, payload.as_bytes())
    }

    fn one(payload: &str) -> DockerConfigEntry {
        let mut entries = json_entries(payload).expect("parses");
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.remove(0)
    }

    fn auth_payload(auth: &str) -> String {
        format!(
            r#"{{"auths":{{"ghcr.io":{{"auth":{}}}}}}}"#,
            serde_json::to_string(auth).expect("json string")
        )
    }

    #[test]
    fn auth_field_decodes_like_the_kubelet() {
        // (auth field, Ok((user, pass)) or Err(kubelet message))
        type Expected<'a> = Result<(&'a str, &'a str), &'a str>;
        let cases: &[(&str, Expected)] = &[
            ("Zm9vOmJhcg==", Ok(("foo", "bar"))),
            // unpadded input is accepted (RawStdEncoding branch)
            ("Zm9vOmJhcg", Ok(("foo", "bar"))),
            ("dXNlcjpwYXNzMQ", Ok(("user", "pass1"))),
            // split on the FIRST colon: the password keeps the rest
            ("dTpwOnE=", Ok(("u", "p:q"))),
            ("dXNlcjpwYTpzcw==", Ok(("user", "pa:ss"))),
            // nothing trimmed: base64("foo:bar\n") keeps the newline in the password
            ("Zm9vOmJhcgo=", Ok(("foo", "bar\n"))),
            ("Zm9vOg==", Ok(("foo", ""))),
            ("OmJhcg==", Ok(("", "bar"))),
            (
                "cGFudHM=",
                Err("unable to parse auth field, must be formatted as base64(username:password)"),
            ),
            ("pants", Err("illegal base64 data at input byte 4")),
            // the field is not trimmed before decoding: leading space is at byte 0
            (" Zm9vOmJhcg==", Err("illegal base64 data at input byte 0")),
            // trailing space: TrimSpace picks the padded decoder, which then hits the space
            ("Zm9vOmJhcg== ", Err("illegal base64 data at input byte 12")),
            // ending in a single '=' picks the padded decoder, which needs "=="
            ("Zm9vOmJhcg=", Err("illegal base64 data at input byte 11")),
            // not ending in '=', so the unpadded decoder runs and the first '=' is the error
            (
                "Zm9vOmJhcg==Zm9v",
                Err("illegal base64 data at input byte 10"),
            ),
        ];
        for (auth, want) in cases {
            let got = json_entries(&auth_payload(auth));
            match (want, got) {
                (Ok((user, pass)), Ok(entries)) => {
                    assert_eq!(entries.len(), 1, "{auth:?}");
                    assert_eq!(entries[0].username, *user, "{auth:?}");
                    assert!(entries[0].password == *pass, "password of {auth:?}");
                }
                (Err(message), Err(e)) => {
                    assert_eq!(e.to_string(), *message, "{auth:?}");
                    assert_eq!(e.entry_key(), Some("ghcr.io"), "{auth:?}");
                }
                (want, got) => panic!("{auth:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn auth_overrides_username_and_password() {
        let e = one(
            r#"{"auths":{"ghcr.io":{"username":"foo","password":"bar","auth":"cGluZzpwb25n"}}}"#,
        );
        assert_eq!(e.username, "ping");
        assert!(e.password == "pong");
    }

    #[test]
    fn empty_auth_keeps_username_and_password() {
        let e = one(r#"{"auths":{"ghcr.io":{"username":"foo","password":"bar","auth":""}}}"#);
        assert_eq!(e.username, "foo");
        assert!(e.password == "bar");
    }

    #[test]
    fn token_fields_are_ignored_leaving_empty_credentials() {
        for payload in [
            r#"{"auths":{"myreg.azurecr.io":{"identitytoken":"eyJhbGciOi"}}}"#,
            r#"{"auths":{"myreg.azurecr.io":{"registrytoken":"abc","serveraddress":"x"}}}"#,
            r#"{"auths":{"myreg.azurecr.io":{}}}"#,
            r#"{"auths":{"myreg.azurecr.io":null}}"#,
        ] {
            let e = one(payload);
            assert_eq!(e.key, "myreg.azurecr.io");
            assert_eq!(e.username, "", "{payload}");
            assert!(e.password.is_empty(), "{payload}");
        }
    }

    #[test]
    fn field_names_match_case_insensitively_like_go() {
        let e = one(r#"{"AUTHS":{"ghcr.io":{"UserName":"u","PASSWORD":"p","Email":"e"}}}"#);
        assert_eq!((e.username.as_str(), e.email.as_str()), ("u", "e"));
        assert!(e.password == "p");
        // U+017F folds to 's' in Go's field matching
        let e = one("{\"auths\":{\"ghcr.io\":{\"u\u{17F}ername\":\"u\"}}}");
        assert_eq!(e.username, "u");
        // but a different name is not a field
        let e = one(r#"{"auths":{"ghcr.io":{"user":"u"}}}"#);
        assert_eq!(e.username, "");
    }

    #[test]
    fn other_top_level_members_are_ignored() {
        let entries = json_entries(
            r#"{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"},"HttpHeaders":{"User-Agent":"x"},"auths":{"a.io":{"username":"u"}}}"#,
        )
        .expect("parses");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].key, "a.io");
    }

    #[test]
    fn dockerconfigjson_without_auths_has_no_entries() {
        assert_eq!(
            json_entries(r#"{"ghcr.io":{"username":"u","password":"p"}}"#),
            Ok(vec![])
        );
        assert_eq!(json_entries("null"), Ok(vec![]));
        assert_eq!(json_entries(r#"{"auths":null}"#), Ok(vec![]));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_and_auths_objects_merge() {
        let entries = json_entries(
            r#"{"auths":{"a.io":{"username":"first"},"b.io":{}},"auths":{"a.io":{"username":"second"},"c.io":{}}}"#,
        )
        .expect("parses");
        let keys: Vec<_> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a.io", "b.io", "c.io"]);
        assert_eq!(entries[0].username, "second");
        // a later null auths empties the map
        let entries = json_entries(r#"{"auths":{"a.io":{}},"auths":null,"auths":{"b.io":{}}}"#)
            .expect("parses");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].key, "b.io");
    }

    #[test]
    fn a_secret_filled_with_88k_keys_parses_in_both_layouts() {
        // The Secret size limit (1 MiB) packed with distinct keys, ending with a repeat of
        // the first: tenant input, so its cost must stay linear in the number of keys.
        const KEYS: usize = 88_000;
        let mut map = String::from("{");
        for i in 0..KEYS {
            map.push_str(&format!("\"r{i}\":{{}},"));
        }
        map.push_str(r#""r0":{"username":"last"}}"#);
        let json = format!(r#"{{"auths":{map}}}"#);
        assert!(json.len() <= 1 << 20, "{} bytes", json.len());
        for (kind, payload) in [
            (SecretKind::DockerConfigJson, &json),
            (SecretKind::DockerCfg, &map),
        ] {
            let entries = parse(kind, payload.as_bytes()).expect("parses");
            assert_eq!(entries.len(), KEYS, "{kind:?}");
            assert_eq!(
                (entries[0].key.as_str(), entries[0].username.as_str()),
                ("r0", "last"),
                "{kind:?}"
            );
            assert_eq!(entries[KEYS - 1].key, format!("r{}", KEYS - 1), "{kind:?}");
        }
    }

    #[test]
    fn dockercfg_is_a_bare_map() {
        let entries = parse(
            SecretKind::DockerCfg,
            br#"{"https://index.docker.io/v1/":{"auth":"Zm9vOmJhcg==","email":"a@b.c"}}"#,
        )
        .expect("parses");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].key, "https://index.docker.io/v1/");
        assert_eq!(entries[0].username, "foo");
        assert_eq!(entries[0].email, "a@b.c");
        // an "auths" wrapper is just a registry key named "auths" there
        let entries = parse(SecretKind::DockerCfg, br#"{"auths":{"ghcr.io":{}}}"#).expect("parses");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].key, "auths");
    }

    #[test]
    fn type_errors_carry_go_messages() {
        let cases: &[(SecretKind, &str, &str)] = &[
            (
                SecretKind::DockerConfigJson,
                r#"{"auths":{"ghcr.io":{"email":false}}}"#,
                "json: cannot unmarshal bool into Go struct field DockerConfigJSON.auths.email of type string",
            ),
            (
                SecretKind::DockerCfg,
                r#"{"ghcr.io":{"email":false}}"#,
                "json: cannot unmarshal bool into Go struct field dockerConfigEntryWithAuth.email of type string",
            ),
            (
                SecretKind::DockerConfigJson,
                r#"{"auths":{"ghcr.io":"dXNlcjpwYXNz"}}"#,
                "json: cannot unmarshal string into Go struct field DockerConfigJSON.auths of type credentialprovider.dockerConfigEntryWithAuth",
            ),
            (
                SecretKind::DockerCfg,
                r#"{"ghcr.io":[1]}"#,
                "json: cannot unmarshal array into Go value of type credentialprovider.dockerConfigEntryWithAuth",
            ),
            (
                SecretKind::DockerConfigJson,
                r#"{"auths":["ghcr.io"]}"#,
                "json: cannot unmarshal array into Go struct field DockerConfigJSON.auths of type credentialprovider.DockerConfig",
            ),
            (
                SecretKind::DockerConfigJson,
                r#"{"auths":{},"HttpHeaders":{"X":1}}"#,
                "json: cannot unmarshal number into Go struct field DockerConfigJSON.HttpHeaders of type string",
            ),
            (
                SecretKind::DockerConfigJson,
                r#"[]"#,
                "json: cannot unmarshal array into Go value of type credentialprovider.DockerConfigJSON",
            ),
            (
                SecretKind::DockerCfg,
                r#""x""#,
                "json: cannot unmarshal string into Go value of type credentialprovider.DockerConfig",
            ),
        ];
        for (kind, payload, want) in cases {
            let got = parse(*kind, payload.as_bytes()).expect_err(payload);
            assert_eq!(got.to_string(), *want, "{payload}");
        }
    }

    #[test]
    fn entry_errors_stop_decoding_but_type_errors_are_reported_last() {
        // Go saves the first type mismatch and carries on; the auth error of a later entry
        // aborts and wins.
        let e = json_entries(r#"{"HttpHeaders":5,"auths":{"a.io":{"auth":"cGFudHM="}}}"#)
            .expect_err("fails");
        assert_eq!(e, DockerConfigError::AuthNoColon { key: "a.io".into() });
        // with no abort, the saved mismatch is the answer
        let e = json_entries(r#"{"HttpHeaders":5,"auths":{"a.io":{}}}"#).expect_err("fails");
        assert!(
            e.to_string()
                .contains("DockerConfigJSON.HttpHeaders of type map[string]string"),
            "{e}"
        );
        // inside one entry, type errors win over the auth field
        let e =
            json_entries(r#"{"auths":{"a.io":{"auth":"pants","username":1}}}"#).expect_err("fails");
        assert_eq!(
            e.to_string(),
            "json: cannot unmarshal number into Go struct field DockerConfigJSON.auths.username of type string"
        );
        assert_eq!(e.entry_key(), Some("a.io"));
    }

    #[test]
    fn syntax_errors_never_echo_payload_bytes() {
        let cases: &[(&str, DockerConfigError)] = &[
            (
                r#"{"auths":{"a.io":{"password":"s3cr3t"#,
                DockerConfigError::UnexpectedEnd,
            ),
            (
                r#"{"auths":{"a.io":{"password":s3cr3t}}}"#,
                DockerConfigError::Syntax {
                    offset: 29,
                    context: "looking for beginning of value".into(),
                },
            ),
        ];
        for (payload, want) in cases {
            let got = json_entries(payload).expect_err(payload);
            assert_eq!(&got, want, "{payload:?}");
            assert!(!got.to_string().contains("s3cr3t"), "{got}");
        }
        // the syntax check runs first: a later type error does not hide it
        assert_eq!(
            json_entries(r#"{"auths":[],"x":tru}"#),
            Err(DockerConfigError::Syntax {
                offset: 19,
                context: "in literal true (expecting 'e')".into(),
            })
        );
    }

    #[test]
    fn pull_secret_gate_follows_type_and_key() {
        let data = |k: &str, v: &[u8]| BTreeMap::from([(k.to_string(), v.to_vec())]);
        let json = data(DOCKER_CONFIG_JSON_KEY, b"{}");
        let cfg = data(DOCKER_CFG_KEY, b"{}");
        assert_eq!(
            pull_secret_payload(Some(DOCKER_CONFIG_JSON_TYPE), &json),
            Ok((SecretKind::DockerConfigJson, b"{}".as_slice()))
        );
        assert_eq!(
            pull_secret_payload(Some(DOCKER_CFG_TYPE), &cfg),
            Ok((SecretKind::DockerCfg, b"{}".as_slice()))
        );
        assert_eq!(
            pull_secret_payload(Some("Opaque"), &json),
            Err(NotAPullSecret::WrongType {
                secret_type: Some("Opaque".into())
            })
        );
        assert_eq!(
            pull_secret_payload(None, &json),
            Err(NotAPullSecret::WrongType { secret_type: None })
        );
        assert_eq!(
            pull_secret_payload(Some(DOCKER_CONFIG_JSON_TYPE), &cfg),
            Err(NotAPullSecret::MissingKey {
                kind: SecretKind::DockerConfigJson
            })
        );
        assert_eq!(
            pull_secret_payload(Some(DOCKER_CFG_TYPE), &data(DOCKER_CFG_KEY, b"")),
            Err(NotAPullSecret::EmptyPayload {
                kind: SecretKind::DockerCfg
            })
        );
        let message = NotAPullSecret::WrongType {
            secret_type: Some("Opaque".into()),
        }
        .to_string();
        assert!(
            message.contains("Opaque") && message.contains(DOCKER_CONFIG_JSON_TYPE),
            "{message}"
        );
    }

    #[test]
    fn debug_of_an_entry_redacts_the_password() {
        let e = one(r#"{"auths":{"ghcr.io":{"username":"robot","password":"s3cr3t-token"}}}"#);
        let text = format!("{e:?}");
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(text.contains("robot") && text.contains("ghcr.io"), "{text}");
    }

    #[test]
    fn node_config_json_reads_like_a_dockerconfigjson_secret() {
        let entries = parse_config_json(
            br#"{"auths":{"https://index.docker.io/v1/":{"auth":"Zm9vOmJhcg=="}},"credsStore":"desktop"}"#,
        )
        .expect("parses");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].username, "foo");
    }
}
