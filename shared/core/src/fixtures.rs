//! Test fixtures the core's unit tests share: the worked example
//! (docs/interface.md §8) and its org's configuration.
use crate::org::{Location, Org, OrgConfig, Practitioner};

pub(crate) const WORKED: &str = include_str!("../../../examples/worked-example.hl7");

/// Org ACME01 (America/Los_Angeles, IE type `Initial Eval`) with location 12
/// and practitioners 445566 and 990011.
pub(crate) fn config() -> OrgConfig {
    OrgConfig {
        org: Org {
            id: "ACME01".into(),
            name: "Acme PT".into(),
            timezone: "America/Los_Angeles".into(),
            ie_types: vec!["Initial Eval".into()],
            field_map: Default::default(),
        },
        locations: vec![Location {
            id: "12".into(),
            name: "Salem".into(),
            timezone: None,
        }],
        practitioners: ["445566", "990011"]
            .map(|id| Practitioner {
                id: id.into(),
                first_name: "T".into(),
                last_name: "P".into(),
                npi: None,
                email: None,
            })
            .to_vec(),
        workflows: Vec::new(),
    }
}
