//! Recurrence rules: how a task repeats and when it is due next.
//!
//! # The series
//!
//! A series is anchored on its **start**, the task's first due time. The start is always
//! occurrence #1, whether or not the rule would produce it itself (like `DTSTART` in RFC 5545):
//! a weekly Monday/Wednesday rule started on a Tuesday is due that Tuesday, then on the Mondays
//! and Wednesdays after it. Later occurrences come from the rule, evaluated in the task's time
//! zone. The series ends after `count` occurrences (the start included) or with the last
//! occurrence at or before `until`, whichever comes first; with neither it never ends.
//!
//! # Calendar rules (`daily`, `weekly`, `monthly`, `yearly`)
//!
//! Every `interval` days, weeks, months or years, at the start's local time of day, computed with
//! the `rrule` crate (RFC 5545):
//!
//! - **Weekly** repeats on `weekdays`, or on the start's weekday when none are given. Weeks begin
//!   on Monday, which decides which weeks count when `interval` > 1.
//! - **Month end**: a monthly series that starts on the 29th, 30th or 31st falls on the *last day*
//!   of months too short for it and returns to its day in longer ones: Jan 31 → Feb 28 (Feb 29 in
//!   leap years) → Mar 31 → Apr 30. A yearly series that starts on Feb 29 falls on Feb 28 in
//!   common years and on Feb 29 in leap years. This is the RFC 5545 idiom
//!   `BYMONTHDAY=28,29,30,31;BYSETPOS=-1` ("the last of these days that the month has").
//! - **DST**: the series keeps its local wall-clock time (a 09:00 New York task stays at 09:00
//!   when the offset changes). A wall time that falls in a DST gap or overlap is resolved with
//!   [`time::resolve_local`]: the earlier instant in an overlap, shifted forward by the gap length
//!   in a gap (02:30 → 03:30 on a spring-forward day), exactly as due times are parsed.
//!   To get that, `rrule` runs on *floating* wall-clock times (a UTC `DTSTART`, which has no
//!   transitions) and each result is placed in the zone by `resolve_local`. Why not hand `rrule`
//!   the zone: it resolves such times from local midnight and silently drops the occurrence when
//!   midnight itself is skipped or repeated, as in zones that change clocks at midnight.
//!
//! # Cron rules
//!
//! A standard 5-field expression, `minute hour day-of-month month day-of-week`, matched against
//! the local wall clock of the task's zone by the `croner` crate. Day-of-month and day-of-week
//! combine with OR as in Vixie cron (`+` before day-of-week makes it AND); croner's `L`, `W` and
//! `#` extensions are accepted; seconds and year fields are not, so a rule fires at most once a
//! minute. An expression that can never fire (`0 0 31 2 *`) is rejected.
//!
//! DST follows croner (Vixie cron and the Open Cron Pattern Specification), which differs from
//! calendar rules in the gap:
//!
//! - a **fixed time** (single minute and hour) that falls in a gap fires once, at the first minute
//!   after the gap (`30 2 * * *` fires at 03:00 on a New York spring-forward day); in an overlap
//!   it fires once, on the first pass;
//! - a **wildcard or stepped** minute or hour skips times inside a gap and fires on both passes
//!   of an overlap (`*/30 * * * *` fires at 01:00 and 01:30 EDT, then again EST).
//!
//! # Limits
//!
//! Occurrences after the year [`time::MAX_YEAR`] (for cron rules: after 4999, croner's search
//! horizon) are not produced; the series simply ends. [`Recurrence::next_occurrence`] walks
//! calendar series (and cron series with `count`) from their start, so its cost grows with the
//! number of occurrences already past: microseconds per occurrence. A calendar series whose start
//! lies outside [`time::MIN_YEAR`]`..=`[`time::MAX_YEAR`] (which parsed due times cannot) has no
//! later occurrences.
//!
//! # Stored JSON
//!
//! [`Recurrence`] serializes to a flat object (for a database JSON column and event payloads):
//!
//! ```json
//! {"frequency": "weekly", "interval": 2, "weekdays": ["mo", "we"], "until": "2027-01-01T04:59:59Z", "count": 10}
//! {"frequency": "cron", "cron": "0 9 * * 1-5"}
//! ```
//!
//! - `frequency`: `daily`, `weekly`, `monthly`, `yearly` or `cron`; always present.
//! - `interval`: calendar rules only, always present, 1..=1000.
//! - `weekdays`: weekly rules only, Monday first without duplicates; absent means the start's
//!   weekday.
//! - `until`: the inclusive end as a UTC RFC 3339 instant (already resolved in the task's zone);
//!   absent when unbounded.
//! - `count`: total occurrences including the start, 1..=10000; absent when unbounded.
//! - `cron`: cron rules only, the expression with its whitespace normalised.
//!
//! Unknown fields are rejected, and deserializing revalidates the rule.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use rrule::{NWeekday, RRule, RRuleSet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::time::{self, DateOnly, quote};

/// Largest accepted `interval`.
pub const MAX_INTERVAL: u32 = 1000;
/// Largest accepted `count`.
pub const MAX_COUNT: u32 = 10_000;

/// How often a task repeats: a calendar unit, or a cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Cron,
}

impl Frequency {
    fn as_str(self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
            Frequency::Yearly => "yearly",
            Frequency::Cron => "cron",
        }
    }
}

/// A day of the week: `mo`, `tu`, `we`, `th`, `fr`, `sa`, `su`.
///
/// Full lowercase names (`monday`) are accepted as well, as a courtesy to callers that ignore the
/// schema; they serialize back as the two-letter code.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Weekday {
    #[serde(rename = "mo", alias = "monday")]
    Mo,
    #[serde(rename = "tu", alias = "tuesday")]
    Tu,
    #[serde(rename = "we", alias = "wednesday")]
    We,
    #[serde(rename = "th", alias = "thursday")]
    Th,
    #[serde(rename = "fr", alias = "friday")]
    Fr,
    #[serde(rename = "sa", alias = "saturday")]
    Sa,
    #[serde(rename = "su", alias = "sunday")]
    Su,
}

impl Weekday {
    fn to_chrono(self) -> chrono::Weekday {
        match self {
            Weekday::Mo => chrono::Weekday::Mon,
            Weekday::Tu => chrono::Weekday::Tue,
            Weekday::We => chrono::Weekday::Wed,
            Weekday::Th => chrono::Weekday::Thu,
            Weekday::Fr => chrono::Weekday::Fri,
            Weekday::Sa => chrono::Weekday::Sat,
            Weekday::Su => chrono::Weekday::Sun,
        }
    }

    fn short_name(self) -> &'static str {
        match self {
            Weekday::Mo => "Mon",
            Weekday::Tu => "Tue",
            Weekday::We => "Wed",
            Weekday::Th => "Thu",
            Weekday::Fr => "Fri",
            Weekday::Sa => "Sat",
            Weekday::Su => "Sun",
        }
    }
}

/// How a task repeats. The task's first due time is the first occurrence; later ones follow the
/// rule in the task's time zone, keeping the first due time's local time of day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceInput {
    /// How often the task repeats: "daily", "weekly", "monthly", "yearly", or "cron" to follow
    /// the cron expression in `cron`. A monthly rule starting on the 29th-31st falls on the last
    /// day of shorter months; a yearly rule starting on Feb 29 falls on Feb 28 in common years.
    pub frequency: Frequency,

    /// Repeat every N days, weeks, months or years (1-1000, default 1), e.g. 2 with "weekly"
    /// for every other week. Not allowed with "cron".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub interval: Option<u32>,

    /// Only with "weekly": the days of the week to repeat on, as two-letter codes
    /// (mo tu we th fr sa su), e.g. ["mo", "we", "fr"]. Omit to repeat on the weekday of the
    /// first due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekdays: Option<Vec<Weekday>>,

    /// Optional last possible occurrence, inclusive, in the task's time zone: a date
    /// "2026-12-31" (through the end of that day), a local date-time "2026-12-31T17:00", or
    /// RFC 3339 with an offset. May be combined with `count`; whichever ends first wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,

    /// Optional total number of occurrences, counting the first due time (1-10000): 5 means
    /// the first due time and 4 repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub count: Option<u32>,

    /// Required with frequency "cron", not allowed otherwise: a standard 5-field cron expression
    /// "minute hour day-of-month month day-of-week" evaluated in the task's time zone, e.g.
    /// "0 9 * * 1-5" for 09:00 Monday to Friday, or "30 17 1 * *" for 17:30 on the 1st of each
    /// month. Day-of-week 0 or 7 is Sunday. No seconds or year field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
}

/// A validated recurrence rule. See the [module documentation](self) for its meaning and its
/// stored JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RecurrenceRecord", into = "RecurrenceRecord")]
pub struct Recurrence {
    rule: Rule,
    /// Inclusive end of the series.
    until: Option<DateTime<Utc>>,
    /// Total occurrences, the start included; at least 1.
    count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Calendar(CalendarRule),
    Cron(Box<CronRule>),
}

#[derive(Debug, Clone, PartialEq)]
struct CalendarRule {
    unit: CalendarUnit,
    /// 1..=MAX_INTERVAL.
    interval: u32,
    /// Weekly rules only; sorted and deduplicated. Empty means the start's weekday.
    weekdays: Vec<Weekday>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CalendarUnit {
    Day,
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone, PartialEq)]
struct CronRule {
    /// As given, with whitespace normalised; what is stored and shown.
    expression: String,
    cron: Cron,
}

impl Recurrence {
    /// Validates a recurrence from a tool call. `zone` is the task's time zone, in which `until`
    /// is read.
    pub fn parse(input: RecurrenceInput, zone: Tz) -> Result<Recurrence, ValidationError> {
        let until = input
            .until
            .as_deref()
            .map(|s| time::parse_datetime("recurrence.until", s, zone, DateOnly::EndOfDay))
            .transpose()?;
        let recurrence = Self::build(
            input.frequency,
            input.interval,
            input.weekdays,
            until,
            input.count,
            input.cron.as_deref(),
        )?;
        if let Rule::Cron(rule) = &recurrence.rule {
            rule.ensure_it_fires(zone)?;
        }
        Ok(recurrence)
    }

    /// The checks shared by [`Recurrence::parse`] and deserialization.
    fn build(
        frequency: Frequency,
        interval: Option<u32>,
        weekdays: Option<Vec<Weekday>>,
        until: Option<DateTime<Utc>>,
        count: Option<u32>,
        cron: Option<&str>,
    ) -> Result<Recurrence, ValidationError> {
        if let Some(count) = count
            && !(1..=MAX_COUNT).contains(&count)
        {
            return Err(ValidationError::new(
                "recurrence.count",
                format!(
                    "must be between 1 and {MAX_COUNT} (the first due time counts as 1), got {count}"
                ),
            ));
        }
        // An empty list is what many callers send for "not set"; it means the same as omitting it.
        let weekdays = weekdays.unwrap_or_default();

        let unit = match frequency {
            Frequency::Daily => CalendarUnit::Day,
            Frequency::Weekly => CalendarUnit::Week,
            Frequency::Monthly => CalendarUnit::Month,
            Frequency::Yearly => CalendarUnit::Year,
            Frequency::Cron => {
                if interval.is_some() {
                    return Err(ValidationError::new(
                        "recurrence.interval",
                        "is not allowed with frequency 'cron'; express the spacing in the cron \
                         expression instead (e.g. '0 9 */2 * *' for 09:00 every other day of the \
                         month)",
                    ));
                }
                if !weekdays.is_empty() {
                    return Err(ValidationError::new(
                        "recurrence.weekdays",
                        "is only allowed with frequency 'weekly'; with 'cron', put the days in \
                         the day-of-week field (e.g. '0 9 * * 1,3')",
                    ));
                }
                let expression = cron.ok_or_else(|| {
                    ValidationError::new(
                        "recurrence.cron",
                        "is required with frequency 'cron': a 5-field expression such as \
                         '0 9 * * 1-5' (09:00 Monday to Friday)",
                    )
                })?;
                return Ok(Recurrence {
                    rule: Rule::Cron(Box::new(CronRule::parse(expression)?)),
                    until,
                    count,
                });
            }
        };

        if cron.is_some() {
            return Err(ValidationError::new(
                "recurrence.cron",
                format!(
                    "is only allowed with frequency 'cron', not '{}'; remove it or set frequency \
                     to 'cron'",
                    frequency.as_str()
                ),
            ));
        }
        let interval = interval.unwrap_or(1);
        if !(1..=MAX_INTERVAL).contains(&interval) {
            return Err(ValidationError::new(
                "recurrence.interval",
                format!("must be between 1 and {MAX_INTERVAL}, got {interval}"),
            ));
        }
        if !weekdays.is_empty() && unit != CalendarUnit::Week {
            return Err(ValidationError::new(
                "recurrence.weekdays",
                format!(
                    "is only allowed with frequency 'weekly', not '{}'; use frequency 'weekly' \
                     to repeat on chosen days",
                    frequency.as_str()
                ),
            ));
        }
        let mut weekdays = weekdays;
        weekdays.sort_unstable();
        weekdays.dedup();

        Ok(Recurrence {
            rule: Rule::Calendar(CalendarRule {
                unit,
                interval,
                weekdays,
            }),
            until,
            count,
        })
    }

    /// The rule as tool input, with `until` written in `zone` (RFC 3339 with offset), e.g. to
    /// echo it back to the caller. Parsing the result with the same zone gives `self` again.
    pub fn to_input(&self, zone: Tz) -> RecurrenceInput {
        let record = RecurrenceRecord::from(self.clone());
        RecurrenceInput {
            frequency: record.frequency,
            interval: record.interval,
            weekdays: (!record.weekdays.is_empty()).then_some(record.weekdays),
            until: record.until.map(|t| time::format_in_zone(t, zone)),
            count: record.count,
            cron: record.cron,
        }
    }

    /// The kind of rule.
    pub fn frequency(&self) -> Frequency {
        match &self.rule {
            Rule::Calendar(rule) => match rule.unit {
                CalendarUnit::Day => Frequency::Daily,
                CalendarUnit::Week => Frequency::Weekly,
                CalendarUnit::Month => Frequency::Monthly,
                CalendarUnit::Year => Frequency::Yearly,
            },
            Rule::Cron(_) => Frequency::Cron,
        }
    }

    /// Every how many units a calendar rule repeats; `None` for cron rules.
    pub fn interval(&self) -> Option<u32> {
        match &self.rule {
            Rule::Calendar(rule) => Some(rule.interval),
            Rule::Cron(_) => None,
        }
    }

    /// The weekdays of a weekly rule, Monday first; empty when it follows the start's weekday.
    pub fn weekdays(&self) -> &[Weekday] {
        match &self.rule {
            Rule::Calendar(rule) => &rule.weekdays,
            Rule::Cron(_) => &[],
        }
    }

    /// The cron expression of a cron rule.
    pub fn cron(&self) -> Option<&str> {
        match &self.rule {
            Rule::Calendar(_) => None,
            Rule::Cron(rule) => Some(&rule.expression),
        }
    }

    /// The inclusive end of the series.
    pub fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }

    /// The total number of occurrences, the start included.
    pub fn count(&self) -> Option<u32> {
        self.count
    }

    /// Checks the rule against the series start (the task's first due time): `until` must not
    /// be before it. Call when a task is created or its due time or recurrence changes.
    pub fn check_start(
        &self,
        series_start: DateTime<Utc>,
        zone: Tz,
    ) -> Result<(), ValidationError> {
        match self.until {
            Some(until) if until < series_start => Err(ValidationError::new(
                "recurrence.until",
                format!(
                    "{} is before the first due time {}; the series must end on or after it",
                    time::format_in_zone(until, zone),
                    time::format_in_zone(series_start, zone)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Where a new series should start given the earliest acceptable time: for a cron rule, its
    /// first firing at or after `not_before` (e.g. to give a cron task its first due time); for
    /// calendar rules, which are anchored wherever they start, `not_before` itself. `None` when a
    /// cron rule never fires again.
    pub fn first_occurrence_from(
        &self,
        not_before: DateTime<Utc>,
        zone: Tz,
    ) -> Option<DateTime<Utc>> {
        if !within_calendar(not_before) {
            return None;
        }
        match &self.rule {
            Rule::Calendar(_) => Some(not_before),
            Rule::Cron(rule) => {
                // croner ignores sub-second parts; searching strictly after the whole second just
                // before `not_before` finds firings at `not_before` itself without returning
                // anything earlier.
                let from = not_before.checked_sub_signed(TimeDelta::nanoseconds(1))?;
                rule.next_after(from.with_timezone(&zone))
                    .map(|t| t.with_timezone(&Utc))
            }
        }
    }

    /// The first occurrence strictly after `after` of the series that starts at `series_start`
    /// (occurrence #1) in `zone`; `None` once the series has ended (by `until` or `count`) or the
    /// rule never fires again. With `after` before the start, that is the start itself.
    pub fn next_occurrence(
        &self,
        series_start: DateTime<Utc>,
        after: DateTime<Utc>,
        zone: Tz,
    ) -> Option<DateTime<Utc>> {
        if !within_calendar(series_start) || !within_calendar(after) {
            return None;
        }
        if after < series_start {
            return Some(series_start);
        }
        // The start used up one of `count`; the rest are later occurrences.
        let later_allowed = self
            .count
            .map_or(usize::MAX, |count| count.saturating_sub(1) as usize);
        if later_allowed == 0 {
            return None;
        }
        let within_until = |t: &DateTime<Utc>| self.until.is_none_or(|until| *t <= until);

        match &self.rule {
            Rule::Calendar(rule) => rule
                .occurrences_after_start(series_start, zone)?
                .take(later_allowed)
                .take_while(within_until)
                .find(|t| *t > after),
            // Without a count, firings before `after` are irrelevant: ask for the next one.
            Rule::Cron(rule) if self.count.is_none() => rule
                .next_after(after.with_timezone(&zone))
                .map(|t| t.with_timezone(&Utc))
                .filter(within_until),
            Rule::Cron(rule) => {
                std::iter::successors(rule.next_after(series_start.with_timezone(&zone)), |t| {
                    rule.next_after(*t)
                })
                .map(|t| t.with_timezone(&Utc))
                .take(later_allowed)
                .take_while(within_until)
                .find(|t| *t > after)
            }
        }
    }

    /// The shortest time between consecutive firings of a cron rule among its first `samples`
    /// from `from`; `None` for calendar rules (at most daily) and for a rule that fires fewer
    /// than twice.
    pub fn shortest_cron_gap(
        &self,
        from: DateTime<Utc>,
        zone: Tz,
        samples: usize,
    ) -> Option<TimeDelta> {
        let Rule::Cron(rule) = &self.rule else {
            return None;
        };
        let firings: Vec<DateTime<Utc>> =
            std::iter::successors(rule.next_after(from.with_timezone(&zone)), |t| {
                rule.next_after(*t)
            })
            .take(samples)
            .map(|t| t.with_timezone(&Utc))
            .collect();
        firings.windows(2).map(|w| w[1] - w[0]).min()
    }

    /// A short human summary, e.g. "every 2 weeks on Mon, Wed until 2026-12-31" or
    /// "cron '0 9 * * 1-5' for 10 occurrences". `until` is shown in `zone`: as a date when it
    /// is the end of a day, otherwise with its local time.
    pub fn describe(&self, zone: Tz) -> String {
        let mut out = match &self.rule {
            Rule::Calendar(rule) => {
                let unit = match rule.unit {
                    CalendarUnit::Day => "day",
                    CalendarUnit::Week => "week",
                    CalendarUnit::Month => "month",
                    CalendarUnit::Year => "year",
                };
                let mut s = if rule.interval == 1 {
                    format!("every {unit}")
                } else {
                    format!("every {} {unit}s", rule.interval)
                };
                if !rule.weekdays.is_empty() {
                    let days: Vec<&str> = rule.weekdays.iter().map(|d| d.short_name()).collect();
                    let _ = write!(s, " on {}", days.join(", "));
                }
                s
            }
            Rule::Cron(rule) => format!("cron '{}'", rule.expression),
        };
        if let Some(until) = self.until {
            let local = until.with_timezone(&zone);
            let is_end_of_day = (local.hour(), local.minute(), local.second()) == (23, 59, 59);
            let shown = if is_end_of_day {
                local.format("%Y-%m-%d")
            } else {
                local.format("%Y-%m-%d %H:%M")
            };
            let _ = write!(out, " until {shown}");
        }
        match self.count {
            Some(1) => out.push_str(" for 1 occurrence"),
            Some(n) => {
                let _ = write!(out, " for {n} occurrences");
            }
            None => {}
        }
        out
    }
}

impl CalendarRule {
    /// The occurrences after the start, in order, as instants. `None` when the start is outside
    /// the supported years or `rrule` rejects the rule (neither happens for validated input).
    fn occurrences_after_start(
        &self,
        series_start: DateTime<Utc>,
        zone: Tz,
    ) -> Option<impl Iterator<Item = DateTime<Utc>>> {
        let local_start = series_start.with_timezone(&zone).naive_local();
        if !(time::MIN_YEAR..=time::MAX_YEAR).contains(&local_start.year()) {
            return None;
        }
        // rrule works in whole seconds; the fraction is put back on every occurrence so the
        // series keeps the start's exact time of day.
        let fraction = TimeDelta::nanoseconds(i64::from(local_start.nanosecond() % 1_000_000_000));
        let whole_second_start = local_start.with_nanosecond(0)?;
        // Floating wall-clock time: see the module docs for why rrule does not get the zone.
        let dt_start = rrule::Tz::UTC.from_utc_datetime(&whole_second_start);
        let rule = self.to_rrule(&local_start).validate(dt_start).ok()?;
        // `limit` makes rrule give up instead of looping when a rule stops producing dates.
        let set = RRuleSet::new(dt_start).rrule(rule).limit();

        Some(
            (&set)
                .into_iter()
                .map_while(move |t| t.naive_utc().checked_add_signed(fraction))
                // The start is occurrence #1 whether or not the rule produces it.
                .skip_while(move |wall| *wall <= local_start)
                // Also keeps rrule clear of the far end of chrono's range, where it panics.
                .take_while(|wall| wall.year() <= time::MAX_YEAR)
                .map(move |wall| time::resolve_local(wall, zone)),
        )
    }

    fn to_rrule(&self, local_start: &NaiveDateTime) -> RRule<rrule::Unvalidated> {
        // Validated to 1..=MAX_INTERVAL, which fits in u16.
        let interval = u16::try_from(self.interval).unwrap_or(u16::MAX);
        let day = local_start.day();
        let frequency = match self.unit {
            CalendarUnit::Day => rrule::Frequency::Daily,
            CalendarUnit::Week => rrule::Frequency::Weekly,
            CalendarUnit::Month => rrule::Frequency::Monthly,
            CalendarUnit::Year => rrule::Frequency::Yearly,
        };
        let rule = RRule::new(frequency).interval(interval);
        match self.unit {
            CalendarUnit::Week if !self.weekdays.is_empty() => rule.by_weekday(
                self.weekdays
                    .iter()
                    .map(|d| NWeekday::Every(d.to_chrono()))
                    .collect(),
            ),
            // "The last of the days 28..=day that the month has": the start's day where it
            // exists, the month's last day where it does not.
            CalendarUnit::Month if day >= 29 => rule
                .by_month_day((28..=day).filter_map(|d| i8::try_from(d).ok()).collect())
                .by_set_pos(vec![-1]),
            CalendarUnit::Year if local_start.month() == 2 && day == 29 => rule
                .by_month(&[chrono::Month::February])
                .by_month_day(vec![28, 29])
                .by_set_pos(vec![-1]),
            // Otherwise rrule takes the weekday, day and month from DTSTART.
            _ => rule,
        }
    }
}

impl CronRule {
    fn parse(expression: &str) -> Result<CronRule, ValidationError> {
        const FIELD: &str = "recurrence.cron";
        let fields: Vec<&str> = expression.split_whitespace().collect();
        if fields.len() != 5 {
            let hint = match fields.len() {
                6 | 7 => "; seconds and year fields are not supported",
                1 if expression.trim_start().starts_with('@') => {
                    "; nicknames such as '@daily' are not supported, write '0 0 * * *' instead"
                }
                _ => "",
            };
            return Err(ValidationError::new(
                FIELD,
                format!(
                    "{} has {} field(s); expected 5: minute hour day-of-month month day-of-week, \
                     e.g. '0 9 * * 1-5' for 09:00 Monday to Friday{hint}",
                    quote(expression.trim()),
                    fields.len()
                ),
            ));
        }
        let expression = fields.join(" ");
        // Seconds and years disallowed: five fields only, so at most one firing a minute.
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&expression)
            .map_err(|e| {
                ValidationError::new(
                    FIELD,
                    format!(
                        "{} is not a valid cron expression ({e}); expected 5 fields: minute \
                         (0-59) hour (0-23) day-of-month (1-31) month (1-12) day-of-week (0-7, \
                         0 and 7 are Sunday), e.g. '0 9 * * 1-5'",
                        quote(&expression)
                    ),
                )
            })?;
        Ok(CronRule { expression, cron })
    }

    /// Rejects expressions that can never fire, such as `0 0 31 2 *`. A 5-field expression
    /// repeats with the 400-year Gregorian cycle, so searching from a fixed point (rather than
    /// the clock) answers "does it ever fire" deterministically.
    fn ensure_it_fires(&self, zone: Tz) -> Result<(), ValidationError> {
        let reference = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
        match reference.and_then(|t| self.next_after(t.with_timezone(&zone))) {
            Some(_) => Ok(()),
            None => Err(ValidationError::new(
                "recurrence.cron",
                format!(
                    "{} never fires: no date matches its day-of-month, month and day-of-week \
                     fields (e.g. February has no 30th or 31st)",
                    quote(&self.expression)
                ),
            )),
        }
    }

    /// The first firing strictly after `t`, in its zone; `None` if there is none before
    /// croner's search horizon.
    fn next_after(&self, t: DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }
}

/// The stored JSON shape of [`Recurrence`] (see the module docs). Kept separate from
/// [`RecurrenceInput`]: `until` is a resolved instant here, and every field is explicit.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecurrenceRecord {
    frequency: Frequency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    weekdays: Vec<Weekday>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
}

impl From<Recurrence> for RecurrenceRecord {
    fn from(r: Recurrence) -> Self {
        let frequency = r.frequency();
        let (interval, weekdays, cron) = match r.rule {
            Rule::Calendar(rule) => (Some(rule.interval), rule.weekdays, None),
            Rule::Cron(rule) => (None, Vec::new(), Some(rule.expression)),
        };
        RecurrenceRecord {
            frequency,
            interval,
            weekdays,
            until: r.until,
            count: r.count,
            cron,
        }
    }
}

impl TryFrom<RecurrenceRecord> for Recurrence {
    type Error = ValidationError;

    fn try_from(r: RecurrenceRecord) -> Result<Self, Self::Error> {
        Recurrence::build(
            r.frequency,
            r.interval,
            Some(r.weekdays),
            r.until,
            r.count,
            r.cron.as_deref(),
        )
    }
}

/// Whether `t` lies in the years a series can be computed in: parsed input never leaves
/// `MIN_YEAR..=MAX_YEAR`, and staying a year around that keeps clear of chrono's limits, where the
/// local time in a zone other than UTC no longer exists and chrono panics.
fn within_calendar(t: DateTime<Utc>) -> bool {
    (crate::time::MIN_YEAR - 1..=crate::time::MAX_YEAR + 1).contains(&t.year())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    const NY: Tz = New_York;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test literal is RFC 3339")
            .with_timezone(&Utc)
    }

    fn input(frequency: Frequency) -> RecurrenceInput {
        RecurrenceInput {
            frequency,
            interval: None,
            weekdays: None,
            until: None,
            count: None,
            cron: None,
        }
    }

    fn cron_input(expression: &str) -> RecurrenceInput {
        RecurrenceInput {
            cron: Some(expression.into()),
            ..input(Frequency::Cron)
        }
    }

    fn parse(input: RecurrenceInput, zone: Tz) -> Recurrence {
        Recurrence::parse(input, zone).expect("valid recurrence")
    }

    /// The first `n` occurrences (or fewer if the series ends), by repeated `next_occurrence`,
    /// formatted in `zone` so that assertions show local time and offset.
    fn series(r: &Recurrence, start: &str, zone: Tz, n: usize) -> Vec<String> {
        let start = utc(start);
        std::iter::successors(Some(start), |prev| r.next_occurrence(start, *prev, zone))
            .take(n)
            .map(|t| time::format_in_zone(t, zone))
            .collect()
    }

    #[test]
    fn daily_keeps_local_time_across_spring_forward() {
        let r = parse(input(Frequency::Daily), NY);
        let got = series(&r, "2026-03-06T14:00:00Z", NY, 4);
        assert_eq!(
            got,
            [
                "2026-03-06T09:00:00-05:00",
                "2026-03-07T09:00:00-05:00",
                "2026-03-08T09:00:00-04:00",
                "2026-03-09T09:00:00-04:00",
            ]
        );
        // The UTC hour moves from 14 to 13.
        let start = utc("2026-03-06T14:00:00Z");
        assert_eq!(
            r.next_occurrence(start, utc("2026-03-07T14:00:00Z"), NY),
            Some(utc("2026-03-08T13:00:00Z"))
        );
    }

    #[test]
    fn daily_keeps_local_time_across_fall_back() {
        let r = parse(input(Frequency::Daily), NY);
        let start = utc("2026-10-30T13:00:00Z");
        assert_eq!(
            r.next_occurrence(start, utc("2026-10-31T13:00:00Z"), NY),
            Some(utc("2026-11-01T14:00:00Z"))
        );
        assert_eq!(
            series(&r, "2026-10-30T13:00:00Z", NY, 4),
            [
                "2026-10-30T09:00:00-04:00",
                "2026-10-31T09:00:00-04:00",
                "2026-11-01T09:00:00-05:00",
                "2026-11-02T09:00:00-05:00",
            ]
        );
    }

    #[test]
    fn daily_wall_time_in_dst_gap_and_overlap_follows_resolve_local() {
        let r = parse(input(Frequency::Daily), NY);
        // 02:30 does not exist on 2026-03-08: due at 03:30 EDT, then back to 02:30.
        assert_eq!(
            series(&r, "2026-03-07T07:30:00Z", NY, 3),
            [
                "2026-03-07T02:30:00-05:00",
                "2026-03-08T03:30:00-04:00",
                "2026-03-09T02:30:00-04:00",
            ]
        );
        // 01:30 happens twice on 2026-11-01: due once, at the earlier (EDT) one.
        assert_eq!(
            series(&r, "2026-10-31T05:30:00Z", NY, 3),
            [
                "2026-10-31T01:30:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-02T01:30:00-05:00",
            ]
        );
    }

    #[test]
    fn daily_handles_a_zone_that_skips_midnight() {
        // Chile skips 00:00-01:00 on 2026-09-06; rrule's own zone handling would drop this day.
        let santiago = chrono_tz::America::Santiago;
        let r = parse(input(Frequency::Daily), santiago);
        assert_eq!(
            series(&r, "2026-09-05T04:30:00Z", santiago, 3),
            [
                "2026-09-05T00:30:00-04:00",
                "2026-09-06T01:30:00-03:00",
                "2026-09-07T00:30:00-03:00",
            ]
        );
    }

    #[test]
    fn sub_second_start_keeps_its_fraction() {
        let r = parse(input(Frequency::Daily), Tz::UTC);
        assert_eq!(
            r.next_occurrence(
                utc("2026-01-01T09:00:00.123456Z"),
                utc("2026-01-01T09:00:00.123456Z"),
                Tz::UTC
            ),
            Some(utc("2026-01-02T09:00:00.123456Z"))
        );
    }

    #[test]
    fn weekly_on_monday_and_wednesday_every_other_week() {
        let r = parse(
            RecurrenceInput {
                interval: Some(2),
                weekdays: Some(vec![Weekday::We, Weekday::Mo, Weekday::We]),
                ..input(Frequency::Weekly)
            },
            NY,
        );
        assert_eq!(r.weekdays(), [Weekday::Mo, Weekday::We]);
        // 2026-01-05 is a Monday.
        assert_eq!(
            series(&r, "2026-01-05T14:00:00Z", NY, 6),
            [
                "2026-01-05T09:00:00-05:00",
                "2026-01-07T09:00:00-05:00",
                "2026-01-19T09:00:00-05:00",
                "2026-01-21T09:00:00-05:00",
                "2026-02-02T09:00:00-05:00",
                "2026-02-04T09:00:00-05:00",
            ]
        );
        // Started on a Tuesday: the start counts, then the rule's days in the same week.
        assert_eq!(
            series(&r, "2026-01-06T14:00:00Z", NY, 3),
            [
                "2026-01-06T09:00:00-05:00",
                "2026-01-07T09:00:00-05:00",
                "2026-01-19T09:00:00-05:00",
            ]
        );
    }

    #[test]
    fn weekly_without_weekdays_repeats_on_the_start_weekday() {
        let r = parse(
            RecurrenceInput {
                weekdays: Some(vec![]),
                ..input(Frequency::Weekly)
            },
            Tz::UTC,
        );
        assert_eq!(
            series(&r, "2026-01-08T10:00:00Z", Tz::UTC, 3),
            [
                "2026-01-08T10:00:00+00:00",
                "2026-01-15T10:00:00+00:00",
                "2026-01-22T10:00:00+00:00",
            ]
        );
    }

    #[test]
    fn monthly_from_the_31st_falls_on_the_last_day_of_short_months() {
        let r = parse(input(Frequency::Monthly), NY);
        assert_eq!(
            series(&r, "2026-01-31T14:00:00Z", NY, 6),
            [
                "2026-01-31T09:00:00-05:00",
                "2026-02-28T09:00:00-05:00",
                "2026-03-31T09:00:00-04:00",
                "2026-04-30T09:00:00-04:00",
                "2026-05-31T09:00:00-04:00",
                "2026-06-30T09:00:00-04:00",
            ]
        );
        // Leap year.
        assert_eq!(
            series(&r, "2028-01-31T14:00:00Z", NY, 3),
            [
                "2028-01-31T09:00:00-05:00",
                "2028-02-29T09:00:00-05:00",
                "2028-03-31T09:00:00-04:00",
            ]
        );
    }

    #[test]
    fn monthly_from_the_30th_returns_to_the_30th() {
        let r = parse(input(Frequency::Monthly), Tz::UTC);
        assert_eq!(
            series(&r, "2026-01-30T08:00:00Z", Tz::UTC, 4),
            [
                "2026-01-30T08:00:00+00:00",
                "2026-02-28T08:00:00+00:00",
                "2026-03-30T08:00:00+00:00",
                "2026-04-30T08:00:00+00:00",
            ]
        );
    }

    #[test]
    fn monthly_with_interval_and_an_ordinary_day() {
        let r = parse(
            RecurrenceInput {
                interval: Some(3),
                ..input(Frequency::Monthly)
            },
            Tz::UTC,
        );
        assert_eq!(
            series(&r, "2026-01-15T08:00:00Z", Tz::UTC, 3),
            [
                "2026-01-15T08:00:00+00:00",
                "2026-04-15T08:00:00+00:00",
                "2026-07-15T08:00:00+00:00",
            ]
        );
    }

    #[test]
    fn yearly_from_february_29th() {
        let r = parse(input(Frequency::Yearly), Tz::UTC);
        assert_eq!(
            series(&r, "2024-02-29T12:00:00Z", Tz::UTC, 5),
            [
                "2024-02-29T12:00:00+00:00",
                "2025-02-28T12:00:00+00:00",
                "2026-02-28T12:00:00+00:00",
                "2027-02-28T12:00:00+00:00",
                "2028-02-29T12:00:00+00:00",
            ]
        );
    }

    #[test]
    fn until_is_inclusive_then_the_series_ends() {
        let r = parse(
            RecurrenceInput {
                until: Some("2026-01-03".into()),
                ..input(Frequency::Daily)
            },
            NY,
        );
        // End of 2026-01-03 in New York.
        assert_eq!(r.until(), Some(utc("2026-01-04T04:59:59Z")));
        let start = utc("2026-01-01T14:00:00Z");
        assert_eq!(
            r.next_occurrence(start, utc("2026-01-02T14:00:00Z"), NY),
            Some(utc("2026-01-03T14:00:00Z"))
        );
        assert_eq!(
            r.next_occurrence(start, utc("2026-01-03T14:00:00Z"), NY),
            None
        );

        // An occurrence exactly at `until` is included.
        let exact = parse(
            RecurrenceInput {
                until: Some("2026-01-03T09:00".into()),
                ..input(Frequency::Daily)
            },
            NY,
        );
        assert_eq!(series(&exact, "2026-01-01T14:00:00Z", NY, 10).len(), 3);
    }

    #[test]
    fn count_gives_exactly_that_many_occurrences() {
        let r = parse(
            RecurrenceInput {
                count: Some(3),
                ..input(Frequency::Weekly)
            },
            Tz::UTC,
        );
        let got = series(&r, "2026-01-05T09:00:00Z", Tz::UTC, 10);
        assert_eq!(
            got,
            [
                "2026-01-05T09:00:00+00:00",
                "2026-01-12T09:00:00+00:00",
                "2026-01-19T09:00:00+00:00",
            ]
        );
        let start = utc("2026-01-05T09:00:00Z");
        assert_eq!(
            r.next_occurrence(start, utc("2027-01-01T00:00:00Z"), Tz::UTC),
            None
        );

        let once = parse(
            RecurrenceInput {
                count: Some(1),
                ..input(Frequency::Daily)
            },
            Tz::UTC,
        );
        assert_eq!(series(&once, "2026-01-05T09:00:00Z", Tz::UTC, 10).len(), 1);
    }

    #[test]
    fn count_and_until_end_at_whichever_comes_first() {
        let r = parse(
            RecurrenceInput {
                count: Some(10),
                until: Some("2026-01-03".into()),
                ..input(Frequency::Daily)
            },
            Tz::UTC,
        );
        assert_eq!(series(&r, "2026-01-01T09:00:00Z", Tz::UTC, 20).len(), 3);
    }

    #[test]
    fn after_before_the_start_returns_the_start() {
        let start = utc("2026-01-06T14:00:00Z");
        let before = utc("2020-01-01T00:00:00Z");
        let weekly = parse(
            RecurrenceInput {
                weekdays: Some(vec![Weekday::Mo]),
                ..input(Frequency::Weekly)
            },
            NY,
        );
        assert_eq!(weekly.next_occurrence(start, before, NY), Some(start));
        let cron = parse(cron_input("0 9 * * 1"), NY);
        assert_eq!(cron.next_occurrence(start, before, NY), Some(start));
    }

    #[test]
    fn interval_is_validated() {
        for bad in [0, 1001, u32::MAX] {
            let e = Recurrence::parse(
                RecurrenceInput {
                    interval: Some(bad),
                    ..input(Frequency::Daily)
                },
                Tz::UTC,
            )
            .expect_err("out of range");
            assert_eq!(e.field, "recurrence.interval");
            assert!(e.message.contains("between 1 and 1000"), "{}", e.message);
        }
        let r = parse(
            RecurrenceInput {
                interval: Some(1000),
                ..input(Frequency::Yearly)
            },
            Tz::UTC,
        );
        assert_eq!(r.interval(), Some(1000));
        let e = Recurrence::parse(
            RecurrenceInput {
                interval: Some(2),
                ..cron_input("0 9 * * *")
            },
            Tz::UTC,
        )
        .expect_err("interval with cron");
        assert_eq!(e.field, "recurrence.interval");
    }

    #[test]
    fn count_is_validated() {
        for bad in [0, 10_001] {
            let e = Recurrence::parse(
                RecurrenceInput {
                    count: Some(bad),
                    ..input(Frequency::Daily)
                },
                Tz::UTC,
            )
            .expect_err("out of range");
            assert_eq!(e.field, "recurrence.count");
        }
    }

    #[test]
    fn weekdays_are_only_for_weekly() {
        for frequency in [Frequency::Daily, Frequency::Monthly, Frequency::Yearly] {
            let e = Recurrence::parse(
                RecurrenceInput {
                    weekdays: Some(vec![Weekday::Mo]),
                    ..input(frequency)
                },
                Tz::UTC,
            )
            .expect_err("weekdays with non-weekly");
            assert_eq!(e.field, "recurrence.weekdays");
            assert!(e.message.contains("'weekly'"), "{}", e.message);
        }
        let e = Recurrence::parse(
            RecurrenceInput {
                weekdays: Some(vec![Weekday::Mo]),
                ..cron_input("0 9 * * *")
            },
            Tz::UTC,
        )
        .expect_err("weekdays with cron");
        assert_eq!(e.field, "recurrence.weekdays");
    }

    #[test]
    fn cron_field_must_match_the_frequency() {
        let e = Recurrence::parse(input(Frequency::Cron), Tz::UTC).expect_err("missing cron");
        assert_eq!(e.field, "recurrence.cron");
        let e = Recurrence::parse(
            RecurrenceInput {
                cron: Some("0 9 * * *".into()),
                ..input(Frequency::Daily)
            },
            Tz::UTC,
        )
        .expect_err("cron with daily");
        assert_eq!(e.field, "recurrence.cron");
    }

    #[test]
    fn until_errors_name_the_field() {
        let e = Recurrence::parse(
            RecurrenceInput {
                until: Some("next year".into()),
                ..input(Frequency::Daily)
            },
            Tz::UTC,
        )
        .expect_err("bad until");
        assert_eq!(e.field, "recurrence.until");
    }

    #[test]
    fn cron_on_weekdays_at_nine_local_across_dst() {
        let r = parse(cron_input("0 9 * * 1-5"), NY);
        // Friday 2026-03-06 09:00 EST; the weekend holds the spring-forward change.
        let start = utc("2026-03-06T14:00:00Z");
        assert_eq!(
            r.next_occurrence(start, start, NY),
            Some(utc("2026-03-09T13:00:00Z"))
        );
        assert_eq!(
            series(&r, "2026-10-30T13:00:00Z", NY, 3),
            [
                "2026-10-30T09:00:00-04:00",
                "2026-11-02T09:00:00-05:00",
                "2026-11-03T09:00:00-05:00",
            ]
        );
        // Names work too, in any case.
        let named = parse(cron_input("  0   9 * *   mon-FRI "), NY);
        assert_eq!(named.cron(), Some("0 9 * * mon-FRI"));
        assert_eq!(
            named.next_occurrence(start, start, NY),
            Some(utc("2026-03-09T13:00:00Z"))
        );
    }

    #[test]
    fn cron_fixed_time_in_a_gap_fires_right_after_it() {
        // croner's documented behaviour, unlike calendar rules (03:30).
        let r = parse(cron_input("30 2 * * *"), NY);
        let start = utc("2026-03-07T07:30:00Z");
        assert_eq!(
            series(&r, "2026-03-07T07:30:00Z", NY, 3),
            [
                "2026-03-07T02:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
            ]
        );
        // In an overlap a fixed time fires once, on the first pass.
        let r = parse(cron_input("30 1 * * *"), NY);
        assert_eq!(
            r.next_occurrence(start, utc("2026-10-31T06:00:00Z"), NY),
            Some(utc("2026-11-01T05:30:00Z"))
        );
        assert_eq!(
            r.next_occurrence(start, utc("2026-11-01T05:30:00Z"), NY),
            Some(utc("2026-11-02T06:30:00Z"))
        );
    }

    #[test]
    fn cron_wildcard_times_skip_the_gap_and_repeat_in_the_overlap() {
        let r = parse(cron_input("*/30 * * * *"), NY);
        assert_eq!(
            series(&r, "2026-03-08T06:30:00Z", NY, 3),
            [
                "2026-03-08T01:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00",
            ]
        );
        assert_eq!(
            series(&r, "2026-11-01T05:00:00Z", NY, 5),
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T02:00:00-05:00",
            ]
        );
    }

    #[test]
    fn cron_with_count_and_until() {
        let r = parse(
            RecurrenceInput {
                count: Some(3),
                ..cron_input("0 9 * * 1")
            },
            Tz::UTC,
        );
        // Started on a Thursday: the start, then two Mondays.
        assert_eq!(
            series(&r, "2026-01-01T12:00:00Z", Tz::UTC, 10),
            [
                "2026-01-01T12:00:00+00:00",
                "2026-01-05T09:00:00+00:00",
                "2026-01-12T09:00:00+00:00",
            ]
        );
        let r = parse(
            RecurrenceInput {
                until: Some("2026-01-12T09:00".into()),
                ..cron_input("0 9 * * 1")
            },
            Tz::UTC,
        );
        assert_eq!(series(&r, "2026-01-01T12:00:00Z", Tz::UTC, 10).len(), 3);
    }

    #[test]
    fn cron_that_never_fires_is_rejected() {
        for never in ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
            let e = Recurrence::parse(cron_input(never), NY).expect_err(never);
            assert_eq!(e.field, "recurrence.cron");
            assert!(e.message.contains("never fires"), "{never}: {}", e.message);
        }
        // Rare is fine: Feb 29th only in leap years.
        assert!(Recurrence::parse(cron_input("0 0 29 2 *"), NY).is_ok());
    }

    #[test]
    fn cron_with_seconds_or_wrong_field_count_is_rejected() {
        for bad in [
            "0 0 9 * * *",
            "0 0 9 * * * 2026",
            "* * * *",
            "@daily",
            "",
            "   ",
        ] {
            let e = Recurrence::parse(cron_input(bad), Tz::UTC).expect_err(bad);
            assert_eq!(e.field, "recurrence.cron");
            assert!(e.message.contains("expected 5"), "{bad:?}: {}", e.message);
        }
        let e = Recurrence::parse(cron_input("*/10 * * * * *"), Tz::UTC).expect_err("seconds");
        assert!(e.message.contains("seconds"), "{}", e.message);
        let e = Recurrence::parse(cron_input("@hourly"), Tz::UTC).expect_err("nickname");
        assert!(e.message.contains("'0 0 * * *'"), "{}", e.message);
    }

    #[test]
    fn invalid_cron_values_are_rejected() {
        for bad in [
            "61 * * * *",
            "0 24 * * *",
            "0 9 32 * *",
            "0 9 * 13 *",
            "0 9 * * 8",
            "x 9 * * *",
        ] {
            let e = Recurrence::parse(cron_input(bad), Tz::UTC).expect_err(bad);
            assert_eq!(e.field, "recurrence.cron");
            assert!(
                e.message.contains("not a valid cron expression"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn first_occurrence_from_finds_the_first_cron_firing() {
        let r = parse(cron_input("0 9 * * 1-5"), NY);
        // Saturday 2026-03-07 → Monday 09:00 EDT.
        assert_eq!(
            r.first_occurrence_from(utc("2026-03-07T12:00:00Z"), NY),
            Some(utc("2026-03-09T13:00:00Z"))
        );
        // A firing exactly at `not_before` counts.
        let at = utc("2026-03-09T13:00:00Z");
        assert_eq!(r.first_occurrence_from(at, NY), Some(at));
        let daily = parse(input(Frequency::Daily), NY);
        assert_eq!(daily.first_occurrence_from(at, NY), Some(at));
    }

    #[test]
    fn check_start_rejects_until_before_the_start() {
        let r = parse(
            RecurrenceInput {
                until: Some("2026-01-01".into()),
                ..input(Frequency::Daily)
            },
            NY,
        );
        assert!(r.check_start(utc("2026-01-01T14:00:00Z"), NY).is_ok());
        let e = r
            .check_start(utc("2026-01-02T14:00:00Z"), NY)
            .expect_err("until before start");
        assert_eq!(e.field, "recurrence.until");
    }

    #[test]
    fn far_future_queries_end_without_panicking() {
        let r = parse(
            RecurrenceInput {
                interval: Some(1000),
                ..input(Frequency::Yearly)
            },
            Tz::UTC,
        );
        let start = utc("9000-01-01T00:00:00Z");
        assert_eq!(r.next_occurrence(start, start, Tz::UTC), None);
        let max = DateTime::<Utc>::MAX_UTC;
        assert_eq!(r.next_occurrence(max, max, Tz::UTC), None);
        let min = DateTime::<Utc>::MIN_UTC;
        assert_eq!(r.next_occurrence(min, min, Tz::UTC), None);
        let cron = parse(cron_input("0 9 * * *"), Tz::UTC);
        assert_eq!(cron.next_occurrence(max, max, Tz::UTC), None);
        // Outside the years a time can be given in, a series has no occurrences.
        assert_eq!(cron.next_occurrence(min, min, Tz::UTC), None);
        assert_eq!(cron.first_occurrence_from(min, Tz::UTC), None);
        // croner searches up to the year 5000.
        let late = utc("4998-12-31T00:00:00Z");
        assert_eq!(
            cron.next_occurrence(late, late, Tz::UTC),
            Some(utc("4998-12-31T09:00:00Z"))
        );
    }

    #[test]
    fn describe_summarises_the_rule() {
        let r = parse(
            RecurrenceInput {
                interval: Some(2),
                weekdays: Some(vec![Weekday::We, Weekday::Mo]),
                until: Some("2026-12-31".into()),
                ..input(Frequency::Weekly)
            },
            NY,
        );
        assert_eq!(r.describe(NY), "every 2 weeks on Mon, Wed until 2026-12-31");
        assert_eq!(parse(input(Frequency::Daily), NY).describe(NY), "every day");
        assert_eq!(
            parse(cron_input("0 9 * * 1-5"), NY).describe(NY),
            "cron '0 9 * * 1-5'"
        );
        let r = parse(
            RecurrenceInput {
                count: Some(10),
                until: Some("2026-06-30T17:00".into()),
                ..input(Frequency::Monthly)
            },
            NY,
        );
        assert_eq!(
            r.describe(NY),
            "every month until 2026-06-30 17:00 for 10 occurrences"
        );
    }

    #[test]
    fn serde_round_trip_has_a_stable_shape() {
        let r = parse(
            RecurrenceInput {
                interval: Some(2),
                weekdays: Some(vec![Weekday::We, Weekday::Mo]),
                until: Some("2026-12-31".into()),
                count: Some(10),
                ..input(Frequency::Weekly)
            },
            NY,
        );
        let json = serde_json::to_value(&r).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "frequency": "weekly",
                "interval": 2,
                "weekdays": ["mo", "we"],
                "until": "2027-01-01T04:59:59Z",
                "count": 10,
            })
        );
        let back: Recurrence = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, r);

        let cron = parse(cron_input("0 9 * * 1-5"), NY);
        let json = serde_json::to_value(&cron).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"frequency": "cron", "cron": "0 9 * * 1-5"})
        );
        assert_eq!(serde_json::from_value::<Recurrence>(json).ok(), Some(cron));

        let daily = serde_json::to_value(parse(input(Frequency::Daily), NY)).expect("serializes");
        assert_eq!(
            daily,
            serde_json::json!({"frequency": "daily", "interval": 1})
        );
    }

    #[test]
    fn deserialization_revalidates() {
        for bad in [
            serde_json::json!({"frequency": "daily", "interval": 0}),
            serde_json::json!({"frequency": "daily", "interval": 1, "weekdays": ["mo"]}),
            serde_json::json!({"frequency": "cron", "cron": "0 0 0 9 * * *"}),
            serde_json::json!({"frequency": "cron"}),
            serde_json::json!({"frequency": "daily", "interval": 1, "extra": true}),
            serde_json::json!({"frequency": "hourly", "interval": 1}),
        ] {
            assert!(
                serde_json::from_value::<Recurrence>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn to_input_round_trips_through_parse() {
        for i in [
            RecurrenceInput {
                interval: Some(2),
                weekdays: Some(vec![Weekday::Fr]),
                until: Some("2026-12-31".into()),
                ..input(Frequency::Weekly)
            },
            RecurrenceInput {
                count: Some(4),
                ..cron_input("0 9 * * 1-5")
            },
            input(Frequency::Yearly),
        ] {
            let r = parse(i, NY);
            let echoed = r.to_input(NY);
            assert_eq!(
                Recurrence::parse(echoed.clone(), NY),
                Ok(r.clone()),
                "{echoed:?}"
            );
        }
        let r = parse(
            RecurrenceInput {
                until: Some("2026-12-31".into()),
                ..input(Frequency::Daily)
            },
            NY,
        );
        assert_eq!(
            r.to_input(NY).until.as_deref(),
            Some("2026-12-31T23:59:59-05:00")
        );
    }

    #[test]
    fn input_accepts_full_weekday_names_and_rejects_unknown_fields() {
        let i: RecurrenceInput = serde_json::from_value(serde_json::json!({
            "frequency": "weekly",
            "weekdays": ["monday", "we", "sunday"],
        }))
        .expect("valid input");
        assert_eq!(
            i.weekdays,
            Some(vec![Weekday::Mo, Weekday::We, Weekday::Su])
        );
        let unknown = serde_json::from_value::<RecurrenceInput>(serde_json::json!({
            "frequency": "weekly",
            "byday": ["mo"],
        }));
        assert!(unknown.is_err());
    }

    #[test]
    fn input_schema_describes_every_field() {
        let schema = serde_json::to_value(schemars::schema_for!(RecurrenceInput))
            .expect("schema serializes");
        let properties = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .expect("object schema");
        for field in [
            "frequency",
            "interval",
            "weekdays",
            "until",
            "count",
            "cron",
        ] {
            let description = properties
                .get(field)
                .and_then(|p| p.get("description"))
                .and_then(|d| d.as_str());
            assert!(description.is_some_and(|d| d.len() > 20), "{field}");
        }
        assert_eq!(
            schema.get("additionalProperties"),
            Some(&serde_json::json!(false))
        );
        assert_eq!(
            schema.get("required"),
            Some(&serde_json::json!(["frequency"]))
        );
    }
}
