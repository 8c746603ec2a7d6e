//! [`AwsMailer`]: the [`Mailer`] port on SES v1 (email, `SendRawEmail`) and
//! SNS (texts, `Publish` to an E.164 number).
//!
//! An email is built here as MIME: `multipart/alternative` with the text and
//! (if any) the HTML body, both quoted-printable UTF-8, and a
//! `List-Unsubscribe: <url>` header (with RFC 8058 `List-Unsubscribe-Post`)
//! with the URL that ends the text body
//! (after `Unsubscribe: `, as dispatch renders it). Header values never carry
//! a CR or LF: the subject's control characters become spaces, a subject that
//! is not plain ASCII is RFC 2047-encoded (UTF-8, B), and an address with
//! anything but printable ASCII (or with `<>,;:"()[]\`) is refused before
//! anything is sent.
//!
//! Emails are paced to the account's SES `MaxSendRate` (read once with
//! `GetSendQuota`, or `TENDON_SES_MAX_SEND_RATE`), and a throttled email is
//! retried here a few times with backoff before the core defers its step.
//!
//! Errors map to [`SendError`]: throttling (`Throttling`,
//! `MaxSendingRateExceeded`, SNS `Throttled`) → `Throttled`; a rejected
//! message or an invalid parameter → `Rejected(code)`; anything else →
//! `Unavailable(code)`. Errors and logs carry the provider's error code only,
//! never the address or the body.
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use aws_sdk_ses::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ses::primitives::Blob;
use aws_sdk_ses::types::RawMessage;
use aws_sdk_sns::types::MessageAttributeValue;
use tendon_core::ports::{Mailer, SendError};
use tendon_core::workflow::feedback::{ORG_TAG, PATIENT_TAG, tag_value};
use tendon_core::workflow::steps::{Channel, Delivery};

use crate::pace::{FALLBACK_SEND_RATE, SendPacer, rate_from_env};
use crate::{BootstrapEnv, LazyClient};

/// Environment variable with the sender (`addr@domain` or `Name <addr@domain>`,
/// ASCII), an SES verified identity.
pub const ENV_SES_SENDER: &str = "TENDON_SES_SENDER";
/// Environment variable with the SES configuration set every email is sent with.
pub const ENV_SES_CONFIGURATION_SET: &str = "TENDON_SES_CONFIGURATION_SET";

/// The longest subject kept, in UTF-8 bytes: encoded, it still fits one
/// header line (998 characters).
const MAX_SUBJECT_BYTES: usize = 500;
/// Bytes of subject per RFC 2047 encoded word (60 base64 characters, so a
/// word is at most 72 characters).
const WORD_BYTES: usize = 45;
/// Retries of a throttled email inside one send, before the core's backoff.
const THROTTLE_RETRIES: u32 = 3;

/// Sends deliveries through SES and SNS. Cloning is cheap.
///
/// Each client is built on its first use, not with the mailer. Most of
/// dispatch's passes send nothing, and only text steps need SNS, while
/// building a client (its endpoint rules, partition table and regexes) was a
/// sixth of dispatch's init (docs/benchmarks.md, "Lambda init time").
#[derive(Clone, Debug)]
pub struct AwsMailer {
    ses: Arc<LazyClient<aws_sdk_ses::Client>>,
    sns: Arc<LazyClient<aws_sdk_sns::Client>>,
    /// The `From` of every email.
    pub sender: String,
    pub configuration_set: Option<String>,
    /// Emails per second; `None` reads SES's `MaxSendRate` on the first email.
    pub max_send_rate: Option<f64>,
    /// The pacer, made on the first email and shared by clones.
    pace: Arc<OnceLock<SendPacer>>,
}

impl AwsMailer {
    /// A mailer whose clients will be built from `sdk`.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        sender: impl Into<String>,
        configuration_set: Option<String>,
    ) -> AwsMailer {
        AwsMailer {
            ses: Arc::new(LazyClient::new(sdk)),
            sns: Arc::new(LazyClient::new(sdk)),
            sender: sender.into(),
            configuration_set: configuration_set.filter(|c| !c.trim().is_empty()),
            max_send_rate: None,
            pace: Arc::default(),
        }
    }

    fn ses(&self) -> &aws_sdk_ses::Client {
        self.ses.get(aws_sdk_ses::Client::new)
    }

    fn sns(&self) -> &aws_sdk_sns::Client {
        self.sns.get(aws_sdk_sns::Client::new)
    }

    /// Sends at most `rate` emails per second instead of SES's `MaxSendRate`.
    pub fn with_max_send_rate(mut self, rate: f64) -> AwsMailer {
        self.max_send_rate = Some(rate);
        self.pace = Arc::default();
        self
    }

    /// The emails per second this mailer keeps to.
    pub async fn send_rate(&self) -> f64 {
        self.pacer().await.rate()
    }

    async fn pacer(&self) -> &SendPacer {
        if let Some(pacer) = self.pace.get() {
            return pacer;
        }
        let rate = match self.max_send_rate {
            Some(rate) => rate,
            None => match self.ses().get_send_quota().send().await {
                Ok(quota) if quota.max_send_rate > 0.0 => quota.max_send_rate,
                Ok(_) => FALLBACK_SEND_RATE,
                Err(e) => {
                    tracing::warn!(error = %send_error(&e), rate = FALLBACK_SEND_RATE, "SES send quota unknown");
                    FALLBACK_SEND_RATE
                }
            },
        };
        self.pace.get_or_init(|| SendPacer::per_second(rate))
    }

    /// Clients from an SDK config, with the sender and configuration set `env` names.
    pub fn from_config(sdk: &aws_config::SdkConfig, env: &BootstrapEnv) -> AwsMailer {
        AwsMailer::new(
            sdk,
            env.ses_sender.clone(),
            Some(env.ses_configuration_set.clone()),
        )
    }

    /// The AWS settings from the environment (aws-config's default chain),
    /// the sender from `TENDON_SES_SENDER` (required) and the configuration
    /// set from `TENDON_SES_CONFIGURATION_SET` (optional), and the rate from
    /// `TENDON_SES_MAX_SEND_RATE` (optional; SES's quota otherwise).
    pub async fn from_env() -> Result<AwsMailer, String> {
        let sender = std::env::var(ENV_SES_SENDER)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("the environment variable {ENV_SES_SENDER} is not set"))?;
        if !valid_sender(&sender) {
            return Err(format!(
                "{ENV_SES_SENDER} must be printable ASCII: addr@domain or Name <addr@domain>"
            ));
        }
        let configuration_set = std::env::var(ENV_SES_CONFIGURATION_SET).ok();
        let rate = rate_from_env()?;
        let sdk = crate::sdk::config().await;
        let mailer = AwsMailer::new(&sdk, sender.trim(), configuration_set);
        Ok(match rate {
            Some(rate) => mailer.with_max_send_rate(rate),
            None => mailer,
        })
    }

    async fn send_email(&self, delivery: &Delivery) -> Result<String, SendError> {
        if !valid_sender(&self.sender) {
            return Err(SendError::Unavailable("invalid_sender".into()));
        }
        if !plain_address(&delivery.to) {
            return Err(SendError::Rejected("invalid_address".into()));
        }
        let mime = build_mime(&self.sender, delivery, jiff::Timestamp::now());
        let raw = RawMessage::builder()
            .data(Blob::new(mime.into_bytes()))
            .build()
            .map_err(|_| SendError::Unavailable("construction_failure".into()))?;
        let pacer = self.pacer().await;
        // The bounce and complaint events name the org and patient by these
        // (tendon_core::workflow::feedback).
        let tags = [
            (ORG_TAG, tag_value(&delivery.org)),
            (PATIENT_TAG, tag_value(&delivery.patient_id)),
        ]
        .into_iter()
        .map(|(name, value)| {
            aws_sdk_ses::types::MessageTag::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|_| SendError::Rejected("invalid_tag".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
        let mut retries = 0;
        loop {
            pacer.wait_turn().await;
            let sent = self
                .ses()
                .send_raw_email()
                .source(&self.sender)
                .destinations(&delivery.to)
                .raw_message(raw.clone())
                .set_tags(Some(tags.clone()))
                .set_configuration_set_name(self.configuration_set.clone())
                .send()
                .await
                .map_err(|e| send_error(&e));
            match sent {
                Err(SendError::Throttled) if retries < THROTTLE_RETRIES => {
                    retries += 1;
                    tokio::time::sleep(pacer.throttle_backoff(retries)).await;
                }
                sent => return sent.map(|s| s.message_id),
            }
        }
    }

    async fn send_text(&self, delivery: &Delivery) -> Result<String, SendError> {
        if !e164(&delivery.to) {
            return Err(SendError::Rejected("invalid_number".into()));
        }
        let transactional = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("Transactional")
            .build()
            .map_err(|_| SendError::Unavailable("construction_failure".into()))?;
        let sent = self
            .sns()
            .publish()
            .phone_number(&delivery.to)
            .message(&delivery.body)
            .message_attributes("AWS.SNS.SMS.SMSType", transactional)
            .send()
            .await
            .map_err(|e| send_error(&e))?;
        Ok(sent.message_id.unwrap_or_default())
    }
}

impl Mailer for AwsMailer {
    async fn send(&self, delivery: &Delivery) -> Result<String, SendError> {
        let sent = match delivery.channel {
            Channel::Email => self.send_email(delivery).await,
            Channel::Text => self.send_text(delivery).await,
        };
        if let Err(e) = &sent {
            // The delivery ID and the error code only: never the address or body.
            tracing::warn!(delivery_id = %delivery.id, channel = delivery.channel.as_str(), error = %e, "send failed");
        }
        sent
    }
}

/// An SDK error as a [`SendError`], by its code (never its message).
fn send_error<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> SendError {
    match err {
        SdkError::ServiceError(s) => classify(s.err().code().unwrap_or("unknown")),
        SdkError::TimeoutError(_) => SendError::Unavailable("timeout".into()),
        SdkError::DispatchFailure(_) => SendError::Unavailable("dispatch_failure".into()),
        SdkError::ResponseError(_) => SendError::Unavailable("response_error".into()),
        SdkError::ConstructionFailure(_) => SendError::Unavailable("construction_failure".into()),
        _ => SendError::Unavailable("unknown".into()),
    }
}

/// SES's and SNS's error codes.
fn classify(code: &str) -> SendError {
    match code {
        "Throttling"
        | "ThrottlingException"
        | "MaxSendingRateExceeded"
        | "Throttled"
        | "ThrottledException"
        | "TooManyRequestsException" => SendError::Throttled,
        "MessageRejected"
        | "InvalidParameterValue"
        | "InvalidParameter"
        | "InvalidParameterException" => SendError::Rejected(code.to_owned()),
        _ => SendError::Unavailable(code.to_owned()),
    }
}

/// A bare address: printable ASCII without the characters that would make
/// it a list, a display name or a comment, with one `@` inside.
fn plain_address(a: &str) -> bool {
    let bytes = a.as_bytes();
    (3..=254).contains(&a.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_graphic() && !b"<>,;:\"()[]\\".contains(b))
        && a.bytes().filter(|b| *b == b'@').count() == 1
        && !a.starts_with('@')
        && !a.ends_with('@')
}

/// The configured sender: printable ASCII (spaces allowed), nothing that
/// could end the header.
fn valid_sender(sender: &str) -> bool {
    let sender = sender.trim();
    !sender.is_empty()
        && sender.contains('@')
        && sender.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// `+` and 7 to 15 digits, the first not 0.
fn e164(n: &str) -> bool {
    let Some(digits) = n.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// The unsubscribe URL at the end of a text body (`Unsubscribe: <url>`), if
/// it is a plain http(s) URL.
fn unsubscribe_url(text: &str) -> Option<&str> {
    let at = text.rfind("Unsubscribe: ")?;
    let url = text[at + "Unsubscribe: ".len()..].lines().next()?.trim();
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>\"".contains(&b));
    ok.then_some(url)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The subject as a header value on one line: control characters (CR and LF
/// among them) become spaces, at most [`MAX_SUBJECT_BYTES`] are kept, and
/// anything but plain ASCII is RFC 2047-encoded in words of whole characters.
fn encode_subject(subject: &str) -> String {
    let mut clean = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if clean.len() + c.len_utf8() > MAX_SUBJECT_BYTES {
            break;
        }
        clean.push(c);
    }
    let clean = clean.trim();
    if clean.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) && !clean.contains("=?") {
        return clean.to_owned();
    }
    let mut words = Vec::new();
    let mut word = String::new();
    for c in clean.chars() {
        if word.len() + c.len_utf8() > WORD_BYTES {
            words.push(std::mem::take(&mut word));
        }
        word.push(c);
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .iter()
        .map(|w| format!("=?UTF-8?B?{}?=", base64(w.as_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quoted-printable (RFC 2045) with CRLF line ends and lines of at most 76
/// characters. Its output never contains `=_`, which starts the boundary.
fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let line = line.strip_suffix('\r').unwrap_or(line).as_bytes();
        let mut col = 0;
        for (j, &b) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let literal = match b {
                b'=' => false,
                b' ' | b'\t' => !last,
                33..=126 => true,
                _ => false,
            };
            let width = if literal { 1 } else { 3 };
            if col + width > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            if literal {
                out.push(b as char);
            } else {
                let _ = write!(out, "={b:02X}");
            }
            col += width;
        }
    }
    out
}

fn part(out: &mut String, boundary: &str, content_type: &str, body: &str) {
    let _ = write!(
        out,
        "--{boundary}\r\nContent-Type: {content_type}; charset=UTF-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
        quoted_printable(body)
    );
}

/// The raw email of a delivery (the address is checked by the caller).
fn build_mime(sender: &str, delivery: &Delivery, date: jiff::Timestamp) -> String {
    let mut out = String::new();
    let _ = write!(out, "From: {}\r\nTo: {}\r\n", sender.trim(), delivery.to);
    if let Some(subject) = &delivery.subject {
        let _ = write!(out, "Subject: {}\r\n", encode_subject(subject));
    }
    if let Ok(date) = jiff::fmt::rfc2822::to_string(&date.to_zoned(jiff::tz::TimeZone::UTC)) {
        let _ = write!(out, "Date: {date}\r\n");
    }
    out.push_str("MIME-Version: 1.0\r\n");
    if let Some(url) = unsubscribe_url(&delivery.body) {
        // RFC 8058 one-click: the mail client POSTs to the link (the route
        // takes POST as well as GET); large mailbox providers require it.
        let _ = write!(
            out,
            "List-Unsubscribe: <{url}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        );
    }
    let tag: String = delivery
        .id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect();
    let boundary = format!("=_tendon_{tag}");
    match &delivery.html {
        Some(html) => {
            let _ = write!(
                out,
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
            );
            part(&mut out, &boundary, "text/plain", &delivery.body);
            part(&mut out, &boundary, "text/html", html);
            let _ = write!(out, "--{boundary}--\r\n");
        }
        None => {
            let _ = write!(
                out,
                "Content-Type: text/plain; charset=UTF-8\r\n\
                 Content-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
                quoted_printable(&delivery.body)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
