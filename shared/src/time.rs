//! Time zones and due-time parsing.
//!
//! Every task carries an IANA time zone ([`Zone`]). Times are stored as UTC instants with
//! microsecond precision (the database's resolution), and wall-clock input is interpreted in the
//! task's zone.
//!
//! # Accepted inputs ([`TimeInput`], [`parse_datetime`])
//!
//! | Form | Example | Meaning |
//! |------|---------|---------|
//! | RFC 3339 with offset or `Z` | `2026-03-08T09:00:00-05:00`, `2026-03-08 14:00:00Z` | that instant; the zone is not consulted |
//! | RFC 3339 without seconds | `2026-03-08T09:00-05:00` | as above, seconds = 0 (a common slip, accepted) |
//! | local date-time | `2026-03-08T09:00`, `2026-03-08 09:00:30.25` | that wall-clock time in the zone |
//! | date | `2026-03-08` | start (00:00:00) or end (23:59:59) of that day in the zone, see [`DateOnly`] |
//!
//! Years must lie in [`MIN_YEAR`]`..=`[`MAX_YEAR`]. Sub-microsecond digits are truncated so that a
//! value read back from the database compares equal to the one parsed.
//!
//! # Daylight saving time ([`resolve_local`])
//!
//! A wall-clock time does not always name exactly one instant. We resolve it the way RFC 5545
//! and JavaScript Temporal's `"compatible"` disambiguation do:
//!
//! - **Overlap** (clocks fall back, the wall time happens twice): take the **earlier** instant.
//!   `2026-11-01 01:30` in `America/New_York` is `01:30 EDT` = `05:30Z`, not `01:30 EST`.
//! - **Gap** (clocks spring forward, the wall time never happens): move **forward by the length of
//!   the gap**. `2026-03-08 02:30` in `America/New_York` is `03:30 EDT` = `07:30Z`.
//!
//! The same rule places recurring occurrences (see [`crate::recurrence`]), so a task due at
//! 02:30 every day is due at 03:30 on the one day 02:30 does not exist.

use std::borrow::Cow;
use std::fmt;

use chrono::format::ParseErrorKind;
use chrono::{
    DateTime, Datelike, FixedOffset, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    SecondsFormat, SubsecRound, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;

/// Earliest year accepted in a date or time.
pub const MIN_YEAR: i32 = 1900;
/// Latest year accepted in a date or time.
pub const MAX_YEAR: i32 = 9999;

/// The accepted formats, appended to every parse error so the caller can correct the input.
const ACCEPTED_FORMATS: &str = "use RFC 3339 with an offset ('2026-03-08T09:00:00-05:00' or \
    '2026-03-08T14:00:00Z'), a local date-time in the task's time zone ('2026-03-08T09:00' or \
    '2026-03-08T09:00:00'), or a date ('2026-03-08')";

/// An IANA time zone such as `America/New_York` or `UTC`.
///
/// Serialized as its canonical name; deserialization validates the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Zone(Tz);

impl Zone {
    /// Coordinated Universal Time, the default zone.
    pub const UTC: Zone = Zone(Tz::UTC);

    /// Parses an IANA zone name, ignoring surrounding whitespace and letter case.
    pub fn parse(field: &'static str, s: &str) -> Result<Zone, ValidationError> {
        let name = s.trim();
        if name.is_empty() {
            return Err(ValidationError::new(
                field,
                "time zone is empty; use an IANA name such as 'America/New_York' or 'UTC'",
            ));
        }
        if let Ok(tz) = name.parse::<Tz>() {
            return Ok(Zone(tz));
        }
        // People and models often miscapitalise ("america/new_york"). No two IANA names differ
        // only in case, so a case-insensitive match is unambiguous.
        chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(name))
            .map(|&tz| Zone(tz))
            .ok_or_else(|| {
                ValidationError::new(
                    field,
                    format!(
                        "unknown time zone {}; use an IANA name such as 'America/New_York' or \
                         'UTC'",
                        quote(name)
                    ),
                )
            })
    }

    /// The zone as a `chrono-tz` value, for date arithmetic.
    pub fn tz(&self) -> Tz {
        self.0
    }

    /// The canonical IANA name, e.g. `America/New_York`.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for Zone {
    fn default() -> Self {
        Zone::UTC
    }
}

impl From<Tz> for Zone {
    fn from(tz: Tz) -> Self {
        Zone(tz)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = Cow::<'de, str>::deserialize(deserializer)?;
        Zone::parse("time_zone", &name).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl JsonSchema for Zone {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Zone".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::Zone").into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "IANA time zone name, e.g. 'America/New_York', 'Europe/Berlin' or 'UTC'.",
            "examples": ["America/New_York", "Europe/Berlin", "UTC"],
        })
    }
}

/// What a bare date (`2026-03-08`) means when a time is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateOnly {
    /// 00:00:00 local time: the natural reading of a due date or a start.
    StartOfDay,
    /// 23:59:59 local time: the natural reading of an inclusive end such as "until 2026-12-31".
    EndOfDay,
}

impl DateOnly {
    fn time(self) -> NaiveTime {
        // Evaluated at compile time; the values are valid.
        const END_OF_DAY: NaiveTime = match NaiveTime::from_hms_opt(23, 59, 59) {
            Some(t) => t,
            None => NaiveTime::MIN,
        };
        match self {
            DateOnly::StartOfDay => NaiveTime::MIN,
            DateOnly::EndOfDay => END_OF_DAY,
        }
    }
}

/// The current time at the precision times are kept in (whole microseconds, as both databases
/// store them), so that what an operation returns equals what a later read returns.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Parses a due time (see the [module documentation](self) for the accepted forms) into a UTC
/// instant truncated to whole microseconds. Wall-clock input is read in `zone` using
/// [`resolve_local`].
pub fn parse_datetime(
    field: &'static str,
    input: &str,
    zone: Tz,
    date_only: DateOnly,
) -> Result<DateTime<Utc>, ValidationError> {
    TimeInput::parse(field, input)?.resolve(zone, date_only)
}

/// A date or time as the caller wrote it, checked for form but not yet placed in a time zone: a
/// local time names a different instant in each zone, and the zone may be known only later (the
/// stored task's, when an update does not name one). [`TimeInput::resolve`] gives the instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeInput {
    /// The argument it came from, named in errors.
    field: &'static str,
    /// The input, trimmed; errors quote it.
    text: String,
    form: Form,
}

/// The accepted forms, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Instant(DateTime<FixedOffset>),
    Date(NaiveDate),
    Local(NaiveDateTime),
}

impl TimeInput {
    /// Reads one of the accepted forms, with its year as written in range.
    pub fn parse(field: &'static str, input: &str) -> Result<Self, ValidationError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(ValidationError::new(
                field,
                format!("date/time is empty; {ACCEPTED_FORMATS}"),
            ));
        }
        let form = parse_form(s).map_err(|found_impossible| {
            let message = if let Some(year) = long_year(s) {
                year_out_of_range(year)
            } else if found_impossible {
                format!(
                    "{} is not a real date or time: check that the day exists in that month \
                     (February has 28 or 29 days), hours are 00-23, minutes 00-59 and any offset is \
                     within ±23:59",
                    quote(s)
                )
            } else {
                format!(
                    "cannot read {} as a date/time; {ACCEPTED_FORMATS}",
                    quote(s)
                )
            };
            ValidationError::new(field, message)
        })?;
        let written_year = match form {
            Form::Instant(t) => t.year(),
            Form::Date(d) => d.year(),
            Form::Local(n) => n.year(),
        };
        if !(MIN_YEAR..=MAX_YEAR).contains(&written_year) {
            return Err(ValidationError::new(
                field,
                year_out_of_range(&written_year.to_string()),
            ));
        }
        Ok(Self {
            field,
            text: s.to_owned(),
            form,
        })
    }

    /// The instant, with wall-clock input read in `zone` ([`resolve_local`]) and a bare date as
    /// `date_only` says, truncated to whole microseconds.
    pub fn resolve(&self, zone: Tz, date_only: DateOnly) -> Result<DateTime<Utc>, ValidationError> {
        let (field, s) = (self.field, self.text.as_str());
        let instant = match self.form {
            Form::Instant(t) => t.with_timezone(&Utc),
            Form::Date(d) => resolve_local(d.and_time(date_only.time()), zone),
            Form::Local(n) => resolve_local(n, zone),
        };
        // The year as written can be in range while the instant is not, once moved to the task's
        // zone or to UTC (`9999-12-31T23:59:59-23:59` is in 10000 in UTC). Such a time would be
        // shown in a form that neither this parser nor an RFC 3339 reader accepts back.
        for (shown_year, place) in [
            (instant.with_timezone(&zone).year(), zone.name()),
            (instant.year(), "UTC"),
        ] {
            if !(MIN_YEAR..=MAX_YEAR).contains(&shown_year) {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "{} falls in the year {shown_year} in {place}; use a time between \
                         {MIN_YEAR} and {MAX_YEAR} in both the task's time zone and UTC",
                        quote(s)
                    ),
                ));
            }
        }
        // chrono keeps a leap second (`23:59:60`) as a nanosecond value past one second; the
        // database cannot store it, and no task needs it.
        if instant.nanosecond() >= 1_000_000_000 {
            return Err(ValidationError::new(
                field,
                format!("{} is a leap second, which is not supported", quote(s)),
            ));
        }
        Ok(instant.trunc_subsecs(6))
    }
}

/// Tries each accepted form in turn. On failure, says whether some form recognised the shape but
/// met an impossible value (February 30th, hour 24): that is far more useful to report than the
/// list of formats.
fn parse_form(s: &str) -> Result<Form, bool> {
    let mut impossible = false;
    let mut seen = |kind: ParseErrorKind| impossible |= kind == ParseErrorKind::OutOfRange;
    match parse_with_offset(s) {
        Ok(t) => return Ok(Form::Instant(t)),
        Err(e) => seen(e.kind()),
    }
    match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) => return Ok(Form::Date(d)),
        Err(e) => seen(e.kind()),
    }
    match parse_local(s) {
        Ok(n) => return Ok(Form::Local(n)),
        Err(e) => seen(e),
    }
    Err(impossible)
}

/// The year of a date-like input whose year has more than four digits, which chrono's parsers
/// reject as malformed although the real problem is the range.
fn long_year(s: &str) -> Option<&str> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    // The digits are ASCII, so `digits` is a character boundary.
    (digits > 4 && s.as_bytes().get(digits) == Some(&b'-')).then(|| &s[..digits.min(12)])
}

fn year_out_of_range(year: &str) -> String {
    format!("year {year} is out of range; use a year between {MIN_YEAR} and {MAX_YEAR}")
}

/// RFC 3339, also accepting a missing seconds field (`2026-03-08T09:00-05:00`).
fn parse_with_offset(s: &str) -> Result<DateTime<FixedOffset>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).or_else(|e| {
        // `YYYY-MM-DDTHH:MM` is 16 ASCII bytes; an offset or `Z` right after it means the seconds
        // were left out. Anything else keeps the original error.
        let b = s.as_bytes();
        if b.len() > 16 && b[13] == b':' && matches!(b[16], b'Z' | b'z' | b'+' | b'-') {
            DateTime::parse_from_rfc3339(&format!("{}:00{}", &s[..16], &s[16..]))
        } else {
            Err(e)
        }
    })
}

/// A local date-time without offset, with `T` or a space between date and time, with or
/// without seconds and fraction.
fn parse_local(s: &str) -> Result<NaiveDateTime, ParseErrorKind> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ];
    let mut kind = ParseErrorKind::Invalid;
    for format in FORMATS {
        match NaiveDateTime::parse_from_str(s, format) {
            Ok(t) => return Ok(t),
            // The format that matched the shape and found an impossible value explains best.
            Err(e) if e.kind() == ParseErrorKind::OutOfRange => return Err(e.kind()),
            Err(e) => kind = e.kind(),
        }
    }
    Err(kind)
}

/// Maps a wall-clock time in `tz` to an instant, with the DST rule described in the
/// [module documentation](self): the earlier instant in an overlap, shifted forward by the gap
/// length in a gap. Never panics.
pub fn resolve_local(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        MappedLocalTime::Single(t) => t.with_timezone(&Utc),
        MappedLocalTime::Ambiguous(earlier, _later) => earlier.with_timezone(&Utc),
        MappedLocalTime::None => {
            // Reading the wall time with the offset in force before the transition lands exactly
            // "gap length" later on the new offset (02:30 at -05:00 is 03:30 at -04:00). As in
            // Temporal, the offset before is the one a day earlier, safely clear of the gap.
            let offset_before = naive
                .checked_sub_signed(TimeDelta::days(1))
                .map(|probe| tz.offset_from_utc_datetime(&probe).fix())
                .unwrap_or_else(|| Utc.fix());
            naive
                .checked_sub_signed(TimeDelta::seconds(offset_before.local_minus_utc().into()))
                .unwrap_or(naive)
                .and_utc()
        }
    }
}

/// Formats an instant as RFC 3339 with `tz`'s offset at that instant, e.g.
/// `2026-03-08T09:00:00-04:00`; fractional seconds appear only when present.
///
/// RFC 3339 offsets have whole minutes. Before standard time was adopted, some zones ran on
/// local mean time with offsets in seconds (Monrovia was -00:44:30 until 1972); such an instant
/// is written in UTC instead, so the text still names exactly that instant.
///
/// At chrono's extreme instants (which an event may carry, but no parsed input can name) the
/// local time may not exist; those too are written in UTC.
pub fn format_in_zone(t: DateTime<Utc>, tz: Tz) -> String {
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    if offset.local_minus_utc() % 60 != 0 || t.naive_utc().checked_add_offset(offset).is_none() {
        return t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    }
    t.with_timezone(&offset)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Quotes user input for an error message, cut short so a huge input cannot bloat the message.
pub(crate) fn quote(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("'{}…'", &s[..cut]),
        None => format!("'{s}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test literal is RFC 3339")
            .with_timezone(&Utc)
    }

    fn parse(s: &str, zone: Tz) -> Result<DateTime<Utc>, ValidationError> {
        parse_datetime("due", s, zone, DateOnly::StartOfDay)
    }

    #[test]
    fn rfc3339_with_offset_or_z_ignores_the_zone() {
        let expected = utc("2026-03-08T14:00:00Z");
        for s in [
            "2026-03-08T09:00:00-05:00",
            "2026-03-08T14:00:00Z",
            "2026-03-08t14:00:00z",
            "2026-03-08 14:00:00Z",
            "2026-03-08T15:00:00+01:00",
            "  2026-03-08T14:00:00+00:00 ",
            "2026-03-08T09:00-05:00",
            "2026-03-08T14:00Z",
        ] {
            assert_eq!(parse(s, Berlin), Ok(expected), "{s}");
        }
    }

    #[test]
    fn fractional_seconds_are_truncated_to_microseconds() {
        let t = parse("2026-03-08T14:00:00.123456789Z", Tz::UTC).expect("valid");
        assert_eq!(t, utc("2026-03-08T14:00:00.123456Z"));
        assert_eq!(t.nanosecond(), 123_456_000);
        // A stored value formats and parses back to itself.
        assert_eq!(parse(&format_in_zone(t, New_York), Tz::UTC), Ok(t));
    }

    #[test]
    fn date_only_is_start_or_end_of_the_local_day() {
        let start = parse_datetime("due", "2026-07-04", New_York, DateOnly::StartOfDay);
        assert_eq!(start, Ok(utc("2026-07-04T04:00:00Z")));
        let end = parse_datetime("until", "2026-07-04", New_York, DateOnly::EndOfDay);
        assert_eq!(end, Ok(utc("2026-07-05T03:59:59Z")));
        let winter_end = parse_datetime("until", "2026-12-31", Berlin, DateOnly::EndOfDay);
        assert_eq!(winter_end, Ok(utc("2026-12-31T22:59:59Z")));
    }

    #[test]
    fn local_date_time_is_read_in_the_zone() {
        let expected = utc("2026-07-04T13:30:00Z");
        for s in [
            "2026-07-04T09:30",
            "2026-07-04T09:30:00",
            "2026-07-04 09:30",
            "2026-07-04 09:30:00",
        ] {
            assert_eq!(parse(s, New_York), Ok(expected), "{s}");
        }
        assert_eq!(
            parse("2026-07-04T09:30:15.5", New_York),
            Ok(utc("2026-07-04T13:30:15.5Z"))
        );
        assert_eq!(
            parse("2026-01-15T09:30", Berlin),
            Ok(utc("2026-01-15T08:30:00Z"))
        );
    }

    #[test]
    fn spring_forward_gap_moves_forward_by_the_gap() {
        let t = parse("2026-03-08T02:30", New_York).expect("valid");
        assert_eq!(t, utc("2026-03-08T07:30:00Z"));
        assert_eq!(format_in_zone(t, New_York), "2026-03-08T03:30:00-04:00");
    }

    #[test]
    fn fall_back_overlap_takes_the_earlier_instant() {
        let t = parse("2026-11-01T01:30", New_York).expect("valid");
        assert_eq!(t, utc("2026-11-01T05:30:00Z"));
        assert_eq!(format_in_zone(t, New_York), "2026-11-01T01:30:00-04:00");
    }

    #[test]
    fn resolve_local_handles_a_gap_at_midnight() {
        // Chile springs forward at 24:00 on 2026-09-05: 00:30 on the 6th does not exist.
        let santiago = chrono_tz::America::Santiago;
        let naive = NaiveDate::from_ymd_opt(2026, 9, 6)
            .and_then(|d| d.and_hms_opt(0, 30, 0))
            .expect("valid literal");
        let t = resolve_local(naive, santiago);
        assert_eq!(format_in_zone(t, santiago), "2026-09-06T01:30:00-03:00");
    }

    #[test]
    fn resolve_local_never_panics_at_the_ends_of_time() {
        for naive in [NaiveDateTime::MIN, NaiveDateTime::MAX] {
            for tz in [Tz::UTC, New_York, chrono_tz::Pacific::Kiritimati] {
                let _ = resolve_local(naive, tz);
            }
        }
    }

    #[test]
    fn format_in_zone_never_panics_at_the_ends_of_time() {
        // West of UTC the local time of the first instant, east of it that of the last, lies
        // outside chrono's range: written in UTC.
        for (t, tz) in [
            (DateTime::<Utc>::MIN_UTC, chrono_tz::America::New_York),
            (DateTime::<Utc>::MAX_UTC, chrono_tz::Pacific::Kiritimati),
        ] {
            assert_eq!(
                format_in_zone(t, tz),
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            );
        }
    }

    #[test]
    fn format_in_zone_uses_the_local_offset() {
        let t = utc("2026-03-08T13:00:00Z");
        assert_eq!(format_in_zone(t, New_York), "2026-03-08T09:00:00-04:00");
        assert_eq!(format_in_zone(t, Tz::UTC), "2026-03-08T13:00:00+00:00");
        let t = utc("2026-03-08T13:00:00.250Z");
        assert_eq!(format_in_zone(t, Berlin), "2026-03-08T14:00:00.250+01:00");
    }

    #[test]
    fn bad_inputs_are_rejected_with_guidance() {
        for s in [
            "",
            "   ",
            "tomorrow",
            "2026/03/08",
            "08.03.2026",
            "2026-03-08T09",
        ] {
            let e = parse(s, Tz::UTC).expect_err(s);
            assert_eq!(e.field, "due");
            assert!(
                e.message.contains("2026-03-08T09:00:00-05:00"),
                "{s}: {}",
                e.message
            );
        }
    }

    #[test]
    fn impossible_dates_are_named_as_such() {
        for s in [
            "2026-02-30",
            "2026-02-30T10:00",
            "2026-02-30T10:00:00Z",
            "2026-03-08T24:30",
        ] {
            let e = parse(s, Tz::UTC).expect_err(s);
            assert!(e.message.contains("not a real date"), "{s}: {}", e.message);
        }
        // 2028 is a leap year.
        assert!(parse("2028-02-29", Tz::UTC).is_ok());
    }

    #[test]
    fn years_out_of_range_are_rejected() {
        for s in [
            "1899-12-31",
            "0001-01-01T00:00:00Z",
            "10000-01-01",
            "12026-03-08T09:00",
        ] {
            let e = parse(s, Tz::UTC).expect_err(s);
            assert!(
                e.message.contains("between 1900 and 9999"),
                "{s}: {}",
                e.message
            );
        }
        assert!(parse("1900-01-01", Tz::UTC).is_ok());
        assert!(parse("9999-12-31T23:59:59Z", Tz::UTC).is_ok());
    }

    #[test]
    fn leap_seconds_are_rejected() {
        let e = parse("2016-12-31T23:59:60Z", Tz::UTC).expect_err("leap second");
        assert!(e.message.contains("leap second"), "{}", e.message);
    }

    #[test]
    fn long_input_is_cut_short_in_messages() {
        let e = parse(&"x".repeat(10_000), Tz::UTC).expect_err("garbage");
        assert!(e.message.len() < 600, "{}", e.message.len());
    }

    #[test]
    fn zones_parse_by_iana_name() {
        assert_eq!(
            Zone::parse("time_zone", "America/New_York").map(|z| z.tz()),
            Ok(New_York)
        );
        let z = Zone::parse("time_zone", "  europe/berlin ").expect("case-insensitive");
        assert_eq!(z.name(), "Europe/Berlin");
        assert_eq!(Zone::parse("time_zone", "UTC"), Ok(Zone::UTC));
        assert_eq!(Zone::default(), Zone::UTC);
        assert_eq!(Zone::from(Berlin).to_string(), "Europe/Berlin");

        for bad in ["", "Mars/Olympus_Mons", "EST5EDT7", "+05:00"] {
            let e = Zone::parse("time_zone", bad).expect_err(bad);
            assert_eq!(e.field, "time_zone");
            assert!(
                e.message.contains("America/New_York"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn zone_serde_is_the_name_and_validates() {
        let z = Zone::from(New_York);
        assert_eq!(
            serde_json::to_string(&z).ok(),
            Some("\"America/New_York\"".into())
        );
        let back: Zone = serde_json::from_str("\"America/New_York\"").expect("valid");
        assert_eq!(back, z);
        let err = serde_json::from_str::<Zone>("\"Nowhere/Special\"").expect_err("invalid");
        assert!(err.to_string().contains("unknown time zone"), "{err}");
    }

    #[test]
    fn zone_schema_is_a_string() {
        let schema = schemars::schema_for!(Zone);
        assert_eq!(schema.get("type").and_then(|v| v.as_str()), Some("string"));
    }
}
