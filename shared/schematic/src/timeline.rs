//! A patient's timeline: what the patient has received and will receive, from
//! `tendon_core::workflow::simulate::timeline`, top to bottom on the clinic's
//! clock, one row per send, with a day heading whenever the date changes and
//! a line at "now". Skipped and failed sends say why.
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use tendon_core::workflow::TaskKind;
use tendon_core::workflow::describe::kind_label;
use tendon_core::workflow::simulate::TimelineEntry;

use crate::svg::{Line, Rect, Svg, escape};
use crate::text::{Font, line_height, width};

/// What the heading says, and the instant drawn as "now".
pub struct PatientHeading<'a> {
    pub org_id: &'a str,
    pub org_name: &'a str,
    pub timezone: &'a str,
    pub patient_id: &'a str,
    pub now: Timestamp,
}

const WIDTH: i32 = 920;
const MARGIN: i32 = 24;
/// The right edge of the times, the rail, and the left of the rows.
const TIME_RIGHT: i32 = 170;
const RAIL: i32 = 190;
const ROW_LEFT: i32 = 210;
const ROW_PAD: i32 = 8;

/// The frame of a send that, as things stand, would be skipped.
const WOULD_SKIP: &str = "#d97706";
const INK: &str = "#0f172a";
const MUTED: &str = "#475569";

/// A status's colour, and its words in the legend.
fn status_style(status: &str) -> (&'static str, &'static str) {
    match status {
        "sent" => ("#15803d", "Sent"),
        "scheduled" => ("#2563eb", "Scheduled"),
        "projected" => ("#60a5fa", "Projected repeat"),
        "skipped" => ("#9ca3af", "Skipped"),
        "failed" => ("#dc2626", "Failed"),
        _ => ("#6b7280", "Other"),
    }
}

const STATUSES: [&str; 5] = ["sent", "scheduled", "projected", "skipped", "failed"];

fn status_words(e: &TimelineEntry) -> String {
    let note = e.note.as_deref().filter(|n| !n.trim().is_empty());
    let mut words = match (e.status, note) {
        ("projected", _) => "Projected repeat: scheduled once the one before it is sent".to_owned(),
        (status, Some(note)) => format!("{}: {note}", status_style(status).1),
        (status, None) => status_style(status).1.to_owned(),
    };
    if e.occurrence > 0 {
        words += &format!(" · repeat {}", e.occurrence);
    }
    if let Some(reason) = e.would_skip {
        words += &format!(" · as things stand it would be skipped: {reason}");
    }
    if let Some(until) = e.would_wait_until.as_deref().and_then(local) {
        words += &format!(
            " · it would wait until {}",
            until.strftime("%a %-d %b %H:%M")
        );
    }
    words
}

fn local(at: &str) -> Option<DateTime> {
    at.get(..19)?.parse().ok()
}

fn marker(svg: &mut Svg, cx: i32, cy: i32, status: &str) {
    let (colour, _) = status_style(status);
    if status == "projected" {
        svg.raw(&format!(
            r##"<circle cx="{cx}" cy="{cy}" r="6" fill="#ffffff" stroke="{colour}" stroke-width="2" stroke-dasharray="3 2"/>"##
        ));
    } else {
        svg.raw(&format!(
            r#"<circle cx="{cx}" cy="{cy}" r="6" fill="{colour}"/>"#
        ));
    }
}

/// The timeline of `entries` (oldest first, as `simulate::timeline` gives
/// them) as an SVG document.
pub fn timeline(h: &PatientHeading, entries: &[TimelineEntry]) -> String {
    let inner = WIDTH - 2 * MARGIN;
    let zone = TimeZone::get(h.timezone).unwrap_or(TimeZone::UTC);
    let now_local = h
        .now
        .to_zoned(zone)
        .strftime("%a %-d %b %Y %H:%M")
        .to_string();
    let mut svg = Svg::default();
    let mut y = MARGIN;
    let title = format!("Workflow timeline of patient {}", h.patient_id);
    y += svg.text_block(
        MARGIN,
        y,
        Line::wrapped(&title, inner, Font::bold(20), 2, INK),
        "",
    );
    let mut zones: Vec<&str> = entries.iter().map(|e| e.zone.as_str()).collect();
    zones.push(h.timezone);
    zones.sort_unstable();
    zones.dedup();
    let summary = format!(
        "{} ({}) · times on the clinic's clock ({}) · now is {now_local} · {} sends",
        h.org_name,
        h.org_id,
        zones.join(", "),
        entries.len()
    );
    y += 4 + svg.text_block(
        MARGIN,
        y + 4,
        Line::wrapped(&summary, inner, Font::regular(13), 3, MUTED),
        "",
    );

    // Legend.
    let font = Font::regular(12);
    let mut x = MARGIN;
    y += 10;
    for status in STATUSES {
        let text = status_style(status).1;
        marker(&mut svg, x + 6, y + line_height(font) / 2, status);
        let w = width(text, font);
        svg.label(
            Rect {
                x: x + 16,
                y,
                w,
                h: line_height(font),
            },
            (0, 0),
            &[Line::new(text, font, INK)],
            "",
        );
        x += 16 + w + 20;
    }
    // The amber frame of a send the dispatcher would skip as things stand.
    let text = "Would be skipped as things stand";
    let w = width(text, font);
    svg.rect(
        Rect {
            x,
            y: y + 1,
            w: 22,
            h: line_height(font) - 2,
        },
        &format!(r##"rx="3" fill="#ffffff" stroke="{WOULD_SKIP}" stroke-dasharray="4 2""##),
    );
    svg.label(
        Rect {
            x: x + 28,
            y,
            w,
            h: line_height(font),
        },
        (0, 0),
        &[Line::new(text, font, INK)],
        "",
    );
    y += line_height(font) + 16;

    if entries.is_empty() {
        let none = "No workflow sends for this patient: no active workflow's trigger has fired for them yet.";
        y += svg.text_block(
            MARGIN,
            y,
            Line::wrapped(none, inner, Font::regular(14), 3, INK),
            "",
        );
        return svg.finish(WIDTH, y + MARGIN, &title);
    }

    let row_w = WIDTH - MARGIN - ROW_LEFT;
    let text_w = row_w - 2 * ROW_PAD;
    let rail_top = y;
    let mut day: Option<jiff::civil::Date> = None;
    let mut now_drawn = false;
    let mut rows = Svg::default();
    for (i, e) in entries.iter().enumerate() {
        let when = e.at.parse::<Timestamp>().ok();
        if !now_drawn && when.is_some_and(|t| t > h.now) {
            now_drawn = true;
            y += now_line(&mut rows, y, &now_local);
        }
        let civil = local(&e.at);
        if let Some(dt) = civil
            && day != Some(dt.date())
        {
            day = Some(dt.date());
            let heading = dt.strftime("%A %-d %B %Y").to_string();
            y += 6 + rows.text_block(
                MARGIN,
                y + 6,
                Line::wrapped(
                    &heading,
                    TIME_RIGHT - MARGIN + row_w,
                    Font::bold(14),
                    1,
                    INK,
                ),
                r#" data-day="1""#,
            );
            y += 6;
        }
        let time = civil.map_or_else(|| e.at.clone(), |dt| dt.strftime("%H:%M").to_string());
        let tf = Font::regular(13);
        let tw = width(&time, tf);
        rows.label(
            Rect {
                x: TIME_RIGHT - tw,
                y: y + ROW_PAD,
                w: tw,
                h: line_height(tf),
            },
            (0, 0),
            &[Line::new(time, tf, MUTED)],
            "",
        );
        let kind = TaskKind::parse(e.kind).map_or(e.kind, kind_label);
        let mut text = Line::wrapped(
            &format!("{kind} · {}", e.title),
            text_w,
            Font::bold(13),
            2,
            INK,
        );
        if let Some(preview) = e.preview.as_deref().filter(|p| !p.trim().is_empty()) {
            text.extend(Line::wrapped(preview, text_w, Font::regular(12), 2, INK));
        }
        text.extend(Line::wrapped(
            &status_words(e),
            text_w,
            Font::italic(12),
            3,
            MUTED,
        ));
        let hgt = text.iter().map(|l| line_height(l.font)).sum::<i32>() + 2 * ROW_PAD;
        let bx = Rect {
            x: ROW_LEFT,
            y,
            w: row_w,
            h: hgt,
        };
        let (mut colour, _) = status_style(e.status);
        if e.would_skip.is_some() {
            colour = WOULD_SKIP;
        }
        let fill = if matches!(e.status, "skipped" | "failed") {
            "#f9fafb"
        } else {
            "#ffffff"
        };
        let dash = if e.status == "projected" || e.would_skip.is_some() {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        rows.rect(
            bx,
            &format!(r#"rx="6" fill="{fill}" stroke="{colour}"{dash}"#),
        );
        rows.label(
            bx,
            (ROW_PAD, ROW_PAD),
            &text,
            &format!(
                r#" data-entry="{i}" data-status="{}" data-at="{}" data-workflow="{}""#,
                escape(e.status),
                escape(&e.at),
                escape(&e.workflow_id)
            ),
        );
        marker(&mut rows, RAIL, y + ROW_PAD + line_height(tf) / 2, e.status);
        y += hgt + 10;
    }
    if !now_drawn {
        y += now_line(&mut rows, y, &now_local);
    }
    svg.line(
        RAIL,
        rail_top,
        RAIL,
        y - 10,
        r##"stroke="#cbd5e1" stroke-width="2""##,
    );
    svg.append(rows);
    svg.finish(WIDTH, y + MARGIN, &title)
}

/// The "now" line across the rows; returns the height used.
fn now_line(svg: &mut Svg, y: i32, now_local: &str) -> i32 {
    let font = Font::bold(12);
    let text = format!("Now · {now_local}");
    let w = width(&text, font);
    let lh = line_height(font);
    svg.label(
        Rect {
            x: ROW_LEFT,
            y: y + 2,
            w,
            h: lh,
        },
        (0, 0),
        &[Line::new(text, font, "#b91c1c")],
        r#" data-now="1""#,
    );
    let ly = y + 2 + lh + 4;
    svg.line(
        MARGIN,
        ly,
        WIDTH - MARGIN,
        ly,
        r##"stroke="#b91c1c" stroke-width="1.5" stroke-dasharray="6 4""##,
    );
    lh + 14
}
