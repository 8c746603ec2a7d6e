//! Schedule maths: when a step is due, in the clinic's IANA time zone.
//!
//! Hours are exact elapsed time; days, weeks and months are calendar units on
//! the local clock (jiff's zoned arithmetic), so "1 day before" keeps the local
//! time across a DST change and "1 month after Jan 31" is Feb 28 (or 29).
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

use super::model::{Direction, Schedule, Unit};

/// `amount` `unit`s as a span.
pub fn span(amount: u32, unit: Unit) -> Span {
    let n = i64::from(amount);
    match unit {
        Unit::Hours => Span::new().hours(n),
        Unit::Days => Span::new().days(n),
        Unit::Weeks => Span::new().weeks(n),
        Unit::Months => Span::new().months(n),
    }
}

/// `at` moved by `amount` `unit`s (backwards when `back`), on `zone`'s clock.
/// `None` only outside jiff's range (years -9999..=9999).
pub fn shift(
    at: Timestamp,
    zone: &TimeZone,
    amount: u32,
    unit: Unit,
    back: bool,
) -> Option<Timestamp> {
    let zoned = at.to_zoned(zone.clone());
    let s = span(amount, unit);
    let moved: Zoned = if back {
        zoned.checked_sub(s).ok()?
    } else {
        zoned.checked_add(s).ok()?
    };
    Some(moved.timestamp())
}

/// When the `occurrence`-th send (0 = the first) of a step is due. `before`
/// counts back from `anchor` (the appointment start); `after` counts from
/// `fired` (when the trigger fired). A repeat counts on from the first due time,
/// so occurrences never drift.
pub fn due(
    schedule: &Schedule,
    fired: Timestamp,
    anchor: Option<Timestamp>,
    zone: &TimeZone,
    occurrence: u32,
) -> Option<Timestamp> {
    let first = match schedule.direction {
        Direction::Before => shift(anchor?, zone, schedule.amount, schedule.unit, true)?,
        Direction::After => shift(fired, zone, schedule.amount, schedule.unit, false)?,
    };
    if occurrence == 0 {
        return Some(first);
    }
    let repeat = schedule.repeat.as_ref()?;
    let steps = repeat.every.checked_mul(occurrence)?;
    shift(first, zone, steps, repeat.unit, false)
}

/// Texts go out between 08:00 and 21:00 on the recipient's clock: `due`, or
/// the next 08:00 when `due` falls outside that window.
pub fn in_text_window(due: Timestamp, zone: &TimeZone) -> Timestamp {
    let local = due.to_zoned(zone.clone());
    let hour = local.hour();
    if (8..21).contains(&hour) {
        return due;
    }
    let day = if hour >= 21 {
        local.date().tomorrow().unwrap_or(local.date())
    } else {
        local.date()
    };
    day.at(8, 0, 0, 0)
        .to_zoned(zone.clone())
        .map(|z| z.timestamp())
        .unwrap_or(due)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    fn sched(direction: Direction, amount: u32, unit: Unit) -> Schedule {
        Schedule::once(direction, amount, unit)
    }

    #[test]
    fn one_day_before_keeps_the_local_time_across_dst_both_ways() {
        // Spring forward: 2026-03-08 02:00 EST -> 03:00 EDT.
        let appt = ts("2026-03-08T10:00:00-04:00");
        let d = due(
            &sched(Direction::Before, 1, Unit::Days),
            appt,
            Some(appt),
            &ny(),
            0,
        )
        .unwrap();
        assert_eq!(
            d,
            ts("2026-03-07T10:00:00-05:00"),
            "10:00 local, 23 h earlier"
        );
        // Fall back: 2026-11-01 02:00 EDT -> 01:00 EST.
        let appt = ts("2026-11-01T10:00:00-05:00");
        let d = due(
            &sched(Direction::Before, 1, Unit::Days),
            appt,
            Some(appt),
            &ny(),
            0,
        )
        .unwrap();
        assert_eq!(
            d,
            ts("2026-10-31T10:00:00-04:00"),
            "10:00 local, 25 h earlier"
        );
        // 24 hours is elapsed time, not the clock.
        let d = due(
            &sched(Direction::Before, 24, Unit::Hours),
            appt,
            Some(appt),
            &ny(),
            0,
        )
        .unwrap();
        assert_eq!(d, ts("2026-10-31T11:00:00-04:00"));
    }

    #[test]
    fn months_are_calendar_aware() {
        let fired = ts("2026-01-31T15:00:00-05:00");
        let d = due(
            &sched(Direction::After, 1, Unit::Months),
            fired,
            None,
            &ny(),
            0,
        )
        .unwrap();
        assert_eq!(d, ts("2026-02-28T15:00:00-05:00"));
        let fired = ts("2028-01-31T15:00:00-05:00");
        let d = due(
            &sched(Direction::After, 1, Unit::Months),
            fired,
            None,
            &ny(),
            0,
        )
        .unwrap();
        assert_eq!(d, ts("2028-02-29T15:00:00-05:00"), "leap year");
    }

    #[test]
    fn before_needs_an_anchor_and_repeats_count_from_the_first_send() {
        let fired = ts("2026-05-01T12:00:00Z");
        assert_eq!(
            due(
                &sched(Direction::Before, 1, Unit::Days),
                fired,
                None,
                &ny(),
                0
            ),
            None
        );
        let mut s = sched(Direction::After, 7, Unit::Days);
        assert_eq!(
            due(&s, fired, None, &ny(), 1),
            None,
            "no repeat, no second send"
        );
        s.repeat = Some(super::super::model::Repeat {
            every: 2,
            unit: Unit::Weeks,
            until: Vec::new(),
            max: Some(3),
        });
        assert_eq!(
            due(&s, fired, None, &ny(), 0),
            Some(ts("2026-05-08T12:00:00Z"))
        );
        assert_eq!(
            due(&s, fired, None, &ny(), 2),
            Some(ts("2026-06-05T12:00:00Z"))
        );
    }

    #[test]
    fn texts_wait_for_eight_in_the_morning() {
        let la = TimeZone::get("America/Los_Angeles").unwrap();
        let late = ts("2026-12-01T22:30:00-08:00");
        assert_eq!(in_text_window(late, &la), ts("2026-12-02T08:00:00-08:00"));
        let early = ts("2026-12-01T06:59:00-08:00");
        assert_eq!(in_text_window(early, &la), ts("2026-12-01T08:00:00-08:00"));
        let fine = ts("2026-12-01T20:59:59-08:00");
        assert_eq!(in_text_window(fine, &la), fine);
        assert_eq!(
            in_text_window(ts("2026-12-01T21:00:00-08:00"), &la),
            ts("2026-12-02T08:00:00-08:00"),
            "21:00 is outside"
        );
    }

    fn zones() -> impl Strategy<Value = TimeZone> {
        prop::sample::select(vec![
            "America/New_York",
            "America/Los_Angeles",
            "Europe/London",
            "Australia/Lord_Howe",
            "Pacific/Chatham",
            "UTC",
        ])
        .prop_map(|z| TimeZone::get(z).unwrap())
    }

    fn units() -> impl Strategy<Value = Unit> {
        prop::sample::select(vec![Unit::Hours, Unit::Days, Unit::Weeks, Unit::Months])
    }

    proptest! {
        /// Hours: exact elapsed time, and before/after are inverse.
        #[test]
        fn hours_are_elapsed_time_and_symmetric(secs in 0i64..4_000_000_000, n in 0u32..2000, zone in zones()) {
            let t = Timestamp::from_second(secs).unwrap();
            let after = shift(t, &zone, n, Unit::Hours, false).unwrap();
            prop_assert_eq!(after.as_second() - t.as_second(), i64::from(n) * 3600);
            prop_assert_eq!(shift(after, &zone, n, Unit::Hours, true).unwrap(), t);
        }

        /// Days and weeks keep the local wall-clock time whenever it exists on
        /// the target day, and going back undoes going forward then.
        #[test]
        fn days_keep_the_local_time(secs in 0i64..4_000_000_000, n in 0u32..400, unit in prop::sample::select(vec![Unit::Days, Unit::Weeks]), zone in zones()) {
            let t = Timestamp::from_second(secs).unwrap();
            let after = shift(t, &zone, n, unit, false).unwrap();
            let (a, b) = (t.to_zoned(zone.clone()), after.to_zoned(zone.clone()));
            let days = if unit == Unit::Weeks { i64::from(n) * 7 } else { i64::from(n) };
            prop_assert_eq!(a.date().checked_add(Span::new().days(days)).unwrap(), b.date());
            // A local time that occurs twice (the hour repeated when clocks go
            // back) names the earlier instant, so only an unambiguous one comes
            // back to itself.
            let unambiguous = !zone.to_ambiguous_zoned(a.datetime()).is_ambiguous();
            let exists = unambiguous && b.datetime().time() == a.datetime().time();
            if exists {
                prop_assert_eq!(shift(after, &zone, n, unit, true).unwrap(), t, "symmetric when the local time is unambiguous and exists on both days");
            }
        }

        /// Months never overflow into the next month (Jan 31 + 1 month is in February).
        #[test]
        fn months_land_in_the_target_month(secs in 0i64..4_000_000_000, n in 0u32..120, zone in zones()) {
            let t = Timestamp::from_second(secs).unwrap();
            let a = t.to_zoned(zone.clone());
            let b = shift(t, &zone, n, Unit::Months, false).unwrap().to_zoned(zone.clone());
            let months = |z: &Zoned| i32::from(z.year()) * 12 + i32::from(z.month());
            prop_assert_eq!(months(&b) - months(&a), n as i32);
            prop_assert!(b.day() <= a.day());
        }

        /// The first send of a `before` step is never after its anchor, and of an
        /// `after` step never before the trigger.
        #[test]
        fn before_is_before_and_after_is_after(secs in 0i64..4_000_000_000, n in 0u32..500, unit in units(), zone in zones()) {
            let t = Timestamp::from_second(secs).unwrap();
            let before = due(&sched(Direction::Before, n, unit), t, Some(t), &zone, 0).unwrap();
            let after = due(&sched(Direction::After, n, unit), t, None, &zone, 0).unwrap();
            prop_assert!(before <= t && t <= after);
        }

        /// A text's send time is in the window, and never earlier than due.
        #[test]
        fn text_window_holds(secs in 0i64..4_000_000_000, zone in zones()) {
            let t = Timestamp::from_second(secs).unwrap();
            let sent = in_text_window(t, &zone);
            prop_assert!(sent >= t);
            let h = sent.to_zoned(zone.clone()).hour();
            prop_assert!((8..21).contains(&h), "hour {}", h);
            prop_assert!(sent.as_second() - t.as_second() <= 13 * 3600 + 3600);
        }
    }
}
