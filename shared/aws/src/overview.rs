//! [`OrgOverview`] through the `by_org` GSI ([`BY_ORG_INDEX`]): an org's
//! messages, patients and failed steps in Query pages of up to 1 MB of
//! projected items (a message is about 600 bytes there, a patient about
//! 400), instead of a BatchGet per 100 records and a Query per patient.
//! The index is eventually consistent: a write of the last second may be
//! missing, which an analysis can afford.
use jiff::Timestamp;
use tendon_core::model::Patient;
use tendon_core::ports::{OrgOverview, Overview, StoreResult};
use tendon_core::workflow::steps::StepStatus;

use crate::items::{
    BY_ORG_INDEX, BY_ORG_MESSAGE, BY_ORG_PATIENT, BY_ORG_PK, BY_ORG_SK, BY_ORG_STEP, Item, PK, SK,
    key, s, string_attr,
};
use crate::messages::{decode_head, instant_key};
use crate::schedule::decode_step;
use crate::{AwsStore, codec};

const WHAT: &str = "overview";

impl OrgOverview for AwsStore {
    async fn overview(&self, org: &str, since: Option<Timestamp>) -> StoreResult<Overview> {
        let from = format!(
            "{BY_ORG_MESSAGE}{}",
            since.map(instant_key).unwrap_or_default()
        );
        // `~` sorts after every character of a message's sort key.
        let to = format!("{BY_ORG_MESSAGE}~");
        let mut overview = Overview::default();
        for item in self
            .by_org(
                org,
                "#k BETWEEN :from AND :to",
                &[(":from", from), (":to", to)],
            )
            .await?
        {
            overview.messages.push(decode_head(WHAT, item)?.0);
        }
        // Patients (`PAT#`), then failed steps (`STEP#`): both sort after `PAT#`.
        let mut failed = Vec::new();
        let rest = self
            .by_org(org, "#k >= :pat", &[(":pat", BY_ORG_PATIENT.to_owned())])
            .await?;
        for mut item in rest {
            let sk = string_attr(&item, BY_ORG_SK).unwrap_or_default();
            if sk.starts_with(BY_ORG_STEP) {
                if let (Some(pk), Some(sk)) = (string_attr(&item, PK), string_attr(&item, SK)) {
                    failed.push(key(pk.to_owned(), sk));
                }
            } else if sk.starts_with(BY_ORG_PATIENT) {
                let patient = item.remove("patient").ok_or_else(|| codec(WHAT))?;
                let patient: Patient =
                    serde_dynamo::from_attribute_value(patient).map_err(|_| codec(WHAT))?;
                if patient.merged_into.is_none() {
                    overview.patients.push(patient);
                }
            }
        }
        overview.patients.sort_by(|a, b| a.id.cmp(&b.id));
        // A failed step keeps only its keys in the index: the few there are
        // are read whole, and kept if they are still failed.
        for item in self.batch_get(WHAT, failed).await? {
            let step = decode_step(WHAT, item)?;
            if step.status == StepStatus::Failed {
                overview.failed_steps.push(step);
            }
        }
        Ok(overview)
    }
}

impl AwsStore {
    /// The `by_org` index items of `org` whose sort key (`#k`) meets
    /// `condition`, all pages.
    async fn by_org(
        &self,
        org: &str,
        condition: &str,
        values: &[(&str, String)],
    ) -> StoreResult<Vec<Item>> {
        let mut query = self
            .dynamo
            .query()
            .table_name(&self.table)
            .index_name(BY_ORG_INDEX)
            .key_condition_expression(format!("#o = :org AND {condition}"))
            .expression_attribute_names("#o", BY_ORG_PK)
            .expression_attribute_names("#k", BY_ORG_SK)
            .expression_attribute_values(":org", s(org));
        for (name, value) in values {
            query = query.expression_attribute_values(*name, s(value.clone()));
        }
        let mut out = Vec::new();
        self.query_pages(WHAT, query, |page| {
            out.extend(page.items.unwrap_or_default());
        })
        .await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use tendon_core::model::{MessageFacts, MessageStatus, StoredMessage};

    use crate::items::{BY_ORG_PROJECTED, to_item};

    /// Every attribute a message record is written with reaches the index
    /// (else decoding a message from it fails), the raw body aside.
    #[test]
    fn the_index_keeps_every_attribute_of_a_message_record() {
        let message = StoredMessage {
            org: "ACME01".into(),
            id: "m1".into(),
            control_id: Some("M1".into()),
            message_type: Some("SIU^S12".into()),
            status: MessageStatus::Failed,
            errors: Vec::new(),
            received_at: jiff::Timestamp::UNIX_EPOCH,
            body_hash: "h".into(),
            patient_id: Some("P1".into()),
            steps_done: vec!["patient".into()],
            replays: 1,
            queued: true,
            acknowledged: true,
            facts: Some(MessageFacts::default()),
            raw: b"MSH|".to_vec(),
        };
        let item = to_item("test", &message, "pk".into(), "sk").unwrap();
        for attr in item.keys() {
            assert!(
                ["pk", "sk", "org"].contains(&attr.as_str())
                    || BY_ORG_PROJECTED.contains(&attr.as_str()),
                "{attr} is not projected into by_org"
            );
        }
    }
}
