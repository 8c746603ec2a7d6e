//! The unsubscribe link every email carries: a keyed token per (org,
//! patient), checked in constant time, and the URL with its path segments
//! encoded.

/// Percent-encodes a URL path segment (everything but unreserved characters).
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Where a patient unsubscribes: `{base}/unsubscribe/{org}/{patient}/{token}`.
pub fn unsubscribe_url(base: &str, org: &str, patient_id: &str, token: &str) -> String {
    format!(
        "{}/unsubscribe/{}/{}/{token}",
        base.trim_end_matches('/'),
        path_segment(org),
        path_segment(patient_id)
    )
}

/// A patient's unsubscribe token: a keyed hash of (org, patient ID), so every
/// email to the patient carries the same link, and nobody without the secret
/// can make one. (SHA-256 over secret and message with a fixed layout; the
/// inputs cannot be extended past the secret.)
pub fn unsubscribe_token(secret: &str, org: &str, patient_id: &str) -> String {
    let input = format!("{}\0{secret}\0{org}\0{patient_id}", secret.len());
    crate::hash::sha256_hex(input.as_bytes())[..32].to_owned()
}

/// Whether `token` is the unsubscribe token of (org, patient ID); compared in
/// constant time.
pub fn unsubscribe_token_ok(secret: &str, org: &str, patient_id: &str, token: &str) -> bool {
    let want = unsubscribe_token(secret, org, patient_id);
    want.len() == token.len()
        && want
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}
