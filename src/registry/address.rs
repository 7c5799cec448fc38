//! Which addresses pullcheck may connect to on a tenant's behalf.
//!
//! Every image reference, token realm and redirect names a host that a pod creator chose. The
//! webhook runs inside the cluster, beside services and cloud metadata endpoints that no tenant
//! should reach through it, so every connection is checked against this policy on the address
//! actually connected to: names are resolved by [`PolicyResolver`], which hands the connector
//! only allowed addresses (a name that resolves to an allowed address first and a forbidden one
//! later cannot pass), and IP literals, which the connector never resolves, are checked by the
//! client before each request and each redirect hop.
//!
//! By default loopback, link-local (which holds the cloud metadata addresses), unspecified,
//! multicast and broadcast addresses are refused; private ranges are allowed, since internal
//! registries live there. Deny rules win over allow rules, and allow rules over the defaults.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// One entry of an allow or deny list: an address range, or a host name glob where `*`
/// stands for any run of characters within one DNS label.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum AddressRule {
    Range(IpNet),
    Host(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule:?} is neither an address range (10.0.0.0/8, fd00::/8, 192.0.2.7) nor a host name pattern (*.corp.example)")]
pub struct AddressRuleError {
    pub rule: String,
}

impl AddressRule {
    pub fn parse(text: &str) -> Result<AddressRule, AddressRuleError> {
        let text = text.trim();
        let invalid = || AddressRuleError {
            rule: text.to_string(),
        };
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(AddressRule::Range(net.trunc()));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(AddressRule::Range(IpNet::from(ip)));
        }
        let host = text.to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*' || c == '_')
        };
        if host.is_empty() || host.contains('/') || !host.split('.').all(label_ok) {
            return Err(invalid());
        }
        Ok(AddressRule::Host(host))
    }

    fn covers_address(&self, ip: IpAddr) -> bool {
        matches!(self, AddressRule::Range(net) if net.contains(&ip))
    }

    fn covers_host(&self, host: &str) -> bool {
        match self {
            AddressRule::Host(pattern) => host_matches(pattern, host),
            AddressRule::Range(_) => false,
        }
    }
}

impl TryFrom<String> for AddressRule {
    type Error = AddressRuleError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        AddressRule::parse(&text)
    }
}

impl From<AddressRule> for String {
    fn from(rule: AddressRule) -> String {
        rule.to_string()
    }
}

impl fmt::Display for AddressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressRule::Range(net) => write!(f, "{net}"),
            AddressRule::Host(host) => f.write_str(host),
        }
    }
}

/// `*` matches any run of characters inside one label; labels are compared one by one, so
/// `*.corp.example` matches `reg.corp.example` but not `a.reg.corp.example`.
fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern_labels: Vec<&str> = pattern.split('.').collect();
    let host_labels: Vec<&str> = host.split('.').collect();
    pattern_labels.len() == host_labels.len()
        && pattern_labels
            .iter()
            .zip(&host_labels)
            .all(|(p, h)| label_matches(p.as_bytes(), h.as_bytes()))
}

fn label_matches(pattern: &[u8], label: &[u8]) -> bool {
    match pattern.split_first() {
        None => label.is_empty(),
        Some((b'*', rest)) => (0..=label.len()).any(|skip| label_matches(rest, &label[skip..])),
        Some((c, rest)) => label
            .split_first()
            .is_some_and(|(l, label_rest)| l == c && label_matches(rest, label_rest)),
    }
}

/// The allow and deny lists (`registries.addressPolicy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPolicy {
    pub allow: Vec<AddressRule>,
    pub deny: Vec<AddressRule>,
}

/// Why an address was refused, for the log only: the user's message says no more than that
/// the policy refused it, so that nothing about the target is learned through pullcheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    DenyRule,
    Loopback,
    LinkLocal,
    Unspecified,
    Multicast,
    Broadcast,
}

impl AddressPolicy {
    /// Whether pullcheck may connect to `ip`, reached as `host` (a name, or the literal).
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        if self
            .deny
            .iter()
            .any(|r| r.covers_address(ip) || r.covers_host(host))
        {
            return Err(Refusal::DenyRule);
        }
        if self
            .allow
            .iter()
            .any(|r| r.covers_address(ip) || r.covers_host(host))
        {
            return Ok(());
        }
        default_refusal(ip).map_or(Ok(()), Err)
    }

    /// Whether `host` (from an image reference) names the node's own loopback and was not
    /// allowed explicitly: the kubelet pulls it from the node, which pullcheck cannot see, so
    /// no connection is made at all.
    pub fn node_local(&self, host: &str) -> bool {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let loopback_ip = match name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) if ip.to_canonical().is_loopback() => Some(ip.to_canonical()),
            Ok(_) => return false,
            // RFC 6761: `localhost` and names under it are the host itself.
            Err(_) if name == "localhost" || name.ends_with(".localhost") => None,
            Err(_) => return false,
        };
        // Only the default refusal makes a registry node-local; a deny rule is a refusal.
        let refused_as_loopback = |ip: IpAddr| self.check(&name, ip) == Err(Refusal::Loopback);
        match loopback_ip {
            Some(ip) => refused_as_loopback(ip),
            None => {
                refused_as_loopback(IpAddr::V4(Ipv4Addr::LOCALHOST))
                    && refused_as_loopback(IpAddr::V6(Ipv6Addr::LOCALHOST))
            }
        }
    }
}

/// The ranges no tenant may make pullcheck reach unless a rule allows them.
fn default_refusal(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some(Refusal::Loopback)
            } else if v4.is_link_local() {
                // 169.254.169.254 (AWS, GCP, Azure metadata) and 169.254.170.2 (ECS) live here.
                Some(Refusal::LinkLocal)
            } else if v4.is_unspecified() || v4.octets()[0] == 0 {
                // 0.0.0.0/8: "this network", which Linux connects to the local host.
                Some(Refusal::Unspecified)
            } else if v4.is_multicast() {
                Some(Refusal::Multicast)
            } else if v4.is_broadcast() {
                Some(Refusal::Broadcast)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some(Refusal::Loopback)
            } else if v6.is_unicast_link_local() || v6 == AWS_METADATA_V6 {
                Some(Refusal::LinkLocal)
            } else if v6.is_unspecified() {
                Some(Refusal::Unspecified)
            } else if v6.is_multicast() {
                Some(Refusal::Multicast)
            } else {
                None
            }
        }
    }
}

/// The IPv6 address of the AWS instance metadata service (outside fe80::/10).
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// The error a refused connection carries through reqwest, so the client can tell it from an
/// unreachable registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the address is not allowed by pullcheck's address policy")]
pub struct AddressRefused(pub Refusal);

/// The IP a URL's host names literally, if it is one (`[::1]` included).
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
}

/// Resolves names with the system resolver and keeps only the addresses the policy allows.
/// The connector connects to what this returns and nothing else.
pub struct PolicyResolver {
    policy: Arc<AddressPolicy>,
    /// Proxies the operator configured (`HTTPS_PROXY`): their addresses are the operator's
    /// choice, not a tenant's.
    exempt: HashSet<String>,
}

impl PolicyResolver {
    pub fn new(policy: Arc<AddressPolicy>, exempt: HashSet<String>) -> Self {
        PolicyResolver { policy, exempt }
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let policy = self.policy.clone();
        let exempt = self.exempt.contains(&host);
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if exempt {
                return Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs);
            }
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(&host, a.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        refusal.get_or_insert(r);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(r)) => {
                    Err(Box::new(AddressRefused(r)) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The hosts of the proxies set in the environment, which reqwest (like containerd, through Go's
/// `ProxyFromEnvironment`) uses for registry traffic.
pub fn proxy_hosts_from_env() -> HashSet<String> {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok())
    .filter_map(|v| {
        let with_scheme = if v.contains("://") {
            v
        } else {
            format!("http://{v}")
        };
        url::Url::parse(&with_scheme).ok()?.host_str().map(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<AddressRule> {
        list.iter()
            .map(|r| AddressRule::parse(r).expect("rule"))
            .collect()
    }

    fn policy(allow: &[&str], deny: &[&str]) -> AddressPolicy {
        AddressPolicy {
            allow: rules(allow),
            deny: rules(deny),
        }
    }

    #[test]
    fn the_default_refuses_what_a_tenant_must_not_reach() {
        let p = AddressPolicy::default();
        // (address, allowed)
        let cases = [
            ("127.0.0.1", false),
            ("127.255.0.9", false),
            ("::1", false),
            ("::ffff:127.0.0.1", false),
            ("169.254.169.254", false),
            ("::ffff:169.254.169.254", false),
            ("fe80::1", false),
            ("fd00:ec2::254", false),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("::", false),
            ("224.0.0.1", false),
            ("ff02::1", false),
            ("255.255.255.255", false),
            // Internal registries live in private ranges.
            ("10.0.0.5", true),
            ("172.16.4.4", true),
            ("192.168.1.10", true),
            ("fd12:3456::1", true),
            ("203.0.113.7", true),
            ("2001:db8::1", true),
        ];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(p.check("registry.example", ip).is_ok(), want, "{ip}");
        }
    }

    #[test]
    fn deny_beats_allow_and_allow_beats_the_default() {
        let p = policy(
            &["127.0.0.0/8", "*.lab.example", "10.0.0.0/8"],
            &["10.9.0.0/16", "secret.lab.example"],
        );
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(p.check("localhost", ip("127.0.0.1")).is_ok());
        assert!(p.check("reg.lab.example", ip("169.254.1.1")).is_ok());
        assert_eq!(
            p.check("secret.lab.example", ip("10.1.1.1")),
            Err(Refusal::DenyRule)
        );
        assert_eq!(p.check("x.example", ip("10.9.3.3")), Err(Refusal::DenyRule));
        assert!(p.check("x.example", ip("10.8.3.3")).is_ok());
        assert_eq!(p.check("x.example", ip("::1")), Err(Refusal::Loopback));
    }

    #[test]
    fn host_globs_match_within_one_label() {
        let cases = [
            ("*.corp.example", "reg.corp.example", true),
            ("*.corp.example", "REG.corp.example.", true),
            ("*.corp.example", "a.reg.corp.example", false),
            ("*.corp.example", "corp.example", false),
            ("reg-*.corp.example", "reg-eu.corp.example", true),
            ("reg-*.corp.example", "mirror.corp.example", false),
            ("localhost", "localhost", true),
        ];
        for (pattern, host, want) in cases {
            assert_eq!(host_matches(pattern, host), want, "{pattern} {host}");
        }
    }

    #[test]
    fn rules_parse_ranges_addresses_and_host_patterns() {
        assert_eq!(
            AddressRule::parse("10.1.2.3/8").expect("range").to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            AddressRule::parse("192.0.2.7").expect("ip").to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            AddressRule::parse("::1").expect("ip6").to_string(),
            "::1/128"
        );
        assert_eq!(
            AddressRule::parse("*.Corp.example").expect("host"),
            AddressRule::Host("*.corp.example".into())
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "a/b",
            "reg..example",
            "reg example",
            "http://x",
        ] {
            assert!(AddressRule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn node_local_hosts_are_not_contacted_unless_allowed() {
        let default = AddressPolicy::default();
        for host in [
            "localhost",
            "LOCALHOST",
            "registry.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
        ] {
            assert!(default.node_local(host), "{host}");
        }
        for host in [
            "registry.example",
            "10.0.0.5",
            "localhost.example",
            "[fd00::1]",
        ] {
            assert!(!default.node_local(host), "{host}");
        }
        let allowed = policy(&["127.0.0.0/8"], &[]);
        assert!(!allowed.node_local("127.0.0.1"));
        assert!(!allowed.node_local("localhost"));
        assert!(allowed.node_local("[::1]"));
        // Denied outright: refused by policy, not taken for the node's own registry.
        let denied = policy(&["127.0.0.0/8"], &["127.0.0.2"]);
        assert!(!denied.node_local("127.0.0.2"));
        assert!(denied
            .check("127.0.0.2", "127.0.0.2".parse().expect("ip"))
            .is_err());
    }

    #[tokio::test]
    async fn the_resolver_hands_out_only_allowed_addresses() {
        use reqwest::dns::Resolve as _;
        let name = |s: &str| s.parse::<reqwest::dns::Name>().expect("name");
        let refusing = PolicyResolver::new(Arc::new(AddressPolicy::default()), HashSet::new());
        let err = match refusing.resolve(name("localhost")).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<AddressRefused>().is_some(), "{err}");
        let allowing = PolicyResolver::new(Arc::new(policy(&["127.0.0.0/8"], &[])), HashSet::new());
        let addrs: Vec<SocketAddr> = match allowing.resolve(name("localhost")).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => panic!("{e}"),
        };
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_ipv4() && a.ip().is_loopback()),
            "{addrs:?}"
        );
        // The operator's proxy is exempt.
        let proxied = PolicyResolver::new(
            Arc::new(AddressPolicy::default()),
            HashSet::from(["localhost".to_string()]),
        );
        assert!(proxied.resolve(name("localhost")).await.is_ok());
    }

    #[test]
    fn literal_hosts_are_read_as_addresses() {
        assert_eq!(literal_ip("[::1]"), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(
            literal_ip("127.0.0.1"),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(literal_ip("registry.example"), None);
    }
}
