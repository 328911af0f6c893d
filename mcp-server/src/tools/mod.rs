//! The MCP tools. Each tool parses its arguments, runs one task operation for the calling user,
//! and answers with structured content (described by its `outputSchema`) plus a text summary.
//!
//! Failures are tool results with `isError: true` and a message that says what to change, never
//! protocol errors: a model can read and act on them. The caller's identity never comes from
//! arguments: it is the configured local user (stdio) or the token's subject (HTTP).

pub mod args;
pub mod output;

use std::sync::Arc;

use rmcp::handler::server::common::schema_for_input;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, JsonObject, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use todo_shared::error::{MAX_MESSAGE_CHARS, elide_middle};
use todo_shared::reminder::ReminderInput;
use todo_shared::task::UserId;

use self::args::{
    AddTaskArgs, CancelReminderArgs, ListNotificationsArgs, ListTasksArgs, SetReminderArgs,
    TaskIdArgs, UpdateTaskArgs,
};
use self::output::{
    ChangeOutput, DeleteOutput, ListOutput, NotificationsOutput, ReminderOutput, TaskOutput,
    describe_change, describe_list, describe_notifications, describe_task,
};
use crate::auth::AuthenticatedUser;
use crate::db::now;
use crate::error::{AppError, AppResult};
use crate::notifications::NotificationService;
use crate::tasks::commands::NewTask;
use crate::tasks::list::{ListQuery, parse_limit};
use crate::tasks::service::{Outcome, TaskService};

const INSTRUCTIONS: &str = "A personal task list. Use add_task to create tasks (with optional due \
time, time zone, priority, tags, reminders and recurrence), list_tasks to find them (filters, \
search, sorting, cursor paging), get_task for one task, update_task to change fields (null clears \
a field), complete_task / reopen_task for status, delete_task to remove a task, set_reminder / \
cancel_reminder for reminders, and list_notifications for reminders that have fired. Times are \
RFC 3339; local times and dates are read in the task's IANA time zone.";

/// The MCP server: one per connection on stdio, one per request on stateless HTTP.
#[derive(Clone)]
pub struct TodoServer {
    tasks: TaskService,
    notifications: NotificationService,
    /// The user of a stdio session; `None` on HTTP, where each request names its own.
    local_user: Option<UserId>,
    /// Built once: it holds every tool's schema, which is costly to generate per request.
    tool_router: Arc<ToolRouter<Self>>,
}

impl TodoServer {
    pub fn new(
        tasks: TaskService,
        notifications: NotificationService,
        local_user: Option<UserId>,
    ) -> Self {
        Self {
            tasks,
            notifications,
            local_user,
            tool_router: Arc::new(Self::tool_router()),
        }
    }

    /// The user the request acts for: the token's subject on HTTP, else the local user.
    fn user(&self, ctx: &RequestContext<RoleServer>) -> AppResult<UserId> {
        let from_token = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<AuthenticatedUser>())
            .map(|u| u.0.clone());
        from_token
            .or_else(|| self.local_user.clone())
            .ok_or_else(|| AppError::Internal("request has no authenticated user".into()))
    }
}

impl TodoServer {
    /// Runs one tool call: parses the arguments (naming any that do not fit), resolves the
    /// calling user, runs `op`, and turns its outcome into a tool result.
    async fn call<A, T, Fut>(
        &self,
        raw: JsonObject,
        ctx: &RequestContext<RoleServer>,
        op: impl FnOnce(A, UserId) -> Fut,
        summary: impl FnOnce(&T) -> String,
    ) -> Result<CallToolResult, McpError>
    where
        A: DeserializeOwned,
        T: Serialize,
        Fut: Future<Output = AppResult<T>>,
    {
        let result = match (parse_args::<A>(raw), self.user(ctx)) {
            (Ok(args), Ok(user)) => op(args, user).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        Ok(respond(result, summary))
    }
}

/// Turns an operation's result into a tool result: structured content plus `summary` on
/// success, an `isError` result with an actionable message on failure.
fn respond<T: Serialize>(
    result: AppResult<T>,
    summary: impl FnOnce(&T) -> String,
) -> CallToolResult {
    match result {
        Ok(out) => match serde_json::to_value(&out) {
            Ok(value) => {
                // The JSON text too, for clients that read only `content`.
                let json = value.to_string();
                let mut r = CallToolResult::success(vec![
                    ContentBlock::text(summary(&out)),
                    ContentBlock::text(json),
                ]);
                r.structured_content = Some(value);
                r
            }
            Err(e) => failure(&AppError::Internal(format!("serialising the result: {e}"))),
        },
        Err(e) => failure(&e),
    }
}

fn failure(e: &AppError) -> CallToolResult {
    if e.is_caller_error() {
        tracing::debug!(error = %e, "tool call rejected");
    } else {
        tracing::error!(error = %e, "tool call failed");
    }
    CallToolResult::error(vec![ContentBlock::text(e.public_message())])
}

/// The input schema of a tool whose arguments are `T`.
fn input_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    // The argument types are fixed at compile time; a failure here is a programming error
    // caught by the first test that lists the tools.
    schema_for_input::<T>().unwrap_or_else(|e| {
        panic!(
            "invalid input schema for {}: {e}",
            std::any::type_name::<T>()
        )
    })
}

/// Parses tool arguments, naming the argument at fault when one does not fit (rmcp's own
/// extraction reports serde's message without the field).
fn parse_args<T: DeserializeOwned>(raw: JsonObject) -> AppResult<T> {
    serde_path_to_error::deserialize(serde_json::Value::Object(raw)).map_err(|e| {
        // serde repeats an unexpected value whole; the path too can be as long as the input.
        let path = elide_middle(e.path().to_string(), 120);
        let message = elide_middle(e.into_inner().to_string(), MAX_MESSAGE_CHARS);
        if path == "." {
            AppError::Arguments(format!("invalid arguments: {message}"))
        } else {
            AppError::Arguments(format!("invalid `{path}`: {message}"))
        }
    })
}

fn changed(outcome: Outcome) -> ChangeOutput {
    ChangeOutput {
        task: outcome.task,
        changed: outcome.changed,
    }
}

#[tool_router]
impl TodoServer {
    #[tool(
        name = "add_task",
        title = "Add a task",
        description = "Create a task for the user. Only `title` is required. `due` accepts RFC 3339, a \
            local date-time or a date (end of that day) in `time_zone`. Returns the new task with its id.",
        output_schema = schema_for_output::<TaskOutput>(),
        input_schema = input_schema::<AddTaskArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn add_task(
        &self,
        Parameters(raw): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            raw,
            &ctx,
            |args: AddTaskArgs, user| async move {
                let now = now();
                let task = self
                    .tasks
                    .create(&user, NewTask::parse(args, now)?, now)
                    .await?;
                Ok(TaskOutput { task })
            },
            |o| format!("Created {}", describe_task(&o.task)),
        )
        .await
    }

    #[tool(
        name = "list_tasks",
        title = "List and search tasks",
        description = "List the user's tasks, pending ones by default. Filter by status, priority, tags \
            (all must match), search text (title and description, case-insensitive), due_before/due_after \
            and overdue; sort by created, due, priority or title. Returns a page of at most `limit` tasks, \
            the total count, and `next_cursor` for the next page.",
        output_schema = schema_for_output::<ListOutput>(),
        input_schema = input_schema::<ListTasksArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_tasks(
        &self,
        Parameters(raw): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            raw,
            &ctx,
            |args: ListTasksArgs, user| async move {
                let query = ListQuery::parse(args)?;
                let page = self.tasks.list(&user, &query, now()).await?;
                Ok(ListOutput {
                    tasks: page.tasks,
                    total: page.total,
                    next_cursor: page.next_cursor,
                })
            },
            describe_list,
        )
        .await
    }

    #[tool(
        name = "get_task",
        title = "Get a task",
        description = "Get one task by id, with its reminders and recurrence.",
        output_schema = schema_for_output::<TaskOutput>(),
        input_schema = input_schema::<TaskIdArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_task(
        &self,
        Parameters(raw): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            raw,
            &ctx,
            |args: TaskIdArgs, user| async move {
                Ok(TaskOutput {
                    task: self.tasks.get(&user, args.task_id).await?,
                })
            },
            |o| describe_task(&o.task),
        )
        .await
    }

    #[tool(
        name = "update_task",
        title = "Update a task",
        description = "Change some fields of a task; fields not given stay as they are, and null clears \
            `description`, `due` or `recurrence`. Moving `due` moves reminders set in minutes_before and \
            keeps the recurrence, which continues from the new due time.",
        output_schema = schema_for_output::<ChangeOutput>(),
        input_schema = input_schema::<UpdateTaskArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_task(
        &self,
        Parameters(raw): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            raw,
            &ctx,
            |args: UpdateTaskArgs, user| async move {
                Ok(changed(self.tasks.update(&user, args, now()).await?))
            },
            |o| describe_change("Updated", o),
        )
        .await
    }

    #[tool(
        name = "complete_task",
        title = "Complete a task",
        description = "Mark a task completed. For a recurring task this completes this occurrence; the \
            series goes on and its next occurrence appears as a new task.",
        output_schema = schema_for_output::<ChangeOutput>(),
        input_schema = input_schema::<TaskIdArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn complete_task(
        &self,
        Parameters(raw): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            raw,
            &ctx,
            |args: TaskIdArgs, user| async move {
                Ok(changed(
                    self.tasks.complete(&user, args.task_id, now()).await?,
                ))
            },
            |o| describe_change("Completed", o),
        )
        .await
    }

    #[tool(
        name = "reopen_task",
        title = "Reopen a task",
        description = "Mark a completed task pending again.",
        output_schema = schema_for_output::<ChangeOutput>(),
        input_schema = input_schema::<TaskIdArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn reopen_task(
        &self,
        Parameters(raw): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            raw,
            &ctx,
            |args: TaskIdArgs, user| async move {
                Ok(changed(
                    self.tasks.reopen(&user, args.task_id, now()).await?,
                ))
            },
            |o| describe_change("Reopened", o),
        )
        .await
    }

    #[tool(
        name = "delete_task",
        title = "Delete a task",
        description = "Delete a task with its reminders and recurrence. This cannot be undone.",
        output_schema = schema_for_output::<DeleteOutput>(),
        input_schema = input_schema::<TaskIdArgs>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn delete_task(
        &self,
        Parameters(raw): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            raw,
            &ctx,
            |args: TaskIdArgs, user| async move {
                Ok(DeleteOutput {
                    deleted: self.tasks.delete(&user, args.task_id, now()).await?,
                })
            },
            |o| format!("Deleted {}", describe_task(&o.deleted)),
        )
        .await
    }

    #[tool(
        name = "set_reminder",
        title = "Set a reminder",
        description = "Add a reminder to a pending task, either `at` a time or `minutes_before` its due \
            time. It must lie in the future; a task has at most 10 reminders.",
        output_schema = schema_for_output::<ReminderOutput>(),
        input_schema = input_schema::<SetReminderArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn set_reminder(
        &self,
        Parameters(raw): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            raw,
            &ctx,
            |args: SetReminderArgs, user| async move {
                let input = ReminderInput {
                    at: args.at,
                    minutes_before: args.minutes_before,
                };
                let (outcome, reminder_id) = self
                    .tasks
                    .set_reminder(&user, args.task_id, &input, now())
                    .await?;
                Ok(ReminderOutput {
                    reminder_id,
                    task: outcome.task,
                })
            },
            |o| {
                let at = o
                    .task
                    .reminders
                    .iter()
                    .find(|r| r.id == o.reminder_id)
                    .map(|r| r.at.as_str());
                format!(
                    "Reminder {} set for {} on {}",
                    o.reminder_id,
                    at.unwrap_or("?"),
                    describe_task(&o.task)
                )
            },
        )
        .await
    }

    #[tool(
        name = "cancel_reminder",
        title = "Cancel a reminder",
        description = "Remove a reminder from a task.",
        output_schema = schema_for_output::<ChangeOutput>(),
        input_schema = input_schema::<CancelReminderArgs>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn cancel_reminder(
        &self,
        Parameters(raw): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            raw,
            &ctx,
            |args: CancelReminderArgs, user| async move {
                Ok(changed(
                    self.tasks
                        .cancel_reminder(&user, args.task_id, args.reminder_id, now())
                        .await?,
                ))
            },
            |o| describe_change("Cancelled a reminder of", o),
        )
        .await
    }

    #[tool(
        name = "list_notifications",
        title = "List notifications",
        description = "List reminder notifications that have fired for the user, newest first. \
            `unread_only` filters; `mark_read` marks the returned ones read.",
        output_schema = schema_for_output::<NotificationsOutput>(),
        input_schema = input_schema::<ListNotificationsArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_notifications(
        &self,
        Parameters(raw): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            raw,
            &ctx,
            |args: ListNotificationsArgs, user| async move {
                let limit = parse_limit(args.limit)?;
                let page = self
                    .notifications
                    .list(
                        &user,
                        args.unread_only.unwrap_or(false),
                        limit,
                        args.mark_read.unwrap_or(false),
                        now(),
                    )
                    .await?;
                Ok(NotificationsOutput {
                    notifications: page.notifications,
                    unread: page.unread,
                })
            },
            describe_notifications,
        )
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TodoServer {
    fn get_info(&self) -> ServerConfig {
        // Logging carries the reminder notifications pushed to stdio clients.
        #[allow(deprecated)]
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_logging()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("todo-mcp", env!("CARGO_PKG_VERSION"))
                    .with_title("Todo task manager"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    /// Accepts any level: the only messages are reminder notifications, which are always sent.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }
}
