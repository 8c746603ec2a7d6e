//! Property tests: the parser never panics, and what the encoder writes the
//! parser reads back unchanged.
use proptest::prelude::*;
use tendon_hl7::{
    AckCode, Delimiters, FieldPath, Header, Message, MessageWriter, Presence, Timestamp, build_ack,
    escape,
};

/// Walks every node and decodes every value, which is where lazy parsing does its work.
fn walk(msg: &Message<'_>) -> usize {
    let mut n = 0;
    for seg in msg.segments() {
        for field in seg.fields() {
            for rep in field.repetitions() {
                for c in 1..=4 {
                    let comp = rep.component(c);
                    n += comp.text().map_or(0, |t| t.len());
                    n += comp.subcomponent(2).text().map_or(0, |t| t.len());
                    let _ = comp.presence();
                }
            }
        }
    }
    n
}

/// The pieces of HL7 structure (and of its framing) the byte soup is made of.
const ATOMS: &[&[u8]] = &[
    b"MSH|^~\\&|",
    b"\r",
    b"\n",
    b"|",
    b"^",
    b"~",
    b"&",
    b"\\",
    b"\\X",
    b"\\.sp",
    b"\"\"",
    b"PID",
    b"\xEF\xBB\xBF",
    &[0x0b],
    &[0x1c],
];

/// Byte soup biased towards HL7 structure, so the fuzzing gets past the MSH check.
fn hl7ish() -> impl Strategy<Value = Vec<u8>> {
    // Each atom as likely as a run of random bytes.
    let atom = prop_oneof![
        ATOMS.len() as u32 => proptest::sample::select(ATOMS).prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(atom, 0..40).prop_map(|parts| {
        let mut v = b"MSH|^~\\&|".to_vec();
        v.extend(parts.concat());
        v
    })
}

fn check_no_panic(bytes: &[u8]) {
    if let Ok(msg) = Message::parse(bytes) {
        walk(&msg);
        let _ = msg.header();
        if let Some(t) = msg.msh().field(7).text() {
            let _ = Timestamp::parse(&t);
        }
    }
    let header = Header::sniff(bytes);
    let ack = build_ack(header.as_ref(), AckCode::Reject, &[], "20260101", "A1");
    assert!(Message::parse(&ack).is_ok(), "every ACK we build parses");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_no_panic(&bytes);
    }

    #[test]
    fn hl7_shaped_bytes_never_panic(bytes in hl7ish()) {
        check_no_panic(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics_timestamps_or_paths(s in ".{0,40}") {
        let _ = Timestamp::parse(&s);
        let _ = s.parse::<FieldPath>();
    }

    #[test]
    fn timestamps_round_trip(y in 1900i16..2100, mo in 1i8..=12, d in 1i8..=28, h in 0i8..24, mi in 0i8..60, s in 0i8..60, off in -12i32..=14) {
        let sign = if off < 0 { '-' } else { '+' };
        let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}{sign}{:02}00", off.abs());
        let ts = Timestamp::parse(&text).unwrap();
        prop_assert_eq!(ts.datetime, jiff::civil::date(y, mo, d).at(h, mi, s, 0));
        prop_assert_eq!(ts.offset.map(|o| o.seconds()), Some(off * 3600));
    }
}

/// A message as data: segments of fields of repetitions of components of subcomponents.
type Tree = Vec<Vec<Vec<Vec<Vec<String>>>>>;

fn delimiters() -> impl Strategy<Value = Delimiters> {
    prop_oneof![
        Just(Delimiters::default()),
        Just(Delimiters {
            field: b'#',
            component: b'$',
            repetition: b'*',
            escape: Some(b'@'),
            subcomponent: Some(b'%'),
            truncation: Some(b'!')
        }),
        Just(Delimiters {
            truncation: Some(b'#'),
            ..Delimiters::default()
        }),
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    let text = "[a-zA-Z0-9 |^~&\\\\#$*@%!\"\r\néü.]{0,8}";
    let subs = proptest::collection::vec(text, 1..3);
    let comps = proptest::collection::vec(subs, 1..3);
    let reps = proptest::collection::vec(comps, 1..3);
    let fields = proptest::collection::vec(reps, 1..5);
    proptest::collection::vec(fields, 1..5)
}

fn encode(tree: &Tree, d: &Delimiters) -> Vec<u8> {
    let join = |parts: Vec<String>, sep: u8| parts.join(&(sep as char).to_string());
    let mut w = MessageWriter::new(*d, &["APP", "FAC"]);
    for seg in tree {
        let fields: Vec<String> = seg
            .iter()
            .map(|reps| {
                let reps = reps.iter().map(|comps| {
                    let comps = comps.iter().map(|subs| {
                        join(
                            subs.iter().map(|s| escape(s, d)).collect(),
                            d.subcomponent.unwrap(),
                        )
                    });
                    join(comps.collect(), d.component)
                });
                join(reps.collect(), d.repetition)
            })
            .collect();
        w.segment("ZZZ", &fields);
    }
    w.finish()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn encode_then_parse_round_trips(d in delimiters(), tree in tree()) {
        let bytes = encode(&tree, &d);
        let msg = Message::parse(&bytes).unwrap();
        prop_assert_eq!(msg.delimiters(), d);
        let segs: Vec<_> = msg.segments().skip(1).collect();
        prop_assert_eq!(segs.len(), tree.len());
        for (seg, fields) in segs.iter().zip(&tree) {
            for (f, reps) in fields.iter().enumerate() {
                let field = seg.field(f + 1);
                prop_assert_eq!(field.repetitions().count(), reps.len());
                for (r, comps) in reps.iter().enumerate() {
                    for (c, subs) in comps.iter().enumerate() {
                        for (s, want) in subs.iter().enumerate() {
                            let v = field.repetition(r + 1).component(c + 1).subcomponent(s + 1);
                            prop_assert_ne!(v.presence(), Presence::Null);
                            prop_assert_eq!(v.text().unwrap_or_default(), want.as_str());
                        }
                    }
                }
            }
        }
    }
}
