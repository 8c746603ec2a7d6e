//! Rendering a task's templates (minijinja). Values come from HL7 messages,
//! so the HTML part is auto-escaped, a subject never contains a line break,
//! and a template runs on limited fuel.
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// Template steps a render may take (a runaway loop fails instead of hanging).
const FUEL: u64 = 50_000;

/// A rendered message: the subject (emails), the text part and the HTML part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
}

fn env(html: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    // A missing value renders empty (a patient without a mobile, say), but
    // cannot be used as an object.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_auto_escape_callback(move |_| {
        if html {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

fn render_one(source: &str, ctx: &impl Serialize, html: bool) -> Result<String, String> {
    let env = env(html);
    let template = env
        .template_from_str(source)
        .map_err(|e| format!("template error: {}", e.kind()))?;
    // The error's kind only: its detail may quote a rendered (patient) value.
    template
        .render(minijinja::value::Serde(ctx))
        .map_err(|e| format!("template error: {}", e.kind()))
}

/// Whether a template compiles.
pub fn check(source: &str) -> Result<(), String> {
    env(false)
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| format!("template does not compile: {e}"))
}

/// A subject line: rendered, then every run of control characters (CR, LF,
/// tab...) becomes one space, so no value can add a header.
pub fn subject(source: &str, ctx: &impl Serialize) -> Result<String, String> {
    let raw = render_one(source, ctx, false)?;
    let mut out = String::with_capacity(raw.len());
    let mut space = false;
    for c in raw.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    Ok(out.trim().to_owned())
}

/// The HTML part: the body rendered with every value HTML-escaped, its lines
/// as paragraphs, and the footer (already HTML) after it.
pub fn html(source: &str, ctx: &impl Serialize, footer_html: &str) -> Result<String, String> {
    let body = render_one(source, ctx, true)?;
    let mut out = String::from("<!doctype html>\n<html><body>\n");
    for para in body.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        out.push_str("<p>");
        out.push_str(&para.replace('\n', "<br>\n"));
        out.push_str("</p>\n");
    }
    out.push_str(footer_html);
    out.push_str("\n</body></html>\n");
    Ok(out)
}

/// The text part (or a text message): rendered without escaping; control
/// characters other than line breaks are dropped.
pub fn text(source: &str, ctx: &impl Serialize) -> Result<String, String> {
    let raw = render_one(source, ctx, false)?;
    Ok(raw
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect::<String>()
        .trim()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn html_escapes_values_and_subjects_have_no_line_breaks() {
        let ctx =
            json!({"patient": {"first_name": "<script>alert(1)</script>\r\nBcc: x@evil.test"}});
        let s = subject("Welcome, {{ patient.first_name }}", &ctx).unwrap();
        assert!(!s.contains('\r') && !s.contains('\n'), "{s:?}");
        assert_eq!(s, "Welcome, <script>alert(1)</script> Bcc: x@evil.test");
        let h = html("Hi {{ patient.first_name }}", &ctx, "").unwrap();
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(!h.contains("<script>"), "{h}");
    }

    #[test]
    fn missing_values_render_empty_and_bad_templates_are_errors() {
        assert_eq!(
            text("Hi {{ patient.nickname }}!", &json!({})).unwrap(),
            "Hi !"
        );
        assert!(check("{% if %}").is_err());
        assert!(check("Hi {{ patient.first_name }}").is_ok());
        let looping =
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
        assert!(text(looping, &json!({})).is_err(), "fuel runs out");
    }
}
