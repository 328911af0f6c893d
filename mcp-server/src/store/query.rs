//! A SQL statement with its arguments, runnable on either backend.
//!
//! The same SQL text serves PostgreSQL and SQLite (both accept `$n` placeholders); only the way a
//! value is encoded differs, and that is decided here, in one place. Times in particular are
//! `timestamptz` in PostgreSQL but fixed-width RFC 3339 text in SQLite, so that comparing and
//! sorting the text compares and sorts the instants.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Arguments;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteArguments;
use sqlx::types::Json;
use uuid::Uuid;

use super::Backend;

/// One bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    Uuid(Uuid),
    OptUuid(Option<Uuid>),
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Time(DateTime<Utc>),
    OptTime(Option<DateTime<Utc>>),
    Json(Value),
    OptJson(Option<Value>),
    /// An array, for PostgreSQL's `= ANY($n)` (see [`Query::push_in`]); SQLite has none.
    Uuids(Vec<Uuid>),
    /// An array, as [`Arg::Uuids`].
    Ints(Vec<i64>),
    /// An array, as [`Arg::Uuids`].
    Texts(Vec<String>),
}

macro_rules! arg_from {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                Arg::$v(v.into())
            }
        })*
    };
}

arg_from! {
    Uuid => Uuid,
    Option<Uuid> => OptUuid,
    String => Text,
    &str => Text,
    Option<String> => OptText,
    i64 => Int,
    i16 => Int,
    i32 => Int,
    Option<i64> => OptInt,
    DateTime<Utc> => Time,
    Option<DateTime<Utc>> => OptTime,
    Value => Json,
    Option<Value> => OptJson,
    Vec<Uuid> => Uuids,
    Vec<i64> => Ints,
    Vec<String> => Texts,
}

/// The SQLite text form of an instant: always six fractional digits, so text order is time order.
fn sqlite_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// SQL text with `$n` placeholders and the values for them.
#[derive(Debug, Clone, Default)]
pub struct Query {
    sql: String,
    args: Vec<Arg>,
}

impl Query {
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn push_bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.args.push(value.into());
        self.sql.push('$');
        self.sql.push_str(&self.args.len().to_string());
        self
    }

    /// Appends `VALUES (…), (…)`: a tuple of placeholders for each row of values, so that many
    /// rows go in one statement.
    pub fn push_values(&mut self, rows: impl IntoIterator<Item = Vec<Arg>>) -> &mut Self {
        self.push(" VALUES ");
        for (i, row) in rows.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            for (j, value) in row.into_iter().enumerate() {
                if j > 0 {
                    self.push(", ");
                }
                self.push_bind(value);
            }
            self.push(")");
        }
        self
    }

    /// Appends a membership test of the expression before it in `values`: `= ANY($n)` on
    /// PostgreSQL, so that the statement text (and its prepared statement) is the same however
    /// many values there are; `IN ($n, …)` on SQLite, which has no arrays.
    pub fn push_in<T>(&mut self, backend: Backend, values: Vec<T>) -> &mut Self
    where
        T: Into<Arg>,
        Vec<T>: Into<Arg>,
    {
        match backend {
            Backend::Postgres => {
                self.push(" = ANY(").push_bind(values).push(")");
            }
            Backend::Sqlite => {
                self.push(" IN (");
                for (i, v) in values.into_iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.push_bind(v);
                }
                self.push(")");
            }
        }
        self
    }

    /// Adds a value for a placeholder already written in the SQL text (`$1`, `$2`, … in order).
    pub fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub(super) fn pg_args(&self) -> Result<PgArguments, sqlx::Error> {
        let mut out = PgArguments::default();
        for arg in &self.args {
            let added = match arg {
                Arg::Uuid(v) => out.add(v),
                Arg::OptUuid(v) => out.add(v),
                Arg::Text(v) => out.add(v),
                Arg::OptText(v) => out.add(v),
                Arg::Int(v) => out.add(v),
                Arg::OptInt(v) => out.add(v),
                Arg::Time(v) => out.add(v),
                Arg::OptTime(v) => out.add(v),
                Arg::Json(v) => out.add(Json(v)),
                Arg::OptJson(v) => out.add(v.as_ref().map(Json)),
                Arg::Uuids(v) => out.add(v),
                Arg::Ints(v) => out.add(v),
                Arg::Texts(v) => out.add(v),
            };
            added.map_err(sqlx::Error::Encode)?;
        }
        Ok(out)
    }

    pub(super) fn sqlite_args(&self) -> Result<SqliteArguments<'static>, sqlx::Error> {
        let mut out = SqliteArguments::default();
        for arg in &self.args {
            let added = match arg {
                Arg::Uuid(v) => out.add(*v),
                Arg::OptUuid(v) => out.add(*v),
                Arg::Text(v) => out.add(v.clone()),
                Arg::OptText(v) => out.add(v.clone()),
                Arg::Int(v) => out.add(*v),
                Arg::OptInt(v) => out.add(*v),
                Arg::Time(v) => out.add(sqlite_time(v)),
                Arg::OptTime(v) => out.add(v.as_ref().map(sqlite_time)),
                Arg::Json(v) => out.add(v.to_string()),
                Arg::OptJson(v) => out.add(v.as_ref().map(Value::to_string)),
                Arg::Uuids(_) | Arg::Ints(_) | Arg::Texts(_) => {
                    Err("SQLite has no arrays: bind the values one by one".into())
                }
            };
            added.map_err(sqlx::Error::Encode)?;
        }
        Ok(out)
    }
}
