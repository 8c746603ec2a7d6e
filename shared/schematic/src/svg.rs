//! A small SVG writer: integer coordinates, every text and attribute value
//! escaped, and text labels that declare the box they occupy
//! (`<g class="label" data-box="x y w h">`), so tests and browsers can check
//! that no two overlap.
use std::fmt::Write;

use crate::text::{Font, line_height, width, wrap};

/// A rectangle in SVG user units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl Rect {
    pub fn right(&self) -> i32 {
        self.x + self.w
    }

    pub fn bottom(&self) -> i32 {
        self.y + self.h
    }

    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }
}

/// `s` as XML text or attribute content. Characters XML 1.0 forbids
/// (control characters a clinic's title might carry) become U+FFFD, so a
/// hostile string can neither end an element nor make the file unreadable.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// One line of a label: its text and font.
pub struct Line {
    pub text: String,
    pub font: Font,
    pub fill: &'static str,
}

impl Line {
    pub fn new(text: impl Into<String>, font: Font, fill: &'static str) -> Line {
        Line {
            text: text.into(),
            font,
            fill,
        }
    }

    /// `text` wrapped to `max` wide in at most `max_lines` lines (see [`wrap`]).
    pub fn wrapped(
        text: &str,
        max: i32,
        font: Font,
        max_lines: usize,
        fill: &'static str,
    ) -> Vec<Line> {
        wrap(text, max, font, max_lines)
            .into_iter()
            .map(|l| Line::new(l, font, fill))
            .collect()
    }
}

/// The drawing under construction; [`Svg::finish`] adds the root element
/// once the size is known.
#[derive(Default)]
pub struct Svg {
    body: String,
}

impl Svg {
    /// Appends markup as it is (shapes whose values are all numbers or constants).
    pub fn raw(&mut self, markup: &str) {
        self.body.push_str(markup);
        self.body.push('\n');
    }

    pub fn rect(&mut self, r: Rect, style: &str) {
        self.raw(&format!(
            r#"<rect x="{}" y="{}" width="{}" height="{}" {style}/>"#,
            r.x, r.y, r.w, r.h
        ));
    }

    pub fn line(&mut self, x1: i32, y1: i32, x2: i32, y2: i32, style: &str) {
        self.raw(&format!(
            r#"<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" {style}/>"#
        ));
    }

    /// Opens a group with `attrs` (already escaped) until [`Svg::close`].
    pub fn open(&mut self, attrs: &str) {
        self.raw(&format!("<g {attrs}>"));
    }

    pub fn close(&mut self) {
        self.raw("</g>");
    }

    /// Appends another drawing's markup (drawn after, so on top).
    pub fn append(&mut self, other: Svg) {
        self.body.push_str(&other.body);
    }

    /// A text label claiming `bx`, its lines starting `inset` (x, y) inside
    /// it; the caller sizes `bx` to hold them. `extra` adds attributes
    /// (escaped by the caller).
    pub fn label(&mut self, bx: Rect, inset: (i32, i32), lines: &[Line], extra: &str) {
        let mut g = format!(
            r#"<g class="label" data-box="{} {} {} {}"{extra}>"#,
            bx.x, bx.y, bx.w, bx.h
        );
        let mut y = bx.y + inset.1;
        for line in lines {
            let lh = line_height(line.font);
            // The baseline sits about 0.78 of a line height down: DejaVu's
            // ascent is 0.93 em and lines are 1.3 em.
            let base = y + lh * 3 / 4 + 1;
            let _ = write!(
                g,
                r#"<text x="{}" y="{base}" font-size="{}"{} fill="{}">{}</text>"#,
                bx.x + inset.0,
                line.font.size,
                line.font.style_attrs(),
                line.fill,
                escape(&line.text)
            );
            y += lh;
        }
        g.push_str("</g>");
        self.raw(&g);
    }

    /// A label of `lines` at (`x`, `y`) claiming exactly their size; returns
    /// its height.
    pub fn text_block(&mut self, x: i32, y: i32, lines: Vec<Line>, extra: &str) -> i32 {
        if lines.is_empty() {
            return 0;
        }
        let w = lines
            .iter()
            .map(|l| width(&l.text, l.font))
            .max()
            .unwrap_or(0);
        let h = lines.iter().map(|l| line_height(l.font)).sum();
        self.label(Rect { x, y, w, h }, (0, 0), &lines, extra);
        h
    }

    /// The finished document, `width` by `height`, titled `title`.
    pub fn finish(self, width: i32, height: i32, title: &str) -> String {
        format!(
            concat!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" "#,
                r#"font-family="'DejaVu Sans', Verdana, 'Bitstream Vera Sans', sans-serif" role="img">"#,
                "\n<title>{t}</title>\n",
                r##"<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>"##,
                "\n{body}</svg>\n"
            ),
            w = width,
            h = height,
            t = escape(title),
            body = self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_forbidden_characters() {
        assert_eq!(
            escape(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("a\u{0}b\u{1b}c\nd"), "a\u{FFFD}b\u{FFFD}c d");
    }

    #[test]
    fn touching_boxes_do_not_overlap() {
        let a = Rect {
            x: 0,
            y: 0,
            w: 10,
            h: 10,
        };
        assert!(!a.overlaps(&Rect {
            x: 10,
            y: 0,
            w: 5,
            h: 5
        }));
        assert!(a.overlaps(&Rect {
            x: 9,
            y: 9,
            w: 5,
            h: 5
        }));
    }
}
