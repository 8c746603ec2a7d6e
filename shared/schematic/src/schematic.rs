//! The schematic of an org's workflows: the picture a clinic owner receives.
//!
//! Workflows are grouped as the default ones are (engagement, then outcomes,
//! then the rest; with an EMR integration, without one, then for any source)
//! and ordered by where their trigger falls in a patient's journey. Each is a
//! card: title and status, the trigger and patient group in words, and a time
//! axis around the trigger with a column per distinct offset. Cards narrow
//! enough share a row. Columns sit on
//! a logarithmic scale, so an hour and a year fit one axis, and are pushed
//! apart until their widest label fits, so nothing overlaps; steps at the same
//! offset stack in their column.
use tendon_core::workflow::describe::{self, Integration, StepWords, WorkflowWords};
use tendon_core::workflow::{Category, Direction, TaskKind, Workflow, WorkflowStatus};

use crate::svg::{Line, Rect, Svg, escape};
use crate::text::{Font, line_height, width, wrap};

/// What the heading says about the org; the built-in defaults, drawn before
/// any org has them, have no account or time zone.
pub struct OrgHeading<'a> {
    pub id: Option<&'a str>,
    pub name: &'a str,
    pub timezone: Option<&'a str>,
}

impl OrgHeading<'static> {
    /// The heading of the built-in default workflows.
    pub const DEFAULTS: OrgHeading<'static> = OrgHeading {
        id: None,
        name: "Tendon's default workflows",
        timezone: None,
    };
}

impl OrgHeading<'_> {
    pub fn title(&self) -> String {
        match self.id {
            Some(_) => format!("Messaging workflows of {}", self.name),
            None => self.name.to_owned(),
        }
    }
}

const MARGIN: i32 = 24;
const MIN_WIDTH: i32 = 980;
/// Inside a card.
const PAD: i32 = 14;
const BOX_W: i32 = 216;
const BOX_PAD: i32 = 6;
/// The coloured band at a step box's left.
const BAND: i32 = 6;
const COLUMN_GAP: i32 = 20;
/// Between cards side by side and between rows of cards.
const CARD_GAP: i32 = 14;
/// The narrowest card: a title and its badge side by side.
const MIN_CARD: i32 = 300;
const STACK_GAP: i32 = 8;
/// Pixels per doubling of the hours from the trigger.
const LOG_SCALE: f64 = 60.0;

const INK: &str = "#0f172a";
const MUTED: &str = "#475569";
const FAINT: &str = "#6b7280";

/// Each task kind's colour (the legend says which is which).
pub fn kind_colour(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Email => "#2563eb",
        TaskKind::Text => "#0e7490",
        TaskKind::Survey => "#7c3aed",
        TaskKind::Education => "#b45309",
        TaskKind::Exercise => "#15803d",
        TaskKind::CarePlan => "#be185d",
    }
}

/// One step's box, before it is placed.
struct StepBox {
    step: StepWords,
    lines: Vec<Line>,
    h: i32,
}

/// One distinct offset on a workflow's axis.
struct Column {
    /// Hours from the trigger; "0 before" (the appointment's start) sorts just
    /// before the trigger itself.
    key: (i64, i8),
    tick: String,
    trigger: bool,
    boxes: Vec<StepBox>,
    w: i32,
    /// The centre, from the left of the card's inside.
    x: i32,
}

fn step_box(step: &StepWords) -> StepBox {
    let inner = BOX_W - BAND - 2 * BOX_PAD;
    let mut lines = vec![Line::new(step.kind_label, Font::bold(12), INK)];
    for l in wrap(&step.content, inner, Font::regular(12), 3) {
        lines.push(Line::new(l, Font::regular(12), INK));
    }
    if let Some(repeat) = &step.repeat {
        for l in wrap(&format!("↻ {repeat}"), inner, Font::italic(11), 6) {
            lines.push(Line::new(l, Font::italic(11), MUTED));
        }
    }
    let h = lines.iter().map(|l| line_height(l.font)).sum::<i32>() + 2 * BOX_PAD;
    StepBox {
        step: step.clone(),
        lines,
        h,
    }
}

fn tick_font(trigger: bool) -> Font {
    if trigger {
        Font::bold(12)
    } else {
        Font::regular(12)
    }
}

/// The columns of `w`'s axis, placed: ordered by offset, none overlapping.
fn columns(w: &WorkflowWords) -> Vec<Column> {
    let mut cols: Vec<Column> = vec![Column {
        key: (0, 0),
        tick: w.trigger_short.to_owned(),
        trigger: true,
        boxes: Vec::new(),
        w: 0,
        x: 0,
    }];
    for step in &w.steps {
        let key = if step.offset_hours == 0 && step.direction == Direction::Before {
            (0, -1)
        } else {
            (step.offset_hours, 0)
        };
        match cols.iter_mut().find(|c| c.key == key) {
            Some(col) => {
                // "24 hours after" and "1 day after" share a place; say both.
                if !col.trigger && !col.tick.split(" / ").any(|t| t == step.when) {
                    col.tick = format!("{} / {}", col.tick, step.when);
                }
                col.boxes.push(step_box(step));
            }
            None => cols.push(Column {
                key,
                tick: step.when.clone(),
                trigger: false,
                boxes: vec![step_box(step)],
                w: 0,
                x: 0,
            }),
        }
    }
    cols.sort_by_key(|c| c.key);
    for c in &mut cols {
        c.w = BOX_W.max(width(&c.tick, tick_font(c.trigger)));
    }
    // Log scale, then push right until each column clears the one before.
    let desired = |hours: i64| -> i32 {
        let x = LOG_SCALE * (1.0 + hours.unsigned_abs() as f64).log2();
        (x.round() as i32) * hours.signum() as i32
    };
    let mut prev: Option<(i32, i32)> = None;
    for c in &mut cols {
        let mut x = desired(c.key.0);
        if let Some((px, pw)) = prev {
            x = x.max(px + (pw + c.w + 1) / 2 + COLUMN_GAP);
        }
        c.x = x;
        prev = Some((x, c.w));
    }
    let left = cols.iter().map(|c| c.x - c.w / 2).min().unwrap_or(0);
    for c in &mut cols {
        c.x -= left;
    }
    cols
}

/// The width of the axis with its labels.
fn span(cols: &[Column]) -> i32 {
    cols.iter().map(|c| c.x + (c.w + 1) / 2).max().unwrap_or(0)
}

/// Draws the inside of `words`'s card at (`x`, `y`), `card_w` wide: the
/// drawing and the height its frame needs ([`frame`] draws it, once the
/// row's height is known).
fn card(x: i32, y: i32, card_w: i32, words: &WorkflowWords, cols: &[Column]) -> (Svg, i32) {
    let active = words.status == WorkflowStatus::Active;
    let mut inside = Svg::default();
    let wf_attr = format!(r#" data-workflow="{}""#, escape(&words.id));

    // The status badge, top right.
    let badge_font = Font::bold(11);
    let badge_text = if active { "Active" } else { "Inactive" };
    let badge = Rect {
        x: x + card_w - PAD - width(badge_text, badge_font) - 16,
        y: y + PAD,
        w: width(badge_text, badge_font) + 16,
        h: line_height(badge_font) + 6,
    };
    let (badge_fill, badge_ink) = if active {
        ("#dcfce7", "#166534")
    } else {
        ("#e5e7eb", "#374151")
    };
    inside.rect(badge, &format!(r#"rx="9" fill="{badge_fill}""#));
    inside.label(
        badge,
        (8, 3),
        &[Line::new(badge_text, badge_font, badge_ink)],
        &format!(r#" data-status="{}""#, words.status.as_str()),
    );

    let title_ink = if active { INK } else { FAINT };
    let mut cy = y + PAD;
    let title_max = card_w - 2 * PAD - badge.w - 12;
    cy += inside.text_block(
        x + PAD,
        cy,
        Line::wrapped(&words.title, title_max, Font::bold(16), 3, title_ink),
        &format!(r#" data-role="title"{wf_attr}"#),
    );
    cy = cy.max(badge.bottom()) + 4;
    let meta_max = card_w - 2 * PAD;
    let meta = Font::regular(13);
    let mut lines = Line::wrapped(&format!("When {}", words.trigger), meta_max, meta, 3, MUTED);
    lines.extend(Line::wrapped(
        &format!("For {}", words.patient_group),
        meta_max,
        meta,
        3,
        MUTED,
    ));
    if !active {
        lines.extend(Line::wrapped(
            "Inactive: it enrols no one and sends nothing until it is activated.",
            meta_max,
            Font::italic(13),
            2,
            FAINT,
        ));
    }
    lines.extend(Line::wrapped(
        &format!("ID {}", words.id),
        meta_max,
        Font::regular(11),
        1,
        FAINT,
    ));
    cy += inside.text_block(x + PAD, cy, lines, "");

    // The axis: tick labels above it, step boxes below.
    let left = x + PAD;
    let tick_y = cy + 10;
    for c in cols {
        let font = tick_font(c.trigger);
        let tw = width(&c.tick, font);
        let ink = if c.trigger { INK } else { MUTED };
        inside.label(
            Rect {
                x: left + c.x - tw / 2,
                y: tick_y,
                w: tw,
                h: line_height(font),
            },
            (0, 0),
            &[Line::new(c.tick.clone(), font, ink)],
            r#" data-tick="1""#,
        );
    }
    let axis_y = tick_y + line_height(Font::regular(12)) + 12;
    let first = cols.first().map_or(0, |c| c.x - c.w / 2);
    let last = cols.last().map_or(0, |c| c.x + c.w / 2);
    let axis_ink = if active { "#334155" } else { "#9ca3af" };
    inside.line(
        left + first,
        axis_y,
        left + last + 24,
        axis_y,
        &format!(r#"stroke="{axis_ink}" stroke-width="2""#),
    );
    let tip = left + last + 32;
    inside.raw(&format!(
        r#"<polygon points="{},{} {},{} {},{}" fill="{axis_ink}"/>"#,
        tip - 10,
        axis_y - 5,
        tip,
        axis_y,
        tip - 10,
        axis_y + 5
    ));
    let mut bottom = axis_y + 10;
    for c in cols {
        let cx = left + c.x;
        if c.trigger {
            inside.raw(&format!(
                r#"<polygon points="{},{} {},{} {},{} {},{}" fill="{INK}" data-trigger="1"/>"#,
                cx,
                axis_y - 8,
                cx + 8,
                axis_y,
                cx,
                axis_y + 8,
                cx - 8,
                axis_y
            ));
        } else {
            inside.line(
                cx,
                axis_y - 6,
                cx,
                axis_y + 6,
                &format!(r#"stroke="{axis_ink}" stroke-width="2""#),
            );
        }
        let mut by = axis_y + 16;
        for b in &c.boxes {
            let bx = Rect {
                x: cx - BOX_W / 2,
                y: by,
                w: BOX_W,
                h: b.h,
            };
            let colour = kind_colour(b.step.kind);
            let opacity = if active { "" } else { r#" opacity="0.55""# };
            inside.raw(&format!(r#"<g{opacity}>"#));
            inside.rect(bx, &format!(r##"rx="4" fill="#ffffff" stroke="{colour}""##));
            inside.rect(
                Rect {
                    x: bx.x,
                    y: bx.y,
                    w: BAND,
                    h: bx.h,
                },
                &format!(r#"rx="2" fill="{colour}""#),
            );
            inside.label(
                bx,
                (BAND + BOX_PAD, BOX_PAD),
                &b.lines,
                &format!(
                    r#"{wf_attr} data-step="{}" data-offset-hours="{}" data-kind="{}""#,
                    b.step.step,
                    b.step.offset_hours,
                    b.step.kind.as_str()
                ),
            );
            inside.raw("</g>");
            by += b.h + STACK_GAP;
        }
        bottom = bottom.max(by - STACK_GAP);
    }
    (inside, bottom + PAD - y)
}

/// A card's frame: white, or grey and dashed for an inactive workflow.
fn frame(svg: &mut Svg, r: Rect, status: WorkflowStatus) {
    if status == WorkflowStatus::Active {
        svg.rect(r, r##"rx="8" fill="#ffffff" stroke="#cbd5e1""##);
    } else {
        svg.rect(
            r,
            r##"rx="8" fill="#f3f4f6" stroke="#9ca3af" stroke-dasharray="6 4""##,
        );
    }
}

/// The narrowest a card may be: its axis and labels, and room for a title.
fn needed_width(cols: &[Column]) -> i32 {
    (span(cols) + 2 * PAD + 40).max(MIN_CARD)
}

/// `widths` (the cards of one section, in order) packed into rows: as many
/// side by side as fit `inner` when the row's width is shared equally.
fn rows(widths: &[i32], inner: i32) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    for end in 1..=widths.len() {
        let n = (end - start) as i32;
        let share = (inner - CARD_GAP * (n - 1)) / n;
        if end - start > 1 && widths[start..end].iter().any(|&w| w > share) {
            out.push(start..end - 1);
            start = end - 1;
        }
    }
    if start < widths.len() {
        out.push(start..widths.len());
    }
    out
}

fn section_title(category: Option<Category>, integration: Integration) -> String {
    let what = match category {
        Some(Category::Engagement) => "Engagement workflows",
        Some(Category::Outcomes) => "Outcomes workflows",
        None => "Other workflows",
    };
    format!("{what} · {}", integration.words())
}

/// The legend: one chip per task kind; returns the height used.
fn legend(svg: &mut Svg, x: i32, y: i32, max_w: i32) -> i32 {
    let font = Font::regular(12);
    let lh = line_height(font);
    let (mut cx, mut cy) = (x, y);
    for kind in TaskKind::ALL {
        let text = describe::kind_label(kind);
        let w = 18 + width(text, font);
        if cx + w > x + max_w {
            cx = x;
            cy += lh + 6;
        }
        svg.rect(
            Rect {
                x: cx,
                y: cy + 2,
                w: 12,
                h: lh - 4,
            },
            &format!(r#"rx="2" fill="{}""#, kind_colour(kind)),
        );
        svg.label(
            Rect {
                x: cx + 18,
                y: cy,
                w: w - 18,
                h: lh,
            },
            (0, 0),
            &[Line::new(text, font, INK)],
            "",
        );
        cx += w + 18;
    }
    cy + lh - y
}

/// The schematic of `workflows` as an SVG document.
pub fn schematic(org: &OrgHeading, workflows: &[Workflow]) -> String {
    let mut sorted: Vec<&Workflow> = workflows.iter().collect();
    sorted.sort_by_key(|w| {
        (
            w.category.map_or(2, |c| c as u8),
            describe::Integration::of(&w.patient_group),
            describe::journey_order(w.trigger.event),
            // Then by when the first step runs: the welcome before the survey a week on.
            w.steps
                .iter()
                .map(|s| describe::offset_hours(&s.schedule))
                .min(),
            w.id.clone(),
        )
    });
    let cards: Vec<(WorkflowWords, Vec<Column>)> = sorted
        .iter()
        .map(|w| {
            let words = describe::describe(w);
            let cols = columns(&words);
            (words, cols)
        })
        .collect();
    let width = cards
        .iter()
        .map(|(_, cols)| needed_width(cols) + 2 * MARGIN)
        .fold(MIN_WIDTH, i32::max);
    let inner = width - 2 * MARGIN;

    let mut svg = Svg::default();
    let mut y = MARGIN;
    y += svg.text_block(
        MARGIN,
        y,
        Line::wrapped(&org.title(), inner, Font::bold(22), 2, INK),
        "",
    );
    let active = workflows
        .iter()
        .filter(|w| w.status == WorkflowStatus::Active)
        .count();
    let mut summary = String::new();
    if let Some(id) = org.id {
        summary += &format!("Account {id} · ");
    }
    let clock = org.timezone.map_or(String::new(), |tz| format!(" ({tz})"));
    summary += &format!(
        "times on the clinic's clock{clock} · {} workflows, {active} active. Each card is a \
         workflow: its trigger (◆) and the steps before and after it.",
        workflows.len(),
    );
    y += 4 + svg.text_block(
        MARGIN,
        y + 4,
        Line::wrapped(&summary, inner, Font::regular(13), 3, MUTED),
        "",
    );
    y += 10 + legend(&mut svg, MARGIN, y + 10, inner);
    if cards.is_empty() {
        let none = format!(
            "No workflows yet. `tendon workflow install-defaults --org {}` installs the defaults.",
            org.id.unwrap_or("ORG")
        );
        y += 20
            + svg.text_block(
                MARGIN,
                y + 20,
                Line::wrapped(&none, inner, Font::regular(14), 3, INK),
                "",
            );
    }
    // Sections in order, each packed into rows of cards.
    let mut start = 0;
    while start < cards.len() {
        let key = (cards[start].0.category, cards[start].0.integration);
        let end = cards[start..]
            .iter()
            .position(|(w, _)| (w.category, w.integration) != key)
            .map_or(cards.len(), |n| start + n);
        y += 28;
        y += svg.text_block(
            MARGIN,
            y,
            Line::wrapped(&section_title(key.0, key.1), inner, Font::bold(18), 2, INK),
            r#" data-section="1""#,
        );
        y += 8;
        let section = &cards[start..end];
        let widths: Vec<i32> = section.iter().map(|(_, cols)| needed_width(cols)).collect();
        for row in rows(&widths, inner) {
            let n = row.len() as i32;
            let card_w = (inner - CARD_GAP * (n - 1)) / n;
            let drawn: Vec<(Svg, i32)> = section[row.clone()]
                .iter()
                .enumerate()
                .map(|(i, (words, cols))| {
                    let x = MARGIN + i as i32 * (card_w + CARD_GAP);
                    card(x, y, card_w, words, cols)
                })
                .collect();
            let row_h = drawn.iter().map(|(_, h)| *h).max().unwrap_or(0);
            for (i, ((inside, _), (words, _))) in drawn.into_iter().zip(&section[row]).enumerate() {
                let x = MARGIN + i as i32 * (card_w + CARD_GAP);
                frame(
                    &mut svg,
                    Rect {
                        x,
                        y,
                        w: card_w,
                        h: row_h,
                    },
                    words.status,
                );
                svg.append(inside);
            }
            y += row_h + CARD_GAP;
        }
        y -= CARD_GAP;
        start = end;
    }
    svg.finish(width, y + MARGIN, &org.title())
}
