//! Search requests (parsed from the query string), keyset cursors, and the pure parts of
//! typo correction: finding the words of a query and choosing between candidates.
//! The SQL lives in [`crate::queries`].

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shopkit::ApiError;
use uuid::Uuid;

use crate::validate;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// Longest accepted `q`, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Attribute filters per request (`attr.color=blue` counts one per value).
pub const MAX_ATTRIBUTE_FILTERS: usize = 20;

/// The orders a listing can be sorted in. Each is a total order (ties broken by id), which
/// keyset pagination needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// By `ts_rank` (best first); without a query the same as `newest`.
    Relevance,
    /// By the cheapest variant's price.
    PriceAsc,
    PriceDesc,
    Newest,
}

impl Sort {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "relevance" => Some(Self::Relevance),
            "price_asc" => Some(Self::PriceAsc),
            "price_desc" => Some(Self::PriceDesc),
            "newest" => Some(Self::Newest),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relevance => "relevance",
            Self::PriceAsc => "price_asc",
            Self::PriceDesc => "price_desc",
            Self::Newest => "newest",
        }
    }
}

/// A validated search or listing request. `Default` is "every published product, newest
/// first, 20 per page".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchRequest {
    /// Full-text query in `websearch_to_tsquery` syntax (`"blue shirt" -linen`).
    pub q: Option<String>,
    /// A category slug; its descendants are included.
    pub category: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: bool,
    /// Attribute name → accepted values (any of them).
    pub attributes: BTreeMap<String, Vec<String>>,
    /// `None`: relevance with a query, newest without.
    pub sort: Option<Sort>,
    /// `None`: [`DEFAULT_LIMIT`].
    pub limit: Option<u32>,
    pub cursor: Option<Cursor>,
}

impl SearchRequest {
    /// The order actually used.
    pub fn effective_sort(&self) -> Sort {
        match (self.sort, &self.q) {
            (Some(Sort::Relevance) | None, Some(_)) => Sort::Relevance,
            (Some(Sort::Relevance) | None, None) => Sort::Newest,
            (Some(sort), _) => sort,
        }
    }

    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    /// Parses `q, category, min_price, max_price, in_stock, attr.<name>, sort, limit,
    /// cursor`; other parameters are ignored. Errors are 400s that name the parameter.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut request = Self::default();
        let mut filters = 0;
        for (key, value) in pairs {
            match key.as_str() {
                "q" => {
                    let q = value.trim();
                    if q.chars().count() > MAX_QUERY_CHARS {
                        return Err(bad(format!(
                            "q must be at most {MAX_QUERY_CHARS} characters"
                        )));
                    }
                    if q.chars().any(char::is_control) {
                        return Err(bad("q must not contain control characters"));
                    }
                    request.q = (!q.is_empty()).then(|| q.to_owned());
                }
                "category" => {
                    if !value.is_empty() {
                        validate::category_slug(value).map_err(|e| bad(format!("category {e}")))?;
                        request.category = Some(value.clone());
                    }
                }
                "min_price" => request.min_price = Some(price_param(key, value)?),
                "max_price" => request.max_price = Some(price_param(key, value)?),
                "in_stock" => {
                    request.in_stock = match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" | "" => false,
                        _ => return Err(bad("in_stock must be `true` or `false`")),
                    }
                }
                "sort" => {
                    request.sort = Some(Sort::parse(value).ok_or_else(|| {
                        bad("sort must be one of relevance, price_asc, price_desc, newest")
                    })?);
                }
                "limit" => {
                    let limit: u32 = value
                        .parse()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            bad(format!(
                                "limit must be a whole number from 1 to {MAX_LIMIT}"
                            ))
                        })?;
                    request.limit = Some(limit);
                }
                "cursor" => {
                    if !value.is_empty() {
                        request.cursor = Some(Cursor::decode(value)?);
                    }
                }
                other => {
                    let Some(name) = other.strip_prefix("attr.") else {
                        continue;
                    };
                    validate::attribute_key(name).map_err(|e| bad(format!("{other}: {e}")))?;
                    validate::attribute_value(value).map_err(|e| bad(format!("{other}: {e}")))?;
                    filters += 1;
                    if filters > MAX_ATTRIBUTE_FILTERS {
                        return Err(bad(format!(
                            "at most {MAX_ATTRIBUTE_FILTERS} attribute filters"
                        )));
                    }
                    let values = request.attributes.entry(name.to_owned()).or_default();
                    if !values.contains(value) {
                        values.push(value.clone());
                    }
                }
            }
        }
        if let (Some(min), Some(max)) = (request.min_price, request.max_price)
            && min > max
        {
            return Err(bad("min_price must not be above max_price"));
        }
        if let Some(cursor) = &request.cursor
            && cursor.sort != request.effective_sort()
        {
            return Err(bad(
                "the cursor belongs to a listing in another order; drop it to start again",
            ));
        }
        Ok(request)
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

fn price_param(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|v| validate::price_minor(*v).is_ok())
        .ok_or_else(|| {
            bad(format!(
                "{name} must be a non-negative whole number of minor units (2999 for 29.99)"
            ))
        })
}

/// The position after the last row of a page: that row's sort key and id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub sort: Sort,
    pub key: CursorKey,
    pub id: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CursorKey {
    Rank(f32),
    Price(i64),
    Created(DateTime<Utc>),
}

/// The cursor's wire form, before base64. `k` is a string so that floats and timestamps
/// round-trip exactly.
#[derive(Serialize, Deserialize)]
struct CursorWire {
    s: Sort,
    k: String,
    i: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let k = match self.key {
            CursorKey::Rank(rank) => rank.to_string(),
            CursorKey::Price(price) => price.to_string(),
            CursorKey::Created(at) => at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        let wire = CursorWire {
            s: self.sort,
            k,
            i: self.id,
        };
        // Serialising a struct of strings and a uuid cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(text: &str) -> Result<Self, ApiError> {
        let invalid = || bad("cursor is not one this service issued; drop it to start again");
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let wire: CursorWire = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let key = match wire.s {
            Sort::Relevance => CursorKey::Rank(
                wire.k
                    .parse::<f32>()
                    .ok()
                    .filter(|r| r.is_finite())
                    .ok_or_else(invalid)?,
            ),
            Sort::PriceAsc | Sort::PriceDesc => {
                CursorKey::Price(wire.k.parse().map_err(|_| invalid())?)
            }
            Sort::Newest => CursorKey::Created(
                DateTime::parse_from_rfc3339(&wire.k)
                    .map_err(|_| invalid())?
                    .with_timezone(&Utc),
            ),
        };
        Ok(Self {
            sort: wire.s,
            key,
            id: wire.i,
        })
    }
}

/// A word of a query that may be corrected: where it is in the query, and its lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Words shorter than this are never corrected (too many near neighbours).
const MIN_CORRECTABLE_CHARS: usize = 3;
/// Longer words are left alone (and `levenshtein` refuses over 255).
const MAX_CORRECTABLE_CHARS: usize = 40;

/// The alphabetic words of a query that typo correction may replace. Negated words
/// (`-linen`) and the websearch operator `or` are left out.
pub fn correctable_words(query: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut chars = query.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !c.is_alphanumeric() {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, next)) = chars.peek() {
            if !next.is_alphanumeric() {
                break;
            }
            end = i + next.len_utf8();
            chars.next();
        }
        let text = query[start..end].to_lowercase();
        // `-word` after a space (or at the start) is websearch negation; `t-shirt` is not.
        let negated = query[..start]
            .strip_suffix('-')
            .is_some_and(|before| before.is_empty() || before.ends_with(char::is_whitespace));
        let count = text.chars().count();
        if !negated
            && text != "or"
            && (MIN_CORRECTABLE_CHARS..=MAX_CORRECTABLE_CHARS).contains(&count)
            && text.chars().all(char::is_alphabetic)
        {
            words.push(Word { start, end, text });
        }
    }
    words
}

/// How far a correction may be from the word: one edit for short words, two otherwise.
pub fn max_distance(word: &str) -> i32 {
    if word.chars().count() <= 4 { 1 } else { 2 }
}

/// A vocabulary word that is within `max_distance` of a query word.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub word: String,
    /// Levenshtein distance (PostgreSQL's `levenshtein`).
    pub distance: i32,
    /// Trigram similarity (`pg_trgm`'s `similarity`).
    pub similarity: f32,
    /// Published products containing the word.
    pub ndoc: i32,
}

/// The best correction: fewest edits counting a swap of neighbours as one (so that
/// "shrit" prefers "shirt" over "short", both two Levenshtein edits away), then Levenshtein
/// distance, then trigram similarity, then how common the word is, then alphabetical.
pub fn best_candidate<'a>(word: &str, candidates: &'a [Candidate]) -> Option<&'a Candidate> {
    candidates.iter().filter(|c| c.word != word).min_by(|a, b| {
        osa_distance(word, &a.word)
            .cmp(&osa_distance(word, &b.word))
            .then(a.distance.cmp(&b.distance))
            .then(b.similarity.total_cmp(&a.similarity))
            .then(b.ndoc.cmp(&a.ndoc))
            .then(a.word.cmp(&b.word))
    })
}

/// Optimal string alignment distance: Levenshtein plus transposition of adjacent
/// characters as a single edit.
pub fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// The query with each `(word, replacement)` substituted at the word's place.
pub fn substitute(query: &str, replacements: &[(&Word, &str)]) -> String {
    let mut sorted: Vec<&(&Word, &str)> = replacements.iter().collect();
    sorted.sort_by_key(|(word, _)| word.start);
    let mut out = String::with_capacity(query.len());
    let mut at = 0;
    for (word, replacement) in sorted {
        if word.start < at || word.end > query.len() {
            continue;
        }
        out.push_str(&query[at..word.start]);
        out.push_str(replacement);
        at = word.end;
    }
    out.push_str(&query[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_every_parameter() {
        let request = SearchRequest::from_pairs(&pairs(&[
            ("q", " blue shirt "),
            ("category", "shirts"),
            ("min_price", "1000"),
            ("max_price", "5000"),
            ("in_stock", "true"),
            ("attr.color", "blue"),
            ("attr.color", "navy"),
            ("attr.size", "M"),
            ("sort", "price_asc"),
            ("limit", "5"),
            ("utm_source", "ignored"),
        ]))
        .unwrap();
        assert_eq!(request.q.as_deref(), Some("blue shirt"));
        assert_eq!(request.category.as_deref(), Some("shirts"));
        assert_eq!(
            (request.min_price, request.max_price),
            (Some(1000), Some(5000))
        );
        assert!(request.in_stock);
        assert_eq!(request.attributes["color"], vec!["blue", "navy"]);
        assert_eq!(request.effective_sort(), Sort::PriceAsc);
        assert_eq!(request.effective_limit(), 5);
    }

    #[test]
    fn rejects_malformed_parameters() {
        for bad in [
            ("min_price", "19.99"),
            ("min_price", "-1"),
            ("max_price", "abc"),
            ("in_stock", "maybe"),
            ("sort", "random"),
            ("limit", "0"),
            ("limit", "101"),
            ("category", "Not A Slug"),
            ("attr.Color", "blue"),
            ("cursor", "not-a-cursor"),
        ] {
            assert!(
                SearchRequest::from_pairs(&pairs(&[bad])).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(
            SearchRequest::from_pairs(&pairs(&[("min_price", "5"), ("max_price", "4")])).is_err()
        );
    }

    #[test]
    fn relevance_needs_a_query() {
        assert_eq!(SearchRequest::default().effective_sort(), Sort::Newest);
        let request = SearchRequest {
            q: Some("shirt".into()),
            ..Default::default()
        };
        assert_eq!(request.effective_sort(), Sort::Relevance);
    }

    #[test]
    fn cursors_round_trip_exactly() {
        let id = Uuid::now_v7();
        for key in [
            CursorKey::Rank(0.060_792_7),
            CursorKey::Rank(f32::MIN_POSITIVE),
            CursorKey::Price(2999),
            CursorKey::Created(Utc::now()),
        ] {
            let sort = match key {
                CursorKey::Rank(_) => Sort::Relevance,
                CursorKey::Price(_) => Sort::PriceDesc,
                CursorKey::Created(_) => Sort::Newest,
            };
            let cursor = Cursor { sort, key, id };
            let decoded = Cursor::decode(&cursor.encode()).unwrap();
            match (cursor.key, decoded.key) {
                // chrono keeps nanoseconds; the cursor keeps PostgreSQL's microseconds.
                (CursorKey::Created(a), CursorKey::Created(b)) => {
                    assert_eq!(a.timestamp_micros(), b.timestamp_micros());
                }
                (a, b) => assert_eq!(a, b),
            }
            assert_eq!(decoded.id, id);
        }
    }

    #[test]
    fn a_cursor_only_continues_its_own_order() {
        let cursor = Cursor {
            sort: Sort::PriceAsc,
            key: CursorKey::Price(10),
            id: Uuid::now_v7(),
        }
        .encode();
        assert!(SearchRequest::from_pairs(&pairs(&[("cursor", &cursor)])).is_err());
        assert!(
            SearchRequest::from_pairs(&pairs(&[("cursor", &cursor), ("sort", "price_asc")]))
                .is_ok()
        );
    }

    #[test]
    fn finds_correctable_words() {
        let words: Vec<String> = correctable_words("Blue SHRIT or \"t-shirt\" -linen xl 42")
            .into_iter()
            .map(|w| w.text)
            .collect();
        assert_eq!(words, ["blue", "shrit", "shirt"]);
    }

    #[test]
    fn transpositions_count_as_one_edit() {
        assert_eq!(osa_distance("shrit", "shirt"), 1);
        assert_eq!(osa_distance("shrit", "short"), 2);
        assert_eq!(osa_distance("", "abc"), 3);
        assert_eq!(osa_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn picks_the_closest_then_most_similar_then_most_common() {
        let candidates = vec![
            Candidate {
                word: "short".into(),
                distance: 2,
                similarity: 0.2,
                ndoc: 90,
            },
            Candidate {
                word: "shirt".into(),
                distance: 2,
                similarity: 0.2,
                ndoc: 10,
            },
            Candidate {
                word: "shirts".into(),
                distance: 2,
                similarity: 0.25,
                ndoc: 50,
            },
        ];
        assert_eq!(best_candidate("shrit", &candidates).unwrap().word, "shirt");
        assert_eq!(best_candidate("shrit", &[]), None);
    }

    #[test]
    fn substitutes_words_in_place() {
        let q = "Blue SHRIT -linen";
        let words = correctable_words(q);
        let out = substitute(q, &[(&words[1], "shirt")]);
        assert_eq!(out, "Blue shirt -linen");
    }
}
