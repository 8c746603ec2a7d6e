//! The message: one pass that finds the segments (any line break followed by
//! a segment ID ends one; a BOM and stray MLLP bytes are dropped), then
//! segments, fields and the MSH header read on demand.
use crate::error::snippet;
use crate::value::nth;
use crate::{Charset, Delimiters, Level, ParseError, Value};

const BOM: &[u8] = b"\xEF\xBB\xBF";
/// MLLP start block (0x0B) and end block (0x1C) bytes that gateways leave behind.
pub const MLLP_START: u8 = 0x0B;
pub const MLLP_END: u8 = 0x1C;

/// How the first segment of the message ends, as received (a message may mix
/// them; see `segment_ranges` for how segments are found).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Terminator {
    Cr,
    CrLf,
    /// LF: the first line break is an LF.
    Lf,
}

#[derive(Clone, Copy, Debug)]
struct Span {
    id: [u8; 3],
    start: usize,
    end: usize,
}

/// A parsed HL7 v2 message: segment boundaries over the borrowed input.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    body: &'a [u8],
    delims: Delimiters,
    charset: Charset,
    terminator: Terminator,
    segments: Vec<Span>,
    /// Whether a line break stands inside a segment, as text.
    text_breaks: bool,
}

/// One segment, with fields split on access.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    raw: &'a [u8],
    delims: Delimiters,
    charset: Charset,
}

/// The MSH fields an acknowledgement needs, raw as received. It can be read from
/// a message that does not parse as a whole ([`Header::sniff`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub delimiters: Delimiters,
    pub sending_application: &'a [u8],
    pub sending_facility: &'a [u8],
    pub receiving_application: &'a [u8],
    pub receiving_facility: &'a [u8],
    pub message_type: &'a [u8],
    pub control_id: &'a [u8],
    pub processing_id: &'a [u8],
    pub version: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses one message. Accepts CR, LF or CRLF segment ends, also mixed, a UTF-8
    /// BOM, stray MLLP bytes at either end, blank lines between segments and a
    /// missing final terminator.
    pub fn parse(input: &'a [u8]) -> Result<Message<'a>, ParseError> {
        let (offset, body) = strip_framing(input);
        let delims = parse_msh_prefix(body, offset)?;
        let terminator = detect_terminator(body);
        let mut segments = Vec::with_capacity(16);
        let mut text_breaks = false;
        for (start, end, text_break) in segment_ranges(body, delims.field) {
            text_breaks |= text_break;
            let raw = &body[start..end];
            let id_ok = raw.len() >= 3
                && raw[..3]
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                && (raw.len() == 3 || raw[3] == delims.field);
            if !id_ok {
                return Err(ParseError::BadSegmentId {
                    index: segments.len() + 1,
                    offset: offset + start,
                    found: snippet(raw),
                });
            }
            segments.push(Span {
                id: [raw[0], raw[1], raw[2]],
                start,
                end,
            });
        }
        let msh = Segment {
            raw: &body[segments[0].start..segments[0].end],
            delims,
            charset: Charset::Utf8,
        };
        let declared = msh
            .field(18)
            .repetition(1)
            .component(1)
            .raw()
            .filter(|r| !r.is_empty());
        let charset = Charset::detect(declared, body);
        Ok(Message {
            body,
            delims,
            charset,
            terminator,
            segments,
            text_breaks,
        })
    }

    pub fn delimiters(&self) -> Delimiters {
        self.delims
    }

    pub fn charset(&self) -> Charset {
        self.charset
    }

    pub fn terminator(&self) -> Terminator {
        self.terminator
    }

    /// Whether a line break stands inside a segment, as text (one not
    /// followed by a segment ID): found while the segments are, so a reader
    /// that must report such breaks need not look for them again.
    pub fn has_line_breaks_in_text(&self) -> bool {
        self.text_breaks
    }

    /// The message without BOM and MLLP framing.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    pub fn segments(&self) -> impl Iterator<Item = Segment<'a>> + '_ {
        self.segments.iter().map(|s| self.seg(s))
    }

    /// Every segment with this ID, in order.
    pub fn segments_named<'s>(&'s self, id: &'s str) -> impl Iterator<Item = Segment<'a>> + 's {
        let id = id.as_bytes();
        self.segments
            .iter()
            .filter(move |s| s.id == id)
            .map(|s| self.seg(s))
    }

    /// The first segment with this ID.
    pub fn segment(&self, id: &str) -> Option<Segment<'a>> {
        self.segments_named(id).next()
    }

    pub fn msh(&self) -> Segment<'a> {
        self.seg(&self.segments[0])
    }

    pub fn header(&self) -> Header<'a> {
        Header::from_msh(self.msh())
    }

    fn seg(&self, span: &Span) -> Segment<'a> {
        Segment {
            raw: &self.body[span.start..span.end],
            delims: self.delims,
            charset: self.charset,
        }
    }
}

impl<'a> Segment<'a> {
    /// The three-character segment ID.
    pub fn id(&self) -> &'a str {
        std::str::from_utf8(&self.raw[..3]).unwrap_or("???")
    }

    /// The segment's bytes as received, without its terminator.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    fn is_msh(&self) -> bool {
        self.raw.starts_with(b"MSH")
    }

    /// Field `n`, counted from 1. In MSH, field 1 is the field separator and
    /// field 2 the encoding characters, both returned literally.
    pub fn field(&self, n: usize) -> Value<'a> {
        let content = self.raw.get(4..);
        let (raw, level) = match (self.is_msh(), n) {
            (_, 0) => (None, Level::Field),
            (true, 1) => (self.raw.get(3..4), Level::Literal),
            (true, 2) => (
                content.and_then(|c| nth(c, self.delims.field, 1)),
                Level::Literal,
            ),
            (true, n) => (
                content.and_then(|c| nth(c, self.delims.field, n - 1)),
                Level::Field,
            ),
            (false, n) => (
                content.and_then(|c| nth(c, self.delims.field, n)),
                Level::Field,
            ),
        };
        Value::new(raw, level, self.delims, self.charset)
    }

    /// How many fields the segment carries (MSH counts MSH-1).
    pub fn field_count(&self) -> usize {
        match self.raw.get(4..) {
            None => usize::from(self.is_msh() && self.raw.len() > 3),
            Some(c) => {
                memchr::memchr_iter(self.delims.field, c).count() + 1 + usize::from(self.is_msh())
            }
        }
    }

    /// Fields 1..=field_count in order.
    pub fn fields(&self) -> impl Iterator<Item = Value<'a>> + '_ {
        (1..=self.field_count()).map(|n| self.field(n))
    }
}

impl<'a> Header<'a> {
    fn from_msh(msh: Segment<'a>) -> Header<'a> {
        let raw = |n| msh.field(n).raw().unwrap_or_default();
        Header {
            delimiters: msh.delims,
            sending_application: raw(3),
            sending_facility: raw(4),
            receiving_application: raw(5),
            receiving_facility: raw(6),
            message_type: raw(9),
            control_id: raw(10),
            processing_id: raw(11),
            version: raw(12),
        }
    }

    /// Reads the header from the first line of an input that may not parse as a
    /// whole, so that even a broken message gets an acknowledgement that names it.
    pub fn sniff(input: &'a [u8]) -> Option<Header<'a>> {
        let (offset, body) = strip_framing(input);
        let delims = parse_msh_prefix(body, offset).ok()?;
        let end = memchr::memchr2(b'\r', b'\n', body).unwrap_or(body.len());
        Some(Header::from_msh(Segment {
            raw: &body[..end],
            delims,
            charset: Charset::Utf8,
        }))
    }
}

/// Strips a BOM, MLLP framing bytes and blank lines from both ends; returns the
/// body and its offset in the input.
fn strip_framing(input: &[u8]) -> (usize, &[u8]) {
    let mut start = 0;
    loop {
        let rest = &input[start..];
        if rest.starts_with(BOM) {
            start += BOM.len();
        } else if matches!(
            rest.first(),
            Some(&(MLLP_START | MLLP_END | b'\r' | b'\n' | b' ' | b'\t'))
        ) {
            start += 1;
        } else {
            break;
        }
    }
    let mut end = input.len();
    while end > start && matches!(input[end - 1], MLLP_START | MLLP_END | b'\r' | b'\n') {
        end -= 1;
    }
    (start, &input[start..end])
}

/// Checks that the body starts with MSH and reads MSH-1 and MSH-2.
fn parse_msh_prefix(body: &[u8], offset: usize) -> Result<Delimiters, ParseError> {
    if body.is_empty() {
        return Err(ParseError::Empty);
    }
    if !body.starts_with(b"MSH") {
        if b"MSH".starts_with(body) {
            return Err(ParseError::TruncatedHeader {
                offset: offset + body.len(),
            });
        }
        return Err(ParseError::MissingMsh {
            offset,
            found: snippet(body),
        });
    }
    let bad = |at: usize, reason| ParseError::BadEncodingCharacters {
        offset: offset + at,
        reason,
    };
    let Some(&field) = body.get(3) else {
        return Err(ParseError::TruncatedHeader { offset: offset + 3 });
    };
    let usable = |b: u8| b.is_ascii_graphic() && !b.is_ascii_alphanumeric();
    if !usable(field) {
        return Err(bad(3, "MSH-1 must be a punctuation character such as '|'"));
    }
    let rest = &body[4..];
    let len = rest
        .iter()
        .position(|&b| b == field || b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    let enc = &rest[..len];
    // Counted in characters, so a multi-byte character counts once in the message.
    let chars = String::from_utf8_lossy(enc).chars().count();
    if chars < 3 || (chars == 3 && len == rest.len()) {
        return Err(if len == rest.len() {
            ParseError::TruncatedHeader {
                offset: offset + body.len(),
            }
        } else {
            bad(
                4,
                "MSH-2 needs at least four encoding characters, such as ^~\\&",
            )
        });
    }
    if chars > 5 {
        return Err(bad(4, "MSH-2 has more than five encoding characters"));
    }
    if !enc.iter().all(|&b| usable(b)) {
        return Err(bad(
            4,
            "encoding characters must be ASCII punctuation characters",
        ));
    }
    let distinct = enc
        .iter()
        .enumerate()
        .all(|(i, b)| *b != field && !enc[..i].contains(b));
    if !distinct {
        return Err(bad(
            4,
            "encoding characters must differ from each other and from MSH-1",
        ));
    }
    if let [component, repetition, third] = *enc {
        // Three characters, as HAPI and python-hl7 accept: the third is the escape
        // character when it is `\`, the subcomponent separator when it is `&`.
        // Any other third character could be either, so it is refused.
        let (escape, subcomponent) = match third {
            b'\\' => (Some(third), None),
            b'&' => (None, Some(third)),
            _ => {
                return Err(bad(
                    4,
                    "MSH-2 has three encoding characters and the third is neither \\ (escape) nor & (subcomponent); send all four, such as ^~\\&",
                ));
            }
        };
        return Ok(Delimiters {
            field,
            component,
            repetition,
            escape,
            subcomponent,
            truncation: None,
        });
    }
    Ok(Delimiters {
        field,
        component: enc[0],
        repetition: enc[1],
        escape: Some(enc[2]),
        subcomponent: Some(enc[3]),
        truncation: enc.get(4).copied(),
    })
}

fn detect_terminator(body: &[u8]) -> Terminator {
    match memchr::memchr2(b'\r', b'\n', body).map(|i| &body[i..]) {
        Some([b'\r', b'\n', ..]) => Terminator::CrLf,
        Some([b'\n', ..]) => Terminator::Lf,
        _ => Terminator::Cr,
    }
}

/// Byte ranges of the segments, each with whether it holds a line break as
/// text. Real senders mix CR, LF and CRLF in one message, so no break is
/// trusted by its kind: a run of line breaks (and blank lines) ends a segment
/// when what follows starts a segment, three letters or digits then the field
/// separator or another break; followed by anything else it is text inside
/// the field. Lower-case or odd IDs still start a segment (and fail the ID
/// check) so that a malformed segment is never glued into a field silently.
fn segment_ranges(body: &[u8], field_sep: u8) -> impl Iterator<Item = (usize, usize, bool)> + '_ {
    let mut start = 0;
    let mut from = 0;
    let mut text_break = false;
    std::iter::from_fn(move || {
        while start < body.len() {
            let Some(found) = memchr::memchr2(b'\r', b'\n', &body[from..]) else {
                let range = (start, body.len(), std::mem::take(&mut text_break));
                start = body.len();
                return Some(range);
            };
            let brk = from + found;
            let mut next = brk;
            while next < body.len() && matches!(body[next], b'\n' | b'\r' | b' ' | b'\t') {
                next += 1;
            }
            from = next;
            if next == body.len() || starts_segment(&body[next..], field_sep) {
                let range = (start, brk, std::mem::take(&mut text_break));
                start = next;
                return Some(range);
            }
            text_break = true;
        }
        None
    })
}

/// Whether `rest` begins like a segment: three ASCII letters or digits and the
/// field separator (any case, so that `pid|` is reported rather than glued on),
/// or a valid ID alone on its line (`PD1`; a short line of text such as `and`
/// stays text).
fn starts_segment(rest: &[u8], field_sep: u8) -> bool {
    let Some(id) = rest.get(..3) else {
        return false;
    };
    match rest.get(3) {
        Some(&b) if b == field_sep => id.iter().all(u8::is_ascii_alphanumeric),
        None | Some(&(b'\r' | b'\n')) => id
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests;
