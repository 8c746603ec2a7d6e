//! Arbitrary bytes through everything a received message touches: the parser,
//! every value in it (navigation, presence, decoding), header sniffing, the ACK
//! builder, timestamps, field paths and `tendon_core::inspect` with its JSON
//! report. The only property checked is that nothing panics (plus one cheap
//! round trip of a field path through its `Display`).
#![no_main]

use std::str::FromStr;
use std::sync::LazyLock;

use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;
use tendon_hl7::{
    AckCode, FieldPath, Header, Level, Message, Presence, Timestamp, Value, build_ack,
};

mod common;

/// Positions visited at each level. Navigation is a linear scan, so visiting
/// every position of a value with thousands of delimiters is quadratic; past
/// this many we still visit the last position and the first absent one.
const MAX_POSITIONS: usize = 64;

/// Built once: the default context looks its time zone up in the tz database.
static CTX: LazyLock<tendon_core::MapContext> = LazyLock::new(tendon_core::MapContext::default);

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        walk_message(&msg);
    }

    // Header sniffing and the ACK, for inputs that parse and inputs that do not.
    let header = Header::sniff(data);
    let path = common::error_path();
    let errors = common::ack_errors(&path);
    let _ = build_ack(
        header.as_ref(),
        AckCode::Reject,
        &errors,
        "20261120093001",
        "ACK1",
    );
    let _ = build_ack(header.as_ref(), AckCode::Accept, &[], "", "");

    // Arbitrary text as a timestamp and as a field path.
    let lossy = String::from_utf8_lossy(data);
    timestamp(&lossy);
    if let Ok(p) = FieldPath::from_str(&lossy) {
        let shown = p.to_string();
        assert_eq!(FieldPath::from_str(&shown).as_ref(), Ok(&p), "{shown}");
    }

    // The domain core on the same bytes, and its JSON report.
    let report = tendon_core::inspect(data, &CTX);
    let json = serde_json::to_string(&report).expect("an inspect report serializes to JSON");
    std::hint::black_box(json);
    let _ = report.ack_code();
    let _ = report.ack(data, "20261120093001", "ACK1");
});

fn walk_message(msg: &Message<'_>) {
    let _ = (
        msg.delimiters(),
        msg.charset(),
        msg.terminator(),
        msg.body(),
    );
    let header = msg.header();
    let _ = build_ack(Some(&header), AckCode::Error, &[], "20261120093001", "ACK2");

    let msh = msg.msh();
    if let Some(t) = msh.field(7).text() {
        timestamp(&t);
    }
    if let Some(t) = msh.field(7).component(1).text() {
        timestamp(&t);
    }

    for seg in msg.segments() {
        let id = seg.id();
        let _ = seg.raw();
        assert!(msg.segment(id).is_some(), "segment {id} is found by its ID");
        let _ = msg.segments_named(id).count();

        let count = seg.field_count();
        for (i, field) in seg.fields().enumerate() {
            value(&field);
            for (r, rep) in field.repetitions().enumerate() {
                value(&rep);
                positions(
                    |c| rep.component(c),
                    |comp| {
                        value(&comp);
                        positions(|s| comp.subcomponent(s), |sub| value(&sub));
                    },
                );
                if r >= MAX_POSITIONS {
                    break;
                }
            }
            // Shortcut navigation from the field itself.
            value(&field.repetition(1));
            value(&field.component(2));
            value(&field.subcomponent(2));
            value(&field.primitive());

            let _ = field.trimmed();
            // The same node through a field path (IDs are uppercase/digits);
            // a few per segment, as each lookup rescans the message.
            let n = i + 1;
            if n <= 4
                && let Ok(n16) = u16::try_from(n)
            {
                let text = format!("{id}-{n16}(1).1.1");
                if let Ok(p) = FieldPath::from_str(&text) {
                    value(&p.locate(msg));
                    value(&p.primitive(msg));
                }
            }
            if i >= MAX_POSITIONS {
                break;
            }
        }
        value(&seg.field(0));
        value(&seg.field(count));
        value(&seg.field(count + 1));
    }
}

/// Visits positions 1..=MAX_POSITIONS until the first absent one, or, for
/// values with more parts, the first MAX_POSITIONS plus a window at the end.
fn positions<'a>(get: impl Fn(usize) -> Value<'a>, mut visit: impl FnMut(Value<'a>)) {
    let _ = get(0).presence();
    for n in 1..=MAX_POSITIONS {
        let v = get(n);
        let absent = v.is_absent();
        visit(v);
        if absent {
            return;
        }
    }
    // Find the end by doubling, then visit the last few and the first absent one.
    let mut hi = MAX_POSITIONS * 2;
    while !get(hi).is_absent() {
        hi *= 2;
    }
    let mut lo = hi / 2; // present
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if get(mid).is_absent() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    for n in lo.saturating_sub(2).max(MAX_POSITIONS + 1)..=hi {
        visit(get(n));
    }
}

fn value(v: &Value<'_>) {
    let presence = v.presence();
    let text = v.text();
    match presence {
        Presence::Present => {}
        Presence::Absent | Presence::Empty | Presence::Null => {
            assert!(text.is_none(), "{presence:?} value has no text");
        }
    }
    let _ = (v.raw(), v.is_null(), v.is_absent());
    if v.level() == Level::Literal {
        let _ = v.repetition(1).component(1).subcomponent(1).text();
    }
    // Only what could be a timestamp: the rest fails on its first byte anyway.
    if let Some(t) = text
        && t.len() <= 40
        && t.trim_start().starts_with(|c: char| c.is_ascii_digit())
    {
        timestamp(&t);
    }
}

fn timestamp(text: &str) {
    if let Ok(ts) = Timestamp::parse(text) {
        let _ = (ts.date(), ts.has_day());
        let _ = ts.to_zoned(&TimeZone::UTC);
        let _ = ts.to_zoned(&TimeZone::fixed(jiff::tz::offset(-8)));
        let _ = ts.to_zoned(&CTX.time_zone);
    }
}
