//! Answers from registries, shared between reviews.
//!
//! A rollout creates many pods at once: identical checks in flight are coalesced into one
//! registry round trip, and answers are kept for a while. Every key carries the fingerprint of
//! the credential used, so an answer obtained with one namespace's secret never answers for
//! another namespace (or for an anonymous pull).

use crate::credentials::Fingerprint;
use crate::registry::{RegistryError, Resolved};
use moka::Expiry;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The normalized reference as containerd resolves it (host, repository, tag or digest).
    pub reference: String,
    pub credential: Fingerprint,
}

/// How long answers are kept: the `cache:` section of the configuration, whose embedded
/// default file also holds the `Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheSettings {
    /// A tag that resolved: tags move, so not for long.
    #[serde(with = "crate::duration")]
    pub tag_ttl: Duration,
    /// A digest that resolved: content addressed, it cannot change (it could be deleted, which
    /// a long TTL accepts).
    #[serde(with = "crate::duration")]
    pub digest_ttl: Duration,
    /// Not found, unauthorized, forbidden: short, so a push or a fixed secret shows up soon.
    #[serde(with = "crate::duration")]
    pub negative_ttl: Duration,
    /// Rate limited, unreachable, 5xx: very short, the registry may recover any second.
    #[serde(with = "crate::duration")]
    pub failure_ttl: Duration,
    pub max_entries: u64,
}

pub type Answer = Result<Resolved, RegistryError>;

#[derive(Clone)]
struct Entry {
    answer: Answer,
    ttl: Duration,
}

struct EntryExpiry;

impl Expiry<CacheKey, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &CacheKey, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
}

pub struct AnswerCache {
    entries: moka::future::Cache<CacheKey, Entry>,
    settings: CacheSettings,
}

impl AnswerCache {
    pub fn new(settings: CacheSettings) -> Self {
        AnswerCache {
            entries: moka::future::Cache::builder()
                .max_capacity(settings.max_entries)
                .expire_after(EntryExpiry)
                .build(),
            settings,
        }
    }

    /// The cached answer for `key`, or the answer of `fetch`, run once however many callers
    /// ask for the same key at the same time.
    pub async fn get_or_fetch<F>(&self, key: CacheKey, by_digest: bool, fetch: F) -> Answer
    where
        F: Future<Output = Answer>,
    {
        let settings = self.settings;
        let entry = self
            .entries
            .get_with(key, async move {
                let answer = fetch.await;
                let ttl = settings.ttl_for(&answer, by_digest);
                Entry { answer, ttl }
            })
            .await;
        entry.answer
    }
}

impl CacheSettings {
    fn ttl_for(&self, answer: &Answer, by_digest: bool) -> Duration {
        use crate::reason::ReasonClass;
        match answer {
            Ok(_) if by_digest => self.digest_ttl,
            Ok(_) => self.tag_ttl,
            Err(e) => match e.reason().class() {
                ReasonClass::Workload => self.negative_ttl,
                _ => self.failure_ttl,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Credential;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn key(reference: &str, cred: Option<&Credential>) -> CacheKey {
        CacheKey {
            reference: reference.into(),
            credential: Fingerprint::of(cred),
        }
    }

    fn found() -> Answer {
        Ok(Resolved {
            digest: Some("sha256:abc".into()),
            media_type: None,
        })
    }

    #[tokio::test]
    async fn coalesces_identical_checks_in_flight() {
        let cache = Arc::new(AnswerCache::new(CacheSettings::default()));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(key("r/a:1", None), false, async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        found()
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), found());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn never_answers_for_a_different_credential() {
        let cache = AnswerCache::new(CacheSettings::default());
        let a = Credential::new("a", "pa", "secret ns-a/regcred");
        let got = cache
            .get_or_fetch(key("r/private:1", Some(&a)), false, async { found() })
            .await;
        assert_eq!(got, found());
        let denied = Err(RegistryError::Unauthorized {
            with_credentials: false,
            detail: None,
        });
        let anonymous = cache
            .get_or_fetch(key("r/private:1", None), false, async { denied.clone() })
            .await;
        assert_eq!(anonymous, denied);
        let b = Credential::new("a", "other", "secret ns-b/regcred");
        let other = cache
            .get_or_fetch(key("r/private:1", Some(&b)), false, async {
                denied.clone()
            })
            .await;
        assert_eq!(other, denied);
    }

    #[test]
    fn negative_answers_live_shorter_than_positive_ones() {
        let s = CacheSettings::default();
        let not_found = Err(RegistryError::NameUnknown);
        let down = Err(RegistryError::Server {
            status: 503,
            detail: None,
        });
        assert_eq!(s.ttl_for(&found(), true), s.digest_ttl);
        assert_eq!(s.ttl_for(&found(), false), s.tag_ttl);
        assert_eq!(s.ttl_for(&not_found, false), s.negative_ttl);
        assert_eq!(s.ttl_for(&down, false), s.failure_ttl);
        assert!(s.failure_ttl < s.negative_ttl && s.negative_ttl < s.tag_ttl);
    }
}
