//! Serving records: one by ID, or a list page filtered, in ID order and
//! paged by `page` and `per_page`, with absolute `links` that keep the
//! filters.
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::filters::Filter;
use super::{Record, Reply};
use crate::render::{self, Render};

/// Cliniko's page size unless asked, and its largest.
const DEFAULT_PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 100;

/// `GET /{resource}/{id}`.
pub(super) fn one<T: Render>(
    r: &render::Renderer<'_>,
    records: &BTreeMap<u64, Record<T>>,
    id: &str,
) -> Reply {
    match id.parse::<u64>().ok().and_then(|id| records.get(&id)) {
        Some(record) => Reply::json(200, &r.record(record)),
        None => Reply::error(404, "Not found"),
    }
}

/// A list page: filtered, in ID order (the maps are ordered), paged.
/// `field` gives a record's value of a filter's field; `searchable` are the
/// fields the list takes filters on.
#[allow(clippy::too_many_arguments)]
pub(super) fn list<'a, T: 'a>(
    r: &render::Renderer<'_>,
    path: &str,
    key: &str,
    query: &[(String, String)],
    searchable: &[&str],
    records: impl Iterator<Item = &'a Record<T>>,
    field: impl Fn(&T, &str) -> Option<String>,
    render: impl Fn(&Record<T>) -> Value,
) -> Reply {
    let filters = match query
        .iter()
        .filter(|(k, _)| k == "q[]")
        .map(|(_, v)| Filter::parse(v, searchable))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(filters) => filters,
        Err(message) => return Reply::error(400, &message),
    };
    let number = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let page = number("page").unwrap_or(1).max(1);
    let per_page = number("per_page")
        .unwrap_or(DEFAULT_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let matching: Vec<&Record<T>> = records
        .filter(|record| {
            filters
                .iter()
                .all(|f| f.accepts(|name| field(&record.value, name)))
        })
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|record| render(record))
        .collect();
    let page_url = |page: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| k != "page" && k != "per_page") {
            q.append_pair(k, v);
        }
        q.append_pair("page", &page.to_string());
        q.append_pair("per_page", &per_page.to_string());
        format!("{}/{path}?{}", r.base_url, q.finish())
    };
    let mut links = Map::new();
    links.insert("self".into(), page_url(page).into());
    if page.saturating_mul(per_page) < total {
        links.insert("next".into(), page_url(page + 1).into());
    }
    if page > 1 {
        links.insert("previous".into(), page_url(page - 1).into());
    }
    let mut body = Map::new();
    body.insert(key.to_owned(), Value::Array(items));
    // Cliniko's own businesses example spells it so.
    let total_key = if key == "businesses" {
        "total_entires"
    } else {
        "total_entries"
    };
    body.insert(total_key.into(), total.into());
    body.insert("links".into(), Value::Object(links));
    Reply::json(200, &Value::Object(body))
}
