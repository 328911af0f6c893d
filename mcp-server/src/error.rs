//! The one error type of the server's operations, and how each kind reaches a model.
//!
//! Errors the caller can fix (bad input, unknown ids, rule conflicts) carry a message that says
//! what to do. Failures of the server itself are logged in full and reported without detail, so
//! nothing about the database or its credentials leaks into a tool result.

use todo_shared::ValidationError;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Arguments that do not have the shape of the tool's input schema.
    #[error("{0}")]
    Arguments(String),
    /// The task does not exist or belongs to another user: the two are indistinguishable.
    #[error("task {0} not found; use list_tasks to find the task's id")]
    TaskNotFound(Uuid),
    #[error("reminder {reminder} not found on task {task}; get_task lists the task's reminders")]
    ReminderNotFound { task: Uuid, reminder: Uuid },
    /// The request is valid but conflicts with the task's state, e.g. an eleventh reminder.
    #[error("{0}")]
    Conflict(String),
    /// The user holds as much as their quota allows.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The caller's token was not granted the scope the request needs.
    #[error(
        "this needs the `{0}` scope, which your sign-in did not grant: sign in again and \
         allow it (your other tools still work)"
    )]
    ScopeMissing(String),
    /// No item of a batch could be applied; the message gives each item's reason.
    #[error("{0}")]
    NothingApplied(String),
    #[error("the task store is unavailable right now; retry in a few seconds")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// True for errors the caller caused and can correct; false for the server's own failures.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            AppError::Validation(_)
                | AppError::Arguments(_)
                | AppError::TaskNotFound(_)
                | AppError::ReminderNotFound { .. }
                | AppError::Conflict(_)
                | AppError::QuotaExceeded(_)
                | AppError::NothingApplied(_)
                | AppError::ScopeMissing(_)
        )
    }

    /// The message a model sees. Server failures are described without their cause.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "internal error; the request was not applied".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<todo_shared::events::EventError> for AppError {
    fn from(e: todo_shared::events::EventError) -> Self {
        AppError::Internal(e.to_string())
    }
}

pub type AppResult<T> = Result<T, AppError>;
