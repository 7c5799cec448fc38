//! Credentials that nodes have and pods do not show: the node's docker config and cloud
//! credential providers (ECR, Artifact Registry, ACR). The kubelet tries them after the pod's
//! secrets (`UnionDockerKeyring`).

use super::keyring::{self, Keyring};

#[derive(Debug, Default)]
pub struct NodeCredentials {
    /// A mounted copy of the nodes' docker `config.json`.
    pub keyring: Option<Keyring>,
    /// Registry patterns (keyring syntax, e.g. `*.dkr.ecr.*.amazonaws.com`) that nodes pull
    /// with credentials pullcheck cannot see: images there are not checked when no pod
    /// secret matches, and a warning says so.
    pub unchecked: Vec<String>,
}

impl NodeCredentials {
    /// Whether nodes pull `repo_to_pull` with credentials pullcheck cannot see.
    pub fn pulls(&self, repo_to_pull: &str) -> bool {
        self.unchecked
            .iter()
            .any(|pattern| keyring::urls_match(pattern, repo_to_pull))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_credentials_cover_registries_by_keyring_pattern() {
        let node = NodeCredentials {
            keyring: None,
            unchecked: vec![
                "*.dkr.ecr.*.amazonaws.com".into(),
                "*-docker.pkg.dev".into(),
            ],
        };
        assert!(node.pulls("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"));
        assert!(node.pulls("europe-docker.pkg.dev/proj/repo/app"));
        assert!(!node.pulls("docker.io/library/nginx"));
        assert!(!node.pulls("ecr.amazonaws.com/app"));
    }
}
