//! HL7 DTM/TS values: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`.
use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp as Instant, Zoned};
use thiserror::Error;

/// How much of a timestamp was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// Fractional seconds with this many digits (1 to 4).
    Fraction(u8),
}

/// A parsed HL7 timestamp. Missing parts are the earliest value (month 1, day 1,
/// 00:00:00), and `precision` says which parts were sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    pub datetime: DateTime,
    pub precision: Precision,
    pub offset: Option<Offset>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TimestampError {
    #[error("timestamp is empty")]
    Empty,
    #[error(
        "timestamp has {0} digits before any fraction or offset; expected 4, 6, 8, 10, 12 or 14 (YYYYMMDDHHMMSS)"
    )]
    BadLength(usize),
    #[error("unexpected character at position {0} of the timestamp")]
    BadCharacter(usize),
    #[error(
        "the fraction of a second needs 1 to 4 digits after the '.' and a full HHMMSS before it"
    )]
    BadFraction,
    #[error("the time zone offset must be +HHMM or -HHMM")]
    BadOffset,
    #[error("timestamp is out of range: {0}")]
    OutOfRange(String),
}

impl Timestamp {
    /// Parses a DTM/TS value. Surrounding spaces are ignored.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let s = text.trim().as_bytes();
        if s.is_empty() {
            return Err(TimestampError::Empty);
        }
        let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
        let precision = match digits {
            4 => Precision::Year,
            6 => Precision::Month,
            8 => Precision::Day,
            10 => Precision::Hour,
            12 => Precision::Minute,
            14 => Precision::Second,
            n => return Err(TimestampError::BadLength(n)),
        };
        let num = |from: usize, len: usize| -> i32 {
            s.get(from..from + len)
                .map(|d| d.iter().fold(0i32, |acc, b| acc * 10 + i32::from(b - b'0')))
                .unwrap_or(0)
        };
        let field = |from: usize, default: i32| if digits > from { num(from, 2) } else { default };
        let mut pos = digits;
        let (mut precision, mut nanos) = (precision, 0i32);
        if s.get(pos) == Some(&b'.') {
            let frac = s[pos + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits != 14 || !(1..=4).contains(&frac) {
                return Err(TimestampError::BadFraction);
            }
            nanos = num(pos + 1, frac) * 10i32.pow(9 - frac as u32);
            precision = Precision::Fraction(frac as u8);
            pos += 1 + frac;
        }
        let offset = match s.get(pos) {
            None => None,
            Some(&sign @ (b'+' | b'-')) => {
                let tz = &s[pos + 1..];
                if tz.len() != 4 || !tz.iter().all(u8::is_ascii_digit) {
                    return Err(TimestampError::BadOffset);
                }
                let (h, m) = (num(pos + 1, 2), num(pos + 3, 2));
                if h > 14 || m > 59 {
                    return Err(TimestampError::BadOffset);
                }
                let secs = (h * 3600 + m * 60) * if sign == b'-' { -1 } else { 1 };
                Some(
                    Offset::from_seconds(secs)
                        .map_err(|e| TimestampError::OutOfRange(e.to_string()))?,
                )
            }
            Some(_) => return Err(TimestampError::BadCharacter(pos)),
        };
        let datetime = DateTime::new(
            num(0, 4) as i16,
            field(4, 1) as i8,
            field(6, 1) as i8,
            field(8, 0) as i8,
            field(10, 0) as i8,
            field(12, 0) as i8,
            nanos,
        )
        .map_err(|e| TimestampError::OutOfRange(e.to_string()))?;
        Ok(Timestamp {
            datetime,
            precision,
            offset,
        })
    }

    pub fn date(&self) -> Date {
        self.datetime.date()
    }

    /// True when at least year, month and day were sent.
    pub fn has_day(&self) -> bool {
        self.precision >= Precision::Day
    }

    /// The instant this timestamp names: its own offset when it has one,
    /// otherwise the wall-clock time in `zone` (an hour that DST skips moves
    /// forward, an hour it repeats takes the earlier instant).
    pub fn to_zoned(&self, zone: &TimeZone) -> Result<Zoned, jiff::Error> {
        match self.offset {
            Some(offset) => {
                let instant: Instant = offset.to_timestamp(self.datetime)?;
                Ok(instant.to_zoned(TimeZone::fixed(offset)))
            }
            None => self.datetime.to_zoned(zone.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn precisions() {
        let p = |s| Timestamp::parse(s).unwrap().precision;
        assert_eq!(p("2026"), Precision::Year);
        assert_eq!(p("202612"), Precision::Month);
        assert_eq!(p("20261201"), Precision::Day);
        assert_eq!(p("2026120110"), Precision::Hour);
        assert_eq!(p("202612011000"), Precision::Minute);
        assert_eq!(p("20261201100005"), Precision::Second);
        assert_eq!(p("20080627102031.292+0100"), Precision::Fraction(3));
    }

    #[test]
    fn offsets_and_zones() {
        let t = Timestamp::parse("20080627102031.292+0100").unwrap();
        assert_eq!(t.offset, Some(Offset::from_seconds(3600).unwrap()));
        assert_eq!(t.datetime, date(2008, 6, 27).at(10, 20, 31, 292_000_000));
        let z = t.to_zoned(&TimeZone::UTC).unwrap();
        assert_eq!(z.timestamp().to_string(), "2008-06-27T09:20:31.292Z");

        let la = TimeZone::get("America/Los_Angeles").unwrap();
        let t = Timestamp::parse("202612011000").unwrap();
        assert_eq!(
            t.to_zoned(&la)
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            "2026-12-01T10:00:00-08:00"
        );
        let summer = Timestamp::parse("20260701 ").unwrap();
        assert_eq!(summer.to_zoned(&la).unwrap().offset().seconds(), -7 * 3600);
    }

    #[test]
    fn rejects_malformed_values_without_panicking() {
        use TimestampError::*;
        assert_eq!(Timestamp::parse(" "), Err(Empty));
        assert_eq!(Timestamp::parse("something wrong here "), Err(BadLength(0)));
        assert_eq!(Timestamp::parse("2026011"), Err(BadLength(7)));
        assert_eq!(Timestamp::parse("20260101X"), Err(BadCharacter(8)));
        assert_eq!(Timestamp::parse("20260101.5"), Err(BadFraction));
        assert_eq!(Timestamp::parse("20260101+01"), Err(BadOffset));
        assert!(matches!(Timestamp::parse("20261345"), Err(OutOfRange(_))));
        assert!(matches!(Timestamp::parse("2026010125"), Err(OutOfRange(_))));
    }
}
