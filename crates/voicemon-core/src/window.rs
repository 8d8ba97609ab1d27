//! Time windows: the minute grid rollups live on, query ranges and steps.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use thiserror::Error;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// The most steps one query may ask for (as Prometheus' 11 000-point limit).
pub const MAX_STEPS: i64 = 11_000;
/// The longest step: ten years, far past any retention, and small enough that step
/// arithmetic over any range of years 0000-9999 stays within `i64`.
pub const MAX_STEP_MS: i64 = 3650 * DAY_MS;

/// The start of the minute holding `timestamp_ms`.
pub fn minute_of(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// The start of the hour holding `timestamp_ms`.
pub fn hour_of(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// A half-open range `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ms: i64,
    pub to_ms: i64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("`{0}` is neither an RFC 3339 time (2026-11-27T10:00:00Z) nor unix seconds")]
    BadTime(String),
    #[error(
        "`{0}` is neither an RFC 3339 time (2026-11-27T10:00:00Z), a UTC date (2026-11-27) nor unix seconds"
    )]
    BadBound(String),
    #[error("`{0}` is not a duration such as 1m, 5m, 1h or 1d")]
    BadDuration(String),
    #[error("`from` must be before `to`")]
    Empty,
    #[error("step must be a whole number of minutes, from 1m to 3650d")]
    BadStep,
    #[error("{steps} steps is more than {MAX_STEPS}; ask for a larger step or a shorter range")]
    TooManySteps { steps: i64 },
}

/// Parses a query time: RFC 3339, or unix seconds (`1795780800`, `1795780800.25`).
pub fn parse_time(text: &str) -> Result<i64, WindowError> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    match is_unix_seconds(text).then(|| text.parse::<f64>()) {
        // Up to year 9999: anything later is a typo, and would overflow the minute grid.
        Some(Ok(seconds)) if seconds <= 253_402_300_799.0 => Ok((seconds * 1000.0).round() as i64),
        _ => Err(WindowError::BadTime(text.to_owned())),
    }
}

/// Unix seconds as the API takes them: digits, optionally a point and more digits (not
/// every float Rust reads: no sign, exponent, `inf` or bare point).
fn is_unix_seconds(text: &str) -> bool {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    match text.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(text),
    }
}

/// Parses a duration such as `5m`, `1h`, `1d` or `300s`, in milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, WindowError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| WindowError::BadDuration(text.to_owned()))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" | "" => 1_000,
        "m" => MINUTE_MS,
        "h" => 60 * MINUTE_MS,
        "d" => 24 * 60 * MINUTE_MS,
        "w" => 7 * 24 * 60 * MINUTE_MS,
        _ => return Err(WindowError::BadDuration(text.to_owned())),
    };
    number.checked_mul(unit_ms).ok_or_else(|| WindowError::BadDuration(text.to_owned()))
}

/// Which end of a range a query time gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `from`: a bare date is its first instant, 00:00 UTC.
    From,
    /// `to` (exclusive): a bare date is the end of that day, the next day's 00:00 UTC.
    To,
}

/// Parses one end of a query range: what [`parse_time`] reads, or a bare UTC date
/// (`2026-11-15`), whose instant depends on the end it gives ([`Bound`]).
pub fn parse_bound(text: &str, bound: Bound) -> Result<i64, WindowError> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = match bound {
            Bound::From => Some(date),
            Bound::To => date.succ_opt(),
        };
        let start = day.and_then(|day| day.and_hms_opt(0, 0, 0));
        return start
            .map(|t| t.and_utc().timestamp_millis())
            .ok_or_else(|| WindowError::BadBound(text.into()));
    }
    parse_time(text).map_err(|_| WindowError::BadBound(text.to_owned()))
}

impl TimeRange {
    /// Whether `at_ms` is in `[from_ms, to_ms)`.
    pub fn contains(&self, at_ms: i64) -> bool {
        self.from_ms <= at_ms && at_ms < self.to_ms
    }

    /// Resolves optional `from`/`to` query text ([`parse_bound`]); the default is the
    /// `default_ms` before `to` (and `to` defaults to now).
    pub fn resolve(
        from: Option<&str>,
        to: Option<&str>,
        now_ms: i64,
        default_ms: i64,
    ) -> Result<TimeRange, WindowError> {
        let to_ms = to.map(|to| parse_bound(to, Bound::To)).transpose()?.unwrap_or(now_ms);
        let from_ms =
            from.map(|from| parse_bound(from, Bound::From)).transpose()?.unwrap_or(to_ms - default_ms);
        if from_ms >= to_ms {
            return Err(WindowError::Empty);
        }
        Ok(TimeRange { from_ms, to_ms })
    }

    /// The range widened to whole minutes: the rollups it must read.
    pub fn minutes(&self) -> TimeRange {
        TimeRange { from_ms: minute_of(self.from_ms), to_ms: minute_of(self.to_ms - 1) + MINUTE_MS }
    }

    /// Step starts over the range, aligned to multiples of `step_ms` since the epoch.
    pub fn steps(&self, step_ms: i64) -> Result<Vec<i64>, WindowError> {
        if !(MINUTE_MS..=MAX_STEP_MS).contains(&step_ms) || step_ms % MINUTE_MS != 0 {
            return Err(WindowError::BadStep);
        }
        let first = self.from_ms.div_euclid(step_ms) * step_ms;
        // `to_ms > first`, so this is the ceiling of the span over the step, without the
        // `+ step_ms - 1` that could overflow.
        let steps = (self.to_ms - first - 1) / step_ms + 1;
        if steps > MAX_STEPS {
            return Err(WindowError::TooManySteps { steps });
        }
        Ok((0..steps).map(|i| first + i * step_ms).collect())
    }
}

/// A default step giving about 60 points over the range, rounded to whole minutes.
pub fn default_step_ms(range: &TimeRange) -> i64 {
    let raw = (range.to_ms - range.from_ms) / 60;
    (raw.div_euclid(MINUTE_MS).max(1)) * MINUTE_MS
}

/// RFC 3339 text (UTC, milliseconds) for answers.
pub fn format_time(timestamp_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(timestamp_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| timestamp_ms.to_string())
}
