//! `tendon hl7 inspect` end to end: the real binary on tricky inputs.
use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value as Json;

/// docs/interface.md §8's worked example, segments ending in CR.
const WORKED: &str = include_str!("../examples/worked-example.hl7");

fn tendon(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tendon"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tendon runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn inspect_with(input: &[u8], extra: &[&str]) -> Json {
    let mut args = vec![
        "hl7",
        "inspect",
        "-",
        "--json",
        "--timezone",
        "America/Los_Angeles",
    ];
    args.extend_from_slice(extra);
    let out = tendon(&args, input);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is only JSON")
}

fn inspect(input: &[u8]) -> Json {
    inspect_with(input, &[])
}

fn codes(report: &Json) -> Vec<(String, Option<String>)> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap().to_owned(),
                e["field"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn missing(report: &Json) -> Vec<String> {
    codes(report)
        .into_iter()
        .filter(|(c, _)| c == "missing_field")
        .filter_map(|(_, f)| f)
        .collect()
}

fn worked_with(segment_end: &str) -> Vec<u8> {
    WORKED.replace('\r', segment_end).into_bytes()
}

#[test]
fn worked_example_maps_exactly_as_the_contract_says() {
    let r = inspect(WORKED.as_bytes());
    assert_eq!(r["type"], "SIU^S12");
    assert_eq!(r["control_id"], "MSG00042");
    let f = &r["fields"];
    for (name, want) in [
        ("patient_id", "P555"),
        ("patient_family_name", "Rivera"),
        ("patient_given_name", "Ana"),
        ("patient_birth_date", "1985-03-12"),
        ("patient_gender", "female"),
        ("patient_email", "ana.rivera@example.com"),
        ("patient_mobile", "+15035550101"),
        ("appointment_id", "A9001"),
        ("clinic_id", "12"),
        ("appointment_category", "EVAL"),
        ("appointment_type", "Initial Eval"),
        ("appointment_start", "2026-12-01T10:00:00-08:00"),
        ("appointment_status", "scheduled"),
        ("case_id", "C-42"),
        ("case_description", "Right Shoulder"),
        ("treating_therapist_id", "445566"),
        ("supervising_therapist_id", "778899"),
        ("supervising_therapist_npi", "1234567893"),
    ] {
        assert_eq!(f[name], want, "{name}");
    }
    assert_eq!(r["errors"], Json::Array(vec![]));
    // Every contract field name is a key, null when absent.
    assert_eq!(f.as_object().unwrap().len(), 28);
    assert!(f["prior_patient_id"].is_null());
}

#[test]
fn segment_ends_bom_and_mllp_framing_do_not_change_the_result() {
    let reference = inspect(WORKED.as_bytes());
    let mut framed = vec![0x0b];
    framed.extend_from_slice(b"\xEF\xBB\xBF");
    framed.extend(worked_with("\r"));
    framed.extend_from_slice(b"\x1c\r");
    let no_final = WORKED.trim_end_matches('\r').as_bytes().to_vec();
    for (label, input) in [
        ("LF", worked_with("\n")),
        ("CRLF", worked_with("\r\n")),
        ("BOM+MLLP", framed),
        ("no final terminator", no_final),
    ] {
        let r = inspect(&input);
        assert_eq!(r["fields"], reference["fields"], "{label}");
        assert_eq!(r["errors"], reference["errors"], "{label}");
    }
}

#[test]
fn custom_encoding_characters() {
    let custom: String = WORKED
        .replace("MSH|^~\\&|", "MSH#$*@%#")
        .chars()
        .map(|c| match c {
            '|' => '#',
            '^' => '$',
            '~' => '*',
            '&' => '%',
            c => c,
        })
        .collect();
    let r = inspect(custom.as_bytes());
    assert_eq!(r["fields"], inspect(WORKED.as_bytes())["fields"]);
    assert_eq!(r["fields"]["patient_id"], "P555");
}

#[test]
fn every_escape_sequence_is_decoded() {
    let input = WORKED
        .replace(
            "Rivera^Ana^M",
            r"Rivera\F\Pipe\S\Hat\T\Amp\R\Tilde\E\Bs^Ana\X0D0A\Line",
        )
        .replace(
            "M75.1^Right Shoulder",
            r"M75.1^Right\.br\Shoulder \H\hi\N\\X41\ \.sk 2\x \bad\ \Z1\",
        );
    let r = inspect(input.as_bytes());
    assert_eq!(
        r["fields"]["patient_family_name"],
        r"Rivera|Pipe^Hat&Amp~Tilde\Bs"
    );
    assert_eq!(r["fields"]["patient_given_name"], "Ana\r\nLine");
    assert_eq!(
        r["fields"]["case_description"],
        "Right\nShoulder hiA   x \\bad\\ \\Z1\\"
    );
}

#[test]
fn explicit_null_is_not_a_value() {
    let input = WORKED
        .replace("|19850312|F|", "|\"\"|\"\"|")
        .replace("^NET^Internet^ana.rivera@example.com", "^NET^Internet^\"\"");
    let r = inspect(input.as_bytes());
    assert!(r["fields"]["patient_birth_date"].is_null());
    assert!(r["fields"]["patient_email"].is_null());
    assert_eq!(
        missing(&r),
        ["patient_birth_date", "patient_gender", "patient_email"]
    );
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("PID-7")
    );
}

#[test]
fn iso_8859_1_is_decoded_per_msh18_and_as_a_fallback() {
    let latin1 = |s: &str| s.chars().map(|c| c as u8).collect::<Vec<u8>>();
    let declared = WORKED
        .replace("|P|2.5.1", "|P|2.5.1||||||8859/1")
        .replace("Rivera^Ana", "Müller^Zoë");
    let r = inspect(&latin1(&declared));
    assert_eq!(r["fields"]["patient_family_name"], "Müller");
    assert_eq!(r["fields"]["patient_given_name"], "Zoë");
    let undeclared = WORKED.replace("Rivera^Ana", "Müller^Zoë");
    let r = inspect(&latin1(&undeclared));
    assert_eq!(r["fields"]["patient_family_name"], "Müller");
    // The same text in UTF-8 stays UTF-8.
    assert_eq!(
        inspect(undeclared.as_bytes())["fields"]["patient_given_name"],
        "Zoë"
    );
}

#[test]
fn truncated_input_reports_what_is_missing_or_where_it_broke() {
    let cut_in_msh = &WORKED.as_bytes()[..6];
    let r = inspect(cut_in_msh);
    assert_eq!(codes(&r), [("invalid_hl7".to_owned(), None)]);
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("byte 6")
    );

    let after_sch = WORKED.split("PID|").next().unwrap();
    let r = inspect(after_sch.as_bytes());
    assert_eq!(r["control_id"], "MSG00042");
    let m = missing(&r);
    for f in [
        "patient_id",
        "patient_email",
        "clinic_id",
        "case_id",
        "supervising_therapist_id",
    ] {
        assert!(m.contains(&f.to_owned()), "{f} in {m:?}");
    }
    assert!(!m.contains(&"appointment_id".to_owned()));

    let mid_segment = &WORKED.as_bytes()[..WORKED.find("Rivera").unwrap() + 3];
    let r = inspect(mid_segment);
    assert_eq!(r["fields"]["patient_family_name"], "Riv");
    assert!(missing(&r).contains(&"patient_given_name".to_owned()));
}

#[test]
fn random_bytes_are_invalid_hl7_not_a_crash() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in [1usize, 7, 64, 4096] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let r = inspect(&bytes);
        assert_eq!(codes(&r), [("invalid_hl7".to_owned(), None)], "len {len}");
    }
    // A break followed by text stays in the field; one followed by something
    // shaped like a segment with a bad ID is an error, never glued on.
    let r = inspect(b"MSH|^~\\&|A|B\rpid|1\r");
    assert_eq!(codes(&r)[0].0, "invalid_hl7");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("segment 2")
    );
}

#[test]
fn a_one_megabyte_message_maps_completely() {
    let mut big = WORKED.to_owned();
    let mut n = 0;
    while big.len() < 1 << 20 {
        n += 1;
        big.push_str(&format!(
            "NTE|{n}||Note {n}: patient tolerated exercise \\T\\ stretching well\r"
        ));
    }
    let r = inspect(big.as_bytes());
    assert_eq!(r["fields"], inspect(WORKED.as_bytes())["fields"]);
    assert_eq!(r["errors"], Json::Array(vec![]));
}

#[test]
fn siu_without_any_therapist_names_the_supervising_one() {
    let input = WORKED
        .replace("778899^Nguyen^Minh~1234567893^Nguyen^Minh^^^^^^^^^^NPI", "")
        .replace("445566^Okafor^Chidi", "");
    assert_eq!(
        missing(&inspect(input.as_bytes())),
        ["supervising_therapist_id"]
    );
}

#[test]
fn adt_rules_and_other_types() {
    let a40 = "MSH|^~\\&|EMR|ACME01|||20261120||ADT^A40|M1|P|2.5.1\rPID|1||P9^^^^MR||Doe^Jo\r";
    assert_eq!(missing(&inspect(a40.as_bytes())), ["prior_patient_id"]);
    let with_mrg = format!("{a40}MRG|P1\r");
    let r = inspect(with_mrg.as_bytes());
    assert_eq!(r["errors"], Json::Array(vec![]));
    assert_eq!(r["fields"]["prior_patient_id"], "P1");

    let a08 = "MSH|^~\\&|EMR|ACME01|||20261120||ADT^A08|M2|P|2.5.1\rPID|1||P9||^Jo\r";
    assert_eq!(missing(&inspect(a08.as_bytes())), ["patient_family_name"]);

    let oru = "MSH|^~\\&|EMR|ACME01|||20261120||ORU^R01|M3|P|2.5.1\rOBX|1\r";
    assert_eq!(
        codes(&inspect(oru.as_bytes())),
        [(
            "unsupported_message_type".to_owned(),
            Some("message_type".to_owned())
        )]
    );
}

#[test]
fn account_mismatch_with_org() {
    let r = inspect_with(WORKED.as_bytes(), &["--org", "OTHER9"]);
    assert_eq!(
        codes(&r),
        [("account_mismatch".to_owned(), Some("account_id".to_owned()))]
    );
    assert_eq!(r["fields"]["account_id"], "OTHER9");
    assert_eq!(
        codes(&inspect_with(WORKED.as_bytes(), &["--org", "ACME01"])),
        []
    );
}

#[test]
fn invalid_values_are_reported_without_echoing_them() {
    let input = WORKED.replace("|19850312|F|", "|19851345|Q|");
    let r = inspect(input.as_bytes());
    assert_eq!(missing(&r), ["patient_birth_date", "patient_gender"]);
    let text = r["errors"].to_string();
    assert!(text.contains("PID-7") && text.contains("invalid"));
    assert!(
        !text.contains("19851345"),
        "error messages must not carry patient data"
    );
}

#[test]
fn human_output_is_a_table_and_bad_arguments_fail_cleanly() {
    let out = tendon(&["hl7", "inspect", "-"], WORKED.as_bytes());
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("patient_id") && text.contains("P555") && text.contains("no errors"));

    let out = tendon(&["hl7", "inspect", "/nonexistent/file.hl7", "--json"], b"");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
