//! Stored enum names ([`crate::column`]) read from SQLite text columns.

use crate::column::{Stored, StoredText};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};

impl<T: StoredText> FromSql for Stored<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Stored::decode(value.as_str()?).map_err(|err| FromSqlError::Other(Box::new(err)))
    }
}
