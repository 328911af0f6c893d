//! The task and its parts as validated domain values.
//!
//! Each newtype has a `parse` constructor that is the only way to build it from outside input, so
//! code that holds a [`TaskTitle`] knows it is a valid title. Limits are public constants so that
//! tool descriptions and error messages quote the same numbers the checks use.

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Rejects characters that have no place in single-line text (and NUL, which PostgreSQL cannot
/// store), naming the first offender so the caller can find it.
fn reject_control(
    field: &'static str,
    s: &str,
    allow_newlines: bool,
) -> Result<(), ValidationError> {
    let bad = s
        .chars()
        .find(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')));
    match bad {
        Some(c) => Err(ValidationError::new(
            field,
            format!(
                "contains the control character U+{:04X}; remove it",
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

/// Checks a trimmed string's length in characters (not bytes), for messages people understand.
fn check_len(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    let n = s.chars().count();
    if n < min {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if n > max {
        return Err(ValidationError::new(
            field,
            format!("is {n} characters long; the limit is {max}"),
        ));
    }
    Ok(())
}

/// The id of the user who owns tasks. It comes from configuration (stdio) or a verified token
/// (HTTP), never from a tool argument.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 255;

    /// Exactly as given (a token's `sub`, an event's `owner`): `" alice"` is not `alice`, and
    /// not a user at all, since it could only be a mistake or a forgery.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_len("user", s, 1, Self::MAX_LEN)?;
        if s.trim() != s {
            return Err(ValidationError::new(
                "user",
                "begins or ends with whitespace; a user id is used exactly as given",
            ));
        }
        reject_control("user", s, false)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A task's title: 1 to 200 characters after trimming, on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTitle(String);

impl TaskTitle {
    pub const MAX_LEN: usize = 200;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim();
        check_len("title", s, 1, Self::MAX_LEN)?;
        reject_control("title", s, false)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A task's description: up to 2000 characters; newlines are allowed. Blank means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDescription(String);

impl TaskDescription {
    pub const MAX_LEN: usize = 2000;

    /// Returns `None` for a blank description, so that "" clears it like an explicit null.
    pub fn parse(s: &str) -> Result<Option<Self>, ValidationError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        check_len("description", s, 1, Self::MAX_LEN)?;
        reject_control("description", s, true)?;
        Ok(Some(Self(s.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How urgent a task is. The order of the variants is the sort order (low < medium < high).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
}

impl Priority {
    /// The integer stored in the database, chosen so that sorting by it sorts by urgency.
    pub fn rank(self) -> i16 {
        match self {
            Priority::Low => 1,
            Priority::Medium => 2,
            Priority::High => 3,
        }
    }

    pub fn from_rank(rank: i16) -> Option<Self> {
        match rank {
            1 => Some(Priority::Low),
            2 => Some(Priority::Medium),
            3 => Some(Priority::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }
}

/// Whether a task is still to be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Completed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Completed => "completed",
        }
    }

    pub fn parse_stored(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(TaskStatus::Pending),
            "completed" => Some(TaskStatus::Completed),
            _ => None,
        }
    }
}

/// One tag: 1 to 50 characters after trimming, lower-cased so that `Work` and `work` are one tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

impl Tag {
    pub const MAX_LEN: usize = 50;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim().to_lowercase();
        check_len("tags", &s, 1, Self::MAX_LEN)?;
        reject_control("tags", &s, false)?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A task's tags: at most 10 distinct tags, kept in the order first given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<Tag>);

impl Tags {
    pub const MAX_COUNT: usize = 10;

    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ValidationError> {
        // Checked before parsing each tag so that a hostile list of 10,000 tags costs nothing.
        if raw.len() > Self::MAX_COUNT * 4 {
            return Err(Self::too_many(raw.len()));
        }
        let mut seen = BTreeSet::new();
        let mut tags = Vec::new();
        for s in raw {
            let tag = Tag::parse(s.as_ref())?;
            if seen.insert(tag.clone()) {
                tags.push(tag);
            }
        }
        if tags.len() > Self::MAX_COUNT {
            return Err(Self::too_many(tags.len()));
        }
        Ok(Self(tags))
    }

    fn too_many(n: usize) -> ValidationError {
        ValidationError::new(
            "tags",
            format!("{n} tags given; a task has at most {}", Self::MAX_COUNT),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|t| t.0.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_trimmed_and_bounded() {
        assert_eq!(
            TaskTitle::parse("  Buy milk ").unwrap().as_str(),
            "Buy milk"
        );
        assert_eq!(
            TaskTitle::parse("   ").unwrap_err().message,
            "must not be empty"
        );
        let max = "é".repeat(TaskTitle::MAX_LEN);
        assert!(
            TaskTitle::parse(&max).is_ok(),
            "limit counts characters, not bytes"
        );
        let err = TaskTitle::parse(&format!("{max}x")).unwrap_err();
        assert_eq!(err.field, "title");
        assert!(err.message.contains("201 characters"), "{}", err.message);
    }

    #[test]
    fn title_rejects_control_characters_and_nul() {
        assert!(
            TaskTitle::parse("a\0b")
                .unwrap_err()
                .message
                .contains("U+0000")
        );
        assert!(TaskTitle::parse("line\nbreak").is_err());
    }

    #[test]
    fn description_allows_newlines_and_blank_means_none() {
        let d = TaskDescription::parse(" first\nsecond ").unwrap().unwrap();
        assert_eq!(d.as_str(), "first\nsecond");
        assert_eq!(TaskDescription::parse("  ").unwrap(), None);
        assert!(TaskDescription::parse(&"x".repeat(2001)).is_err());
        assert!(TaskDescription::parse("nul\0").is_err());
    }

    #[test]
    fn tags_are_normalised_and_deduplicated() {
        let tags = Tags::parse(&[" Work", "work", "HOME ", "home", "x"]).unwrap();
        assert_eq!(tags.to_strings(), ["work", "home", "x"]);
    }

    #[test]
    fn tags_are_limited() {
        let ten: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
        assert_eq!(Tags::parse(&ten).unwrap().len(), 10);
        let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert!(
            Tags::parse(&eleven)
                .unwrap_err()
                .message
                .contains("at most 10")
        );
        let huge: Vec<String> = (0..10_000).map(|i| format!("t{i}")).collect();
        assert!(Tags::parse(&huge).is_err());
        assert!(Tags::parse(&["   "]).is_err());
        assert!(Tags::parse(&["x".repeat(51)]).is_err());
    }

    #[test]
    fn priority_rank_round_trips_and_orders() {
        for p in [Priority::Low, Priority::Medium, Priority::High] {
            assert_eq!(Priority::from_rank(p.rank()), Some(p));
        }
        assert!(Priority::High.rank() > Priority::Medium.rank());
        assert_eq!(Priority::default(), Priority::Medium);
        assert_eq!(Priority::from_rank(9), None);
    }

    #[test]
    fn user_id_is_validated() {
        assert_eq!(UserId::parse("alice").unwrap().as_str(), "alice");
        assert!(UserId::parse(" alice").is_err());
        assert!(UserId::parse("alice\n").is_err());
        assert!(UserId::parse(" ").is_err());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\u{7}").is_err());
    }
}
