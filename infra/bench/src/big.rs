//! The synthetic message of the parse workload: a deterministic SIU^S12 of
//! about 1 MiB ([`big_message`]), with the segment builder, the free-text
//! generator and the small PRNG it is made with.

/// The name the synthetic message carries in the workload.
pub const BIG_NAME: &str = "big.hl7 (synthetic SIU^S12)";

/// Target size of [`big_message`].
pub const BIG_TARGET_BYTES: usize = 1 << 20;

/// A deterministic, realistic SIU^S12 of about 1 MiB: MSH, SCH, PID, PV1,
/// PV2, DG1, RGS, AIS, AIL, AIP with every mapped field present, and ~10k NTE
/// segments of varied free text (spread over the schedule and resource
/// groups) with a few escapes (`\T\`, `\F\`, `\S\`, `\E\`, `\X0D0A\`).
/// Segments end with CR.
pub fn big_message() -> Vec<u8> {
    let msh = "MSH|^~\\&|TENDON-SCHED|NORTHWIND^2.16.840.1.113883.3.72.5.20^ISO|TENDON|INGEST|\
               20240315083000-0500||SIU^S12^SIU_S12|BIG000000000001|P|2.5.1|||AL|NE||UNICODE UTF-8"
        .to_owned();
    let sch = segment(
        "SCH",
        &[
            (1, "APT-889912^NORTHWIND"),
            (2, "FIL-553201^NORTHWIND"),
            (6, "ROUTINE^Routine^HL70276"),
            (7, "FU30^Follow-up visit, 30 min^LOCAL"),
            (8, "FOLLOWUP^Follow up^HL70277"),
            (9, "30"),
            (10, "min^minutes^ISO+"),
            (11, "^^30^20240318140000-0500^20240318143000-0500"),
            (12, "1173^MATTHEWS^JAMES^A^^DR^MD"),
            (16, "1173^MATTHEWS^JAMES^A^^DR^MD"),
            (17, "^WPN^PH^^1^207^5550100"),
            (20, "SCHED01^FRONT DESK^NORTHWIND"),
            (25, "Booked^Booked^HL70278"),
        ],
    );
    let pid = segment(
        "PID",
        &[
            (1, "1"),
            (
                3,
                "MRN004417^^^NORTHWIND^MR^NWH~998877665^^^USSSA^SS~E12093^^^EPIC^PI",
            ),
            (5, "O'CONNOR^MARGARET^ELLEN^^MRS^^L"),
            (6, "KELLY^^^^^^M"),
            (7, "19580412"),
            (8, "F"),
            (10, "2106-3^White^CDCREC"),
            (11, "418 HARBOR VIEW DR^APT 2B^PORTLAND^ME^04101^USA^H"),
            (
                13,
                "(207)555-0182^PRN^PH^^1^207^5550182~^PRN^CP^^1^207^5550199~\
                 ^NET^Internet^m.oconnor@example.org",
            ),
            (14, "(207)555-0300 X221^WPN^PH^^1^207^5550300^221"),
            (15, "ENG^English^ISO639"),
            (16, "M^Married^HL70002"),
            (18, "ACCT77120^^^NORTHWIND^AN"),
        ],
    );
    let pv1 = segment(
        "PV1",
        &[
            (1, "1"),
            (2, "O"),
            (3, "RAD^MRI2^01^NORTHWIND^^^^^MRI SUITE 2"),
            (4, "R^Routine^HL70007"),
            (7, "1173^MATTHEWS^JAMES^A^^DR^MD"),
            (8, "2231^PATEL^ANIKA^^^DR^MD"),
            (10, "RAD"),
            (18, "OP"),
            (19, "V0012345678^^^NORTHWIND^VN"),
            (41, "ACTIVE"),
            (44, "20240318140000-0500"),
        ],
    );
    let pv2 = segment(
        "PV2",
        &[(3, "R07.9^Chest pain \\T\\ shortness of breath^I10")],
    );
    let dg1 = segment(
        "DG1",
        &[
            (1, "1"),
            (2, "I10"),
            (3, "R07.9^Chest pain, unspecified^I10"),
            (4, "Chest pain, unspecified"),
            (6, "W"),
        ],
    );
    let rgs = segment("RGS", &[(1, "1"), (2, "A")]);
    let ais = segment(
        "AIS",
        &[
            (1, "1"),
            (2, "A"),
            (3, "70553^MRI BRAIN W\\T\\WO CONTRAST^CPT4"),
            (4, "20240318140000-0500"),
            (5, "0"),
            (6, "min"),
            (7, "30"),
            (8, "min"),
            (10, "Confirmed^Confirmed^HL70278"),
        ],
    );
    let ail = segment(
        "AIL",
        &[
            (1, "1"),
            (2, "A"),
            (3, "RAD^MRI2^01^NORTHWIND"),
            (4, "MRI^MRI scanner^LOCAL"),
            (6, "20240318140000-0500"),
            (9, "30"),
            (10, "min"),
        ],
    );
    let aip = segment(
        "AIP",
        &[
            (1, "1"),
            (2, "A"),
            (3, "1173^MATTHEWS^JAMES^A^^DR^MD"),
            (4, "RADIOLOGIST^Radiologist^LOCAL"),
            (6, "20240318140000-0500"),
            (9, "30"),
            (10, "min"),
        ],
    );

    let fixed = [&msh, &sch, &pid, &pv1, &pv2, &dg1, &rgs, &ais, &ail, &aip];
    let fixed_len: usize = fixed.iter().map(|s| s.len() + 1).sum();

    // Free-text notes until the message reaches the target size.
    let mut rng = SplitMix64(0x7E4D_0A11_5EED_2024);
    let mut notes = Vec::new();
    let mut total = fixed_len;
    let mut n = 0usize;
    while total < BIG_TARGET_BYTES {
        n += 1;
        let text = note_text(&mut rng, n);
        let source = ["L", "P", "O"][rng.below(3)];
        let nte = format!("NTE|{n}|{source}|{text}|RE");
        total += nte.len() + 1;
        notes.push(nte);
    }

    // 40 % of the notes follow SCH, 20 % each follow AIS, AIL and AIP.
    let cut = |pct: usize| notes.len() * pct / 100;
    let (sch_notes, rest) = notes.split_at(cut(40));
    let (ais_notes, rest) = rest.split_at(cut(20));
    let (ail_notes, aip_notes) = rest.split_at(cut(20));

    let mut out = String::with_capacity(total);
    let mut push = |s: &str| {
        out.push_str(s);
        out.push('\r');
    };
    push(&msh);
    push(&sch);
    sch_notes.iter().for_each(|s| push(s));
    for s in [&pid, &pv1, &pv2, &dg1, &rgs, &ais] {
        push(s);
    }
    ais_notes.iter().for_each(|s| push(s));
    push(&ail);
    ail_notes.iter().for_each(|s| push(s));
    push(&aip);
    aip_notes.iter().for_each(|s| push(s));
    out.into_bytes()
}

/// Build a segment from sparse `(field number, value)` pairs.
fn segment(name: &str, fields: &[(usize, &str)]) -> String {
    let last = fields.iter().map(|f| f.0).max().unwrap_or(0);
    let mut out = String::from(name);
    for i in 1..=last {
        out.push('|');
        if let Some((_, v)) = fields.iter().find(|f| f.0 == i) {
            out.push_str(v);
        }
    }
    out
}

const NOTE_WORDS: &[&str] = &[
    "patient",
    "reports",
    "intermittent",
    "chest",
    "discomfort",
    "since",
    "last",
    "visit",
    "no",
    "known",
    "allergies",
    "to",
    "contrast",
    "media",
    "prior",
    "MRI",
    "on",
    "file",
    "claustrophobia",
    "mild",
    "requests",
    "open",
    "bore",
    "if",
    "available",
    "arrive",
    "30",
    "minutes",
    "early",
    "for",
    "screening",
    "questionnaire",
    "remove",
    "all",
    "metal",
    "jewelry",
    "hearing",
    "aids",
    "pacemaker",
    "denied",
    "creatinine",
    "0.9",
    "mg/dL",
    "eGFR",
    ">60",
    "insurance",
    "authorization",
    "obtained",
    "ref#",
    "A-44120",
    "interpreter",
    "not",
    "required",
    "daughter",
    "will",
    "drive",
    "home",
    "after",
    "sedation",
    "NPO",
    "4",
    "hours",
    "before",
    "exam",
    "follow-up",
    "with",
    "Dr.",
    "Matthews",
    "in",
    "2",
    "weeks",
    "results",
    "to",
    "PCP",
    "via",
    "portal",
    "rescheduled",
    "from",
    "03/11",
    "per",
    "request",
    "call",
    "back",
    "number",
    "verified",
    "(207)555-0182",
    "wheelchair",
    "assistance",
    "at",
    "entrance",
    "B",
];

/// One line of varied free text; a few carry HL7 escapes.
fn note_text(rng: &mut SplitMix64, n: usize) -> String {
    let target = 40 + rng.below(97);
    let mut text = String::with_capacity(target + 24);
    while text.len() < target {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(NOTE_WORDS[rng.below(NOTE_WORDS.len())]);
    }
    if n.is_multiple_of(997) {
        text.push_str(" Smith \\T\\ Jones LLP");
    }
    if n.is_multiple_of(1499) {
        text.push_str("\\X0D0A\\second line of the note");
    }
    if n.is_multiple_of(2503) {
        text.push_str(" pipe\\F\\caret\\S\\backslash\\E\\");
    }
    text
}

/// Small deterministic PRNG (SplitMix64).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_message_is_deterministic_and_about_1mib() {
        let a = big_message();
        assert_eq!(a, big_message());
        assert!(a.len() >= BIG_TARGET_BYTES && a.len() < BIG_TARGET_BYTES + 512);
        let nte = a
            .split(|&b| b == b'\r')
            .filter(|s| s.starts_with(b"NTE|"))
            .count();
        assert!((9_000..11_500).contains(&nte), "{nte} NTE segments");
    }
}
