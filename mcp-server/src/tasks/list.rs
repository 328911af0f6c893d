//! `list_tasks`: filters, sort orders and keyset pagination.
//!
//! Pages are cut with a keyset (the last row's sort key and id) rather than an offset, so a page
//! boundary stays put while tasks are added or removed before it. The cursor is opaque to the
//! caller: base64 of the sort, the last key, and a fingerprint of the filters, so a cursor reused
//! with other filters is refused instead of silently skipping rows.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use todo_shared::ValidationError;
use todo_shared::task::{Priority, Tag, TaskStatus};
use uuid::Uuid;

use crate::db::{Arg, Query};

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;
/// Longest accepted search text, in characters.
pub const MAX_SEARCH_LEN: usize = 200;

/// What to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    Created,
    Due,
    Priority,
    Title,
}

impl SortKey {
    fn column(self) -> &'static str {
        match self {
            SortKey::Created => "t.created_at",
            SortKey::Due => "t.due_at",
            SortKey::Priority => "t.priority",
            SortKey::Title => "t.title_key",
        }
    }

    /// The order a person usually wants: newest, soonest due, most urgent, A to Z.
    pub fn default_order(self) -> SortOrder {
        match self {
            SortKey::Created | SortKey::Priority => SortOrder::Desc,
            SortKey::Due | SortKey::Title => SortOrder::Asc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

impl SortOrder {
    fn sql(self) -> &'static str {
        match self {
            SortOrder::Asc => "ASC",
            SortOrder::Desc => "DESC",
        }
    }

    fn after(self) -> &'static str {
        match self {
            SortOrder::Asc => ">",
            SortOrder::Desc => "<",
        }
    }
}

/// A validated `list_tasks` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// `None` lists every status.
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    /// Tasks must carry all of these.
    pub tags: Vec<Tag>,
    /// Lower-cased search text, matched literally.
    pub search: Option<String>,
    pub due_before: Option<DateTime<Utc>>,
    pub due_after: Option<DateTime<Utc>>,
    /// Only pending tasks whose due time has passed.
    pub overdue: bool,
    pub sort: SortKey,
    pub order: SortOrder,
    pub limit: u32,
    /// Where the previous page ended.
    pub after: Option<Cursor>,
}

/// The sort key value of the last row of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    sort: SortKey,
    #[serde(rename = "o")]
    order: SortOrder,
    /// The last row's sort value: an RFC 3339 instant, a priority rank, a title key, or null.
    #[serde(rename = "k")]
    key: Value,
    #[serde(rename = "i")]
    id: Uuid,
    /// Fingerprint of the filters the cursor was made for.
    #[serde(rename = "f")]
    filters: String,
}

/// The sort values of a row, as the cursor needs them.
pub struct RowKey {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub priority: i16,
    pub title_key: String,
}

/// Escapes `%`, `_` and the escape character itself so that search text matches literally.
pub fn like_pattern(search: &str) -> String {
    let mut out = String::with_capacity(search.len() + 2);
    out.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Normalises search text: trimmed, lower-cased, bounded, single-line. Blank means no search.
pub fn parse_search(s: &str) -> Result<Option<String>, ValidationError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().count() > MAX_SEARCH_LEN {
        return Err(ValidationError::new(
            "search",
            format!("is longer than {MAX_SEARCH_LEN} characters; search for a shorter phrase"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "search",
            "must not contain control characters",
        ));
    }
    Ok(Some(s.to_lowercase()))
}

pub fn parse_limit(limit: Option<u32>) -> Result<u32, ValidationError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n @ 1..=MAX_LIMIT) => Ok(n),
        Some(n) => Err(ValidationError::new(
            "limit",
            format!("{n} is out of range; use 1 to {MAX_LIMIT}"),
        )),
    }
}

impl ListQuery {
    /// A stable fingerprint of everything but the page position (FNV-1a over a canonical form).
    fn fingerprint(&self) -> String {
        let canonical = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}",
            self.status,
            self.priority,
            self.tags,
            self.search,
            self.due_before,
            self.due_after,
            self.overdue,
            self.sort,
            self.order
        );
        let hash = canonical.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
    }

    /// Decodes a cursor from a previous page of this same query.
    pub fn decode_cursor(&self, raw: &str) -> Result<Cursor, ValidationError> {
        let invalid = || {
            ValidationError::new(
                "cursor",
                "is not a cursor returned by list_tasks; pass `next_cursor` unchanged, or omit it for the first page",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.filters != self.fingerprint()
            || cursor.sort != self.sort
            || cursor.order != self.order
        {
            return Err(ValidationError::new(
                "cursor",
                "belongs to a list with other filters or sorting; repeat the same filters, or omit the cursor to start over",
            ));
        }
        // The key must be what this sort's column holds; anything else was not made here.
        let instant = |v: &Value| {
            v.as_str()
                .is_some_and(|s| DateTime::parse_from_rfc3339(s).is_ok())
        };
        let key_fits = match self.sort {
            SortKey::Created => instant(&cursor.key),
            SortKey::Due => cursor.key.is_null() || instant(&cursor.key),
            SortKey::Priority => cursor.key.as_i64().is_some_and(|p| (1..=3).contains(&p)),
            // A title key is a folded title: no control characters (PostgreSQL refuses NUL).
            SortKey::Title => cursor
                .key
                .as_str()
                .is_some_and(|t| !t.chars().any(char::is_control)),
        };
        if !key_fits {
            return Err(invalid());
        }
        Ok(cursor)
    }

    /// The cursor that continues after `last`.
    pub fn encode_cursor(&self, last: &RowKey) -> String {
        let key = match self.sort {
            SortKey::Created => Value::String(crate::db::sqlite_time(&last.created_at)),
            SortKey::Due => last
                .due_at
                .map_or(Value::Null, |d| Value::String(crate::db::sqlite_time(&d))),
            SortKey::Priority => Value::from(last.priority),
            SortKey::Title => Value::String(last.title_key.clone()),
        };
        let cursor = Cursor {
            sort: self.sort,
            order: self.order,
            key,
            id: last.id,
            filters: self.fingerprint(),
        };
        // Serialising plain data cannot fail; an empty cursor would only restart the listing.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
    }

    /// Appends the `WHERE` conditions shared by the page query and the count.
    fn push_filters(&self, q: &mut Query, owner: &str, now: DateTime<Utc>) {
        q.push(" WHERE t.owner = ").push_bind(owner);
        if let Some(status) = self.status {
            q.push(" AND t.status = ").push_bind(status.as_str());
        }
        if let Some(priority) = self.priority {
            q.push(" AND t.priority = ").push_bind(priority.rank());
        }
        if let Some(search) = &self.search {
            q.push(" AND t.search_text LIKE ")
                .push_bind(like_pattern(search))
                .push(" ESCAPE '\\'");
        }
        if let Some(t) = self.due_before {
            q.push(" AND t.due_at < ").push_bind(t);
        }
        if let Some(t) = self.due_after {
            q.push(" AND t.due_at > ").push_bind(t);
        }
        if self.overdue {
            q.push(" AND t.status = 'pending' AND t.due_at < ")
                .push_bind(now);
        }
        if !self.tags.is_empty() {
            q.push(" AND t.id IN (SELECT tt.task_id FROM task_tags tt WHERE tt.owner = ")
                .push_bind(owner)
                .push(" AND tt.tag IN (");
            for (i, tag) in self.tags.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.push_bind(tag.as_str());
            }
            q.push(") GROUP BY tt.task_id HAVING COUNT(*) = ")
                .push_bind(self.tags.len() as i64)
                .push(")");
        }
    }

    /// `SELECT COUNT(*) AS total` over the filters, ignoring the page position.
    pub fn count_query(&self, owner: &str, now: DateTime<Utc>) -> Query {
        let mut q = Query::new("SELECT COUNT(*) AS total FROM tasks t");
        self.push_filters(&mut q, owner, now);
        q
    }

    /// The page query: `columns` of up to `limit + 1` rows (the extra row says there is more).
    pub fn page_query(&self, columns: &str, owner: &str, now: DateTime<Utc>) -> Query {
        let mut q = Query::new(format!("SELECT {columns} FROM tasks t"));
        self.push_filters(&mut q, owner, now);
        if let Some(cursor) = &self.after {
            self.push_keyset(&mut q, cursor);
        }
        let col = self.sort.column();
        let dir = self.order.sql();
        // Tasks without a due time come last in both directions. Only `due` can be NULL, and the
        // clause is left off the other keys so that their ORDER BY matches an index exactly.
        let nulls = if self.sort == SortKey::Due {
            " NULLS LAST"
        } else {
            ""
        };
        q.push(&format!(" ORDER BY {col} {dir}{nulls}, t.id {dir} LIMIT "))
            .push_bind(i64::from(self.limit) + 1);
        q
    }

    /// Rows strictly after the cursor in the current order, with NULL keys last.
    fn push_keyset(&self, q: &mut Query, cursor: &Cursor) {
        let col = self.sort.column();
        let cmp = self.order.after();
        let key: Option<Arg> = match (&cursor.key, self.sort) {
            (Value::Null, _) => None,
            (Value::Number(n), SortKey::Priority) => Some(Arg::Int(n.as_i64().unwrap_or_default())),
            (Value::String(s), SortKey::Title) => Some(Arg::Text(s.clone())),
            (Value::String(s), SortKey::Created | SortKey::Due) => {
                Some(match DateTime::parse_from_rfc3339(s) {
                    Ok(t) => Arg::Time(t.with_timezone(&Utc)),
                    Err(_) => Arg::OptTime(None),
                })
            }
            _ => None,
        };
        match key {
            Some(key) => {
                q.push(&format!(" AND (({col}, t.id) {cmp} ("))
                    .push_bind(key)
                    .push(", ")
                    .push_bind(cursor.id)
                    .push(&format!(") OR {col} IS NULL)"));
            }
            None => {
                q.push(&format!(" AND {col} IS NULL AND t.id {cmp} "))
                    .push_bind(cursor.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query() -> ListQuery {
        ListQuery {
            status: Some(TaskStatus::Pending),
            priority: None,
            tags: vec![],
            search: None,
            due_before: None,
            due_after: None,
            overdue: false,
            sort: SortKey::Created,
            order: SortOrder::Desc,
            limit: 50,
            after: None,
        }
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn search_is_normalised_and_bounded() {
        assert_eq!(parse_search("  MiLK ").unwrap(), Some("milk".into()));
        assert_eq!(parse_search("   ").unwrap(), None);
        assert!(parse_search(&"x".repeat(201)).is_err());
        assert!(parse_search("a\0b").is_err());
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(parse_limit(None).unwrap(), 50);
        assert_eq!(parse_limit(Some(200)).unwrap(), 200);
        assert!(parse_limit(Some(0)).is_err());
        assert!(parse_limit(Some(201)).is_err());
    }

    #[test]
    fn cursor_round_trips_for_the_same_query_only() {
        let q = query();
        let key = RowKey {
            id: Uuid::now_v7(),
            created_at: Utc::now(),
            due_at: None,
            priority: 2,
            title_key: "a".into(),
        };
        let raw = q.encode_cursor(&key);
        let cursor = q.decode_cursor(&raw).unwrap();
        assert_eq!(cursor.id, key.id);

        let mut other = query();
        other.priority = Some(Priority::High);
        assert!(
            other
                .decode_cursor(&raw)
                .unwrap_err()
                .message
                .contains("other filters")
        );
        assert!(q.decode_cursor("not a cursor").is_err());
        // A cursor whose key was tampered with into another type is refused too.
        let mut forged: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&raw).unwrap()).unwrap();
        for key in [
            json!({"$gt": ""}),
            json!([1, 2]),
            json!(true),
            json!(1e308),
            json!(null),
        ] {
            forged["k"] = key;
            let raw = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
            assert!(q.decode_cursor(&raw).is_err(), "{forged}");
        }
        assert!(q.decode_cursor(&URL_SAFE_NO_PAD.encode(b"{}")).is_err());
    }
}
