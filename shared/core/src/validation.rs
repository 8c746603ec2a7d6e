//! The required-data checks (Clinicient's *Near Real-Time Integration Required Data* chart) (docs/interface.md §2),
//! reported with the §7 codes.
use crate::mapping::{FieldMap, MappedMessage};
use crate::{ErrorCode, FieldName, Issue};

/// Fields every supported SIU message must carry.
pub const SIU_REQUIRED: &[FieldName] = &[
    FieldName::PatientId,
    FieldName::PatientFamilyName,
    FieldName::PatientGivenName,
    FieldName::PatientBirthDate,
    FieldName::PatientGender,
    FieldName::PatientEmail,
    FieldName::AppointmentId,
    FieldName::ClinicId,
    FieldName::AppointmentType,
    FieldName::AppointmentStart,
    FieldName::AppointmentStatus,
    FieldName::CaseId,
    FieldName::CaseDescription,
];

/// Fields every supported ADT message must carry; A40 also needs MRG-1.
pub const ADT_REQUIRED: &[FieldName] = &[
    FieldName::PatientId,
    FieldName::PatientFamilyName,
    FieldName::PatientGivenName,
];

/// Checks a mapped message. `account_id` is the org of the ingest key, when known.
/// An unsupported type yields only `unsupported_message_type`: it is stored and ignored.
pub fn validate(m: &MappedMessage, map: &FieldMap, account_id: Option<&str>) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let (Some(org), Some(sent)) = (account_id, m.sending_facility.as_deref())
        && org != sent
    {
        issues.push(
            Issue::new(
                ErrorCode::AccountMismatch,
                Some(FieldName::AccountId),
                format!("MSH-4.1 (sending facility) {sent:?} does not match the account {org:?} of the ingest key"),
            )
            .at(map.paths(FieldName::AccountId).first().cloned()),
        );
    }
    let Some(kind) = m.message_type.as_ref() else {
        issues.push(missing(m, map, FieldName::MessageType));
        return issues;
    };
    if !kind.is_supported() {
        issues.push(Issue::new(
            ErrorCode::UnsupportedMessageType,
            Some(FieldName::MessageType),
            format!("{kind} is not a supported message type; it is stored and ignored"),
        ));
        return issues;
    }
    if m.blocked_slot {
        issues.push(
            Issue::new(
                ErrorCode::BlockedSlot,
                Some(FieldName::AppointmentStatus),
                "SCH-25 is Blocked: a blocked slot, not a visit; it is stored and ignored",
            )
            .at(map.paths(FieldName::AppointmentStatus).first().cloned()),
        );
        return issues;
    }
    if m.control_id.is_none() {
        issues.push(missing(m, map, FieldName::ControlId));
    }
    let required: &[FieldName] = if kind.is_siu() {
        SIU_REQUIRED
    } else {
        ADT_REQUIRED
    };
    for &field in required {
        if m.get(field).is_none() {
            issues.push(missing(m, map, field));
        }
    }
    if kind.is_siu() && m.treating_therapist.id.is_none() && m.supervising_therapist.id.is_none() {
        let mut issue = missing(m, map, FieldName::SupervisingTherapistId);
        issue.message = format!(
            "a treating therapist ({}) or a supervising therapist ({}) is required",
            map.describe(FieldName::TreatingTherapistId),
            map.describe(FieldName::SupervisingTherapistId)
        );
        issues.push(issue);
    }
    if kind.is("ADT", "A40") && m.prior_patient_id.is_none() {
        issues.push(missing(m, map, FieldName::PriorPatientId));
    }
    let warnings = invalid_value_warnings(m, &issues);
    issues.extend(warnings);
    issues
}

/// `invalid_value` warnings for the unreadable values `reported` does not
/// already name. A value that is sent but unreadable is left out either way
/// (ADT or SIU alike); where the type does not require it, the rest of the
/// message still applies, and the warning says what was left out.
pub fn invalid_value_warnings(m: &MappedMessage, reported: &[Issue]) -> Vec<Issue> {
    m.invalid
        .iter()
        .filter(|bad| !reported.iter().any(|i| i.field == Some(bad.field)))
        .map(|bad| {
            Issue::new(
                ErrorCode::InvalidValue,
                Some(bad.field),
                format!(
                    "{} in {} is present but invalid and was left out: {}",
                    bad.field, bad.path, bad.reason
                ),
            )
            .at(Some(bad.path.clone()))
        })
        .collect()
}

fn missing(m: &MappedMessage, map: &FieldMap, field: FieldName) -> Issue {
    let (message, location) = match m.invalid(field) {
        Some(bad) => (
            format!(
                "{field} in {} is present but invalid: {}",
                bad.path, bad.reason
            ),
            Some(bad.path.clone()),
        ),
        None => (
            format!("{field} is required: {} is empty", map.describe(field)),
            map.paths(field).first().cloned(),
        ),
    };
    Issue::new(ErrorCode::MissingField, Some(field), message).at(location)
}
