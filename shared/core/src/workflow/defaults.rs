//! The default global workflows, for engagement and for outcomes, each in a
//! version for clinics with an EMR integration (IE-scheduled and IE-arrived
//! triggers) and one without (patient-created triggers, Cliniko clinics).
//! They are the JSON files in `shared/core/workflows/`, built in.
use super::model::Workflow;

/// The files, by name.
pub const FILES: &[(&str, &str)] = &[
    (
        "engagement-emr.json",
        include_str!("../../workflows/engagement-emr.json"),
    ),
    (
        "outcomes-emr.json",
        include_str!("../../workflows/outcomes-emr.json"),
    ),
    (
        "engagement-cliniko.json",
        include_str!("../../workflows/engagement-cliniko.json"),
    ),
    (
        "outcomes-cliniko.json",
        include_str!("../../workflows/outcomes-cliniko.json"),
    ),
];

/// Every default workflow, checked.
pub fn all() -> Vec<Workflow> {
    FILES
        .iter()
        .flat_map(|(name, text)| {
            let list: Vec<serde_json::Value> = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("built-in {name} is not a JSON list: {e}"));
            list.into_iter().map(move |v| {
                Workflow::parse(&v.to_string()).unwrap_or_else(|e| panic!("built-in {name}: {e}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventKind;

    #[test]
    fn the_defaults_are_valid_and_cover_every_group() {
        let all = all();
        let ids: std::collections::HashSet<_> = all.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(ids.len(), all.len(), "IDs are unique");
        let emr = |e: EventKind| {
            all.iter()
                .any(|w| w.id.ends_with("-emr") && w.trigger.event == e)
        };
        assert!(
            emr(EventKind::InitialEvaluationScheduled) && emr(EventKind::InitialEvaluationArrived)
        );
        assert!(
            all.iter()
                .filter(|w| w.id.ends_with("-cliniko"))
                .all(|w| w.trigger.event != EventKind::InitialEvaluationScheduled)
        );
        assert!(all.iter().any(|w| w.id.ends_with("-cliniko") && w.trigger.event == EventKind::PatientCreated));
        // NPS at 7 and 28 days after the first IE arrival.
        let nps = all.iter().find(|w| w.id == "nps-emr").unwrap();
        assert!(nps.trigger.first_only);
        let days: Vec<_> = nps.steps.iter().map(|s| s.schedule.amount).collect();
        assert_eq!(days, [7, 28]);
    }
}
