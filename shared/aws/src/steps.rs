//! [`StepStore`]: a processing step's first read in ONE BatchGetItem (the
//! message, the org item, the patient record and the patient ID's parked
//! messages), with the configuration from the token cache (`cache` module).
use aws_sdk_dynamodb::types::AttributeValue;
use tendon_core::ports::{StepInput, StepStore, StoreResult};

use crate::AwsStore;
use crate::items::{
    CONFIG_TOKEN, Item, MESSAGE_SK, ORG_SK, PARKED_IDS, PARKED_SK, PATIENT_SK, from_item, key,
    message_pk, org_pk, patient_pk, string_attr,
};

/// The IDs in a parked-messages item.
fn parked_ids(item: &Item) -> Vec<String> {
    match item.get(PARKED_IDS) {
        Some(AttributeValue::Ss(ids)) => ids.clone(),
        _ => Vec::new(),
    }
}

impl AwsStore {
    /// Parked message IDs, oldest first: a string set has no order, so more
    /// than one costs a BatchGet of the messages' receipt times (rare: several
    /// ADTs before a patient's first Initial Evaluation).
    pub(crate) async fn order_parked(
        &self,
        org: &str,
        ids: Vec<String>,
    ) -> StoreResult<Vec<String>> {
        if ids.len() < 2 {
            return Ok(ids);
        }
        let keys = ids
            .iter()
            .map(|id| key(message_pk(org, id), MESSAGE_SK))
            .collect();
        let mut dated: Vec<(String, String)> = self
            .batch_get("pending_messages", keys)
            .await?
            .iter()
            .filter_map(|i| {
                let id = string_attr(i, "id")?.to_owned();
                let at = crate::messages::received_key(
                    string_attr(i, "received_at").unwrap_or_default(),
                );
                Some((at, id))
            })
            .collect();
        dated.sort();
        Ok(dated.into_iter().map(|(_, id)| id).collect())
    }

    /// The parked messages of a patient ID: one GetItem.
    pub(crate) async fn parked(&self, org: &str, patient_id: &str) -> StoreResult<Vec<String>> {
        let item = self
            .get("pending_messages", patient_pk(org, patient_id), PARKED_SK)
            .await?;
        let ids = item.as_ref().map(parked_ids).unwrap_or_default();
        self.order_parked(org, ids).await
    }
}

impl StepStore for AwsStore {
    async fn read_step(
        &self,
        org: &str,
        message_id: &str,
        patient_id: Option<&str>,
    ) -> StoreResult<StepInput> {
        const WHAT: &str = "read_step";
        let message_key = message_pk(org, message_id);
        let mut keys = vec![
            key(message_key.clone(), MESSAGE_SK),
            key(org_pk(org), ORG_SK),
        ];
        if let Some(pid) = patient_id {
            keys.push(key(patient_pk(org, pid), PATIENT_SK));
            keys.push(key(patient_pk(org, pid), PARKED_SK));
        }
        let mut input = StepInput::default();
        let mut token = None;
        let mut parked = Vec::new();
        for item in self.batch_get(WHAT, keys).await? {
            let pk = string_attr(&item, "pk").unwrap_or_default().to_owned();
            let sk = string_attr(&item, "sk").unwrap_or_default().to_owned();
            match sk.as_str() {
                MESSAGE_SK if pk == message_key => {
                    input.message = Some(self.decode_message(WHAT, item).await?);
                }
                ORG_SK => {
                    token = Some(
                        string_attr(&item, CONFIG_TOKEN)
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                PATIENT_SK => input.patient = Some(from_item(WHAT, item)?),
                PARKED_SK => parked = parked_ids(&item),
                _ => {}
            }
        }
        input.config = match token {
            None => None,
            Some(token) => match self.caches.config(org, &token) {
                Some(config) => Some(config),
                None => self.fetch_org_config(org).await?.map(|(_, c)| c),
            },
        };
        input.pending = self.order_parked(org, parked).await?;
        Ok(input)
    }
}
