//! The `scheduler_state` table: the embedded scheduler's state store (the engine's [`StateStore`]
//! port on this database). One row per key, whose `version` is the ETag, so conditional writes
//! behave as with Dapr's first-write concurrency; `expires_at` is the TTL.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use todo_scheduler::ports::{Etag, PortError, StateStore, Write};

use todo_shared::time::now;

use super::{Db, Query, port_error};

#[derive(Clone)]
pub struct SqlStateStore {
    pub db: Db,
}

#[derive(sqlx::FromRow)]
struct Entry {
    key: String,
    value: Json<Value>,
    version: i64,
}

fn version_of(etag: &Etag) -> Result<i64, PortError> {
    // A foreign ETag can match no row: treat it as a lost race.
    etag.0.parse().map_err(|_| PortError::Conflict)
}

fn expiry(ttl: Option<Duration>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    ttl.and_then(|ttl| chrono::Duration::from_std(ttl).ok())
        .and_then(|ttl| now.checked_add_signed(ttl))
}

impl SqlStateStore {
    /// Deletes expired entries (the state store's TTL); returns how many.
    pub async fn purge_expired(&self) -> Result<u64, sqlx::Error> {
        self.db
            .execute(&Query::new("DELETE FROM scheduler_state WHERE expires_at <= $1").bind(now()))
            .await
    }
}

#[async_trait]
impl StateStore for SqlStateStore {
    async fn get(&self, key: &str) -> Result<Option<(Value, Etag)>, PortError> {
        let q = get_query(key, now());
        let row: Option<Entry> = self.db.fetch_optional(&q).await.map_err(port_error)?;
        Ok(row.map(|e| (e.value.0, Etag(e.version.to_string()))))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(Value, Etag)>>, PortError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Query::new("SELECT key, value, version FROM scheduler_state WHERE key");
        q.push_in(self.db.backend(), keys.to_vec())
            .push(" AND (expires_at IS NULL OR expires_at > ")
            .push_bind(now())
            .push(")");
        let rows: Vec<Entry> = self.db.fetch_all(&q).await.map_err(port_error)?;
        let mut found: std::collections::HashMap<String, (Value, Etag)> = rows
            .into_iter()
            .map(|e| (e.key, (e.value.0, Etag(e.version.to_string()))))
            .collect();
        Ok(keys.iter().map(|k| found.remove(k)).collect())
    }

    async fn put(
        &self,
        key: &str,
        value: &Value,
        etag: Option<&Etag>,
        ttl: Option<Duration>,
    ) -> Result<(), PortError> {
        let q = put_query(key, value, etag, ttl, now())?;
        match self.db.execute(&q).await.map_err(port_error)? {
            0 => Err(PortError::Conflict),
            _ => Ok(()),
        }
    }

    async fn delete(&self, key: &str, etag: Option<&Etag>) -> Result<(), PortError> {
        if self
            .db
            .execute(&delete_query(key, etag)?)
            .await
            .map_err(port_error)?
            == 1
            || etag.is_none()
        {
            return Ok(());
        }
        // Nothing deleted: a conflict if the key is there at another version.
        match self.get(key).await? {
            Some(_) => Err(PortError::Conflict),
            None => Ok(()),
        }
    }

    async fn transact(&self, writes: &[Write]) -> Result<(), PortError> {
        let now = now();
        let mut tx = self.db.begin().await.map_err(port_error)?;
        for write in writes {
            let held = match write {
                Write::Put {
                    key,
                    value,
                    etag,
                    ttl,
                } => {
                    let q = put_query(key, value, etag.as_ref(), *ttl, now)?;
                    tx.execute(&q).await.map_err(port_error)? == 1
                }
                Write::Delete { key, etag } => {
                    let q = delete_query(key, etag.as_ref())?;
                    tx.execute(&q).await.map_err(port_error)? == 1 || etag.is_none() || {
                        let q = get_query(key, now);
                        let row: Option<Entry> = tx.fetch_optional(&q).await.map_err(port_error)?;
                        row.is_none()
                    }
                }
            };
            // Dropping the transaction rolls it back.
            if !held {
                return Err(PortError::Conflict);
            }
        }
        tx.commit().await.map_err(port_error)
    }
}

/// Reads the entry unless it has expired.
fn get_query(key: &str, now: DateTime<Utc>) -> Query {
    Query::new(
        "SELECT key, value, version FROM scheduler_state \
         WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(key)
    .bind(now)
}

/// Writes `value` over version `etag`, or inserts it when `etag` is `None`: over nothing, or over
/// an entry that has expired. Affects no row when the condition fails.
fn put_query(
    key: &str,
    value: &Value,
    etag: Option<&Etag>,
    ttl: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<Query, PortError> {
    Ok(match etag {
        Some(etag) => Query::new(
            "UPDATE scheduler_state SET value = $1, version = version + 1, expires_at = $2 \
             WHERE key = $3 AND version = $4 AND (expires_at IS NULL OR expires_at > $5)",
        )
        .bind(value.clone())
        .bind(expiry(ttl, now))
        .bind(key)
        .bind(version_of(etag)?)
        .bind(now),
        None => Query::new(
            "INSERT INTO scheduler_state (key, value, version, expires_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             version = scheduler_state.version + 1, expires_at = excluded.expires_at \
             WHERE scheduler_state.expires_at IS NOT NULL AND scheduler_state.expires_at <= $4",
        )
        .bind(key)
        .bind(value.clone())
        .bind(expiry(ttl, now))
        .bind(now),
    })
}

/// Deletes the entry, at version `etag` when given.
fn delete_query(key: &str, etag: Option<&Etag>) -> Result<Query, PortError> {
    Ok(match etag {
        None => Query::new("DELETE FROM scheduler_state WHERE key = $1").bind(key),
        Some(etag) => Query::new("DELETE FROM scheduler_state WHERE key = $1 AND version = $2")
            .bind(key)
            .bind(version_of(etag)?),
    })
}
