//! Reminders: when to tell the user about a task.
//!
//! A reminder is either at an absolute instant or a number of minutes before the task's due time.
//! A relative reminder follows the due time when it moves, so rescheduling a task never silently
//! drops or strands its reminders.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::time::{DateOnly, TimeInput};

/// At most this many reminders on one task.
pub const MAX_REMINDERS_PER_TASK: usize = 10;
/// The furthest a relative reminder may lie before the due time: one year.
pub const MAX_MINUTES_BEFORE: u32 = 366 * 24 * 60;

/// When a reminder should fire, as a tool accepts it: exactly one of the two fields.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderInput {
    /// Fire at this time: RFC 3339 (`2026-03-08T09:00:00-05:00`), a local date-time
    /// (`2026-03-08T09:00`, in the task's time zone) or a date (`2026-03-08`, meaning 09:00 that day).
    pub at: Option<String>,
    /// Fire this many minutes before the task's due time (the task must have one). The reminder
    /// moves with the due time.
    pub minutes_before: Option<u32>,
}

/// A validated reminder trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderTrigger {
    At(DateTime<Utc>),
    BeforeDue { minutes: u32 },
}

/// A bare date in a reminder means this local time of day: a reminder at midnight is rarely wanted.
const DATE_ONLY_REMINDER_TIME: &str = "09:00";

/// A reminder as the caller gave it, checked for form; [`ReminderSpec::resolve`] reads its time
/// in the task's zone, which an update knows only once the task is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReminderSpec {
    At(TimeInput),
    BeforeDue { minutes: u32 },
}

impl ReminderSpec {
    /// Checks the form of a reminder; `field` names the argument in errors.
    pub fn parse(field: &'static str, input: &ReminderInput) -> Result<Self, ValidationError> {
        match (&input.at, input.minutes_before) {
            (Some(at), None) => {
                let at = at.trim();
                // A bare date means a time of day, read in the zone like any local time.
                let at = if is_date_only(at) {
                    TimeInput::parse(field, &format!("{at}T{DATE_ONLY_REMINDER_TIME}"))?
                } else {
                    TimeInput::parse(field, at)?
                };
                Ok(Self::At(at))
            }
            (None, Some(minutes)) if minutes <= MAX_MINUTES_BEFORE => {
                Ok(Self::BeforeDue { minutes })
            }
            (None, Some(_)) => Err(ValidationError::new(
                field,
                format!("`minutes_before` must be at most {MAX_MINUTES_BEFORE} (one year)"),
            )),
            _ => Err(ValidationError::new(
                field,
                "give exactly one of `at` (a time) or `minutes_before` (minutes before the due time)",
            )),
        }
    }

    /// The trigger, with a time given as local time read in `zone`.
    pub fn resolve(&self, zone: Tz) -> Result<ReminderTrigger, ValidationError> {
        Ok(match self {
            Self::At(at) => ReminderTrigger::At(at.resolve(zone, DateOnly::StartOfDay)?),
            Self::BeforeDue { minutes } => ReminderTrigger::BeforeDue { minutes: *minutes },
        })
    }
}

/// Parses the reminders of a task due at `due` in `zone`: at most [`MAX_REMINDERS_PER_TASK`],
/// each lying ahead of `now`. Returns each trigger with its first firing time.
pub fn parse_reminders(
    inputs: &[ReminderInput],
    due: Option<DateTime<Utc>>,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<Vec<(ReminderTrigger, DateTime<Utc>)>, ValidationError> {
    if inputs.len() > MAX_REMINDERS_PER_TASK {
        return Err(ValidationError::new(
            "reminders",
            format!(
                "{} reminders given; a task has at most {MAX_REMINDERS_PER_TASK}",
                inputs.len()
            ),
        ));
    }
    inputs
        .iter()
        .map(|input| {
            let trigger = ReminderTrigger::parse("reminders", input, zone)?;
            let at = trigger.check_future("reminders", due, now)?;
            Ok((trigger, at))
        })
        .collect()
}

impl ReminderTrigger {
    /// Parses a reminder for a task in `zone`; `field` names the argument in errors.
    pub fn parse(
        field: &'static str,
        input: &ReminderInput,
        zone: Tz,
    ) -> Result<Self, ValidationError> {
        ReminderSpec::parse(field, input)?.resolve(zone)
    }

    /// The instant the reminder fires for a task due at `due`; `None` for a relative reminder on a
    /// task without a due time.
    pub fn fire_at(self, due: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match self {
            Self::At(t) => Some(t),
            Self::BeforeDue { minutes } => due.map(|d| d - Duration::minutes(i64::from(minutes))),
        }
    }

    pub fn minutes_before(self) -> Option<u32> {
        match self {
            Self::At(_) => None,
            Self::BeforeDue { minutes } => Some(minutes),
        }
    }

    /// Checks the rule that a new reminder lies in the future, given the task's due time.
    pub fn check_future(
        self,
        field: &'static str,
        due: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, ValidationError> {
        let Some(at) = self.fire_at(due) else {
            return Err(ValidationError::new(
                field,
                "`minutes_before` needs a task with a due time; set `due` first or use `at`",
            ));
        };
        if at <= now {
            return Err(ValidationError::new(
                field,
                format!(
                    "the reminder time {} is in the past; choose a future time",
                    at.to_rfc3339()
                ),
            ));
        }
        Ok(at)
    }
}

fn is_date_only(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn input(at: Option<&str>, minutes_before: Option<u32>) -> ReminderInput {
        ReminderInput {
            at: at.map(str::to_owned),
            minutes_before,
        }
    }

    #[test]
    fn absolute_reminder_in_zone() {
        let t = ReminderTrigger::parse(
            "r",
            &input(Some("2026-07-01T08:30"), None),
            chrono_tz::Europe::Paris,
        )
        .unwrap();
        assert_eq!(
            t,
            ReminderTrigger::At(Utc.with_ymd_and_hms(2026, 7, 1, 6, 30, 0).unwrap())
        );
    }

    #[test]
    fn date_only_reminder_is_nine_in_the_morning() {
        let t = ReminderTrigger::parse(
            "r",
            &input(Some("2026-07-01"), None),
            chrono_tz::America::New_York,
        )
        .unwrap();
        assert_eq!(
            t,
            ReminderTrigger::At(Utc.with_ymd_and_hms(2026, 7, 1, 13, 0, 0).unwrap())
        );
    }

    #[test]
    fn relative_reminder_follows_due() {
        let t = ReminderTrigger::parse("r", &input(None, Some(30)), Tz::UTC).unwrap();
        let due = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        assert_eq!(
            t.fire_at(Some(due)),
            Some(Utc.with_ymd_and_hms(2026, 7, 1, 11, 30, 0).unwrap())
        );
        assert_eq!(t.fire_at(None), None);
    }

    #[test]
    fn exactly_one_field() {
        assert!(ReminderTrigger::parse("r", &input(None, None), Tz::UTC).is_err());
        assert!(ReminderTrigger::parse("r", &input(Some("2026-01-01"), Some(5)), Tz::UTC).is_err());
        assert!(
            ReminderTrigger::parse("r", &input(None, Some(MAX_MINUTES_BEFORE + 1)), Tz::UTC)
                .is_err()
        );
    }

    #[test]
    fn must_lie_in_the_future() {
        let now = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        let past = ReminderTrigger::At(now - Duration::seconds(1));
        assert!(
            past.check_future("r", None, now)
                .unwrap_err()
                .message
                .contains("past")
        );
        let future = ReminderTrigger::At(now + Duration::minutes(1));
        assert_eq!(
            future.check_future("r", None, now).unwrap(),
            now + Duration::minutes(1)
        );
        let relative = ReminderTrigger::BeforeDue { minutes: 10 };
        assert!(
            relative
                .check_future("r", None, now)
                .unwrap_err()
                .message
                .contains("due time")
        );
        assert!(
            relative
                .check_future("r", Some(now + Duration::minutes(5)), now)
                .is_err()
        );
    }
}
