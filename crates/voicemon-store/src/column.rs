//! Core enums stored as text columns (a call's status, a usage line's component, a
//! breaker's state, a history entry's kind), and how both backends read them back.
//!
//! voicemon writes only the names below, so an unknown one means the database was
//! written by something else: the read fails with an error that names the value, rather
//! than guessing or skipping the row. Each backend decodes [`Stored`] with its own
//! `FromSql` (`sqlite::column`, `postgres::column`).

use voicemon_core::alerting::HistoryKind;
use voicemon_core::event::{BreakerState, CallStatus, PipelineComponent};

/// An enum stored under its `as_str` name.
pub(crate) trait StoredText: Sized {
    /// What the column holds, for the error message.
    const WHAT: &'static str;
    /// The enum's name → value (`CallStatus::parse`).
    const PARSE: fn(&str) -> Option<Self>;
}

impl StoredText for CallStatus {
    const WHAT: &'static str = "call status";
    const PARSE: fn(&str) -> Option<Self> = CallStatus::parse;
}

impl StoredText for PipelineComponent {
    const WHAT: &'static str = "usage component";
    const PARSE: fn(&str) -> Option<Self> = PipelineComponent::parse;
}

impl StoredText for BreakerState {
    const WHAT: &'static str = "breaker state";
    const PARSE: fn(&str) -> Option<Self> = BreakerState::parse;
}

impl StoredText for HistoryKind {
    const WHAT: &'static str = "alert history kind";
    const PARSE: fn(&str) -> Option<Self> = HistoryKind::parse;
}

/// A stored enum value, decoded from its text column: `row.get::<_, Stored<CallStatus>>(1)?.0`.
pub(crate) struct Stored<T>(pub T);

/// A text column holding a name voicemon never writes.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} `{value}` in the database")]
pub(crate) struct UnknownValue {
    what: &'static str,
    value: String,
}

impl<T: StoredText> Stored<T> {
    pub(crate) fn decode(text: &str) -> Result<Stored<T>, UnknownValue> {
        (T::PARSE)(text).map(Stored).ok_or_else(|| UnknownValue { what: T::WHAT, value: text.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_name_decodes_and_an_unknown_one_is_named_in_the_error() {
        assert_eq!(
            Stored::<CallStatus>::decode("transferred").map(|s| s.0).ok(),
            Some(CallStatus::Transferred)
        );
        let err = Stored::<BreakerState>::decode("ajar").err().map(|err| err.to_string());
        assert_eq!(err.as_deref(), Some("unknown breaker state `ajar` in the database"));
    }
}
