//! In-process caches that keep a warm Lambda's requests per message down.
//!
//! - **Configuration by token** (always on): every configuration change writes
//!   a fresh `config_token` on the org item. A processing step reads the org
//!   item in the same BatchGetItem as the message and the patient, and uses the
//!   cached configuration only if its token still matches, so a step never
//!   decides on a stale configuration.
//! - **Ingest** (opt-in, [`AwsStore::with_ingest_cache`](crate::AwsStore::with_ingest_cache)):
//!   ingest keys found and org configurations are kept for a short TTL. Ingest
//!   uses the configuration only for its synchronous checks; the steps re-read
//!   the message with the current one. A revoked key or a changed field map
//!   takes effect at ingest within the TTL.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tendon_core::org::OrgConfig;

/// How long ingest trusts a cached key or configuration.
pub const INGEST_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct Caches {
    /// org → (token, configuration).
    configs: Mutex<HashMap<String, (String, OrgConfig)>>,
    /// `Some`: the ingest cache is on, with this TTL.
    ingest_ttl: Option<Duration>,
    keys: Mutex<HashMap<String, (Instant, String)>>,
    ingest_configs: Mutex<HashMap<String, Instant>>,
}

fn fresh(at: Instant, ttl: Option<Duration>) -> bool {
    ttl.is_some_and(|ttl| at.elapsed() < ttl)
}

impl Caches {
    pub(crate) fn with_ingest_ttl(ttl: Duration) -> Caches {
        Caches {
            ingest_ttl: Some(ttl),
            ..Caches::default()
        }
    }

    /// The cached configuration of `org`, if its token is `token`.
    pub(crate) fn config(&self, org: &str, token: &str) -> Option<OrgConfig> {
        let configs = self.configs.lock().ok()?;
        configs
            .get(org)
            .filter(|(t, _)| t == token)
            .map(|(_, c)| c.clone())
    }

    pub(crate) fn remember_config(&self, token: &str, config: &OrgConfig) {
        if let Ok(mut configs) = self.configs.lock() {
            configs.insert(config.org.id.clone(), (token.to_owned(), config.clone()));
        }
        if self.ingest_ttl.is_some()
            && let Ok(mut at) = self.ingest_configs.lock()
        {
            at.insert(config.org.id.clone(), Instant::now());
        }
    }

    /// Ingest's view: the configuration fetched within the TTL.
    pub(crate) fn ingest_config(&self, org: &str) -> Option<OrgConfig> {
        let at = *self.ingest_configs.lock().ok()?.get(org)?;
        if !fresh(at, self.ingest_ttl) {
            return None;
        }
        let configs = self.configs.lock().ok()?;
        configs.get(org).map(|(_, c)| c.clone())
    }

    pub(crate) fn ingest_key(&self, key_hash: &str) -> Option<String> {
        let keys = self.keys.lock().ok()?;
        keys.get(key_hash)
            .filter(|(at, _)| fresh(*at, self.ingest_ttl))
            .map(|(_, org)| org.clone())
    }

    pub(crate) fn remember_ingest_key(&self, key_hash: &str, org: &str) {
        if self.ingest_ttl.is_some()
            && let Ok(mut keys) = self.keys.lock()
        {
            keys.insert(key_hash.to_owned(), (Instant::now(), org.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tendon_core::org::Org;

    fn config(org: &str, tz: &str) -> OrgConfig {
        OrgConfig {
            org: Org {
                id: org.into(),
                name: "N".into(),
                timezone: tz.into(),
                ie_types: Vec::new(),
                field_map: Default::default(),
            },
            locations: Vec::new(),
            practitioners: Vec::new(),
            workflows: Vec::new(),
        }
    }

    #[test]
    fn a_configuration_is_used_only_with_its_token() {
        let c = Caches::default();
        c.remember_config("t1", &config("A", "UTC"));
        assert_eq!(c.config("A", "t1"), Some(config("A", "UTC")));
        assert_eq!(c.config("A", "t2"), None, "a changed token misses");
        assert_eq!(c.config("B", "t1"), None);
        c.remember_config("t2", &config("A", "America/Denver"));
        assert_eq!(c.config("A", "t1"), None);
        assert_eq!(c.config("A", "t2"), Some(config("A", "America/Denver")));
    }

    #[test]
    fn ingest_entries_live_for_the_ttl_and_only_when_enabled() {
        let off = Caches::default();
        off.remember_config("t", &config("A", "UTC"));
        off.remember_ingest_key("h", "A");
        assert_eq!(off.ingest_config("A"), None);
        assert_eq!(off.ingest_key("h"), None);

        let on = Caches::with_ingest_ttl(Duration::from_secs(60));
        on.remember_config("t", &config("A", "UTC"));
        on.remember_ingest_key("h", "A");
        assert_eq!(on.ingest_config("A"), Some(config("A", "UTC")));
        assert_eq!(on.ingest_key("h"), Some("A".to_owned()));
        assert_eq!(on.ingest_key("other"), None);

        let expired = Caches::with_ingest_ttl(Duration::ZERO);
        expired.remember_config("t", &config("A", "UTC"));
        expired.remember_ingest_key("h", "A");
        assert_eq!(expired.ingest_config("A"), None);
        assert_eq!(expired.ingest_key("h"), None);
    }
}
