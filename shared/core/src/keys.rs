//! Ingest keys: issuing a new one, its hash, and, after it is issued,
//! listing and revoking. A key is shown once, when `org create` or `org
//! add-key` issues it; afterwards operators name it by its key ID, the first
//! hex digits of its SHA-256, which is what the store keeps and says nothing
//! usable about the key. A key is live or test-mode ([`crate::mode`]); the
//! test-mode data its messages made is deleted here too.
use crate::hash::sha256_hex;
use crate::mode::{self, Mode};
use crate::ports::{ConfigStore, IngestKey, PartitionDeleted, StoreError, TestData};

/// A new ingest key: `tdn_` and 160 random bits. Only its hash is stored.
pub fn new_ingest_key() -> Result<String, String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a new key: {e}"))?;
    Ok(format!(
        "tdn_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Issues a new key of `mode` for the org: the key, to show once.
pub async fn add(store: &impl ConfigStore, org: &str, mode: Mode) -> Result<String, String> {
    let key = new_ingest_key()?;
    store
        .add_ingest_key(org, &key_hash(&key), mode)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => format!("org {org:?} does not exist"),
            other => other.to_string(),
        })?;
    Ok(key)
}

/// Deletes the org's test-mode data (its keys stay, so the gateway can go on
/// testing); live data is never touched.
pub async fn delete_test_data<S: ConfigStore + TestData>(
    store: &S,
    org: &str,
) -> Result<PartitionDeleted, String> {
    list(store, org).await?;
    store
        .delete_partition(&mode::partition(org, Mode::Test))
        .await
        .map_err(|e| e.to_string())
}

pub fn key_hash(key: &str) -> String {
    sha256_hex(key.trim().as_bytes())
}

/// Hex digits of the hash shown as a key's ID.
pub const KEY_ID_LEN: usize = 12;
/// The shortest ID prefix `revoke` accepts (32 bits: no accidental match).
pub const MIN_KEY_ID_LEN: usize = 8;

/// The ID operators see for a key hash.
pub fn key_id(hash: &str) -> &str {
    hash.get(..KEY_ID_LEN).unwrap_or(hash)
}

/// Which key to revoke.
#[derive(Clone, Copy, Debug)]
pub enum KeyRef<'a> {
    /// Its key ID (or a longer prefix of its hash).
    Id(&'a str),
    /// The key itself, as the gateway sends it.
    Key(&'a str),
}

/// A done revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    pub key_id: String,
    /// Keys the org still has.
    pub remaining: usize,
}

/// The org's keys, oldest first; an error naming the org if it does not exist.
pub async fn list(store: &impl ConfigStore, org: &str) -> Result<Vec<IngestKey>, String> {
    if store
        .org_config(org)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err(format!("org {org:?} does not exist"));
    }
    store.ingest_keys(org).await.map_err(|e| e.to_string())
}

/// Revokes one of the org's keys. Revoking the org's last key stops its
/// ingest altogether, so it needs `allow_none` (the usual rotation is
/// `add-key`, move the gateway, then revoke the old key).
pub async fn revoke(
    store: &impl ConfigStore,
    org: &str,
    which: KeyRef<'_>,
    allow_none: bool,
) -> Result<Revoked, String> {
    let keys = list(store, org).await?;
    let hash = match which {
        KeyRef::Key(key) => {
            let hash = key_hash(key);
            keys.iter()
                .any(|k| k.hash == hash)
                .then_some(hash)
                .ok_or_else(|| format!("that key is not an ingest key of org {org:?}"))?
        }
        KeyRef::Id(id) => {
            let id = id.trim().to_ascii_lowercase();
            if id.len() < MIN_KEY_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "a key ID is at least {MIN_KEY_ID_LEN} hex digits (see `tendon org keys --org {org}`)"
                ));
            }
            let mut matching = keys.iter().filter(|k| k.hash.starts_with(&id));
            match (matching.next(), matching.next()) {
                (Some(k), None) => k.hash.clone(),
                (None, _) => return Err(format!("org {org:?} has no key with ID {id}")),
                (Some(_), Some(_)) => {
                    return Err(format!("more than one key of org {org:?} starts with {id}"));
                }
            }
        }
    };
    let remaining = keys.len() - 1;
    if remaining == 0 && !allow_none {
        return Err(format!(
            "key {} is org {org:?}'s last ingest key: revoking it stops all ingest for the org. \
             Issue a new key first (`tendon org add-key`), or pass --allow-none",
            key_id(&hash)
        ));
    }
    match store.revoke_ingest_key(org, &hash).await {
        // NotFound: revoked meanwhile by someone else, the outcome asked for.
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(Revoked {
        key_id: key_id(&hash).to_owned(),
        remaining,
    })
}
