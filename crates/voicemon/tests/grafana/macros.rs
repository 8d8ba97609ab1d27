//! Grafana's expansion of a PostgreSQL panel query, in the order Grafana applies it: the
//! dashboard's template variables (frontend), the global substitutions of its SQL engine
//! (`$__interval_ms`, `$__interval`, `$__unixEpochFrom()`, `$__unixEpochTo()`), then the
//! PostgreSQL data source's macros (`$__timeFilter(col)` → `col BETWEEN '<from>' AND '<to>'`,
//! `$__timeGroupAlias(col, 1m)` → `floor(extract(epoch from col)/60)*60 AS "time"`, …), as
//! written in Grafana's `pkg/tsdb/grafana-postgresql-datasource/macros.go` and
//! `sqleng/sql_engine.go`.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// A dashboard variable's selected values.
#[derive(Debug, Clone)]
pub struct Variable {
    pub values: Vec<String>,
    /// Multi-value or include-All: Grafana's SQL data sources quote each value by default.
    pub multi: bool,
}

/// What Grafana knows when it sends a query: the range, the step and the variables.
#[derive(Debug, Clone)]
pub struct Context {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Duration,
    pub variables: BTreeMap<String, Variable>,
}

/// The SQL Grafana would send to PostgreSQL for `sql`.
pub fn expand(sql: &str, context: &Context) -> Result<String, String> {
    let sql = interpolate_variables(sql, context)?;
    let sql = interpolate_globals(&sql, context);
    let sql = expand_macros(&sql, context)?;
    match leftover(&sql) {
        Some(rest) => Err(format!("unexpanded `{rest}` in: {sql}")),
        None => Ok(sql),
    }
}

/// The first template token left in `sql` (`$name`, `${…}`, `$__…`, `[[name]]`), if any.
pub fn leftover(sql: &str) -> Option<String> {
    let bytes = sql.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied().unwrap_or(b' ');
        let token = (b == b'$' && (next == b'{' || next == b'_' || next.is_ascii_alphabetic()))
            || (b == b'[' && next == b'[');
        if token {
            return Some(sql[i..].chars().take(24).collect());
        }
    }
    None
}

/// Grafana's `FormatInterval`: `1m`, `1h`, `30s`, `2d` …
pub fn format_interval(interval: Duration) -> String {
    let ms = interval.as_millis();
    let units = [(365 * 86_400_000, "y"), (86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    for (size, unit) in units {
        if ms >= size {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{}ms", ms.max(1))
}

/// Go's `time.RFC3339Nano` in UTC: no fraction when whole seconds, trailing zeros trimmed.
pub fn rfc3339_nano(time: DateTime<Utc>) -> String {
    let seconds = time.format("%Y-%m-%dT%H:%M:%S").to_string();
    match time.timestamp_subsec_nanos() {
        0 => format!("{seconds}Z"),
        nanos => format!("{seconds}.{}Z", format!("{nanos:09}").trim_end_matches('0')),
    }
}

fn interpolate_variables(sql: &str, context: &Context) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (name, format, used) = match rest.strip_prefix("${") {
            Some(braced) => {
                let end = braced.find('}').ok_or_else(|| format!("unclosed `${{` in: {sql}"))?;
                let (name, format) = braced[..end].split_once(':').unwrap_or((&braced[..end], ""));
                (name, format, end + 3)
            }
            None => {
                let name = identifier(&rest[1..]);
                (name, "", name.len() + 1)
            }
        };
        match value_of(name, format, context)? {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[..used]),
        }
        rest = &rest[used..];
    }
    out.push_str(rest);
    Ok(out)
}

fn identifier(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// A variable's text as Grafana's SQL data sources interpolate it; `None` for names that
/// are not variables (macros such as `$__timeFilter` are left for later).
fn value_of(name: &str, format: &str, context: &Context) -> Result<Option<String>, String> {
    let interval = context.interval;
    let builtin = match name {
        "__interval" => Some(format_interval(interval)),
        "__interval_ms" => Some(interval.as_millis().to_string()),
        _ => None,
    };
    if builtin.is_some() {
        return Ok(builtin);
    }
    let Some(variable) = context.variables.get(name) else {
        return Ok(None);
    };
    let quoted =
        || variable.values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>();
    let text = match format {
        "" if variable.multi => quoted().join(","),
        "" => variable.values.join(",").replace('\'', "''"),
        "sqlstring" => quoted().join(","),
        "csv" | "raw" => variable.values.join(","),
        other => return Err(format!("variable format `{other}` of `{name}` is not supported here")),
    };
    Ok(Some(text))
}

fn interpolate_globals(sql: &str, context: &Context) -> String {
    sql.replace("$__interval_ms", &context.interval.as_millis().to_string())
        .replace("$__interval", &format_interval(context.interval))
        .replace("$__unixEpochFrom()", &context.from.timestamp().to_string())
        .replace("$__unixEpochTo()", &context.to.timestamp().to_string())
}

/// `$name(args)` macros, as the regex `\$([_a-zA-Z0-9]+)\(([^\)]*)\)` finds them.
fn expand_macros(sql: &str, context: &Context) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let name = identifier(&rest[at + 1..]);
        let after = &rest[at + 1 + name.len()..];
        let call = after.strip_prefix('(').and_then(|args| args.find(')').map(|end| &args[..end]));
        let Some(args) = call.filter(|_| !name.is_empty()) else {
            out.push('$');
            rest = &rest[at + 1..];
            continue;
        };
        rest = &after[args.len() + 2..];
        // Grafana reads `$__timeGroup(…),` as the pre-5.3 form that adds `AS "time"`.
        let name = if name == "__timeGroup" && rest.starts_with(',') { "__timeGroupAlias" } else { name };
        let args: Vec<&str> = args.split(',').map(str::trim).collect();
        out.push_str(&evaluate(name, &args, context)?);
    }
    out.push_str(rest);
    Ok(out)
}

fn evaluate(name: &str, args: &[&str], context: &Context) -> Result<String, String> {
    let column =
        || args.first().copied().filter(|c| !c.is_empty()).ok_or_else(|| format!("${name} needs a column"));
    let (from, to) = (context.from, context.to);
    Ok(match name {
        "__time" => format!("{} AS \"time\"", column()?),
        "__timeEpoch" => format!("extract(epoch from {}) as \"time\"", column()?),
        "__timeFilter" => {
            format!("{} BETWEEN '{}' AND '{}'", column()?, rfc3339_nano(from), rfc3339_nano(to))
        }
        "__timeFrom" => format!("'{}'", rfc3339_nano(from)),
        "__timeTo" => format!("'{}'", rfc3339_nano(to)),
        "__timeGroup" => {
            let seconds = group_seconds(name, args)?;
            format!("floor(extract(epoch from {})/{seconds})*{seconds}", column()?)
        }
        "__timeGroupAlias" => format!("{} AS \"time\"", evaluate("__timeGroup", args, context)?),
        "__unixEpochFilter" => {
            let column = column()?;
            format!("{column} >= {} AND {column} <= {}", from.timestamp(), to.timestamp())
        }
        "__unixEpochGroup" => {
            let seconds = group_seconds(name, args)?;
            format!("floor(({})/{seconds})*{seconds}", column()?)
        }
        "__unixEpochGroupAlias" => format!("{} AS \"time\"", evaluate("__unixEpochGroup", args, context)?),
        other => return Err(format!("unknown macro ${other}")),
    })
}

/// The step of a group macro in seconds, printed as Go's `%v` prints a float64.
fn group_seconds(name: &str, args: &[&str]) -> Result<f64, String> {
    let text =
        args.get(1).map(|a| a.trim_matches('\'')).ok_or_else(|| format!("${name} needs an interval"))?;
    parse_interval(text)
        .map(|d| d.as_secs_f64())
        .ok_or_else(|| format!("${name}: cannot parse interval `{text}`"))
}

/// Grafana's `gtime.ParseInterval` for the units a dashboard step uses.
fn parse_interval(text: &str) -> Option<Duration> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let count: u64 = text[..digits].parse().ok()?;
    let unit_ms = match &text[digits..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "y" => 365 * 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(count * unit_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn context(interval_s: u64) -> Context {
        let mut variables = BTreeMap::new();
        let tenants = vec!["tenant-a".to_owned(), "o'brien".to_owned()];
        variables.insert("tenant".to_owned(), Variable { values: tenants, multi: true });
        variables
            .insert("component".to_owned(), Variable { values: vec!["turn_e2e".to_owned()], multi: false });
        Context {
            from: Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2026, 11, 27, 10, 30, 0).unwrap() + chrono::Duration::milliseconds(120),
            interval: Duration::from_secs(interval_s),
            variables,
        }
    }

    fn check(sql: &str, interval_s: u64, expected: &str) {
        assert_eq!(expand(sql, &context(interval_s)).as_deref(), Ok(expected), "{sql}");
    }

    #[test]
    fn time_filter_is_between_the_range_in_rfc3339() {
        check(
            "WHERE $__timeFilter(start_at)",
            60,
            "WHERE start_at BETWEEN '2026-11-27T09:00:00Z' AND '2026-11-27T10:30:00.12Z'",
        );
    }

    #[test]
    fn time_group_alias_floors_epoch_seconds_to_the_interval() {
        check(
            "SELECT $__timeGroupAlias(start_at, $__interval), 1",
            60,
            "SELECT floor(extract(epoch from start_at)/60)*60 AS \"time\", 1",
        );
        check("GROUP BY $__timeGroup(ts, '1h')", 60, "GROUP BY floor(extract(epoch from ts)/3600)*3600");
        check(
            "SELECT $__timeGroup(ts, 5m), x",
            60,
            "SELECT floor(extract(epoch from ts)/300)*300 AS \"time\", x",
        );
    }

    #[test]
    fn interval_ms_is_replaced_before_interval() {
        check("$__interval_ms % 3600000 = 0 -- $__interval", 3600, "3600000 % 3600000 = 0 -- 1h");
        check("${__interval_ms}", 90, "90000");
    }

    #[test]
    fn range_macros_give_quoted_times_and_epoch_seconds() {
        check("$__timeFrom() $__timeTo()", 60, "'2026-11-27T09:00:00Z' '2026-11-27T10:30:00.12Z'");
        check("$__unixEpochFrom() $__unixEpochTo()", 60, "1795770000 1795775400");
    }

    #[test]
    fn multi_value_variables_are_quoted_and_comma_separated() {
        check("tenant_id IN ($tenant)", 60, "tenant_id IN ('tenant-a','o''brien')");
        check("tenant_id IN (${tenant})", 60, "tenant_id IN ('tenant-a','o''brien')");
        check("tenant_id IN (${tenant:sqlstring})", 60, "tenant_id IN ('tenant-a','o''brien')");
    }

    #[test]
    fn single_value_variables_are_raw_unless_formatted() {
        check("component = '$component'", 60, "component = 'turn_e2e'");
        check("component = ${component:sqlstring}", 60, "component = 'turn_e2e'");
    }

    #[test]
    fn unknown_macros_and_leftover_variables_are_errors() {
        assert!(expand("$__nope(x)", &context(60)).is_err());
        assert!(expand("tenant_id = $missing", &context(60)).is_err());
        assert!(expand("x = [[tenant]]", &context(60)).is_err());
        assert!(expand("${tenant:glob}", &context(60)).is_err());
        assert_eq!(leftover("cost_usd > 0 AND note = '$0.20'"), None);
    }

    #[test]
    fn intervals_print_like_grafana() {
        assert_eq!(format_interval(Duration::from_secs(60)), "1m");
        assert_eq!(format_interval(Duration::from_secs(3600)), "1h");
        assert_eq!(format_interval(Duration::from_secs(30)), "30s");
        assert_eq!(format_interval(Duration::from_secs(86_400)), "1d");
        assert_eq!(parse_interval("15m"), Some(Duration::from_secs(900)));
    }
}
