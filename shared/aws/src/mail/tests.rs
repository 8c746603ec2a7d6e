//! The mailer's pure parts: addresses, headers, MIME, error codes.
use super::*;
use tendon_core::workflow::TaskKind;
use tendon_core::workflow::steps::DeliveryStatus;

fn delivery(subject: &str, body: &str, html: Option<&str>) -> Delivery {
    Delivery {
        id: "0123456789abcdef0123456789abcdef".into(),
        org: "ACME01".into(),
        channel: Channel::Email,
        to: "ana@example.com".into(),
        subject: Some(subject.into()),
        body: body.into(),
        html: html.map(str::to_owned),
        content_id: None,
        kind: TaskKind::Email,
        workflow_id: "welcome".into(),
        step: 0,
        patient_id: "P1".into(),
        step_id: "s1".into(),
        status: DeliveryStatus::Sending,
        provider_id: None,
        created_at: "2026-11-20T17:30:00Z".parse().unwrap(),
        sent_at: None,
    }
}

fn headers(mime: &str) -> Vec<&str> {
    mime.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .split("\r\n")
        .collect()
}

#[test]
fn the_clients_are_built_on_first_use_and_shared_by_clones() {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let mailer = AwsMailer::new(&sdk, "Clinic <clinic@example.com>", None);
    let clone = mailer.clone();
    assert!(!mailer.ses.is_built() && !mailer.sns.is_built());
    let ses = mailer.ses();
    assert!(std::ptr::eq(ses, clone.ses()), "one client for the clones");
    assert!(!clone.sns.is_built(), "SNS waits for a text");
    clone.sns();
    assert!(mailer.sns.is_built());
}

#[test]
fn base64_matches_the_rfc_vectors() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
}

#[test]
fn a_hostile_subject_stays_one_header() {
    let d = delivery("Hi\r\nBcc: evil@example.com", "Hello\n", None);
    let mime = build_mime(
        "Clinic <no-reply@example.com>",
        &d,
        jiff::Timestamp::UNIX_EPOCH,
    );
    let hs = headers(&mime);
    assert!(hs.contains(&"Subject: Hi  Bcc: evil@example.com"), "{hs:?}");
    assert!(!hs.iter().any(|h| h.starts_with("Bcc")), "{hs:?}");
}

#[test]
fn non_ascii_subjects_are_encoded_words_on_one_line() {
    let subject = "Ihre Übungen für diese Woche — bitte öffnen ✅".repeat(20);
    let encoded = encode_subject(&subject);
    assert!(encoded.len() < 990, "{}", encoded.len());
    assert!(!encoded.contains(['\r', '\n']));
    for word in encoded.split(' ') {
        assert!(word.starts_with("=?UTF-8?B?") && word.ends_with("?="));
        assert!(word.len() <= 75, "{word}");
    }
    assert_eq!(encode_subject("Plain ASCII"), "Plain ASCII");
    assert!(encode_subject("=?UTF-8?B?SGk=?=").starts_with("=?UTF-8?B?PT9"));
}

#[test]
fn quoted_printable_escapes_and_wraps() {
    let qp = quoted_printable("a=b café \nline\r\n".repeat(10).as_str());
    assert!(qp.contains("a=3Db caf=C3=A9=20\r\nline\r\n"), "{qp}");
    assert!(qp.split("\r\n").all(|l| l.len() <= 76));
    let long = quoted_printable(&"x".repeat(200));
    assert!(long.split("\r\n").all(|l| l.len() <= 76));
    assert_eq!(long.replace("=\r\n", ""), "x".repeat(200));
    assert!(!qp.contains("=_") && !long.contains("=_"));
}

#[test]
fn a_multipart_email_has_both_parts_and_the_unsubscribe_header() {
    let d = delivery(
        "Welcome",
        "Hi Ana\n\nUnsubscribe: https://t.example/unsubscribe/ACME01/P1/abc\n",
        Some("<p>Hi Ana</p>"),
    );
    let mime = build_mime("no-reply@example.com", &d, jiff::Timestamp::UNIX_EPOCH);
    let hs = headers(&mime);
    assert!(hs.contains(&"List-Unsubscribe: <https://t.example/unsubscribe/ACME01/P1/abc>"));
    assert!(hs.contains(&"List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    assert!(
        hs.contains(&"Date: Thu, 1 Jan 1970 00:00:00 +0000"),
        "{hs:?}"
    );
    assert!(mime.contains("Content-Type: text/plain; charset=UTF-8"));
    assert!(mime.contains("Content-Type: text/html; charset=UTF-8"));
    assert!(mime.ends_with("--=_tendon_0123456789abcdef01234567--\r\n"));
    assert!(mime.contains("<p>Hi Ana</p>"));
}

#[test]
fn addresses_and_numbers_are_checked() {
    assert!(plain_address("ana.rivera+pt@example.com"));
    for bad in [
        "ana@example.com\r\nBcc: x@y.z",
        "Ana <ana@example.com>",
        "a@b.c, d@e.f",
        "@example.com",
        "no-at-sign",
        "ana@exámple.com",
    ] {
        assert!(!plain_address(bad), "{bad}");
    }
    assert!(e164("+15035550100"));
    for bad in [
        "5035550100",
        "+0123456789",
        "+1 503 555",
        "+1503555010012345",
    ] {
        assert!(!e164(bad), "{bad}");
    }
}

#[test]
fn errors_map_by_code() {
    assert_eq!(classify("Throttling"), SendError::Throttled);
    assert_eq!(classify("MaxSendingRateExceeded"), SendError::Throttled);
    assert_eq!(classify("Throttled"), SendError::Throttled);
    assert_eq!(
        classify("MessageRejected"),
        SendError::Rejected("MessageRejected".into())
    );
    assert_eq!(
        classify("InvalidParameter"),
        SendError::Rejected("InvalidParameter".into())
    );
    assert_eq!(
        classify("InternalFailure"),
        SendError::Unavailable("InternalFailure".into())
    );
}
