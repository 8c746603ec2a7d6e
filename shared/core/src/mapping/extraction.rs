//! Extraction: reading a parsed message's §3 fields through an org's map
//! ([`MapContext`]), normalising each, and recording the values that do not
//! normalise.
use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use tendon_hl7::{FieldPath, Message, Timestamp, Value};

use super::field_map::{
    CLINIC_NAME, FieldMap, InvalidValue, MSH_7, MSH_9_1, MSH_9_2, MSH_10, MappedMessage, Therapist,
};
use crate::normalize;
use crate::{FieldName, MessageType};

/// The org time zone when none is configured (docs/interface.md §1).
pub const DEFAULT_TIME_ZONE: &str = "America/New_York";

/// What extraction needs to know about the org the message belongs to.
#[derive(Clone, Debug)]
pub struct MapContext {
    pub field_map: FieldMap,
    /// The org of the ingest key; `None` when inspecting a file on its own.
    pub account_id: Option<String>,
    pub time_zone: TimeZone,
    /// Locations (Clinic IDs) with their own time zone.
    pub location_time_zones: BTreeMap<String, TimeZone>,
}

impl Default for MapContext {
    fn default() -> Self {
        MapContext {
            field_map: FieldMap::default(),
            account_id: None,
            time_zone: TimeZone::get(DEFAULT_TIME_ZONE).unwrap_or(TimeZone::UTC),
            location_time_zones: BTreeMap::new(),
        }
    }
}

impl MapContext {
    /// The zone appointment times without an offset are read in.
    pub fn zone_for(&self, clinic_id: Option<&str>) -> &TimeZone {
        clinic_id
            .and_then(|c| self.location_time_zones.get(c))
            .unwrap_or(&self.time_zone)
    }
}

/// The text of the first primitive at a value, trimmed; `None` if blank or null.
fn text(v: Value<'_>) -> Option<String> {
    v.primitive().trimmed()
}

fn has_line_break(v: Value<'_>) -> bool {
    v.primitive()
        .text()
        .is_some_and(|t| t.trim().contains(['\r', '\n']))
}

struct Reader<'m, 'a> {
    msg: &'m Message<'a>,
    map: &'m FieldMap,
    invalid: Vec<InvalidValue>,
}

impl Reader<'_, '_> {
    fn first_of(&self, paths: &[FieldPath]) -> Option<(String, FieldPath)> {
        paths
            .iter()
            .find_map(|p| text(p.locate(self.msg)).map(|t| (t, p.clone())))
    }

    /// A field read through its org override, or the default chain.
    fn read(&self, name: FieldName) -> Option<(String, FieldPath)> {
        self.first_of(self.map.paths(name))
    }

    /// A field whose default needs a rule beyond "first non-empty".
    fn read_with(
        &self,
        name: FieldName,
        rule: impl FnOnce() -> Option<(String, FieldPath)>,
    ) -> Option<(String, FieldPath)> {
        match self.map.overridden(name) {
            Some(paths) => self.first_of(paths),
            None => rule(),
        }
    }

    fn string(&self, name: FieldName) -> Option<String> {
        self.read(name).map(|(t, _)| t)
    }

    /// Normalises a read value; a value that does not normalise is recorded as invalid.
    fn parsed<T>(
        &mut self,
        name: FieldName,
        found: Option<(String, FieldPath)>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (raw, path) = found?;
        match parse(&raw) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.invalid.push(InvalidValue {
                    field: name,
                    path,
                    reason,
                });
                None
            }
        }
    }

    fn segment_values(&self, seg: &str, field: usize) -> impl Iterator<Item = Value<'_>> {
        self.msg
            .segment(seg)
            .into_iter()
            .flat_map(move |s| s.field(field).repetitions())
    }

    fn patient_id(&self) -> Option<(String, FieldPath)> {
        let mut reps = self
            .msg
            .segment("PID")
            .map(|s| s.field(3))
            .into_iter()
            .flat_map(|f| f.repetitions().enumerate());
        let mr = reps.find(|(_, r)| {
            text(r.component(5)).is_some_and(|t| t.eq_ignore_ascii_case("MR"))
                && text(r.component(1)).is_some()
        });
        let (i, rep) = mr.or_else(|| {
            self.msg
                .segment("PID")
                .map(|s| (0, s.field(3).repetition(1)))
        })?;
        text(rep.component(1)).map(|t| {
            (
                t,
                FieldPath::new("PID", 3)
                    .repetition(i as u16 + 1)
                    .component(1),
            )
        })
    }

    fn email(&self) -> Option<(String, FieldPath)> {
        let is_net = |r: &Value<'_>| {
            let eq =
                |v: Value<'_>, want: &str| text(v).is_some_and(|t| t.eq_ignore_ascii_case(want));
            eq(r.component(2), "NET") || eq(r.component(3), "Internet")
        };
        let net = self
            .segment_values("PID", 13)
            .enumerate()
            .find(|(_, r)| is_net(r) && text(r.component(4)).is_some());
        if let Some((i, r)) = net {
            let found = text(r.component(4)).filter(|t| t.contains('@'));
            if let Some(t) = found {
                return Some((
                    t,
                    FieldPath::new("PID", 13)
                        .repetition(i as u16 + 1)
                        .component(4),
                ));
            }
        }
        for field in [13u16, 14] {
            for (i, rep) in self.segment_values("PID", usize::from(field)).enumerate() {
                let Some(raw) = rep.raw() else { continue };
                let count = raw.split(|b| *b == self.msg.delimiters().component).count();
                for c in 1..=count {
                    if let Some(t) = text(rep.component(c)).filter(|t| t.contains('@')) {
                        return Some((
                            t,
                            FieldPath::new("PID", field)
                                .repetition(i as u16 + 1)
                                .component(c as u16),
                        ));
                    }
                }
            }
        }
        None
    }

    /// The CP repetition, else the first repetition without a type (PID-13.3):
    /// a number typed as a landline, fax, pager or address is never texted.
    fn mobile(&self) -> Option<String> {
        let reps: Vec<Value<'_>> = self.segment_values("PID", 13).collect();
        let cp = reps
            .iter()
            .find(|r| text(r.component(3)).is_some_and(|t| t.eq_ignore_ascii_case("CP")));
        let untyped = reps.iter().find(|r| text(r.component(3)).is_none());
        let part = |r: &Value<'_>, c| text(r.component(c)).unwrap_or_default();
        cp.and_then(|r| normalize::phone_parts(&part(r, 5), &part(r, 6), &part(r, 7)))
            .or_else(|| cp.and_then(|r| normalize::phone(&part(r, 1))))
            .or_else(|| untyped.and_then(|r| normalize::phone(&part(r, 1))))
    }

    /// An XCN field: ID, family and given name, and the NPI from the repetition
    /// labelled NPI by its identifier type (XCN-13) or by its assigning
    /// authority (XCN-9, by name or by the NPI's OID).
    fn therapist(&self, seg: &str, field: u16, names: [FieldName; 4]) -> Therapist {
        let [id, family, given, npi] = names;
        let is_npi =
            |v: Value<'_>| text(v).is_some_and(|t| t.eq_ignore_ascii_case("NPI") || t == NPI_OID);
        let npi = self.read_with(npi, || {
            self.segment_values(seg, usize::from(field))
                .enumerate()
                .find(|(_, r)| {
                    let authority = r.component(9);
                    is_npi(r.component(13))
                        || is_npi(authority.subcomponent(1))
                        || is_npi(authority.subcomponent(2))
                })
                .and_then(|(i, r)| text(r.component(1)).map(|t| (t, i)))
                .map(|(t, i)| {
                    (
                        t,
                        FieldPath::new(seg, field)
                            .repetition(i as u16 + 1)
                            .component(1),
                    )
                })
        });
        Therapist {
            id: self.string(id),
            family_name: self.string(family),
            given_name: self.string(given),
            npi: npi.map(|(t, _)| t),
        }
    }
}

/// The OID of the US National Provider Identifier, as an assigning authority.
const NPI_OID: &str = "2.16.840.1.113883.4.6";

/// Maps a parsed message to the contract's fields. Never fails: absent values are
/// `None`, and values that are present but unreadable are listed in `invalid`.
pub fn extract(msg: &Message<'_>, ctx: &MapContext) -> MappedMessage {
    use FieldName as F;
    let mut r = Reader {
        msg,
        map: &ctx.field_map,
        invalid: Vec::new(),
    };
    let message_type = text(MSH_9_1.locate(msg)).map(|code| MessageType {
        code: code.to_ascii_uppercase(),
        trigger: text(MSH_9_2.locate(msg))
            .unwrap_or_default()
            .to_ascii_uppercase(),
    });
    let sending_facility = r.string(F::AccountId);
    let clinic_id = r.string(F::ClinicId);

    let found = r.read(F::PatientBirthDate);
    let patient_birth_date = r.parsed(F::PatientBirthDate, found, |raw| {
        let ts = Timestamp::parse(raw).map_err(|e| format!("not an HL7 date: {e}"))?;
        if ts.has_day() {
            Ok(ts.date())
        } else {
            Err("the date needs year, month and day".into())
        }
    });
    let found = r.read(F::PatientGender);
    let patient_gender = r.parsed(F::PatientGender, found, |raw| {
        normalize::gender(raw)
            .ok_or_else(|| "not an administrative sex code (M, F, O, A, N, U)".into())
    });
    let found = r.read_with(F::PatientEmail, || r.email());
    let patient_email = r.parsed(F::PatientEmail, found, |raw| {
        normalize::email(raw).ok_or_else(|| "not an e-mail address".into())
    });
    let patient_mobile = match ctx.field_map.overridden(F::PatientMobile) {
        Some(paths) => r.first_of(paths).and_then(|(t, _)| normalize::phone(&t)),
        None => r.mobile(),
    };

    let zone = ctx.zone_for(clinic_id.as_deref());
    let found = r.read(F::AppointmentStart);
    let appointment_start = r.parsed(F::AppointmentStart, found, |raw| {
        // TS carries its precision as a second component; in a TQ it is a subcomponent.
        let ts = Timestamp::parse(raw).map_err(|e| format!("not an HL7 timestamp: {e}"))?;
        ts.to_zoned(zone)
            .map_err(|e| format!("not a valid instant: {e}"))
    });

    let is_siu = message_type.as_ref().is_some_and(MessageType::is_siu);
    let by_trigger = message_type
        .as_ref()
        .filter(|_| is_siu)
        .and_then(|t| normalize::status_from_trigger(&t.trigger));
    let sch_25 = if is_siu {
        r.read(F::AppointmentStatus)
    } else {
        None
    };
    // Whatever the trigger: cancelling or deleting a blocked slot is no visit either.
    let blocked_slot = sch_25
        .as_ref()
        .is_some_and(|(raw, _)| normalize::is_blocked_slot(raw));
    let appointment_status = match by_trigger {
        Some(status) => Some(status),
        None if blocked_slot => None,
        None if is_siu => {
            let found = sch_25;
            r.parsed(F::AppointmentStatus, found, |raw| {
                normalize::appointment_status(raw)
                    .ok_or_else(|| "not a known appointment status (HL7 table 0278)".into())
            })
        }
        None => None,
    };
    // Without a PV1 there is no case to have a status.
    let case_status =
        if msg.segment("PV1").is_none() && ctx.field_map.overridden(F::CaseStatus).is_none() {
            None
        } else {
            normalize::case_status(r.string(F::CaseStatus).as_deref())
        };

    let mapped = MappedMessage {
        account_id: ctx.account_id.clone().or_else(|| sending_facility.clone()),
        sending_facility,
        control_id: text(MSH_10[0].locate(msg)),
        message_type,
        message_time: MSH_7
            .locate(msg)
            .primitive()
            .trimmed()
            .and_then(|t| Timestamp::parse(&t).ok())
            .and_then(|t| t.to_zoned(zone).ok())
            .map(|z| z.timestamp()),
        patient_id: r.read_with(F::PatientId, || r.patient_id()).map(|(t, _)| t),
        patient_family_name: r.string(F::PatientFamilyName),
        patient_given_name: r.string(F::PatientGivenName),
        patient_birth_date,
        patient_gender,
        patient_email,
        patient_mobile,
        appointment_id: r.string(F::AppointmentId),
        clinic_id,
        appointment_category: r.string(F::AppointmentCategory),
        appointment_type: r.string(F::AppointmentType),
        appointment_start,
        appointment_status,
        case_id: r.string(F::CaseId),
        case_description: r.string(F::CaseDescription),
        case_status,
        treating_therapist: r.therapist(
            "AIP",
            3,
            [
                F::TreatingTherapistId,
                F::TreatingTherapistFamilyName,
                F::TreatingTherapistGivenName,
                F::TreatingTherapistNpi,
            ],
        ),
        supervising_therapist: r.therapist(
            "PV1",
            7,
            [
                F::SupervisingTherapistId,
                F::SupervisingTherapistFamilyName,
                F::SupervisingTherapistGivenName,
                F::SupervisingTherapistNpi,
            ],
        ),
        prior_patient_id: r.string(F::PriorPatientId),
        clinic_name: CLINIC_NAME.iter().find_map(|path| text(path.locate(msg))),
        invalid: Vec::new(),
        blocked_slot,
        line_breaks: Vec::new(),
    };
    MappedMessage {
        line_breaks: fields_with_line_breaks(&r),
        invalid: r.invalid,
        ..mapped
    }
}

/// The fields whose value, where the map found it, holds a line break. Only
/// messages with a break inside a segment (the parser says which) pay for
/// the look.
fn fields_with_line_breaks(r: &Reader<'_, '_>) -> Vec<FieldName> {
    if !r.msg.has_line_breaks_in_text() {
        return Vec::new();
    }
    FieldName::ALL
        .iter()
        .copied()
        .filter(|&name| {
            r.map.paths(name).iter().any(|p| {
                let v = p.locate(r.msg);
                text(v).is_some() && has_line_break(v)
            })
        })
        .collect()
}
