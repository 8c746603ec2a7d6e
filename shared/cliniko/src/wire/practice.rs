//! The practice's own records as Cliniko sends them: appointment types,
//! practitioners and businesses (what a booking links to).
use serde::Deserialize;
use tendon_core::cliniko::api::{ClinikoAppointmentType, ClinikoBusiness, ClinikoPractitioner};

use super::Wire;
use super::fields::{Id, RecordLinks, lenient, opt_bool, record_id, text};

#[derive(Debug, Deserialize)]
pub(crate) struct WireAppointmentType {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    archived_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireAppointmentType {
    type Record = ClinikoAppointmentType;

    fn finish(self) -> Result<ClinikoAppointmentType, &'static str> {
        Ok(ClinikoAppointmentType {
            id: record_id(self.id, self.links.as_ref())?,
            name: self.name.unwrap_or_default(),
            archived: self.archived_at.is_some(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WirePractitioner {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    first_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    last_name: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    active: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WirePractitioner {
    type Record = ClinikoPractitioner;

    fn finish(self) -> Result<ClinikoPractitioner, &'static str> {
        Ok(ClinikoPractitioner {
            id: record_id(self.id, self.links.as_ref())?,
            first_name: self.first_name,
            last_name: self.last_name,
            // The list says which: `/practitioners/inactive` sends
            // `active: false`; a missing flag on the current list means active.
            active: self.active.unwrap_or(true),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireBusiness {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    business_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    display_name: Option<String>,
    /// IANA (`Australia/Melbourne`); `time_zone` is a label (`Melbourne`).
    #[serde(default, deserialize_with = "text")]
    time_zone_identifier: Option<String>,
    #[serde(default, deserialize_with = "text")]
    country_code: Option<String>,
    #[serde(default, deserialize_with = "text")]
    country: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireBusiness {
    type Record = ClinikoBusiness;

    fn finish(self) -> Result<ClinikoBusiness, &'static str> {
        Ok(ClinikoBusiness {
            id: record_id(self.id, self.links.as_ref())?,
            name: self.business_name.or(self.display_name),
            time_zone: self.time_zone_identifier,
            country: self.country_code.or(self.country),
        })
    }
}
