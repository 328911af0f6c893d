//! Per-user quotas: how much one user may hold, so that no user (or a runaway agent) fills the
//! database, the event pipeline and the scheduler for everyone. The defaults are far above what
//! a person keeps; `--tasks-per-user`, `--series-per-user`, `--reminders-per-user` and
//! `--min-recurrence-minutes` change them.
//!
//! Checked in the transaction of the change, against what the user holds as the `usage` table
//! counts it (one read, however much they hold): two single changes of one user racing at the
//! limit may both pass, so a quota can be exceeded by the user's concurrency (at most a few);
//! batches of one user count one after another.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use todo_shared::recurrence::Recurrence;

use crate::error::{AppError, AppResult};
use crate::store::Tx;
use crate::store::quotas::{self, Held};

/// Consecutive occurrences of a cron rule looked at for its shortest interval.
const CRON_SAMPLES: usize = 500;

/// How much one user may hold.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// Tasks, in any state.
    pub tasks_per_user: u32,
    /// Recurring series still going (pending tasks with a recurrence).
    pub series_per_user: u32,
    /// Reminders, on all the user's tasks.
    pub reminders_per_user: u32,
    /// The shortest time a cron rule may leave between two occurrences (each makes a task).
    pub min_recurrence_interval: TimeDelta,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            tasks_per_user: 10_000,
            series_per_user: 1_000,
            reminders_per_user: 10_000,
            min_recurrence_interval: TimeDelta::hours(1),
        }
    }
}

/// What a user holds, read once for several new tasks: each takes its share
/// ([`Quotas::take`]) until one does not fit.
#[derive(Debug, Clone, Copy)]
pub struct Room(Held);

impl Quotas {
    /// Room for one more task.
    pub async fn check_task(&self, tx: &mut Tx, owner: &str) -> AppResult<()> {
        let held = quotas::held(tx, owner).await?;
        if held.tasks >= i64::from(self.tasks_per_user) {
            return Err(self.tasks_full());
        }
        Ok(())
    }

    /// Room for one more live series.
    pub async fn check_series(&self, tx: &mut Tx, owner: &str) -> AppResult<()> {
        let held = quotas::held(tx, owner).await?;
        if held.live_series >= i64::from(self.series_per_user) {
            return Err(self.series_full());
        }
        Ok(())
    }

    /// Room for `more` reminders.
    pub async fn check_reminders(&self, tx: &mut Tx, owner: &str, more: usize) -> AppResult<()> {
        if more == 0 {
            return Ok(());
        }
        let held = quotas::held(tx, owner).await?.reminders;
        if held + more as i64 > i64::from(self.reminders_per_user) {
            return Err(self.reminders_full(held));
        }
        Ok(())
    }

    /// What the owner may still add of `tasks` new ones. Batches of one owner count one after
    /// another, so that together they stay within the quotas.
    pub async fn room(&self, tx: &mut Tx, owner: &str, tasks: usize) -> AppResult<Room> {
        if tasks > 1 {
            quotas::lock_owner(tx, owner).await?;
        }
        Ok(Room(quotas::held(tx, owner).await?))
    }

    /// Takes from `room` what one new task holds (a live series if `recurring`, and
    /// `reminders`), or says which quota it would exceed and takes nothing.
    pub fn take(&self, room: &mut Room, recurring: bool, reminders: usize) -> AppResult<()> {
        let held = &mut room.0;
        if held.tasks >= i64::from(self.tasks_per_user) {
            return Err(self.tasks_full());
        }
        if recurring && held.live_series >= i64::from(self.series_per_user) {
            return Err(self.series_full());
        }
        let more = reminders as i64;
        if more > 0 && held.reminders + more > i64::from(self.reminders_per_user) {
            return Err(self.reminders_full(held.reminders));
        }
        held.tasks += 1;
        held.live_series += i64::from(recurring);
        held.reminders += more;
        Ok(())
    }

    fn tasks_full(&self) -> AppError {
        AppError::QuotaExceeded(format!(
            "you have {} tasks, the most allowed: delete tasks you no longer need \
             (list_tasks with status \"completed\" finds old ones) before adding more",
            self.tasks_per_user
        ))
    }

    fn series_full(&self) -> AppError {
        AppError::QuotaExceeded(format!(
            "you have {} recurring tasks, the most allowed: end one (update_task with \
             recurrence null, or delete_task) before starting another",
            self.series_per_user
        ))
    }

    fn reminders_full(&self, held: i64) -> AppError {
        AppError::QuotaExceeded(format!(
            "you have {held} reminders and may have at most {}: cancel_reminder old ones, \
             or delete tasks you no longer need, before setting more",
            self.reminders_per_user
        ))
    }

    /// A cron rule must not make tasks more often than the minimum interval allows.
    pub fn check_rule(&self, rule: &Recurrence, start: DateTime<Utc>, zone: Tz) -> AppResult<()> {
        let Some(gap) = rule.shortest_cron_gap(start, zone, CRON_SAMPLES) else {
            return Ok(());
        };
        if gap < self.min_recurrence_interval {
            return Err(AppError::Validation(todo_shared::ValidationError::new(
                "recurrence.cron",
                format!(
                    "fires {} minute(s) apart at times, and each occurrence is a new task; \
                     the shortest interval allowed is {} minutes: use a coarser rule, or one \
                     task with reminders (set_reminder) for what repeats within a day",
                    gap.num_minutes(),
                    self.min_recurrence_interval.num_minutes()
                ),
            )));
        }
        Ok(())
    }
}
