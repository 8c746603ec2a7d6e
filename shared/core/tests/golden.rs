//! Golden tests over the shared conformance corpus (`tests/fixtures/hl7/conformance`, or
//! `$TENDON_SAMPLES`): every message parses, and the mapped fields of the ones in
//! `golden/expected.json` match values read off the raw bytes by hand.
use std::collections::BTreeMap;

mod common;

use common::corpus;
use serde_json::Value as Json;
use tendon_core::{FieldName, MapContext, inspect};
use tendon_hl7::Message;

#[test]
fn every_corpus_message_parses() {
    let files = corpus();
    assert!(
        files.len() >= 35,
        "expected the ~40-message corpus, found {}",
        files.len()
    );
    for (name, bytes) in &files {
        let msg = Message::parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(msg.segments().count() >= 2, "{name}");
        let report = inspect(bytes, &MapContext::default());
        assert!(report.message_type.is_some(), "{name}: no message type");
        assert!(
            report
                .errors
                .iter()
                .all(|e| e.code != tendon_core::ErrorCode::InvalidHl7),
            "{name}: {:?}",
            report.errors
        );
    }
}

#[test]
fn mapped_fields_match_hand_read_values() {
    let expected: BTreeMap<String, Json> =
        serde_json::from_str(include_str!("golden/expected.json"))
            .expect("golden/expected.json is valid JSON");
    assert!(expected.len() >= 12);
    let corpus: BTreeMap<String, Vec<u8>> = corpus().into_iter().collect();
    let mut mismatches = Vec::new();
    for (file, want) in &expected {
        let bytes = corpus
            .get(file)
            .unwrap_or_else(|| panic!("{file} is not in the corpus"));
        let report = inspect(bytes, &MapContext::default());
        assert_eq!(
            report.message_type.as_deref(),
            want["type"].as_str(),
            "{file}: type"
        );
        assert_eq!(
            report.control_id.as_deref(),
            want["control_id"].as_str(),
            "{file}: control_id"
        );
        for name in FieldName::ALL {
            let got = report.fields.get(*name);
            let exp = want["fields"][name.as_str()].as_str();
            if got.as_deref() != exp {
                mismatches.push(format!("{file}: {name}: got {got:?}, expected {exp:?}"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
