//! Turning a message's bytes into text: valid UTF-8 as UTF-8, anything else
//! by its MSH-18 character set, or as ISO-8859-1.
use std::borrow::Cow;

/// How a message's bytes become text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// The whole message is valid UTF-8, whatever MSH-18 declares.
    Utf8,
    /// ISO-8859-1: bytes that are not valid UTF-8, declared `8859/1`, declared
    /// UTF-8 (wrongly), or not declared at all.
    Latin1,
    /// ISO-8859-15 (MSH-18 `8859/15`): Latin-1 with eight code points replaced.
    Latin9,
}

impl Charset {
    /// The character set for a message body, given MSH-18 when present.
    ///
    /// Valid UTF-8 is UTF-8: senders often declare `8859/1` out of habit while
    /// sending UTF-8, and a multi-byte sequence is almost never meant as Latin-1
    /// text. Only bytes that are not valid UTF-8 follow MSH-18, and a declaration
    /// that cannot apply (UTF-8, unknown names) falls back to ISO-8859-1, which
    /// never fails.
    pub fn detect(declared: Option<&[u8]>, body: &[u8]) -> Charset {
        if std::str::from_utf8(body).is_ok() {
            return Charset::Utf8;
        }
        match declared.and_then(Self::from_msh18) {
            Some(Charset::Latin9) => Charset::Latin9,
            _ => Charset::Latin1,
        }
    }

    /// Maps an MSH-18 value (HL7 table 0211, plus common spellings) to a charset.
    /// Unknown or unsupported names give `None`, which falls back to detection.
    pub fn from_msh18(value: &[u8]) -> Option<Charset> {
        let name: String = value
            .iter()
            .map(|b| b.to_ascii_uppercase() as char)
            .filter(|c| !matches!(c, ' ' | '-' | '_' | '/'))
            .collect();
        match name.as_str() {
            "UNICODEUTF8" | "UTF8" => Some(Charset::Utf8),
            "88591" | "ISO88591" | "ISOIR100" | "LATIN1" | "ASCII" | "USASCII" => {
                Some(Charset::Latin1)
            }
            "885915" | "ISO885915" | "LATIN9" => Some(Charset::Latin9),
            _ => None,
        }
    }

    /// Decodes bytes that belong to a message in this charset.
    pub fn decode<'a>(self, bytes: &'a [u8]) -> Cow<'a, str> {
        match self {
            // Lossy only for the bytes an escape (`\\X..\\`) produced.
            Charset::Utf8 => String::from_utf8_lossy(bytes),
            Charset::Latin1 | Charset::Latin9 if bytes.is_ascii() => {
                // ASCII is valid UTF-8, so the borrow is free.
                Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default())
            }
            Charset::Latin1 => Cow::Owned(bytes.iter().map(|&b| b as char).collect()),
            Charset::Latin9 => Cow::Owned(bytes.iter().map(|&b| latin9_char(b)).collect()),
        }
    }

    /// Decodes an owned buffer (escape output) without copying when it is UTF-8.
    pub(crate) fn decode_owned(self, bytes: Vec<u8>) -> String {
        match self {
            Charset::Utf8 => match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            },
            _ => self.decode(&bytes).into_owned(),
        }
    }
}

fn latin9_char(b: u8) -> char {
    match b {
        0xA4 => '€',
        0xA6 => 'Š',
        0xA8 => 'š',
        0xB4 => 'Ž',
        0xB8 => 'ž',
        0xBC => 'Œ',
        0xBD => 'œ',
        0xBE => 'Ÿ',
        _ => b as char,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_utf8_wins_and_msh18_decides_only_the_rest() {
        // Declared 8859/1, sent as UTF-8: read as UTF-8, not "TestpatiÃ«nt".
        assert_eq!(
            Charset::detect(Some(b"8859/1"), "Testpatiënt".as_bytes()),
            Charset::Utf8
        );
        assert_eq!(
            Charset::detect(Some(b"UNICODE UTF-8"), b"ok"),
            Charset::Utf8
        );
        // Declared UTF-8, sent as Latin-1: the ISO-8859-1 fallback.
        assert_eq!(
            Charset::detect(Some(b"UNICODE UTF-8"), b"M\xfcller"),
            Charset::Latin1
        );
        assert_eq!(Charset::detect(Some(b"8859/15"), b"\xa4"), Charset::Latin9);
        assert_eq!(Charset::detect(None, "é".as_bytes()), Charset::Utf8);
        assert_eq!(Charset::detect(None, b"M\xfcller"), Charset::Latin1);
        assert_eq!(Charset::detect(Some(b"SJIS"), b"x"), Charset::Utf8);
        assert_eq!(Charset::detect(Some(b"SJIS"), b"\x82\xa0"), Charset::Latin1);
    }

    #[test]
    fn decodes_latin_sets() {
        assert_eq!(Charset::Latin1.decode(b"M\xfcller"), "Müller");
        assert_eq!(Charset::Latin9.decode(b"\xa4 5"), "€ 5");
        assert_eq!(Charset::Utf8.decode(b"a\xffb"), "a\u{fffd}b");
        assert!(matches!(
            Charset::Latin1.decode(b"plain"),
            Cow::Borrowed("plain")
        ));
    }
}
