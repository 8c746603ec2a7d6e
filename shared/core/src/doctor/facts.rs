//! What ingest keeps of a message for the doctor: taken from the mapped
//! fields, with the Initial Evaluation practitioner chosen by the same rule
//! the patient step uses.
use crate::FieldName;
use crate::mapping::MappedMessage;
use crate::model::{MessageFacts, PractitionerFacts};
use crate::rules::ie_practitioner;

impl MessageFacts {
    pub fn of(m: &MappedMessage) -> MessageFacts {
        let practitioner = ie_practitioner(m).map(|(id, field)| {
            let named = if field == FieldName::TreatingTherapistId {
                &m.treating_therapist
            } else {
                &m.supervising_therapist
            };
            PractitionerFacts {
                id: id.to_owned(),
                family_name: named.family_name.clone(),
                given_name: named.given_name.clone(),
                npi: named.npi.clone(),
            }
        });
        MessageFacts {
            sent_at: m.message_time,
            clinic_id: m.clinic_id.clone(),
            clinic_name: m.clinic_name.clone(),
            appointment_type: m.appointment_type.clone(),
            case_id: m.case_id.clone(),
            practitioner,
        }
    }
}
