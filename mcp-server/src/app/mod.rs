//! The application: what the server does with tasks and notifications, whoever asks (a tool
//! call, an event).
//!
//! - [`commands`]: what the services take, already parsed and checked ([`NewTask`],
//!   [`TaskPatch`], …); [`listing`]: the `list_tasks` query and its cursor.
//! - [`tasks`]: [`TaskService`], one transaction per operation with its lifecycle event.
//! - [`notifications`]: [`NotificationService`], fired reminders kept and announced.
//! - [`quotas`]: [`Quotas`], how much one user may hold.
//! - [`resync`]: [`ResyncService`], the schedule replayed to a scheduler that lost its state.
//! - [`settings`]: [`SettingsService`], each user's preferences and the time zone a call is
//!   read in.
//!
//! Services read and write through [`crate::store`] and never see a wire type: the tools
//! (`crate::mcp`) and the event consumers (`crate::events`) parse what they receive first.
//!
//! [`NewTask`]: commands::NewTask
//! [`TaskPatch`]: commands::TaskPatch
//! [`TaskService`]: tasks::TaskService
//! [`NotificationService`]: notifications::NotificationService
//! [`ResyncService`]: resync::ResyncService
//! [`Quotas`]: quotas::Quotas
//! [`SettingsService`]: settings::SettingsService

pub mod commands;
pub mod listing;
pub mod notifications;
pub mod quotas;
pub mod resync;
pub mod settings;
pub mod tasks;
