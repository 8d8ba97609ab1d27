//! Query parameters, typed: `Params<T>` deserialises the query string into `T`.
//!
//! Values are trimmed and empty ones count as absent (`?agent_id=` is no filter), a name
//! given twice keeps its last value, unknown names are ignored, and a value that does not
//! fit its type is a 400 that names the parameter.

use crate::api::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{Datelike, NaiveDate};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::IntoParams;
use voicemon_core::latency::Component;
use voicemon_core::window::{parse_duration_ms, TimeRange};
use voicemon_store::CostGroup;

/// The query parameters of a request, as `T`.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse(parts.uri.query().unwrap_or_default()).map(Params)
    }
}

/// Parses a raw query string into `T` (see the module's rules).
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        pairs.retain(|(seen, _)| *seen != name);
        let value = value.trim();
        if !value.is_empty() {
            pairs.push((name.into_owned(), value.to_owned()));
        }
    }
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let name = err.path().to_string();
        let reason = err.into_inner();
        ApiError::BadRequest(format!("query parameter `{name}`: {reason}"))
    })
}

/// `from` / `to`: RFC 3339 or unix seconds.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// The start of the range: RFC 3339 (`2026-11-27T10:00:00Z`) or unix seconds; by
    /// default a span before `to` that depends on the route.
    #[param(schema_with = time_schema)]
    pub from: Option<String>,
    /// The end of the range (exclusive), as `from`; now by default.
    #[param(schema_with = time_schema)]
    pub to: Option<String>,
}

/// A query time: RFC 3339, or unix seconds (up to the end of year 9999).
fn time_schema() -> Schema {
    let rfc3339 = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
    let unix_seconds = ObjectBuilder::new().schema_type(Type::String).pattern(Some(UNIX_SECONDS_PATTERN));
    OneOfBuilder::new().item(rfc3339).item(unix_seconds).into()
}

/// Unix seconds as a query value (`window::parse_time`): digits, and decimals if any.
const UNIX_SECONDS_PATTERN: &str = "^[0-9]+(\\.[0-9]+)?$";

impl RangeParams {
    /// Whether either end was given.
    pub fn is_given(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    /// The range asked for: `to` defaults to `now_ms`, `from` to `default_ms` before `to`.
    pub fn resolve(&self, now_ms: i64, default_ms: i64) -> Result<TimeRange, ApiError> {
        Ok(TimeRange::resolve(self.from.as_deref(), self.to.as_deref(), now_ms, default_ms)?)
    }
}

/// `component`: a latency component.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct ComponentParam(pub Component);

impl TryFrom<String> for ComponentParam {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Component::parse(&text).map(ComponentParam).ok_or_else(|| {
            format!("unknown component `{text}`; expected one of turn_e2e, stt, eou, llm_ttft, tts_ttfb")
        })
    }
}

/// `step`: a whole number of minutes as a duration (`5m`, `1h`), in milliseconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct StepParam(pub i64);

impl TryFrom<String> for StepParam {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        parse_duration_ms(&text).map(StepParam).map_err(|err| err.to_string())
    }
}

/// `month`: `YYYY-MM`, that UTC month.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct MonthParam {
    pub text: String,
    pub range: TimeRange,
}

impl TryFrom<String> for MonthParam {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let range = month_range(&text).ok_or_else(|| format!("`{text}` is not a month such as 2026-11"))?;
        Ok(MonthParam { text, range })
    }
}

/// `YYYY-MM` → that UTC month.
fn month_range(month: &str) -> Option<TimeRange> {
    let shape = month.len() == 7 && month.as_bytes()[4] == b'-';
    if !shape || !month.bytes().enumerate().all(|(i, b)| i == 4 || b.is_ascii_digit()) {
        return None;
    }
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = match first.month() {
        12 => NaiveDate::from_ymd_opt(first.year() + 1, 1, 1),
        month => NaiveDate::from_ymd_opt(first.year(), month + 1, 1),
    }?;
    let start = |date: NaiveDate| date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis());
    Some(TimeRange { from_ms: start(first)?, to_ms: start(next)? })
}

/// `group_by` of cost: `provider`, `component`, `model` or `day`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct CostGroupParam(pub CostGroup);

impl TryFrom<String> for CostGroupParam {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let group = match text.as_str() {
            "provider" => CostGroup::Provider,
            "component" => CostGroup::Component,
            "model" => CostGroup::Model,
            "day" => CostGroup::Day,
            other => {
                return Err(format!("cannot group cost by `{other}`; use provider, component, model or day"))
            }
        };
        Ok(CostGroupParam(group))
    }
}

/// A count between 1 and `MAX`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct Limit<const MAX: usize>(pub usize);

impl<const MAX: usize> TryFrom<String> for Limit<MAX> {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a number between 1 and {MAX}");
        let limit = text.parse::<usize>().map_err(|_| bad())?;
        (1..=MAX).contains(&limit).then_some(Limit(limit)).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Wanted {
        tenant_id: Option<String>,
        limit: Option<usize>,
    }

    #[test]
    fn empty_values_are_absent_and_values_are_trimmed() {
        let wanted: Wanted = parse("tenant_id=%20acme%20&limit=").expect("parses");
        assert_eq!(wanted, Wanted { tenant_id: Some("acme".into()), limit: None });
    }

    #[test]
    fn the_last_of_a_repeated_name_wins_and_unknown_names_are_ignored() {
        let wanted: Wanted = parse("limit=1&colour=blue&limit=7").expect("parses");
        assert_eq!(wanted, Wanted { tenant_id: None, limit: Some(7) });
    }

    #[test]
    fn a_month_is_that_utc_month() {
        let range = month_range("2026-12").expect("a month");
        assert_eq!(range.from_ms, 1_796_083_200_000);
        assert_eq!(range.to_ms, 1_798_761_600_000);
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "2026-1x"] {
            assert!(month_range(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_limit_names_its_bounds() {
        let err = parse::<Limited>("limit=0").expect_err("out of range");
        assert!(
            matches!(&err, ApiError::BadRequest(m) if m == "query parameter `limit`: `0` is not a number between 1 and 10"),
            "{err}"
        );
        assert_eq!(parse::<Limited>("limit=10").expect("in range").limit.map(|l| l.0), Some(10));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Limited {
        limit: Option<Limit<10>>,
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_parameter() {
        let err = parse::<Wanted>("limit=many").expect_err("not a number");
        assert!(
            matches!(&err, ApiError::BadRequest(m) if m.starts_with("query parameter `limit`:")),
            "{err}"
        );
    }
}
