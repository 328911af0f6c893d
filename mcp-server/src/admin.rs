//! Operator commands, run from the same binary against the database the server uses:
//! `todo-mcp dead-letters list | retry <ID>… | retry --all | drop <ID>… | drop --all`, and
//! `todo-mcp resync`.
//!
//! The database comes from the same options and secrets as the server's (in a pod, through its
//! sidecar), so `kubectl exec deploy/todo-mcp -- todo-mcp dead-letters list` needs nothing else.
//! Results go to stdout, one line each.

use std::io::Write;

use crate::app::resync::ResyncService;
use crate::config::{Command, Config, DeadLetterCommand, Selection};
use crate::startup::Core;
use crate::store::dead_letters::{self, DeadLetter};

/// Runs `command` and returns when it is done.
pub async fn run(config: &Config, command: &Command) -> anyhow::Result<()> {
    let core = Core::open(config, false).await?;
    let outcome = match command {
        Command::DeadLetters(command) => dead_letter_command(&core, command).await,
        Command::Resync => resync(&core).await,
    };
    core.stop().await;
    outcome
}

async fn dead_letter_command(core: &Core, command: &DeadLetterCommand) -> anyhow::Result<()> {
    let db = core.db();
    let mut out = std::io::stdout().lock();
    match command {
        DeadLetterCommand::List { limit, json } => {
            let letters = dead_letters::list(db, *limit).await?;
            if *json {
                for letter in &letters {
                    writeln!(out, "{}", serde_json::to_string(letter)?)?;
                }
            } else {
                write_table(&mut out, &letters)?;
            }
        }
        DeadLetterCommand::Retry(selection) => {
            let n = dead_letters::retry(db, &selected(selection)).await?;
            writeln!(
                out,
                "{n} dead letter(s) back in the outbox, to be published again"
            )?;
        }
        DeadLetterCommand::Drop(selection) => {
            let n = dead_letters::drop(db, &selected(selection)).await?;
            writeln!(out, "{n} dead letter(s) dropped")?;
        }
    }
    Ok(())
}

async fn resync(core: &Core) -> anyhow::Result<()> {
    let service = ResyncService::new(core.db().clone(), core.tasks.events_committed());
    let n = service.replay(todo_shared::time::now()).await?;
    writeln!(
        std::io::stdout().lock(),
        "{n} task(s) replayed to the scheduler through the outbox"
    )?;
    Ok(())
}

fn selected(selection: &Selection) -> dead_letters::Selection {
    if selection.all {
        dead_letters::Selection::All
    } else {
        dead_letters::Selection::Ids(selection.ids.clone())
    }
}

fn write_table(out: &mut impl Write, letters: &[DeadLetter]) -> std::io::Result<()> {
    if letters.is_empty() {
        return writeln!(out, "no dead letters");
    }
    writeln!(
        out,
        "{:<36}  {:<28}  {:<36}  {:>8}  {:<20}  LAST ERROR",
        "EVENT ID", "TYPE", "TASK", "ATTEMPTS", "GIVEN UP AT"
    )?;
    for l in letters {
        writeln!(
            out,
            "{:<36}  {:<28}  {:<36}  {:>8}  {:<20}  {}",
            l.id,
            l.event_type,
            l.subject,
            l.attempts,
            l.dead_at.format("%Y-%m-%dT%H:%M:%SZ"),
            l.last_error.as_deref().unwrap_or("").replace('\n', " "),
        )?;
    }
    Ok(())
}
