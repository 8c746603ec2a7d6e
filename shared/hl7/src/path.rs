//! Field paths such as `PID-3(2).1`, used for per-org field-map overrides.
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::{Message, Value};

/// `SEG-field[(repetition)][.component[.subcomponent]]`, counted from 1, on the
/// first segment with that ID. `SEG.field...` is accepted as well.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldPath {
    pub segment: [u8; 3],
    pub field: u16,
    pub repetition: Option<u16>,
    pub component: Option<u16>,
    pub subcomponent: Option<u16>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("invalid field path {path:?}: {reason}; expected e.g. PID-5.1 or PID-3(2).1")]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

impl FieldPath {
    pub fn new(segment: &str, field: u16) -> FieldPath {
        let mut id = [b' '; 3];
        for (slot, b) in id.iter_mut().zip(segment.bytes()) {
            *slot = b;
        }
        FieldPath {
            segment: id,
            field,
            repetition: None,
            component: None,
            subcomponent: None,
        }
    }

    pub fn repetition(mut self, n: u16) -> Self {
        self.repetition = Some(n);
        self
    }

    pub fn component(mut self, n: u16) -> Self {
        self.component = Some(n);
        self
    }

    pub fn subcomponent(mut self, n: u16) -> Self {
        self.subcomponent = Some(n);
        self
    }

    pub fn segment_id(&self) -> &str {
        std::str::from_utf8(&self.segment).unwrap_or("???")
    }

    /// The exact node the path names (a whole field when only a field is given).
    pub fn locate<'a>(&self, msg: &Message<'a>) -> Value<'a> {
        let Some(seg) = msg.segment(self.segment_id()) else {
            // Field 0 never exists, so this is an absent value.
            return msg.msh().field(0);
        };
        let mut v = seg.field(usize::from(self.field));
        if let Some(r) = self.repetition {
            v = v.repetition(usize::from(r));
        }
        if let Some(c) = self.component {
            v = v.component(usize::from(c));
        }
        if let Some(s) = self.subcomponent {
            v = v.subcomponent(usize::from(s));
        }
        v
    }

    /// The first primitive at the path: component 1 and subcomponent 1 unless
    /// the path names them, in the first repetition unless it names one.
    pub fn primitive<'a>(&self, msg: &Message<'a>) -> Value<'a> {
        self.locate(msg).primitive()
    }
}

impl FromStr for FieldPath {
    type Err = PathError;

    fn from_str(path: &str) -> Result<Self, PathError> {
        let err = |reason| PathError {
            path: path.to_owned(),
            reason,
        };
        let b = path.trim().as_bytes();
        if b.len() < 5
            || !b[..3]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Err(err("it must start with a three-character segment ID"));
        }
        if !matches!(b[3], b'-' | b'.') {
            return Err(err("the segment ID must be followed by '-'"));
        }
        let mut rest = &b[4..];
        let number = |rest: &mut &[u8]| -> Result<u16, PathError> {
            let len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            let n = std::str::from_utf8(&rest[..len])
                .ok()
                .and_then(|s| s.parse::<u16>().ok());
            *rest = &rest[len..];
            match n {
                Some(n) if n > 0 => Ok(n),
                _ => Err(err("positions are numbers counted from 1")),
            }
        };
        let mut p = FieldPath::new(
            std::str::from_utf8(&b[..3]).unwrap_or_default(),
            number(&mut rest)?,
        );
        if rest.first() == Some(&b'(') {
            rest = &rest[1..];
            p.repetition = Some(number(&mut rest)?);
            if rest.first() != Some(&b')') {
                return Err(err("a repetition is written (n)"));
            }
            rest = &rest[1..];
        }
        if let Some(r) = rest.strip_prefix(b".") {
            rest = r;
            p.component = Some(number(&mut rest)?);
            if let Some(r) = rest.strip_prefix(b".") {
                rest = r;
                p.subcomponent = Some(number(&mut rest)?);
            }
        }
        if !rest.is_empty() {
            return Err(err("unexpected characters after the path"));
        }
        Ok(p)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.segment_id(), self.field)?;
        if let Some(r) = self.repetition {
            write!(f, "({r})")?;
        }
        if let Some(c) = self.component {
            write!(f, ".{c}")?;
        }
        if let Some(s) = self.subcomponent {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for s in ["PID-3(2).1", "PID-5.1.2", "MSH-9", "SCH-11.4", "ZX1-12(3)"] {
            assert_eq!(s.parse::<FieldPath>().unwrap().to_string(), s);
        }
        assert_eq!(
            "PID.5.1".parse::<FieldPath>().unwrap().to_string(),
            "PID-5.1"
        );
        let p: FieldPath = "PID-3(2).1".parse().unwrap();
        assert_eq!(
            (p.field, p.repetition, p.component, p.subcomponent),
            (3, Some(2), Some(1), None)
        );
    }

    #[test]
    fn rejects_bad_paths() {
        for s in [
            "",
            "PID",
            "pid-3",
            "PID-0",
            "PID-3.",
            "PID-3(2",
            "PID-3(0)",
            "PID-3.1.2.3",
            "PID-99999",
            "PID-3x",
        ] {
            assert!(s.parse::<FieldPath>().is_err(), "{s}");
        }
    }

    #[test]
    fn locates_values() {
        let m = Message::parse(b"MSH|^~\\&|A\rPID|1||X^^^^PI~P555&x^^^^MR||Rivera^Ana").unwrap();
        let at = |s: &str| {
            s.parse::<FieldPath>()
                .unwrap()
                .primitive(&m)
                .text()
                .map(|t| t.into_owned())
        };
        assert_eq!(at("PID-3(2).1").as_deref(), Some("P555"));
        assert_eq!(at("PID-3(2)").as_deref(), Some("P555"));
        assert_eq!(at("PID-3(2).1.2").as_deref(), Some("x"));
        assert_eq!(at("PID-3").as_deref(), Some("X"));
        assert_eq!(at("PID-5.2").as_deref(), Some("Ana"));
        assert_eq!(at("PV1-3"), None);
        assert_eq!(at("MSH-3").as_deref(), Some("A"));
    }
}
