//! Findings + mode -> verdict (pure), and in `words` the text of every message.

pub mod words;

pub use crate::check::MutableTagAdvice;

use crate::check::Finding;
use crate::reason::ReasonClass;
use serde::{Deserialize, Serialize};

/// What the webhook does with what it finds in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny workloads whose images cannot be pulled.
    Enforce,
    /// Admit, with every finding as a warning (kubectl prints `Warning: ...`).
    Warn,
    /// Check nothing.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Off => "off",
        }
    }
}

/// What to do when the registry, not the workload, is at fault (unreachable, rate limited,
/// 5xx, out of time). Admitting is the default: blocking every deploy during a registry
/// outage is worse than the pull failing later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    Allow,
    Deny,
}

/// The keys `registryFailure` and `mutableTags`, at the top level of the configuration, whose
/// embedded default file also holds the `Default`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySettings {
    pub registry_failure: FailureAction,
    pub mutable_tags: MutableTagAdvice,
}

/// The answer for a whole object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    pub allowed: bool,
    /// The denial message (kubectl prints it after "denied the request:").
    pub denial: Option<String>,
    pub warnings: Vec<String>,
}

/// Applies the mode to the findings of all images of one object.
pub fn decide(mode: Mode, settings: &PolicySettings, findings: &[Finding]) -> Verdict {
    let mut deny = Vec::new();
    let mut warnings = Vec::new();
    for f in findings {
        let blocks = match f.reason().class() {
            ReasonClass::Pass | ReasonClass::Advice => false,
            ReasonClass::Workload => true,
            ReasonClass::Undetermined => settings.registry_failure == FailureAction::Deny,
        };
        if blocks && mode == Mode::Enforce {
            deny.push(words::message(f));
        } else if mode != Mode::Off {
            warnings.push(words::message(f));
        }
    }
    let denial = match deny.as_slice() {
        [] => None,
        [one] => Some(format!("pullcheck: {one}")),
        many => Some(format!(
            "pullcheck: {} images cannot be pulled: {}",
            many.len(),
            many.iter()
                .enumerate()
                .map(|(i, m)| format!("({}) {m}", i + 1))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    };
    Verdict {
        allowed: denial.is_none(),
        denial,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Fact, Subject};
    use crate::reason::Reason;
    use crate::reference::ImageRef;
    use crate::registry::{RegistryError, Unreachable};
    use crate::workload::{ImageField, Location, PullPolicy};
    use std::time::Duration;

    /// A finding about container "app" image "nginx" that is counted under `reason`.
    fn finding(reason: Reason) -> Finding {
        let registry = |error| Fact::Registry {
            error,
            credential_source: None,
            anonymous_because: Vec::new(),
        };
        let fact = match reason {
            Reason::TagNotFound => registry(RegistryError::ManifestUnknown {
                suggestions: Vec::new(),
            }),
            Reason::RepositoryNotFound => registry(RegistryError::NameUnknown),
            Reason::Unauthorized => registry(RegistryError::Unauthorized {
                with_credentials: false,
                detail: None,
            }),
            Reason::RateLimited => registry(RegistryError::RateLimited { retry_after: None }),
            Reason::Unreachable => registry(RegistryError::Unreachable {
                cause: Unreachable::Dns,
                detail: "no such host".into(),
            }),
            Reason::Timeout => Fact::TimedOut {
                budget: Duration::from_secs(5),
            },
            Reason::MutableTag => Fact::MutableTag {
                tag: "latest".into(),
                pull_policy: PullPolicy::IfNotPresent,
                pin: None,
            },
            other => panic!("no fact for {other:?} in this table"),
        };
        Finding {
            subject: Some(Subject {
                location: Some(Location {
                    field: ImageField::Container,
                    name: "app".into(),
                }),
                image: "nginx".into(),
                reference: ImageRef::parse_normalized("nginx").ok(),
            }),
            fact,
        }
    }

    #[test]
    fn mode_and_failure_action_decide_the_verdict() {
        let allow = PolicySettings::default();
        let deny_failures = PolicySettings {
            registry_failure: FailureAction::Deny,
            ..PolicySettings::default()
        };
        // (mode, settings, findings, allowed, denial count, warning count)
        let cases = [
            (Mode::Enforce, &allow, vec![], true, 0, 0),
            (
                Mode::Enforce,
                &allow,
                vec![finding(Reason::TagNotFound)],
                false,
                1,
                0,
            ),
            (
                Mode::Enforce,
                &allow,
                vec![
                    finding(Reason::Unauthorized),
                    finding(Reason::RepositoryNotFound),
                ],
                false,
                2,
                0,
            ),
            (
                Mode::Enforce,
                &allow,
                vec![finding(Reason::RateLimited)],
                true,
                0,
                1,
            ),
            (
                Mode::Enforce,
                &deny_failures,
                vec![finding(Reason::RateLimited)],
                false,
                1,
                0,
            ),
            (
                Mode::Enforce,
                &deny_failures,
                vec![finding(Reason::Timeout)],
                false,
                1,
                0,
            ),
            (
                Mode::Enforce,
                &allow,
                vec![finding(Reason::TagNotFound), finding(Reason::MutableTag)],
                false,
                1,
                1,
            ),
            (
                Mode::Warn,
                &deny_failures,
                vec![finding(Reason::TagNotFound), finding(Reason::Unreachable)],
                true,
                0,
                2,
            ),
            (
                Mode::Off,
                &allow,
                vec![finding(Reason::TagNotFound)],
                true,
                0,
                0,
            ),
        ];
        for (mode, settings, found, allowed, denials, warnings) in cases {
            let v = decide(mode, settings, &found);
            assert_eq!(v.allowed, allowed, "{mode:?} {found:?}");
            assert_eq!(v.warnings.len(), warnings, "{mode:?} {found:?}");
            match &v.denial {
                None => assert_eq!(denials, 0),
                Some(text) => {
                    assert!(text.starts_with("pullcheck: "), "{text}");
                    for f in found
                        .iter()
                        .filter(|f| f.reason().class() != ReasonClass::Advice)
                    {
                        assert!(text.contains(&words::message(f)), "{text}");
                    }
                    if denials > 1 {
                        assert!(
                            text.contains(&format!("{denials} images cannot be pulled")),
                            "{text}"
                        );
                    }
                }
            }
        }
    }
}
