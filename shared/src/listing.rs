//! Listing tasks: which of a user's tasks a listing selects ([`TaskFilter`]) and in what order
//! ([`Sort`]).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::task::{Priority, Tag, TaskStatus};

/// Longest accepted search text, in characters.
pub const MAX_SEARCH_LEN: usize = 200;

/// What to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    Created,
    Due,
    Priority,
    Title,
}

impl SortKey {
    /// The order a person usually wants: newest, soonest due, most urgent, A to Z.
    pub fn default_order(self) -> SortOrder {
        match self {
            SortKey::Created | SortKey::Priority => SortOrder::Desc,
            SortKey::Due | SortKey::Title => SortOrder::Asc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// The order of a listing: by a key, in one direction. Ties are broken by task id, in the same
/// direction, so that the order is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub order: SortOrder,
}

impl Sort {
    /// By `key`, in `order` when given, else in the order a person usually wants.
    pub fn new(key: SortKey, order: Option<SortOrder>) -> Self {
        Self {
            key,
            order: order.unwrap_or(key.default_order()),
        }
    }
}

/// Which of a user's tasks a listing shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    /// `None` lists every status.
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    /// Tasks must carry all of these.
    pub tags: Vec<Tag>,
    /// Lower-cased text to find in the title or description, matched literally
    /// ([`parse_search`]).
    pub search: Option<String>,
    /// Due strictly before this time.
    pub due_before: Option<DateTime<Utc>>,
    /// Due strictly after this time.
    pub due_after: Option<DateTime<Utc>>,
    /// Only pending tasks whose due time has passed.
    pub overdue: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_is_normalised_and_bounded() {
        assert_eq!(parse_search("  MiLK ").unwrap(), Some("milk".into()));
        assert_eq!(parse_search("   ").unwrap(), None);
        assert!(parse_search(&"x".repeat(201)).is_err());
        assert!(parse_search("a\0b").is_err());
    }
}
