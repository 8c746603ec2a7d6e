//! Email feedback: SES reports bounces and complaints for the configuration
//! set's mail (through SNS to a queue). A permanent bounce or a complaint
//! suppresses the address for the org (no workflow email goes to it again,
//! whichever patient has it) and unsubscribes the patient the mail was for.
//! A transient bounce (a full mailbox) changes nothing: SES retried already.
//!
//! Each email carries SES message tags naming its org and patient
//! ([`ORG_TAG`], [`PATIENT_TAG`], values encoded by [`tag_value`]), so the
//! event names them without a lookup.
use serde_json::Value;

use super::opt_out::set_opt_out;
use super::steps::Channel;
use crate::ports::{PatientStore, StoreResult, Suppressions};

pub const ORG_TAG: &str = "tendon_org";
pub const PATIENT_TAG: &str = "tendon_patient";

/// An ID as an SES tag value, whose characters are limited to ASCII letters,
/// digits, `_`, `-`, `.` and `@`: any other byte, and `_` itself, becomes
/// `_XX` (hex).
pub fn tag_value(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-.@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// The ID a [`tag_value`] stands for.
pub fn from_tag_value(value: &str) -> Option<String> {
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'_' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackKind {
    /// A permanent bounce: the address does not take mail.
    Bounce,
    /// The recipient marked the mail as spam.
    Complaint,
}

impl FeedbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Bounce => "bounce",
            FeedbackKind::Complaint => "complaint",
        }
    }
}

/// What one SES notification asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feedback {
    pub kind: FeedbackKind,
    pub org: String,
    pub patient_id: Option<String>,
    /// The addresses that bounced or complained.
    pub addresses: Vec<String>,
}

/// Why a notification is not acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Not JSON, or not an SES bounce or complaint notification.
    NotFeedback,
    /// A transient or undetermined bounce: nothing to suppress.
    Transient,
    /// Mail Tendon did not tag (another sender on the configuration set).
    Untagged,
}

fn tag(mail: &Value, name: &str) -> Option<String> {
    let v = mail.get("tags")?.get(name)?;
    let first = v.as_array().and_then(|a| a.first()).unwrap_or(v);
    from_tag_value(first.as_str()?)
}

fn addresses(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("emailAddress").and_then(Value::as_str))
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Reads an SES notification: the event-publishing form (`eventType`) or
/// the identity-notification form (`notificationType`), the SNS envelope
/// (`Message`) unwrapped if present.
pub fn parse(text: &str) -> Result<Feedback, Ignored> {
    let mut v: Value = serde_json::from_str(text).map_err(|_| Ignored::NotFeedback)?;
    if let Some(inner) = v.get("Message").and_then(Value::as_str) {
        v = serde_json::from_str(inner).map_err(|_| Ignored::NotFeedback)?;
    }
    let kind = v
        .get("eventType")
        .or_else(|| v.get("notificationType"))
        .and_then(Value::as_str)
        .ok_or(Ignored::NotFeedback)?;
    let (kind, recipients) = match kind {
        "Bounce" => {
            let bounce = v.get("bounce").ok_or(Ignored::NotFeedback)?;
            if bounce.get("bounceType").and_then(Value::as_str) != Some("Permanent") {
                return Err(Ignored::Transient);
            }
            (
                FeedbackKind::Bounce,
                addresses(bounce.get("bouncedRecipients")),
            )
        }
        "Complaint" => {
            let complaint = v.get("complaint").ok_or(Ignored::NotFeedback)?;
            (
                FeedbackKind::Complaint,
                addresses(complaint.get("complainedRecipients")),
            )
        }
        _ => return Err(Ignored::NotFeedback),
    };
    let mail = v.get("mail").ok_or(Ignored::NotFeedback)?;
    let org = tag(mail, ORG_TAG).ok_or(Ignored::Untagged)?;
    Ok(Feedback {
        kind,
        org,
        patient_id: tag(mail, PATIENT_TAG),
        addresses: recipients,
    })
}

/// Acts on a notification: each address suppressed for the org, the patient
/// unsubscribed. Idempotent (SNS and SQS deliver at least once).
pub async fn apply<S: Suppressions + PatientStore>(
    store: &S,
    feedback: &Feedback,
) -> StoreResult<()> {
    for address in &feedback.addresses {
        store
            .suppress_address(&feedback.org, address, feedback.kind.as_str())
            .await?;
    }
    if let Some(patient) = &feedback.patient_id {
        set_opt_out(store, &feedback.org, patient, Channel::Email, true).await?;
    }
    tracing::info!(org = %feedback.org, patient_id = ?feedback.patient_id, kind = feedback.kind.as_str(), addresses = feedback.addresses.len(), "email feedback applied");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, body: &str, tags: &str) -> String {
        format!(
            r#"{{"eventType":"{kind}",{body},"mail":{{"messageId":"m-1","destination":["ana@example.com"],"tags":{tags}}}}}"#
        )
    }

    #[test]
    fn tag_values_round_trip_any_id() {
        for id in ["ACME01", "P-555", "a_b", "Salem Clinic/3", "née"] {
            let v = tag_value(id);
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b)),
                "{v}"
            );
            assert_eq!(from_tag_value(&v).as_deref(), Some(id));
        }
    }

    #[test]
    fn a_permanent_bounce_names_the_org_patient_and_address() {
        let text = event(
            "Bounce",
            r#""bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"Ana@Example.com"}]}"#,
            r#"{"tendon_org":["ACME01"],"tendon_patient":["P_2D555"]}"#,
        );
        let envelope = serde_json::json!({"Type": "Notification", "Message": text}).to_string();
        let want = Feedback {
            kind: FeedbackKind::Bounce,
            org: "ACME01".into(),
            patient_id: Some("P-555".into()),
            addresses: vec!["ana@example.com".into()],
        };
        assert_eq!(parse(&text), Ok(want.clone()));
        assert_eq!(parse(&envelope), Ok(want), "the SNS envelope is unwrapped");
    }

    #[test]
    fn complaints_count_and_transient_or_foreign_mail_does_not() {
        let complaint = event(
            "Complaint",
            r#""complaint":{"complainedRecipients":[{"emailAddress":"ana@example.com"}]}"#,
            r#"{"tendon_org":["ACME01"]}"#,
        );
        assert_eq!(parse(&complaint).unwrap().kind, FeedbackKind::Complaint);
        let transient = event(
            "Bounce",
            r#""bounce":{"bounceType":"Transient","bouncedRecipients":[{"emailAddress":"ana@example.com"}]}"#,
            r#"{"tendon_org":["ACME01"]}"#,
        );
        assert_eq!(parse(&transient), Err(Ignored::Transient));
        let foreign = event(
            "Complaint",
            r#""complaint":{"complainedRecipients":[]}"#,
            r#"{}"#,
        );
        assert_eq!(parse(&foreign), Err(Ignored::Untagged));
        assert_eq!(parse("not json"), Err(Ignored::NotFeedback));
        assert_eq!(
            parse(r#"{"eventType":"Delivery","mail":{}}"#),
            Err(Ignored::NotFeedback)
        );
    }
}
