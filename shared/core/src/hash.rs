//! SHA-256 as lower-case hex: the one digest behind message identities,
//! ingest key hashes, scheduled step and delivery IDs, and unsubscribe
//! tokens. A leaf: it imports nothing from the crate.
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
