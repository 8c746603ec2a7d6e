//! Cliniko sync (docs/cliniko.md): the one-way import of a clinic's Cliniko patients,
//! their appointments and cases, behind the [`api::ClinikoApi`] port.
pub mod api;
pub mod appointments;
pub mod open;
pub mod sync;

use serde::{Deserialize, Serialize};

/// Environment variable with the `User-Agent` sent to Cliniko, `Vendor
/// (contact email)`: Cliniko may block requests without a contact.
pub const ENV_USER_AGENT: &str = "TENDON_CLINIKO_USER_AGENT";

/// An org's link to its Cliniko account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoConnection {
    pub org: String,
    /// The secret: stored (under the table's encryption), never logged or printed.
    pub api_key: String,
    /// The key's shard (`au1`, `uk2`...).
    pub shard: String,
    /// Overrides the shard's base URL (tests, a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The unguessable token in the "Open in" URL registered in Cliniko.
    pub token: String,
    /// The highest `updated_at` a complete sync has seen: the next sync asks
    /// for changes after it (less a small overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    pub connected_at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<jiff::Timestamp>,
}

impl ClinikoConnection {
    /// The key as output may show it: its last 4 characters.
    pub fn masked_key(&self) -> String {
        mask_key(&self.api_key)
    }
}

/// `****` and the last 4 characters (all of a key shorter than 12 is hidden).
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "****".to_owned();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("****{tail}")
}

// By hand, so the key never reaches a log through `{:?}`.
impl std::fmt::Debug for ClinikoConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClinikoConnection")
            .field("org", &self.org)
            .field("api_key", &self.masked_key())
            .field("shard", &self.shard)
            .field("base_url", &self.base_url)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

/// A Cliniko profile that could not be imported, saved until a sync finds it fixed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoFailure {
    pub cliniko_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The required Cliniko fields it lacks (`first_name`, `last_name`,
    /// `date_of_birth`, `sex`, `email`).
    pub missing: Vec<String>,
    /// The profile's `updated_at` when it failed.
    pub updated_at: String,
}

/// A new "Open in" token: 128 random bits, hex.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The URL a clinic registers in Cliniko as a connected patient app (Cliniko
/// appends `?patient_id=`).
pub fn open_url(public_url: &str, token: &str) -> String {
    format!("{}/cliniko/open/{token}", public_url.trim_end_matches('/'))
}
