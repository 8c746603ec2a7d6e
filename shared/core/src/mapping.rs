//! The docs/interface.md §3 default field map, per-org overrides, and extraction of a
//! parsed message into a typed [`MappedMessage`].
use std::collections::BTreeMap;

use jiff::Zoned;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tendon_hl7::{FieldPath, Message, Timestamp, Value};

use crate::normalize;
use crate::{AppointmentStatus, CaseStatus, FieldName, Gender, MessageType};

/// The org time zone when none is configured (docs/interface.md §1).
pub const DEFAULT_TIME_ZONE: &str = "America/New_York";

const fn p(segment: &[u8; 3], field: u16, component: u16) -> FieldPath {
    FieldPath {
        segment: *segment,
        field,
        repetition: None,
        component: if component == 0 {
            None
        } else {
            Some(component)
        },
        subcomponent: None,
    }
}

const MSH_4: &[FieldPath] = &[p(b"MSH", 4, 1)];
const MSH_7: FieldPath = p(b"MSH", 7, 0);
const MSH_9_1: FieldPath = p(b"MSH", 9, 1);
const MSH_9_2: FieldPath = p(b"MSH", 9, 2);
const MSH_10: &[FieldPath] = &[p(b"MSH", 10, 0)];
const MSH_9: &[FieldPath] = &[p(b"MSH", 9, 0)];
const PID_3: &[FieldPath] = &[p(b"PID", 3, 1)];
const PID_5_1: &[FieldPath] = &[p(b"PID", 5, 1)];
const PID_5_2: &[FieldPath] = &[p(b"PID", 5, 2)];
const PID_7: &[FieldPath] = &[p(b"PID", 7, 0)];
const PID_8: &[FieldPath] = &[p(b"PID", 8, 0)];
const PID_13_4: &[FieldPath] = &[p(b"PID", 13, 4)];
const PID_13: &[FieldPath] = &[p(b"PID", 13, 0)];
const APPOINTMENT_ID: &[FieldPath] = &[p(b"SCH", 2, 1), p(b"SCH", 1, 1)];
const CLINIC_ID: &[FieldPath] = &[p(b"AIL", 3, 1), p(b"PV1", 3, 1)];
const SCH_7_1: &[FieldPath] = &[p(b"SCH", 7, 1)];
const APPOINTMENT_TYPE: &[FieldPath] = &[
    p(b"SCH", 8, 2),
    p(b"SCH", 8, 1),
    p(b"AIS", 3, 2),
    p(b"AIS", 3, 1),
];
const APPOINTMENT_START: &[FieldPath] = &[
    p(b"SCH", 11, 4),
    p(b"AIS", 4, 0),
    p(b"AIL", 6, 0),
    p(b"AIP", 6, 0),
];
const SCH_25_1: &[FieldPath] = &[p(b"SCH", 25, 1)];
const PV1_19_1: &[FieldPath] = &[p(b"PV1", 19, 1)];
const CASE_DESCRIPTION: &[FieldPath] = &[
    p(b"PV2", 3, 2),
    p(b"PV2", 3, 1),
    p(b"DG1", 4, 0),
    p(b"DG1", 3, 2),
];
const PV1_41_1: &[FieldPath] = &[p(b"PV1", 41, 1)];
const AIP_3_1: &[FieldPath] = &[p(b"AIP", 3, 1)];
const AIP_3_2: &[FieldPath] = &[p(b"AIP", 3, 2)];
const AIP_3_3: &[FieldPath] = &[p(b"AIP", 3, 3)];
const AIP_3: &[FieldPath] = &[p(b"AIP", 3, 0)];
const PV1_7_1: &[FieldPath] = &[p(b"PV1", 7, 1)];
const PV1_7_2: &[FieldPath] = &[p(b"PV1", 7, 2)];
const PV1_7_3: &[FieldPath] = &[p(b"PV1", 7, 3)];
const PV1_7: &[FieldPath] = &[p(b"PV1", 7, 0)];
const MRG_1_1: &[FieldPath] = &[p(b"MRG", 1, 1)];

/// Where docs/interface.md §3 looks for a field by default, first match wins. Fields with
/// a rule beyond "first non-empty" (the MR identifier, the NET e-mail, the CP
/// phone, the NPI repetition) list the field their rule reads.
pub fn default_paths(name: FieldName) -> &'static [FieldPath] {
    use FieldName::*;
    match name {
        AccountId => MSH_4,
        ControlId => MSH_10,
        MessageType => MSH_9,
        PatientId => PID_3,
        PatientFamilyName => PID_5_1,
        PatientGivenName => PID_5_2,
        PatientBirthDate => PID_7,
        PatientGender => PID_8,
        PatientEmail => PID_13_4,
        PatientMobile => PID_13,
        AppointmentId => APPOINTMENT_ID,
        ClinicId => CLINIC_ID,
        AppointmentCategory => SCH_7_1,
        AppointmentType => APPOINTMENT_TYPE,
        AppointmentStart => APPOINTMENT_START,
        AppointmentStatus => SCH_25_1,
        CaseId => PV1_19_1,
        CaseDescription => CASE_DESCRIPTION,
        CaseStatus => PV1_41_1,
        TreatingTherapistId => AIP_3_1,
        TreatingTherapistFamilyName => AIP_3_2,
        TreatingTherapistGivenName => AIP_3_3,
        TreatingTherapistNpi => AIP_3,
        SupervisingTherapistId => PV1_7_1,
        SupervisingTherapistFamilyName => PV1_7_2,
        SupervisingTherapistGivenName => PV1_7_3,
        SupervisingTherapistNpi => PV1_7,
        PriorPatientId => MRG_1_1,
    }
}

fn default_rule(name: FieldName) -> Option<&'static str> {
    use FieldName::*;
    Some(match name {
        PatientId => "of the repetition whose PID-3.5 is MR, else of the first",
        PatientEmail => "of the NET/Internet repetition, else any PID-13/PID-14 component with '@'",
        PatientMobile => {
            "CP repetition: PID-13.5-7, else PID-13.1; else PID-13.1 of the first untyped repetition"
        }
        AppointmentStatus => "unless the trigger is S15, S17 or S26",
        TreatingTherapistNpi | SupervisingTherapistNpi => {
            "repetition whose XCN-13 is NPI, or whose XCN-9 is NPI or 2.16.840.1.113883.4.6"
        }
        _ => return None,
    })
}

/// Per-org overrides of the default map: a field read from other paths, first
/// non-empty wins. The normalisation (dates, gender, status) still applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldMap {
    overrides: BTreeMap<FieldName, Vec<FieldPath>>,
}

impl FieldMap {
    /// Fields whose position the protocol fixes: dedupe and the ACK depend on them.
    pub const FIXED: &'static [FieldName] = &[
        FieldName::AccountId,
        FieldName::ControlId,
        FieldName::MessageType,
    ];

    pub fn set(&mut self, name: FieldName, paths: Vec<FieldPath>) -> Result<(), String> {
        if Self::FIXED.contains(&name) {
            return Err(format!(
                "{name} cannot be overridden: its position is fixed by the protocol"
            ));
        }
        if paths.is_empty() {
            self.overrides.remove(&name);
        } else {
            self.overrides.insert(name, paths);
        }
        Ok(())
    }

    /// Parses `name` and a comma-separated path list such as `PID-3(2).1, PID-2.1`.
    pub fn set_str(&mut self, name: &str, paths: &str) -> Result<(), String> {
        let name: FieldName = name.parse()?;
        let paths = paths
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<FieldPath>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        self.set(name, paths)
    }

    pub fn overrides(&self) -> &BTreeMap<FieldName, Vec<FieldPath>> {
        &self.overrides
    }

    fn overridden(&self, name: FieldName) -> Option<&[FieldPath]> {
        self.overrides.get(&name).map(Vec::as_slice)
    }

    /// The paths a field is read from under this map.
    pub fn paths(&self, name: FieldName) -> &[FieldPath] {
        self.overridden(name).unwrap_or_else(|| default_paths(name))
    }

    /// Where a field comes from, for error messages: e.g. `PV2-3.2 or PV2-3.1 ...`.
    pub fn describe(&self, name: FieldName) -> String {
        let joined = self
            .paths(name)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        match (self.overridden(name), default_rule(name)) {
            (Some(_), _) => format!("{joined} (org override)"),
            (None, Some(rule)) => format!("{joined} ({rule})"),
            (None, None) => joined,
        }
    }
}

impl Serialize for FieldMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let plain: BTreeMap<&str, Vec<String>> = self
            .overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(ToString::to_string).collect()))
            .collect();
        plain.serialize(s)
    }
}

impl<'de> Deserialize<'de> for FieldMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let plain = BTreeMap::<String, Vec<String>>::deserialize(d)?;
        let mut map = FieldMap::default();
        for (name, paths) in plain {
            map.set_str(&name, &paths.join(","))
                .map_err(serde::de::Error::custom)?;
        }
        Ok(map)
    }
}

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

/// A practitioner as a message names one (AIP-3 or PV1-7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Therapist {
    pub id: Option<String>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub npi: Option<String>,
}

/// A value that was sent but could not be read (a date that is not a date).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidValue {
    pub field: FieldName,
    pub path: FieldPath,
    /// Why, without the value itself: it may be patient data.
    pub reason: String,
}

/// The docs/interface.md §3 fields of one message, normalised and typed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MappedMessage {
    /// The org of the ingest key, or MSH-4.1 when there is none.
    pub account_id: Option<String>,
    /// MSH-4.1 as sent, checked against the org's account ID.
    pub sending_facility: Option<String>,
    pub control_id: Option<String>,
    pub message_type: Option<MessageType>,
    /// MSH-7 as an instant (without an offset, read in the clinic's zone like
    /// the appointment times), used to keep an older message from
    /// overwriting newer state.
    pub message_time: Option<jiff::Timestamp>,
    pub patient_id: Option<String>,
    pub patient_family_name: Option<String>,
    pub patient_given_name: Option<String>,
    pub patient_birth_date: Option<Date>,
    pub patient_gender: Option<Gender>,
    pub patient_email: Option<String>,
    pub patient_mobile: Option<String>,
    pub appointment_id: Option<String>,
    pub clinic_id: Option<String>,
    pub appointment_category: Option<String>,
    pub appointment_type: Option<String>,
    pub appointment_start: Option<Zoned>,
    pub appointment_status: Option<AppointmentStatus>,
    pub case_id: Option<String>,
    pub case_description: Option<String>,
    pub case_status: Option<CaseStatus>,
    pub treating_therapist: Therapist,
    pub supervising_therapist: Therapist,
    pub prior_patient_id: Option<String>,
    pub invalid: Vec<InvalidValue>,
    /// SCH-25 is `Blocked`: a blocked slot, not a visit (the message is ignored).
    pub blocked_slot: bool,
    /// Fields whose value holds a line break that did not start a segment
    /// (kept as text, and reported by `hl7 inspect`).
    pub line_breaks: Vec<FieldName>,
}

impl MappedMessage {
    /// A field as the contract prints it: ISO dates, RFC 3339 instants, snake-case codes.
    pub fn get(&self, name: FieldName) -> Option<String> {
        use FieldName::*;
        let s = |v: &Option<String>| v.clone();
        match name {
            AccountId => s(&self.account_id),
            ControlId => s(&self.control_id),
            MessageType => self.message_type.as_ref().map(ToString::to_string),
            PatientId => s(&self.patient_id),
            PatientFamilyName => s(&self.patient_family_name),
            PatientGivenName => s(&self.patient_given_name),
            PatientBirthDate => self.patient_birth_date.map(|d| d.to_string()),
            PatientGender => self.patient_gender.map(|g| g.as_str().to_owned()),
            PatientEmail => s(&self.patient_email),
            PatientMobile => s(&self.patient_mobile),
            AppointmentId => s(&self.appointment_id),
            ClinicId => s(&self.clinic_id),
            AppointmentCategory => s(&self.appointment_category),
            AppointmentType => s(&self.appointment_type),
            AppointmentStart => self.appointment_start.as_ref().map(rfc3339),
            AppointmentStatus => self.appointment_status.map(|v| v.as_str().to_owned()),
            CaseId => s(&self.case_id),
            CaseDescription => s(&self.case_description),
            CaseStatus => self.case_status.map(|v| v.as_str().to_owned()),
            TreatingTherapistId => s(&self.treating_therapist.id),
            TreatingTherapistFamilyName => s(&self.treating_therapist.family_name),
            TreatingTherapistGivenName => s(&self.treating_therapist.given_name),
            TreatingTherapistNpi => s(&self.treating_therapist.npi),
            SupervisingTherapistId => s(&self.supervising_therapist.id),
            SupervisingTherapistFamilyName => s(&self.supervising_therapist.family_name),
            SupervisingTherapistGivenName => s(&self.supervising_therapist.given_name),
            SupervisingTherapistNpi => s(&self.supervising_therapist.npi),
            PriorPatientId => s(&self.prior_patient_id),
        }
    }

    /// How many contract fields have a value.
    pub fn count_present(&self) -> usize {
        FieldName::ALL
            .iter()
            .filter(|n| self.get(**n).is_some())
            .count()
    }

    pub fn invalid(&self, name: FieldName) -> Option<&InvalidValue> {
        self.invalid.iter().find(|v| v.field == name)
    }
}

/// Serialises as `{"account_id": .., ...}` in contract order, `null` when absent.
impl Serialize for MappedMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(FieldName::ALL.len()))?;
        for name in FieldName::ALL {
            map.serialize_entry(name.as_str(), &self.get(*name))?;
        }
        map.end()
    }
}

/// RFC 3339 with the offset and whole seconds, e.g. `2026-12-01T10:00:00-08:00`.
pub fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
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
/// messages with a break inside a segment pay for the look.
fn fields_with_line_breaks(r: &Reader<'_, '_>) -> Vec<FieldName> {
    let any = r
        .msg
        .segments()
        .any(|s| memchr::memchr2(b'\r', b'\n', s.raw()).is_some());
    if !any {
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

#[cfg(test)]
mod tests {
    use super::*;

    const WORKED: &str = include_str!("../../../examples/worked-example.hl7");

    fn map_with(input: &str, ctx: &MapContext) -> MappedMessage {
        extract(&Message::parse(input.as_bytes()).unwrap(), ctx)
    }

    fn map(input: &str) -> MappedMessage {
        map_with(input, &MapContext::default())
    }

    #[test]
    fn msh7_without_an_offset_is_read_in_the_clinics_zone() {
        let at = |input: &str, ctx: &MapContext| {
            map_with(input, ctx).message_time.map(|t| t.to_string())
        };
        let mut ctx = MapContext {
            time_zone: TimeZone::get("America/Los_Angeles").unwrap(),
            ..MapContext::default()
        };
        let with_offset = at(WORKED, &ctx);
        assert_eq!(with_offset.as_deref(), Some("2026-11-20T17:30:00Z"));
        let bare = WORKED.replace("20261120093000-0800", "20261120093000");
        assert_eq!(
            at(&bare, &ctx),
            with_offset,
            "the same instant, read in the org's zone"
        );
        // The appointment's location (Clinic ID 12) has a zone of its own.
        ctx.location_time_zones
            .insert("12".into(), TimeZone::get("America/New_York").unwrap());
        assert_eq!(at(&bare, &ctx).as_deref(), Some("2026-11-20T14:30:00Z"));
    }

    #[test]
    fn patient_id_prefers_the_mr_repetition() {
        assert_eq!(map(WORKED).patient_id.as_deref(), Some("P555"));
        let no_mr = WORKED.replace("P555^^^ACME^MR", "P555^^^ACME^PI");
        assert_eq!(map(&no_mr).patient_id.as_deref(), Some("X-991"));
    }

    #[test]
    fn email_falls_back_to_any_component_with_an_at_sign() {
        let input = WORKED.replace(
            "^NET^Internet^ana.rivera@example.com",
            "^PRN^PH^^^^^^^ana@example.org",
        );
        assert_eq!(
            map(&input).patient_email.as_deref(),
            Some("ana@example.org")
        );
        let in_pid14 = WORKED.replace(
            "~^NET^Internet^ana.rivera@example.com\r",
            "|work@example.net\r",
        );
        assert_eq!(
            map(&in_pid14).patient_email.as_deref(),
            Some("work@example.net")
        );
    }

    #[test]
    fn mobile_from_parts_then_from_the_first_untyped_number() {
        let input = WORKED.replace("^PRN^CP^^1^503^5550101", "(971) 555-0199^PRN^CP");
        assert_eq!(map(&input).patient_mobile.as_deref(), Some("+19715550199"));
        // A landline, fax, pager or address is never the mobile...
        for kind in ["PH", "FX", "BP", "MD", "TDD", "TTY", "Internet", "X.400"] {
            let typed = WORKED.replace(
                "^PRN^PH^^1^503^5550100~^PRN^CP^^1^503^5550101~",
                &format!("503.555.0123^PRN^{kind}~"),
            );
            assert_eq!(map(&typed).patient_mobile, None, "{kind}");
        }
        // ...but the first number without a type may be.
        let untyped = WORKED.replace(
            "^PRN^PH^^1^503^5550100~^PRN^CP^^1^503^5550101~",
            "503.555.0100^PRN^PH~503.555.0123~",
        );
        assert_eq!(
            map(&untyped).patient_mobile.as_deref(),
            Some("+15035550123")
        );
    }

    #[test]
    fn fallback_chains() {
        let no_sch2 = WORKED.replace("SCH|PL-77|A9001|", "SCH|PL-77||");
        assert_eq!(map(&no_sch2).appointment_id.as_deref(), Some("PL-77"));
        let no_ail = WORKED.replace("AIL|1||12^^^Salem Clinic", "AIL|1||");
        assert_eq!(map(&no_ail).clinic_id.as_deref(), Some("12"));
        let type_from_ais = WORKED.replace("|IE^Initial Eval|45|", "||45|");
        assert_eq!(
            map(&type_from_ais).appointment_type.as_deref(),
            Some("Initial Eval")
        );
        let start_from_ais = WORKED.replace("^^45^202612011000", "").replace(
            "AIS|1||IE^Initial Eval|202612011000",
            "AIS|1||IE^Initial Eval|202612011030",
        );
        assert_eq!(
            map(&start_from_ais)
                .appointment_start
                .map(|z| z.time().minute()),
            Some(30)
        );
        let desc_from_dg1 = WORKED.replace(
            "PV2|||M75.1^Right Shoulder\r",
            "DG1|1||M75.1^Shoulder pain^I10|Rotator cuff\r",
        );
        assert_eq!(
            map(&desc_from_dg1).case_description.as_deref(),
            Some("Rotator cuff")
        );
    }

    #[test]
    fn trigger_event_wins_over_sch25() {
        for (trigger, want) in [
            ("S15", AppointmentStatus::Canceled),
            ("S17", AppointmentStatus::Deleted),
            ("S26", AppointmentStatus::NoShow),
        ] {
            let input = WORKED.replace("SIU^S12^SIU_S12", &format!("SIU^{trigger}"));
            assert_eq!(map(&input).appointment_status, Some(want));
        }
        let arrived = WORKED.replace("||Booked", "||Arrived");
        assert_eq!(
            map(&arrived).appointment_status,
            Some(AppointmentStatus::Arrived)
        );
    }

    #[test]
    fn appointment_time_uses_the_location_zone_unless_it_has_an_offset() {
        let mut ctx = MapContext::default();
        ctx.location_time_zones
            .insert("12".into(), TimeZone::get("America/Los_Angeles").unwrap());
        assert_eq!(
            map_with(WORKED, &ctx)
                .get(FieldName::AppointmentStart)
                .as_deref(),
            Some("2026-12-01T10:00:00-08:00")
        );
        assert_eq!(
            map(WORKED).get(FieldName::AppointmentStart).as_deref(),
            Some("2026-12-01T10:00:00-05:00")
        );
        let with_offset = WORKED.replace("^^45^202612011000", "^^45^202612011000+0100");
        assert_eq!(
            map_with(&with_offset, &ctx)
                .get(FieldName::AppointmentStart)
                .as_deref(),
            Some("2026-12-01T10:00:00+01:00")
        );
    }

    #[test]
    fn overrides_replace_the_default_path_and_keep_normalisation() {
        let mut ctx = MapContext::default();
        ctx.field_map.set_str("patient_id", "PID-3(1).1").unwrap();
        ctx.field_map
            .set_str("case_id", "PV1-50.1, PV1-19.1")
            .unwrap();
        ctx.field_map
            .set_str("patient_birth_date", "PID-29")
            .unwrap();
        let m = map_with(WORKED, &ctx);
        assert_eq!(m.patient_id.as_deref(), Some("X-991"));
        assert_eq!(
            m.case_id.as_deref(),
            Some("C-42"),
            "falls through to the second path"
        );
        assert_eq!(m.patient_birth_date, None, "PID-29 is empty");
        assert!(
            ctx.field_map
                .describe(FieldName::CaseId)
                .contains("PV1-50.1 or PV1-19.1 (org override)")
        );

        assert!(ctx.field_map.set_str("control_id", "MSH-11").is_err());
        assert!(ctx.field_map.set_str("nope", "PID-3").is_err());
        assert!(ctx.field_map.set_str("patient_id", "PID-3(").is_err());

        let json = serde_json::to_string(&ctx.field_map).unwrap();
        assert_eq!(
            json,
            r#"{"case_id":["PV1-50.1","PV1-19.1"],"patient_birth_date":["PID-29"],"patient_id":["PID-3(1).1"]}"#
        );
        let back: FieldMap = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ctx.field_map);
    }

    #[test]
    fn invalid_values_are_recorded_with_their_path() {
        let input = WORKED
            .replace("|19850312|F|", "|1985|F|")
            .replace("^^45^202612011000", "^^45^tomorrow");
        let m = map(&input);
        assert_eq!(m.patient_birth_date, None);
        let bad = m.invalid(FieldName::PatientBirthDate).unwrap();
        assert_eq!(bad.path.to_string(), "PID-7");
        assert!(m.invalid(FieldName::AppointmentStart).is_some());
        assert_eq!(m.count_present(), map(WORKED).count_present() - 2);
    }

    #[test]
    fn case_status_needs_a_pv1() {
        assert_eq!(map(WORKED).case_status, Some(CaseStatus::Active));
        let adt = "MSH|^~\\&|A|B|||2026||ADT^A08|1|P|2.5\rPID|1||P1||Doe^Jo";
        assert_eq!(map(adt).case_status, None);
    }
}
