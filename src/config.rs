//! Command line, environment and the YAML configuration file, validated into `Settings`.
//!
//! Precedence: a flag (or its `PULLCHECK_*` variable) over the file over the embedded
//! defaults in `config/default.yaml`, which also documents every key.

use crate::cache::CacheSettings;
use crate::credentials::cluster::ClusterSettings;
pub use crate::duration::parse as parse_duration;
use crate::platform::{MatcherKind, Platform};
use crate::policy::{FailureAction, Mode, MutableTagAdvice, PolicySettings};
use crate::registry::RegistrySettings;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default configuration (every knob, with comments).
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.yaml");

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

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub mode: Mode,
    pub review_timeout: Duration,
    pub max_body_bytes: usize,
    pub policy: PolicySettings,
    pub registry: RegistrySettings,
    pub cache: CacheSettings,
    pub kubernetes: KubernetesMode,
    pub cluster: ClusterSettings,
    /// A docker config.json with the nodes' own credentials (tried after the pod's secrets).
    pub node_docker_config: Option<PathBuf>,
    /// Registries nodes pull with credentials pullcheck cannot see (credential providers).
    pub node_registries: Vec<String>,
    pub platforms: PlatformSettings,
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
    #[error("configuration: {0}")]
    Invalid(String),
}

/// The YAML file. Every field is optional so a file can set just what it changes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileConfig {
    mode: Option<Mode>,
    timeout: Option<String>,
    max_body_bytes: Option<usize>,
    registry_failure: Option<FailureAction>,
    mutable_tags: Option<MutableTagAdvice>,
    #[serde(default)]
    registries: RegistriesFile,
    #[serde(default)]
    cache: CacheFile,
    #[serde(default)]
    kubernetes: KubernetesFile,
    #[serde(default)]
    node_credentials: NodeCredentialsFile,
    #[serde(default)]
    platforms: PlatformsFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlatformsFile {
    enabled: Option<bool>,
    nodes: Option<Vec<String>>,
    matcher: Option<MatcherChoice>,
    check_single_manifests: Option<bool>,
}

/// Which platform matcher nodes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

/// The platform check, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformSettings {
    pub enabled: bool,
    /// Fixed node platforms instead of watching Nodes (for clusters where pullcheck may not).
    pub nodes: Vec<Platform>,
    pub matcher: MatcherChoice,
    /// Also read single-platform images' configs to warn about exec format errors.
    pub check_single_manifests: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KubernetesFile {
    enabled: Option<KubernetesMode>,
    cache_ttl: Option<String>,
    missing_ttl: Option<String>,
    request_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeCredentialsFile {
    docker_config: Option<PathBuf>,
    registries: Option<Vec<String>>,
}

/// Whether to read pull secrets from the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubernetesMode {
    /// In-cluster configuration or KUBECONFIG when present; otherwise run without (dev).
    Auto,
    /// Never: images are checked anonymously.
    Off,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegistriesFile {
    ca_files: Option<Vec<PathBuf>>,
    insecure: Option<Vec<String>>,
    connect_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CacheFile {
    tag_ttl: Option<String>,
    digest_ttl: Option<String>,
    negative_ttl: Option<String>,
    failure_ttl: Option<String>,
    max_entries: Option<u64>,
}

impl FileConfig {
    fn parse(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
        serde_yaml_ng::from_str::<Option<FileConfig>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| ConfigError::Parse {
                path: origin.to_string(),
                detail: e.to_string(),
            })
    }

    /// `self` with every field `over` sets replaced.
    fn overlay(self, over: FileConfig) -> FileConfig {
        FileConfig {
            mode: over.mode.or(self.mode),
            timeout: over.timeout.or(self.timeout),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            registry_failure: over.registry_failure.or(self.registry_failure),
            mutable_tags: over.mutable_tags.or(self.mutable_tags),
            registries: RegistriesFile {
                ca_files: over.registries.ca_files.or(self.registries.ca_files),
                insecure: over.registries.insecure.or(self.registries.insecure),
                connect_timeout: over
                    .registries
                    .connect_timeout
                    .or(self.registries.connect_timeout),
            },
            kubernetes: KubernetesFile {
                enabled: over.kubernetes.enabled.or(self.kubernetes.enabled),
                cache_ttl: over.kubernetes.cache_ttl.or(self.kubernetes.cache_ttl),
                missing_ttl: over.kubernetes.missing_ttl.or(self.kubernetes.missing_ttl),
                request_timeout: over
                    .kubernetes
                    .request_timeout
                    .or(self.kubernetes.request_timeout),
            },
            platforms: PlatformsFile {
                enabled: over.platforms.enabled.or(self.platforms.enabled),
                nodes: over.platforms.nodes.or(self.platforms.nodes),
                matcher: over.platforms.matcher.or(self.platforms.matcher),
                check_single_manifests: over
                    .platforms
                    .check_single_manifests
                    .or(self.platforms.check_single_manifests),
            },
            node_credentials: NodeCredentialsFile {
                docker_config: over
                    .node_credentials
                    .docker_config
                    .or(self.node_credentials.docker_config),
                registries: over
                    .node_credentials
                    .registries
                    .or(self.node_credentials.registries),
            },
            cache: CacheFile {
                tag_ttl: over.cache.tag_ttl.or(self.cache.tag_ttl),
                digest_ttl: over.cache.digest_ttl.or(self.cache.digest_ttl),
                negative_ttl: over.cache.negative_ttl.or(self.cache.negative_ttl),
                failure_ttl: over.cache.failure_ttl.or(self.cache.failure_ttl),
                max_entries: over.cache.max_entries.or(self.cache.max_entries),
            },
        }
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
        let mut merged = FileConfig::parse(DEFAULT_CONFIG, "embedded default configuration")?;
        if let Some((text, origin)) = file {
            merged = merged.overlay(FileConfig::parse(text, origin)?);
        }
        let duration =
            |value: Option<String>, key: &str| -> Result<Option<Duration>, ConfigError> {
                value
                    .map(|v| {
                        parse_duration(&v).map_err(|e| ConfigError::Invalid(format!("{key}: {e}")))
                    })
                    .transpose()
            };
        let review_timeout = match args.timeout {
            Some(t) => t,
            None => duration(merged.timeout, "timeout")?.unwrap_or(Duration::from_secs(5)),
        };
        if review_timeout.is_zero() || review_timeout > Duration::from_secs(29) {
            return Err(ConfigError::Invalid(format!(
                "timeout must be between 1ms and 29s (the API server allows at most 30s per webhook), got {review_timeout:?}"
            )));
        }
        let mut registry = RegistrySettings {
            extra_ca_files: merged.registries.ca_files.unwrap_or_default(),
            insecure_registries: merged.registries.insecure.unwrap_or_default(),
            ..RegistrySettings::default()
        };
        args.registries.apply(&mut registry);
        if let Some(t) = duration(
            merged.registries.connect_timeout,
            "registries.connectTimeout",
        )? {
            registry.connect_timeout = t;
        }
        let mut cache = CacheSettings::default();
        let c = merged.cache;
        for (value, key, slot) in [
            (c.tag_ttl, "cache.tagTtl", &mut cache.tag_ttl),
            (c.digest_ttl, "cache.digestTtl", &mut cache.digest_ttl),
            (c.negative_ttl, "cache.negativeTtl", &mut cache.negative_ttl),
            (c.failure_ttl, "cache.failureTtl", &mut cache.failure_ttl),
        ] {
            if let Some(d) = duration(value, key)? {
                *slot = d;
            }
        }
        if let Some(n) = c.max_entries {
            cache.max_entries = n;
        }
        let mut cluster = ClusterSettings::default();
        let k = merged.kubernetes;
        for (value, key, slot) in [
            (k.cache_ttl, "kubernetes.cacheTtl", &mut cluster.ttl),
            (
                k.missing_ttl,
                "kubernetes.missingTtl",
                &mut cluster.missing_ttl,
            ),
            (
                k.request_timeout,
                "kubernetes.requestTimeout",
                &mut cluster.request_timeout,
            ),
        ] {
            if let Some(d) = duration(value, key)? {
                *slot = d;
            }
        }
        let p = merged.platforms;
        let nodes = p
            .nodes
            .unwrap_or_default()
            .iter()
            .map(|spec| {
                Platform::parse(spec)
                    .map_err(|e| ConfigError::Invalid(format!("platforms.nodes: {spec:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let platforms = PlatformSettings {
            enabled: p.enabled.unwrap_or(true),
            nodes,
            matcher: p.matcher.unwrap_or(MatcherChoice::Auto),
            check_single_manifests: p.check_single_manifests.unwrap_or(true),
        };
        let defaults = PolicySettings::default();
        Ok(Settings {
            listen: args.listen,
            tls_cert: args.tls_cert.clone(),
            tls_key: args.tls_key.clone(),
            mode: args.mode.or(merged.mode).unwrap_or(Mode::Enforce),
            review_timeout,
            max_body_bytes: merged.max_body_bytes.unwrap_or(6 << 20),
            policy: PolicySettings {
                registry_failure: merged.registry_failure.unwrap_or(defaults.registry_failure),
                mutable_tags: merged.mutable_tags.unwrap_or(defaults.mutable_tags),
            },
            registry,
            cache,
            kubernetes: k.enabled.unwrap_or(KubernetesMode::Auto),
            cluster,
            node_docker_config: merged.node_credentials.docker_config,
            node_registries: merged
                .node_credentials
                .registries
                .unwrap_or_default()
                .iter()
                .map(|p| registry_pattern(p))
                .collect::<Result<_, _>>()?,
            platforms,
        })
    }
}

impl RegistryArgs {
    /// Adds the flags' CAs and insecure registries to `settings`.
    pub fn apply(&self, settings: &mut RegistrySettings) {
        settings
            .extra_ca_files
            .extend(self.registry_ca.iter().cloned());
        settings
            .insecure_registries
            .extend(self.insecure_registry.iter().cloned());
    }
}

/// A `nodeCredentials.registries` entry in the keyring's pattern syntax (`*.azurecr.io`,
/// `registry.corp.io:5000/team`): a scheme is dropped as the kubelet drops it from keys;
/// anything that could never match an image is refused rather than silently ignored.
fn registry_pattern(pattern: &str) -> Result<String, ConfigError> {
    let trimmed = pattern
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    if trimmed.is_empty() || trimmed.contains(char::is_whitespace) || trimmed.starts_with('/') {
        return Err(ConfigError::Invalid(format!(
            "nodeCredentials.registries: {pattern:?} is not a registry pattern (e.g. *.dkr.ecr.*.amazonaws.com)"
        )));
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

    #[test]
    fn embedded_defaults_are_valid_and_documented_values_hold() {
        let s = Settings::build(&args(&[]), None).expect("defaults");
        assert_eq!(s.mode, Mode::Enforce);
        assert_eq!(s.review_timeout, Duration::from_secs(5));
        assert_eq!(s.policy, PolicySettings::default());
        assert_eq!(s.listen.to_string(), "0.0.0.0:8443");
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let file =
            "mode: warn\ntimeout: 3s\nregistryFailure: deny\nregistries:\n  insecure: [a:5000]\n";
        let s = Settings::build(&args(&[]), Some((file, "f.yaml"))).expect("file");
        assert_eq!(s.mode, Mode::Warn);
        assert_eq!(s.review_timeout, Duration::from_secs(3));
        assert_eq!(s.policy.registry_failure, FailureAction::Deny);
        assert_eq!(s.registry.insecure_registries, vec!["a:5000".to_string()]);
        let s = Settings::build(
            &args(&[
                "--mode",
                "enforce",
                "--timeout",
                "1500ms",
                "--insecure-registry",
                "b",
            ]),
            Some((file, "f.yaml")),
        )
        .expect("flags");
        assert_eq!(s.mode, Mode::Enforce);
        assert_eq!(s.review_timeout, Duration::from_millis(1500));
        assert_eq!(
            s.registry.insecure_registries,
            vec!["a:5000".to_string(), "b".into()]
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values_with_the_reason() {
        let cases = [
            ("modee: warn\n", "unknown field"),
            ("mode: strict\n", "unknown variant"),
            ("timeout: soon\n", "timeout"),
            ("timeout: 45s\n", "at most 30s"),
            ("cache:\n  tagTtl: 5x\n", "unknown unit"),
        ];
        for (file, want) in cases {
            let err = Settings::build(&args(&[]), Some((file, "f.yaml")))
                .expect_err(file)
                .to_string();
            assert!(err.contains(want), "{file:?} gave {err}");
        }
    }

    #[test]
    fn reads_platform_and_credential_settings() {
        let file = "platforms:\n  nodes: [linux/amd64, linux/arm64/v8]\n  matcher: containerdStrict\n  checkSingleManifests: false\nnodeCredentials:\n  registries: ['*.dkr.ecr.*.amazonaws.com']\nkubernetes:\n  enabled: off\n  cacheTtl: 1m\n";
        let s = Settings::build(&args(&[]), Some((file, "f.yaml"))).expect("file");
        let nodes: Vec<String> = s.platforms.nodes.iter().map(ToString::to_string).collect();
        assert_eq!(nodes, vec!["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(
            s.platforms.matcher.kind(),
            Some(MatcherKind::ContainerdStrict)
        );
        assert!(!s.platforms.check_single_manifests);
        assert_eq!(
            s.node_registries,
            vec!["*.dkr.ecr.*.amazonaws.com".to_string()]
        );
        assert_eq!(s.kubernetes, KubernetesMode::Off);
        assert_eq!(s.cluster.ttl, Duration::from_secs(60));
        let defaults = Settings::build(&args(&[]), None).expect("defaults");
        assert!(defaults.platforms.enabled && defaults.platforms.check_single_manifests);
        assert_eq!(defaults.platforms.matcher, MatcherChoice::Auto);
        let err = Settings::build(
            &args(&[]),
            Some(("platforms:\n  nodes: [linux]\n", "f.yaml")),
        )
        .expect_err("bad platform")
        .to_string();
        assert!(
            err.contains("platforms.nodes") && err.contains("linux"),
            "{err}"
        );
    }
}
