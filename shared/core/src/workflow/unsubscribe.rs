//! The unsubscribe link of workflow emails (docs/interface.md §4),
//! `GET|POST /unsubscribe/{org}/{patient}/{token}`, answered alike by
//! `tendon serve` and the ingest function.
//!
//! A `GET` only shows a page with one button; a `POST` unsubscribes. Mail
//! scanners and link previews follow the links in a message with `GET`, so
//! a `GET` that acted would unsubscribe patients who never clicked. The
//! button is a form that posts to the same URL, and a mail client's one-click
//! unsubscribe (RFC 8058: the email's `List-Unsubscribe-Post:
//! List-Unsubscribe=One-Click`, a `POST` with that body) acts the same way.
//!
//! No answer says whether the patient exists: the token is checked first
//! (only the holder of the secret can make one), and a `GET` with a valid
//! token shows the page without reading the patient.
use std::future::Future;

use super::dispatch::unsubscribe_token_ok;
use super::opt_out::set_opt_out;
use super::steps::Channel;
use crate::ports::{PatientStore, StoreResult};
use crate::reply::HttpReply;

/// What a request to the link asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `GET` (or `HEAD`): show the confirmation page, change nothing.
    Show,
    /// `POST`: unsubscribe, whatever the body (RFC 8058's
    /// `List-Unsubscribe=One-Click`, or the page's form).
    Unsubscribe,
}

impl Request {
    /// The request an HTTP method makes: only `POST` unsubscribes.
    pub fn from_method(method: &str) -> Request {
        if method.eq_ignore_ascii_case("POST") {
            Request::Unsubscribe
        } else {
            Request::Show
        }
    }
}

/// What the link answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200: the page with the one button (a `GET` of a valid link).
    Confirm,
    /// 200: the patient is unsubscribed from workflow email.
    Unsubscribed,
    /// 404: not a link Tendon made (or its patient is gone).
    NotValid,
    /// 503: storage failed; nothing changed.
    Unavailable,
}

/// The confirmation page. The form has no `action`, so it posts to the
/// page's own URL, whatever the deployment's base URL; the hidden field
/// makes its body RFC 8058's.
const CONFIRM_PAGE: &str = "<!doctype html>\n\
<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>Unsubscribe</title></head>\n\
<body><p>Stop getting these emails from your clinic?</p>\n\
<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
<button type=\"submit\">Unsubscribe</button></form></body></html>\n";

impl Answer {
    /// The HTTP answer: an HTML page, with no patient data.
    pub fn reply(self) -> HttpReply {
        match self {
            Answer::Confirm => HttpReply::html(200, CONFIRM_PAGE),
            Answer::Unsubscribed => HttpReply::page(200, "You are unsubscribed from these emails."),
            Answer::NotValid => HttpReply::page(404, "This unsubscribe link is not valid."),
            Answer::Unavailable => HttpReply::page(503, "Please try again later."),
        }
    }
}

/// Answers one request to the link of (org, patient ID, token). `secret` is
/// the backend's read of the secret the links are signed with; it is awaited
/// for every request, so a `GET` can say that a link is not valid.
pub async fn follow<S: PatientStore>(
    store: &S,
    secret: impl Future<Output = StoreResult<String>>,
    request: Request,
    org: &str,
    patient_id: &str,
    token: &str,
) -> Answer {
    let secret = match secret.await {
        Ok(secret) => secret,
        Err(e) => {
            tracing::error!(error = %e, "unsubscribe: cannot read the secret");
            return Answer::Unavailable;
        }
    };
    if !unsubscribe_token_ok(&secret, org, patient_id, token) {
        return Answer::NotValid;
    }
    if request == Request::Show {
        return Answer::Confirm;
    }
    match set_opt_out(store, org, patient_id, Channel::Email, true).await {
        Ok(true) => {
            tracing::info!(org = %org, patient_id = %patient_id, "unsubscribed");
            Answer::Unsubscribed
        }
        Ok(false) => Answer::NotValid,
        Err(e) => {
            tracing::error!(error = %e, "unsubscribe failed");
            Answer::Unavailable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_post_unsubscribes() {
        assert_eq!(Request::from_method("POST"), Request::Unsubscribe);
        assert_eq!(Request::from_method("post"), Request::Unsubscribe);
        for show in ["GET", "HEAD", "OPTIONS", ""] {
            assert_eq!(Request::from_method(show), Request::Show, "{show}");
        }
    }

    #[test]
    fn the_confirmation_page_is_one_form_posting_to_the_same_url() {
        let reply = Answer::Confirm.reply();
        assert_eq!(reply.status, 200);
        let page = String::from_utf8(reply.body).unwrap();
        assert_eq!(page.matches("<form").count(), 1, "{page}");
        assert!(page.contains("<form method=\"post\">"), "no action: {page}");
        assert!(
            page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""),
            "{page}"
        );
        assert_eq!(page.matches("<button").count(), 1, "{page}");
        assert!(!page.contains("You are unsubscribed"), "{page}");
        assert_eq!(Answer::Unsubscribed.reply().status, 200);
        assert_eq!(Answer::NotValid.reply().status, 404);
        assert_eq!(Answer::Unavailable.reply().status, 503);
    }
}
