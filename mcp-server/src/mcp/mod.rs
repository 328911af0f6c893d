//! The MCP face of the server, and the only part that knows rmcp.
//!
//! - [`TodoServer`]: the MCP server handler, with its instructions and capabilities.
//! - [`tools`]: the tools; [`route`]: the one path every tool call takes.
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
use todo_shared::time::Zone;

use self::route::route;
use self::tools::{
    AddTask, AddTasks, CancelReminder, CompleteTask, DeleteTask, GetSettings, GetTask,
    ListNotifications, ListTasks, ReopenTask, SetReminder, UpdateSettings, UpdateTask,
};
use crate::app::notifications::NotificationService;
use crate::app::settings::{SettingsService, UserZone, ZoneSource};
use crate::app::tasks::TaskService;
use crate::error::{AppError, AppResult};

const INSTRUCTIONS: &str = "A personal task list. Use add_task to create a task (with optional due \
time, time zone, priority, tags, reminders and recurrence) or add_tasks for up to 50 at once, list_tasks to find them (filters, \
search, sorting, cursor paging), get_task for one task, update_task to change fields (null clears \
a field), complete_task / reopen_task for status, delete_task to remove a task (these three take \
task_ids for up to 50 at once), set_reminder / \
cancel_reminder for reminders, and list_notifications for reminders that have fired. Times are \
RFC 3339; local times and dates are read in the call's `time_zone`, else in the user's time zone: \
get_settings gives it with the current time, update_settings changes it.";

/// The user an HTTP request was authenticated as: the transport puts it in the request's
/// extensions, and the tools act for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub user: UserId,
    /// The token's `zoneinfo` claim, when it names a zone.
    pub zone: Option<Zone>,
}

/// Who a tool call acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserId,
    /// The time zone the user's surroundings give (their machine, their token), if any.
    pub ambient_zone: Option<UserZone>,
}

/// The user of a stdio session: the machine's user, in the machine's zone.
#[derive(Debug, Clone)]
pub struct LocalUser {
    pub user: UserId,
    /// The machine's zone, if it could be told.
    pub zone: Option<Zone>,
}

/// What the tools work with.
#[derive(Debug, Clone)]
pub struct Services {
    pub tasks: TaskService,
    pub notifications: NotificationService,
    pub settings: SettingsService,
}

/// The MCP server: one per connection on stdio, one per request on stateless HTTP.
#[derive(Clone)]
pub struct TodoServer {
    tasks: TaskService,
    notifications: NotificationService,
    settings: SettingsService,
    /// The user of a stdio session; `None` on HTTP, where each request names its own.
    local_user: Option<LocalUser>,
    /// Built once: it holds every tool's schema, which is costly to generate per request.
    tool_router: Arc<ToolRouter<Self>>,
}

impl TodoServer {
    pub fn new(services: Services, local_user: Option<LocalUser>) -> Self {
        let Services {
            tasks,
            notifications,
            settings,
        } = services;
        let tool_router = ToolRouter::new()
            .with_route(route::<AddTask>())
            .with_route(route::<AddTasks>())
            .with_route(route::<ListTasks>())
            .with_route(route::<GetTask>())
            .with_route(route::<UpdateTask>())
            .with_route(route::<CompleteTask>())
            .with_route(route::<ReopenTask>())
            .with_route(route::<DeleteTask>())
            .with_route(route::<SetReminder>())
            .with_route(route::<CancelReminder>())
            .with_route(route::<ListNotifications>())
            .with_route(route::<GetSettings>())
            .with_route(route::<UpdateSettings>());
        Self {
            tasks,
            notifications,
            settings,
            local_user,
            tool_router: Arc::new(tool_router),
        }
    }

    /// Who the request acts for: the token's subject on HTTP, else the local user.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> AppResult<Caller> {
        let from_token = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<AuthenticatedUser>())
            .map(|u| Caller {
                user: u.user.clone(),
                ambient_zone: u.zone.map(|zone| UserZone {
                    zone,
                    source: ZoneSource::Token,
                }),
            });
        let local = || {
            self.local_user.as_ref().map(|local| Caller {
                user: local.user.clone(),
                ambient_zone: local.zone.map(|zone| UserZone {
                    zone,
                    source: ZoneSource::Machine,
                }),
            })
        };
        from_token
            .or_else(local)
            .ok_or_else(|| AppError::Internal("request has no authenticated user".into()))
    }

    /// What the model reads first; over stdio, with the zone of the user's machine.
    fn instructions(&self) -> String {
        match self.local_user.as_ref().and_then(|local| local.zone) {
            Some(zone) => format!(
                "{INSTRUCTIONS} This machine's time zone, the user's unless they set another, \
                 is {}.",
                zone.name()
            ),
            None => INSTRUCTIONS.to_owned(),
        }
    }

    /// The zone the caller's local times are read in when a call gives none.
    async fn zone_of(&self, caller: &Caller) -> AppResult<UserZone> {
        self.settings.zone(&caller.user, caller.ambient_zone).await
    }

    /// The caller's zone when `needed` (the call has local times and names no zone): a
    /// database read spared when not.
    async fn user_zone_if(&self, caller: &Caller, needed: bool) -> AppResult<Zone> {
        if !needed {
            return Ok(Zone::UTC); // never used
        }
        Ok(self.zone_of(caller).await?.zone)
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
            .with_instructions(self.instructions())
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
