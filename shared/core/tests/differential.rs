//! Differential test against the `hl7-parser` crate on the shared corpus.
//!
//! Where both parsers accept a message, they must agree on every segment name
//! and on the raw text of every field, repetition, component and subcomponent,
//! and on decoded text. The few places where they differ are pinned below with
//! the reason `hl7-parser` is wrong there, so a new difference fails the test.
mod common;

use tendon_hl7::{Message, Presence};

/// hl7-parser reads text, so give it the UTF-8 (lossy) text without a BOM or
/// MLLP bytes, which it does not strip itself.
fn as_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_start_matches('\u{feff}')
        .trim_matches(|c| c == '\u{b}' || c == '\u{1c}' || c == '\r' || c == '\n')
        .to_owned()
}

#[test]
fn agrees_with_hl7_parser_where_it_is_right() {
    let mut compared = 0;
    let mut values = 0;
    let mut rejected_by_peer = Vec::new();
    let mut segment_disagreements = Vec::new();
    let mut escape_disagreements = Vec::new();
    for (name, bytes) in common::corpus() {
        let text = as_text(&bytes);
        let ours = Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Ok(theirs) = hl7_parser::Message::parse_with_lenient_newlines(&text, true) else {
            rejected_by_peer.push(name);
            continue;
        };
        compared += 1;
        let our_segs: Vec<_> = ours.segments().collect();
        let their_ids: Vec<&str> = theirs.segments.iter().map(|s| s.name).collect();
        let our_ids: Vec<&str> = our_segs.iter().map(|s| s.id()).collect();
        if our_ids != their_ids {
            segment_disagreements.push((name, our_ids.join(","), their_ids.join(",")));
            continue;
        }
        for (seg, their_seg) in our_segs.iter().zip(&theirs.segments) {
            assert_eq!(seg.id(), their_seg.name, "{name}");
            for (i, their_field) in their_seg.fields.iter().enumerate() {
                // hl7-parser's field list starts at MSH-1 for MSH and at field 1 otherwise.
                let n = i + 1;
                let field = seg.field(n);
                let at = format!("{name} {}-{n}", seg.id());
                assert_eq!(
                    field.raw().unwrap_or_default(),
                    their_field.raw_value().as_bytes(),
                    "{at}"
                );
                if seg.id() == "MSH" && n <= 2 {
                    continue;
                }
                for (r, their_rep) in their_field.repeats.iter().enumerate() {
                    let rep = field.repetition(r + 1);
                    assert_eq!(
                        rep.raw().unwrap_or_default(),
                        their_rep.raw_value().as_bytes(),
                        "{at}({})",
                        r + 1
                    );
                    for (c, their_comp) in their_rep.components.iter().enumerate() {
                        let comp = rep.component(c + 1);
                        assert_eq!(
                            comp.raw().unwrap_or_default(),
                            their_comp.raw_value().as_bytes(),
                            "{at}.{}",
                            c + 1
                        );
                        for (s, their_sub) in their_comp.subcomponents.iter().enumerate() {
                            let sub = comp.subcomponent(s + 1);
                            let raw = their_sub.raw_value();
                            assert_eq!(
                                sub.raw().unwrap_or_default(),
                                raw.as_bytes(),
                                "{at}.{}.{}",
                                c + 1,
                                s + 1
                            );
                            if sub.presence() != Presence::Present {
                                continue;
                            }
                            let decoded = theirs.separators.decode(raw).to_string();
                            if raw.contains('\\') {
                                if sub.text().unwrap_or_default() != decoded.as_str() {
                                    escape_disagreements.push(format!(
                                        "{at}: raw {raw:?}: ours {:?}, theirs {decoded:?}",
                                        sub.text().unwrap_or_default()
                                    ));
                                }
                                continue;
                            }
                            assert_eq!(
                                sub.text().unwrap_or_default(),
                                decoded.as_str(),
                                "{at}.{}.{}",
                                c + 1,
                                s + 1
                            );
                            values += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!("compared {compared} messages and {values} decoded values");
    assert!(
        rejected_by_peer.is_empty(),
        "hl7-parser rejected {rejected_by_peer:?}"
    );
    assert!(compared >= 35, "only {compared} messages compared");
    assert!(values > 2000);
    // Where the two disagree, hl7-parser is wrong, and these are all the places:
    // it drops every segment from an empty one (`PD1` with no fields) onwards,
    // leaves `\X0D0A\` undecoded, and cuts a value at a stray backslash.
    let segments: Vec<&str> = segment_disagreements
        .iter()
        .map(|(n, ..)| n.as_str())
        .collect();
    assert_eq!(
        segments,
        ["adt_a31_hapi_1.hl7"],
        "{segment_disagreements:#?}"
    );
    let escapes: Vec<&str> = escape_disagreements
        .iter()
        .map(|d| d.split(':').next().unwrap())
        .collect();
    assert_eq!(
        escapes,
        [
            "adt_a08_efferent_1.hl7 GT1-5",
            "adt_a08_efferent_2.hl7 ZZ1-9"
        ],
        "{escape_disagreements:#?}"
    );
}
