//! Pictures of workflows, for people: the schematic of an org's workflows
//! (the picture a clinic owner receives) and a patient's timeline.
//!
//! Both are SVG built from core's data (`tendon_core::workflow::describe` for
//! the words and axis offsets, `simulate::timeline` for a patient), so the
//! schedule maths exists once. The output is self-contained (no scripts, no
//! fonts or images to fetch), escapes every clinic-provided string, and is
//! deterministic: the same input gives the same bytes. [`page`] wraps a
//! drawing in an HTML page. Every text label declares the box it occupies
//! (`<g class="label" data-box="x y w h">`); the layouts keep those boxes
//! apart, and the tests check it.
mod schematic;
pub mod svg;
pub mod text;
mod timeline;

pub use schematic::{OrgHeading, kind_colour, schematic};
pub use timeline::{PatientHeading, timeline};

/// The file formats the drawings come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Html,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "svg" => Some(Format::Svg),
            "html" => Some(Format::Html),
            _ => None,
        }
    }

    /// `svg` (an SVG document) as this format.
    pub fn render(self, title: &str, svg: String) -> String {
        match self {
            Format::Svg => svg,
            Format::Html => page(title, &svg),
        }
    }
}

/// `svg` as a self-contained HTML page titled `title`.
pub fn page(title: &str, svg: &str) -> String {
    format!(
        concat!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<title>{}</title>\n",
            "<style>html,body{{margin:0;padding:0;background:#ffffff}}svg{{display:block}}</style>\n",
            "</head>\n<body>\n{}</body>\n</html>\n"
        ),
        svg::escape(title),
        svg
    )
}
