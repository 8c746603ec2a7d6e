//! Escape sequences (HL7 v2 §2.7), decoded on access.
use std::borrow::Cow;

use crate::{Charset, Delimiters};

/// Decodes the escape sequences in one value and turns it into text.
///
/// `\F\ \S\ \T\ \R\ \E\` (and `\P\`, the v2.7 truncation character) become the
/// delimiter they name, `\Xhh..\` becomes those bytes, `\.br\` and `\.sp\` become a
/// line break, `\.sk n\` n spaces, and the other formatting and highlighting
/// escapes are dropped. Anything else, such as a stray backslash or an unknown or
/// unterminated sequence, is kept literally: the value is never cut short.
pub(crate) fn decode<'a>(raw: &'a [u8], delims: &Delimiters, charset: Charset) -> Cow<'a, str> {
    let Some(esc) = delims.escape else {
        return charset.decode(raw);
    };
    let Some(first) = memchr::memchr(esc, raw) else {
        return charset.decode(raw);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        if raw[i] != esc {
            let next = memchr::memchr(esc, &raw[i..]).map_or(raw.len(), |p| i + p);
            out.extend_from_slice(&raw[i..next]);
            i = next;
            continue;
        }
        let body_start = i + 1;
        let decoded = memchr::memchr(esc, &raw[body_start..])
            .map(|len| (len, &raw[body_start..body_start + len]))
            .and_then(|(len, body)| expand(body, delims, &mut out).then_some(len));
        match decoded {
            Some(len) => i = body_start + len + 1,
            None => {
                // Not a sequence we know: keep the escape character and go on
                // scanning right after it.
                out.push(esc);
                i = body_start;
            }
        }
    }
    Cow::Owned(charset.decode_owned(out))
}

/// Appends the expansion of one escape body; `false` when it is not a valid one.
fn expand(body: &[u8], d: &Delimiters, out: &mut Vec<u8>) -> bool {
    let push = |out: &mut Vec<u8>, b: u8| {
        out.push(b);
        true
    };
    match body {
        b"F" => push(out, d.field),
        b"S" => push(out, d.component),
        b"T" => push(out, d.subcomponent.unwrap_or(b'&')),
        b"R" => push(out, d.repetition),
        b"E" => push(out, d.escape.unwrap_or(b'\\')),
        b"P" => d.truncation.is_some_and(|t| push(out, t)),
        b"H" | b"N" => true,
        [b'X', hex @ ..] => decode_hex(hex, out),
        [b'.', cmd @ ..] => formatting(cmd, out),
        [b'C' | b'M', rest @ ..] => {
            // Character-set switches (ISO 2022) cannot be honoured per value; they
            // are dropped so the surrounding text survives.
            !rest.is_empty() && rest.iter().all(u8::is_ascii_hexdigit)
        }
        _ => false,
    }
}

fn decode_hex(hex: &[u8], out: &mut Vec<u8>) -> bool {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    let nibble = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
    out.extend(
        hex.chunks_exact(2)
            .map(|p| nibble(p[0]) << 4 | nibble(p[1])),
    );
    true
}

fn formatting(cmd: &[u8], out: &mut Vec<u8>) -> bool {
    let (name, arg) = cmd.split_at(cmd.len().min(2));
    let count = || -> Option<usize> {
        let arg = std::str::from_utf8(arg).ok()?.trim();
        if arg.is_empty() {
            Some(1)
        } else {
            arg.trim_start_matches(['+', '-']).parse::<usize>().ok()
        }
    };
    match name {
        b"br" if arg.is_empty() => out.push(b'\n'),
        b"sp" => match count() {
            Some(n) => out.extend(std::iter::repeat_n(b'\n', n.min(100))),
            None => return false,
        },
        b"sk" => match count() {
            Some(n) => out.extend(std::iter::repeat_n(b' ', n.min(100))),
            None => return false,
        },
        b"fi" | b"nf" if arg.is_empty() => {}
        b"in" | b"ti" if count().is_some() => {}
        b"ce" if arg.is_empty() => {}
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(raw: &str) -> String {
        decode(raw.as_bytes(), &Delimiters::default(), Charset::Utf8).into_owned()
    }

    #[test]
    fn delimiter_escapes() {
        assert_eq!(dec(r"a\F\b\S\c\T\d\R\e\E\f"), r"a|b^c&d~e\f");
    }

    #[test]
    fn hex_and_formatting_escapes() {
        assert_eq!(dec(r"line1\X0D0A\line2"), "line1\r\nline2");
        assert_eq!(dec(r"\XC3A9\t\X41\"), "étA");
        assert_eq!(dec(r"a\.br\b"), "a\nb");
        assert_eq!(dec(r"a\.sp2\b"), "a\n\nb");
        assert_eq!(dec(r"a\.sk 3\b"), "a   b");
        assert_eq!(dec(r"\H\bold\N\ \.ce\x\.in+4\"), "bold x");
        assert_eq!(dec(r"\C2842\kanji"), "kanji");
    }

    #[test]
    fn malformed_escapes_are_kept_literally() {
        assert_eq!(dec(r"BSV 4\5"), r"BSV 4\5");
        assert_eq!(dec(r"C:\temp\file"), r"C:\temp\file");
        assert_eq!(dec(r"x\y\F\"), r"x\y|");
        assert_eq!(dec(r"odd \X4\ hex"), r"odd \X4\ hex");
        assert_eq!(dec(r"bad \XZZ\ hex"), r"bad \XZZ\ hex");
        assert_eq!(dec(r"\\"), r"\\");
        assert_eq!(dec(r"trailing\"), r"trailing\");
        assert_eq!(dec(r"\P\"), r"\P\");
    }

    #[test]
    fn truncation_escape_needs_a_truncation_character() {
        let d = Delimiters {
            truncation: Some(b'#'),
            ..Delimiters::default()
        };
        assert_eq!(decode(br"a\P\b", &d, Charset::Utf8), "a#b");
    }

    #[test]
    fn hex_bytes_follow_the_message_charset() {
        let d = Delimiters::default();
        assert_eq!(decode(br"M\XFC\ller", &d, Charset::Latin1), "Müller");
        assert_eq!(decode(br"x\XFF\", &d, Charset::Utf8), "x\u{fffd}");
    }

    #[test]
    fn custom_escape_character() {
        let d = Delimiters {
            escape: Some(b'!'),
            ..Delimiters::default()
        };
        assert_eq!(decode(b"a!F!b\\F\\", &d, Charset::Utf8), "a|b\\F\\");
        let none = Delimiters {
            escape: None,
            ..Delimiters::default()
        };
        assert_eq!(decode(br"a\F\b", &none, Charset::Utf8), r"a\F\b");
    }
}
