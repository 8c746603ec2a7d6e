//! Structure tests on the generated SVG, read back as XML: every workflow and
//! step is drawn, steps sit in offset order, no two labels' boxes overlap,
//! every line of text fits the box it claims, hostile strings stay text, and
//! the same input gives the same bytes.
use std::collections::BTreeMap;

use jiff::Timestamp;
use tendon_core::workflow::simulate::TimelineEntry;
use tendon_core::workflow::{Workflow, defaults};
use tendon_schematic::svg::Rect;
use tendon_schematic::text::{Font, width};
use tendon_schematic::{Format, OrgHeading, PatientHeading, schematic, timeline};

const ORG: OrgHeading<'static> = OrgHeading {
    id: Some("ACME01"),
    name: "Acme PT",
    timezone: Some("America/Los_Angeles"),
};

/// A label as drawn: its claimed box, attributes and lines.
#[derive(Debug)]
struct Label {
    bx: Rect,
    attrs: BTreeMap<String, String>,
    lines: Vec<String>,
}

fn parse_box(s: &str) -> Rect {
    let n: Vec<i32> = s.split(' ').map(|v| v.parse().unwrap()).collect();
    Rect {
        x: n[0],
        y: n[1],
        w: n[2],
        h: n[3],
    }
}

/// Parses `svg` (it must be well-formed XML) and checks what holds for every
/// drawing: labels within the page, lines within their labels, no overlaps.
fn labels(svg: &str) -> Vec<Label> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let page_w: i32 = root.attribute("width").unwrap().parse().unwrap();
    let page_h: i32 = root.attribute("height").unwrap().parse().unwrap();
    assert!(
        doc.descendants()
            .all(|n| !matches!(n.tag_name().name(), "script" | "image" | "foreignObject")),
        "nothing but shapes and text"
    );
    let mut out = Vec::new();
    for g in doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("label"))
    {
        let bx = parse_box(g.attribute("data-box").unwrap());
        assert!(
            bx.x >= 0 && bx.y >= 0 && bx.right() <= page_w && bx.bottom() <= page_h,
            "{bx:?} on the page"
        );
        let mut lines = Vec::new();
        for t in g.children().filter(|n| n.tag_name().name() == "text") {
            let text = t.text().unwrap_or("").to_owned();
            let size: i32 = t.attribute("font-size").unwrap().parse().unwrap();
            let font = Font {
                size,
                bold: t.attribute("font-weight") == Some("bold"),
                italic: t.attribute("font-style") == Some("italic"),
            };
            let x: i32 = t.attribute("x").unwrap().parse().unwrap();
            let y: i32 = t.attribute("y").unwrap().parse().unwrap();
            assert!(
                x >= bx.x && x + width(&text, font) <= bx.right(),
                "{text:?} ({} wide at {x}) fits {bx:?}",
                width(&text, font)
            );
            assert!(
                y - size >= bx.y - 1 && y <= bx.bottom(),
                "{text:?} baseline {y} within {bx:?}"
            );
            lines.push(text);
        }
        let attrs = g
            .attributes()
            .map(|a| (a.name().to_owned(), a.value().to_owned()))
            .collect();
        out.push(Label { bx, attrs, lines });
    }
    for (i, a) in out.iter().enumerate() {
        for b in &out[i + 1..] {
            assert!(!a.bx.overlaps(&b.bx), "labels overlap:\n{a:?}\n{b:?}");
        }
    }
    out
}

fn steps_of<'a>(labels: &'a [Label], workflow: &str) -> Vec<&'a Label> {
    labels
        .iter()
        .filter(|l| {
            l.attrs.get("data-workflow").map(String::as_str) == Some(workflow)
                && l.attrs.contains_key("data-step")
        })
        .collect()
}

fn attr<T: std::str::FromStr>(l: &Label, name: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    l.attrs[name].parse().unwrap()
}

fn centre(l: &Label) -> i32 {
    l.bx.x + l.bx.w / 2
}

fn one_step_with_title(title: &str) -> Workflow {
    wf(&format!(
        r#"{{"id": "long", "title": "{title}", "status": "active", "trigger": {{"event": "patient_created"}},
            "steps": [{{"schedule": {{"direction": "after", "amount": 0, "unit": "hours"}}, "task": {{"kind": "text", "body": "hi"}}}}]}}"#
    ))
}

fn wf(json: &str) -> Workflow {
    Workflow::parse(json).unwrap()
}

#[test]
fn the_default_workflows_are_all_drawn_with_every_step_in_offset_order() {
    let all = defaults::all();
    let svg = schematic(&ORG, &all);
    let labels = labels(&svg);
    for w in &all {
        let steps = steps_of(&labels, &w.id);
        assert_eq!(steps.len(), w.steps.len(), "{}: every step drawn", w.id);
        let title: Vec<_> = labels
            .iter()
            .filter(|l| {
                l.attrs.get("data-role").map(String::as_str) == Some("title")
                    && l.attrs["data-workflow"] == w.id
            })
            .collect();
        assert_eq!(title.len(), 1, "{}: one title", w.id);
        assert_eq!(title[0].lines.join(" "), w.title);
        let mut sorted = steps.clone();
        sorted.sort_by_key(|l| {
            (
                attr::<i64>(l, "data-offset-hours"),
                attr::<usize>(l, "data-step"),
            )
        });
        for pair in sorted.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (ha, hb) = (
                attr::<i64>(a, "data-offset-hours"),
                attr::<i64>(b, "data-offset-hours"),
            );
            if ha == hb {
                assert_eq!(centre(a), centre(b), "{}: same offset, same column", w.id);
                assert!(a.bx.bottom() <= b.bx.y, "{}: stacked in step order", w.id);
            } else {
                assert!(centre(a) < centre(b), "{}: {ha} h left of {hb} h", w.id);
            }
        }
    }
    // Sections as the defaults group them, in order.
    let sections: Vec<String> = labels
        .iter()
        .filter(|l| l.attrs.contains_key("data-section"))
        .map(|l| l.lines.join(" "))
        .collect();
    assert_eq!(
        sections,
        [
            "Engagement workflows · with an EMR integration",
            "Engagement workflows · without an EMR integration",
            "Outcomes workflows · with an EMR integration",
            "Outcomes workflows · without an EMR integration",
        ]
    );
    // Narrow cards share a row: the two Cliniko outcomes workflows sit side by side.
    let title_box = |id: &str| {
        labels
            .iter()
            .find(|l| {
                l.attrs.get("data-role").map(String::as_str) == Some("title")
                    && l.attrs["data-workflow"] == id
            })
            .unwrap()
            .bx
    };
    let (start, discharge) = (
        title_box("mips-pro-at-start-cliniko"),
        title_box("mips-pro-at-discharge-cliniko"),
    );
    assert!(
        start.y == discharge.y && start.right() < discharge.x,
        "{start:?} {discharge:?}"
    );
    // A wide one has its row to itself.
    let (home, welcome) = (title_box("home-program-emr"), title_box("welcome-emr"));
    assert!(home.y > welcome.y);
    // A before step sits left of its trigger: the reminder's tick reads "1 day before".
    let reminder = steps_of(&labels, "appointment-reminder-emr");
    assert!(
        reminder
            .iter()
            .all(|l| attr::<i64>(l, "data-offset-hours") == -24)
    );
}

#[test]
fn a_dense_schedule_of_hours_and_months_stays_readable() {
    let mut steps = Vec::new();
    for (dir, n, unit) in [
        ("before", 2, "hours"),
        ("before", 1, "days"),
        ("before", 1, "weeks"),
        ("after", 0, "hours"),
        ("after", 1, "hours"),
        ("after", 3, "hours"),
        ("after", 24, "hours"),
        ("after", 1, "days"),
        ("after", 1, "days"),
        ("after", 2, "weeks"),
        ("after", 1, "months"),
        ("after", 6, "months"),
        ("after", 12, "months"),
    ] {
        steps.push(format!(
            r#"{{"schedule": {{"direction": "{dir}", "amount": {n}, "unit": "{unit}"}}, "task": {{"kind": "text", "body": "Step {n} {unit} {dir}: a reminder long enough to wrap over several lines of its box"}}}}"#
        ));
    }
    let dense = wf(&format!(
        r#"{{"id": "dense", "title": "{}", "status": "active", "trigger": {{"event": "appointment_scheduled"}}, "steps": [{}]}}"#,
        "A very long workflow title that keeps going "
            .repeat(6)
            .trim(),
        steps.join(",")
    ));
    let svg = schematic(&ORG, &[dense]);
    let all = labels(&svg);
    let drawn = steps_of(&all, "dense");
    assert_eq!(drawn.len(), 13);
    let mut columns: Vec<(i64, i32)> = drawn
        .iter()
        .map(|l| (attr(l, "data-offset-hours"), centre(l)))
        .collect();
    columns.sort();
    columns.dedup();
    // 24 hours and 1 day share a column; every other offset has its own.
    assert_eq!(columns.len(), 11, "{columns:?}");
    for pair in columns.windows(2) {
        // Neither squashed (hours stay a box apart) nor lost off the page.
        assert!(pair[1].1 - pair[0].1 >= 216, "{columns:?}");
    }
    let page_w: i32 = svg
        .split("width=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(page_w < 4000, "{page_w} px wide");
    // The 1-month and 12-month columns: a year is further than a month.
    let x = |h: i64| columns.iter().find(|c| c.0 == h).unwrap().1;
    assert!(x(365 * 24) - x(31 * 24) > x(31 * 24) - x(14 * 24));
    // On a page of the usual width, the long title wraps instead of running
    // off its card, and keeps every word.
    let long = "A very long workflow title that keeps going ".repeat(4);
    let one = wf(&format!(
        r#"{{"id": "long", "title": "{long}", "status": "active", "trigger": {{"event": "patient_created"}},
            "steps": [{{"schedule": {{"direction": "after", "amount": 1, "unit": "days"}}, "task": {{"kind": "text", "body": "hi"}}}}]}}"#
    ));
    let drawn = labels(&schematic(&ORG, &[one]));
    let title = drawn
        .iter()
        .find(|l| l.attrs.get("data-role").map(String::as_str) == Some("title"))
        .unwrap();
    assert!(title.lines.len() > 1, "{:?}", title.lines);
    assert_eq!(title.lines.join(" "), long.trim());
    // Two such narrow cards share a row; each title stays inside its own
    // card (cut with an ellipsis after three lines) and clear of the other's.
    let mut pair = vec![];
    for id in ["long-a", "long-b"] {
        let mut w = one_step_with_title(&long.repeat(3));
        w.id = id.to_owned();
        pair.push(w);
    }
    let drawn = labels(&schematic(&ORG, &pair));
    let titles: Vec<&Label> = drawn
        .iter()
        .filter(|l| l.attrs.get("data-role").map(String::as_str) == Some("title"))
        .collect();
    assert_eq!(titles.len(), 2);
    assert_eq!(titles[0].bx.y, titles[1].bx.y, "side by side");
    assert!(
        titles
            .iter()
            .all(|t| t.lines.len() == 3 && t.lines[2].ends_with('…'))
    );
}

#[test]
fn hostile_strings_stay_text() {
    let hostile = "</text><script>alert(1)</script> & \"quotes\" 'too' \u{1}\u{1b}[31m";
    let w = wf(&format!(
        r#"{{"id": "evil", "title": {t}, "status": "inactive", "trigger": {{"event": "patient_created"}},
            "patient_group": {{"locations": ["<b>12</b>"]}},
            "steps": [{{"schedule": {{"direction": "after", "amount": 1, "unit": "days"}},
                       "task": {{"kind": "email", "subject": {t}, "body": "x"}}}}]}}"#,
        t = serde_json_string(hostile)
    ));
    let org = OrgHeading {
        id: Some("A&B"),
        name: "<Acme> & \"Co\"",
        timezone: Some("UTC"),
    };
    let svg = schematic(&org, &[w]);
    assert!(!svg.contains("<script") && !svg.contains("<b>"));
    let labels = labels(&svg);
    let title = labels
        .iter()
        .find(|l| l.attrs.get("data-role").map(String::as_str) == Some("title"))
        .unwrap();
    assert_eq!(
        title.lines.join(" "),
        "</text><script>alert(1)</script> & \"quotes\" 'too' \u{FFFD}\u{FFFD}[31m",
        "shown as the clinic typed it, control characters replaced"
    );
    assert!(
        labels
            .iter()
            .any(|l| l.lines.join(" ").contains("at location <b>12</b>"))
    );
    // Inactive is visible: the badge says so.
    assert!(
        labels.iter().any(
            |l| l.attrs.get("data-status").map(String::as_str) == Some("inactive")
                && l.lines == ["Inactive"]
        )
    );
    let html = Format::Html.render("<Acme>", svg);
    assert!(html.contains("<title>&lt;Acme&gt;</title>") && !html.contains("<script"));
}

fn serde_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn drawings_are_deterministic_whatever_the_input_order() {
    let mut all = defaults::all();
    let first = schematic(&ORG, &all);
    all.reverse();
    assert_eq!(schematic(&ORG, &all), first);
    let entries = sample_timeline();
    let heading = patient_heading();
    assert_eq!(timeline(&heading, &entries), timeline(&heading, &entries));
}

#[test]
fn an_org_without_workflows_gets_a_page_that_says_how_to_add_them() {
    let svg = schematic(&ORG, &[]);
    let labels = labels(&svg);
    assert!(labels.iter().any(|l| {
        l.lines
            .join(" ")
            .contains("tendon workflow install-defaults --org ACME01")
    }));
}

fn patient_heading() -> PatientHeading<'static> {
    PatientHeading {
        org_id: "ACME01",
        org_name: "Acme PT",
        timezone: "America/Los_Angeles",
        patient_id: "P555",
        now: "2026-12-07T18:00:00Z".parse::<Timestamp>().unwrap(),
    }
}

fn entry(at: &str, status: &'static str, note: Option<&str>, title: &str) -> TimelineEntry {
    TimelineEntry {
        at: at.to_owned(),
        zone: "America/Los_Angeles".to_owned(),
        workflow_id: "w".to_owned(),
        title: title.to_owned(),
        step: 0,
        occurrence: 0,
        kind: "email",
        status,
        note: note.map(str::to_owned),
        would_skip: None,
        would_wait_until: None,
        preview: Some("Welcome to Acme PT, Ana".to_owned()),
    }
}

fn sample_timeline() -> Vec<TimelineEntry> {
    vec![
        entry("2026-12-06T09:00:00-08:00", "sent", None, "Welcome email"),
        entry(
            "2026-12-06T09:00:00-08:00",
            "skipped",
            Some("no_mobile"),
            "Reminder <text>",
        ),
        TimelineEntry {
            would_skip: Some("workflow_inactive"),
            would_wait_until: Some("2026-12-09T08:00:00-08:00".to_owned()),
            ..entry("2026-12-08T09:00:00-08:00", "scheduled", None, "Reminder")
        },
        entry(
            "2026-12-22T09:00:00-08:00",
            "projected",
            None,
            "Home program",
        ),
        entry(
            "2027-01-05T09:00:00-08:00",
            "failed",
            Some("smtp refused"),
            "Survey",
        ),
    ]
}

#[test]
fn a_patient_timeline_runs_down_the_page_in_time_order_with_reasons() {
    let svg = timeline(&patient_heading(), &sample_timeline());
    let labels = labels(&svg);
    let rows: Vec<&Label> = labels
        .iter()
        .filter(|l| l.attrs.contains_key("data-entry"))
        .collect();
    assert_eq!(rows.len(), 5);
    for pair in rows.windows(2) {
        assert!(
            pair[0].bx.bottom() <= pair[1].bx.y,
            "later sends lower down"
        );
        assert!(pair[0].attrs["data-at"] <= pair[1].attrs["data-at"]);
    }
    let skipped = rows
        .iter()
        .find(|l| l.attrs["data-status"] == "skipped")
        .unwrap();
    assert!(
        skipped.lines.iter().any(|l| l == "Skipped: no_mobile"),
        "{:?}",
        skipped.lines
    );
    assert!(skipped.lines[0].contains("Reminder <text>"));
    // What the dispatcher would do with a send still to come, said ahead.
    let ahead = rows[2].lines.join(" ");
    assert!(
        ahead.contains("as things stand it would be skipped: workflow_inactive")
            && ahead.contains("it would wait until Wed 9 Dec 08:00"),
        "{ahead}"
    );
    // "Now" (10:00 in Los Angeles) falls between the sent and the scheduled ones.
    let now = labels
        .iter()
        .find(|l| l.attrs.contains_key("data-now"))
        .unwrap();
    assert_eq!(now.lines, ["Now · Mon 7 Dec 2026 10:00"]);
    assert!(rows[1].bx.bottom() <= now.bx.y && now.bx.bottom() <= rows[2].bx.y);
    // One heading per local day.
    let days: Vec<String> = labels
        .iter()
        .filter(|l| l.attrs.contains_key("data-day"))
        .map(|l| l.lines.join(" "))
        .collect();
    assert_eq!(
        days,
        [
            "Sunday 6 December 2026",
            "Tuesday 8 December 2026",
            "Tuesday 22 December 2026",
            "Tuesday 5 January 2027"
        ]
    );
    let empty = timeline(&patient_heading(), &[]);
    assert!(labels_text(&empty).contains("No workflow sends for this patient"));
}

fn labels_text(svg: &str) -> String {
    labels(svg)
        .iter()
        .map(|l| l.lines.join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The README's picture is the defaults' schematic as the code draws it now
/// (regenerate: `cargo run -q -p tendon-cli -- workflow schematic --defaults
/// --out docs/images/default-workflows.svg`).
#[test]
fn the_readme_picture_is_current() {
    let committed = include_str!("../../../docs/images/default-workflows.svg");
    let now = schematic(&OrgHeading::DEFAULTS, &defaults::all());
    assert!(
        committed == now,
        "docs/images/default-workflows.svg is stale: run `cargo run -q -p tendon-cli -- workflow \
         schematic --defaults --out docs/images/default-workflows.svg`"
    );
}
