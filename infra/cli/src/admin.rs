//! Operator commands: orgs, locations, practitioners, IE types, patients, messages.
use std::collections::HashMap;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tendon_core::keys::{self, key_hash, new_ingest_key};
use tendon_core::mode::Mode;
use tendon_core::model::{MessageStatus, PatientRecord};
use tendon_core::org::{Location, Org, OrgConfig, Practitioner};
use tendon_core::ports::{
    ConfigStore, MessageLog, PatientStore, StoreError, Suppressions, TestData,
};
use tendon_core::workflow::opt_out;
use tendon_core::workflow::steps::Channel;

use crate::args::{JsonFlag, ModeArg, OrgArgs, RecordArgs};
use crate::backend::Backend;
use crate::output::print;

use crate::error::{CliError, CliResult};

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an org (clinic business) and print its first ingest key, once.
    Create {
        /// The EMR Account ID (Clinicient Tenant ID).
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// IANA time zone.
        #[arg(long, default_value = tendon_core::mapping::DEFAULT_TIME_ZONE)]
        timezone: String,
        /// An Initial Evaluation appointment type (repeatable).
        #[arg(long = "ie-type")]
        ie_types: Vec<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Issue another ingest key for an org and print it, once (key rotation:
    /// give the gateway the new key; the old one keeps working meanwhile).
    /// With --test, a test-mode key: its messages are checked, stored and
    /// answered as live ones, but create no patient and send nothing.
    AddKey {
        #[arg(long)]
        org: String,
        /// A test-mode key (see docs/go-live.md).
        #[arg(long)]
        test: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete the org's test-mode data: the messages its test-mode keys sent
    /// and what they made. Live data and the keys stay.
    DeleteTestData(OrgArgs),
    /// Show or change the org's HL7 field-map overrides (docs/interface.md §3): a
    /// field read from other paths, first non-empty wins. With no --set or
    /// --reset it prints them. Messages already stored are re-read with the
    /// new map by `messages replay`.
    FieldMap {
        #[arg(long)]
        org: String,
        /// FIELD=PATHS, e.g. `case_id=PV1-50.1` or `clinic_id=AIL-3.4,PV1-3.4`
        /// (a §3.1 field name; repeatable).
        #[arg(long = "set", value_name = "FIELD=PATHS")]
        set: Vec<String>,
        /// Back to the default path of FIELD (repeatable).
        #[arg(long = "reset", value_name = "FIELD")]
        reset: Vec<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List an org's ingest keys by key ID (the keys themselves are never
    /// stored, so never shown again).
    Keys(OrgArgs),
    /// Revoke one of an org's ingest keys, named by its key ID (from `org
    /// keys` or `add-key`) or by the key itself. The AWS ingest function may
    /// accept it for up to 30 s more (its key cache).
    #[command(group(clap::ArgGroup::new("which").required(true).args(["key_id", "key"])))]
    RevokeKey {
        #[arg(long)]
        org: String,
        #[arg(long)]
        key_id: Option<String>,
        /// The key as the gateway sends it (env TENDON_REVOKE_KEY keeps it
        /// out of shell history).
        #[arg(long, env = "TENDON_REVOKE_KEY", hide_env_values = true)]
        key: Option<String>,
        /// Allow revoking the org's last key, which stops all its ingest.
        #[arg(long)]
        allow_none: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List the email addresses suppressed for the org (a permanent bounce or
    /// a complaint): no workflow email goes to them.
    Suppressions(OrgArgs),
    /// Lift an address's suppression, so workflow email may go to it again
    /// (the patient stays unsubscribed until `patient opt-in --channel email`).
    Unsuppress {
        #[arg(long)]
        org: String,
        #[arg(long)]
        address: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand)]
pub enum LocationCommand {
    /// Add (or replace) a clinic location.
    Add {
        #[arg(long)]
        org: String,
        /// The EMR's Clinic ID.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// IANA time zone, when it differs from the org's.
        #[arg(long)]
        timezone: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// The org's locations (a Cliniko sync adds one per business).
    List(OrgArgs),
}

#[derive(Subcommand)]
pub enum PractitionerCommand {
    /// Add (or replace) a practitioner. Messages never create practitioners.
    Add {
        #[arg(long)]
        org: String,
        /// The EMR staff ID.
        #[arg(long)]
        id: String,
        #[arg(long)]
        first: String,
        #[arg(long)]
        last: String,
        #[arg(long)]
        npi: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand)]
pub enum IeTypeCommand {
    /// Add an Initial Evaluation appointment type (case-insensitive).
    Add {
        #[arg(long)]
        org: String,
        #[arg(long = "type")]
        ie_type: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand)]
pub enum PatientCommand {
    /// List an org's patients.
    List {
        #[command(flatten)]
        of: OrgArgs,
        #[command(flatten)]
        mode: ModeArg,
    },
    /// Show a patient with episodes of care and appointments.
    Show {
        #[command(flatten)]
        of: RecordArgs,
        #[command(flatten)]
        mode: ModeArg,
    },
    /// Stop workflow messages to a patient on one channel (email: as the
    /// unsubscribe link does; text: as an SMS STOP reply). Prints the patient.
    OptOut(ChannelArgs),
    /// Resume workflow messages to a patient on one channel. Prints the patient.
    OptIn(ChannelArgs),
}

// `patient opt-out` and `opt-in`: the patient and the channel.
#[derive(Args)]
pub struct ChannelArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    id: String,
    /// email or text.
    #[arg(long, value_parser = ["email", "text"])]
    channel: String,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Subcommand)]
pub enum MessagesCommand {
    /// List stored messages, oldest first.
    List {
        #[arg(long)]
        org: String,
        /// accepted, processed, pending, failed, rejected or ignored.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        mode: ModeArg,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Reprocess stored messages with the org's current configuration.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["control_id", "failed"])))]
    Replay {
        #[arg(long)]
        org: String,
        /// The message with this MSH-10.
        #[arg(long)]
        control_id: Option<String>,
        /// Every failed message of the org.
        #[arg(long)]
        failed: bool,
        #[command(flatten)]
        mode: ModeArg,
        #[command(flatten)]
        out: JsonFlag,
    },
}

fn check_zone(tz: &str) -> CliResult {
    jiff::tz::TimeZone::get(tz).map(|_| ()).map_err(|_| {
        CliError::from(format!(
            "unknown time zone {tz:?}; use an IANA name such as America/New_York"
        ))
    })
}

fn non_empty(what: &str, v: &str) -> CliResult<String> {
    let t = v.trim();
    if t.is_empty() {
        Err(format!("{what} must not be empty").into())
    } else {
        Ok(t.to_owned())
    }
}

fn org_json(org: &Org) -> Value {
    json!({ "id": org.id, "name": org.name, "timezone": org.timezone, "ie_types": org.ie_types })
}

/// The org's configuration, or a refusal that says how to create the org.
pub async fn require_config(store: &impl ConfigStore, org: &str) -> CliResult<OrgConfig> {
    store.org_config(org).await?.ok_or_else(|| {
        format!("no org {org:?}; create it with `tendon org create --id {org} --name NAME`").into()
    })
}

async fn require_org(store: &impl ConfigStore, org: &str) -> CliResult<Org> {
    Ok(require_config(store, org).await?.org)
}

pub async fn org(
    store: &(impl ConfigStore + Suppressions + TestData),
    cmd: OrgCommand,
) -> CliResult {
    let (id, name, timezone, ie_types, out) = match cmd {
        OrgCommand::Create {
            id,
            name,
            timezone,
            ie_types,
            out,
        } => (id, name, timezone, ie_types, out),
        OrgCommand::AddKey { org, test, out } => {
            let mode = if test { Mode::Test } else { Mode::Live };
            let key = keys::add(store, &org, mode).await?;
            let hash = key_hash(&key);
            return print(
                out.json,
                &json!({"org": org, "ingest_key": key, "key_id": keys::key_id(&hash), "mode": mode}),
            );
        }
        OrgCommand::DeleteTestData(OrgArgs { org, out }) => {
            let deleted = keys::delete_test_data(store, &org).await?;
            return print(out.json, &json!({"org": org, "deleted": deleted}));
        }
        OrgCommand::FieldMap {
            org,
            set,
            reset,
            out,
        } => {
            let mut o = require_org(store, &org).await?;
            for field in &reset {
                o.field_map.set_str(field.trim(), "")?;
            }
            for entry in &set {
                let (field, paths) = entry
                    .split_once('=')
                    .ok_or_else(|| format!("--set {entry:?}: expected FIELD=PATHS"))?;
                if paths.trim().is_empty() {
                    return Err(format!(
                        "--set {entry:?}: no path (use --reset {} for the default)",
                        field.trim()
                    )
                    .into());
                }
                o.field_map.set_str(field.trim(), paths)?;
            }
            if !(set.is_empty() && reset.is_empty()) {
                store.update_org(&o).await?;
            }
            return print(out.json, &json!({"org": o.id, "overrides": o.field_map}));
        }
        OrgCommand::Keys(OrgArgs { org, out }) => {
            let listed: Vec<Value> = keys::list(store, &org)
                .await?
                .iter()
                .map(|k| json!({"key_id": keys::key_id(&k.hash), "created_at": k.created_at.map(|t| t.to_string()), "mode": k.mode}))
                .collect();
            return print(out.json, &Value::Array(listed));
        }
        OrgCommand::RevokeKey {
            org,
            key_id,
            key,
            allow_none,
            out,
        } => {
            let which = match (&key_id, &key) {
                (Some(id), _) => keys::KeyRef::Id(id),
                (None, Some(key)) => keys::KeyRef::Key(key),
                (None, None) => return Err("give --key-id or --key".into()),
            };
            let revoked = keys::revoke(store, &org, which, allow_none).await?;
            return print(
                out.json,
                &json!({"org": org, "revoked": revoked.key_id, "remaining": revoked.remaining}),
            );
        }
        OrgCommand::Suppressions(OrgArgs { org, out }) => {
            require_org(store, &org).await?;
            let listed = store.suppressed_addresses(&org).await?;
            return print(out.json, &json!(listed));
        }
        OrgCommand::Unsuppress { org, address, out } => {
            require_org(store, &org).await?;
            if !store.unsuppress_address(&org, &address).await? {
                return Err(format!(
                    "{:?} is not suppressed for org {org:?} (see `tendon org suppressions --org {org}`)",
                    address.trim()
                ).into());
            }
            return print(
                out.json,
                &json!({"org": org, "unsuppressed": address.trim().to_ascii_lowercase()}),
            );
        }
    };
    check_zone(&timezone)?;
    tendon_core::mode::check_org_id(id.trim())?;
    let mut org = Org {
        id: non_empty("--id", &id)?,
        name: non_empty("--name", &name)?,
        timezone,
        ie_types: Vec::new(),
        field_map: Default::default(),
    };
    for t in &ie_types {
        org.add_ie_type(&non_empty("--ie-type", t)?);
    }
    let key = new_ingest_key()?;
    store
        .create_org(&org, &key_hash(&key))
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists(_) => format!("org {:?} already exists", org.id),
            other => other.to_string(),
        })?;
    let mut v = org_json(&org);
    v["ingest_key"] = json!(key);
    v["key_id"] = json!(keys::key_id(&key_hash(&key)));
    print(out.json, &v)
}

fn location_json(loc: &Location) -> Value {
    json!({ "id": loc.id, "name": loc.name, "timezone": loc.timezone })
}

pub async fn location(store: &impl ConfigStore, cmd: LocationCommand) -> CliResult {
    let (org, id, name, timezone, out) = match cmd {
        LocationCommand::Add {
            org,
            id,
            name,
            timezone,
            out,
        } => (org, id, name, timezone, out),
        LocationCommand::List(OrgArgs { org, out }) => {
            let config = store
                .org_config(&org)
                .await?
                .ok_or_else(|| format!("no org {org:?}"))?;
            let all: Vec<Value> = config.locations.iter().map(location_json).collect();
            return print(out.json, &all);
        }
    };
    if let Some(tz) = &timezone {
        check_zone(tz)?;
    }
    require_org(store, &org).await?;
    let loc = Location {
        id: non_empty("--id", &id)?,
        name: non_empty("--name", &name)?,
        timezone,
    };
    store.put_location(&org, &loc).await?;
    print(out.json, &location_json(&loc))
}

pub async fn practitioner(store: &impl ConfigStore, cmd: PractitionerCommand) -> CliResult {
    let PractitionerCommand::Add {
        org,
        id,
        first,
        last,
        npi,
        email,
        out,
    } = cmd;
    require_org(store, &org).await?;
    let p = Practitioner {
        id: non_empty("--id", &id)?,
        first_name: non_empty("--first", &first)?,
        last_name: non_empty("--last", &last)?,
        npi: npi.filter(|n| !n.trim().is_empty()),
        email: email.filter(|e| !e.trim().is_empty()),
    };
    store.put_practitioner(&org, &p).await?;
    print(
        out.json,
        &json!({ "id": p.id, "first_name": p.first_name, "last_name": p.last_name, "npi": p.npi, "email": p.email }),
    )
}

pub async fn ie_type(store: &impl ConfigStore, cmd: IeTypeCommand) -> CliResult {
    let IeTypeCommand::Add { org, ie_type, out } = cmd;
    let mut o = require_org(store, &org).await?;
    o.add_ie_type(&non_empty("--type", &ie_type)?);
    store.update_org(&o).await?;
    print(out.json, &org_json(&o))
}

async fn set_opt_out<S: ConfigStore + PatientStore>(
    store: &S,
    args: ChannelArgs,
    opted_out: bool,
) -> CliResult {
    let ChannelArgs {
        org,
        id,
        channel,
        out,
    } = args;
    let channel = Channel::parse(&channel)
        .ok_or_else(|| format!("--channel must be email or text, not {channel:?}"))?;
    require_org(store, &org).await?;
    if !opt_out::set_opt_out(store, &org, &id, channel, opted_out).await? {
        return Err(format!("org {org:?} has no patient {id:?}").into());
    }
    let rec = store
        .load_patient(&org, &id)
        .await?
        .ok_or_else(|| format!("org {org:?} has no patient {id:?}"))?;
    print(out.json, &patient_json(&rec))
}

fn patient_json(rec: &PatientRecord) -> Value {
    let p = &rec.patient;
    json!({
        "id": p.id,
        "source": p.source,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "birth_date": p.birth_date,
        "gender": p.gender,
        // The clinic's own words for it, where the source has free text
        // (Cliniko's `sex`: `AFAB`, `Female to Male`); absent otherwise.
        "sex_label": p.sex_label,
        "email": p.email,
        "mobile": p.mobile,
        // Workflow reachability: email unsubscribed, texts opted out.
        "unsubscribed": p.unsubscribed,
        "text_opt_out": p.text_opt_out,
        // A Cliniko profile archived, deleted or merged there: why it is
        // inactive (null while active); `merged_into` links a merge.
        "inactive": p.inactive,
        "merged_into": p.merged_into,
        "episodes": rec.episodes.iter().map(|e| json!({
            "name": e.name,
            "default": e.default,
            "case_id": e.case_id,
            "supervising_practitioner_id": e.supervising_practitioner_id,
            "status": e.status,
        })).collect::<Vec<_>>(),
        "appointments": rec.appointments.iter().map(|a| json!({
            "id": a.id,
            "type": a.appointment_type,
            "start": a.start,
            "status": a.status,
            "case_id": a.case_id,
            "practitioner_id": a.practitioner_id,
        })).collect::<Vec<_>>(),
    })
}

pub async fn patient<S: ConfigStore + PatientStore>(store: &S, cmd: PatientCommand) -> CliResult {
    match cmd {
        PatientCommand::List {
            of: OrgArgs { org, out },
            mode,
        } => {
            require_org(store, &org).await?;
            let org = mode.partition(&org);
            let mut all = Vec::new();
            for p in store.list_patients(&org).await? {
                if let Some(rec) = store.load_patient(&org, &p.id).await? {
                    all.push(patient_json(&rec));
                }
            }
            print(out.json, &all)
        }
        PatientCommand::Show {
            of: RecordArgs { org, id, out },
            mode,
        } => {
            require_org(store, &org).await?;
            let org = mode.partition(&org);
            let mut rec = store.load_patient(&org, &id).await?;
            // A merged-away ID shows the surviving patient.
            while let Some(next) = rec.as_ref().and_then(|r| r.patient.merged_into.clone()) {
                rec = store.load_patient(&org, &next).await?;
            }
            let rec = rec.ok_or_else(|| format!("org {org:?} has no patient {id:?}"))?;
            print(out.json, &patient_json(&rec))
        }
        PatientCommand::OptOut(args) => set_opt_out(store, args, true).await,
        PatientCommand::OptIn(args) => set_opt_out(store, args, false).await,
    }
}

pub async fn messages<B: Backend>(backend: &B, cmd: MessagesCommand) -> CliResult {
    let store = backend.store();
    match cmd {
        MessagesCommand::List {
            org,
            status,
            mode,
            out,
        } => {
            require_org(store, &org).await?;
            let org = mode.partition(&org);
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(MessageStatus::parse(s).ok_or_else(|| {
                    format!("unknown status {s:?}; use accepted, processed, pending, failed, rejected or ignored")
                })?),
            };
            // Test mode: what each message would have done live.
            let mut effects: HashMap<String, Vec<Value>> = HashMap::new();
            if mode.mode == Mode::Test {
                for e in store.list_events(&org).await? {
                    effects
                        .entry(e.message_id.clone())
                        .or_default()
                        .push(json!({
                            "event": e.kind,
                            "patient_id": e.patient_id,
                            "case_id": e.case_id,
                            "appointment_id": e.appointment_id,
                        }));
                }
            }
            let list: Vec<Value> = store
                .list_messages(&org, status)
                .await?
                .iter()
                .map(|m| {
                    let mut v = json!({
                        "id": m.id,
                        "control_id": m.control_id,
                        "type": m.message_type,
                        "status": m.status,
                        "errors": m.errors,
                        "received_at": m.received_at,
                        "patient_id": m.patient_id,
                        "acknowledged": m.acknowledged,
                    });
                    if mode.mode == Mode::Test {
                        v["would"] = json!(effects.remove(&m.id).unwrap_or_default());
                    }
                    v
                })
                .collect();
            print(out.json, &list)
        }
        MessagesCommand::Replay {
            org,
            control_id,
            failed,
            mode,
            out,
        } => {
            require_org(store, &org).await?;
            let org = mode.partition(&org);
            let all = store.list_messages(&org, None).await?;
            let named: Vec<_> = all
                .into_iter()
                .filter(|m| match &control_id {
                    Some(c) => m.control_id.as_deref() == Some(c.as_str()),
                    None => failed && m.status == MessageStatus::Failed,
                })
                .collect();
            // A rejected message (unparseable, another account's, or a reused
            // control ID's different body) is never processed: no
            // configuration fixes it, and a reused ID's copy would overwrite
            // the message it reused the ID of.
            let (rejected, chosen): (Vec<_>, Vec<_>) = named
                .into_iter()
                .partition(|m| m.status == MessageStatus::Rejected);
            if let (Some(c), true) = (&control_id, chosen.is_empty()) {
                return Err(if rejected.is_empty() {
                    format!("org {org:?} has no message with control ID {c:?}")
                } else {
                    format!(
                        "the message with control ID {c:?} was rejected ({}); a rejected message cannot be replayed: send a corrected message with a new control ID",
                        rejected[0]
                            .errors
                            .first()
                            .map(|e| e.code.as_str())
                            .unwrap_or("rejected")
                    )
                }
                .into());
            }
            let n = backend.replay(&chosen).await?;
            // Process now, so the command works with or without a running `tendon serve`.
            backend.drain().await?;
            print(out.json, &json!({ "replayed": n }))
        }
    }
}
