//! The MCP face of the server, and the only part that knows rmcp.
//!
//! - [`TodoServer`]: the MCP server handler, with its instructions and capabilities.
//! - [`tools`]: the ten tools; [`route`]: the one path every tool call takes.
//! - [`args`]: tool arguments as a model sends them, parsed into the application's commands;
//!   [`output`]: tool results and their one-line summaries.
//! - [`push`]: fired reminders pushed to a connected stdio client.
//! - [`schema`]: the tools' JSON Schemas, in standard vocabulary only.
//!
//! The caller's identity never comes from arguments: it is the configured local user (stdio) or
//! the token's subject (HTTP).

pub mod args;
pub mod output;
pub mod push;
pub mod route;
pub mod schema;
pub mod tools;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool_handler};
use todo_shared::task::UserId;

use self::route::route;
use self::tools::{
    AddTask, CancelReminder, CompleteTask, DeleteTask, GetTask, ListNotifications, ListTasks,
    ReopenTask, SetReminder, UpdateTask,
};
use crate::app::notifications::NotificationService;
use crate::app::tasks::TaskService;
use crate::error::{AppError, AppResult};

const INSTRUCTIONS: &str = "A personal task list. Use add_task to create tasks (with optional due \
time, time zone, priority, tags, reminders and recurrence), list_tasks to find them (filters, \
search, sorting, cursor paging), get_task for one task, update_task to change fields (null clears \
a field), complete_task / reopen_task for status, delete_task to remove a task, set_reminder / \
cancel_reminder for reminders, and list_notifications for reminders that have fired. Times are \
RFC 3339; local times and dates are read in the task's IANA time zone.";

/// The user an HTTP request was authenticated as: the transport puts it in the request's
/// extensions, and the tools act for it.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser(pub UserId);

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
        let tool_router = ToolRouter::new()
            .with_route(route::<AddTask>())
            .with_route(route::<ListTasks>())
            .with_route(route::<GetTask>())
            .with_route(route::<UpdateTask>())
            .with_route(route::<CompleteTask>())
            .with_route(route::<ReopenTask>())
            .with_route(route::<DeleteTask>())
            .with_route(route::<SetReminder>())
            .with_route(route::<CancelReminder>())
            .with_route(route::<ListNotifications>());
        Self {
            tasks,
            notifications,
            local_user,
            tool_router: Arc::new(tool_router),
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
