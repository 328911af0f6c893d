//! The tools. Each names its argument and result types, says in words what it does (the
//! model reads `DESCRIPTION`), and runs one operation of the application for the calling user;
//! [`super::route`] does the rest, the same way for all of them.

use std::future::Future;

use rmcp::model::ToolAnnotations;
use todo_shared::time::{format_in_zone, now};
use uuid::Uuid;

use super::args::{
    AddTaskArgs, AddTasksArgs, CancelReminderArgs, ListNotificationsArgs, ListTasksArgs, NoArgs,
    SetReminderArgs, Targets, TaskIdArgs, TaskIdsArgs, UpdateSettingsArgs, UpdateTaskArgs,
};
use super::output::{
    BatchOutput, ChangeOutput, CompleteOutput, DeleteOutput, ListOutput, NotificationsOutput,
    OneOrMany, ReminderOutput, SettingsOutput, TaskOutput, describe_batch, describe_change,
    describe_completion, describe_list, describe_notifications, describe_one_or_many,
    describe_settings, describe_task,
};
use super::route::Tool;
use super::{Caller, TodoServer};
use crate::app::commands::{NewTask, parse_limit};
use crate::error::{AppError, AppResult};

/// A tool that only reads the user's tasks.
fn reads() -> ToolAnnotations {
    ToolAnnotations::new().read_only(true).open_world(false)
}

/// A tool that changes the user's tasks, and nothing outside them.
fn writes(destructive: bool, idempotent: bool) -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(false)
        .destructive(destructive)
        .idempotent(idempotent)
        .open_world(false)
}

pub struct AddTask;

impl Tool for AddTask {
    const NAME: &'static str = "add_task";
    const TITLE: &'static str = "Add a task";
    const DESCRIPTION: &'static str = "Create a task for the user. Only `title` is required. `due` accepts RFC 3339, a \
        local date-time or a date (end of that day) in `time_zone`. Returns the new task with its id.";
    type Args = AddTaskArgs;
    type Output = TaskOutput;

    fn annotations() -> ToolAnnotations {
        writes(false, false)
    }

    async fn run(server: &TodoServer, args: AddTaskArgs, caller: Caller) -> AppResult<TaskOutput> {
        let now = now();
        let zone = server
            .user_zone_if(&caller, args.time_zone.is_none())
            .await?;
        let task = server
            .tasks
            .create(&caller.user, args.parse(now, zone)?, now)
            .await?;
        Ok(TaskOutput { task })
    }

    fn summary(output: &TaskOutput) -> String {
        format!("Created {}", describe_task(&output.task))
    }
}

pub struct AddTasks;

impl Tool for AddTasks {
    const NAME: &'static str = "add_tasks";
    const TITLE: &'static str = "Add several tasks";
    const DESCRIPTION: &'static str = "Create up to 50 tasks in one call, each with the arguments of `add_task`. Each \
        is checked on its own: one that does not fit gets its own error in `results` and the \
        others are created. Returns each task's outcome in the order given.";
    type Args = AddTasksArgs;
    type Output = BatchOutput<TaskOutput>;

    fn annotations() -> ToolAnnotations {
        writes(false, false)
    }

    async fn run(
        server: &TodoServer,
        args: AddTasksArgs,
        caller: Caller,
    ) -> AppResult<Self::Output> {
        let now = now();
        let zone = server.user_zone_if(&caller, args.needs_user_zone()).await?;
        let parsed = args.parse(now, zone)?;
        let valid: Vec<NewTask> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .cloned()
            .collect();
        let mut created = server
            .tasks
            .create_many(&caller.user, valid, now)
            .await?
            .into_iter();
        // Each valid task's outcome in its place among the invalid ones'.
        let outcomes = parsed
            .into_iter()
            .map(|p| match p {
                Ok(_) => created
                    .next()
                    .unwrap_or_else(|| Err(AppError::Internal("a task was not created".into())))
                    .map(|task| TaskOutput { task }),
                Err(e) => Err(e),
            })
            .collect();
        BatchOutput::gather(outcomes, "tasks")
    }

    fn summary(output: &Self::Output) -> String {
        describe_batch("Created", output, |o| describe_task(&o.task))
    }
}

/// Runs `run` for the one task named, or for each of several, each on its own.
async fn for_targets<T, Fut>(targets: Targets, run: impl Fn(Uuid) -> Fut) -> AppResult<OneOrMany<T>>
where
    Fut: Future<Output = AppResult<T>>,
{
    match targets {
        Targets::One(id) => Ok(OneOrMany {
            one: Some(run(id).await?),
            many: None,
        }),
        Targets::Many(ids) => {
            let mut outcomes = Vec::with_capacity(ids.len());
            for id in ids {
                outcomes.push(match id {
                    Ok(id) => run(id).await,
                    Err(e) => Err(e),
                });
            }
            Ok(OneOrMany {
                one: None,
                many: Some(BatchOutput::gather(outcomes, "task_ids")?),
            })
        }
    }
}

pub struct ListTasks;

impl Tool for ListTasks {
    const NAME: &'static str = "list_tasks";
    const TITLE: &'static str = "List and search tasks";
    const DESCRIPTION: &'static str = "List the user's tasks, pending ones by default. Filter by status, priority, tags \
        (all must match), search text (title and description, case-insensitive), due_before/due_after \
        and overdue; sort by created, due, priority or title. Returns a page of at most `limit` tasks, \
        the total count, and `next_cursor` for the next page.";
    type Args = ListTasksArgs;
    type Output = ListOutput;

    fn annotations() -> ToolAnnotations {
        reads()
    }

    async fn run(
        server: &TodoServer,
        args: ListTasksArgs,
        caller: Caller,
    ) -> AppResult<ListOutput> {
        let zone = server.user_zone_if(&caller, args.needs_user_zone()).await?;
        let page = server
            .tasks
            .list(&caller.user, &args.parse(zone)?, now())
            .await?;
        Ok(ListOutput {
            tasks: page.tasks,
            total: page.total,
            next_cursor: page.next_cursor,
        })
    }

    fn summary(output: &ListOutput) -> String {
        describe_list(output)
    }
}

pub struct GetTask;

impl Tool for GetTask {
    const NAME: &'static str = "get_task";
    const TITLE: &'static str = "Get a task";
    const DESCRIPTION: &'static str = "Get one task by id, with its reminders and recurrence.";
    type Args = TaskIdArgs;
    type Output = TaskOutput;

    fn annotations() -> ToolAnnotations {
        reads()
    }

    async fn run(server: &TodoServer, args: TaskIdArgs, caller: Caller) -> AppResult<TaskOutput> {
        let task = server.tasks.get(&caller.user, args.task_id).await?;
        Ok(TaskOutput { task })
    }

    fn summary(output: &TaskOutput) -> String {
        describe_task(&output.task)
    }
}

pub struct UpdateTask;

impl Tool for UpdateTask {
    const NAME: &'static str = "update_task";
    const TITLE: &'static str = "Update a task";
    const DESCRIPTION: &'static str = "Change some fields of a task; fields not given stay as they are, and null clears \
        `description`, `due` or `recurrence`. Moving `due` moves reminders set in minutes_before and \
        keeps the recurrence, which continues from the new due time.";
    type Args = UpdateTaskArgs;
    type Output = ChangeOutput;

    fn annotations() -> ToolAnnotations {
        writes(false, true)
    }

    async fn run(
        server: &TodoServer,
        args: UpdateTaskArgs,
        caller: Caller,
    ) -> AppResult<ChangeOutput> {
        let patch = args.parse()?;
        let applied = server
            .tasks
            .update(&caller.user, args.task_id, &patch, now());
        Ok(applied.await?.into())
    }

    fn summary(output: &ChangeOutput) -> String {
        describe_change("Updated", output)
    }
}

pub struct CompleteTask;

impl Tool for CompleteTask {
    const NAME: &'static str = "complete_task";
    const TITLE: &'static str = "Complete tasks";
    const DESCRIPTION: &'static str = "Mark a task completed (`task_id`), or several (`task_ids`, up to 50, each on its \
        own). For a recurring task this completes this occurrence, and its next occurrence appears \
        at once as a new task (returned as `next_occurrence`); an occurrence not completed by its \
        due time gets its next one then. Each occurrence is one task.";
    type Args = TaskIdsArgs;
    type Output = OneOrMany<CompleteOutput>;

    fn annotations() -> ToolAnnotations {
        writes(false, true)
    }

    async fn run(
        server: &TodoServer,
        args: TaskIdsArgs,
        caller: Caller,
    ) -> AppResult<Self::Output> {
        let (now, user) = (now(), &caller.user);
        for_targets(args.parse()?, |id| async move {
            Ok(server.tasks.complete(user, id, now).await?.into())
        })
        .await
    }

    fn summary(output: &Self::Output) -> String {
        describe_one_or_many("Completed", output, describe_completion)
    }
}

pub struct ReopenTask;

impl Tool for ReopenTask {
    const NAME: &'static str = "reopen_task";
    const TITLE: &'static str = "Reopen tasks";
    const DESCRIPTION: &'static str = "Mark a completed task pending again (`task_id`), or several (`task_ids`, up to \
        50, each on its own).";
    type Args = TaskIdsArgs;
    type Output = OneOrMany<ChangeOutput>;

    fn annotations() -> ToolAnnotations {
        writes(false, true)
    }

    async fn run(
        server: &TodoServer,
        args: TaskIdsArgs,
        caller: Caller,
    ) -> AppResult<Self::Output> {
        let (now, user) = (now(), &caller.user);
        for_targets(args.parse()?, |id| async move {
            Ok(server.tasks.reopen(user, id, now).await?.into())
        })
        .await
    }

    fn summary(output: &Self::Output) -> String {
        describe_one_or_many("Reopened", output, |o| describe_change("Reopened", o))
    }
}

pub struct DeleteTask;

impl Tool for DeleteTask {
    const NAME: &'static str = "delete_task";
    const TITLE: &'static str = "Delete tasks";
    const DESCRIPTION: &'static str = "Delete a task (`task_id`), or several (`task_ids`, up to 50, each on its own), \
        with their reminders and recurrence. This cannot be undone.";
    type Args = TaskIdsArgs;
    type Output = OneOrMany<DeleteOutput>;

    fn annotations() -> ToolAnnotations {
        writes(true, true)
    }

    async fn run(
        server: &TodoServer,
        args: TaskIdsArgs,
        caller: Caller,
    ) -> AppResult<Self::Output> {
        let (now, user) = (now(), &caller.user);
        for_targets(args.parse()?, |id| async move {
            let deleted = server.tasks.delete(user, id, now).await?;
            Ok(DeleteOutput { deleted })
        })
        .await
    }

    fn summary(output: &Self::Output) -> String {
        describe_one_or_many("Deleted", output, |o| {
            format!("Deleted {}", describe_task(&o.deleted))
        })
    }
}

pub struct SetReminder;

impl Tool for SetReminder {
    const NAME: &'static str = "set_reminder";
    const TITLE: &'static str = "Set a reminder";
    const DESCRIPTION: &'static str = "Add a reminder to a pending task, either `at` a time or `minutes_before` its due \
        time. It must lie in the future; a task has at most 10 reminders.";
    type Args = SetReminderArgs;
    type Output = ReminderOutput;

    fn annotations() -> ToolAnnotations {
        writes(false, false)
    }

    async fn run(
        server: &TodoServer,
        args: SetReminderArgs,
        caller: Caller,
    ) -> AppResult<ReminderOutput> {
        let reminder = args.parse()?;
        let (applied, reminder_id) = server
            .tasks
            .set_reminder(&caller.user, args.task_id, &reminder, now())
            .await?;
        Ok(ReminderOutput {
            reminder_id,
            task: applied.task,
        })
    }

    fn summary(output: &ReminderOutput) -> String {
        let at = output
            .task
            .reminders
            .iter()
            .find(|r| r.id == output.reminder_id)
            .map(|r| r.at.as_str());
        format!(
            "Reminder {} set for {} on {}",
            output.reminder_id,
            at.unwrap_or("?"),
            describe_task(&output.task)
        )
    }
}

pub struct CancelReminder;

impl Tool for CancelReminder {
    const NAME: &'static str = "cancel_reminder";
    const TITLE: &'static str = "Cancel a reminder";
    const DESCRIPTION: &'static str = "Remove a reminder from a task.";
    type Args = CancelReminderArgs;
    type Output = ChangeOutput;

    fn annotations() -> ToolAnnotations {
        writes(true, true)
    }

    async fn run(
        server: &TodoServer,
        args: CancelReminderArgs,
        caller: Caller,
    ) -> AppResult<ChangeOutput> {
        let applied = server
            .tasks
            .cancel_reminder(&caller.user, args.task_id, args.reminder_id, now())
            .await?;
        Ok(applied.into())
    }

    fn summary(output: &ChangeOutput) -> String {
        describe_change("Cancelled a reminder of", output)
    }
}

pub struct ListNotifications;

impl Tool for ListNotifications {
    const NAME: &'static str = "list_notifications";
    const TITLE: &'static str = "List notifications";
    const DESCRIPTION: &'static str = "List reminder notifications that have fired for the user, newest first. \
        `unread_only` filters; `mark_read` marks the returned ones read.";
    type Args = ListNotificationsArgs;
    type Output = NotificationsOutput;

    fn annotations() -> ToolAnnotations {
        writes(false, true)
    }

    async fn run(
        server: &TodoServer,
        args: ListNotificationsArgs,
        caller: Caller,
    ) -> AppResult<NotificationsOutput> {
        let limit = parse_limit(args.limit)?;
        let page = server
            .notifications
            .list(
                &caller.user,
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
    }

    fn summary(output: &NotificationsOutput) -> String {
        describe_notifications(output)
    }
}

pub struct GetSettings;

impl Tool for GetSettings {
    const NAME: &'static str = "get_settings";
    const TITLE: &'static str = "Get the user's settings";
    const DESCRIPTION: &'static str = "The user's time zone, in which local times and dates are read when a call \
        names no `time_zone`, where it comes from, and the current time in it.";
    type Args = NoArgs;
    type Output = SettingsOutput;

    fn annotations() -> ToolAnnotations {
        reads()
    }

    async fn run(server: &TodoServer, _: NoArgs, caller: Caller) -> AppResult<SettingsOutput> {
        settings_of(server, &caller).await
    }

    fn summary(output: &SettingsOutput) -> String {
        describe_settings(output)
    }
}

pub struct UpdateSettings;

impl Tool for UpdateSettings {
    const NAME: &'static str = "update_settings";
    const TITLE: &'static str = "Update the user's settings";
    const DESCRIPTION: &'static str = "Set the user's time zone (IANA name, e.g. `Europe/Paris`), used wherever a call \
        names none; `null` forgets it (the zone of the user's machine or sign-in applies, else UTC). \
        Existing tasks keep their own zones.";
    type Args = UpdateSettingsArgs;
    type Output = SettingsOutput;

    fn annotations() -> ToolAnnotations {
        writes(false, true)
    }

    async fn run(
        server: &TodoServer,
        args: UpdateSettingsArgs,
        caller: Caller,
    ) -> AppResult<SettingsOutput> {
        if let Some(zone) = args.parse()? {
            server.settings.set_zone(&caller.user, zone, now()).await?;
        }
        settings_of(server, &caller).await
    }

    fn summary(output: &SettingsOutput) -> String {
        describe_settings(output)
    }
}

async fn settings_of(server: &TodoServer, caller: &Caller) -> AppResult<SettingsOutput> {
    let zone = server.zone_of(caller).await?;
    Ok(SettingsOutput {
        time_zone: zone.zone.name().to_owned(),
        time_zone_source: zone.source,
        now: format_in_zone(now(), zone.zone.tz()),
    })
}
