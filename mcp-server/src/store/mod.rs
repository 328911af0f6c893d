//! The store: every SQL statement of the server, over PostgreSQL or the embedded SQLite file.
//!
//! [`Db`] is a pool and [`Tx`] a transaction on either backend. Both run a [`Query`] and decode
//! rows into any type that derives `sqlx::FromRow`, so each statement is written once for both.
//! One module per table or aggregate holds its statements:
//!
//! - [`tasks`]: tasks with their tags, and the `list_tasks` queries;
//!   [`reminders`]: the reminders of tasks;
//! - [`notifications`]: fired reminders kept for `list_notifications`;
//! - [`outbox`]: lifecycle events, from the transaction that writes them to the relay that
//!   publishes them; [`dead_letters`]: the events it gave up on; [`processed`]: the events each
//!   consumer has handled; [`retention`]: how long what grows with use is kept; [`quotas`]:
//!   how much a user holds; [`settings`]: each user's preferences; [`subscriptions`]: the
//!   resources users subscribed to over stateless HTTP;
//! - [`schedule`]: what a resync replays to the scheduler, and the series that ended;
//!   [`scheduler_state`] and [`scheduler_jobs`]: the embedded scheduler's state store and
//!   durable jobs (the engine's ports on this database).
//!
//! The schema lives in `migrations/postgres` and `migrations/sqlite`, numbered alike, and is
//! applied at start-up.

pub mod dead_letters;
pub mod notifications;
pub mod outbox;
pub mod processed;
mod query;
pub mod quotas;
pub mod reminders;
pub mod retention;
pub mod schedule;
pub mod scheduler_jobs;
pub mod scheduler_state;
pub mod settings;
pub mod subscriptions;
pub mod tasks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{FromRow, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

pub use query::{Arg, Query};

/// The one row of a `SELECT COUNT(*) AS total …`.
#[derive(sqlx::FromRow)]
struct Count {
    total: i64,
}

/// Prepared statements kept per PostgreSQL connection (sqlx's default is 100).
const STATEMENT_CACHE_CAPACITY: usize = 400;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported database URL: it must start with postgres:// or sqlite://")]
    UnsupportedUrl,
    // The causes are sources, not part of the message: `{:#}` prints the chain once.
    #[error("cannot create the database directory {path}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply database migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A connection pool on one of the backends. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Rows decodable from both backends; `#[derive(sqlx::FromRow)]` provides it.
pub trait Row: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}
impl<T> Row for T where T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{}

impl Db {
    /// Opens the database at `url`, creating the SQLite file if needed, and migrates it.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, ConnectError> {
        let db = Self::open(url, max_connections).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Opens a single connection without migrating: for administrative statements.
    pub async fn connect_unmigrated(url: &str) -> Result<Self, ConnectError> {
        Self::open(url, 1).await
    }

    async fn open(url: &str, max_connections: u32) -> Result<Self, ConnectError> {
        let db = match Backend::of_url(url).ok_or(ConnectError::UnsupportedUrl)? {
            Backend::Postgres => {
                // Each connection keeps its prepared statements. `list_tasks` makes one text per
                // combination of filters and sort; a cache smaller than the texts in use evicts
                // the hot `add_task` statements, which PostgreSQL then parses and plans anew.
                let options = PgConnectOptions::from_str(url)
                    .map_err(ConnectError::Connect)?
                    .statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(5))
                    // A ping per checkout costs a round trip on every call; a dead connection
                    // fails its query instead, which the caller reports as retryable.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await
                    .map_err(ConnectError::Connect)?;
                Db::Postgres(pool)
            }
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(ConnectError::Connect)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // WAL with NORMAL is durable against process crashes, which is what a
                    // single-user embedded store needs, at a fraction of FULL's fsyncs.
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                if let Some(dir) = options.get_filename().parent() {
                    create_dir(dir)?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections.min(8))
                    .connect_with(options)
                    .await
                    .map_err(ConnectError::Connect)?;
                Db::Sqlite(pool)
            }
        };
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Starts a write transaction. SQLite takes its write lock up front (`BEGIN IMMEDIATE`) so
    /// that two writers queue on the busy timeout instead of failing to upgrade a read lock.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.execute(&Query::new("SELECT 1")).await.map(drop)
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(pool) => pool.close().await,
        }
    }
}

/// A database failure as the scheduler's ports report it: unavailable for now, retried later.
fn port_error(e: sqlx::Error) -> todo_scheduler::ports::PortError {
    todo_scheduler::ports::PortError::Unavailable(format!("database: {e}"))
}

fn create_dir(dir: &Path) -> Result<(), ConnectError> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| ConnectError::CreateDir {
        path: dir.display().to_string(),
        source,
    })
}

/// A transaction on one of the backends. Dropped without [`Tx::commit`], it rolls back.
pub enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Postgres(_) => Backend::Postgres,
            Tx::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// What to append to a `SELECT` that reads a row this transaction will write. SQLite needs
    /// nothing: its `BEGIN IMMEDIATE` already holds the database's single write lock.
    fn row_lock_clause(&self) -> &'static str {
        match self {
            Tx::Postgres(_) => " FOR UPDATE",
            Tx::Sqlite(_) => "",
        }
    }

    /// What to append to a `SELECT … FOR UPDATE` that should pass over rows other transactions
    /// hold, so that concurrent workers take disjoint rows.
    fn skip_locked_clause(&self) -> &'static str {
        match self {
            Tx::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Tx::Sqlite(_) => "",
        }
    }

    /// Lets this transaction commit without waiting for its disk flush, for writes that may be
    /// lost in a crash without harm. SQLite has no such setting per transaction.
    pub async fn relax_durability(&mut self) -> Result<(), sqlx::Error> {
        if let Tx::Postgres(_) = self {
            self.execute(&Query::new("SET LOCAL synchronous_commit = off"))
                .await?;
        }
        Ok(())
    }

    /// Has PostgreSQL plan each query of this transaction for the values it is given, not
    /// reuse a plan made for any values. A generic plan tests `col = ANY($n)` against each row
    /// by walking the array, and where statistics lag behind a burst it may choose to do so for
    /// every row of an index (rows × array: quadratic); planned with the array's values, the
    /// test is a hash lookup and the estimates see its size. Nor is the plan compiled (JIT):
    /// a walk that stops at its limit is estimated at the cost of the whole backlog, and
    /// compiling it takes longer than running it. SQLite has no such settings.
    pub async fn plan_for_values(&mut self) -> Result<(), sqlx::Error> {
        if let Tx::Postgres(_) = self {
            self.execute(&Query::new(
                "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), \
                 set_config('jit', 'off', true)",
            ))
            .await?;
        }
        Ok(())
    }

    /// Has PostgreSQL answer the next queries by walking indexes in their order (`on`), or
    /// lets it choose again (`!on`). A query that wants the first rows of a table in index
    /// order (`ORDER BY … LIMIT`) should stop after them; on a table that just grew by a burst,
    /// statistics lag behind, and the planner would fetch and sort the whole table on every
    /// run instead. SQLite's planner walks the index without being told.
    pub async fn walk_indexes_in_order(&mut self, on: bool) -> Result<(), sqlx::Error> {
        if let Tx::Postgres(_) = self {
            let value = if on { "off" } else { "on" };
            let q = Query::new(
                "SELECT set_config('enable_sort', $1, true), \
                 set_config('enable_bitmapscan', $1, true), set_config('enable_seqscan', $1, true)",
            )
            .bind(value);
            self.execute(&q).await?;
        }
        Ok(())
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }
}

/// The query methods, written once for the pool and the transaction: `$pg` and `$lite` say how to
/// reach an executor of each backend from `self`.
macro_rules! executor_methods {
    ($ty:ty, $recv:ident : $self_ty:ty, $pg:pat => $pg_exec:expr, $lite:pat => $lite_exec:expr) => {
        impl $ty {
            /// Runs a statement and returns the number of rows it affected.
            pub async fn execute($recv: $self_ty, q: &Query) -> Result<u64, sqlx::Error> {
                Ok(match $recv {
                    $pg => sqlx::query_with(q.sql(), q.pg_args()?)
                        .execute($pg_exec)
                        .await?
                        .rows_affected(),
                    $lite => sqlx::query_with(q.sql(), q.sqlite_args()?)
                        .execute($lite_exec)
                        .await?
                        .rows_affected(),
                })
            }

            /// Runs a query and decodes every row.
            pub async fn fetch_all<T: Row>(
                $recv: $self_ty,
                q: &Query,
            ) -> Result<Vec<T>, sqlx::Error> {
                match $recv {
                    $pg => {
                        sqlx::query_as_with(q.sql(), q.pg_args()?)
                            .fetch_all($pg_exec)
                            .await
                    }
                    $lite => {
                        sqlx::query_as_with(q.sql(), q.sqlite_args()?)
                            .fetch_all($lite_exec)
                            .await
                    }
                }
            }

            /// Runs a query and decodes its first row, if any.
            pub async fn fetch_optional<T: Row>(
                $recv: $self_ty,
                q: &Query,
            ) -> Result<Option<T>, sqlx::Error> {
                match $recv {
                    $pg => {
                        sqlx::query_as_with(q.sql(), q.pg_args()?)
                            .fetch_optional($pg_exec)
                            .await
                    }
                    $lite => {
                        sqlx::query_as_with(q.sql(), q.sqlite_args()?)
                            .fetch_optional($lite_exec)
                            .await
                    }
                }
            }

            /// Runs a query that returns exactly one row.
            pub async fn fetch_one<T: Row>($recv: $self_ty, q: &Query) -> Result<T, sqlx::Error> {
                match $recv {
                    $pg => {
                        sqlx::query_as_with(q.sql(), q.pg_args()?)
                            .fetch_one($pg_exec)
                            .await
                    }
                    $lite => {
                        sqlx::query_as_with(q.sql(), q.sqlite_args()?)
                            .fetch_one($lite_exec)
                            .await
                    }
                }
            }
        }
    };
}

executor_methods!(Db, self: &Self, Db::Postgres(pool) => pool, Db::Sqlite(pool) => pool);
executor_methods!(Tx, self: &mut Self, Tx::Postgres(tx) => &mut **tx, Tx::Sqlite(tx) => &mut **tx);
