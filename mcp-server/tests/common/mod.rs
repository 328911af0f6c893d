//! Test support: a fresh database per test on either backend, and helpers to read what a test
//! wrote.
//!
//! PostgreSQL tests need `TODO_TEST_DATABASE_URL` (a role that may create databases); the test
//! script (`scripts/test.sh`) starts a private server and sets it. Each test gets a database of
//! its own, so tests run in parallel without seeing each other.

#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use mcp_server::app::tasks::{Applied, TaskService};
use mcp_server::error::AppResult;
use mcp_server::mcp::args::{AddTaskArgs, UpdateTaskArgs};
use mcp_server::store::{Backend, Db, Query};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::types::Json;
use tempfile::TempDir;
use todo_shared::reminder::{ReminderInput, ReminderSpec};
use todo_shared::snapshot::TaskSnapshot;
use todo_shared::task::UserId;
use todo_shared::time::Zone;
use uuid::Uuid;

/// A database for one test; SQLite files live until it is dropped.
pub struct TestDb {
    pub db: Db,
    /// Where the database is, for a test that opens more connections of its own.
    pub url: String,
    _dir: Option<TempDir>,
}

pub async fn sqlite() -> TestDb {
    migrated(empty(Backend::Sqlite).await).await
}

pub async fn postgres() -> TestDb {
    migrated(empty(Backend::Postgres).await).await
}

/// A new database with nothing in it, not even the schema: its URL, and the directory that
/// holds it if it is a SQLite file.
pub async fn empty(backend: Backend) -> (String, Option<TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("todo.db").display());
            (url, Some(dir))
        }
        Backend::Postgres => {
            let admin = std::env::var("TODO_TEST_DATABASE_URL").expect(
                "TODO_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL",
            );
            let name = format!("test_{}", Uuid::new_v4().simple());
            let admin_db = Db::connect_unmigrated(&admin)
                .await
                .expect("connect to PostgreSQL");
            admin_db
                .execute(&Query::new(format!("CREATE DATABASE {name}")))
                .await
                .expect("create test database");
            admin_db.close().await;
            let (base, _) = admin.rsplit_once('/').expect("database URL has a path");
            (format!("{base}/{name}"), None)
        }
    }
}

/// Opens the database at `url` as the server does, migrating it.
pub async fn migrated((url, dir): (String, Option<TempDir>)) -> TestDb {
    let connections = match Backend::of_url(&url) {
        Some(Backend::Sqlite) => 4,
        _ => 8,
    };
    let db = Db::connect(&url, connections)
        .await
        .expect("open test database");
    TestDb { db, url, _dir: dir }
}

/// The instant the task tests run at.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// `add_task` as the tool runs it, at [`now`].
pub async fn add(svc: &TaskService, owner: &str, a: Value) -> TaskSnapshot {
    svc.create(
        &user(owner),
        AddTaskArgs::parse(args(a), now(), Zone::UTC).expect("valid task"),
        now(),
    )
    .await
    .expect("create")
}

/// Builds tool arguments from JSON, as a client would send them.
pub fn args<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test arguments deserialize")
}

/// `update_task` as the tool runs it: the arguments parsed, then the update applied.
pub async fn update(
    svc: &TaskService,
    user: &UserId,
    arguments: Value,
    now: DateTime<Utc>,
) -> AppResult<Applied> {
    let arguments: UpdateTaskArgs = args(arguments);
    svc.update(user, arguments.task_id, &arguments.parse()?, now)
        .await
}

/// A reminder as `set_reminder` parses it.
pub fn spec(input: &ReminderInput) -> ReminderSpec {
    ReminderSpec::parse("reminder", input).expect("a reminder of the right form")
}

pub fn user(name: &str) -> UserId {
    UserId::parse(name).expect("valid user")
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    event_type: String,
    envelope: Json<Value>,
}

/// Every event in the outbox, oldest first, as (type, CloudEvent JSON).
pub async fn outbox(db: &Db) -> Vec<(String, Value)> {
    let rows: Vec<OutboxRow> = db
        .fetch_all(&Query::new(
            "SELECT event_type, envelope FROM outbox ORDER BY seq",
        ))
        .await
        .expect("read outbox");
    rows.into_iter()
        .map(|r| (r.event_type, r.envelope.0))
        .collect()
}

#[derive(sqlx::FromRow)]
struct Count {
    n: i64,
}

/// `SELECT COUNT(*)` of a table.
pub async fn count(db: &Db, table: &str) -> i64 {
    let row: Count = db
        .fetch_one(&Query::new(format!("SELECT COUNT(*) AS n FROM {table}")))
        .await
        .expect("count rows");
    row.n
}

/// Runs each named test function once per backend: `mod name { sqlite, postgres }`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(super::common::sqlite().await).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name(super::common::postgres().await).await
                }
            }
        )*
    };
}
