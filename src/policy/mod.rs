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
            let warning = words::message(f);
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
    }
    let denial = match deny.as_slice() {
        [] => None,
        [one] => Some(format!("pullcheck: {one}")),
        many => {
            let head = format!("pullcheck: {} images cannot be pulled: ", many.len());
            let items: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, m)| format!("({}) {m}", i + 1))
                .collect();
            Some(head + &within(items, DENIAL_RUNES, "; ", |n| format!("and {n} more")))
        }
    };
    Verdict {
        allowed: denial.is_none(),
        denial,
        warnings: bounded_warnings(warnings),
    }
}

/// kube-apiserver de-duplicates webhook warnings and, once their total passes 4,096 runes,
/// cuts each to 256 and drops the rest (`warning.go` in its filters): keep under that, and
/// say how many were left out.
const WARNING_RUNES: usize = 4096;

/// A denial names every image that cannot be pulled, up to this much text.
const DENIAL_RUNES: usize = 4096;

fn bounded_warnings(warnings: Vec<String>) -> Vec<String> {
    let total: usize = warnings.iter().map(|w| w.chars().count()).sum();
    if total <= WARNING_RUNES {
        return warnings;
    }
    // Room for the closing note.
    let mut kept = Vec::new();
    let mut used = 0;
    for w in &warnings {
        let runes = w.chars().count();
        if used + runes > WARNING_RUNES - 128 {
            break;
        }
        used += runes;
        kept.push(w.clone());
    }
    let left = warnings.len() - kept.len();
    kept.push(format!(
        "pullcheck: and {left} more finding{} (the webhook's log lists them all)",
        if left == 1 { "" } else { "s" }
    ));
    kept
}

/// `items` joined by `separator` while they fit in `max` runes, then `more(n)`.
fn within(
    items: Vec<String>,
    max: usize,
    separator: &str,
    more: impl Fn(usize) -> String,
) -> String {
    let mut out = String::new();
    let mut runes = 0;
    for (i, item) in items.iter().enumerate() {
        let add = item.chars().count() + separator.len();
        if i > 0 && runes + add > max {
            return format!("{out}{separator}{}", more(items.len() - i));
        }
        if i > 0 {
            out.push_str(separator);
        }
        out.push_str(item);
        runes += add;
    }
    out
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

    #[test]
    fn many_findings_stay_within_the_api_servers_limits() {
        // 5,000 missing tags in one pod: one warning each in warn mode, one item each denied.
        let many: Vec<Finding> = (0..5000)
            .map(|i| {
                let mut f = finding(Reason::TagNotFound);
                if let Some(s) = f.subject.as_mut() {
                    s.image = format!("registry.example/app:v{i}");
                }
                f
            })
            .collect();
        let warned = decide(Mode::Warn, &PolicySettings::default(), &many);
        let runes: usize = warned.warnings.iter().map(|w| w.chars().count()).sum();
        assert!(runes <= WARNING_RUNES, "{runes}");
        let last = warned.warnings.last().expect("a closing note");
        assert!(
            last.contains(&format!(
                "and {} more findings",
                5000 - (warned.warnings.len() - 1)
            )),
            "{last}"
        );
        let denied = decide(Mode::Enforce, &PolicySettings::default(), &many);
        let text = denied.denial.expect("denied");
        assert!(
            text.starts_with("pullcheck: 5000 images cannot be pulled: (1) "),
            "{text}"
        );
        assert!(text.chars().count() <= DENIAL_RUNES + 200, "{}", text.len());
        assert!(text.ends_with(" more"), "{}", &text[text.len() - 40..]);
    }

    #[test]
    fn identical_warnings_are_said_once() {
        let same = vec![finding(Reason::RateLimited), finding(Reason::RateLimited)];
        let v = decide(Mode::Warn, &PolicySettings::default(), &same);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
    }
}
