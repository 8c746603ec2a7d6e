//! The decoding helpers every shape shares: IDs as strings or numbers, text
//! and flags that may be empty, lenient values and lists, and the links by
//! which Cliniko names a record and the records it points to.
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A JSON string or integer, as its decimal string (Cliniko's IDs are
/// 64-bit: above 2^53 only the string form survives JavaScript, but a Rust
/// u64 or i64 reads either exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Id(pub(crate) String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ID as a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                let v = v.trim();
                if v.is_empty() {
                    return Err(E::custom("an empty ID"));
                }
                Ok(Id(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// A text field: `""` and `null` are `None`.
pub(super) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

/// A flag that may be `null` (or, from older records, `""`).
pub(super) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Loose>::deserialize(d)? {
        Some(Loose::Bool(b)) => Some(b),
        Some(Loose::Text(s)) => match s.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        None => None,
    })
}

/// A value of the expected shape, else `None` rather than a failed page.
pub(super) fn lenient<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient<T> {
        Expected(T),
        Other(de::IgnoredAny),
    }
    Ok(match Option::<Lenient<T>>::deserialize(d)? {
        Some(Lenient::Expected(t)) => Some(t),
        Some(Lenient::Other(_)) | None => None,
    })
}

/// A list that may be `null`.
pub(super) fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A list's `links`: `next` is the following page's URL, if any.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListLinks {
    #[serde(default, deserialize_with = "text")]
    pub(crate) next: Option<String>,
}

/// A record's `links`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RecordLinks {
    #[serde(default, rename = "self", deserialize_with = "text")]
    self_: Option<String>,
}

/// A linked record: `{"links": {"self": "https://…/v1/patients/123"}}`, or
/// (defensively) the URL alone. Any other shape links nothing rather than
/// failing the page.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Link {
    Url(String),
    Linked {
        #[serde(default)]
        links: Option<RecordLinks>,
    },
    Other(de::IgnoredAny),
}

impl Link {
    fn id(&self) -> Option<String> {
        match self {
            Link::Url(url) => id_from_url(url),
            Link::Linked { links } => id_from_url(links.as_ref()?.self_.as_deref()?),
            Link::Other(_) => None,
        }
    }
}

pub(super) fn linked_id(link: Option<&Link>) -> Option<String> {
    link?.id()
}

/// The last path segment of a record's URL, when it is a number.
pub(crate) fn id_from_url(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())).then(|| last.to_owned())
}

/// A record's ID: its `id`, else the last segment of its `links.self`
/// (Cliniko's deleted entries carry only the link, on purpose).
pub(super) fn record_id(
    id: Option<Id>,
    links: Option<&RecordLinks>,
) -> Result<String, &'static str> {
    id.map(|i| i.0)
        .or_else(|| id_from_url(links?.self_.as_deref()?))
        .ok_or("the record has neither an `id` nor a `links.self`")
}
