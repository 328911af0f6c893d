//! `list_tasks`: the query a listing runs, and the cursor that continues it.
//!
//! The cursor is opaque to the caller: base64 of the sort, the last row's sort value and id, and
//! a fingerprint of the filters, so a cursor reused with other filters is refused instead of
//! silently skipping rows.

use std::hash::Hasher;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use todo_shared::ValidationError;
use todo_shared::listing::{Sort, SortKey, SortOrder, TaskFilter};
use uuid::Uuid;

use crate::store::tasks::{Keyset, SortValue};

/// A validated `list_tasks` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: TaskFilter,
    pub sort: Sort,
    pub limit: u32,
    /// Where the previous page ended.
    pub after: Option<Keyset>,
}

/// The cursor as encoded: short keys keep it short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
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

impl ListQuery {
    /// The query for `filter`, sorted, `limit` rows a page, continuing after `cursor` (which
    /// must come from a page of this same listing).
    pub fn new(
        filter: TaskFilter,
        sort: Sort,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Self, ValidationError> {
        let mut query = Self {
            filter,
            sort,
            limit,
            after: None,
        };
        if let Some(raw) = cursor {
            query.after = Some(query.decode_cursor(raw)?);
        }
        Ok(query)
    }

    /// A stable fingerprint of everything but the page position (FNV-1a over a canonical form).
    fn fingerprint(&self) -> String {
        let f = &self.filter;
        let canonical = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}",
            f.status,
            f.priority,
            f.tags,
            f.search,
            f.due_before,
            f.due_after,
            f.overdue,
            self.sort.key,
            self.sort.order
        );
        let mut hasher = fnv::FnvHasher::default();
        hasher.write(canonical.as_bytes());
        format!("{:016x}", hasher.finish())
    }

    /// Decodes a cursor from a previous page of this same query.
    fn decode_cursor(&self, raw: &str) -> Result<Keyset, ValidationError> {
        let invalid = || {
            ValidationError::new(
                "cursor",
                "is not a cursor returned by list_tasks; pass `next_cursor` unchanged, or omit it for the first page",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.filters != self.fingerprint()
            || cursor.sort != self.sort.key
            || cursor.order != self.sort.order
        {
            return Err(ValidationError::new(
                "cursor",
                "belongs to a list with other filters or sorting; repeat the same filters, or omit the cursor to start over",
            ));
        }
        // The key must be what this sort's column holds; anything else was not made here.
        let instant = |v: &Value| {
            v.as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| SortValue::Time(t.with_timezone(&Utc)))
        };
        let value = match self.sort.key {
            SortKey::Created => instant(&cursor.key),
            SortKey::Due if cursor.key.is_null() => Some(SortValue::Null),
            SortKey::Due => instant(&cursor.key),
            SortKey::Priority => cursor
                .key
                .as_i64()
                .filter(|p| (1..=3).contains(p))
                .and_then(|p| i16::try_from(p).ok())
                .map(SortValue::Rank),
            // A title key is a folded title: no control characters (PostgreSQL refuses NUL).
            SortKey::Title => cursor
                .key
                .as_str()
                .filter(|t| !t.chars().any(char::is_control))
                .map(|t| SortValue::Text(t.to_owned())),
        };
        Ok(Keyset {
            value: value.ok_or_else(invalid)?,
            id: cursor.id,
        })
    }

    /// The cursor that continues after `last`.
    pub fn encode_cursor(&self, last: &RowKey) -> String {
        let instant =
            |t: DateTime<Utc>| Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true));
        let key = match self.sort.key {
            SortKey::Created => instant(last.created_at),
            SortKey::Due => last.due_at.map_or(Value::Null, instant),
            SortKey::Priority => Value::from(last.priority),
            SortKey::Title => Value::String(last.title_key.clone()),
        };
        let cursor = Cursor {
            sort: self.sort.key,
            order: self.sort.order,
            key,
            id: last.id,
            filters: self.fingerprint(),
        };
        // Serialising plain data cannot fail; an empty cursor would only restart the listing.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use todo_shared::task::{Priority, TaskStatus};

    fn query() -> ListQuery {
        ListQuery {
            filter: TaskFilter {
                status: Some(TaskStatus::Pending),
                ..TaskFilter::default()
            },
            sort: Sort::new(SortKey::Created, None),
            limit: 50,
            after: None,
        }
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
        other.filter.priority = Some(Priority::High);
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
