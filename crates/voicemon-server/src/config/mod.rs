//! The configuration: one tree, read from `voicemon.toml`, the environment and flags.
//!
//! Precedence, highest first: command-line flag, environment variable, the file, built-in
//! default. [`file`] is the serde tree (unknown keys are errors, durations are humantime
//! text); [`layers`] merges the file and what the command line read, in one place, and
//! keeps where each value came from; [`settings`] judges the merged tree (`TryFrom`) into
//! the [`ServeConfig`] the application is built from; [`effective`] shows it, secrets
//! redacted. This module sits below `startup`: it names the subsystems' configuration
//! types, never the code that starts them.

pub mod effective;
pub mod file;
pub mod layers;
pub mod sections;
pub mod settings;

pub use effective::describe_url;
pub use file::{
    AlertingSection, CompressAfter, FileConfig, HealthSection, IngestSection, InhibitText, LimitsSection,
    PostgresSection, PricingSection, PrometheusSection, ReceiverText, ServerSection,
};
pub use layers::{Layers, Origin, Origins, DEFAULT_CONFIG};
pub use sections::parse_durability;
pub use settings::{
    HealthConfig, PostgresSettings, ServeConfig, Settings, DEFAULT_DATA_DIR, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PORT,
};

use std::path::PathBuf;
use voicemon_core::pricing::PricingError;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not a valid tree on its own (syntax, an unknown key, a wrong type).
    #[error("{path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A value the file gave (or a default) cannot work.
    #[error("{key}: {message}")]
    Value { key: &'static str, message: String },
    /// A value a flag or environment variable gave cannot work: named as it was given,
    /// and read as a sentence when the message is a predicate (`DATABASE_URL must start
    /// with postgres://`, `--batch-max-events must be above 0`).
    #[error("{origin}{}{message}", if message.starts_with("must ") { " " } else { ": " })]
    Given { origin: String, message: String },
    /// The merged tree does not deserialise (a layer over the file gave a wrong type).
    #[error("{key}: {message}")]
    Tree { key: String, message: String },
    /// The command line's values cannot be merged (a path that is not UTF-8).
    #[error("the command line cannot be merged into the configuration: {0}")]
    Layer(String),
    #[error(transparent)]
    Pricing(#[from] PricingError),
}

impl ConfigError {
    /// A value of `key` that cannot work.
    pub fn value(key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Value { key, message: message.into() }
    }

    /// This error naming the flag or environment variable that set its key, if one did.
    pub fn located(self, origins: &Origins) -> ConfigError {
        match self {
            ConfigError::Value { key, message } => match origins.get(key) {
                Some(Origin::Given(origin)) => ConfigError::Given { origin: origin.clone(), message },
                _ => ConfigError::Value { key, message },
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
