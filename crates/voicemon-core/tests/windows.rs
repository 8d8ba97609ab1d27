//! Time windows: query times and durations, ranges, steps and the minute grid.

use proptest::prelude::*;
use voicemon_core::window::{
    default_step_ms, format_time, minute_of, parse_bound, parse_duration_ms, parse_time, Bound, TimeRange,
    WindowError, MAX_STEPS, MAX_STEP_MS, MINUTE_MS,
};

/// 2026-11-27T12:00:00Z.
const NOW_MS: i64 = 1_795_780_800_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Milliseconds of a time on 2026-11-27 (UTC).
fn on_the_27th(hours: i64, minutes: i64, seconds: i64) -> i64 {
    NOW_MS - 12 * HOUR_MS + hours * HOUR_MS + minutes * MINUTE_MS + seconds * 1000
}

fn range(from_ms: i64, to_ms: i64) -> TimeRange {
    TimeRange { from_ms, to_ms }
}

// ---------------------------------------------------------------------------------------
// parse_time.

#[test]
fn query_times_are_read_as_rfc3339_or_unix_seconds() {
    let cases = [
        ("2026-11-27T12:00:00Z", NOW_MS),
        ("2026-11-27T12:00:00.250Z", NOW_MS + 250),
        ("2026-11-27T13:00:00+01:00", NOW_MS),
        ("2026-11-27T07:00:00-05:00", NOW_MS),
        ("  2026-11-27T12:00:00Z \n", NOW_MS),
        ("1795780800", NOW_MS),
        ("1795780800.25", NOW_MS + 250),
        ("1795780800.0004", NOW_MS),
        (" 1795780800 ", NOW_MS),
        ("0", 0),
        ("1970-01-01T00:00:00Z", 0),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_time(text), Ok(expected), "{text:?}");
    }
}

#[test]
fn query_times_that_are_neither_rfc3339_nor_unix_seconds_are_refused_quoting_them() {
    let cases = ["", "yesterday", "now-1h", "2026-11-27", "2026-11-27 12:00:00", "-5", "NaN", "inf", "12:00"];
    let not_plain_seconds = ["1.2e-08", "1e9", "+5", ".5", "5.", "1_000", "0x10"];
    for text in cases.into_iter().chain(not_plain_seconds) {
        assert_eq!(parse_time(text), Err(WindowError::BadTime(text.trim().to_owned())), "{text:?}");
    }
}

#[test]
fn a_bad_time_error_says_what_is_expected() {
    let message = parse_time("yesterday").unwrap_err().to_string();
    assert!(
        message.contains("yesterday") && message.contains("RFC 3339") && message.contains("unix seconds"),
        "{message}"
    );
}

#[test]
fn unix_seconds_too_large_for_milliseconds_are_refused() {
    // 1e16 s is 1e19 ms, beyond i64: it must not silently become i64::MAX.
    for text in ["1e16", "10000000000000000", "1e300"] {
        assert_eq!(parse_time(text), Err(WindowError::BadTime(text.to_owned())), "{text:?}");
    }
}

#[test]
fn a_query_to_the_far_future_is_an_error_not_a_panic() {
    let outcome = std::panic::catch_unwind(|| {
        TimeRange::resolve(Some("0"), Some("1e16"), NOW_MS, HOUR_MS).and_then(|range| {
            let _rollups = range.minutes();
            range.steps(MINUTE_MS)
        })
    })
    .map_err(|payload| {
        let message = payload.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default();
        format!("panicked: {message}")
    });
    assert!(matches!(outcome, Ok(Err(_))), "expected an error, got {outcome:?}");
}

#[test]
fn formatted_times_are_utc_milliseconds_and_read_back_unchanged() {
    assert_eq!(format_time(NOW_MS), "2026-11-27T12:00:00.000Z");
    assert_eq!(format_time(NOW_MS + 250), "2026-11-27T12:00:00.250Z");
    for time in [0, NOW_MS, NOW_MS + 1, -MINUTE_MS] {
        assert_eq!(parse_time(&format_time(time)), Ok(time));
    }
}

// ---------------------------------------------------------------------------------------
// parse_duration_ms.

#[test]
fn durations_are_read_with_their_unit() {
    let cases = [
        ("250ms", 250),
        ("300s", 300_000),
        ("90", 90_000),
        ("1m", MINUTE_MS),
        ("5m", 5 * MINUTE_MS),
        ("1h", HOUR_MS),
        ("1d", DAY_MS),
        ("2w", 14 * DAY_MS),
        (" 15m ", 15 * MINUTE_MS),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_duration_ms(text), Ok(expected), "{text:?}");
    }
}

#[test]
fn durations_without_a_number_or_with_an_unknown_unit_are_refused_quoting_them() {
    for text in ["", "m", "5x", "5 m", "5M", "1.5h", "-5m", "5mm", "h1", "1y", "PT5M"] {
        assert_eq!(
            parse_duration_ms(text),
            Err(WindowError::BadDuration(text.trim().to_owned())),
            "{text:?}"
        );
    }
}

#[test]
fn durations_that_overflow_are_refused() {
    for text in ["99999999999999999w", "9223372036854775807s", "99999999999999999999ms"] {
        assert_eq!(parse_duration_ms(text), Err(WindowError::BadDuration(text.to_owned())), "{text:?}");
    }
    assert_eq!(parse_duration_ms("9223372036854775807ms"), Ok(i64::MAX));
}

// ---------------------------------------------------------------------------------------
// TimeRange::resolve.

#[test]
fn with_neither_from_nor_to_the_range_is_the_default_before_now() {
    assert_eq!(TimeRange::resolve(None, None, NOW_MS, HOUR_MS), Ok(range(NOW_MS - HOUR_MS, NOW_MS)));
}

#[test]
fn with_only_to_the_range_is_the_default_before_to() {
    let to = on_the_27th(10, 0, 0);
    assert_eq!(
        TimeRange::resolve(None, Some("2026-11-27T10:00:00Z"), NOW_MS, 6 * HOUR_MS),
        Ok(range(to - 6 * HOUR_MS, to))
    );
}

#[test]
fn with_only_from_the_range_runs_to_now() {
    assert_eq!(
        TimeRange::resolve(Some("2026-11-27T11:30:00Z"), None, NOW_MS, HOUR_MS),
        Ok(range(on_the_27th(11, 30, 0), NOW_MS))
    );
}

#[test]
fn with_both_the_default_is_ignored_and_the_forms_may_mix() {
    assert_eq!(
        TimeRange::resolve(Some("1795773600"), Some("2026-11-27T11:00:00Z"), NOW_MS, 5 * MINUTE_MS),
        Ok(range(on_the_27th(10, 0, 0), on_the_27th(11, 0, 0)))
    );
}

#[test]
fn a_range_whose_from_is_not_before_to_is_empty() {
    assert_eq!(
        TimeRange::resolve(Some("1795780800"), Some("1795780800"), NOW_MS, HOUR_MS),
        Err(WindowError::Empty)
    );
    assert_eq!(
        TimeRange::resolve(Some("1795780801"), Some("1795780800"), NOW_MS, HOUR_MS),
        Err(WindowError::Empty)
    );
    assert_eq!(
        TimeRange::resolve(Some("2026-11-27T12:30:00Z"), None, NOW_MS, HOUR_MS),
        Err(WindowError::Empty)
    );
    assert_eq!(TimeRange::resolve(None, None, NOW_MS, 0), Err(WindowError::Empty));
}

#[test]
fn a_bad_from_or_to_is_refused_naming_the_text() {
    assert_eq!(
        TimeRange::resolve(Some("soon"), None, NOW_MS, HOUR_MS),
        Err(WindowError::BadBound("soon".into()))
    );
    assert_eq!(
        TimeRange::resolve(None, Some("later"), NOW_MS, HOUR_MS),
        Err(WindowError::BadBound("later".into()))
    );
    for text in ["2026-13-01", "2026-02-30", "2026-11-27 12:00:00", "27/11/2026"] {
        assert_eq!(
            TimeRange::resolve(Some(text), None, NOW_MS, HOUR_MS),
            Err(WindowError::BadBound(text.into())),
            "{text}"
        );
    }
    let message = WindowError::BadBound("soon".into()).to_string();
    assert!(message.contains("2026-11-27)") && message.contains("RFC 3339"), "{message}");
}

#[test]
fn a_bare_from_date_is_its_midnight_and_a_bare_to_date_includes_that_whole_day() {
    let midnight_of_the_27th = on_the_27th(0, 0, 0);
    assert_eq!(
        TimeRange::resolve(Some("2026-11-27"), Some("2026-11-27"), NOW_MS, HOUR_MS),
        Ok(range(midnight_of_the_27th, midnight_of_the_27th + DAY_MS))
    );
    assert_eq!(
        TimeRange::resolve(Some("2026-11-01"), Some("2026-11-15"), NOW_MS, HOUR_MS),
        Ok(range(midnight_of_the_27th - 26 * DAY_MS, midnight_of_the_27th - 11 * DAY_MS))
    );
    assert_eq!(parse_bound("2026-12-31", Bound::To), parse_bound("2027-01-01", Bound::From));
    assert_eq!(parse_bound(" 2026-11-27T12:00:00Z ", Bound::To), Ok(NOW_MS), "times are read as before");
}

// ---------------------------------------------------------------------------------------
// Minutes and steps.

#[test]
fn minute_of_is_the_start_of_the_minute_for_negative_and_positive_times() {
    let cases = [
        (0, 0),
        (1, 0),
        (59_999, 0),
        (60_000, 60_000),
        (60_001, 60_000),
        (-1, -60_000),
        (-59_999, -60_000),
        (-60_000, -60_000),
        (-60_001, -120_000),
        (NOW_MS, NOW_MS),
        (NOW_MS + 59_999, NOW_MS),
        (NOW_MS - 1, NOW_MS - MINUTE_MS),
    ];
    for (time, minute) in cases {
        assert_eq!(minute_of(time), minute, "minute_of({time})");
    }
}

#[test]
fn a_range_widens_to_the_whole_minutes_it_touches() {
    let cases = [
        // [10:00:30, 10:05:00) reads minutes 10:00..10:04.
        (
            range(on_the_27th(10, 0, 30), on_the_27th(10, 5, 0)),
            range(on_the_27th(10, 0, 0), on_the_27th(10, 5, 0)),
        ),
        // One millisecond into 10:05 reads that minute too.
        (
            range(on_the_27th(10, 0, 30), on_the_27th(10, 5, 0) + 1),
            range(on_the_27th(10, 0, 0), on_the_27th(10, 6, 0)),
        ),
        (range(NOW_MS, NOW_MS + 1), range(NOW_MS, NOW_MS + MINUTE_MS)),
        (range(-90_000, -30_000), range(-120_000, 0)),
    ];
    for (given, widened) in cases {
        assert_eq!(given.minutes(), widened, "{given:?}");
    }
}

#[test]
fn steps_are_aligned_to_multiples_of_the_step_since_the_epoch() {
    let from = on_the_27th(10, 7, 30);
    let to = on_the_27th(11, 0, 0);
    let five_minutes = range(from, to).steps(5 * MINUTE_MS).unwrap();
    let expected: Vec<i64> = (0..11).map(|i| on_the_27th(10, 5, 0) + i * 5 * MINUTE_MS).collect();
    assert_eq!(five_minutes, expected);

    let hourly = range(from, on_the_27th(12, 30, 0)).steps(HOUR_MS).unwrap();
    assert_eq!(hourly, vec![on_the_27th(10, 0, 0), on_the_27th(11, 0, 0), on_the_27th(12, 0, 0)]);

    let daily = range(from, on_the_27th(10, 8, 0)).steps(DAY_MS).unwrap();
    assert_eq!(daily, vec![on_the_27th(0, 0, 0)]);
}

#[test]
fn a_range_on_step_boundaries_has_no_extra_step() {
    let steps = range(on_the_27th(10, 0, 0), on_the_27th(11, 0, 0)).steps(MINUTE_MS).unwrap();
    assert_eq!(steps.len(), 60);
    assert_eq!(steps.first(), Some(&on_the_27th(10, 0, 0)));
    assert_eq!(steps.last(), Some(&on_the_27th(10, 59, 0)));
}

#[test]
fn steps_before_the_epoch_align_downwards() {
    assert_eq!(range(-90_000, 0).steps(MINUTE_MS), Ok(vec![-120_000, -60_000]));
}

#[test]
fn steps_that_are_not_whole_minutes_are_refused() {
    let hour = range(NOW_MS - HOUR_MS, NOW_MS);
    for step in [0, 1, 30_000, 59_999, 90_000, -MINUTE_MS] {
        assert_eq!(hour.steps(step), Err(WindowError::BadStep), "step {step}");
    }
}

#[test]
fn more_than_max_steps_is_refused_with_the_count() {
    let at_the_limit = range(NOW_MS - MAX_STEPS * MINUTE_MS, NOW_MS);
    assert_eq!(at_the_limit.steps(MINUTE_MS).map(|s| s.len()), Ok(MAX_STEPS as usize));

    let one_over = range(NOW_MS - (MAX_STEPS + 1) * MINUTE_MS, NOW_MS);
    assert_eq!(one_over.steps(MINUTE_MS), Err(WindowError::TooManySteps { steps: MAX_STEPS + 1 }));
    // A larger step makes the same range fine.
    assert_eq!(one_over.steps(2 * MINUTE_MS).map(|s| s.len()), Ok(MAX_STEPS as usize / 2 + 1));

    let a_year = range(NOW_MS - 365 * DAY_MS, NOW_MS);
    let error = a_year.steps(MINUTE_MS).unwrap_err();
    assert_eq!(error, WindowError::TooManySteps { steps: 365 * 24 * 60 });
    assert!(error.to_string().contains("larger step"), "{error}");
}

#[test]
fn the_default_step_gives_about_sixty_points_in_whole_minutes() {
    let cases = [
        (5 * MINUTE_MS, MINUTE_MS),
        (HOUR_MS, MINUTE_MS),
        (6 * HOUR_MS, 6 * MINUTE_MS),
        (DAY_MS, 24 * MINUTE_MS),
        (7 * DAY_MS, 168 * MINUTE_MS),
        (90 * MINUTE_MS, MINUTE_MS),
    ];
    for (length, step) in cases {
        assert_eq!(default_step_ms(&range(NOW_MS - length, NOW_MS)), step, "range of {length} ms");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn minute_of_is_a_minute_boundary_at_or_before_the_time(time in -4_000_000_000_000i64..4_000_000_000_000) {
        let minute = minute_of(time);
        prop_assert_eq!(minute % MINUTE_MS, 0);
        prop_assert!(minute <= time && time < minute + MINUTE_MS);
    }

    #[test]
    fn steps_cover_the_range_contiguously(
        from in 0i64..4_000_000_000_000,
        length in 1i64..(30 * DAY_MS),
        step_minutes in prop::sample::select(vec![1i64, 5, 15, 60, 1440]),
    ) {
        let step = step_minutes * MINUTE_MS;
        let the_range = range(from, from + length);
        match the_range.steps(step) {
            Ok(steps) => {
                prop_assert!(!steps.is_empty());
                prop_assert!(steps[0] <= from && from < steps[0] + step);
                prop_assert_eq!(steps[0] % step, 0);
                for pair in steps.windows(2) {
                    prop_assert_eq!(pair[1] - pair[0], step);
                }
                let last = *steps.last().unwrap();
                prop_assert!(last < from + length && from + length <= last + step);
            }
            Err(WindowError::TooManySteps { steps }) => prop_assert!(steps > MAX_STEPS),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn the_default_step_is_always_allowed(from in 0i64..4_000_000_000_000, length in 1i64..(365 * DAY_MS)) {
        let the_range = range(from, from + length);
        let step = default_step_ms(&the_range);
        prop_assert!(step >= MINUTE_MS && step % MINUTE_MS == 0);
        prop_assert!(the_range.steps(step).is_ok());
    }
}

/// Read while writing the fuzz target `query_params`: a step of nearly `i64::MAX` ms
/// (`step=153722867280912m`, a whole number of minutes) overflowed the step count (a
/// panic with overflow checks, a wrapped count without). Steps are at most 3650 days now.
#[test]
fn a_step_longer_than_ten_years_is_refused_instead_of_overflowing() {
    let step_ms = parse_duration_ms("153722867280912m").expect("a duration that fits i64");
    let whole_range = TimeRange::resolve(Some("0000-01-01T00:00:00Z"), Some("9999-12-31T00:00:00Z"), 0, 0)
        .expect("a range over every year");
    assert_eq!(whole_range.steps(step_ms), Err(WindowError::BadStep));
    assert_eq!(whole_range.steps(MAX_STEP_MS).map(|steps| steps.len()), Ok(1_002));
}
