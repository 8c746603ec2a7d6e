use std::borrow::Cow;

/// How a message's bytes become text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8, and the whole message is valid UTF-8.
    Utf8,
    /// MSH-18 declares UTF-8 but the bytes are not valid: invalid sequences
    /// become U+FFFD rather than failing the message.
    Utf8Lossy,
    /// ISO-8859-1 (MSH-18 `8859/1`, or undeclared bytes that are not UTF-8).
    Latin1,
    /// ISO-8859-15 (MSH-18 `8859/15`): Latin-1 with eight code points replaced.
    Latin9,
}

impl Charset {
    /// The character set for a message body, given MSH-18 when present.
    ///
    /// A declared set wins. Without a declaration, valid UTF-8 is UTF-8 and
    /// anything else is read as ISO-8859-1, which never fails.
    pub fn detect(declared: Option<&[u8]>, body: &[u8]) -> Charset {
        let utf8_ok = || std::str::from_utf8(body).is_ok();
        match declared.and_then(Self::from_msh18) {
            Some(Charset::Utf8) if !utf8_ok() => Charset::Utf8Lossy,
            Some(charset) => charset,
            None if utf8_ok() => Charset::Utf8,
            None => Charset::Latin1,
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
            Charset::Utf8 | Charset::Utf8Lossy => String::from_utf8_lossy(bytes),
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
            Charset::Utf8 | Charset::Utf8Lossy => match String::from_utf8(bytes) {
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
    fn declared_charset_wins_and_undeclared_falls_back_to_latin1() {
        assert_eq!(
            Charset::detect(Some(b"8859/1"), "é".as_bytes()),
            Charset::Latin1
        );
        assert_eq!(
            Charset::detect(Some(b"UNICODE UTF-8"), b"ok"),
            Charset::Utf8
        );
        assert_eq!(
            Charset::detect(Some(b"UNICODE UTF-8"), b"\xe9"),
            Charset::Utf8Lossy
        );
        assert_eq!(Charset::detect(None, "é".as_bytes()), Charset::Utf8);
        assert_eq!(Charset::detect(None, b"M\xfcller"), Charset::Latin1);
        assert_eq!(Charset::detect(Some(b"SJIS"), b"x"), Charset::Utf8);
    }

    #[test]
    fn decodes_latin_sets() {
        assert_eq!(Charset::Latin1.decode(b"M\xfcller"), "Müller");
        assert_eq!(Charset::Latin9.decode(b"\xa4 5"), "€ 5");
        assert_eq!(Charset::Utf8Lossy.decode(b"a\xffb"), "a\u{fffd}b");
        assert!(matches!(
            Charset::Latin1.decode(b"plain"),
            Cow::Borrowed("plain")
        ));
    }
}
