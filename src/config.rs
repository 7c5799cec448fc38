//! Command line, environment and the YAML configuration file, read into one typed [`Config`].
//!
//! Defaults are written once, in `config/default.yaml`: it is embedded, holds every key with its
//! value and documents it. A `--config` file is merged over it key by key, the few flags that
//! stand for a key (or their `PULLCHECK_*` variables) over that, and the result is read into
//! [`Config`], whose sections are the settings structs of the modules that use them. A setting
//! is therefore a documented key in the YAML and a field in its struct (and a flag, if it has
//! one); the structs' `Default`s are their sections of the embedded file.

use crate::cache::CacheSettings;
use crate::credentials::cluster::ClusterSettings;
pub use crate::credentials::cluster::KubernetesMode;
pub use crate::duration::parse as parse_duration;
use crate::platform::{MatcherKind, Platform};
use crate::policy::{Mode, PolicySettings};
use crate::registry::address::AddressRule;
use crate::registry::RegistrySettings;
use crate::server::{ServerSettings, Timeouts};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml_ng::{Mapping, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

/// The embedded default configuration (every key, with its default and what it does).
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.yaml");

/// How messages name the embedded file.
const EMBEDDED: &str = "embedded default configuration";

/// The API server gives a webhook at most 30 s; the review must answer before that.
const MAX_REVIEW_TIMEOUT: Duration = Duration::from_secs(29);

#[derive(Debug, Parser)]
#[command(
    name = "pullcheck",
    version,
    about = "Kubernetes admission webhook that rejects workloads whose images cannot be pulled",
    long_about = "pullcheck checks every container image of a Pod or pod template against its \
                  registry, the way the kubelet and containerd would pull it, and denies (enforce \
                  mode) or warns about (warn mode) images that would end in ImagePullBackOff."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the admission webhook over HTTPS.
    Serve(ServeArgs),
    /// Show what the kubelet would do with an image: normalization, pull policy, matching credentials, and the registry's answer.
    Explain(ExplainArgs),
    /// Generate a development CA and serving certificate (for local runs and tests).
    DevCerts(DevCertsArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PULLCHECK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Serving certificate (PEM); reloaded when it changes.
    #[arg(long, env = "PULLCHECK_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// Serving key (PEM); reloaded when it changes.
    #[arg(long, env = "PULLCHECK_TLS_KEY")]
    pub tls_key: PathBuf,
    /// YAML configuration file (see config/default.yaml for every key).
    #[arg(long, env = "PULLCHECK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Default mode for namespaces without a `pullcheck.io/mode` label.
    #[arg(long, env = "PULLCHECK_MODE", value_enum)]
    pub mode: Option<Mode>,
    #[command(flatten)]
    pub registries: RegistryArgs,
    /// Time budget for a whole review, e.g. 5s or 2500ms (keep it under the webhook's timeoutSeconds).
    #[arg(long, env = "PULLCHECK_TIMEOUT", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Log format: text on a terminal and JSON otherwise by default.
    #[arg(long, env = "PULLCHECK_LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. info or pullcheck=debug.
    #[arg(long, env = "PULLCHECK_LOG", default_value = "info")]
    pub log: String,
}

/// How to reach registries; shared by `serve` and `explain`.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Extra CA certificate (PEM) trusted for registries; repeatable (comma-separated in the env var).
    #[arg(
        long = "registry-ca",
        env = "PULLCHECK_REGISTRY_CA",
        value_delimiter = ','
    )]
    pub registry_ca: Vec<PathBuf>,
    /// Registry (HOST[:PORT]) spoken to over plain HTTP; repeatable (comma-separated in the env var).
    #[arg(
        long = "insecure-registry",
        env = "PULLCHECK_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    pub insecure_registry: Vec<String>,
    /// Address range or host pattern that registries may be reached at although the address
    /// policy refuses it by default (e.g. 127.0.0.0/8 for registries on loopback in tests);
    /// repeatable (comma-separated in the env var).
    #[arg(
        long = "allow-registry-address",
        env = "PULLCHECK_ALLOW_REGISTRY_ADDRESS",
        value_delimiter = ',',
        value_parser = parse_address_rule
    )]
    pub allow_registry_address: Vec<AddressRule>,
}

fn parse_address_rule(text: &str) -> Result<AddressRule, String> {
    AddressRule::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The image reference, exactly as written in the pod.
    pub image: String,
    /// A pull Secret manifest (YAML or JSON, as stored in Kubernetes); repeatable, in the order a pod lists them.
    #[arg(long = "pull-secret")]
    pub pull_secret: Vec<PathBuf>,
    /// A docker config.json, used like a node's keyring (tried after the pull secrets); repeatable.
    #[arg(long = "docker-config")]
    pub docker_config: Vec<PathBuf>,
    /// Read the secrets of --service-account in this namespace from the cluster instead of files.
    #[arg(long, requires = "service_account", conflicts_with_all = ["pull_secret", "docker_config"])]
    pub namespace: Option<String>,
    /// The service account whose imagePullSecrets a pod would get (with --namespace).
    #[arg(long = "service-account", requires = "namespace")]
    pub service_account: Option<String>,
    /// Do not contact the registry: only normalize and match credentials.
    #[arg(long)]
    pub offline: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub registries: RegistryArgs,
    /// Time budget for the check.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DevCertsArgs {
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into.
    #[arg(long, default_value = "certs-dev/out")]
    pub out: PathBuf,
    /// Service name the certificate must be valid for inside the cluster.
    #[arg(long, default_value = "pullcheck")]
    pub service: String,
    /// Namespace of that service.
    #[arg(long, default_value = "pullcheck")]
    pub namespace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

/// The configuration file's keys, typed: the embedded defaults, the file and the flags together.
///
/// Without `deny_unknown_fields`, which serde does not allow beside `flatten`: a key the
/// embedded file does not have is refused by [`merge`] before this is read, and a test holds the
/// embedded file and these fields to the same keys.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// For namespaces without a `pullcheck.io/mode` label.
    pub mode: Mode,
    #[serde(rename = "timeout", with = "crate::duration")]
    pub review_timeout: Duration,
    pub max_body_bytes: usize,
    /// `registryFailure` and `mutableTags` stand at the top level of the file.
    #[serde(flatten)]
    pub policy: PolicySettings,
    pub registries: RegistrySettings,
    pub cache: CacheSettings,
    pub kubernetes: ClusterSettings,
    pub node_credentials: NodeCredentialSettings,
    pub platforms: PlatformSettings,
    pub server: Timeouts,
}

/// Everything `serve` needs, validated: the flags that are not configuration keys, and the
/// configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub config: Config,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {detail}")]
    Parse { path: String, detail: String },
    #[error("configuration file {path}: unknown key `{key}` (known there: {known})")]
    UnknownKey {
        path: String,
        key: String,
        known: String,
    },
    #[error("configuration key `{key}`: {detail}")]
    Value { key: String, detail: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Credentials nodes have that pods do not show: the `nodeCredentials:` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCredentialSettings {
    /// A docker config.json with the nodes' own credentials (tried after the pod's secrets).
    pub docker_config: Option<PathBuf>,
    /// Registries nodes pull with credentials pullcheck cannot see (credential providers).
    #[serde(deserialize_with = "registry_patterns")]
    pub registries: Vec<String>,
}

/// Which platform matcher nodes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MatcherChoice {
    /// Per node, from `status.nodeInfo.containerRuntimeVersion`.
    Auto,
    ContainerdOnly,
    ContainerdStrict,
    Crio,
}

impl MatcherChoice {
    pub fn kind(self) -> Option<MatcherKind> {
        match self {
            MatcherChoice::Auto => None,
            MatcherChoice::ContainerdOnly => Some(MatcherKind::ContainerdOnly),
            MatcherChoice::ContainerdStrict => Some(MatcherKind::ContainerdStrict),
            MatcherChoice::Crio => Some(MatcherKind::CriO),
        }
    }
}

/// The platform check: the `platforms:` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlatformSettings {
    pub enabled: bool,
    /// Fixed node platforms instead of watching Nodes (for clusters where pullcheck may not).
    #[serde(with = "platform_list")]
    pub nodes: Vec<Platform>,
    pub matcher: MatcherChoice,
    /// Also read single-platform images' configs to warn about exec format errors.
    pub check_single_manifests: bool,
}

/// Read once: the embedded file cannot change, and tests build many default structs.
static DEFAULTS: LazyLock<Config> = LazyLock::new(|| {
    Config::load(None).expect("config/default.yaml reads into Config (config::tests check it)")
});

/// Each section's `Default` is that section of the embedded file, so no value is written twice.
macro_rules! defaults_from_embedded_file {
    ($($ty:ty => $section:ident),* $(,)?) => {$(
        impl Default for $ty {
            fn default() -> Self {
                DEFAULTS.$section.clone()
            }
        }
    )*};
}

defaults_from_embedded_file! {
    PolicySettings => policy,
    RegistrySettings => registries,
    CacheSettings => cache,
    ClusterSettings => kubernetes,
    Timeouts => server,
}

impl Config {
    /// The embedded defaults alone.
    pub fn defaults() -> Config {
        DEFAULTS.clone()
    }

    /// The embedded defaults with `file` (its text, and its name for messages) merged over them.
    pub fn load(file: Option<(&str, &str)>) -> Result<Config, ConfigError> {
        let mut tree = yaml(DEFAULT_CONFIG, EMBEDDED)?;
        if let Some((text, origin)) = file {
            merge(&mut tree, yaml(text, origin)?, "").map_err(|e| ConfigError::UnknownKey {
                path: origin.to_string(),
                key: e.key,
                known: e.known,
            })?;
        }
        let tree = Value::Mapping(tree);
        // serde's `flatten` hands these keys over without their names, so a bad value there
        // would be reported against the whole file; read alone first, its message names the key.
        typed::<PolicySettings>(tree.clone())?;
        typed(tree)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let timeout = self.review_timeout;
        if timeout.is_zero() || timeout > MAX_REVIEW_TIMEOUT {
            return Err(ConfigError::Invalid(format!(
                "timeout must be between 1ms and 29s (the API server allows at most 30s per webhook), got {timeout:?}"
            )));
        }
        Ok(())
    }
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => Some((read_file(path)?, path.display().to_string())),
            None => None,
        };
        Settings::build(
            args,
            file.as_ref()
                .map(|(text, origin)| (text.as_str(), origin.as_str())),
        )
    }

    /// Defaults, then the file's text, then the flags.
    pub fn build(args: &ServeArgs, file: Option<(&str, &str)>) -> Result<Settings, ConfigError> {
        let mut config = Config::load(file)?;
        args.overlay(&mut config);
        config.validate()?;
        Ok(Settings {
            listen: args.listen,
            tls_cert: args.tls_cert.clone(),
            tls_key: args.tls_key.clone(),
            config,
        })
    }

    /// The listener: address and certificate from the flags, timeouts from the configuration.
    pub fn server(&self) -> ServerSettings {
        ServerSettings {
            timeouts: self.config.server,
            ..ServerSettings::new(self.listen, &self.tls_cert, &self.tls_key)
        }
    }
}

impl ServeArgs {
    /// The flags that stand for a key, over the file's values.
    fn overlay(&self, config: &mut Config) {
        if let Some(mode) = self.mode {
            config.mode = mode;
        }
        if let Some(timeout) = self.timeout {
            config.review_timeout = timeout;
        }
        self.registries.apply(&mut config.registries);
    }
}

impl RegistryArgs {
    /// Adds the flags' CAs and insecure registries to `settings` (to the file's, not instead).
    pub fn apply(&self, settings: &mut RegistrySettings) {
        settings
            .extra_ca_files
            .extend(self.registry_ca.iter().cloned());
        settings
            .insecure_registries
            .extend(self.insecure_registry.iter().cloned());
        settings
            .address_policy
            .allow
            .extend(self.allow_registry_address.iter().cloned());
    }
}

/// A YAML document's keys; an empty document (or one of comments only) has none.
fn yaml(text: &str, origin: &str) -> Result<Mapping, ConfigError> {
    serde_yaml_ng::from_str::<Option<Mapping>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            detail: e.to_string(),
        })
}

/// A key of `over` that `base` does not have.
#[derive(Debug)]
struct UnknownKey {
    /// Dotted from the top: `cache.tagTtl`.
    key: String,
    /// The keys `base` has at that level, for the message.
    known: String,
}

/// Lays `over` onto `base` key by key: a mapping merges into a mapping, anything else replaces
/// what it lands on (a list replaces the default list rather than adding to it). `base` starts
/// as the embedded file, which has every key, so a key it lacks is a mistake in `over`.
fn merge(base: &mut Mapping, over: Mapping, prefix: &str) -> Result<(), UnknownKey> {
    for (key, value) in over {
        let path = dotted(prefix, &key);
        let Some(slot) = base.get_mut(&key) else {
            let known: Vec<String> = base.keys().map(key_name).collect();
            return Err(UnknownKey {
                key: path,
                known: known.join(", "),
            });
        };
        match (slot, value) {
            // A section whose keys are all commented out says nothing.
            (Value::Mapping(_), Value::Null) => {}
            (Value::Mapping(slot), Value::Mapping(value)) => merge(slot, value, &path)?,
            (slot, value) => *slot = value,
        }
    }
    Ok(())
}

/// `key` under `prefix`, as messages write it: `cache.tagTtl`.
fn dotted(prefix: &str, key: &Value) -> String {
    match prefix {
        "" => key_name(key),
        _ => format!("{prefix}.{}", key_name(key)),
    }
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(name) => name.clone(),
        other => serde_yaml_ng::to_string(other)
            .map(|text| text.trim().to_string())
            .unwrap_or_else(|_| format!("{other:?}")),
    }
}

/// `tree` read into `T`; an error names the key it is about.
fn typed<T: DeserializeOwned>(tree: Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(tree).map_err(|e| ConfigError::Value {
        key: e.path().to_string(),
        detail: e.into_inner().to_string(),
    })
}

/// A list of strings, each read by `parse`; the message names the entry.
fn each<'de, D, T>(
    deserializer: D,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
{
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|entry| parse(entry).map_err(D::Error::custom))
        .collect()
}

/// `platforms.nodes` entries are written `os/arch[/variant]`.
mod platform_list {
    use super::*;

    pub fn serialize<S: Serializer>(nodes: &[Platform], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(nodes.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Platform>, D::Error> {
        // The parser's messages quote the entry.
        each(deserializer, |spec| {
            Platform::parse(spec).map_err(|e| e.to_string())
        })
    }
}

fn registry_patterns<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    each(deserializer, registry_pattern)
}

/// A `nodeCredentials.registries` entry in the keyring's pattern syntax (`*.azurecr.io`,
/// `registry.corp.io:5000/team`): a scheme is dropped as the kubelet drops it from keys;
/// anything that could never match an image is refused rather than silently ignored.
fn registry_pattern(pattern: &str) -> Result<String, String> {
    let trimmed = pattern
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    if trimmed.is_empty() || trimmed.contains(char::is_whitespace) || trimmed.starts_with('/') {
        return Err(format!(
            "{pattern:?} is not a registry pattern (e.g. *.dkr.ecr.*.amazonaws.com)"
        ));
    }
    Ok(trimmed.to_string())
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FailureAction;
    use std::collections::BTreeSet;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec![
            "pullcheck",
            "serve",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("parse").command {
            Command::Serve(a) => a,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn file(text: &str) -> Result<Config, String> {
        Settings::build(&args(&[]), Some((text, "f.yaml")))
            .map(|s| s.config)
            .map_err(|e| e.to_string())
    }

    /// Every key path of a YAML tree: `cache`, `cache.tagTtl`, ... (lists are values).
    fn key_paths(tree: &Mapping, prefix: &str, paths: &mut BTreeSet<String>) {
        for (key, value) in tree {
            let path = dotted(prefix, key);
            if let Value::Mapping(inner) = value {
                key_paths(inner, &path, paths);
            }
            paths.insert(path);
        }
    }

    /// Keys documented but not read, and keys read but not documented.
    fn key_differences(documented: &Mapping, read: &Mapping) -> (Vec<String>, Vec<String>) {
        let (mut doc, mut typed) = (BTreeSet::new(), BTreeSet::new());
        key_paths(documented, "", &mut doc);
        key_paths(read, "", &mut typed);
        (
            doc.difference(&typed).cloned().collect(),
            typed.difference(&doc).cloned().collect(),
        )
    }

    /// The typed defaults written back as YAML: the keys `Config` reads, spelled as it reads
    /// them (the test below reads the tree back to prove the spelling is the same both ways).
    fn read_keys() -> Mapping {
        match serde_yaml_ng::to_value(Config::defaults()).expect("serialize") {
            Value::Mapping(tree) => tree,
            other => panic!("Config serialized as {other:?}"),
        }
    }

    #[test]
    fn default_yaml_documents_exactly_the_keys_config_reads() {
        let documented = yaml(DEFAULT_CONFIG, EMBEDDED).expect("embedded file");
        let read = read_keys();
        assert_eq!(
            typed::<Config>(Value::Mapping(read.clone())).expect("read back"),
            Config::defaults(),
            "Config writes the keys it reads"
        );
        let (ignored, undocumented) = key_differences(&documented, &read);
        assert!(
            ignored.is_empty(),
            "config/default.yaml documents keys Config does not read: {ignored:?}"
        );
        assert!(
            undocumented.is_empty(),
            "Config reads keys config/default.yaml does not document: {undocumented:?}"
        );
    }

    #[test]
    fn key_comparison_finds_an_ignored_and_an_undocumented_key() {
        // An Option field is the case serde lets through: absent from the file, it reads as None.
        let mut documented = yaml(DEFAULT_CONFIG, EMBEDDED).expect("embedded file");
        let Some(Value::Mapping(cache)) = documented.get_mut("cache") else {
            panic!("no cache section");
        };
        cache.insert("staleTtl".into(), "1m".into());
        let Some(Value::Mapping(node)) = documented.get_mut("nodeCredentials") else {
            panic!("no nodeCredentials section");
        };
        node.remove("dockerConfig");
        assert_eq!(
            key_differences(&documented, &read_keys()),
            (
                vec!["cache.staleTtl".to_string()],
                vec!["nodeCredentials.dockerConfig".to_string()]
            )
        );
    }

    #[test]
    fn embedded_defaults_are_todays_values() {
        let s = Settings::build(&args(&[]), None).expect("defaults");
        let c = &s.config;
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.review_timeout, Duration::from_secs(5));
        assert_eq!(c.max_body_bytes, 6 << 20);
        assert_eq!(c.policy.registry_failure, FailureAction::Allow);
        assert_eq!(s.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(c.registries.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.registries.request_timeout, Duration::from_secs(10));
        assert_eq!(c.cache.digest_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(c.cache.max_entries, 50_000);
        assert_eq!(c.kubernetes.enabled, KubernetesMode::Auto);
        assert_eq!(c.kubernetes.ttl, Duration::from_secs(30));
        assert_eq!(c.node_credentials.docker_config, None);
        let server = s.server();
        assert_eq!(server.timeouts.header_read_timeout, Duration::from_secs(10));
        assert_eq!(server.timeouts.handshake_timeout, Duration::from_secs(10));
        assert_eq!(server.timeouts.idle_timeout, Duration::from_secs(10));
        assert_eq!(server.timeouts.drain_timeout, Duration::from_secs(15));
        assert_eq!(server.tls_cert, PathBuf::from("c.pem"));
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let text =
            "mode: warn\ntimeout: 3s\nregistryFailure: deny\nregistries:\n  insecure: [a:5000]\n";
        let c = file(text).expect("file");
        assert_eq!(c.mode, Mode::Warn);
        assert_eq!(c.review_timeout, Duration::from_secs(3));
        assert_eq!(c.policy.registry_failure, FailureAction::Deny);
        assert_eq!(c.registries.insecure_registries, vec!["a:5000".to_string()]);
        assert_eq!(c.registries.connect_timeout, Duration::from_secs(3));
        let c = Settings::build(
            &args(&[
                "--mode",
                "enforce",
                "--timeout",
                "1500ms",
                "--insecure-registry",
                "b",
            ]),
            Some((text, "f.yaml")),
        )
        .expect("flags")
        .config;
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.review_timeout, Duration::from_millis(1500));
        assert_eq!(
            c.registries.insecure_registries,
            vec!["a:5000".to_string(), "b".into()]
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values_naming_the_key() {
        let cases: [(&str, &[&str]); 10] = [
            (
                "modee: warn\n",
                &["f.yaml", "unknown key `modee`", "mode, "],
            ),
            (
                "cache:\n  tagTTL: 5s\n",
                &["unknown key `cache.tagTTL`", "tagTtl"],
            ),
            ("mode: strict\n", &["`mode`", "unknown variant `strict`"]),
            ("registryFailure: maybe\n", &["`registryFailure`", "maybe"]),
            (
                "timeout: soon\n",
                &["`timeout`", "\"soon\" is not a duration"],
            ),
            ("timeout: 45s\n", &["at most 30s"]),
            (
                "cache:\n  tagTtl: 5x\n",
                &["`cache.tagTtl`", "unknown unit"],
            ),
            (
                "cache:\n  maxEntries: lots\n",
                &["`cache.maxEntries`", "lots"],
            ),
            ("server:\n  idleTimeout: [1]\n", &["`server.idleTimeout`"]),
            ("- mode\n", &["f.yaml"]),
        ];
        for (text, wants) in cases {
            let err = file(text).expect_err(text);
            for want in wants {
                assert!(err.contains(want), "{text:?} gave {err}");
            }
        }
    }

    #[test]
    fn an_empty_file_or_section_keeps_the_defaults() {
        for text in [
            "",
            "# nothing here\n",
            "cache:\n",
            "server:\n  # drainTimeout: 1s\n",
        ] {
            assert_eq!(file(text).as_ref(), Ok(&Config::defaults()), "{text:?}");
        }
    }

    #[test]
    fn reads_server_timeouts() {
        let text = "server:\n  headerReadTimeout: 2s\n  handshakeTimeout: 3s\n  idleTimeout: 1m\n  drainTimeout: 500ms\n";
        let s = Settings::build(&args(&[]), Some((text, "f.yaml"))).expect("file");
        assert_eq!(
            s.server().timeouts,
            Timeouts {
                header_read_timeout: Duration::from_secs(2),
                handshake_timeout: Duration::from_secs(3),
                idle_timeout: Duration::from_secs(60),
                drain_timeout: Duration::from_millis(500),
            }
        );
    }

    #[test]
    fn reads_platform_and_credential_settings() {
        let text = "platforms:\n  nodes: [linux/amd64, linux/arm64/v8]\n  matcher: containerdStrict\n  checkSingleManifests: false\nnodeCredentials:\n  registries: ['https://*.dkr.ecr.*.amazonaws.com/']\nkubernetes:\n  enabled: off\n  cacheTtl: 1m\n";
        let c = file(text).expect("file");
        let nodes: Vec<String> = c.platforms.nodes.iter().map(ToString::to_string).collect();
        assert_eq!(nodes, vec!["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(
            c.platforms.matcher.kind(),
            Some(MatcherKind::ContainerdStrict)
        );
        assert!(!c.platforms.check_single_manifests);
        assert_eq!(
            c.node_credentials.registries,
            vec!["*.dkr.ecr.*.amazonaws.com".to_string()]
        );
        assert_eq!(c.kubernetes.enabled, KubernetesMode::Off);
        assert_eq!(c.kubernetes.ttl, Duration::from_secs(60));
        assert_eq!(c.kubernetes.missing_ttl, Duration::from_secs(5));
        let defaults = Config::defaults();
        assert!(defaults.platforms.enabled && defaults.platforms.check_single_manifests);
        assert_eq!(defaults.platforms.matcher, MatcherChoice::Auto);
        for (text, wants) in [
            (
                "platforms:\n  nodes: [linux]\n",
                ["`platforms.nodes", "\"linux\""],
            ),
            (
                "nodeCredentials:\n  registries: ['a b']\n",
                ["`nodeCredentials.registries", "not a registry pattern"],
            ),
        ] {
            let err = file(text).expect_err(text);
            assert!(wants.iter().all(|w| err.contains(w)), "{text:?} gave {err}");
        }
    }
}
