//! Stored enum names ([`crate::column`]) read from PostgreSQL text columns.

use crate::column::{Stored, StoredText};
use tokio_postgres::types::{FromSql, Type};

impl<'a, T: StoredText> FromSql<'a> for Stored<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Stored::decode(<&str as FromSql>::from_sql(ty, raw)?)?)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}
