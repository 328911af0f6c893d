//! The MCP face of the server, and the only part that knows rmcp.
//!
//! - [`TodoServer`]: the MCP server handler, with its instructions and capabilities.
//! - [`access`]: what a caller's scopes let it do.
//! - [`tools`]: the tools; [`route`]: the one path every tool call takes.
//! - [`args`]: tool arguments as a model sends them, parsed into the application's commands;
//!   [`output`]: tool results and their one-line summaries.
//! - [`push`]: fired reminders pushed to connected clients.
//! - [`schema`]: the tools' JSON Schemas, in standard vocabulary only.
//!
//! The caller's identity never comes from arguments: it is the configured local user (stdio) or
//! the token's subject (HTTP).

pub mod access;
pub mod args;
pub mod output;
pub mod push;
pub mod route;
pub mod schema;
pub mod tools;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    Implementation, ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
    ServerConfig, SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool_handler};
use todo_shared::task::UserId;
use todo_shared::time::{Zone, now};
use tokio_util::sync::CancellationToken;

use self::access::{Access, Need};
use self::output::NotificationsOutput;
use self::push::{MAX_STREAMS_PER_USER, NOTIFICATIONS_URI, OpenStreams, Pushes};
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
    /// What the token's scopes allow.
    pub access: Access,
}

/// What the HTTP transport lends each request: the end of its exchange (cancelled when the
/// answer is complete or the client hangs up), and its share of the user's limits, which a
/// request that becomes a lasting stream (`subscriptions/listen`) gives back.
#[derive(Clone)]
pub struct RequestLease {
    pub closed: CancellationToken,
    share: Arc<std::sync::Mutex<Option<Box<dyn Send + Sync>>>>,
}

impl RequestLease {
    pub fn new(share: Option<Box<dyn Send + Sync>>) -> Self {
        Self {
            closed: CancellationToken::new(),
            share: Arc::new(std::sync::Mutex::new(share)),
        }
    }

    /// Gives the request's share back: it goes on as a stream without holding one.
    pub fn give_back_share(&self) {
        drop(self.share.lock().expect("not poisoned").take());
    }
}

/// Who a tool call acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserId,
    /// The time zone the user's surroundings give (their machine, their token), if any.
    pub ambient_zone: Option<UserZone>,
    /// What the caller may do.
    pub access: Access,
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

/// The MCP server: one per connection on stdio and HTTP+SSE, one per request on stateless
/// streamable HTTP.
#[derive(Clone)]
pub struct TodoServer {
    tasks: TaskService,
    notifications: NotificationService,
    settings: SettingsService,
    /// The user of a stdio session; `None` on HTTP, where each request names its own.
    local_user: Option<LocalUser>,
    /// What the connection pushes to its client; `None` where it is not lasting (stateless
    /// HTTP serves each request on its own).
    pushes: Option<Arc<Pushes>>,
    /// The `subscriptions/listen` streams open in this process, per user.
    listening: OpenStreams,
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
        // Over stdio the one connection lasts, and reminders go to it as log messages.
        let pushes = local_user.as_ref().map(|_| Arc::new(Pushes::logging()));
        Self {
            tasks,
            notifications,
            settings,
            local_user,
            pushes,
            listening: OpenStreams::default(),
            tool_router: Arc::new(tool_router),
        }
    }

    /// The server for a new lasting connection (an HTTP+SSE session), with pushes of its own.
    pub fn for_connection(&self) -> Self {
        Self {
            pushes: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// The notifications the tools read, for the transports' event streams.
    pub fn notifications(&self) -> NotificationService {
        self.notifications.clone()
    }

    /// What the connection pushes, if it lasts.
    pub fn pushes(&self) -> Option<Arc<Pushes>> {
        self.pushes.clone()
    }

    /// Turns the caller's resource subscription on or off: the connection's own when it lasts,
    /// else the user's, which their `GET /mcp` streams on every replica follow.
    async fn set_subscribed(
        &self,
        uri: &str,
        on: bool,
        context: &RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let caller = self
            .caller(context, Need::Read)
            .map_err(|e| mcp_error(&e))?;
        if let Some(pushes) = &self.pushes {
            pushes.set_resource(on);
            if on {
                self.start_pushing(pushes, caller, context);
            }
            return Ok(());
        }
        self.notifications
            .set_subscribed(&caller.user, uri, on, now())
            .await
            .map_err(|e| mcp_error(&e))
    }

    /// Starts the connection's pusher, once, for `caller`.
    fn start_pushing(
        &self,
        pushes: &Arc<Pushes>,
        caller: Caller,
        context: &RequestContext<RoleServer>,
    ) {
        if pushes.start() {
            let feed = self.notifications.subscribe();
            let peer = context.peer.clone();
            tokio::spawn(push::push(feed, peer, caller.user, pushes.clone()));
        }
    }

    /// Whether tool `name` changes anything; `None` when there is no such tool.
    pub fn tool_writes(&self, name: &str) -> Option<bool> {
        let tool = self.tool_router.get(name)?;
        let read_only = tool.annotations.as_ref().and_then(|a| a.read_only_hint);
        Some(read_only != Some(true))
    }

    /// Who the request acts for (the token's subject on HTTP, else the local user), if its
    /// access allows what the request `need`s.
    fn caller(&self, ctx: &RequestContext<RoleServer>, need: Need) -> AppResult<Caller> {
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
                access: u.access.clone(),
            });
        let local = || {
            self.local_user.as_ref().map(|local| Caller {
                user: local.user.clone(),
                ambient_zone: local.zone.map(|zone| UserZone {
                    zone,
                    source: ZoneSource::Machine,
                }),
                access: Access::Full,
            })
        };
        let caller = from_token
            .or_else(local)
            .ok_or_else(|| AppError::Internal("request has no authenticated user".into()))?;
        match caller.access.missing(need) {
            Some(scope) => Err(AppError::ScopeMissing(scope.to_owned())),
            None => Ok(caller),
        }
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
        // Logging and the notifications resource carry the reminders pushed to clients.
        #[allow(deprecated)]
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_logging()
            .enable_resources()
            .enable_resources_subscribe()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("todo-mcp", env!("CARGO_PKG_VERSION"))
                    .with_title("Todo task manager"),
            )
            .with_instructions(self.instructions())
    }

    /// Any level turns on the log messages of fired reminders on a lasting connection (they
    /// are the only log messages, so every level gets them).
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let caller = self
            .caller(&context, Need::Read)
            .map_err(|e| mcp_error(&e))?;
        if let Some(pushes) = &self.pushes {
            pushes.set_logging();
            self.start_pushing(pushes, caller, &context);
        }
        Ok(())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let notifications = Resource::new(NOTIFICATIONS_URI, "notifications")
            .with_title("Reminder notifications")
            .with_description(
                "The user's unread reminder notifications, newest first (as list_notifications \
                 gives them). Subscribe to hear when a reminder fires.",
            )
            .with_mime_type("application/json");
        Ok(ListResourcesResult::with_all_items(vec![notifications]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        known_resource(&request.uri)?;
        let unread = async {
            let caller = self.caller(&context, Need::Read)?;
            let page = self
                .notifications
                .list(&caller.user, true, UNREAD_SHOWN, false, now())
                .await?;
            serde_json::to_string(&NotificationsOutput {
                notifications: page.notifications,
                unread: page.unread,
            })
            .map_err(|e| AppError::Internal(e.to_string()))
        };
        let json = unread.await.map_err(|e| mcp_error(&e))?;
        let contents =
            ResourceContents::text(json, NOTIFICATIONS_URI).with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    /// `notifications/resources/updated` for the notifications resource as reminders fire: on a
    /// lasting connection (stdio, HTTP+SSE) on the connection itself; over stateless
    /// streamable HTTP on the user's event streams (`GET /mcp`), on any replica.
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        known_resource(&request.uri)?;
        self.set_subscribed(&request.uri, true, &context).await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        known_resource(&request.uri)?;
        self.set_subscribed(&request.uri, false, &context).await
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let wants = requested
            .resource_subscriptions
            .as_ref()
            .is_some_and(|uris| uris.iter().any(|u| u == NOTIFICATIONS_URI));
        wants.then(|| {
            SubscriptionFilter::builder()
                .resource_subscription(NOTIFICATIONS_URI)
                .build()
        })
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let caller = self
            .caller(context.request_context(), Need::Read)
            .map_err(|e| mcp_error(&e))?;
        let Some(_slot) = self.listening.enter(&caller.user) else {
            return Err(McpError::invalid_request(
                format!(
                    "this user has {MAX_STREAMS_PER_USER} subscriptions open, the most allowed: \
                     end one first"
                ),
                None,
            ));
        };
        let lease = context
            .request_context()
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<RequestLease>())
            .cloned();
        let closed = match lease {
            Some(lease) => {
                lease.give_back_share();
                lease.closed
            }
            None => CancellationToken::new(),
        };
        let feed = self.notifications.subscribe();
        push::listen(feed, context, caller.user, closed).await
    }
}

/// Unread notifications the resource shows at most.
const UNREAD_SHOWN: u32 = 50;

fn known_resource(uri: &str) -> Result<(), McpError> {
    if uri == NOTIFICATIONS_URI {
        return Ok(());
    }
    Err(McpError::resource_not_found(
        format!("no resource {uri}: the one resource is {NOTIFICATIONS_URI}"),
        None,
    ))
}

fn mcp_error(e: &AppError) -> McpError {
    match e.is_caller_error() {
        true => McpError::invalid_request(e.public_message(), None),
        false => McpError::internal_error(e.public_message(), None),
    }
}
