//! Each user's settings, and the time zone a call without one is read in.
//!
//! A call's own `time_zone` comes first. Failing that, the user's preference (set with
//! `update_settings`); failing that, the zone their surroundings give: the machine's own zone
//! over stdio (the server runs on the user's machine), the token's `zoneinfo` claim over HTTP;
//! failing all, UTC.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use todo_shared::task::UserId;
use todo_shared::time::Zone;

use crate::error::AppResult;
use crate::store::{Db, settings};

/// Where a user's time zone comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ZoneSource {
    /// The user set it (`update_settings`).
    Preference,
    /// The `zoneinfo` claim of the user's token.
    Token,
    /// The zone of the machine the server runs on, the user's own over stdio.
    Machine,
    /// Nothing says: UTC.
    Default,
}

/// A user's time zone and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserZone {
    pub zone: Zone,
    pub source: ZoneSource,
}

impl UserZone {
    /// UTC, for want of anything else.
    pub const DEFAULT: UserZone = UserZone {
        zone: Zone::UTC,
        source: ZoneSource::Default,
    };
}

/// Users' settings on one database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SettingsService {
    db: Db,
}

impl SettingsService {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The zone to read the user's local times in: their preference, else `ambient` (what
    /// their machine or token says), else UTC.
    pub async fn zone(&self, user: &UserId, ambient: Option<UserZone>) -> AppResult<UserZone> {
        let preferred = settings::time_zone(&self.db, user.as_str()).await?;
        // A stored name always parsed once; should a zone leave the database, the user's
        // surroundings stand in rather than every call failing.
        let preferred = preferred.and_then(|name| match Zone::parse("time_zone", &name) {
            Ok(zone) => Some(zone),
            Err(e) => {
                tracing::warn!(user = %user, %name, error = %e, "ignored a stored time zone");
                None
            }
        });
        Ok(match preferred {
            Some(zone) => UserZone {
                zone,
                source: ZoneSource::Preference,
            },
            None => ambient.unwrap_or(UserZone::DEFAULT),
        })
    }

    /// Sets the user's preferred zone, or with `None` forgets it (their surroundings decide).
    pub async fn set_zone(
        &self,
        user: &UserId,
        zone: Option<Zone>,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        settings::set_time_zone(&self.db, user.as_str(), zone.map(|z| z.name()), now).await?;
        Ok(())
    }
}
