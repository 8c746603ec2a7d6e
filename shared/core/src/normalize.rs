//! Normalisation of raw HL7 text into the contract's values.
use crate::{AppointmentStatus, CaseStatus, Gender};

/// PID-8: `M`, `F`, `O`/`A`/`N` (and `X`, added in v2.9), `U`; the spelled-out
/// words too. Anything else is not a recognised sex.
pub fn gender(raw: &str) -> Option<Gender> {
    match raw.trim().to_ascii_uppercase().as_str() {
        "M" | "MALE" => Some(Gender::Male),
        "F" | "FEMALE" => Some(Gender::Female),
        "O" | "A" | "N" | "X" | "OTHER" | "AMBIGUOUS" | "NOT APPLICABLE" => Some(Gender::Other),
        "U" | "UNKNOWN" => Some(Gender::Unknown),
        _ => None,
    }
}

/// SCH-25.1 (HL7 table 0278, plus the spellings EMRs use).
pub fn appointment_status(raw: &str) -> Option<AppointmentStatus> {
    let key: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match key.as_str() {
        "booked" | "pending" | "waitlist" | "overbook" | "scheduled" => {
            Some(AppointmentStatus::Scheduled)
        }
        "complete" | "completed" | "arrived" | "started" | "checkedin" => {
            Some(AppointmentStatus::Arrived)
        }
        "cancelled" | "canceled" | "dc" => Some(AppointmentStatus::Canceled),
        "noshow" => Some(AppointmentStatus::NoShow),
        "deleted" => Some(AppointmentStatus::Deleted),
        _ => None,
    }
}

/// Whether SCH-25 marks a blocked slot (table 0278 `Blocked`): time held in
/// the schedule, not a visit, so the message is ignored.
pub fn is_blocked_slot(raw: &str) -> bool {
    raw.trim().eq_ignore_ascii_case("blocked")
}

/// The status an SIU trigger event implies; it wins over SCH-25.
pub fn status_from_trigger(trigger: &str) -> Option<AppointmentStatus> {
    match trigger {
        "S15" => Some(AppointmentStatus::Canceled),
        "S17" => Some(AppointmentStatus::Deleted),
        "S26" => Some(AppointmentStatus::NoShow),
        _ => None,
    }
}

/// PV1-41.1: `Active`/`Inactive`; an empty value means active.
pub fn case_status(raw: Option<&str>) -> Option<CaseStatus> {
    match raw.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("active") => Some(CaseStatus::Active),
        Some("inactive") => Some(CaseStatus::Inactive),
        Some(_) => None,
    }
}

/// A plausible e-mail address: one `@` with text on both sides, a dot in the
/// domain, and no spaces. Delivery is the real test; this only stops obvious junk.
pub fn email(raw: &str) -> Option<String> {
    let s = raw.trim();
    let (local, domain) = s.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| s.to_owned())
}

/// A phone number in E.164 form. Numbers written with `+` keep their country code;
/// ten digits (or eleven starting with 1) are read as North American numbers and
/// must be valid ones; anything else is not a number we can text.
pub fn phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if raw.trim_start().starts_with('+') {
        return (8..=15)
            .contains(&digits.len())
            .then(|| format!("+{digits}"));
    }
    match digits.len() {
        10 if nanp(&digits) => Some(format!("+1{digits}")),
        11 if digits.starts_with('1') && nanp(&digits[1..]) => Some(format!("+{digits}")),
        _ => None,
    }
}

/// A number as a clinic typed it (`0412 345 678`, `61444444444`,
/// `+44 7700 900123`), in E.164, read with the numbering plan of `region`
/// (an ISO 3166 alpha-2 code) when it carries no `+`. Only numbers that
/// Google's libphonenumber metadata holds valid for their country are
/// kept: anything else is not a number we can text. Without a region this
/// is [`phone`].
pub fn phone_in_region(raw: &str, region: Option<&str>) -> Option<String> {
    let Some(region) = region.and_then(|r| r.trim().to_ascii_uppercase().parse().ok()) else {
        return phone(raw);
    };
    let parse = |text: &str| phonenumber::parse(Some(region), text).ok().filter(textable);
    let trimmed = raw.trim();
    // A number stored with its country code but no `+` (Cliniko's own
    // example is `61444444444`) reads as a national number first; if that
    // is not valid, it is tried as international.
    let number = parse(trimmed).or_else(|| {
        (!trimmed.starts_with('+') && trimmed.starts_with(|c: char| c.is_ascii_digit()))
            .then(|| parse(&format!("+{trimmed}")))
            .flatten()
    })?;
    Some(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// A number in a range its country's plan holds valid, or at least of a
/// mobile number's length there: ranges set aside for fiction (Ofcom's
/// `07700 900xxx`) and ranges newer than the metadata are kept, since the
/// SMS provider is the real test; a number of the wrong length never is.
fn textable(number: &phonenumber::PhoneNumber) -> bool {
    if number.is_valid() {
        return true;
    }
    // The metadata of the number's country code: an invalid number matches
    // no region's ranges, so it is looked up by code (the main country first).
    let database = &phonenumber::metadata::DATABASE;
    let Some(meta) = database
        .by_code(&number.code().value())
        .and_then(|m| m.into_iter().find(|m| m.is_main_country_for_code()))
        .or_else(|| number.metadata(database))
    else {
        return false;
    };
    let descriptors = meta.descriptors();
    let lengths = descriptors
        .mobile()
        .map(|d| d.possible_length())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| descriptors.general().possible_length());
    u16::try_from(number.national().to_string().len()).is_ok_and(|n| lengths.contains(&n))
}

/// A country as a clinic or Cliniko names it (`Australia`, `United
/// Kingdom`, `UK`, `NZ`, `AUS`) as its ISO 3166 alpha-2 code.
pub fn country_code(name: &str) -> Option<String> {
    let key: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    // The one common name ISO does not list: the UK's code is GB.
    if key == "uk"
        || key == "greatbritain"
        || key == "england"
        || key == "scotland"
        || key == "wales"
    {
        return Some("GB".to_owned());
    }
    if key == "usa" || key == "unitedstates" || key == "america" {
        return Some("US".to_owned());
    }
    key.parse::<celes::Country>()
        .ok()
        .map(|c| c.alpha2.to_owned())
}

/// XTN components 5 (country), 6 (area) and 7 (local number) joined.
pub fn phone_parts(country: &str, area: &str, local: &str) -> Option<String> {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let (country, number) = (digits(country), digits(area) + &digits(local));
    match country.as_str() {
        "" | "1" => phone(&number).filter(|_| number.len() == 10),
        cc => phone(&format!("+{cc}{number}")),
    }
}

/// A North American number: area code and exchange both start with 2-9.
fn nanp(ten: &str) -> bool {
    let b = ten.as_bytes();
    b.len() == 10 && (b'2'..=b'9').contains(&b[0]) && (b'2'..=b'9').contains(&b[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genders() {
        assert_eq!(gender("M"), Some(Gender::Male));
        assert_eq!(gender("f"), Some(Gender::Female));
        for g in ["O", "A", "N"] {
            assert_eq!(gender(g), Some(Gender::Other));
        }
        assert_eq!(gender("U"), Some(Gender::Unknown));
        assert_eq!(gender("Q"), None);
    }

    #[test]
    fn statuses() {
        use AppointmentStatus::*;
        for (raw, want) in [
            ("Booked", Scheduled),
            ("PENDING", Scheduled),
            ("Waitlist", Scheduled),
            ("Complete", Arrived),
            ("ARRIVED", Arrived),
            ("Started", Arrived),
            ("Cancelled", Canceled),
            ("Noshow", NoShow),
            ("No Show", NoShow),
            ("Deleted", Deleted),
        ] {
            assert_eq!(appointment_status(raw), Some(want), "{raw}");
        }
        assert_eq!(appointment_status("Sch"), None);
        assert_eq!(status_from_trigger("S26"), Some(NoShow));
        assert_eq!(status_from_trigger("S12"), None);
    }

    #[test]
    fn case_statuses() {
        assert_eq!(case_status(None), Some(CaseStatus::Active));
        assert_eq!(case_status(Some("Inactive")), Some(CaseStatus::Inactive));
        assert_eq!(case_status(Some("A")), None);
    }

    #[test]
    fn phones() {
        assert_eq!(phone("(503) 555-0101").as_deref(), Some("+15035550101"));
        assert_eq!(phone("1-503-555-0101").as_deref(), Some("+15035550101"));
        assert_eq!(phone("+44 20 7946 0958").as_deref(), Some("+442079460958"));
        assert_eq!(phone("0100000000"), None);
        assert_eq!(phone("78788788"), None);
        assert_eq!(
            phone_parts("1", "503", "5550101").as_deref(),
            Some("+15035550101")
        );
        assert_eq!(
            phone_parts("", "503", "555-0101").as_deref(),
            Some("+15035550101")
        );
        assert_eq!(phone_parts("", "", "1111"), None);
        assert_eq!(
            phone_parts("33", "1", "00000000").as_deref(),
            Some("+33100000000")
        );
    }

    #[test]
    fn phones_in_a_region() {
        let cases = [
            // Cliniko's documented example number: country code, no `+`.
            ("61444444444", Some("AU"), Some("+61444444444")),
            ("0412 345 678", Some("AU"), Some("+61412345678")),
            ("+61 412 345 678", Some("US"), Some("+61412345678")),
            ("07700 900123", Some("GB"), Some("+447700900123")),
            ("+44 7700 900123", None, Some("+447700900123")),
            ("447700900123", Some("GB"), Some("+447700900123")),
            ("021 123 4567", Some("NZ"), Some("+64211234567")),
            ("(503) 555-0101", Some("US"), Some("+15035550101")),
            ("416-555-0199", Some("CA"), Some("+14165550199")),
            ("(503) 555-0101", None, Some("+15035550101")),
            // Too short for Australia, and no region reads it.
            ("0412 345", Some("AU"), None),
            ("not a number", Some("AU"), None),
            ("", Some("GB"), None),
        ];
        for (raw, region, want) in cases {
            assert_eq!(
                phone_in_region(raw, region).as_deref(),
                want,
                "{raw} in {region:?}"
            );
        }
    }

    #[test]
    fn countries() {
        for (name, want) in [
            ("Australia", Some("AU")),
            ("australia ", Some("AU")),
            ("AU", Some("AU")),
            ("AUS", Some("AU")),
            ("United Kingdom", Some("GB")),
            ("UK", Some("GB")),
            ("New Zealand", Some("NZ")),
            ("Canada", Some("CA")),
            ("United States", Some("US")),
            ("Ireland", Some("IE")),
            ("Narnia", None),
            ("", None),
        ] {
            assert_eq!(country_code(name).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            email(" ana.rivera@example.com ").as_deref(),
            Some("ana.rivera@example.com")
        );
        for bad in ["none", "@example.com", "a@b", "a b@example.com", "a@.com"] {
            assert_eq!(email(bad), None, "{bad}");
        }
    }
}
