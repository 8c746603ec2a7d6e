//! The one HTTP answer type: what a core handler (ingest, `/health`, an
//! unsubscribe link, Cliniko's "Open in") answers, independent of the server
//! that sends it. `tendon-http` turns it into an axum response, on
//! `tendon serve` and in the Lambda functions alike. A leaf: it imports
//! nothing of the crate.
use serde_json::json;

/// An HTTP answer: status, content type, an optional `Location` and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: &'static str,
    /// A redirect's target.
    pub location: Option<String>,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// A JSON error `{"error","message"}`.
    pub fn json_error(status: u16, error: &str, message: &str) -> HttpReply {
        HttpReply::json(
            status,
            &json!({ "error": error, "message": message }).to_string(),
        )
    }

    /// A JSON body.
    pub fn json(status: u16, body: &str) -> HttpReply {
        HttpReply {
            status,
            content_type: "application/json",
            location: None,
            body: body.as_bytes().to_vec(),
        }
    }

    /// An HL7 ACK: always `200`, the ACK code says the rest.
    pub fn hl7(body: Vec<u8>) -> HttpReply {
        HttpReply {
            status: 200,
            content_type: "application/hl7-v2",
            location: None,
            body,
        }
    }

    /// A whole HTML page.
    pub fn html(status: u16, page: &str) -> HttpReply {
        HttpReply {
            status,
            content_type: "text/html; charset=utf-8",
            location: None,
            body: page.as_bytes().to_vec(),
        }
    }

    /// A one-paragraph HTML page of `text` (which holds no patient data).
    pub fn page(status: u16, text: &str) -> HttpReply {
        HttpReply::html(
            status,
            &format!("<!doctype html><meta charset=\"utf-8\"><p>{text}</p>\n"),
        )
    }

    /// `503` after a storage failure: nothing was acknowledged, and a retry is
    /// safe because every handler is idempotent.
    pub fn unavailable() -> HttpReply {
        HttpReply::json_error(503, "unavailable", "storage is unavailable; retry")
    }

    /// This answer, redirecting to `url`.
    pub fn with_location(mut self, url: String) -> HttpReply {
        self.location = Some(url);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_is_the_documented_json() {
        let reply = HttpReply::unavailable();
        assert_eq!(reply.status, 503);
        assert_eq!(
            String::from_utf8(reply.body).unwrap(),
            r#"{"error":"unavailable","message":"storage is unavailable; retry"}"#
        );
    }

    #[test]
    fn page_is_one_paragraph_of_html() {
        let reply = HttpReply::page(404, "Not here.");
        assert_eq!(reply.content_type, "text/html; charset=utf-8");
        assert_eq!(
            reply.body,
            b"<!doctype html><meta charset=\"utf-8\"><p>Not here.</p>\n"
        );
    }
}
