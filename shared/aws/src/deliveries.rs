//! [`DeliveryLog`] on DynamoDB: what dispatch sent (the outbox) and the
//! surveys and exercises it assigned. A delivery is its own item
//! (`ORG#<org>#DLV#<id>` / `DLV`) with a listing item (`ORG#<org>#DLVS`),
//! written in one transaction; a sent survey or exercise also leaves an
//! assignment marker (`ASG#<delivery id>`) in its patient's partition,
//! written with the delivery's completion, so counting a patient's open
//! assignments is one Query of that partition. See the item layout in the
//! crate docs.
use aws_sdk_dynamodb::types::{Select, TransactWriteItem, Update};
use jiff::Timestamp;
use tendon_core::ports::{DeliveryLog, Inserted, StoreError, StoreResult};
use tendon_core::workflow::TaskKind;
use tendon_core::workflow::steps::{Delivery, DeliveryStatus};

use crate::config::transact_put;
use crate::items::{
    ASSIGNMENT_PREFIX, DELIVERY_SK, delivery_list_pk, delivery_pk, from_item, key, listing_item,
    patient_pk, s, to_item, to_value, written,
};
use crate::messages::instant_key;
use crate::{AwsStore, build};

/// An assignment marker's completion time (set when the patient completes it).
const COMPLETED_AT: &str = "completed_at";

fn assignment_sk(delivery_id: &str) -> String {
    format!("{ASSIGNMENT_PREFIX}{delivery_id}")
}

/// Whether a sent delivery of this kind is an assignment the patient completes.
fn is_assignment(kind: TaskKind) -> bool {
    matches!(kind, TaskKind::Survey | TaskKind::Exercise)
}

impl DeliveryLog for AwsStore {
    /// One transaction: the delivery (`attribute_not_exists`) and its listing
    /// item; on a duplicate, a GetItem returns the stored one.
    async fn begin_delivery(&self, delivery: &Delivery) -> StoreResult<Inserted<Delivery>> {
        const WHAT: &str = "begin_delivery";
        let (org, id) = (&delivery.org, &delivery.id);
        let item = to_item(WHAT, delivery, delivery_pk(org, id), DELIVERY_SK)?;
        let listing = listing_item(delivery_list_pk(org), &instant_key(delivery.created_at), id);
        let items = vec![
            transact_put(self, WHAT, item, Some("attribute_not_exists(pk)"))?,
            transact_put(self, WHAT, listing, None)?,
        ];
        if self.transact_conditions(WHAT, items).await?.is_none() {
            return Ok(Inserted::New);
        }
        match self.get(WHAT, delivery_pk(org, id), DELIVERY_SK).await? {
            Some(item) => Ok(Inserted::Existing(from_item(WHAT, item)?)),
            None => Err(StoreError::backend(WHAT, "the transaction was cancelled")),
        }
    }

    /// An Update of the delivery; for a sent survey or exercise, in one
    /// transaction with its assignment marker in the patient's partition.
    async fn complete_delivery(
        &self,
        delivery: &Delivery,
        status: DeliveryStatus,
        provider_id: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<()> {
        const WHAT: &str = "complete_delivery";
        let (org, id) = (&delivery.org, &delivery.id);
        let sent_at = if status == DeliveryStatus::Sent {
            Some(at)
        } else {
            delivery.sent_at
        };
        let mut set = vec!["#st = :st"];
        let mut remove = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(delivery_pk(org, id), DELIVERY_SK)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#pid", "provider_id")
            .expression_attribute_names("#sa", "sent_at")
            .expression_attribute_values(":st", to_value(WHAT, &status)?);
        match provider_id {
            Some(p) => {
                set.push("#pid = :pid");
                update = update.expression_attribute_values(":pid", s(p));
            }
            None => remove.push("#pid"),
        }
        match sent_at {
            Some(t) => {
                set.push("#sa = :sa");
                update = update.expression_attribute_values(":sa", s(t.to_string()));
            }
            None => remove.push("#sa"),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(|_| build(WHAT))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if status == DeliveryStatus::Sent && is_assignment(delivery.kind) {
            let mut marker = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(
                    patient_pk(org, &delivery.patient_id),
                    assignment_sk(id),
                )))
                .update_expression("SET #did = :did, #kind = :kind, #sa = if_not_exists(#sa, :sa)")
                .expression_attribute_names("#did", "delivery_id")
                .expression_attribute_names("#kind", "kind")
                .expression_attribute_names("#sa", "sent_at")
                .expression_attribute_values(":did", s(id.clone()))
                .expression_attribute_values(":kind", to_value(WHAT, &delivery.kind)?)
                .expression_attribute_values(":sa", s(at.to_string()));
            if let Some(content) = &delivery.content_id {
                marker = marker
                    .update_expression(
                        "SET #did = :did, #kind = :kind, #sa = if_not_exists(#sa, :sa), #cid = :cid",
                    )
                    .expression_attribute_names("#cid", "content_id")
                    .expression_attribute_values(":cid", s(content.clone()));
            }
            items.push(
                TransactWriteItem::builder()
                    .update(marker.build().map_err(|_| build(WHAT))?)
                    .build(),
            );
        }
        match self.transact_conditions(WHAT, items).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::NotFound(format!("delivery {id}"))),
        }
    }

    /// A Query of the listing and BatchGets of the deliveries, in listing order.
    async fn list_deliveries(&self, org: &str) -> StoreResult<Vec<Delivery>> {
        const WHAT: &str = "list_deliveries";
        self.listed(
            WHAT,
            delivery_list_pk(org),
            |id| key(delivery_pk(org, id), DELIVERY_SK),
            |item| {
                let d: Delivery = from_item(WHAT, item)?;
                Ok((d.id.clone(), d))
            },
        )
        .await
    }

    /// One Query of the patient's `ASG#` markers, counting those without
    /// `completed_at` (Select COUNT).
    async fn open_assignments(&self, org: &str, patient_id: &str) -> StoreResult<usize> {
        const WHAT: &str = "open_assignments";
        let query = self
            .partition_query(patient_pk(org, patient_id), ASSIGNMENT_PREFIX)
            .filter_expression("attribute_not_exists(#c)")
            .expression_attribute_names("#c", COMPLETED_AT)
            .select(Select::Count);
        let mut total = 0usize;
        self.query_pages(WHAT, query, |page| {
            total += usize::try_from(page.count).unwrap_or(0);
        })
        .await?;
        Ok(total)
    }

    /// Marks an assigned survey or exercise complete (by delivery ID): a
    /// GetItem of the delivery and an Update of its marker. `false` if there
    /// is no such open assignment.
    async fn complete_assignment(&self, org: &str, delivery_id: &str) -> StoreResult<bool> {
        const WHAT: &str = "complete_assignment";
        let Some(item) = self
            .get(WHAT, delivery_pk(org, delivery_id), DELIVERY_SK)
            .await?
        else {
            return Ok(false);
        };
        let delivery: Delivery = from_item(WHAT, item)?;
        if !is_assignment(delivery.kind) || delivery.status != DeliveryStatus::Sent {
            return Ok(false);
        }
        let result = self
            .update_one(
                patient_pk(org, &delivery.patient_id),
                assignment_sk(delivery_id),
            )
            .update_expression("SET #c = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(#c)")
            .expression_attribute_names("#c", COMPLETED_AT)
            .expression_attribute_values(":now", s(Timestamp::now().to_string()))
            .send()
            .await;
        written(WHAT, result)
    }
}
