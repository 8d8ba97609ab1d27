//! Health rules: worker staleness, breaker timelines, provider status from request
//! outcomes, uptime, down-since and the overall verdict. Every expected number here is
//! worked out by hand from the scripted facts.

use voicemon_core::event::BreakerState::{self, Closed, HalfOpen, Open};
use voicemon_core::health::{
    breaker_summary, down_since, memory_percent, minute_status, provider_status, uptime_percent,
    worker_status, BreakerChange, BreakerSummary, HealthRules, Overall, ProviderMinute, ProviderStatus,
    Verdict, WorkerStatus,
};
use voicemon_core::window::{parse_time, MINUTE_MS};

/// 2026-11-27T12:00:00Z, on a minute boundary.
const NOW_MS: i64 = 1_795_780_800_000;
const SECOND_MS: i64 = 1_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

fn rules() -> HealthRules {
    HealthRules::default()
}

fn time(text: &str) -> i64 {
    parse_time(text).unwrap_or_else(|err| panic!("{text}: {err}"))
}

fn change(at_ms: i64, state: BreakerState) -> BreakerChange {
    BreakerChange { at_ms, state }
}

/// The summary over the 24 hours before `now_ms`, which must exist.
fn day_summary(changes: &[BreakerChange], now_ms: i64) -> BreakerSummary {
    breaker_summary(changes, now_ms - DAY_MS, now_ms).expect("a summary of at least one change")
}

/// A minute `offset` minutes from the minute of `NOW_MS`.
fn minute(offset: i64, requests: u64, errors: u64) -> ProviderMinute {
    ProviderMinute { start_ms: NOW_MS + offset * MINUTE_MS, requests, errors }
}

// ---------------------------------------------------------------------------------------
// Workers.

#[test]
fn a_worker_is_up_below_30_s_of_silence_stale_from_30_s_and_down_from_120_s() {
    let cases = [
        (-5_000, WorkerStatus::Up), // a heartbeat from a clock slightly ahead
        (0, WorkerStatus::Up),
        (29_999, WorkerStatus::Up),
        (30_000, WorkerStatus::Stale),
        (30_001, WorkerStatus::Stale),
        (119_999, WorkerStatus::Stale),
        (120_000, WorkerStatus::Down),
        (120_001, WorkerStatus::Down),
        (DAY_MS, WorkerStatus::Down),
    ];
    for (silent_ms, expected) in cases {
        assert_eq!(
            worker_status(NOW_MS - silent_ms, NOW_MS, &rules()),
            expected,
            "silent for {silent_ms} ms"
        );
    }
}

#[test]
fn worker_thresholds_come_from_the_rules() {
    let rules = HealthRules { stale_after_ms: 10_000, down_after_ms: 15_000, ..HealthRules::default() };
    let cases = [
        (9_999, WorkerStatus::Up),
        (10_000, WorkerStatus::Stale),
        (14_999, WorkerStatus::Stale),
        (15_000, WorkerStatus::Down),
    ];
    for (silent_ms, expected) in cases {
        assert_eq!(worker_status(NOW_MS - silent_ms, NOW_MS, &rules), expected, "silent for {silent_ms} ms");
    }
}

#[test]
fn memory_percent_has_one_decimal_and_is_zero_without_a_limit() {
    let cases = [
        (850, 1_000, 85.0),
        (800, 1_000, 80.0),
        (799, 1_000, 79.9),
        (1, 3, 33.3),
        (2, 3, 66.7),
        (1_000, 1_000, 100.0),
        (1_500, 1_000, 150.0),
        (5, 0, 0.0),
    ];
    for (used, limit, expected) in cases {
        assert_eq!(memory_percent(used, limit), expected, "{used} of {limit}");
    }
}

// ---------------------------------------------------------------------------------------
// Breakers.

/// closed → open → half_open → open → closed, all inside the last 24 hours.
fn scripted_breaker() -> Vec<BreakerChange> {
    vec![
        change(NOW_MS - 20 * HOUR_MS, Closed),
        change(NOW_MS - 6 * HOUR_MS, Open),
        change(NOW_MS - 6 * HOUR_MS + 10 * MINUTE_MS, HalfOpen),
        change(NOW_MS - 6 * HOUR_MS + 15 * MINUTE_MS, Open),
        change(NOW_MS - 5 * HOUR_MS, Closed),
    ]
}

#[test]
fn a_breaker_that_opened_twice_inside_the_window_counts_both_open_spells() {
    let summary = day_summary(&scripted_breaker(), NOW_MS);
    assert_eq!(
        summary,
        BreakerSummary {
            state: Closed,
            since_ms: NOW_MS - 5 * HOUR_MS,
            // 10 min open, 5 min half open (not counted), 45 min open.
            open_ms_in_window: 55 * MINUTE_MS,
            transitions_in_window: 5,
        }
    );
}

#[test]
fn a_breaker_summarised_while_it_is_open_counts_open_time_up_to_now() {
    // Half-way through the second open spell.
    let now_ms = NOW_MS - 5 * HOUR_MS - 30 * MINUTE_MS;
    let summary = day_summary(&scripted_breaker(), now_ms);
    assert_eq!(
        summary,
        BreakerSummary {
            state: Open,
            since_ms: NOW_MS - 6 * HOUR_MS + 15 * MINUTE_MS,
            open_ms_in_window: 10 * MINUTE_MS + 15 * MINUTE_MS,
            // The closed at −20 h and the three changes after it; the last one is still ahead.
            transitions_in_window: 4,
        }
    );
}

#[test]
fn the_order_changes_are_given_in_does_not_matter() {
    let mut shuffled = scripted_breaker();
    shuffled.reverse();
    shuffled.swap(1, 3);
    assert_eq!(day_summary(&shuffled, NOW_MS), day_summary(&scripted_breaker(), NOW_MS));
}

#[test]
fn a_window_that_starts_while_the_breaker_is_open_counts_open_time_from_the_window_start() {
    let changes = [
        change(NOW_MS - 30 * HOUR_MS, Open),
        change(NOW_MS - 23 * HOUR_MS, HalfOpen),
        change(NOW_MS - 22 * HOUR_MS, Closed),
    ];
    let summary = day_summary(&changes, NOW_MS);
    assert_eq!(
        summary,
        BreakerSummary {
            state: Closed,
            since_ms: NOW_MS - 22 * HOUR_MS,
            // Open from before the window until −23 h: the hour from −24 h.
            open_ms_in_window: HOUR_MS,
            // The open at −30 h set the starting state but is not a change in the window.
            transitions_in_window: 2,
        }
    );
}

#[test]
fn a_breaker_open_since_before_the_window_is_open_the_whole_window_and_since_its_change() {
    let summary = day_summary(&[change(NOW_MS - 30 * HOUR_MS, Open)], NOW_MS);
    assert_eq!(
        summary,
        BreakerSummary {
            state: Open,
            since_ms: NOW_MS - 30 * HOUR_MS,
            open_ms_in_window: DAY_MS,
            transitions_in_window: 0,
        }
    );
}

#[test]
fn an_open_spell_across_midnight_utc_counts_minutes_on_both_days() {
    let changes = [
        change(time("2026-11-27T20:00:00Z"), Closed),
        change(time("2026-11-27T23:55:00Z"), Open),
        change(time("2026-11-28T00:07:00Z"), Closed),
    ];
    let now_ms = time("2026-11-28T06:00:00Z");
    let summary = day_summary(&changes, now_ms);
    assert_eq!(summary.open_ms_in_window, 12 * MINUTE_MS);
    assert_eq!(summary.state, Closed);
    assert_eq!(summary.since_ms, time("2026-11-28T00:07:00Z"));
    assert_eq!(summary.transitions_in_window, 3);
}

#[test]
fn an_open_spell_across_midnight_still_open_counts_to_now() {
    let changes = [change(time("2026-11-27T23:55:00Z"), Open)];
    let summary = day_summary(&changes, time("2026-11-28T00:07:00Z"));
    assert_eq!(summary.open_ms_in_window, 12 * MINUTE_MS);
    assert_eq!(summary.since_ms, time("2026-11-27T23:55:00Z"));
}

#[test]
fn since_is_the_first_change_of_a_run_of_the_same_state() {
    let changes = [
        change(NOW_MS - 10 * HOUR_MS, Closed),
        change(NOW_MS - 3 * HOUR_MS, Open),
        change(NOW_MS - 2 * HOUR_MS, Open),
        change(NOW_MS - HOUR_MS, Open),
    ];
    let summary = day_summary(&changes, NOW_MS);
    assert_eq!(summary.state, Open);
    assert_eq!(summary.since_ms, NOW_MS - 3 * HOUR_MS);
    assert_eq!(summary.open_ms_in_window, 3 * HOUR_MS);
    assert_eq!(summary.transitions_in_window, 4);
}

#[test]
fn since_of_a_repeated_state_stops_at_the_last_different_state() {
    let changes = [
        change(NOW_MS - 4 * HOUR_MS, Closed),
        change(NOW_MS - 3 * HOUR_MS, Open),
        change(NOW_MS - 2 * HOUR_MS, Closed),
        change(NOW_MS - HOUR_MS, Closed),
    ];
    let summary = day_summary(&changes, NOW_MS);
    assert_eq!((summary.state, summary.since_ms), (Closed, NOW_MS - 2 * HOUR_MS));
    assert_eq!(summary.open_ms_in_window, HOUR_MS);
}

#[test]
fn since_of_a_repeated_state_reaches_before_the_window() {
    let changes = [change(NOW_MS - 30 * HOUR_MS, Open), change(NOW_MS - 26 * HOUR_MS, Open)];
    let summary = day_summary(&changes, NOW_MS);
    assert_eq!(summary.since_ms, NOW_MS - 30 * HOUR_MS);
    assert_eq!(summary.open_ms_in_window, DAY_MS);
    assert_eq!(summary.transitions_in_window, 0);
}

#[test]
fn transitions_are_counted_only_inside_the_window_which_includes_its_start() {
    let changes = [
        change(NOW_MS - 48 * HOUR_MS, Open),
        change(NOW_MS - 30 * HOUR_MS, Closed),
        change(NOW_MS - DAY_MS, Open), // exactly at the window start: inside
        change(NOW_MS - HOUR_MS, Closed),
    ];
    let summary = day_summary(&changes, NOW_MS);
    assert_eq!(summary.transitions_in_window, 2);
    // Nothing of the first open spell (−48 h → −30 h) is inside the window.
    assert_eq!(summary.open_ms_in_window, 23 * HOUR_MS);
}

#[test]
fn changes_after_now_are_ignored() {
    let changes = [change(NOW_MS - HOUR_MS, Open), change(NOW_MS + MINUTE_MS, Closed)];
    let summary = day_summary(&changes, NOW_MS);
    assert_eq!(
        summary,
        BreakerSummary {
            state: Open,
            since_ms: NOW_MS - HOUR_MS,
            open_ms_in_window: HOUR_MS,
            transitions_in_window: 1,
        }
    );
    assert_eq!(breaker_summary(&[change(NOW_MS + 1, Open)], NOW_MS - DAY_MS, NOW_MS), None);
}

#[test]
fn a_breaker_without_changes_has_no_summary() {
    assert_eq!(breaker_summary(&[], NOW_MS - DAY_MS, NOW_MS), None);
}

// ---------------------------------------------------------------------------------------
// Provider status.

#[test]
fn a_minute_is_judged_by_its_error_ratio_at_the_exact_thresholds() {
    let cases = [
        (4, 4, None),
        (5, 0, Some(ProviderStatus::Up)),
        (100, 4, Some(ProviderStatus::Up)),
        (100, 5, Some(ProviderStatus::Degraded)),
        (100, 49, Some(ProviderStatus::Degraded)),
        (100, 50, Some(ProviderStatus::Down)),
        (10, 10, Some(ProviderStatus::Down)),
    ];
    for (requests, errors, expected) in cases {
        assert_eq!(minute_status(&minute(-1, requests, errors), &rules()), expected, "{errors}/{requests}");
    }
}

#[test]
fn a_minute_without_requests_is_never_judged_even_with_min_requests_zero() {
    let rules = HealthRules { min_requests: 0, ..HealthRules::default() };
    assert_eq!(minute_status(&minute(-1, 0, 0), &rules), None);
    assert_eq!(minute_status(&minute(-1, 1, 1), &rules), Some(ProviderStatus::Down));
}

#[test]
fn provider_status_follows_the_error_ratio_of_the_last_minute() {
    let cases = [
        ("no requests at all", vec![], ProviderStatus::Up),
        ("below min_requests, all failing", vec![minute(-1, 4, 4)], ProviderStatus::Up),
        ("no errors", vec![minute(-1, 100, 0)], ProviderStatus::Up),
        ("4 % errors", vec![minute(-1, 100, 4)], ProviderStatus::Up),
        ("5 % errors", vec![minute(-1, 100, 5)], ProviderStatus::Degraded),
        ("49 % errors", vec![minute(-1, 100, 49)], ProviderStatus::Degraded),
        ("50 % errors", vec![minute(-1, 10, 5)], ProviderStatus::Down),
        ("60 % errors", vec![minute(-1, 10, 6)], ProviderStatus::Down),
    ];
    for (what, minutes, expected) in cases {
        assert_eq!(provider_status(&minutes, None, NOW_MS, &rules()), expected, "{what}");
    }
}

#[test]
fn the_last_minute_is_the_current_and_the_previous_minute_bucket_together() {
    let now_ms = NOW_MS + 30 * SECOND_MS;
    // 3 of 3 failing in the previous bucket, 3 fine in the current one: 3 of 6, 50 %.
    let minutes = [minute(-1, 3, 3), minute(0, 3, 0)];
    assert_eq!(provider_status(&minutes, None, now_ms, &rules()), ProviderStatus::Down);
    // Two minutes back no longer counts, nor does a bucket after now.
    let old_and_future = [minute(-2, 10, 10), minute(1, 10, 10), minute(0, 10, 0)];
    assert_eq!(provider_status(&old_and_future, None, now_ms, &rules()), ProviderStatus::Up);
}

#[test]
fn an_open_breaker_makes_a_provider_down_even_without_errors() {
    let healthy = [minute(-1, 100, 0)];
    assert_eq!(provider_status(&healthy, Some(Open), NOW_MS, &rules()), ProviderStatus::Down);
    assert_eq!(provider_status(&[], Some(Open), NOW_MS, &rules()), ProviderStatus::Down);
}

#[test]
fn a_half_open_breaker_makes_a_provider_degraded_but_never_hides_worse_errors() {
    let healthy = [minute(-1, 100, 0)];
    let failing = [minute(-1, 10, 6)];
    assert_eq!(provider_status(&healthy, Some(HalfOpen), NOW_MS, &rules()), ProviderStatus::Degraded);
    assert_eq!(provider_status(&failing, Some(HalfOpen), NOW_MS, &rules()), ProviderStatus::Down);
    assert_eq!(provider_status(&healthy, Some(Closed), NOW_MS, &rules()), ProviderStatus::Up);
    assert_eq!(provider_status(&failing, Some(Closed), NOW_MS, &rules()), ProviderStatus::Down);
}

// ---------------------------------------------------------------------------------------
// Uptime and down-since.

#[test]
fn uptime_is_the_percent_of_judged_minutes_that_were_not_down() {
    // Nine good minutes and one with 6 of 10 failing.
    let mut minutes: Vec<ProviderMinute> = (-10..-1).map(|offset| minute(offset, 10, 0)).collect();
    minutes.push(minute(-1, 10, 6));
    assert_eq!(uptime_percent(&minutes, NOW_MS - HOUR_MS, NOW_MS, &rules()), Some(90.0));
}

#[test]
fn degraded_minutes_count_as_up_and_sparse_minutes_are_not_judged() {
    let minutes = [
        minute(-6, 10, 0),
        minute(-5, 10, 1), // degraded
        minute(-4, 10, 0),
        minute(-3, 10, 9), // down
        minute(-2, 4, 4),  // too few requests
        minute(-1, 0, 0),
    ];
    assert_eq!(uptime_percent(&minutes, NOW_MS - HOUR_MS, NOW_MS, &rules()), Some(75.0));
}

#[test]
fn uptime_is_rounded_to_two_decimals() {
    let mut two_of_three = vec![minute(-3, 10, 0), minute(-2, 10, 0), minute(-1, 10, 10)];
    assert_eq!(uptime_percent(&two_of_three, NOW_MS - HOUR_MS, NOW_MS, &rules()), Some(66.67));
    two_of_three.extend((-7..-3).map(|offset| minute(offset, 10, 0)));
    // 6 of 7.
    assert_eq!(uptime_percent(&two_of_three, NOW_MS - HOUR_MS, NOW_MS, &rules()), Some(85.71));
}

#[test]
fn uptime_counts_minutes_starting_in_from_inclusive_to_exclusive() {
    let minutes = [minute(-60, 10, 10), minute(-30, 10, 0), minute(0, 10, 10)];
    // −60 is in, 0 (= to) is out: 1 of 2.
    assert_eq!(uptime_percent(&minutes, NOW_MS - HOUR_MS, NOW_MS, &rules()), Some(50.0));
    assert_eq!(uptime_percent(&minutes, NOW_MS - HOUR_MS + 1, NOW_MS + 1, &rules()), Some(50.0));
    assert_eq!(uptime_percent(&minutes, NOW_MS - 59 * MINUTE_MS, NOW_MS, &rules()), Some(100.0));
}

#[test]
fn uptime_is_none_without_a_judged_minute() {
    assert_eq!(uptime_percent(&[], NOW_MS - HOUR_MS, NOW_MS, &rules()), None);
    let sparse = [minute(-2, 4, 4), minute(-1, 1, 0)];
    assert_eq!(uptime_percent(&sparse, NOW_MS - HOUR_MS, NOW_MS, &rules()), None);
    let outside = [minute(-120, 10, 0)];
    assert_eq!(uptime_percent(&outside, NOW_MS - HOUR_MS, NOW_MS, &rules()), None);
}

#[test]
fn down_since_is_the_start_of_the_run_of_down_minutes_reaching_now() {
    let minutes =
        [minute(-5, 10, 0), minute(-4, 10, 6), minute(-3, 10, 10), minute(-2, 10, 5), minute(-1, 20, 19)];
    assert_eq!(down_since(&minutes, NOW_MS, &rules()), Some(NOW_MS - 4 * MINUTE_MS));
    let mut shuffled = minutes;
    shuffled.reverse();
    assert_eq!(down_since(&shuffled, NOW_MS, &rules()), Some(NOW_MS - 4 * MINUTE_MS));
}

#[test]
fn a_degraded_minute_breaks_a_run_of_down_minutes() {
    let minutes = [minute(-4, 10, 6), minute(-3, 10, 1), minute(-2, 10, 6), minute(-1, 10, 6)];
    assert_eq!(down_since(&minutes, NOW_MS, &rules()), Some(NOW_MS - 2 * MINUTE_MS));
}

#[test]
fn down_since_is_none_when_the_last_judged_minute_is_up() {
    let recovered = [minute(-3, 10, 10), minute(-2, 10, 10), minute(-1, 10, 0)];
    assert_eq!(down_since(&recovered, NOW_MS, &rules()), None);
    // A sparse minute, however bad, does not make an up provider down.
    let sparse_after_up = [minute(-2, 10, 0), minute(-1, 3, 3)];
    assert_eq!(down_since(&sparse_after_up, NOW_MS, &rules()), None);
    assert_eq!(down_since(&[], NOW_MS, &rules()), None);
}

#[test]
fn down_since_ignores_minutes_after_now() {
    let minutes = [minute(-2, 10, 10), minute(-1, 10, 10), minute(1, 10, 0)];
    assert_eq!(down_since(&minutes, NOW_MS, &rules()), Some(NOW_MS - 2 * MINUTE_MS));
}

// ---------------------------------------------------------------------------------------
// Verdict.

#[test]
fn a_verdict_without_reasons_is_ok() {
    assert_eq!(Verdict::default().status(), Overall::Ok);
}

#[test]
fn the_verdict_status_is_its_worst_reason_and_every_reason_is_kept_in_order() {
    let mut verdict = Verdict::default();
    verdict.add(Overall::Degraded, "worker w1 is stale");
    assert_eq!(verdict.status(), Overall::Degraded);
    verdict.add(Overall::Critical, "breaker deepgram (acme) is open");
    verdict.add(Overall::Degraded, "provider openai is degraded");
    assert_eq!(verdict.status(), Overall::Critical);
    let messages: Vec<&str> = verdict.reasons.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        messages,
        ["worker w1 is stale", "breaker deepgram (acme) is open", "provider openai is degraded"]
    );
}

#[test]
fn overall_statuses_order_ok_below_degraded_below_critical() {
    assert!(Overall::Ok < Overall::Degraded && Overall::Degraded < Overall::Critical);
    let mut only_ok = Verdict::default();
    only_ok.add(Overall::Ok, "informational");
    assert_eq!(only_ok.status(), Overall::Ok);
}
