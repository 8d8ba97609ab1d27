//! The one merge of the configuration. Layers, lowest first: the built-in defaults
//! (applied by [`super::settings`] to whatever no layer set), `voicemon.toml`, then the
//! environment and flags as the command line read them. Each layer is a TOML table keyed
//! like the file; a later layer replaces an earlier one's values key by key (an array of
//! tables as a whole). Where each key's value came from is kept, so that errors and
//! `config check` can name the file, the flag or the environment variable.

use crate::config::file::{FileConfig, ENVIRONMENT_ONLY};
use crate::config::ConfigError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file configuration is read from when none is named.
pub const DEFAULT_CONFIG: &str = "voicemon.toml";

/// Where the value of a key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file.
    File(PathBuf),
    /// A flag or an environment variable (`--port`, `METRICS_API_PORT`), or what stands
    /// for one (`--demo` for its data directory).
    Given(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Given(label) => f.write_str(label),
        }
    }
}

/// The origin of every key some layer set, by dotted key (`server.port`).
pub type Origins = BTreeMap<String, Origin>;

/// The layers merged so far; [`super::Settings`] is built `TryFrom` them. The merged
/// table holds secrets as plain text, so `Debug` shows keys and origins, never values.
#[derive(Clone, Default)]
pub struct Layers {
    table: toml::Table,
    origins: Origins,
    file: Option<PathBuf>,
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layers")
            .field("origins", &self.origins)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Layers {
    /// No layer yet: every key at its default.
    pub fn new() -> Layers {
        Layers::default()
    }

    /// The named file, which must exist, or `./voicemon.toml` when none is named and it
    /// exists.
    pub fn config_file(self, named: Option<&Path>) -> Result<Layers, ConfigError> {
        match named {
            Some(path) => self.file(path),
            None if Path::new(DEFAULT_CONFIG).exists() => self.file(Path::new(DEFAULT_CONFIG)),
            None => Ok(self),
        }
    }

    /// The file at `path` over the layers so far. It is checked alone first, so that a
    /// mistake in it is reported with its key and line.
    pub fn file(self, path: &Path) -> Result<Layers, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        self.file_text(&text, path)
    }

    /// The text of a file read from `path` over the layers so far, as [`Layers::file`]
    /// takes it (the fuzz target `config_file` gives it text without a file).
    pub fn file_text(mut self, text: &str, path: &Path) -> Result<Layers, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.to_owned(), message };
        let table = check_file(text).map_err(invalid)?;
        let origin = Origin::File(path.to_owned());
        self.merge(table, |_| origin.clone());
        self.file = Some(path.to_owned());
        Ok(self)
    }

    /// `layer` over the layers so far: anything that serialises to a table keyed like the
    /// file, where a key may be dotted (`"server.port"`) and an absent value sets nothing.
    /// `origin` names where the value of each key it sets came from.
    pub fn over<T: Serialize>(
        mut self,
        layer: &T,
        origin: impl Fn(&str) -> String,
    ) -> Result<Layers, ConfigError> {
        let table = toml::Table::try_from(layer).map_err(|err| ConfigError::Layer(err.to_string()))?;
        self.merge(table, |key| Origin::Given(origin(key)));
        Ok(self)
    }

    /// The merged tree.
    pub fn tree(&self) -> Result<FileConfig, ConfigError> {
        serde_path_to_error::deserialize(self.table.clone()).map_err(|err| ConfigError::Tree {
            key: err.path().to_string(),
            message: err.inner().to_string(),
        })
    }

    /// Where each set key came from, and the file read (if any).
    pub fn into_parts(self) -> (Origins, Option<PathBuf>) {
        (self.origins, self.file)
    }

    fn merge(&mut self, layer: toml::Table, origin: impl Fn(&str) -> Origin) {
        let mut leaves = Vec::new();
        collect_leaves(layer, "", &mut leaves);
        for (key, value) in leaves {
            insert(&mut self.table, &key, value);
            let origin = origin(&key);
            self.origins.insert(key, origin);
        }
    }
}

/// The file's table, if it is a valid tree on its own and sets no key that only the
/// environment may; else why not, naming the key.
fn check_file(text: &str) -> Result<toml::Table, String> {
    let deserializer = toml::de::Deserializer::parse(text).map_err(|err| err.to_string())?;
    serde_path_to_error::deserialize::<_, FileConfig>(deserializer).map_err(|err| {
        match err.path().to_string() {
            root if root == "." => err.inner().to_string(),
            key => format!("{key}: {}", err.inner()),
        }
    })?;
    let table: toml::Table = toml::from_str(text).map_err(|err| err.to_string())?;
    for (key, source) in ENVIRONMENT_ONLY {
        if lookup(&table, key).is_some() {
            return Err(format!("{key} is not read from a file, as it may hold a secret: set {source}"));
        }
    }
    Ok(table)
}

/// Every value of `table` that is not itself a table, with its dotted key.
fn collect_leaves(table: toml::Table, prefix: &str, leaves: &mut Vec<(String, toml::Value)>) {
    for (key, value) in table {
        let key = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => collect_leaves(inner, &key, leaves),
            value => leaves.push((key, value)),
        }
    }
}

/// Sets `value` at the dotted `key` of `table`, making the tables on the way.
fn insert(table: &mut toml::Table, key: &str, value: toml::Value) {
    let Some((head, rest)) = key.split_once('.') else {
        table.insert(key.to_owned(), value);
        return;
    };
    let inner = table.entry(head).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !inner.is_table() {
        *inner = toml::Value::Table(toml::Table::new());
    }
    if let toml::Value::Table(inner) = inner {
        insert(inner, rest, value);
    }
}

/// The value at the dotted `key` of `table`.
fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    match key.split_once('.') {
        None => table.get(key),
        Some((head, rest)) => lookup(table.get(head)?.as_table()?, rest),
    }
}
