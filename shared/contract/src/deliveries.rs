//! [`DeliveryLog`]: deliveries and the outbox, and the surveys and exercises
//! they assign.
use tendon_core::ports::{DeliveryLog, Inserted};

use crate::Stores;
use crate::fixtures::*;

/// begin_delivery records once; complete_delivery records the outcome; the
/// outbox lists them oldest first; open_assignments counts sent surveys and
/// exercises.
pub async fn deliveries<S: Stores + DeliveryLog>(store: &S) {
    use tendon_core::workflow::TaskKind;
    use tendon_core::workflow::steps::{Channel, Delivery, DeliveryStatus};
    let org_id = new_org(store, "ORG").await;
    let patient = unique("P");
    let d = |id: &str, kind: TaskKind| Delivery {
        id: id.to_owned(),
        org: org_id.clone(),
        channel: Channel::Email,
        to: "ana.rivera@example.com".to_owned(),
        subject: Some("Hi".to_owned()),
        body: "Hello".to_owned(),
        html: Some("<p>Hello</p>".to_owned()),
        content_id: None,
        kind,
        workflow_id: "welcome".to_owned(),
        step: 0,
        patient_id: patient.clone(),
        step_id: unique("step"),
        status: DeliveryStatus::Sending,
        provider_id: None,
        created_at: ts("2026-11-20T17:30:00Z"),
        sent_at: None,
    };
    let (first, survey) = (
        d(&unique("d"), TaskKind::Email),
        d(&unique("d"), TaskKind::Survey),
    );
    assert_eq!(store.begin_delivery(&first).await, Ok(Inserted::New));
    assert_eq!(
        store.begin_delivery(&first).await,
        Ok(Inserted::Existing(first.clone())),
        "contract: a delivery is recorded once"
    );
    assert_eq!(store.begin_delivery(&survey).await, Ok(Inserted::New));
    assert_eq!(
        store.open_assignments(&org_id, &patient).await,
        Ok(0),
        "contract: not sent, not open"
    );
    store
        .complete_delivery(
            &first,
            DeliveryStatus::Sent,
            Some("ses-1"),
            ts("2026-11-20T17:30:01Z"),
        )
        .await
        .unwrap();
    store
        .complete_delivery(
            &survey,
            DeliveryStatus::Sent,
            Some("ses-2"),
            ts("2026-11-20T17:30:02Z"),
        )
        .await
        .unwrap();
    let outbox = store.list_deliveries(&org_id).await.unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(
        outbox[0].id, first.id,
        "contract: the outbox is oldest first"
    );
    assert_eq!(outbox[0].status, DeliveryStatus::Sent);
    assert_eq!(outbox[0].provider_id.as_deref(), Some("ses-1"));
    assert_eq!(outbox[0].sent_at, Some(ts("2026-11-20T17:30:01Z")));
    assert_eq!(
        store.open_assignments(&org_id, &patient).await,
        Ok(1),
        "contract: a sent survey is an open assignment"
    );
    assert_eq!(
        store.complete_assignment(&org_id, &first.id).await,
        Ok(false),
        "contract: an email assigns nothing"
    );
    assert_eq!(
        store.complete_assignment(&org_id, &survey.id).await,
        Ok(true)
    );
    assert_eq!(
        store.complete_assignment(&org_id, &survey.id).await,
        Ok(false),
        "contract: completing twice changes nothing"
    );
    assert_eq!(
        store.open_assignments(&org_id, &patient).await,
        Ok(0),
        "contract: a completed survey is not open"
    );
    assert!(
        store
            .list_deliveries(&unique("ORG"))
            .await
            .unwrap()
            .is_empty()
    );
}
