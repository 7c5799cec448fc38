//! Which pull secrets a pod will use. Pure.

use crate::workload::WorkloadKind;
use k8s_openapi::api::core::v1::PodSpec;

/// Where the names of a pod's pull secrets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRefs {
    /// The names listed on the pod (spec), in order.
    Listed(Vec<String>),
    /// The pod lists none: the ServiceAccount admission plugin will copy this service
    /// account's `imagePullSecrets` when the pod is created.
    ServiceAccount(String),
}

/// The ServiceAccount admission plugin (`plugin/pkg/admission/serviceaccount/admission.go`)
/// runs before validating webhooks, only on Pod CREATE: it defaults `serviceAccountName` to
/// `default` and copies the account's `imagePullSecrets` only when the pod lists none. It
/// replaces, never merges. A Pod we see has already been through it, so its list is final; a
/// pod template has not, so we do what the plugin will do to the pods it creates.
pub fn secret_refs(kind: WorkloadKind, spec: &PodSpec) -> SecretRefs {
    let raw = spec.image_pull_secrets.as_deref().unwrap_or_default();
    // The plugin looks at the list as written; the kubelet then skips entries with an empty
    // name (`getPullSecretsForPod`).
    if kind == WorkloadKind::Pod || !raw.is_empty() {
        return SecretRefs::Listed(
            raw.iter()
                .map(|r| r.name.clone())
                .filter(|n| !n.is_empty())
                .collect(),
        );
    }
    let account = spec
        .service_account_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());
    SecretRefs::ServiceAccount(account)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::LocalObjectReference;

    fn spec(secrets: &[&str], account: Option<&str>) -> PodSpec {
        PodSpec {
            image_pull_secrets: (!secrets.is_empty()).then(|| {
                secrets
                    .iter()
                    .map(|n| LocalObjectReference {
                        name: n.to_string(),
                    })
                    .collect()
            }),
            service_account_name: account.map(str::to_string),
            ..PodSpec::default()
        }
    }

    #[test]
    fn emulates_the_service_account_plugin_for_templates_only() {
        let listed =
            |names: &[&str]| SecretRefs::Listed(names.iter().map(|s| s.to_string()).collect());
        let cases = [
            // A pod has been through the plugin: its list is final, even when empty.
            (WorkloadKind::Pod, spec(&[], Some("builder")), listed(&[])),
            (
                WorkloadKind::Pod,
                spec(&["a", "b"], None),
                listed(&["a", "b"]),
            ),
            // A template with its own list replaces the account's, never merges.
            (
                WorkloadKind::Deployment,
                spec(&["own"], Some("builder")),
                listed(&["own"]),
            ),
            (
                WorkloadKind::CronJob,
                spec(&[], Some("builder")),
                SecretRefs::ServiceAccount("builder".into()),
            ),
            (
                WorkloadKind::StatefulSet,
                spec(&[], None),
                SecretRefs::ServiceAccount("default".into()),
            ),
            (
                WorkloadKind::Job,
                spec(&[], Some("")),
                SecretRefs::ServiceAccount("default".into()),
            ),
            // Entries with an empty name are skipped, as the kubelet does.
            (
                WorkloadKind::DaemonSet,
                spec(&["", "x"], None),
                listed(&["x"]),
            ),
            // A list of only empty names still stops the plugin from copying the account's.
            (
                WorkloadKind::ReplicaSet,
                spec(&[""], Some("sa")),
                listed(&[]),
            ),
        ];
        for (kind, spec, want) in cases {
            assert_eq!(secret_refs(kind, &spec), want, "{kind:?} {spec:?}");
        }
    }
}
