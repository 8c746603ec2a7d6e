//! Writing HL7: escaping text and assembling segments.
use crate::Delimiters;

/// Escapes text so it reads back unchanged as one primitive value: delimiters
/// and the escape character become `\F\ \S\ \T\ \R\ \E\`, control characters
/// other than TAB become hex escapes (CR and LF would end a segment, MLLP bytes
/// would be read as framing at the end of a message), and a value that is exactly
/// `""` is hex-escaped so it is not read as the explicit null.
///
/// A message without an escape character (MSH-2 `^~&`) cannot carry those
/// characters at all, so each becomes a space: the value loses them, but the
/// message keeps its structure.
pub fn escape(text: &str, delims: &Delimiters) -> String {
    let Some(esc) = delims.escape.map(char::from) else {
        return text
            .chars()
            .map(|c| match u8::try_from(c) {
                Ok(b) if is_delimiter(b, delims) || (b.is_ascii_control() && b != b'\t') => ' ',
                _ => c,
            })
            .collect();
    };
    if text == "\"\"" {
        return format!("{esc}X2222{esc}");
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let code = match u8::try_from(c) {
            Ok(b) if b == delims.field => "F",
            Ok(b) if b == delims.component => "S",
            Ok(b) if Some(b) == delims.subcomponent => "T",
            Ok(b) if b == delims.repetition => "R",
            Ok(b) if Some(b) == delims.escape => "E",
            Ok(b) if Some(b) == delims.truncation => "P",
            Ok(b) if b.is_ascii_control() && b != b'\t' => {
                out.push(esc);
                out.push_str(&format!("X{b:02X}"));
                out.push(esc);
                continue;
            }
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push(esc);
        out.push_str(code);
        out.push(esc);
    }
    out
}

fn is_delimiter(b: u8, d: &Delimiters) -> bool {
    b == d.field
        || b == d.component
        || b == d.repetition
        || Some(b) == d.subcomponent
        || Some(b) == d.truncation
}

/// Builds a message segment by segment. Values given to [`MessageWriter::segment`]
/// are written as they are, so callers pass already-escaped or structural text.
#[derive(Debug, Clone)]
pub struct MessageWriter {
    delims: Delimiters,
    buf: Vec<u8>,
}

impl MessageWriter {
    /// Starts a message with `MSH|^~\&` (in the given delimiters); `fields` are MSH-3 onwards.
    pub fn new<S: AsRef<[u8]>>(delims: Delimiters, msh_fields: &[S]) -> Self {
        let mut buf = b"MSH".to_vec();
        buf.push(delims.field);
        buf.extend(delims.encoding_characters());
        let mut w = MessageWriter { delims, buf };
        w.fields(msh_fields);
        w.buf.push(b'\r');
        w
    }

    pub fn delimiters(&self) -> Delimiters {
        self.delims
    }

    /// Appends a segment; fields are joined with the field separator.
    pub fn segment<S: AsRef<[u8]>>(&mut self, id: &str, fields: &[S]) -> &mut Self {
        self.buf.extend_from_slice(id.as_bytes());
        self.fields(fields);
        self.buf.push(b'\r');
        self
    }

    fn fields<S: AsRef<[u8]>>(&mut self, fields: &[S]) {
        for f in fields {
            self.buf.push(self.delims.field);
            self.buf.extend_from_slice(f.as_ref());
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    #[test]
    fn escape_round_trips_through_the_parser() {
        let d = Delimiters::default();
        let nasty = "A|B^C&D~E\\F\r\nG\x0b\x1c\tH";
        let mut w = MessageWriter::new(d, &["APP"]);
        w.segment("NTE", &["1", "", &escape(nasty, &d)]);
        w.segment("ZZZ", &[escape("\"\"", &d)]);
        w.segment("ZZ2", &[escape("ends in MLLP\x1c", &d)]);
        let bytes = w.finish();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(
            m.segment("NTE").unwrap().field(3).text().as_deref(),
            Some(nasty)
        );
        let z = m.segment("ZZZ").unwrap().field(1);
        assert!(!z.is_null());
        assert_eq!(z.text().as_deref(), Some("\"\""));
        let last = m.segment("ZZ2").unwrap().field(1);
        assert_eq!(last.text().as_deref(), Some("ends in MLLP\x1c"));
    }

    #[test]
    fn without_an_escape_character_the_structure_survives() {
        // MSH-2 `^~&`: nothing can be escaped, so delimiters and line breaks
        // become spaces rather than new fields or segments.
        let d = Message::parse(b"MSH|^~&|A").unwrap().delimiters();
        assert_eq!(d.escape, None);
        let mut w = MessageWriter::new(d, &["APP"]);
        w.segment(
            "NTE",
            &["1", "", &escape("a|b^c&d~e\\f\r\nPID|g", &d), "END"],
        );
        let bytes = w.finish();
        let m = Message::parse(&bytes).unwrap();
        let nte = m.segment("NTE").unwrap();
        assert_eq!(nte.field(3).text().as_deref(), Some("a b c d e\\f  PID g"));
        assert_eq!(nte.field(4).text().as_deref(), Some("END"));
        assert_eq!(m.segments().count(), 2);
    }
}
