//! Property tests of the hostile-input surface of `todo-shared`: due-time and time-zone parsing
//! (`time`) and recurrence rules (`recurrence`).
//!
//! Each property states what must hold for *every* input, not just the examples in the unit
//! tests: parsing never panics and fails with a bounded, field-naming message; parsed RFC 3339
//! instants format back to themselves; `next_occurrence` is strictly after its argument, monotone
//! and consistent with the series it enumerates; calendar rules keep their wall-clock time and
//! day of month across DST changes and short months.

use chrono::{
    DateTime, Datelike, FixedOffset, MappedLocalTime, NaiveDate, NaiveTime, Offset, SecondsFormat,
    TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use proptest::prelude::*;
use todo_shared::recurrence::{
    Frequency, MAX_COUNT, MAX_INTERVAL, Recurrence, RecurrenceInput, Weekday,
};
use todo_shared::time::{
    DateOnly, MAX_YEAR, MIN_YEAR, Zone, format_in_zone, parse_datetime, resolve_local,
};

const NY: Tz = chrono_tz::America::New_York;

/// Zones with DST gaps and overlaps of different shapes: an hour at 02:00 (New York, Berlin),
/// at midnight (Santiago), half an hour (Lord Howe), southern hemisphere (Sydney), none (UTC,
/// Kolkata), a 12:45 offset (Chatham).
const ZONES: [Tz; 9] = [
    Tz::UTC,
    chrono_tz::America::New_York,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::Santiago,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Australia::Sydney,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Pacific::Chatham,
    chrono_tz::America::Los_Angeles,
];

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking a slow recurrence case can take long; the first failure is informative.
        max_shrink_iters: 2_000,
        // No regression files beside the sources; a failure prints its minimal input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn any_zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec())
}

fn curated_zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(ZONES.to_vec())
}

fn date_only() -> impl Strategy<Value = DateOnly> {
    prop_oneof![Just(DateOnly::StartOfDay), Just(DateOnly::EndOfDay)]
}

fn micros_of(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn utc_ymd(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .expect("valid literal date")
}

/// An instant with microsecond precision between `from` and `to` (years, UTC).
fn instant_between(from: i32, to: i32) -> impl Strategy<Value = DateTime<Utc>> {
    let lo = micros_of(utc_ymd(from, 1, 2));
    let hi = micros_of(utc_ymd(to, 12, 30));
    (lo..hi).prop_map(|us| DateTime::from_timestamp_micros(us).expect("in chrono's range"))
}

/// Strings that look like dates more often than random text does, with years, months, days,
/// hours and offsets out of range, odd separators, long years and fractions.
fn date_like() -> impl Strategy<Value = String> {
    let year = prop_oneof![
        -10i64..=3000,
        1890i64..=1910,
        9990i64..=10010,
        Just(0i64),
        Just(1),
        Just(100_000),
        Just(i64::from(i32::MAX)),
        any::<i64>(),
    ];
    let sep = prop::sample::select(vec!["T", "t", " ", "", "_", "TT"]);
    let tail = prop::sample::select(vec![
        "",
        "Z",
        "z",
        "+00:00",
        "-05:00",
        "+23:59",
        "+24:00",
        "-99:99",
        "+05",
        "+0530",
        "UTC",
        ".5Z",
        ".123456789Z",
        ".1234567891234",
        ":60Z",
        "\u{0}",
        "\u{1F600}",
    ]);
    (
        year,
        0u32..=14,
        0u32..=33,
        sep,
        0u32..=25,
        0u32..=61,
        0u32..=61,
        tail,
        any::<bool>(),
    )
        .prop_map(|(y, mo, d, sep, h, mi, s, tail, with_time)| {
            if with_time {
                format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{tail}")
            } else {
                format!("{y:04}-{mo:02}-{d:02}{tail}")
            }
        })
}

/// Anything a hostile caller might send as a time.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => date_like(),
        2 => any::<String>(),
        1 => "[0-9TZz:+. -]{0,40}",
        1 => prop::sample::select(vec![
            String::new(),
            " ".repeat(1000),
            "9".repeat(100_000),
            format!("{}-01-01", "1".repeat(5000)),
            "0001-01-01T00:00:00Z".to_owned(),
            "9999-12-31T23:59:59.999999999-23:59".to_owned(),
            "100000-01-01".to_owned(),
            "2026-03-08T09:00:00\u{0}Z".to_owned(),
            "%_'\"\\".to_owned(),
        ]),
    ]
}

/// Checks what every rejection must look like: the field the caller gave, and a message that
/// says something yet stays short however large the input.
fn assert_clear_error(e: &todo_shared::ValidationError, field: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.field, field);
    prop_assert!(!e.message.trim().is_empty());
    prop_assert!(
        e.message.len() < 1_000,
        "message of {} bytes: {}…",
        e.message.len(),
        e.message.chars().take(200).collect::<String>()
    );
    Ok(())
}

// --- time ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// Whatever the text, zone and reading of a bare date: no panic; a result is a whole
    /// microsecond whose written year was in range; an error names the field and is short.
    #[test]
    fn parse_datetime_never_panics_and_errors_are_clear(
        s in hostile_text(),
        zone in any_zone(),
        mode in date_only(),
    ) {
        match parse_datetime("due", &s, zone, mode) {
            Ok(t) => {
                prop_assert_eq!(t.nanosecond() % 1_000, 0, "not truncated to µs: {}", t);
                // The year as written is in range, so the instant is within a day of it.
                prop_assert!(t >= utc_ymd(MIN_YEAR - 1, 12, 30) && t <= utc_ymd(MAX_YEAR, 12, 31) + TimeDelta::days(2), "{s:?} -> {t}");
            }
            Err(e) => assert_clear_error(&e, "due")?,
        }
    }

    /// An RFC 3339 time with any offset (or `Z`) and any precision names one instant: parsing
    /// gives it (to the microsecond), whatever zone the task is in.
    #[test]
    fn rfc3339_parses_to_the_instant_it_names(
        t in instant_between(MIN_YEAR, MAX_YEAR),
        extra_nanos in 0u32..1_000,
        offset_minutes in -1439i32..=1439,
        use_z in any::<bool>(),
        seconds in prop::sample::select(vec![SecondsFormat::Secs, SecondsFormat::Millis, SecondsFormat::Micros, SecondsFormat::Nanos, SecondsFormat::AutoSi]),
        zone in any_zone(),
        mode in date_only(),
    ) {
        let precise = t + TimeDelta::nanoseconds(i64::from(extra_nanos));
        let offset = FixedOffset::east_opt(offset_minutes * 60).expect("within a day");
        let text = precise.with_timezone(&offset).to_rfc3339_opts(seconds, use_z);
        let expected = match seconds {
            SecondsFormat::Secs => t.with_nanosecond(0).expect("valid"),
            SecondsFormat::Millis => DateTime::from_timestamp_millis(t.timestamp_millis()).expect("valid"),
            _ => t,
        };
        prop_assert_eq!(parse_datetime("due", &text, zone, mode), Ok(expected), "{}", text);
        // Upper-case or lower-case `T`/`Z` and surrounding blanks change nothing.
        let padded = format!("  {}\t", text.to_lowercase());
        prop_assert_eq!(parse_datetime("due", &padded, zone, mode), Ok(expected), "{}", padded);
    }

    /// What the server shows (`format_in_zone`) parses back to the same instant in any zone.
    #[test]
    fn formatted_times_parse_back_to_the_same_instant(
        t in instant_between(MIN_YEAR, MAX_YEAR),
        shown_in in any_zone(),
        read_in in any_zone(),
    ) {
        // Offsets with seconds (local mean time before ~1920, Monrovia until 1972) cannot be
        // written in RFC 3339: see `shown_times_parse_back_to_the_same_instant`.
        prop_assume!(t.with_timezone(&shown_in).offset().fix().local_minus_utc() % 60 == 0);
        let text = format_in_zone(t, shown_in);
        prop_assert_eq!(parse_datetime("due", &text, read_in, DateOnly::StartOfDay), Ok(t), "{}", text);
    }

    /// A local date-time is that wall-clock time in the zone: exactly, when it exists; the
    /// earlier instant when it happens twice; later by the gap when clocks skip it.
    #[test]
    fn local_times_follow_the_documented_dst_rule(
        t in instant_between(1970, 2100),
        zone in any_zone(),
        with_seconds in any::<bool>(),
    ) {
        let naive = t.naive_utc().with_nanosecond(0).expect("valid");
        let naive = if with_seconds { naive } else { naive.with_second(0).expect("valid") };
        let text = if with_seconds {
            naive.format("%Y-%m-%dT%H:%M:%S").to_string()
        } else {
            naive.format("%Y-%m-%d %H:%M").to_string()
        };
        let got = parse_datetime("due", &text, zone, DateOnly::StartOfDay);
        prop_assert_eq!(got.clone(), Ok(resolve_local(naive, zone)));
        let got = got.expect("checked above");
        match zone.from_local_datetime(&naive) {
            MappedLocalTime::Single(exact) => prop_assert_eq!(got, exact.with_timezone(&Utc)),
            MappedLocalTime::Ambiguous(earlier, later) => {
                prop_assert!(earlier < later);
                prop_assert_eq!(got, earlier.with_timezone(&Utc));
            }
            MappedLocalTime::None => {
                let shown = got.with_timezone(&zone).naive_local();
                prop_assert!(shown > naive, "{text} in {zone} -> {shown}");
                prop_assert!(shown - naive <= TimeDelta::hours(24), "{text} in {zone} -> {shown}");
            }
        }
    }

    /// A bare date is the start or the end of that local day.
    #[test]
    fn dates_are_the_start_or_end_of_the_local_day(
        t in instant_between(1970, 2100),
        zone in curated_zone(),
    ) {
        let day = t.date_naive();
        let text = day.format("%Y-%m-%d").to_string();
        let start = parse_datetime("due", &text, zone, DateOnly::StartOfDay).expect("a real date");
        let end = parse_datetime("until", &text, zone, DateOnly::EndOfDay).expect("a real date");
        prop_assert!(start < end);
        prop_assert_eq!(end.with_timezone(&zone).date_naive(), day);
        prop_assert_eq!(end.with_timezone(&zone).time(), NaiveTime::from_hms_opt(23, 59, 59).expect("valid"));
        // The start is the day's first instant (midnight, or the end of a gap at midnight).
        prop_assert_eq!(start.with_timezone(&zone).date_naive(), day);
        prop_assert!((start - TimeDelta::seconds(1)).with_timezone(&zone).date_naive() < day);
    }

    /// Years outside 1900..=9999 are refused with the range in the message, however written.
    #[test]
    fn out_of_range_years_are_refused(
        year in prop_oneof![0i64..MIN_YEAR as i64, (MAX_YEAR as i64 + 1)..1_000_000_000],
        rest in prop::sample::select(vec!["-01-01", "-06-15T12:00", "-12-31T23:59:59Z", "-02-28T00:00:00+05:00"]),
        zone in curated_zone(),
        mode in date_only(),
    ) {
        let text = format!("{year:04}{rest}");
        let e = parse_datetime("due_after", &text, zone, mode).expect_err("out of range");
        assert_clear_error(&e, "due_after")?;
        prop_assert!(e.message.contains("between 1900 and 9999"), "{}: {}", text, e.message);
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Any text: no panic; an error names `time_zone`, quotes at most a bounded prefix, and
    /// points to IANA names.
    #[test]
    fn zone_parse_never_panics(s in prop_oneof![any::<String>(), "[A-Za-z_/+-]{0,30}", Just("x".repeat(100_000))]) {
        match Zone::parse("time_zone", &s) {
            Ok(z) => prop_assert!(z.name().eq_ignore_ascii_case(s.trim())),
            Err(e) => {
                assert_clear_error(&e, "time_zone")?;
                prop_assert!(e.message.contains("IANA"), "{}", e.message);
            }
        }
    }

    /// Every IANA name is accepted in any letter case with blanks around it, and names itself.
    #[test]
    fn every_iana_name_parses_in_any_case(
        zone in any_zone(),
        flips in prop::collection::vec(any::<bool>(), 40),
        pad in "[ \t]{0,3}",
    ) {
        let mangled: String = zone
            .name()
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        let parsed = Zone::parse("time_zone", &format!("{pad}{mangled}{pad}")).expect("an IANA name");
        prop_assert!(parsed.name().eq_ignore_ascii_case(zone.name()), "{} -> {}", mangled, parsed);
        let json = serde_json::to_string(&parsed).expect("serialises");
        prop_assert_eq!(serde_json::from_str::<Zone>(&json).ok(), Some(parsed));
    }
}

// --- recurrence: parsing ------------------------------------------------------------------------

fn frequency() -> impl Strategy<Value = Frequency> {
    prop::sample::select(vec![
        Frequency::Daily,
        Frequency::Weekly,
        Frequency::Monthly,
        Frequency::Yearly,
        Frequency::Cron,
    ])
}

fn weekday() -> impl Strategy<Value = Weekday> {
    prop::sample::select(vec![
        Weekday::Mo,
        Weekday::Tu,
        Weekday::We,
        Weekday::Th,
        Weekday::Fr,
        Weekday::Sa,
        Weekday::Su,
    ])
}

fn cron_value() -> impl Strategy<Value = String> {
    prop_oneof![0u32..=70, Just(0u32), Just(59), Just(31), Just(99_999)].prop_map(|n| n.to_string())
}

/// One cron field: the syntax croner accepts (steps, ranges, lists, `L`, `W`, `#`, names) and
/// values out of range.
fn cron_field() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("*".to_owned()),
        3 => cron_value(),
        1 => Just("?".to_owned()),
        1 => (cron_value(), cron_value()).prop_map(|(a, b)| format!("{a}-{b}")),
        1 => (cron_value(), 0u32..=70).prop_map(|(a, s)| format!("{a}/{s}")),
        1 => (0u32..=70).prop_map(|s| format!("*/{s}")),
        1 => prop::collection::vec(cron_value(), 1..4).prop_map(|v| v.join(",")),
        1 => prop::sample::select(vec![
            "L", "LW", "W", "15W", "5L", "1#2", "5#5", "7#1", "0#6", "MON-FRI", "jan", "FEB,dec",
            "sun", "+1", "+MON", "L-3", "-1", ",", "*/0", "1-", "--", "**", "\u{0}", "١",
        ])
        .prop_map(str::to_owned),
    ]
}

fn cron_expression() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(cron_field(), 5).prop_map(|f| f.join(" ")),
        1 => prop::collection::vec(cron_field(), 0..9).prop_map(|f| f.join(" ")),
        1 => any::<String>(),
        1 => prop::sample::select(vec![
            "0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "* * * * *", "@daily", "@reboot",
            "0 0 29 2 1", "0 0 29 2 +1", "0 0 31 2 +MON", "0 0 L 2 *", "0 0 29 2 *",
        ])
        .prop_map(str::to_owned),
    ]
}

fn recurrence_input() -> impl Strategy<Value = RecurrenceInput> {
    (
        frequency(),
        prop_oneof![
            Just(None),
            (0u32..=1_100).prop_map(Some),
            any::<u32>().prop_map(Some)
        ],
        prop::option::of(prop::collection::vec(weekday(), 0..9)),
        prop::option::of(hostile_text()),
        prop_oneof![
            Just(None),
            (0u32..=20).prop_map(Some),
            any::<u32>().prop_map(Some)
        ],
        prop::option::of(cron_expression()),
    )
        .prop_map(
            |(frequency, interval, weekdays, until, count, cron)| RecurrenceInput {
                frequency,
                interval,
                weekdays,
                until,
                count,
                cron,
            },
        )
}

proptest! {
    #![proptest_config(config(512))]

    /// Any rule a caller can send: no panic (nor hang); a rejection names a `recurrence.*`
    /// field; an accepted rule respects every documented bound, survives its stored JSON and
    /// its echo as tool input, and yields occurrences strictly after the start.
    #[test]
    fn recurrence_parse_never_panics_and_accepts_only_valid_rules(
        input in recurrence_input(),
        zone in curated_zone(),
        start in instant_between(2000, 2090),
    ) {
        match Recurrence::parse(input.clone(), zone) {
            Err(e) => {
                prop_assert!(e.field.starts_with("recurrence."), "{}: {}", e.field, e.message);
                prop_assert!(!e.message.trim().is_empty());
                prop_assert!(e.message.len() < 1_000, "{} bytes", e.message.len());
            }
            Ok(r) => {
                prop_assert_eq!(r.frequency(), input.frequency);
                if let Some(count) = r.count() {
                    prop_assert!((1..=MAX_COUNT).contains(&count));
                }
                match r.frequency() {
                    Frequency::Cron => {
                        prop_assert_eq!(r.interval(), None);
                        prop_assert!(r.weekdays().is_empty());
                        prop_assert_eq!(r.cron().map(|c| c.split(' ').count()), Some(5));
                    }
                    f => {
                        prop_assert!(r.interval().is_some_and(|i| (1..=MAX_INTERVAL).contains(&i)));
                        prop_assert_eq!(r.cron(), None);
                        if f != Frequency::Weekly {
                            prop_assert!(r.weekdays().is_empty());
                        }
                        prop_assert!(r.weekdays().windows(2).all(|w| w[0] < w[1]), "sorted, unique");
                    }
                }
                let stored = serde_json::to_value(&r).expect("serialises");
                prop_assert_eq!(serde_json::from_value::<Recurrence>(stored.clone()).ok(), Some(r.clone()), "{}", stored);
                // The echo as tool input parses back to the same rule, whenever `until` shows
                // with a year the parser takes (see `shown_times_parse_back_to_the_same_instant`).
                let shown_year = r.until().map(|u| u.with_timezone(&zone).year());
                if shown_year.is_none_or(|y| (MIN_YEAR..=MAX_YEAR).contains(&y)) {
                    prop_assert_eq!(Recurrence::parse(r.to_input(zone), zone), Ok(r.clone()));
                }
                prop_assert!(!r.describe(zone).is_empty());

                let mut previous = start;
                for _ in 0..5 {
                    match r.next_occurrence(start, previous, zone) {
                        Some(next) => {
                            prop_assert!(next > previous, "{:?}: {} after {}", r, next, previous);
                            previous = next;
                        }
                        None => break,
                    }
                }
            }
        }
    }

    /// Stored JSON is revalidated: arbitrary objects never panic and never give a rule that
    /// fails to serialise back to an equivalent rule.
    #[test]
    fn stored_recurrence_json_is_revalidated(json in arbitrary_json(3)) {
        if let Ok(r) = serde_json::from_value::<Recurrence>(json) {
            let again = serde_json::to_value(&r).expect("serialises");
            prop_assert_eq!(serde_json::from_value::<Recurrence>(again).ok(), Some(r));
        }
    }
}

/// JSON values of any shape, with keys and strings a recurrence record might use.
fn arbitrary_json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let key = prop::sample::select(vec![
        "frequency",
        "interval",
        "weekdays",
        "until",
        "count",
        "cron",
        "extra",
    ]);
    let text = prop_oneof![
        prop::sample::select(vec![
            "daily",
            "weekly",
            "monthly",
            "yearly",
            "cron",
            "hourly",
            "mo",
            "su",
            "0 9 * * *",
            "0 0 31 2 *",
            "2026-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
            "",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..20_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text.prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..7).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

// --- recurrence: the series ---------------------------------------------------------------------

/// A valid calendar rule: small intervals mostly, sometimes weekdays, `count` or `until`.
fn calendar_rule(start: DateTime<Utc>) -> impl Strategy<Value = RecurrenceInput> {
    (
        prop::sample::select(vec![
            Frequency::Daily,
            Frequency::Weekly,
            Frequency::Monthly,
            Frequency::Yearly,
        ]),
        prop_oneof![4 => 1u32..=3, 1 => 1u32..=MAX_INTERVAL],
        prop::collection::vec(weekday(), 0..4),
        prop::option::of(0i64..3_000),
        prop::option::of(1u32..=40),
    )
        .prop_map(
            move |(frequency, interval, weekdays, until_days, count)| RecurrenceInput {
                frequency,
                interval: Some(interval),
                weekdays: (frequency == Frequency::Weekly && !weekdays.is_empty())
                    .then_some(weekdays),
                until: until_days.map(|d| (start + TimeDelta::days(d)).to_rfc3339()),
                count,
                cron: None,
            },
        )
}

/// Valid cron expressions of several shapes, DST-sensitive ones included.
fn valid_cron() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "* * * * *",
            "*/30 * * * *",
            "30 2 * * *",
            "30 1 * * *",
            "0 9 * * 1-5",
            "0 0 1 * *",
            "0 0 L * *",
            "15 10 * * 5L",
            "0 12 * * 1#2",
            "0 0 29 2 *",
            "0 9 13 * 5",
            "0 9 13 * +5",
            "0 0 * * 0",
            "59 23 31 12 *",
            "*/7 */5 * * *",
        ])
        .prop_map(str::to_owned),
        (0u32..60, 0u32..24, 1u32..=28).prop_map(|(m, h, d)| format!("{m} {h} {d} * *")),
        (0u32..60, 1u32..=12).prop_map(|(m, step)| format!("{m} */{step} * * *")),
    ]
}

fn first_occurrences(
    r: &Recurrence,
    start: DateTime<Utc>,
    zone: Tz,
    n: usize,
) -> Vec<DateTime<Utc>> {
    std::iter::successors(Some(start), |prev| r.next_occurrence(start, *prev, zone))
        .take(n)
        .collect()
}

/// The properties every series has, whatever its rule: starts at its start, strictly increasing,
/// bounded by `count` and `until`, and `next_occurrence(after)` is the first occurrence after
/// `after` (so it is strictly after it and monotone in it, and skips none).
fn check_series(
    r: &Recurrence,
    start: DateTime<Utc>,
    zone: Tz,
    probes: &[u64],
) -> Result<(), TestCaseError> {
    let series = first_occurrences(r, start, zone, 40);
    prop_assert_eq!(series[0], start);
    for pair in series.windows(2) {
        prop_assert!(
            pair[1] > pair[0],
            "{:?} not increasing: {} then {}",
            r,
            pair[0],
            pair[1]
        );
    }
    if let Some(count) = r.count() {
        prop_assert!(
            series.len() <= count as usize,
            "{} > count {}",
            series.len(),
            count
        );
        if series.len() < 40
            && r.until().is_none()
            && series.last().is_some_and(|t| t.year() < 9000)
        {
            // Nothing else ended the series: exactly `count` occurrences.
            prop_assert_eq!(series.len(), count as usize, "{:?}", r);
        }
    }
    if let Some(until) = r.until() {
        prop_assert!(
            series[1..].iter().all(|t| *t <= until),
            "{:?}: past until",
            r
        );
    }
    // Before the start, the next occurrence is the start itself.
    prop_assert_eq!(
        r.next_occurrence(start, start - TimeDelta::microseconds(1), zone),
        Some(start)
    );
    // Any `after` inside the enumerated span: the first enumerated occurrence after it.
    let last = *series.last().expect("the start at least");
    let span = (last - start).num_microseconds().unwrap_or(i64::MAX).max(1) as u64;
    let mut previous_answer = Some(start);
    let mut afters: Vec<DateTime<Utc>> = probes
        .iter()
        .map(|p| start + TimeDelta::microseconds((p % span) as i64))
        .chain(series.iter().copied())
        .collect();
    afters.sort();
    for after in afters {
        let got = r.next_occurrence(start, after, zone);
        if after < last {
            let expected = series.iter().copied().find(|t| *t > after);
            prop_assert_eq!(got, expected, "{:?}: next after {}", r, after);
        }
        if let Some(next) = got {
            prop_assert!(next > after, "{:?}: {} is not after {}", r, next, after);
        }
        // Monotone: a later `after` never gives an earlier answer, and once ended stays ended.
        match (previous_answer, got) {
            (Some(a), Some(b)) => prop_assert!(b >= a, "{:?}: {} then {}", r, a, b),
            (None, Some(b)) => prop_assert!(false, "{:?}: ended, then {} after {}", r, b, after),
            _ => {}
        }
        previous_answer = got;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// Calendar series in zones with every kind of DST change.
    #[test]
    fn calendar_series_are_increasing_consistent_and_bounded(
        (start, input) in instant_between(1990, 2090).prop_flat_map(|s| (Just(s), calendar_rule(s))),
        zone in curated_zone(),
        probes in prop::collection::vec(any::<u64>(), 8),
    ) {
        let r = Recurrence::parse(input.clone(), zone).expect("a valid calendar rule");
        check_series(&r, start, zone, &probes)?;
    }

    /// Cron series, with and without `count`, in zones with DST changes.
    #[test]
    fn cron_series_are_increasing_consistent_and_bounded(
        cron in valid_cron(),
        count in prop::option::of(1u32..=30),
        zone in curated_zone(),
        start in instant_between(2000, 2090),
        probes in prop::collection::vec(any::<u64>(), 8),
    ) {
        let input = RecurrenceInput {
            frequency: Frequency::Cron,
            interval: None,
            weekdays: None,
            until: None,
            count,
            cron: Some(cron.clone()),
        };
        let r = Recurrence::parse(input, zone).expect("a valid cron rule");
        check_series(&r, start, zone, &probes)?;
    }

}

proptest! {
    // Each case walks up to 10,000 firings: few cases.
    #![proptest_config(config(12))]

    /// `* * * * *` with the largest `count`: one occurrence per minute in any zone (a local
    /// minute skipped by DST is no instant, and a repeated one is two), exactly `count` of them,
    /// and asking near the end stays fast.
    #[test]
    fn every_minute_with_the_largest_count_ends_exactly(
        zone in curated_zone(),
        start in instant_between(2000, 2090),
        count in prop_oneof![Just(MAX_COUNT), 1u32..=MAX_COUNT],
    ) {
        let start = start.with_second(0).and_then(|t| t.with_nanosecond(0)).expect("valid");
        let input = RecurrenceInput {
            frequency: Frequency::Cron,
            interval: None,
            weekdays: None,
            until: None,
            count: Some(count),
            cron: Some("* * * * *".into()),
        };
        let r = Recurrence::parse(input, zone).expect("valid");
        let last = start + TimeDelta::minutes(i64::from(count) - 1);
        prop_assert_eq!(r.next_occurrence(start, last - TimeDelta::seconds(1), zone), Some(last));
        prop_assert_eq!(r.next_occurrence(start, last, zone), None);
        prop_assert_eq!(r.next_occurrence(start, start, zone), Some(start + TimeDelta::minutes(1)).filter(|_| count > 1));
    }
}

/// The US DST change days of a year (second Sunday of March, first Sunday of November), where
/// the rules have been in force since 2007.
fn us_dst_days(year: i32) -> [NaiveDate; 2] {
    let nth_sunday = |month: u32, n: u8| {
        NaiveDate::from_weekday_of_month_opt(year, month, chrono::Weekday::Sun, n)
            .expect("every month has two Sundays")
    };
    [nth_sunday(3, 2), nth_sunday(11, 1)]
}

proptest! {
    #![proptest_config(config(256))]

    /// A daily New York series started within two weeks before a DST change keeps its wall
    /// time on every day across it: exactly when the time exists, the earlier (EDT) instant when
    /// it happens twice, one hour later when it is skipped; and it falls on every day.
    #[test]
    fn daily_series_keep_wall_time_across_dst_in_new_york(
        year in 2007i32..=2099,
        which in 0usize..2,
        days_before in 0i64..14,
        hour in 0u32..24,
        minute in prop_oneof![Just(0u32), Just(30), 0u32..60],
        interval in prop_oneof![3 => Just(1u32), 1 => 1u32..=3],
    ) {
        let change = us_dst_days(year)[which];
        let first_day = change - TimeDelta::days(days_before);
        let asked = NaiveTime::from_hms_opt(hour, minute, 0).expect("valid");
        let start = resolve_local(first_day.and_time(asked), NY);
        // The series keeps the start's wall time: the asked one unless the start itself fell
        // in the gap (02:30 on the change day is 03:30, and so is every later day).
        let wall = start.with_timezone(&NY).time();
        let r = Recurrence::parse(
            RecurrenceInput { frequency: Frequency::Daily, interval: Some(interval), weekdays: None, until: None, count: None, cron: None },
            NY,
        ).expect("valid");
        let series = first_occurrences(&r, start, NY, 30);
        prop_assert_eq!(series.len(), 30);
        let mut crossed = false;
        for (k, t) in series.iter().enumerate() {
            let day = first_day + TimeDelta::days(k as i64 * i64::from(interval));
            crossed |= day >= change;
            let local = t.with_timezone(&NY);
            match NY.from_local_datetime(&day.and_time(wall)) {
                MappedLocalTime::Single(exact) => prop_assert_eq!(local, exact, "day {}", k),
                MappedLocalTime::Ambiguous(earlier, _) => {
                    prop_assert_eq!(local, earlier, "day {}", k);
                    prop_assert_eq!(local.format("%z").to_string(), "-0400");
                }
                MappedLocalTime::None => {
                    prop_assert_eq!(day, change);
                    prop_assert_eq!(local.naive_local(), day.and_time(wall) + TimeDelta::hours(1));
                }
            }
        }
        prop_assert!(crossed, "the series crossed the change");
    }

    /// Monthly series: each occurrence is exactly `interval` months after the previous one, on
    /// the start's day or, in shorter months, the month's last day. Started on the 31st with
    /// interval 1, that is every month, none skipped (Jan 31 → Feb 28/29 → Mar 31 → Apr 30).
    #[test]
    fn monthly_series_never_skip_a_month(
        year in 1990i32..=2090,
        month in 1u32..=12,
        day in prop_oneof![3 => Just(31u32), 1 => 28u32..=31, 1 => 1u32..=31],
        interval in prop_oneof![3 => Just(1u32), 1 => 1u32..=14],
        hour in 0u32..24,
        minute in 0u32..60,
        zone in curated_zone(),
    ) {
        // A day the month lacks (Feb 31) starts on the month's last day instead.
        let day = day.min(days_in_month(year, month));
        let first_day = NaiveDate::from_ymd_opt(year, month, day).expect("clamped to the month");
        let asked = NaiveTime::from_hms_opt(hour, minute, 0).expect("valid");
        let start = resolve_local(first_day.and_time(asked), zone);
        prop_assume!(start.with_timezone(&zone).date_naive() == first_day);
        // As for daily series: the series keeps the start's wall time, which is the asked one
        // unless the start itself fell in a gap (02:00 on 2069-03-31 in Berlin is 03:00).
        let wall = start.with_timezone(&zone).time();
        let r = Recurrence::parse(
            RecurrenceInput { frequency: Frequency::Monthly, interval: Some(interval), weekdays: None, until: None, count: None, cron: None },
            zone,
        ).expect("valid");
        let series = first_occurrences(&r, start, zone, 25);
        prop_assert_eq!(series.len(), 25);
        let month_index = |d: NaiveDate| d.year() * 12 + d.month0() as i32;
        for (k, t) in series.iter().enumerate() {
            let local = t.with_timezone(&zone);
            let date = local.date_naive();
            prop_assert_eq!(month_index(date) - month_index(first_day), k as i32 * interval as i32, "occurrence {} on {}", k, date);
            let last_of_month = days_in_month(date.year(), date.month());
            prop_assert_eq!(date.day(), day.min(last_of_month), "occurrence {} on {}", k, date);
            if zone.from_local_datetime(&date.and_time(wall)).single().is_some() {
                prop_assert_eq!(local.time(), wall, "occurrence {} on {}", k, date);
            }
        }
    }

    /// Yearly series from Feb 29 fall on Feb 29 in leap years and Feb 28 otherwise; any other
    /// start keeps its month and day every year.
    #[test]
    fn yearly_series_keep_their_day(
        year in 1990i32..=2090,
        month in 1u32..=12,
        day in 1u32..=31,
        zone in curated_zone(),
    ) {
        let first_day = NaiveDate::from_ymd_opt(year, month, day)
            .or_else(|| NaiveDate::from_ymd_opt(2028, 2, 29))
            .expect("valid");
        let start = resolve_local(first_day.and_hms_opt(12, 0, 0).expect("valid"), zone);
        let r = Recurrence::parse(
            RecurrenceInput { frequency: Frequency::Yearly, interval: None, weekdays: None, until: None, count: None, cron: None },
            zone,
        ).expect("valid");
        for (k, t) in first_occurrences(&r, start, zone, 10).iter().enumerate() {
            let date = t.with_timezone(&zone).date_naive();
            prop_assert_eq!(date.year(), first_day.year() + k as i32);
            prop_assert_eq!(date.month(), first_day.month());
            prop_assert_eq!(date.day(), first_day.day().min(days_in_month(date.year(), date.month())));
        }
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(31, |d| d.day())
}

fn rfc3339(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test literal is RFC 3339")
        .with_timezone(&Utc)
}

fn rule(json: serde_json::Value, zone: Tz) -> Recurrence {
    Recurrence::parse(serde_json::from_value(json).expect("valid input"), zone).expect("valid rule")
}

const EDGE_RULES: [(&str, Option<&str>); 6] = [
    ("daily", None),
    ("weekly", None),
    ("monthly", None),
    ("yearly", None),
    ("cron", Some("* * * * *")),
    ("cron", Some("0 0 29 2 *")),
];

/// The far ends of what an RFC 3339 time can name (years 0000 to 9999, any offset), as series
/// starts and as `after`, in every zone: `next_occurrence` answers or ends, never panics; and in
/// UTC the same holds at the ends of chrono's own range.
#[test]
fn series_at_the_ends_of_time_end_without_panicking() {
    let rfc3339_edges = [
        rfc3339("0000-01-01T00:00:00+23:59"),
        rfc3339("0001-01-01T00:00:00Z"),
        utc_ymd(MIN_YEAR, 1, 1),
        utc_ymd(MAX_YEAR, 12, 31) + TimeDelta::hours(23),
        rfc3339("9999-12-31T23:59:59.999999-23:59"),
    ];
    let chrono_edges = [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC];
    for (frequency, cron) in EDGE_RULES {
        for count in [None, Some(100)] {
            let json = serde_json::json!({"frequency": frequency, "cron": cron, "count": count});
            let zones = [
                Tz::UTC,
                NY,
                chrono_tz::Pacific::Kiritimati,
                chrono_tz::Pacific::Chatham,
            ];
            let cases = zones
                .iter()
                .map(|&zone| (zone, &rfc3339_edges[..]))
                .chain([(Tz::UTC, &chrono_edges[..])]);
            for (zone, edges) in cases {
                let r = rule(json.clone(), zone);
                for &start in edges {
                    for &after in edges {
                        // Walking a daily, weekly or monthly series across millennia is slow in debug
                        // builds (seconds); that costs time, not correctness.
                        let far = after - start > TimeDelta::days(365 * 200);
                        if far && matches!(frequency, "daily" | "weekly" | "monthly") {
                            continue;
                        }
                        if let Some(next) = r.next_occurrence(start, after, zone) {
                            assert!(
                                next > after || (after < start && next == start),
                                "{frequency} {cron:?} in {zone}: {next} after {after} from {start}"
                            );
                        }
                    }
                    let _ = r.first_occurrence_from(start, zone);
                }
            }
        }
    }
    // A series started in the last accepted year ends there instead of running past 9999.
    let daily = rule(serde_json::json!({"frequency": "daily"}), Tz::UTC);
    let start = utc_ymd(MAX_YEAR, 12, 30);
    assert_eq!(
        first_occurrences(&daily, start, Tz::UTC, 10),
        [start, start + TimeDelta::days(1)]
    );
}

/// chrono's extreme instants, in zones whose offset would push the local time outside chrono's
/// range, give no occurrence rather than a panic (no parsed input can name them, but the library
/// must not depend on that).
#[test]
fn series_at_chrono_extremes_outside_utc_do_not_panic() {
    let edges = [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC];
    let mut panics = Vec::new();
    for (frequency, cron) in EDGE_RULES {
        for zone in [chrono_tz::America::New_York, chrono_tz::Europe::Berlin] {
            let r = rule(
                serde_json::json!({"frequency": frequency, "cron": cron}),
                zone,
            );
            for start in edges {
                for after in edges {
                    let outcome =
                        std::panic::catch_unwind(|| r.next_occurrence(start, after, zone));
                    if outcome.is_err() {
                        panics.push(format!(
                            "{frequency} {cron:?} {zone} start={start} after={after}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        panics.is_empty(),
        "next_occurrence panicked for:\n{}",
        panics.join("\n")
    );
}

/// What the server shows of an accepted time names that time in a form it accepts back: a
/// time whose year is in range as written but not in the task's zone or in UTC is refused, and an
/// instant in a zone's local mean time (offsets with seconds) is shown in UTC.
#[test]
fn shown_times_parse_back_to_the_same_instant() {
    let cases = [
        ("9999-12-31T23:59:59-23:59", Tz::UTC),
        ("9999-12-31T23:00:00Z", chrono_tz::Pacific::Kiritimati),
        ("9999-12-31", chrono_tz::Pacific::Kiritimati),
        ("1900-01-01T00:00:00Z", NY),
        (
            "1920-04-30T12:00:00",
            chrono_tz::America::Argentina::Buenos_Aires,
        ),
        ("1970-06-01T12:00:00", chrono_tz::Africa::Monrovia),
    ];
    let mut broken = Vec::new();
    for (text, zone) in cases {
        for mode in [DateOnly::StartOfDay, DateOnly::EndOfDay] {
            if let Ok(t) = parse_datetime("due", text, zone, mode) {
                let shown = format_in_zone(t, zone);
                if parse_datetime("due", &shown, zone, mode) != Ok(t) {
                    broken.push(format!("{text} in {zone} is accepted but shows as {shown}, which does not parse back to it"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Cron expressions that never fire are refused, in every zone.
#[test]
fn cron_that_never_fires_is_refused_everywhere() {
    for never in [
        "0 0 31 2 *",
        "0 0 30 2 *",
        "0 0 31 4,6,9,11 *",
        "0 0 30,31 2 *",
    ] {
        for zone in [Tz::UTC, NY, chrono_tz::Australia::Lord_Howe] {
            let input: RecurrenceInput =
                serde_json::from_value(serde_json::json!({"frequency": "cron", "cron": never}))
                    .expect("valid input");
            let e = Recurrence::parse(input, zone).expect_err(never);
            assert_eq!(e.field, "recurrence.cron");
            assert!(e.message.contains("never fires"), "{never}: {}", e.message);
        }
    }
}

#[test]
fn naive_helpers_are_sane() {
    // Guards the helpers the properties rely on.
    assert_eq!(days_in_month(2028, 2), 29);
    assert_eq!(days_in_month(2026, 2), 28);
    assert_eq!(days_in_month(2026, 12), 31);
    assert_eq!(
        us_dst_days(2026),
        [
            NaiveDate::from_ymd_opt(2026, 3, 8).expect("valid"),
            NaiveDate::from_ymd_opt(2026, 11, 1).expect("valid"),
        ]
    );
}

/// Found by `monthly_series_never_skip_a_month`: a monthly series whose first occurrence falls in
/// a DST gap (02:00 on 2069-03-31 in Berlin does not exist) starts at 03:00 and keeps 03:00.
#[test]
fn a_series_started_in_a_gap_keeps_the_resolved_wall_time() {
    let zone = chrono_tz::Europe::Berlin;
    let asked = NaiveDate::from_ymd_opt(2069, 3, 31)
        .and_then(|d| d.and_hms_opt(2, 0, 0))
        .expect("valid");
    let start = resolve_local(asked, zone);
    let r = Recurrence::parse(
        RecurrenceInput {
            frequency: Frequency::Monthly,
            interval: Some(1),
            weekdays: None,
            until: None,
            count: None,
            cron: None,
        },
        zone,
    )
    .expect("valid");
    let local: Vec<String> = first_occurrences(&r, start, zone, 3)
        .iter()
        .map(|t| t.with_timezone(&zone).naive_local().to_string())
        .collect();
    assert_eq!(
        local,
        [
            "2069-03-31 03:00:00",
            "2069-04-30 03:00:00",
            "2069-05-31 03:00:00"
        ]
    );
}
