//! A field, component or subcomponent as read: absent, empty, an explicit
//! null (`""`) or text, with escapes decoded only when the text is asked for.
use std::borrow::Cow;

use crate::{Charset, Delimiters, escape};

/// Which part of the HL7 hierarchy a [`Value`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Field,
    Repetition,
    Component,
    Subcomponent,
    /// MSH-1 and MSH-2: literal bytes, never split or unescaped.
    Literal,
}

/// The three states HL7 keeps apart, plus a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Not in the message at all (the segment or position does not exist).
    Absent,
    /// Present but empty (`||`): "no value sent, keep what you have".
    Empty,
    /// The explicit null `""`: "delete the value you have".
    Null,
    Present,
}

/// A borrowed view of one field, repetition, component or subcomponent.
///
/// Navigation splits lazily: `field.component(2)` reads the first repetition, and
/// `component(n).subcomponent(m)` splits that component. Positions count from 1.
#[derive(Clone, Copy, Debug)]
pub struct Value<'a> {
    raw: Option<&'a [u8]>,
    level: Level,
    delims: Delimiters,
    charset: Charset,
}

impl<'a> Value<'a> {
    pub(crate) fn new(
        raw: Option<&'a [u8]>,
        level: Level,
        delims: Delimiters,
        charset: Charset,
    ) -> Self {
        Value {
            raw,
            level,
            delims,
            charset,
        }
    }

    fn child(&self, raw: Option<&'a [u8]>, level: Level) -> Self {
        Value::new(raw, level, self.delims, self.charset)
    }

    /// The bytes exactly as received, escapes included; `None` when absent.
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.raw
    }

    pub fn level(&self) -> Level {
        self.level
    }

    pub fn presence(&self) -> Presence {
        match self.raw {
            None => Presence::Absent,
            Some(b"") => Presence::Empty,
            Some(b"\"\"") => Presence::Null,
            Some(_) => Presence::Present,
        }
    }

    pub fn is_absent(&self) -> bool {
        self.raw.is_none()
    }

    /// True for `""`, the explicit null.
    pub fn is_null(&self) -> bool {
        self.presence() == Presence::Null
    }

    /// The decoded text, or `None` when the value is absent, empty or null, or
    /// decodes to nothing (only formatting escapes such as `\H\`).
    pub fn text(&self) -> Option<Cow<'a, str>> {
        let text = match (self.presence(), self.raw) {
            (Presence::Present, Some(raw)) if self.level == Level::Literal => {
                Some(self.charset.decode(raw))
            }
            (Presence::Present, Some(raw)) => Some(escape::decode(raw, &self.delims, self.charset)),
            _ => None,
        };
        text.filter(|t| !t.is_empty())
    }

    /// The decoded text with surrounding whitespace removed; `None` when nothing is left.
    pub fn trimmed(&self) -> Option<String> {
        let text = self.text()?;
        let t = text.trim();
        (!t.is_empty()).then(|| t.to_owned())
    }

    /// The n-th repetition of a field (a repetition or lower level is its own first repetition).
    pub fn repetition(&self, n: usize) -> Value<'a> {
        match self.level {
            Level::Field => self.child(
                self.raw.and_then(|r| nth(r, self.delims.repetition, n)),
                Level::Repetition,
            ),
            _ => self.only_first(n),
        }
    }

    /// All repetitions of a field; an empty field has one (empty) repetition.
    pub fn repetitions(self) -> impl Iterator<Item = Value<'a>> + 'a {
        let this = self;
        let split = match (self.level, self.raw) {
            (Level::Field, Some(raw)) => Some(raw.split(move |b| *b == this.delims.repetition)),
            _ => None,
        };
        let single = match self.level {
            Level::Field => None,
            _ => self.raw.map(|_| this),
        };
        split
            .into_iter()
            .flatten()
            .map(move |r| this.child(Some(r), Level::Repetition))
            .chain(single)
    }

    /// The n-th component (of the first repetition, when this is a field).
    pub fn component(&self, n: usize) -> Value<'a> {
        match self.level {
            Level::Field => self.repetition(1).component(n),
            Level::Repetition => self.child(
                self.raw.and_then(|r| nth(r, self.delims.component, n)),
                Level::Component,
            ),
            _ => self.only_first(n),
        }
    }

    /// The n-th subcomponent (of the first component, when this is a field or repetition).
    pub fn subcomponent(&self, n: usize) -> Value<'a> {
        match self.level {
            Level::Field | Level::Repetition => self.component(1).subcomponent(n),
            Level::Component => match self.delims.subcomponent {
                Some(sep) => self.child(self.raw.and_then(|r| nth(r, sep, n)), Level::Subcomponent),
                None => self.only_first(n),
            },
            _ => self.only_first(n),
        }
    }

    /// The first primitive: component 1, subcomponent 1 of whatever this is.
    pub fn primitive(&self) -> Value<'a> {
        self.subcomponent(1)
    }

    fn only_first(&self, n: usize) -> Value<'a> {
        if n == 1 {
            *self
        } else {
            self.child(None, self.level)
        }
    }
}

/// The n-th (1-based) piece of `raw` split on `delim`, without allocating.
pub(crate) fn nth(raw: &[u8], delim: u8, n: usize) -> Option<&[u8]> {
    if n == 0 {
        return None;
    }
    let mut start = 0;
    let mut hits = memchr::memchr_iter(delim, raw);
    for _ in 1..n {
        start = hits.next()? + 1;
    }
    let end = hits.next().unwrap_or(raw.len());
    Some(&raw[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(raw: &str) -> Value<'_> {
        Value::new(
            Some(raw.as_bytes()),
            Level::Field,
            Delimiters::default(),
            Charset::Utf8,
        )
    }

    #[test]
    fn nth_splits_without_losing_empty_pieces() {
        assert_eq!(nth(b"a^^c", b'^', 1), Some(&b"a"[..]));
        assert_eq!(nth(b"a^^c", b'^', 2), Some(&b""[..]));
        assert_eq!(nth(b"a^^c", b'^', 3), Some(&b"c"[..]));
        assert_eq!(nth(b"a^^c", b'^', 4), None);
        assert_eq!(nth(b"a", b'^', 0), None);
    }

    #[test]
    fn navigation_and_presence() {
        let f = field("X-991^^^HOSP^PI~P555^^^ACME^MR");
        assert_eq!(f.repetitions().count(), 2);
        assert_eq!(f.component(1).text().as_deref(), Some("X-991"));
        assert_eq!(f.repetition(2).component(5).text().as_deref(), Some("MR"));
        assert_eq!(f.repetition(2).component(2).presence(), Presence::Empty);
        assert_eq!(f.repetition(2).component(9).presence(), Presence::Absent);
        assert_eq!(f.repetition(3).component(1).presence(), Presence::Absent);
        let sub = field("BADFAC&1.2.8&ISO^x");
        assert_eq!(sub.subcomponent(2).text().as_deref(), Some("1.2.8"));
        assert_eq!(sub.primitive().text().as_deref(), Some("BADFAC"));
        assert_eq!(
            sub.component(2).subcomponent(1).text().as_deref(),
            Some("x")
        );
        assert_eq!(
            sub.component(2).subcomponent(2).presence(),
            Presence::Absent
        );
    }

    #[test]
    fn explicit_null_is_distinct_from_empty() {
        assert_eq!(field("\"\"").presence(), Presence::Null);
        assert_eq!(field("\"\"").component(1).presence(), Presence::Null);
        assert_eq!(field("\"\"").component(2).presence(), Presence::Absent);
        assert_eq!(field("").presence(), Presence::Empty);
        assert_eq!(field("\"\"").text(), None);
        assert_eq!(field("\"x\"").text().as_deref(), Some("\"x\""));
        assert_eq!(field("\\H\\\\N\\").text(), None, "only formatting escapes");
    }

    #[test]
    fn trimmed_drops_blank_values() {
        assert_eq!(field(" 42 ").trimmed().as_deref(), Some("42"));
        assert_eq!(field("   ").trimmed(), None);
    }
}
