//! An org's link to Cliniko as a sync sees it: connecting (proving the key,
//! keeping the "Open in" token) and where a re-sync starts.
use jiff::{SignedDuration, Timestamp};

use super::report::SyncError;
use crate::cliniko::api::ClinikoApi;
use crate::cliniko::{ClinikoConnection, new_token};
use crate::ports::{StoreError, SyncStore};

/// How far before the watermark a re-sync starts asking: clocks differ, and
/// a profile saved as the last sync read its page could carry an earlier
/// `updated_at`. Re-reading a profile costs nothing: it is unchanged.
pub const WATERMARK_OVERLAP: SignedDuration = SignedDuration::from_secs(300);

/// Connects an org to Cliniko: proves the key with one call, then stores the
/// connection. A reconnect keeps the "Open in" token (the URL registered in
/// Cliniko stays valid) and, with the same key, the watermark; a new key may
/// be another account, so its first sync is a full one.
pub async fn connect<S: SyncStore, A: ClinikoApi>(
    store: &S,
    api: &A,
    org: &str,
    api_key: &str,
    shard: &str,
    base_url: Option<&str>,
    now: Timestamp,
) -> Result<ClinikoConnection, SyncError> {
    if store.org_config(org).await?.is_none() {
        return Err(SyncError::NoOrg(org.to_owned()));
    }
    api.verify().await?;
    let existing = store.connection(org).await?;
    let token = match &existing {
        Some(c) => c.token.clone(),
        None => new_token().map_err(StoreError::backend_detail)?,
    };
    let watermark = existing
        .as_ref()
        .filter(|c| c.api_key == api_key)
        .and_then(|c| c.watermark.clone());
    let connection = ClinikoConnection {
        org: org.to_owned(),
        api_key: api_key.to_owned(),
        shard: shard.to_owned(),
        base_url: base_url.map(str::to_owned),
        token,
        watermark,
        connected_at: now,
        last_sync_at: existing.and_then(|c| c.last_sync_at),
    };
    store.put_connection(&connection).await?;
    tracing::info!(org = %org, shard = %shard, "Cliniko connected");
    Ok(connection)
}

/// Where a re-sync starts: the watermark less [`WATERMARK_OVERLAP`].
pub fn since(connection: &ClinikoConnection) -> Option<String> {
    let mark = connection.watermark.as_deref()?.parse::<Timestamp>().ok()?;
    Some(
        mark.checked_sub(WATERMARK_OVERLAP)
            .unwrap_or(mark)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_re_sync_starts_five_minutes_before_the_watermark() {
        let c = ClinikoConnection {
            org: "ORG".into(),
            api_key: "secret-au2".into(),
            shard: "au2".into(),
            base_url: None,
            token: "t".into(),
            watermark: Some("2026-11-20T10:00:00Z".into()),
            connected_at: "2026-11-21T00:00:00Z".parse().unwrap(),
            last_sync_at: None,
        };
        assert_eq!(since(&c).as_deref(), Some("2026-11-20T09:55:00Z"));
        assert!(!format!("{c:?}").contains("secret"));
    }
}
