//! Money: integer nano-USD, never floats, with exact decimal text for answers.

use serde::{Serialize, Serializer};
use thiserror::Error;

/// Nano-USD per USD.
pub const NANOS_PER_USD: i64 = 1_000_000_000;
/// Decimal places a price or amount may have (nano-USD resolution).
const MAX_DECIMALS: usize = 9;

/// An amount of money in nano-USD (10⁻⁹ USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub i64);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("`{0}` is not a decimal amount of USD such as 2.50 or 0.0043")]
    NotDecimal(String),
    #[error("`{0}` has more than 9 decimal places")]
    TooPrecise(String),
    #[error("`{0}` is negative")]
    Negative(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl Nanos {
    /// Parses a non-negative decimal USD amount exactly ("2.50", "0.0043", "15").
    pub fn parse_usd(text: &str) -> Result<Nanos, MoneyError> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(MoneyError::Negative(text.to_owned()));
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !digits_only(whole) || !digits_only(fraction) {
            return Err(MoneyError::NotDecimal(text.to_owned()));
        }
        if fraction.len() > MAX_DECIMALS {
            return Err(MoneyError::TooPrecise(text.to_owned()));
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError::TooLarge(text.to_owned()))?
        };
        let padded = format!("{fraction:0<9}");
        let fraction: i64 = padded.parse().map_err(|_| MoneyError::NotDecimal(text.to_owned()))?;
        whole
            .checked_mul(NANOS_PER_USD)
            .and_then(|n| n.checked_add(fraction))
            .map(Nanos)
            .ok_or_else(|| MoneyError::TooLarge(text.to_owned()))
    }

    /// Exact decimal USD text, at least two decimals, no trailing zeros beyond them.
    pub fn usd(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let whole = magnitude / NANOS_PER_USD as u64;
        let fraction = format!("{:09}", magnitude % NANOS_PER_USD as u64);
        let trimmed = fraction.trim_end_matches('0');
        let shown = if trimmed.len() < 2 { &fraction[..2] } else { trimmed };
        format!("{sign}{whole}.{shown}")
    }

    pub fn checked_add(self, other: Nanos) -> Option<Nanos> {
        self.0.checked_add(other.0).map(Nanos)
    }
}

/// `quantity × price / per`, rounded half up, in i128 so no product overflows; a result
/// beyond i64 saturates (validation keeps real quantities far below that).
pub fn prorate(quantity: i64, price: Nanos, per: i64) -> Nanos {
    let product = quantity as i128 * price.0 as i128;
    let per = per as i128;
    let rounded = (product + per / 2) / per;
    Nanos(i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX }))
}

/// An amount as API answers carry it: exact decimal text and the integer unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub Nanos);

// What an `Amount` is serialised as (and, with `openapi`, its schema).
/// An amount of money: exact decimal USD, and the same in integer nano-USD.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Amount))]
struct AmountWire {
    /// Exact decimal USD, at least two decimals ("0.0043", "2.50").
    usd: String,
    /// The same amount in nano-USD (10⁻⁹ USD).
    nano_usd: i64,
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        AmountWire { usd: self.0.usd(), nano_usd: self.0 .0 }.serialize(serializer)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <AmountWire as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Amount {
    fn name() -> std::borrow::Cow<'static, str> {
        <AmountWire as utoipa::ToSchema>::name()
    }
}
