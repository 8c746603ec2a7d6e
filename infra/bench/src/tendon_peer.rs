//! The Tendon peer: parse one message and map its fields, return a checksum.
//! Kept tiny on purpose so it follows `tendon_core`'s API as it settles.

pub fn tendon_peer(input: &[u8]) -> usize {
    let report = tendon_core::inspect(input, &tendon_core::MapContext::default());
    report.fields.count_present()
}
