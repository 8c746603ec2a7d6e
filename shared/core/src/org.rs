//! An org (a clinic business) and its configuration: its locations,
//! practitioners and workflows ([`OrgConfig`], what processing loads in one
//! read), and the extraction context they give the field map.
use serde::{Deserialize, Serialize};

use crate::mapping::{FieldMap, MapContext};
use crate::workflow::Workflow;

/// A clinic business, identified by its EMR Account ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    pub id: String,
    pub name: String,
    /// IANA time zone.
    pub timezone: String,
    /// Initial Evaluation appointment types, compared case-insensitively.
    pub ie_types: Vec<String>,
    #[serde(default)]
    pub field_map: FieldMap,
}

impl Org {
    /// The EMR Account ID (MSH-4): the org's ID, also when this is the
    /// configuration as its test partition reads it (see [`crate::mode`]).
    pub fn account_id(&self) -> &str {
        crate::mode::org_of(&self.id)
    }

    pub fn is_ie_type(&self, appointment_type: &str) -> bool {
        let t = appointment_type.trim();
        self.ie_types
            .iter()
            .any(|ie| ie.trim().eq_ignore_ascii_case(t))
    }

    /// Adds an IE type unless it is there already (in any case).
    pub fn add_ie_type(&mut self, ie_type: &str) {
        if !self.is_ie_type(ie_type) {
            self.ie_types.push(ie_type.trim().to_owned());
        }
    }
}

/// A clinic site; `id` is the EMR's Clinic ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub id: String,
    pub name: String,
    /// Overrides the org's zone when set.
    pub timezone: Option<String>,
}

/// A therapist; `id` is the EMR staff ID. Never created from a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Practitioner {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub npi: Option<String>,
    pub email: Option<String>,
}

/// Everything processing needs to know about an org, loaded in one read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgConfig {
    pub org: Org,
    pub locations: Vec<Location>,
    pub practitioners: Vec<Practitioner>,
    /// The org's workflows (active and inactive), sorted by ID.
    #[serde(default)]
    pub workflows: Vec<Workflow>,
}

impl OrgConfig {
    /// This (live) configuration as `partition` reads it: the same
    /// locations, practitioners, IE types, field map and workflows, under the
    /// partition's ID, so what processing writes stays in the partition.
    pub fn for_partition(mut self, partition: &str) -> OrgConfig {
        partition.clone_into(&mut self.org.id);
        self
    }

    pub fn location(&self, id: &str) -> Option<&Location> {
        self.locations.iter().find(|l| l.id == id)
    }

    pub fn practitioner(&self, id: &str) -> Option<&Practitioner> {
        self.practitioners.iter().find(|p| p.id == id)
    }

    /// The field map, account and time zones extraction uses for this org.
    pub fn map_context(&self) -> MapContext {
        let zone = |name: &str| jiff::tz::TimeZone::get(name).ok();
        let mut ctx = MapContext {
            field_map: self.org.field_map.clone(),
            account_id: Some(self.org.account_id().to_owned()),
            ..MapContext::default()
        };
        if let Some(z) = zone(&self.org.timezone) {
            ctx.time_zone = z;
        }
        for loc in &self.locations {
            if let Some(z) = loc.timezone.as_deref().and_then(zone) {
                ctx.location_time_zones.insert(loc.id.clone(), z);
            }
        }
        ctx
    }
}
