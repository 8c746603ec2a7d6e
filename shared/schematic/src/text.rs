//! Text sizes without a renderer: how wide a line will be, and word wrapping
//! to a width. Widths are DejaVu Sans Bold's advance widths (the drawing asks
//! for DejaVu Sans, then Verdana, which is as wide), used for every weight,
//! so a label's box is never narrower than its text in the fonts it names;
//! narrower fallbacks only leave more room.
/// A font size and style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Font {
    pub size: i32,
    pub bold: bool,
    pub italic: bool,
}

impl Font {
    pub const fn regular(size: i32) -> Font {
        Font {
            size,
            bold: false,
            italic: false,
        }
    }

    pub const fn bold(size: i32) -> Font {
        Font {
            size,
            bold: true,
            italic: false,
        }
    }

    pub const fn italic(size: i32) -> Font {
        Font {
            size,
            bold: false,
            italic: true,
        }
    }

    /// The SVG attributes beyond the size.
    pub fn style_attrs(&self) -> &'static str {
        match (self.bold, self.italic) {
            (true, true) => r#" font-weight="bold" font-style="italic""#,
            (true, false) => r#" font-weight="bold""#,
            (false, true) => r#" font-style="italic""#,
            (false, false) => "",
        }
    }
}

/// Advance widths of DejaVu Sans Bold 2.37 for ASCII 32..=126, in
/// thousandths of an em (its `hmtx` table, scaled from 2048 units per em).
const BOLD_WIDTHS: [u16; 95] = [
    348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, 696, 696, 696,
    696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 580, 1000, 774, 762, 734, 830, 683,
    683, 821, 837, 372, 372, 775, 637, 995, 837, 850, 733, 850, 770, 720, 682, 812, 774, 1103, 771,
    724, 725, 457, 365, 457, 838, 500, 500, 675, 716, 593, 716, 678, 435, 716, 712, 343, 343, 665,
    343, 1042, 712, 687, 716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712, 365, 712, 838,
];

/// Any other character: wider than every Latin letter in the font (its
/// widest Latin-1 and Latin Extended-A glyph is 1.17 em) and than a CJK ideograph.
const OTHER_WIDTH: u32 = 1200;

fn char_width(c: char) -> u32 {
    match c as u32 {
        code @ 32..=126 => u32::from(BOLD_WIDTHS[(code - 32) as usize]),
        _ => OTHER_WIDTH,
    }
}

/// The width of `s` in `font`, rounded up, with 4 % to spare for hinting.
pub fn width(s: &str, font: Font) -> i32 {
    let milli: u64 = s.chars().map(|c| u64::from(char_width(c))).sum();
    let px = milli * font.size as u64 * 104 / 100_000;
    i32::try_from(px + 1).unwrap_or(i32::MAX)
}

/// The distance between baselines.
pub fn line_height(font: Font) -> i32 {
    font.size * 13 / 10 + 1
}

/// `s` broken into lines no wider than `max` in `font`, at spaces where it
/// can and inside a word where a word alone is too wide; at most `max_lines`,
/// the last one ending in "…" when text was left out. Whitespace (line
/// breaks included) counts as one space.
pub fn wrap(s: &str, max: i32, font: Font, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in s.split_whitespace() {
        let candidate = if current.is_empty() {
            word.to_owned()
        } else {
            format!("{current} {word}")
        };
        if width(&candidate, font) <= max {
            current = candidate;
            continue;
        }
        if !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        // A word wider than a line is cut where it must be.
        for c in word.chars() {
            let mut next = current.clone();
            next.push(c);
            if width(&next, font) > max && !current.is_empty() {
                lines.push(std::mem::take(&mut current));
                current.push(c);
            } else {
                current = next;
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            while !last.is_empty() && width(&format!("{last}…"), font) > max {
                last.pop();
            }
            let trimmed = last.trim_end().to_owned();
            *last = format!("{trimmed}…");
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_their_width_and_keep_every_word_when_there_is_room() {
        let f = Font::regular(12);
        let text = "Your program is waiting, {{ patient.first_name }}: three exercises today";
        let lines = wrap(text, 150, f, 10);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| width(l, f) <= 150), "{lines:?}");
        assert_eq!(lines.join(" "), text);
    }

    #[test]
    fn long_words_are_cut_and_overflow_ends_in_an_ellipsis() {
        let f = Font::bold(16);
        let lines = wrap(&"W".repeat(200), 200, f, 2);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with('…'));
        assert!(lines.iter().all(|l| width(l, f) <= 200), "{lines:?}");
        assert!(wrap("  \n ", 100, f, 3).is_empty());
    }

    #[test]
    fn widths_grow_with_size_and_boldness_never_shrinks_them() {
        assert!(width("Email", Font::regular(16)) > width("Email", Font::regular(12)));
        assert_eq!(
            width("Email", Font::bold(12)),
            width("Email", Font::regular(12))
        );
        assert!(width("日本", Font::regular(12)) >= 24);
    }
}
