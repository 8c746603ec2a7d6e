//! The delivery a step makes: its content resolved for the case, its
//! subject and body rendered with only names and the appointment, and an
//! email's unsubscribe link added.
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;

use super::verdict::channel_of;
use crate::model::PatientRecord;
use crate::org::OrgConfig;
use crate::workflow::catalogue;
use crate::workflow::render;
use crate::workflow::steps::{Channel, Delivery, DeliveryStatus, ScheduledStep};

/// The template context: names and the appointment, never more of the record.
fn context(
    step: &ScheduledStep,
    config: &OrgConfig,
    record: &PatientRecord,
    content: Option<&catalogue::Content>,
    unsubscribe_url: &str,
) -> serde_json::Value {
    let zone = TimeZone::get(&step.zone).unwrap_or(TimeZone::UTC);
    let appointment = step
        .appointment_id
        .as_deref()
        .and_then(|a| record.appointment(a));
    let start_local = appointment
        .and_then(|a| a.start.as_deref())
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%A, %B %-d at %-I:%M %p")
                .to_string()
        });
    let location = appointment
        .and_then(|a| a.location_id.as_deref())
        .and_then(|l| config.location(l))
        .map(|l| l.name.clone());
    json!({
        "patient": {"first_name": record.patient.first_name, "last_name": record.patient.last_name},
        "clinic": {"name": config.org.name, "location": location},
        "appointment": appointment.map(|a| json!({
            "type": a.appointment_type, "start_local": start_local,
        })),
        "content": content.map(|c| json!({"id": c.id, "name": c.name})),
        "unsubscribe_url": unsubscribe_url,
    })
}

/// The delivery a step makes: rendered, addressed, not yet sent.
pub fn build_delivery(
    step: &ScheduledStep,
    config: &OrgConfig,
    record: &PatientRecord,
    unsubscribe_url: &str,
    now: Timestamp,
) -> Result<Delivery, &'static str> {
    let task = &step.task;
    let content = match task.content.as_deref() {
        Some(c) if task.kind.assigns_content() => {
            let description = step
                .case_id
                .as_deref()
                .and_then(|c| record.case_episode(c))
                .map(|e| e.name.as_str());
            Some(catalogue::resolve(c, description).ok_or("no_content_for_case")?)
        }
        _ => None,
    };
    let ctx = context(step, config, record, content, unsubscribe_url);
    let channel = channel_of(task.kind);
    let to = match channel {
        Channel::Email => record.patient.email.clone(),
        Channel::Text => record.patient.mobile.clone(),
    }
    .ok_or("no_address")?;
    let default_subject = content.map(|c| format!("New in your program: {}", c.name));
    let subject_src = task.subject.clone().or(default_subject);
    let body_src = task.body.clone().unwrap_or_else(|| {
        "Hi {{ patient.first_name }},\n\nYour clinic has added {{ content.name }} to your program.".to_owned()
    });
    let (subject, body, html) = match channel {
        Channel::Email => {
            let footer = format!(
                "<p style=\"font-size:small\"><a href=\"{}\">Unsubscribe</a></p>",
                html_attr(unsubscribe_url)
            );
            let subject = match &subject_src {
                Some(s) => Some(render::subject(s, &ctx).map_err(|_| "template_error")?),
                None => None,
            };
            let text = render::text(&body_src, &ctx).map_err(|_| "template_error")?;
            let text = format!("{text}\n\nUnsubscribe: {unsubscribe_url}\n");
            let html = render::html(&body_src, &ctx, &footer).map_err(|_| "template_error")?;
            (subject, text, Some(html))
        }
        Channel::Text => (
            None,
            render::text(&body_src, &ctx).map_err(|_| "template_error")?,
            None,
        ),
    };
    Ok(Delivery {
        id: step.delivery_key(),
        org: step.org.clone(),
        channel,
        to,
        subject,
        body,
        html,
        content_id: content.map(|c| c.id.to_owned()),
        kind: task.kind,
        workflow_id: step.workflow_id.clone(),
        step: step.step,
        patient_id: step.patient_id.clone(),
        step_id: step.id.clone(),
        status: DeliveryStatus::Sending,
        provider_id: None,
        created_at: now,
        sent_at: None,
    })
}

fn html_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
